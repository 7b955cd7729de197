//! `make bench-policy`: the cost of one `validate` call through the waPC host, for the
//! original's hello-world Job and for a pod of 20 containers, and the size of the wasm;
//! then the added cost of one image lookup: the same Job without `command`, its image's
//! entrypoint fetched through the host from a registry on 127.0.0.1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use oras_e2e::fixtures::load_cases;
use oras_e2e::oci_host::{ImageRegistry, Sources};
use oras_e2e::policy_host::{CompiledPolicy, PolicyHost};
use oras_e2e::workspace;
use oras_testkit::{ContainerImage, Registry};
use serde_json::{Value, json};

const ROUNDS: usize = 2000;

fn main() -> Result<()> {
    let wasm = workspace::policy_wasm();
    let size = std::fs::metadata(&wasm)?.len();
    println!("policy.wasm: {size} bytes ({:.2} MB)", size as f64 / 1e6);
    let registry = Registry::start()?;
    registry.push_image(
        "bench/echo",
        "1",
        &ContainerImage::new(&["echo"], &["blueberry"]),
    )?;
    let lookups = ImageRegistry::new(Sources::insecure(&[&registry.host()]))?;
    let host = CompiledPolicy::load(&wasm)?.instantiate_with(Some(Arc::new(lookups)))?;
    let cases = load_cases(&workspace::requests_dir())?;
    let job = cases
        .iter()
        .find(|c| c.name == "breakfast-job-output-pipe")
        .context("the breakfast Job fixture is missing")?;
    let with_command = measure(
        &host,
        "hello-world Job (breakfast)",
        &job.settings,
        job.request(),
    )?;
    measure(
        &host,
        "pod with 20 containers",
        &json!({}),
        &twenty_container_pod(),
    )?;
    let calls = host.host_calls();
    let mut without_command = job.request().clone();
    let launcher = &mut without_command["object"]["spec"]["template"]["spec"]["containers"][0];
    launcher
        .as_object_mut()
        .context("the breakfast Job has no container")?
        .remove("command");
    launcher["image"] = json!(registry.reference("bench/echo:1"));
    let looked_up = measure(
        &host,
        "the same Job without command (one image lookup, local registry)",
        &job.settings,
        &without_command,
    )?;
    anyhow::ensure!(
        host.host_calls() - calls == ROUNDS + 1,
        "every validate call without command makes one host call"
    );
    println!(
        "one image lookup: +{:.1} µs per validate call (median), {:.1}x the Job with command",
        micros(looked_up) - micros(with_command),
        looked_up.as_secs_f64() / with_command.as_secs_f64()
    );
    Ok(())
}

fn twenty_container_pod() -> Value {
    let containers: Vec<Value> = (0..20)
        .map(|i| json!({"name": format!("c{i}"), "image": "busybox:1.36", "command": ["sh", "-c", format!("echo {i}")],
                        "env": [{"name": "N", "value": i.to_string()}], "resources": {"requests": {"cpu": "10m"}}}))
        .collect();
    json!({
        "uid": "bench", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "namespace": "default", "operation": "CREATE",
        "object": {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "wide", "namespace": "default", "annotations": {
                "oras.converged-computing.github.io/container": "c7",
                "oras.converged-computing.github.io/input-uri": "bench/in:1",
                "oras.converged-computing.github.io/output-uri": "bench/out:1",
                "oras.converged-computing.github.io/output-path": "out"}},
            "spec": {"containers": containers}}
    })
}

/// Times `validate` on `request`; returns the median.
fn measure(host: &PolicyHost, label: &str, settings: &Value, request: &Value) -> Result<Duration> {
    let first = host.validate(settings, request)?;
    anyhow::ensure!(
        first["accepted"] == true && !first["mutated_object"].is_null(),
        "{label}: not mutated: {first}"
    );
    let mut times: Vec<Duration> = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        host.validate(settings, request)?;
        times.push(start.elapsed());
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / ROUNDS as u32;
    println!(
        "{label}: {ROUNDS} validate calls, median {:.1} µs, p99 {:.1} µs, mean {:.1} µs",
        micros(times[ROUNDS / 2]),
        micros(times[ROUNDS * 99 / 100]),
        micros(mean)
    );
    Ok(times[ROUNDS / 2])
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
