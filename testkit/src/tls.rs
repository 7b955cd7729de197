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
