//! Pull throughput of N concurrent agents through a cache on S3 with 1 and with 2
//! replicas, on this machine: moto as the bucket, Debian's `docker-registry` replicas
//! started from what the controller renders, a round-robin proxy as the Service
//! (`tests/support/s3_cache.rs`, the setup of `tests/cache_s3.rs`). One artifact of
//! `BENCH_MIB` MiB (default 64) is pushed once; then `BENCH_AGENTS` agents (default
//! "4 8") pull it at the same time, `BENCH_ROUNDS` times (default 3), and the median
//! round is reported. `BENCH_REGISTRY` names the registry binary (default Debian's
//! `docker-registry`; distribution 3 is `make tools`' `registry`). A benchmark, not a
//! test: nothing is asserted about the times.
//!
//!   make bench-replicas
//!   (cargo build --release -p oras-agent && cargo bench --profile dev -p oras-e2e --bench replicas)

#[path = "../tests/support/s3_cache.rs"]
mod s3_cache;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use s3_cache::S3Cache;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The release agent when it is built (what users run), else the one the tests use.
fn agent_binary() -> PathBuf {
    let release = oras_testkit::oras_py::target_dir().join("release/oras-agent");
    if release.is_file() {
        release
    } else {
        oras_e2e::runner::find_agent_binary().expect("the agent binary")
    }
}

fn run_agent(agent: &Path, args: &[&str], cwd: &Path) {
    let output = Command::new(agent)
        .env("DOCKER_CONFIG", "/nonexistent-docker-config")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("running the agent");
    assert!(
        output.status.success(),
        "oras-agent {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Wall time of `agents` concurrent pulls of `reference`.
fn round(agent: &Path, reference: &str, agents: usize, work: &Path) -> Duration {
    let dirs: Vec<PathBuf> = (0..agents)
        .map(|i| work.join(format!("pull-{i}")))
        .collect();
    for dir in &dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
    let started = Instant::now();
    std::thread::scope(|scope| {
        for dir in &dirs {
            scope.spawn(move || {
                run_agent(
                    agent,
                    &[
                        "pull",
                        "--plain-http",
                        reference,
                        "-o",
                        dir.to_str().unwrap(),
                    ],
                    work,
                )
            });
        }
    });
    started.elapsed()
}

fn main() {
    let mib: usize = env_or("BENCH_MIB", 64);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let agent_counts: Vec<usize> = std::env::var("BENCH_AGENTS")
        .unwrap_or_else(|_| "4 8".into())
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let agent = agent_binary();
    let registry = std::env::var_os("BENCH_REGISTRY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(oras_testkit::registry::REGISTRY_BINARY));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "pull throughput through a cache on S3 (moto), {mib} MiB artifact, {cpus} CPUs, agent {}, registry {}",
        agent.display(),
        registry.display()
    );
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    std::fs::create_dir(&source).unwrap();
    {
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(source.join("data.bin")).unwrap());
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut block = vec![0u8; 1 << 16];
        for _ in 0..(mib << 4) {
            for chunk in block.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes());
            }
            out.write_all(&block).unwrap();
        }
        out.flush().unwrap();
    }

    let mut results: Vec<(usize, usize, f64)> = Vec::new();
    for replicas in [1usize, 2] {
        let cache = S3Cache::start_with(&registry, replicas);
        let reference = cache.reference("bench/data:v1");
        run_agent(
            &agent,
            &["push", "--plain-http", &reference, "data.bin"],
            &source,
        );
        for &agents in &agent_counts {
            // One round to warm up, then the measured ones.
            round(&agent, &reference, agents, work.path());
            let mut times: Vec<Duration> = (0..rounds)
                .map(|_| round(&agent, &reference, agents, work.path()))
                .collect();
            times.sort();
            let median = times[times.len() / 2];
            let throughput = (agents * mib) as f64 / median.as_secs_f64();
            println!(
                "replicas {replicas}, agents {agents}: median {:.2} s, {throughput:.0} MiB/s (rounds {:?})",
                median.as_secs_f64(),
                times
                    .iter()
                    .map(|t| format!("{:.2}", t.as_secs_f64()))
                    .collect::<Vec<_>>()
            );
            results.push((replicas, agents, throughput));
        }
        println!("connections per replica: {:?}", cache.service.counts());
    }
    println!("\n| agents | 1 replica | 2 replicas | 2 / 1 |\n| --- | --- | --- | --- |");
    for &agents in &agent_counts {
        let of = |r: usize| {
            results
                .iter()
                .find(|(replicas, n, _)| *replicas == r && *n == agents)
                .map_or(0.0, |(_, _, t)| *t)
        };
        println!(
            "| {agents} | {:.0} MiB/s | {:.0} MiB/s | {:.2} |",
            of(1),
            of(2),
            of(2) / of(1)
        );
    }
}
