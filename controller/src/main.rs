//! `oras-controller`: reconciles OrasCache resources of every namespace, using the
//! in-cluster service account or the ambient kubeconfig.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use oras_controller::metrics::Metrics;
use oras_controller::server::{self, Probes};
use oras_controller::{Context, Settings, controller};

const USAGE: &str = "usage: oras-controller [--metrics-addr HOST:PORT] [--cluster-domain DOMAIN]
                      [--gate-image IMAGE] [--agent-image IMAGE]
       oras-controller gate --listen HOST:PORT --upstream HOST:PORT --htpasswd FILE

  --metrics-addr    where /metrics, /healthz and /readyz are served
                    (env ORAS_CONTROLLER_METRICS_ADDR, default 0.0.0.0:8080)
  --cluster-domain  DNS domain of the cluster, used in status.endpoint
                    (env ORAS_CONTROLLER_CLUSTER_DOMAIN, default cluster.local)
  --gate-image      image of the gate in front of the registry of caches with
                    auth.enabled: this controller's own image
                    (env ORAS_CONTROLLER_GATE_IMAGE, default the release's image)
  --agent-image     image of the prune CronJob of caches with retention
                    (env ORAS_CONTROLLER_AGENT_IMAGE, default the release's agent)

gate: the registry port of a cache with auth.enabled (run in the registry pod):
  forwards to the registry at --upstream, refusing writes made with the pull
  password of the htpasswd FILE.

Logging follows RUST_LOG (default info). POD_NAME, when set, names the instance
in the events the controller publishes.";

#[derive(Debug, PartialEq)]
struct Options {
    metrics_addr: SocketAddr,
    cluster_domain: String,
    gate_image: String,
    agent_image: String,
}

/// Options of `oras-controller gate`.
#[derive(Debug, PartialEq)]
struct GateOptions {
    listen: SocketAddr,
    upstream: SocketAddr,
    htpasswd: std::path::PathBuf,
}

fn parse_gate(args: impl IntoIterator<Item = String>) -> Result<GateOptions, String> {
    let (mut listen, mut upstream, mut htpasswd) = (None, None, None);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
            None => (arg, None),
        };
        let target = match flag.as_str() {
            "--listen" => &mut listen,
            "--upstream" => &mut upstream,
            "--htpasswd" => &mut htpasswd,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("gate: unknown argument {other:?}")),
        };
        *target = Some(
            inline
                .or_else(|| args.next())
                .ok_or_else(|| format!("gate: {flag} needs a value"))?,
        );
    }
    let address = |flag: &str, value: Option<String>| -> Result<SocketAddr, String> {
        let value = value.ok_or_else(|| format!("gate: {flag} is required"))?;
        value
            .parse()
            .map_err(|e| format!("gate: {flag} {value:?}: {e}"))
    };
    Ok(GateOptions {
        listen: address("--listen", listen)?,
        upstream: address("--upstream", upstream)?,
        htpasswd: htpasswd.ok_or("gate: --htpasswd is required")?.into(),
    })
}

async fn run_gate(options: GateOptions) -> ExitCode {
    let text = match std::fs::read_to_string(&options.htpasswd) {
        Ok(text) => text,
        Err(error) => {
            eprintln!(
                "oras-controller gate: reading {}: {error}",
                options.htpasswd.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let gate = match oras_controller::gate::Gate::new(&text, options.upstream) {
        Ok(gate) => Arc::new(gate),
        Err(message) => {
            eprintln!(
                "oras-controller gate: {}: {message}",
                options.htpasswd.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(options.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "oras-controller gate: listening on {}: {error}",
                options.listen
            );
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(listen = %options.listen, upstream = %options.upstream, "gate serving");
    oras_controller::gate::serve(listener, gate, async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    })
    .await;
    ExitCode::SUCCESS
}

fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Options, String> {
    let mut metrics_addr =
        env("ORAS_CONTROLLER_METRICS_ADDR").unwrap_or_else(|| "0.0.0.0:8080".into());
    let mut cluster_domain =
        env("ORAS_CONTROLLER_CLUSTER_DOMAIN").unwrap_or_else(|| "cluster.local".into());
    let mut gate_image =
        env("ORAS_CONTROLLER_GATE_IMAGE").unwrap_or_else(|| Settings::default().gate_image);
    let mut agent_image =
        env("ORAS_CONTROLLER_AGENT_IMAGE").unwrap_or_else(|| Settings::default().agent_image);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
            None => (arg, None),
        };
        let target = match flag.as_str() {
            "--metrics-addr" => &mut metrics_addr,
            "--cluster-domain" => &mut cluster_domain,
            "--gate-image" => &mut gate_image,
            "--agent-image" => &mut agent_image,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        };
        *target = match inline.or_else(|| args.next()) {
            Some(value) => value,
            None => return Err(format!("{flag} needs a value")),
        };
    }
    let metrics_addr = metrics_addr
        .parse()
        .map_err(|e| format!("--metrics-addr {metrics_addr:?}: {e}"))?;
    let cluster_domain = cluster_domain.trim_matches('.').to_string();
    if cluster_domain.is_empty() {
        return Err("--cluster-domain must not be empty".into());
    }
    for (flag, image) in [
        ("--gate-image", &gate_image),
        ("--agent-image", &agent_image),
    ] {
        if image.trim().is_empty() || image.contains(char::is_whitespace) {
            return Err(format!("{flag} {image:?} is not an image reference"));
        }
    }
    Ok(Options {
        metrics_addr,
        cluster_domain,
        gate_image,
        agent_image,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("gate") {
        return match parse_gate(args.skip(1)) {
            Ok(options) => run_gate(options).await,
            Err(message) if message.is_empty() => {
                println!("{USAGE}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("oras-controller: {message}\n\n{USAGE}");
                ExitCode::from(2)
            }
        };
    }
    let options = match parse(args, |k| std::env::var(k).ok()) {
        Ok(options) => options,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("oras-controller: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(error) => {
            eprintln!("oras-controller: no Kubernetes configuration: {error}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(options.metrics_addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "oras-controller: listening on {}: {error}",
                options.metrics_addr
            );
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %options.metrics_addr, domain = %options.cluster_domain, "starting");

    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let settings = Settings {
        cluster_domain: options.cluster_domain,
        gate_image: options.gate_image,
        agent_image: options.agent_image,
    };
    let ctx = Arc::new(Context::new(
        client,
        settings,
        metrics.clone(),
        std::env::var("POD_NAME").ok(),
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let probes = Probes {
        metrics,
        ready: ready.clone(),
    };
    let web = tokio::spawn(server::serve(listener, probes, async {
        let _ = stopped.await;
    }));

    // Returns after SIGTERM or SIGINT, once the running reconciles have finished.
    controller::run(ctx, ready, controller::Shutdown::Signal).await;
    let _ = stop.send(());
    let _ = web.await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults() {
        let o = parse(args(&[]), |_| None).unwrap();
        assert_eq!(o.metrics_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(o.cluster_domain, "cluster.local");
        assert_eq!(
            o.gate_image,
            format!(
                "ghcr.io/converged-computing/oras-operator-rs/oras-controller:{}",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[test]
    fn the_agent_image_comes_from_the_flag_or_the_environment() {
        let env = |k: &str| (k == "ORAS_CONTROLLER_AGENT_IMAGE").then(|| "env/agent:1".to_string());
        assert_eq!(parse(args(&[]), env).unwrap().agent_image, "env/agent:1");
        assert_eq!(
            parse(args(&["--agent-image", "flag/agent@sha256:cd"]), env)
                .unwrap()
                .agent_image,
            "flag/agent@sha256:cd"
        );
        assert!(
            parse(args(&["--agent-image="]), |_| None)
                .unwrap_err()
                .contains("--agent-image \"\"")
        );
        assert_eq!(
            parse(args(&[]), |_| None).unwrap().agent_image,
            format!(
                "ghcr.io/converged-computing/oras-operator-rs/oras-agent:{}",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[test]
    fn the_gate_image_comes_from_the_flag_or_the_environment() {
        let env = |k: &str| (k == "ORAS_CONTROLLER_GATE_IMAGE").then(|| "env/gate:1".to_string());
        assert_eq!(parse(args(&[]), env).unwrap().gate_image, "env/gate:1");
        assert_eq!(
            parse(args(&["--gate-image=flag/gate@sha256:ab"]), env)
                .unwrap()
                .gate_image,
            "flag/gate@sha256:ab"
        );
        assert!(
            parse(args(&["--gate-image", "a b"]), |_| None)
                .unwrap_err()
                .contains("--gate-image \"a b\"")
        );
    }

    #[test]
    fn gate_arguments_are_addresses_and_a_file() {
        let o = parse_gate(args(&[
            "--listen",
            "0.0.0.0:5000",
            "--upstream=127.0.0.1:5001",
            "--htpasswd",
            "/etc/oras-cache/auth/htpasswd",
        ]))
        .unwrap();
        assert_eq!(o.listen, "0.0.0.0:5000".parse().unwrap());
        assert_eq!(o.upstream, "127.0.0.1:5001".parse().unwrap());
        assert_eq!(
            o.htpasswd,
            std::path::PathBuf::from("/etc/oras-cache/auth/htpasswd")
        );
        assert_eq!(
            parse_gate(args(&["--listen", "0.0.0.0:5000"])).unwrap_err(),
            "gate: --upstream is required"
        );
        assert!(
            parse_gate(args(&[
                "--listen",
                "here",
                "--upstream",
                "127.0.0.1:1",
                "--htpasswd",
                "f"
            ]))
            .unwrap_err()
            .contains("gate: --listen \"here\"")
        );
    }

    #[test]
    fn flags_beat_the_environment() {
        let env = |k: &str| match k {
            "ORAS_CONTROLLER_METRICS_ADDR" => Some("127.0.0.1:9000".to_string()),
            "ORAS_CONTROLLER_CLUSTER_DOMAIN" => Some("env.local".to_string()),
            _ => None,
        };
        let o = parse(args(&[]), env).unwrap();
        assert_eq!(o.metrics_addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(o.cluster_domain, "env.local");
        let o = parse(
            args(&[
                "--cluster-domain",
                "k8s.example.",
                "--metrics-addr=[::1]:8081",
            ]),
            env,
        )
        .unwrap();
        assert_eq!(o.cluster_domain, "k8s.example");
        assert_eq!(o.metrics_addr, "[::1]:8081".parse().unwrap());
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        assert!(
            parse(args(&["--what"]), |_| None)
                .unwrap_err()
                .contains("--what")
        );
        assert!(
            parse(args(&["--metrics-addr"]), |_| None)
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            parse(args(&["--metrics-addr", "nope"]), |_| None)
                .unwrap_err()
                .contains("nope")
        );
        assert_eq!(parse(args(&["--help"]), |_| None).unwrap_err(), "");
    }
}
