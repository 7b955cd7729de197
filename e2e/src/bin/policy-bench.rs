//! `make bench-policy`: the cost of one `validate` call through the waPC host, for the
//! original's hello-world Job (and its accept path) and for a pod of 20 containers, and
//! the size of the wasm; the same Job through the previous policy (`REFERENCE_POLICY`,
//! built by scripts/build-reference.sh) in the same run; where the time of the Job's
//! call goes (its phases timed natively); then the added cost of one image lookup: the
//! same Job without `command`, its image's entrypoint fetched through the host from a
//! registry on 127.0.0.1.
//!
//! Each call is timed from the payload's bytes to the answer's bytes, as policy-server
//! pays it: the host's own JSON work stays out of the figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use oras_e2e::fixtures::load_cases;
use oras_e2e::oci_host::{ImageRegistry, Sources};
use oras_e2e::policy_host::{CompiledPolicy, PolicyHost};
use oras_e2e::workspace;
use oras_policy::evaluate::{AdmissionRequest, Outcome, evaluate};
use oras_policy::settings::Settings;
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
    let mut deleted = job.request().clone();
    deleted["operation"] = json!("DELETE");
    measure_accepted(&host, "its accept path (DELETE)", &job.settings, &deleted)?;
    if let Some(reference) = std::env::var_os("REFERENCE_POLICY") {
        let previous = CompiledPolicy::load(std::path::Path::new(&reference))?.instantiate()?;
        let size = std::fs::metadata(&reference)?.len();
        let before = measure(
            &previous,
            &format!("previous policy ({size} bytes), the same Job"),
            &job.settings,
            job.request(),
        )?;
        println!(
            "hello-world Job: {:.2}x the previous policy's time",
            with_command.as_secs_f64() / before.as_secs_f64()
        );
    }
    phases(&job.settings, job.request())?;
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

/// Times `validate` on `request`, which it must mutate; returns the median.
fn measure(host: &PolicyHost, label: &str, settings: &Value, request: &Value) -> Result<Duration> {
    let first = host.validate(settings, request)?;
    anyhow::ensure!(
        first["accepted"] == true && !first["mutated_object"].is_null(),
        "{label}: not mutated: {first}"
    );
    time_calls(host, label, settings, request)
}

/// Times `validate` on `request`, which it must accept as it is; returns the median.
fn measure_accepted(
    host: &PolicyHost,
    label: &str,
    settings: &Value,
    request: &Value,
) -> Result<Duration> {
    let first = host.validate(settings, request)?;
    anyhow::ensure!(
        first["accepted"] == true && first["mutated_object"].is_null(),
        "{label}: not accepted as it is: {first}"
    );
    time_calls(host, label, settings, request)
}

fn time_calls(
    host: &PolicyHost,
    label: &str,
    settings: &Value,
    request: &Value,
) -> Result<Duration> {
    let payload = serde_json::to_vec(&json!({"settings": settings, "request": request}))?;
    let mut times: Vec<Duration> = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        host.call_raw("validate", &payload)?;
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

/// Where a `validate` call's time goes, each phase timed on its own in a native build of
/// the policy (the wasm build runs the same code more slowly, in about the same
/// proportions): reading the request, reading and checking the settings, deciding and
/// building the containers, writing the answer.
fn phases(settings: &Value, request: &Value) -> Result<()> {
    let request_bytes = serde_json::to_vec(request)?;
    let settings_bytes = serde_json::to_vec(settings)?;
    let parsed: AdmissionRequest = serde_json::from_slice(&request_bytes)?;
    let checked: Settings = serde_json::from_slice(&settings_bytes)?;
    let no_lookup: oras_policy::image::ImageLookup = &|_| Err("no lookups here".into());
    let Outcome::Mutate { object, .. } = evaluate(parsed.clone(), &checked, no_lookup) else {
        anyhow::bail!("the Job is not mutated natively");
    };
    let time = |f: &mut dyn FnMut()| {
        let mut times: Vec<Duration> = (0..ROUNDS)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect();
        times.sort();
        times[ROUNDS / 2]
    };
    let read_request = time(&mut || {
        std::hint::black_box(serde_json::from_slice::<AdmissionRequest>(&request_bytes).ok());
    });
    let read_settings = time(&mut || {
        let settings = serde_json::from_slice::<Settings>(&settings_bytes).ok();
        std::hint::black_box(settings.map(|s| kubewarden_validate(&s)));
    });
    let decide = time(&mut || {
        std::hint::black_box(evaluate(parsed.clone(), &checked, no_lookup));
    });
    let clone_only = time(&mut || {
        std::hint::black_box(parsed.clone());
    });
    let write = time(&mut || {
        std::hint::black_box(serde_json::to_vec(&object).ok());
    });
    let decide = decide.saturating_sub(clone_only);
    let total = read_request + read_settings + decide + write;
    println!("where a hello-world Job's validate goes (native build, median of {ROUNDS}):");
    for (phase, spent) in [
        ("read the request", read_request),
        ("read and check the settings", read_settings),
        ("decide and build the containers", decide),
        ("write the mutated object", write),
    ] {
        println!(
            "  {phase:<34} {:>6.1} µs  {:>3.0}%",
            micros(spent),
            spent.as_secs_f64() * 100.0 / total.as_secs_f64()
        );
    }
    Ok(())
}

fn kubewarden_validate(settings: &Settings) -> Result<(), String> {
    use kubewarden_policy_sdk::settings::Validatable;
    settings.validate()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
