//! Progress of large transfers: bars with bytes, rate and time left on a terminal (a
//! pseudo-terminal from util-linux's `script`), nothing at all otherwise.

mod support;

use std::path::Path;
use std::process::Command;

use support::registry::TestRegistry;
use support::*;

/// 9 MiB, above the size that gets a bar.
const BIG: usize = 9 << 20;

/// Run the agent with `args` in `cwd` on a pseudo-terminal; returns all it wrote there.
fn on_a_terminal(args: &[&str], cwd: &Path) -> String {
    let mut line = support::AGENT.to_string();
    for arg in args {
        line.push_str(&format!(" '{arg}'"));
    }
    let agent = agent();
    let output = Command::new("script")
        .args(["--quiet", "--return", "--command", &line, "/dev/null"])
        .envs(agent.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env_remove("ORAS_USER")
        .env_remove("ORAS_PUSH_PASS")
        .env_remove("ORAS_PULL_PASS")
        .env("TERM", "xterm")
        .current_dir(cwd)
        .output()
        .expect("run script (util-linux)");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{line}: {text}");
    text
}

#[test]
fn large_transfers_show_a_bar_on_a_terminal_and_nothing_otherwise() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    write(&work.path().join("big.bin"), &vec![7u8; BIG]);
    let reference = registry.reference("progress/big:v1");

    let pushed = on_a_terminal(
        &["push", "--plain-http", &reference, "big.bin"],
        work.path(),
    );
    assert!(pushed.contains("pushing big.bin"), "{pushed}");
    assert!(pushed.contains("9.00 MiB"), "{pushed}");
    assert!(pushed.contains("/s eta"), "{pushed}");
    let pulled = on_a_terminal(
        &["pull", "--plain-http", &reference, "-o", "out"],
        work.path(),
    );
    assert!(pulled.contains("pulling big.bin"), "{pulled}");
    assert!(pulled.contains("9.00 MiB"), "{pulled}");

    // Not a terminal: the results alone, not a byte on stderr.
    let output = run_agent(
        &["push", "--plain-http", &reference, "big.bin"],
        work.path(),
    );
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    let output = run_agent(
        &["pull", "--plain-http", &reference, "-o", "again"],
        work.path(),
    );
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert_eq!(
        std::fs::read(work.path().join("again/big.bin"))
            .unwrap()
            .len(),
        BIG
    );
}
