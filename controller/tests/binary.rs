//! The `oras-controller` binary itself: options, the HTTP endpoints and the graceful stop
//! on SIGTERM, against the fake API server on 127.0.0.1.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::fake_api::{FakeApi, Kind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound of every wait: a broken binary fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(60);

async fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut conn = TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.ok()?;
    Some(answer)
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "gave up waiting for {what}");
}

/// The controller process; killed if the test fails before stopping it.
struct Running(Option<std::process::Child>);

impl Running {
    fn id(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn help_and_bad_options() {
    let bin = env!("CARGO_BIN_EXE_oras-controller");
    let help = Command::new(bin).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--cluster-domain"));
    let bad = Command::new(bin).arg("--nope").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown argument \"--nope\""));
}

#[tokio::test]
async fn serves_probes_and_metrics_reconciles_and_stops_on_sigterm() {
    let api = FakeApi::start(1).await;
    let dir = std::env::temp_dir().join(format!("oras-controller-binary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();
    // A free port on loopback for the controller's HTTP server.
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();

    let child = Command::new(env!("CARGO_BIN_EXE_oras-controller"))
        .arg("--metrics-addr")
        .arg(metrics.to_string())
        .arg("--cluster-domain=example.internal")
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("starting oras-controller");
    let mut child = Running(Some(child));

    until("/readyz 200", async || {
        get(metrics, "/readyz")
            .await
            .is_some_and(|a| a.starts_with("HTTP/1.1 200"))
    })
    .await;
    until("one reconcile in /metrics", async || {
        get(metrics, "/metrics")
            .await
            .is_some_and(|t| t.contains("oras_controller_reconciles_total 1\n"))
    })
    .await;
    let cache = api.object(Kind::Cache, "team-000/oras").unwrap();
    assert_eq!(
        cache["status"]["endpoint"],
        "oras.team-000.svc.example.internal:5000"
    );
    let healthz = get(metrics, "/healthz").await.unwrap();
    assert!(healthz.starts_with("HTTP/1.1 200"), "{healthz}");
    let text = get(metrics, "/metrics").await.unwrap();
    for line in [
        "content-type: application/openmetrics-text; version=1.0.0",
        "# TYPE oras_controller_reconcile_duration_seconds histogram\n",
        "oras_controller_reconcile_duration_seconds_bucket{le=\"+Inf\"} 1\n",
        "oras_controller_reconcile_duration_seconds_count 1\n",
        "# EOF\n",
    ] {
        assert!(
            text.to_lowercase().contains(&line.to_lowercase()),
            "{line:?} in:\n{text}"
        );
    }

    let term = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    let mut process = child.0.take().unwrap();
    let exit = tokio::task::spawn_blocking(move || process.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit}");
    let _ = std::fs::remove_dir_all(&dir);
}
