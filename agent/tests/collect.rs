//! `oras-agent serve-registry` running a real registry (Debian's distribution 2.8) and
//! `oras-agent collect` asking it for a garbage collection: the space of pruned
//! artifacts comes back, every tagged artifact stays and pulls identical, the
//! maintenance endpoint wants its token, and pushes racing with collections either land
//! complete or fail cleanly.

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oras_contract::retention::CollectionSummary;
use oras_testkit::registry::{REGISTRY_BINARY, free_port};
use support::*;

const TOKEN: &str = "0123456789abcdef-maintenance";

/// The supervisor with its registry, stopped (SIGTERM) when dropped.
struct Supervisor {
    child: Option<Child>,
    port: u16,
    maintenance: u16,
    storage: PathBuf,
    _dir: tempfile::TempDir,
}

impl Supervisor {
    fn start(registry: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("data");
        let config = dir.path().join("config.yml");
        // As in the registry image: a config file, overridden by REGISTRY_* variables.
        std::fs::write(
            &config,
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: /nonexistent\nhttp:\n  addr: :5000\n",
        )
        .unwrap();
        let port = free_port().unwrap();
        let maintenance = free_port().unwrap();
        let child = Command::new(AGENT)
            .args(["serve-registry", "--registry"])
            .arg(registry)
            .arg("--config")
            .arg(&config)
            .args(["--maintenance", &format!("127.0.0.1:{maintenance}")])
            .env_remove("AWS_CA_BUNDLE")
            .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", &storage)
            .env("REGISTRY_STORAGE_DELETE_ENABLED", "true")
            .env("ORAS_MAINTENANCE_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let supervisor = Self {
            child: Some(child),
            port,
            maintenance,
            storage,
            _dir: dir,
        };
        supervisor.wait_listening(port);
        supervisor.wait_listening(maintenance);
        supervisor
    }

    fn wait_listening(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nothing listens on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/collect", self.maintenance)
    }

    fn stored_bytes(&self) -> u64 {
        dir_bytes(&self.storage)
    }

    /// SIGTERM; the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the supervisor ignored SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
    }
}

fn collect(url: &str, token: Option<&str>, cwd: &Path) -> std::process::Output {
    let mut command = agent();
    command.args(["collect", "--report", "report.json", url]);
    match token {
        Some(token) => command.env("ORAS_MAINTENANCE_TOKEN", token),
        None => command.env_remove("ORAS_MAINTENANCE_TOKEN"),
    };
    command.current_dir(cwd).output().unwrap()
}

fn push(host: &str, name: &str, file: &Path, cwd: &Path) -> std::process::Output {
    run_agent(
        &[
            "push",
            "--plain-http",
            &format!("{host}/{name}"),
            file.to_str().unwrap(),
        ],
        cwd,
    )
}

fn pulled(host: &str, name: &str, cwd: &Path, file: &str) -> Vec<u8> {
    let dir = cwd.join("pulled").join(name.replace([':', '/'], "_"));
    agent_ok(
        &[
            "pull",
            "--plain-http",
            &format!("{host}/{name}"),
            "-o",
            dir.to_str().unwrap(),
        ],
        cwd,
    );
    std::fs::read(dir.join(file)).unwrap()
}

#[test]
fn a_collection_frees_what_prune_deleted_and_keeps_every_tagged_artifact() {
    collection_frees_what_prune_deleted(Path::new(REGISTRY_BINARY));
}

/// The same with distribution 3 (the `registry` of `make tools`), the image's registry.
#[test]
fn distribution_3_collects_the_same_way() {
    let registry = oras_testkit::tools::tool("registry").expect("registry from `make tools`");
    collection_frees_what_prune_deleted(&registry);
}

fn collection_frees_what_prune_deleted(registry: &Path) {
    let mut supervisor = Supervisor::start(registry);
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let host = supervisor.host();
    for run in 1..=3 {
        let file = work.join(format!("run-{run}.bin"));
        write(&file, &vec![run as u8; 256 * 1024]);
        let out = push(&host, &format!("steps/a:run-{run}"), &file, work);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(1100)); // distinct creation seconds
    }
    agent_ok(&["prune", "--plain-http", "--keep-last", "1", &host], work);
    let before = supervisor.stored_bytes();

    // The endpoint wants the token.
    let refused = collect(&supervisor.url(), None, work);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("ORAS_MAINTENANCE_TOKEN"), "{stderr}");
    let refused = collect(&supervisor.url(), Some("not-the-token-at-all"), work);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    assert_eq!(supervisor.stored_bytes(), before, "nothing collected");

    let out = collect(&supervisor.url(), Some(TOKEN), work);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The two pruned layers and the two pruned manifests (stored as blobs too); no
    // untagged manifest was left for the collector itself.
    assert!(
        stdout.contains("collected 4 blobs and 0 manifests"),
        "{stdout}"
    );
    let summary =
        CollectionSummary::from_json(&std::fs::read_to_string(work.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(summary.blobs_deleted, Some(4));
    let after = supervisor.stored_bytes();
    assert_eq!(summary.bytes_freed, Some(before - after));
    assert!(before - after >= 2 * 256 * 1024, "{before} -> {after}");

    // The kept artifact pulls identical; the registry takes pushes again.
    assert_eq!(
        pulled(&host, "steps/a:run-3", work, "run-3.bin"),
        vec![3u8; 256 * 1024]
    );
    let file = work.join("after.bin");
    write(&file, b"after the collection\n");
    let out = push(&host, "steps/a:after", &file, work);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // SIGTERM stops the registry with the supervisor.
    let status = supervisor.terminate();
    assert!(status.success(), "{status}");
    assert!(TcpStream::connect(("127.0.0.1", supervisor.port)).is_err());
}

#[test]
fn pushes_racing_collections_land_complete_or_fail_cleanly() {
    let supervisor = Supervisor::start(Path::new(REGISTRY_BINARY));
    let work = tempfile::tempdir().unwrap();
    let work = work.path().to_path_buf();
    let host = supervisor.host();
    let collecting = Arc::new(AtomicBool::new(true));
    let windows: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();

    // Pushes one after another, each of a 1 MiB file of its own, until the collections
    // are over; each records when it ran and how it ended.
    let pusher = {
        let collecting = collecting.clone();
        let (host, work) = (host.clone(), work.clone());
        std::thread::spawn(move || {
            let mut results = Vec::new();
            let mut n = 0u32;
            while collecting.load(Ordering::SeqCst) || n < 3 {
                n += 1;
                let file = work.join(format!("push-{n}.bin"));
                write(&file, &vec![(n % 251) as u8; 1 << 20]);
                let started = Instant::now();
                let out = push(&host, &format!("race/p:{n}"), &file, &work);
                results.push((n, started, Instant::now(), out));
            }
            results
        })
    };
    for _ in 0..3 {
        let started = Instant::now();
        let out = collect(&supervisor.url(), Some(TOKEN), &work);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        windows.lock().unwrap().push((started, Instant::now()));
        std::thread::sleep(Duration::from_millis(300));
    }
    collecting.store(false, Ordering::SeqCst);
    let results = pusher.join().unwrap();

    let windows = windows.lock().unwrap().clone();
    let overlapping = results
        .iter()
        .filter(|(_, start, end, _)| windows.iter().any(|(a, b)| start < b && a < end))
        .count();
    assert!(overlapping > 0, "no push ran during a collection");
    for (n, _, _, out) in &results {
        let name = format!("race/p:{n}");
        let tags = registry_tags(&host, "race/p");
        if out.status.success() {
            assert_eq!(
                pulled(&host, &name, &work, &format!("push-{n}.bin")),
                vec![(n % 251) as u8; 1 << 20],
                "{name}"
            );
        } else {
            // A clean failure: an error that says why, and no tag on anything partial.
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains(&name), "{stderr}");
            if tags.contains(&n.to_string()) {
                assert_eq!(
                    pulled(&host, &name, &work, &format!("push-{n}.bin")),
                    vec![(n % 251) as u8; 1 << 20]
                );
            }
        }
    }
}

fn registry_tags(host: &str, repository: &str) -> Vec<String> {
    let out = agent_ok(
        &["tags", "--plain-http", &format!("{host}/{repository}")],
        Path::new("."),
    );
    out.lines().map(str::to_string).collect()
}
