//! A registry asked in the protocol it does not speak, as a new user meets it: the push
//! fails at once, naming the registry and the flag to change, without retrying.

mod support;

use support::registry::TestRegistry;
use support::*;

/// The push's exit code and stderr, with the default retry budget.
fn push(args: &[&str]) -> (Option<i32>, String) {
    let work = tempfile::tempdir().unwrap();
    write(&work.path().join("file"), b"content\n");
    let output = agent()
        .env_remove("ORAS_AGENT_RETRY_SECONDS")
        .arg("push")
        .args(args)
        .arg("file")
        .current_dir(work.path())
        .output()
        .expect("run oras-agent");
    assert!(output.stdout.is_empty(), "{output:?}");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn https_asked_of_a_plain_http_registry_fails_at_once_naming_the_flag() {
    let registry = TestRegistry::start();
    let (code, stderr) = push(&[&registry.reference("first/use:1")]);
    assert_eq!(code, Some(1), "{stderr}");
    let message = format!("{} answers plain HTTP: use --plain-http", registry.host());
    assert_eq!(stderr.matches(&message).count(), 1, "{stderr}");
    assert!(!stderr.contains("retrying"), "{stderr}");
    assert!(!stderr.contains("InvalidContentType"), "{stderr}");
}

#[test]
fn plain_http_asked_of_an_https_registry_fails_at_once_naming_the_flag() {
    let registry = TestRegistry::start_with_tls();
    let (code, stderr) = push(&["--plain-http", &registry.reference("first/use:1")]);
    assert_eq!(code, Some(1), "{stderr}");
    let message = format!("{} answers HTTPS: drop --plain-http", registry.host());
    assert_eq!(stderr.matches(&message).count(), 1, "{stderr}");
    assert!(!stderr.contains("retrying"), "{stderr}");
}

#[test]
fn plain_http_asked_of_a_tls_server_that_hangs_up_fails_at_once_naming_the_flag() {
    let ca = oras_testkit::tls::TestCa::new("oras-agent-test-ca").unwrap();
    let server = oras_testkit::tls::OpenSslServer::start(&ca);
    let host = server.host();
    let (code, stderr) = push(&["--plain-http", &format!("{host}/first/use:1")]);
    assert_eq!(code, Some(1), "{stderr}");
    let message = format!("{host} answers HTTPS: drop --plain-http");
    assert_eq!(stderr.matches(&message).count(), 1, "{stderr}");
    assert!(!stderr.contains("retrying"), "{stderr}");
}
