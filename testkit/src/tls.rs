//! Certificates for test servers: a throw-away certificate authority that signs serving
//! certificates for 127.0.0.1 (the API server, a webhook), and bare signing keys (service
//! account tokens). Keys are ECDSA P-256, which every Kubernetes component accepts.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

#[derive(Debug, thiserror::Error)]
#[error("cannot make the test certificate for {what}: {source}")]
pub struct TlsError {
    what: String,
    #[source]
    source: rcgen::Error,
}

/// A serving certificate and its key, both PEM.
pub struct ServingCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A certificate authority that lives as long as the test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> Result<Self, TlsError> {
        let failed = |source| TlsError {
            what: format!("the CA {name}"),
            source,
        };
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(failed)?;
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(failed)?;
        Ok(Self { issuer })
    }

    /// The CA certificate (PEM), what clients trust.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A serving certificate for `names` (DNS names or IP addresses).
    pub fn serving_cert(&self, common_name: &str, names: &[&str]) -> Result<ServingCert, TlsError> {
        let failed = |source| TlsError {
            what: common_name.to_string(),
            source,
        };
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<String>>())
                .map_err(failed)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().map_err(failed)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(failed)?;
        Ok(ServingCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A fresh private key (PKCS#8 PEM), e.g. to sign service account tokens.
pub fn signing_key_pem() -> Result<String, TlsError> {
    KeyPair::generate()
        .map(|key| key.serialize_pem())
        .map_err(|source| TlsError {
            what: "a signing key".into(),
            source,
        })
}

/// The public half of a PKCS#8 key made by [`signing_key_pem`], as a PEM public key.
pub fn public_key_pem(private_key_pem: &str) -> Result<String, TlsError> {
    KeyPair::from_pem(private_key_pem)
        .map(|key| key.public_key_pem())
        .map_err(|source| TlsError {
            what: "a public key".into(),
            source,
        })
}

/// OpenSSL's TLS test server (`openssl s_server -www`) on a free port of 127.0.0.1,
/// serving a certificate of `ca`: a TLS server that closes a plain-HTTP connection
/// without an HTTP answer (where distribution answers 400). Killed on drop.
pub struct OpenSslServer {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl OpenSslServer {
    /// Starts the server and waits until it accepts connections. Panics, naming the
    /// cause, when it cannot (the test cannot run without it).
    pub fn start(ca: &TestCa) -> Self {
        let cert = ca
            .serving_cert("127.0.0.1", &["127.0.0.1"])
            .unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, &cert.cert_pem).expect("write the certificate");
        std::fs::write(&key_path, &cert.key_pem).expect("write the key");
        let port = crate::registry::free_port().expect("a free port on 127.0.0.1");
        let child = std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert_path)
            .arg("-key")
            .arg(&key_path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run openssl s_server (Debian's openssl package)");
        let mut server = Self {
            child,
            port,
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("openssl s_server on 127.0.0.1:{port} exited with {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "openssl s_server did not listen on 127.0.0.1:{port} within 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        server
    }

    /// `127.0.0.1:<port>`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for OpenSslServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
