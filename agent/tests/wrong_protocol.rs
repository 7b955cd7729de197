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

/// OpenSSL's TLS server, which closes a plain-HTTP connection without an HTTP answer
/// (where distribution answers 400); killed on drop.
struct OpenSslServer {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl OpenSslServer {
    fn start() -> Self {
        let ca = oras_testkit::tls::TestCa::new("oras-agent-test-ca").unwrap();
        let cert = ca.serving_cert("127.0.0.1", &["127.0.0.1"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("cert.pem"), cert.cert_pem.as_bytes());
        write(&dir.path().join("key.pem"), cert.key_pem.as_bytes());
        let port = support::registry::free_port();
        let child = std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(dir.path().join("cert.pem"))
            .arg("-key")
            .arg(dir.path().join("key.pem"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run openssl s_server (Debian's openssl package)");
        let server = Self {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("openssl s_server did not listen on 127.0.0.1:{port}");
    }
}

impl Drop for OpenSslServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn plain_http_asked_of_a_tls_server_that_hangs_up_fails_at_once_naming_the_flag() {
    let server = OpenSslServer::start();
    let host = format!("127.0.0.1:{}", server.port);
    let (code, stderr) = push(&["--plain-http", &format!("{host}/first/use:1")]);
    assert_eq!(code, Some(1), "{stderr}");
    let message = format!("{host} answers HTTPS: drop --plain-http");
    assert_eq!(stderr.matches(&message).count(), 1, "{stderr}");
    assert!(!stderr.contains("retrying"), "{stderr}");
}
