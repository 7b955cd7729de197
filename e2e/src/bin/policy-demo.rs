//! `make policy-demo`: every example request through the compiled policy, with the patch
//! it applies or the reason it refuses. The images the requests name are served by a
//! registry on 127.0.0.1 (`examples/requests/images/`).

use anyhow::Result;
use oras_e2e::fixtures::{FixtureImages, load_cases};
use oras_e2e::policy_host::CompiledPolicy;
use oras_e2e::workspace;

fn main() -> Result<()> {
    let wasm = workspace::policy_wasm();
    let images = FixtureImages::start(&workspace::requests_dir())?;
    let host = CompiledPolicy::load(&wasm)?.instantiate_with(Some(images.lookups.clone()))?;
    println!(
        "policy: {} ({} bytes)",
        wasm.display(),
        std::fs::metadata(&wasm)?.len()
    );
    let cases = load_cases(&workspace::requests_dir())?;
    let mut as_expected = 0;
    for case in &cases {
        let answer = host.validate(&case.settings, case.request())?;
        println!(
            "\n== {} ({})",
            case.name,
            case.request()["kind"]["kind"].as_str().unwrap_or("?")
        );
        if answer["accepted"] == false {
            println!("rejected: {}", answer["message"].as_str().unwrap_or(""));
        } else if answer["mutated_object"].is_null() {
            println!("accepted unchanged");
        } else {
            let patch = json_patch::diff(&case.request()["object"], &answer["mutated_object"]);
            println!(
                "mutated; JSON patch:\n{}",
                serde_json::to_string_pretty(&patch)?
            );
        }
        if let Some(warnings) = answer["warnings"].as_array() {
            for warning in warnings {
                println!("warning: {}", warning.as_str().unwrap_or(""));
            }
        }
        if answer == case.expected_response {
            as_expected += 1;
        } else {
            println!("!! differs from {}", case.expected_path.display());
        }
    }
    println!(
        "\n{as_expected} of {} example requests answered as expected",
        cases.len()
    );
    // An error, not process::exit: the registry must be dropped (stopped) first.
    anyhow::ensure!(
        as_expected == cases.len(),
        "some answers differ from the expected ones"
    );
    Ok(())
}
