//! Measures the runner's two speed figures over repeated runs: the user guide's
//! hello-world Job (an output, no input) and a Job with one input and one output.
//!
//! ```sh
//! cargo build --release -p oras-agent
//! ORAS_AGENT_BIN=$CARGO_TARGET_DIR/release/oras-agent cargo run -p oras-e2e --bin pod-speed [RUNS]
//! ```

use std::time::Duration;

use anyhow::{Context, Result};
use oras_contract::annotations;
use oras_e2e::local::Local;
use oras_e2e::pod::read_object;
use oras_e2e::runner::{Phase, RunnerConfig};
use oras_e2e::timing::millis;
use oras_e2e::workspace;
use serde_json::json;

fn stats(label: &str, mut values: Vec<Duration>) {
    if values.is_empty() {
        println!("  {label}: no measurement");
        return;
    }
    values.sort();
    println!(
        "  {label}: median {}, min {}, max {} ({} runs)",
        millis(values[values.len() / 2]),
        millis(values[0]),
        millis(values[values.len() - 1]),
        values.len()
    );
}

fn main() -> Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()
        .context("RUNS is a number")?
        .unwrap_or(10);
    let local = Local::start(&workspace::policy_wasm(), RunnerConfig::detect()?)?;
    println!("agent: {}", local.runner.config().agent_binary.display());
    let files = tempfile::tempdir()?;
    std::fs::write(files.path().join("input.txt"), "an input\n")?;
    local.push("speed/input:v1", &["input.txt"], files.path())?;

    let hello =
        read_object(&workspace::root().join("examples/requests/breakfast-job-output-pipe.json"))?;
    let mut with_input = hello.clone();
    with_input["metadata"]["name"] = json!("with-input");
    with_input["metadata"]["annotations"][annotations::key(annotations::INPUT_URI)] =
        json!("speed/input:v1");
    with_input["metadata"]["annotations"][annotations::key(annotations::DEBUG)] = json!("false");
    with_input["spec"]["template"]["spec"]["containers"][0]["command"] =
        json!(["sh", "-c", "cat input.txt > pancakes.txt"]);

    for (label, object) in [
        ("hello-world Job (no input)", &hello),
        ("Job with one input", &with_input),
    ] {
        let admitted = local.admit(object)?;
        let (mut to_app, mut to_push, mut total) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let report = local.run_admitted(&admitted)?;
            anyhow::ensure!(report.phase == Phase::Succeeded, "{}", report.summary());
            to_app.extend(report.timings.pod_start_to_app_start);
            to_push.extend(report.timings.app_exit_to_push_start);
            total.push(report.timings.total);
        }
        println!("{label}:");
        stats("pod start -> app start", to_app);
        stats("app exit -> push start", to_push);
        stats("pod total", total);
    }
    Ok(())
}
