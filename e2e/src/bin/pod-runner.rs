//! Runs Kubernetes pods on this machine the way the kubelet does (see `oras_e2e::runner`).
//!
//! ```text
//! pod-runner [OPTIONS] FILE...
//!   FILE                 a Pod, Job or CronJob (YAML or JSON; an AdmissionReview's object)
//!   --admit              start a registry on 127.0.0.1, point each FILE at it (registry
//!                        annotation), send it through policy.wasm, then run it; FILEs run
//!                        in order as the steps of one workflow, stopping at the first
//!                        failed pod. Without it, FILE is run as given (already mutated).
//!   --policy PATH        the compiled policy (default: $ORAS_POLICY_WASM or ./policy.wasm)
//!   --secret NAME=PATH   a Secret for envFrom/secretKeyRef: a directory of key files or a
//!                        KEY=VALUE file; repeatable
//!   --root DIR           where pods' volumes, directories and logs go (default: a temp dir,
//!                        kept and printed)
//!   --grace SECONDS      replaces terminationGracePeriodSeconds
//!   --env KEY=VALUE      environment given to every container first; repeatable
//! ```
//! Exits 0 when every pod Succeeded, 1 when one Failed, 2 on a usage or setup error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use oras_e2e::admission::Admitted;
use oras_e2e::local::Local;
use oras_e2e::pod::{pod_of, read_object};
use oras_e2e::runner::{Phase, PodReport, PodRunner, RunnerConfig};
use oras_e2e::workspace;

struct Options {
    files: Vec<PathBuf>,
    admit: bool,
    policy: PathBuf,
    root: Option<PathBuf>,
    config: RunnerConfig,
}

fn parse() -> Result<Options> {
    let mut config = RunnerConfig::detect()?;
    let mut options = Options {
        files: Vec::new(),
        admit: false,
        policy: workspace::policy_wasm(),
        root: None,
        config: config.clone(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--admit" => options.admit = true,
            "--policy" => options.policy = value("--policy")?.into(),
            "--root" => options.root = Some(value("--root")?.into()),
            "--grace" => {
                let seconds: u64 = value("--grace")?.parse().context("--grace SECONDS")?;
                config.grace_period = Some(Duration::from_secs(seconds));
            }
            "--secret" => {
                let pair = value("--secret")?;
                let (name, path) = pair.split_once('=').context("--secret NAME=PATH")?;
                config.secrets.add_from_path(name, path.as_ref())?;
            }
            "--env" => {
                let pair = value("--env")?;
                let (key, val) = pair.split_once('=').context("--env KEY=VALUE")?;
                config.node_env.push((key.into(), val.into()));
            }
            "-h" | "--help" => {
                println!(
                    "usage: pod-runner [--admit] [--policy PATH] [--secret NAME=PATH]... [--root DIR] [--grace SECONDS] [--env KEY=VALUE]... FILE..."
                );
                std::process::exit(0);
            }
            flag if flag.starts_with("--") => bail!("unknown option {flag}"),
            file => options.files.push(file.into()),
        }
    }
    if options.files.is_empty() {
        bail!("no pod to run: pod-runner [OPTIONS] FILE...");
    }
    options.config = config;
    Ok(options)
}

fn print_report(report: &PodReport) {
    for container in &report.containers {
        println!("--- logs of {} ({})", container.name, container.role);
        print!("{}", container.log());
    }
    print!("{}", report.summary());
    println!("  files: {}", report.root.display());
}

fn print_patch(admitted: &Admitted) -> Result<()> {
    println!("patch applied by the policy:");
    println!("{}", serde_json::to_string_pretty(&admitted.patch)?);
    for warning in &admitted.warnings {
        println!("warning: {warning}");
    }
    Ok(())
}

fn run() -> Result<bool> {
    let options = parse()?;
    let base = match &options.root {
        Some(root) => root.clone(),
        None => tempfile::Builder::new()
            .prefix("pod-runner.")
            .tempdir()?
            .keep(),
    };
    if options.admit {
        let local = Local::start(&options.policy, options.config)?;
        println!("registry: {}", local.registry.host());
        for file in &options.files {
            println!("\n=== {}", file.display());
            let object = read_object(file)?;
            let admitted = local.admit(&object)?;
            print_patch(&admitted)?;
            let pod = pod_of(&admitted.object)?;
            let report = local.runner().run(&pod, &base.join(&pod.name))?;
            print_report(&report);
            if report.phase != Phase::Succeeded {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    let runner = PodRunner::new(options.config);
    let mut all = true;
    for file in &options.files {
        println!("\n=== {}", file.display());
        let pod = pod_of(&read_object(file)?)?;
        let report = runner.run(&pod, &base.join(&pod.name))?;
        print_report(&report);
        all &= report.phase == Phase::Succeeded;
    }
    Ok(all)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("pod-runner: {err:#}");
            ExitCode::from(2)
        }
    }
}
