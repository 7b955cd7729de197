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

  --metrics-addr    where /metrics, /healthz and /readyz are served
                    (env ORAS_CONTROLLER_METRICS_ADDR, default 0.0.0.0:8080)
  --cluster-domain  DNS domain of the cluster, used in status.endpoint
                    (env ORAS_CONTROLLER_CLUSTER_DOMAIN, default cluster.local)

Logging follows RUST_LOG (default info). POD_NAME, when set, names the instance
in the events the controller publishes.";

#[derive(Debug, PartialEq)]
struct Options {
    metrics_addr: SocketAddr,
    cluster_domain: String,
}

fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Options, String> {
    let mut metrics_addr =
        env("ORAS_CONTROLLER_METRICS_ADDR").unwrap_or_else(|| "0.0.0.0:8080".into());
    let mut cluster_domain =
        env("ORAS_CONTROLLER_CLUSTER_DOMAIN").unwrap_or_else(|| "cluster.local".into());
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
            None => (arg, None),
        };
        let target = match flag.as_str() {
            "--metrics-addr" => &mut metrics_addr,
            "--cluster-domain" => &mut cluster_domain,
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
    Ok(Options {
        metrics_addr,
        cluster_domain,
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

    let options = match parse(std::env::args().skip(1), |k| std::env::var(k).ok()) {
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
