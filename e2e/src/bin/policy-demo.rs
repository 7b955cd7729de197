//! `make demo`: every example request through the compiled policy, with the patch it
//! applies or the reason it refuses.

use anyhow::Result;
use oras_e2e::fixtures::load_cases;
use oras_e2e::policy_host::PolicyHost;
use oras_e2e::workspace;

fn main() -> Result<()> {
    let wasm = workspace::policy_wasm();
    let host = PolicyHost::load(&wasm)?;
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
    if as_expected != cases.len() {
        std::process::exit(1);
    }
    Ok(())
}
