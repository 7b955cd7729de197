//! `make demo`: the two-step workflow of `examples/workflow/` through the compiled policy
//! and the local pod runner, against a real registry on 127.0.0.1. Prints, per step, the
//! patch the policy applied, every container's log and exit code and the timings; then
//! pulls the final artifact with `oras-agent pull` and lists it. Ends with one verdict
//! line.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use oras_e2e::local::Local;
use oras_e2e::pod::read_object;
use oras_e2e::runner::{Phase, RunnerConfig};
use oras_e2e::workspace;

const PARAMS: &str = "workflow/params:v1";
const FINAL: &str = "workflow/summarize:summary";
const STEPS: &[&str] = &["step1-simulate.yaml", "step2-summarize.yaml"];

fn list(dir: &Path, prefix: &Path, out: &mut Vec<String>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let relative = prefix.join(entry.file_name());
        let meta = entry.metadata()?;
        if meta.is_dir() {
            out.push(format!("{}/", relative.display()));
            list(&entry.path(), &relative, out)?;
        } else {
            out.push(format!("{} ({} bytes)", relative.display(), meta.len()));
        }
    }
    Ok(())
}

fn demo() -> Result<String> {
    let examples = workspace::root().join("examples/workflow");
    let mut config = RunnerConfig::detect()?;
    // Keep a demo against a registry that vanished short.
    config
        .node_env
        .push(("ORAS_AGENT_RETRY_SECONDS".into(), "20".into()));
    let local = Local::start(&workspace::policy_wasm(), config)?;
    println!(
        "registry: {} (docker-registry, storage {})",
        local.registry.host(),
        local.registry.storage_dir().display()
    );
    println!("agent: {}", local.runner().config().agent_binary.display());
    println!("isolation: {:?}", local.runner().config().isolation);

    println!("\n== the workflow's parameters, pushed as {PARAMS} (input 2 of step 2)");
    local.push(PARAMS, &["params.env"], &examples.join("params"))?;

    for step in STEPS {
        let object = read_object(&examples.join(step))?;
        println!(
            "\n== {step}: Job {}",
            object["metadata"]["name"].as_str().unwrap_or("?")
        );
        let admitted = local.admit(&object)?;
        println!("patch applied by the policy:");
        println!("{}", serde_json::to_string_pretty(&admitted.patch)?);
        let report = local.run_admitted(&admitted)?;
        for container in &report.containers {
            println!("-- logs of {} ({})", container.name, container.role);
            print!("{}", container.log());
        }
        print!("{}", report.summary());
        if report.phase != Phase::Succeeded {
            bail!(
                "{step}: pod {} {} ({})",
                report.name,
                report.phase,
                report.reason.clone().unwrap_or_default()
            );
        }
    }

    let pulled = tempfile::tempdir()?;
    let reference = local.registry.reference(FINAL);
    println!("\n== oras-agent pull --plain-http {reference}");
    local.pull(FINAL, pulled.path())?;
    let mut files = Vec::new();
    list(pulled.path(), Path::new(""), &mut files)?;
    for file in &files {
        println!("  {file}");
    }
    let summary = std::fs::read_to_string(pulled.path().join("summary.txt"))
        .context("the final artifact has no summary.txt")?;
    println!("summary.txt:\n{summary}");
    if !summary.contains("runs: 3") || !summary.contains("above threshold: 2") {
        bail!("summary.txt does not say what step 1's results hold:\n{summary}");
    }
    Ok(format!(
        "both steps Succeeded, step 2 read step 1's output from the registry, and {FINAL} holds the expected summary"
    ))
}

fn main() -> ExitCode {
    match demo() {
        Ok(what) => {
            println!("\nDEMO PASSED: {what}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("\nDEMO FAILED: {err:#}");
            ExitCode::FAILURE
        }
    }
}
