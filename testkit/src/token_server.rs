//! A registry token server on 127.0.0.1, as GHCR, Harbor or Docker Hub put in front of
//! their registries: `GET /token?service=..&scope=..` with the user's basic credentials
//! answers a JWT (ES256, its certificate in the `x5c` header) granting what the scopes
//! ask. Distribution trusts it through `auth.token` ([`TokenServer::registry_env`]).
//!
//! Tokens live [`TokenServer::start`]'s `lifetime`, so that a test can watch a client
//! renew an expired one. Distribution accepts a token up to 60 s after its `exp`
//! (leeway for clock skew): the `exp` written is backdated by that much.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::{CertificateParams, DnType, KeyPair};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;

use crate::registry::{RegistryError, Result, io_error};

/// The `service` and `iss` the registry and the tokens agree on.
pub const SERVICE: &str = "oras-test-registry";
pub const ISSUER: &str = "oras-test-token-server";
/// Distribution's leeway on `exp` and `nbf`.
const REGISTRY_LEEWAY: Duration = Duration::from_secs(60);

/// A token server; stopped on drop.
pub struct TokenServer {
    port: u16,
    stop: Arc<AtomicBool>,
    issued: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
    dir: tempfile::TempDir,
}

/// What signs the tokens, and who may have them.
struct Issuer {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    user: String,
    password: String,
    lifetime: Duration,
}

fn tls_failed(what: &str) -> impl Fn(rcgen::Error) -> RegistryError + '_ {
    move |err| RegistryError::Io {
        action: format!("make the token server's {what}"),
        source: std::io::Error::other(err.to_string()),
    }
}

impl TokenServer {
    /// Starts a token server that gives `user` with `password` tokens valid for
    /// `lifetime`, and refuses anyone else.
    pub fn start(user: &str, password: &str, lifetime: Duration) -> Result<Self> {
        let key_pair = KeyPair::generate().map_err(tls_failed("signing key"))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(tls_failed("certificate"))?;
        params.distinguished_name.push(DnType::CommonName, ISSUER);
        let cert = params
            .self_signed(&key_pair)
            .map_err(tls_failed("certificate"))?;
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &key_pair.serialize_der(),
            &ring::rand::SystemRandom::new(),
        )
        .map_err(|err| RegistryError::Io {
            action: "load the token server's signing key".into(),
            source: std::io::Error::other(err.to_string()),
        })?;
        let dir = tempfile::Builder::new()
            .prefix("oras-test-token-server.")
            .tempdir()
            .map_err(io_error("create the token server's directory"))?;
        std::fs::write(dir.path().join("root.crt"), cert.pem())
            .map_err(io_error("write the token server's certificate"))?;
        let issuer = Arc::new(Issuer {
            key,
            cert_der: cert.der().to_vec(),
            user: user.into(),
            password: password.into(),
            lifetime,
        });

        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(io_error("bind the token server"))?;
        let port = listener
            .local_addr()
            .map_err(io_error("read the token server's address"))?
            .port();
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, issued, refused) = (stop.clone(), issued.clone(), refused.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let counter = match answer(stream, &issuer) {
                        Ok(true) => &issued,
                        Ok(false) | Err(_) => &refused,
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        Ok(Self {
            port,
            stop,
            issued,
            refused,
            thread: Some(thread),
            dir,
        })
    }

    /// Distribution's `REGISTRY_AUTH*` variables that make it trust this server.
    pub fn registry_env(&self) -> Vec<(String, String)> {
        [
            ("REGISTRY_AUTH", "token".to_string()),
            (
                "REGISTRY_AUTH_TOKEN_REALM",
                format!("http://127.0.0.1:{}/token", self.port),
            ),
            ("REGISTRY_AUTH_TOKEN_SERVICE", SERVICE.to_string()),
            ("REGISTRY_AUTH_TOKEN_ISSUER", ISSUER.to_string()),
            (
                "REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE",
                self.dir.path().join("root.crt").display().to_string(),
            ),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
    }

    /// Tokens handed out so far.
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }

    /// Requests refused so far (wrong or missing credentials, unreadable requests).
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request; whether a token was handed out.
fn answer(stream: TcpStream, issuer: &Issuer) -> std::io::Result<bool> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_string());
        }
    }
    let target = request_line.split(' ').nth(1).unwrap_or_default();
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let mut stream = stream;
    if !issuer.allows(authorization.as_deref()) {
        respond(
            &mut stream,
            "401 Unauthorized",
            r#"{"details":"bad credentials"}"#,
        )?;
        return Ok(false);
    }
    let scopes: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(name, _)| name == "scope")
        .map(|(_, value)| value.into_owned())
        .collect();
    let token = issuer.token(&scopes);
    let body = json!({
        "token": token,
        "access_token": token,
        "expires_in": issuer.lifetime.as_secs().max(1),
    });
    respond(&mut stream, "200 OK", &body.to_string())?;
    Ok(true)
}

fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

impl Issuer {
    fn allows(&self, authorization: Option<&str>) -> bool {
        let expected = STANDARD.encode(format!("{}:{}", self.user, self.password));
        authorization
            .and_then(|value| value.strip_prefix("Basic "))
            .is_some_and(|given| given.trim() == expected)
    }

    /// A signed token granting `scopes` (`repository:NAME:ACTIONS`, as clients ask).
    fn token(&self, scopes: &[String]) -> String {
        let access: Vec<_> = scopes
            .iter()
            .flat_map(|scope| scope.split(' '))
            .filter_map(|scope| {
                let (kind, rest) = scope.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let expires = (now + self.lifetime).saturating_sub(REGISTRY_LEEWAY);
        let header = json!({
            "alg": "ES256",
            "typ": "JWT",
            "x5c": [STANDARD.encode(&self.cert_der)],
        });
        let claims = json!({
            "iss": ISSUER,
            "sub": self.user,
            "aud": SERVICE,
            "iat": now.as_secs(),
            "nbf": now.as_secs().saturating_sub(1),
            "exp": expires.as_secs(),
            "jti": format!("{}-{}", now.as_nanos(), access.len()),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
            .expect("ECDSA signing with a valid key");
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }
}
