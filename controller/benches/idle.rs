//! Idle memory and reconcile count of the real `oras-controller` binary with 100
//! OrasCaches, against a small fake API server on 127.0.0.1 (there is no cluster here).
//!
//!   cargo bench -p oras-controller --bench idle
//!
//! The fake server (`tests/support/fake_api.rs`) lists and watches OrasCaches and the
//! owned StatefulSets and Services (metadata only, as the controller asks), answers
//! server-side applies with the applied object, and sends the watch events a real API
//! server would: ADDED for a new object, MODIFIED for a changed one or a changed status,
//! nothing for an apply that changes nothing. The bench reads the controller's RSS from
//! /proc and its reconcile count from its own /metrics.
//!
//! Phases: create (100 caches reconciled), every registry pod turns ready, idle, one spec
//! change, SIGTERM.

#[path = "../tests/support/fake_api.rs"]
mod fake_api;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_api::{FakeApi, Kind};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CACHES: usize = 100;
/// How long reconcile counts must stay still to call the controller settled.
const QUIET: Duration = Duration::from_secs(3);
/// Idle period before the idle figures are read.
const IDLE: Duration = Duration::from_secs(10);
/// Upper bound of any wait: the bench stops by itself.
const PATIENCE: Duration = Duration::from_secs(120);

/// The controller's `oras_controller_reconciles_total`.
async fn reconciles(metrics: SocketAddr) -> Option<u64> {
    let mut conn = TcpStream::connect(metrics).await.ok()?;
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oras_controller_reconciles_total "))
        .and_then(|n| n.trim().parse().ok())
}

/// Waits until the reconcile count is at least `min` and has not moved for QUIET.
async fn settle(metrics: SocketAddr, min: u64) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    let mut last = (0, Instant::now());
    loop {
        assert!(Instant::now() < deadline, "the controller did not settle");
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(now) = reconciles(metrics).await else {
            continue;
        };
        if now != last.0 {
            last = (now, Instant::now());
        } else if now >= min && last.1.elapsed() >= QUIET {
            return now;
        }
    }
}

fn rss_kib(child: &Child) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing useful.
    if !std::env::args().any(|a| a == "--bench") {
        println!("idle: run with `cargo bench -p oras-controller --bench idle`");
        return;
    }
    let api = FakeApi::start(CACHES).await;
    let kubeconfig =
        std::env::temp_dir().join(format!("oras-bench-{}.kubeconfig", std::process::id()));
    std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();
    let metrics = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oras-controller"))
        .arg(format!("--metrics-addr={metrics}"))
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("starting oras-controller");

    // Every cache is reconciled once: StatefulSet and Service applied, status written.
    let started = Instant::now();
    let created = settle(metrics, CACHES as u64).await;
    let settle_time = started.elapsed() - QUIET;
    let (rss_settled, _) = rss_kib(&child);

    // Every registry pod turns ready: one status change per StatefulSet.
    api.set_ready(1);
    let after_ready = settle(metrics, created + CACHES as u64).await;
    let ready_reconciles = after_ready - created;
    let ready_caches = api
        .objects(Kind::Cache)
        .iter()
        .filter(|o| o["status"]["conditions"][0]["status"] == "True")
        .count();

    // Idle.
    tokio::time::sleep(IDLE).await;
    let after_idle = reconciles(metrics).await.unwrap();
    let idle_reconciles = after_idle - after_ready;
    let (rss_idle, hwm) = rss_kib(&child);

    // One spec change: the port of one cache.
    api.modify(Kind::Cache, "team-007/oras", |cache| {
        cache["spec"]["port"] = json!(6000);
        cache["metadata"]["generation"] = json!(2);
    });
    let after_change = settle(metrics, after_idle + 1).await;
    let change_reconciles = after_change - after_idle;

    // Graceful stop.
    let term = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    let exit = child.wait().unwrap();
    let _ = std::fs::remove_file(&kubeconfig);

    let mut requests: Vec<_> = api.requests().into_iter().collect();
    requests.sort();
    println!(
        "oras-controller idle bench, {CACHES} OrasCaches, fake API server on {}",
        api.addr
    );
    println!(
        "  reconciles to create all caches      {created} ({:.2} per cache, settled in {:.1} s)",
        created as f64 / CACHES as f64,
        settle_time.as_secs_f64()
    );
    println!(
        "  reconciles when all pods turn ready  {ready_reconciles} ({ready_caches} caches Ready)"
    );
    println!(
        "  reconciles during {} s idle          {idle_reconciles}",
        IDLE.as_secs()
    );
    println!("  reconciles for one spec change       {change_reconciles}");
    println!(
        "  RSS after creating the caches        {:.1} MiB",
        rss_settled as f64 / 1024.0
    );
    println!(
        "  RSS after idling                     {:.1} MiB (peak {:.1} MiB)",
        rss_idle as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!("  exit on SIGTERM                      {exit}");
    println!("  requests served:");
    for (what, n) in requests {
        println!("    {what:<24} {n}");
    }
}
