//! Generated credentials of a cache with `spec.auth.enabled`: the Secret
//! `<cache>-credentials` holding the plain passwords for the agents (the keys of
//! `oras-env`), and the Secret `<cache>-htpasswd` holding only their bcrypt hashes, which
//! the registry pod mounts.
//!
//! One user name, two passwords (the `oras-env` contract): the registry's htpasswd knows
//! the push password as [`USER`] and the pull password as [`PULL_USER`]; the gate in front
//! of the registry (`crate::gate`) lets the pull password read and nothing else.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use oras_contract::annotations::credentials as keys;
use sha2::{Digest, Sha256};

use super::owned_meta_named;
use crate::crd::OrasCache;

/// The user name in `ORAS_USER`.
pub const USER: &str = "oras";
/// The name the registry's htpasswd gives the pull password (agents never send it: the
/// gate maps `ORAS_USER` with the pull password onto it for reads).
pub const PULL_USER: &str = "oras-pull";
/// Key of the htpasswd file in `<cache>-htpasswd`.
pub const HTPASSWD_KEY: &str = "htpasswd";
/// Length of a generated password: 32 of 62 letters and digits, about 190 bits.
pub const PASSWORD_LEN: usize = 32;
/// The most bytes bcrypt hashes: a longer password would be cut silently.
pub const MAX_PASSWORD_BYTES: usize = 72;
/// bcrypt cost of the hashes (Go's `bcrypt.DefaultCost`, what distribution checks).
pub const BCRYPT_COST: u32 = 10;

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The user and its two passwords.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub push_password: String,
    pub pull_password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the passwords, whatever logs this.
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// New random passwords from the operating system's generator.
    pub fn generate() -> Result<Self, getrandom::Error> {
        Ok(Self {
            user: USER.into(),
            push_password: random_password()?,
            pull_password: random_password()?,
        })
    }

    /// The credentials an existing `<cache>-credentials` Secret holds; the error names
    /// the Secret and the key that is missing or not UTF-8.
    pub fn from_secret(secret: &Secret) -> Result<Self, String> {
        let name = secret.name_any();
        let data = secret.data.clone().unwrap_or_default();
        let value = |key: &str| -> Result<String, String> {
            let bytes = data.get(key).ok_or_else(|| {
                format!(
                    "Secret {name} has no key {key}: delete the Secret to generate new credentials"
                )
            })?;
            let text = String::from_utf8(bytes.0.clone())
                .map_err(|_| format!("Secret {name} key {key} is not UTF-8"))?;
            if text.is_empty() || text.contains('\n') || (key == keys::USER && text.contains(':')) {
                return Err(format!(
                    "Secret {name} key {key} is empty or holds a newline (or, in the user name, a ':'), \
                     which htpasswd cannot carry"
                ));
            }
            if text.len() > MAX_PASSWORD_BYTES {
                return Err(format!(
                    "Secret {name} key {key} is longer than {MAX_PASSWORD_BYTES} bytes, \
                     more than bcrypt hashes"
                ));
            }
            Ok(text)
        };
        Ok(Self {
            user: value(keys::USER)?,
            push_password: value(keys::PUSH_PASSWORD)?,
            pull_password: value(keys::PULL_PASSWORD)?,
        })
    }
}

/// A password of [`PASSWORD_LEN`] letters and digits, every one equally likely.
pub fn random_password() -> Result<String, getrandom::Error> {
    let mut password = String::with_capacity(PASSWORD_LEN);
    let mut buffer = [0u8; 64];
    while password.len() < PASSWORD_LEN {
        getrandom::fill(&mut buffer)?;
        // Rejection sampling: 248 = 4 * 62, so every character is equally likely.
        for byte in buffer.iter().filter(|b| **b < 248) {
            if password.len() == PASSWORD_LEN {
                break;
            }
            password.push(char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()]));
        }
    }
    Ok(password)
}

/// `<cache>-credentials`.
pub fn credentials_secret_name(cache: &OrasCache) -> String {
    oras_contract::pod::credentials_secret(&cache.name_any())
}

/// `<cache>-htpasswd`.
pub fn htpasswd_secret_name(cache: &OrasCache) -> String {
    format!("{}-htpasswd", cache.name_any())
}

/// The Secret `<cache>-credentials` with the plain credentials, owned by the cache. It is
/// created once and never applied again: its passwords change only when it is deleted.
pub fn credentials_secret(
    cache: &OrasCache,
    owner: OwnerReference,
    credentials: &Credentials,
) -> Secret {
    Secret {
        metadata: owned_meta_named(cache, owner, credentials_secret_name(cache)),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (keys::USER.to_string(), bytes(&credentials.user)),
            (
                keys::PUSH_PASSWORD.to_string(),
                bytes(&credentials.push_password),
            ),
            (
                keys::PULL_PASSWORD.to_string(),
                bytes(&credentials.pull_password),
            ),
        ])),
        ..Default::default()
    }
}

/// The htpasswd file of the registry: the push password as `ORAS_USER`, the pull
/// password as [`PULL_USER`], bcrypt (`$2y$`, as `htpasswd -B` writes) only. The salts
/// come from the cache's uid and the user, so the same credentials give the same file
/// and applying it again changes nothing.
pub fn htpasswd(
    cache: &OrasCache,
    credentials: &Credentials,
) -> Result<String, bcrypt::BcryptError> {
    let uid = cache.uid().unwrap_or_default();
    let line = |user: &str, password: &str| -> Result<String, bcrypt::BcryptError> {
        let parts = bcrypt::hash_with_salt(password, BCRYPT_COST, salt(&uid, user))?;
        Ok(format!(
            "{user}:{}\n",
            parts.format_for_version(bcrypt::Version::TwoY)
        ))
    };
    Ok(line(&credentials.user, &credentials.push_password)?
        + &line(PULL_USER, &credentials.pull_password)?)
}

fn salt(uid: &str, user: &str) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(b"oras-cache htpasswd salt\0")
        .chain_update(uid.as_bytes())
        .chain_update(b"\0")
        .chain_update(user.as_bytes())
        .finalize();
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&digest[..16]);
    salt
}

/// The Secret `<cache>-htpasswd` the registry pod mounts: the hashes, never a password.
pub fn htpasswd_secret(cache: &OrasCache, owner: OwnerReference, htpasswd: &str) -> Secret {
    Secret {
        metadata: owned_meta_named(cache, owner, htpasswd_secret_name(cache)),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            HTPASSWD_KEY.to_string(),
            bytes(htpasswd),
        )])),
        ..Default::default()
    }
}

fn bytes(text: &str) -> ByteString {
    ByteString(text.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;

    fn cache() -> OrasCache {
        let mut cache = OrasCache::new(
            "oras",
            serde_json::from_value(serde_json::json!({"auth": {"enabled": true}})).unwrap(),
        );
        cache.metadata.namespace = Some("workflows".into());
        cache.metadata.uid = Some("0b5c6a9e-1111-2222-3333-444455556666".into());
        cache
    }

    fn fixed() -> Credentials {
        Credentials {
            user: "oras".into(),
            push_password: "push-secret".into(),
            pull_password: "pull-secret".into(),
        }
    }

    #[test]
    fn generated_passwords_are_long_random_and_distinct() {
        let a = Credentials::generate().unwrap();
        let b = Credentials::generate().unwrap();
        assert_eq!(a.user, "oras");
        for password in [&a.push_password, &a.pull_password, &b.push_password] {
            assert_eq!(password.len(), PASSWORD_LEN);
            assert!(password.bytes().all(|c| c.is_ascii_alphanumeric()));
        }
        assert_ne!(a.push_password, a.pull_password);
        assert_ne!(a.push_password, b.push_password);
        assert!(!format!("{a:?}").contains(&a.push_password));
    }

    #[test]
    fn the_credentials_secret_has_the_oras_env_keys_and_is_owned() {
        let cache = cache();
        let secret = credentials_secret(&cache, cache.controller_owner_ref(&()).unwrap(), &fixed());
        assert_eq!(secret.metadata.name.as_deref(), Some("oras-credentials"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("workflows"));
        let owners = secret.metadata.owner_references.as_ref().unwrap();
        assert_eq!(owners[0].uid, "0b5c6a9e-1111-2222-3333-444455556666");
        let data = secret.data.as_ref().unwrap();
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(keys, ["ORAS_PULL_PASS", "ORAS_PUSH_PASS", "ORAS_USER"]);
        assert_eq!(data["ORAS_PUSH_PASS"].0, b"push-secret");
        assert_eq!(Credentials::from_secret(&secret).unwrap(), fixed());
    }

    #[test]
    fn a_secret_missing_a_key_is_named_in_the_error() {
        let cache = cache();
        let mut secret =
            credentials_secret(&cache, cache.controller_owner_ref(&()).unwrap(), &fixed());
        secret.data.as_mut().unwrap().remove("ORAS_PULL_PASS");
        assert_eq!(
            Credentials::from_secret(&secret).unwrap_err(),
            "Secret oras-credentials has no key ORAS_PULL_PASS: delete the Secret to generate new credentials"
        );
        secret
            .data
            .as_mut()
            .unwrap()
            .insert("ORAS_PULL_PASS".into(), ByteString(b"a\nb".to_vec()));
        assert!(
            Credentials::from_secret(&secret)
                .unwrap_err()
                .contains("key ORAS_PULL_PASS is empty or holds a newline")
        );
        let data = secret.data.as_mut().unwrap();
        data.insert("ORAS_PULL_PASS".into(), ByteString(b"a:b".to_vec()));
        assert!(
            Credentials::from_secret(&secret).is_ok(),
            "':' is fine in a password"
        );
        let data = secret.data.as_mut().unwrap();
        data.insert("ORAS_USER".into(), ByteString(b"me:you".to_vec()));
        assert!(
            Credentials::from_secret(&secret).unwrap_err().contains(
                "key ORAS_USER is empty or holds a newline (or, in the user name, a ':')"
            )
        );
        let data = secret.data.as_mut().unwrap();
        data.insert("ORAS_USER".into(), ByteString(b"me".to_vec()));
        data.insert("ORAS_PUSH_PASS".into(), ByteString(vec![b'x'; 73]));
        assert_eq!(
            Credentials::from_secret(&secret).unwrap_err(),
            "Secret oras-credentials key ORAS_PUSH_PASS is longer than 72 bytes, more than bcrypt hashes"
        );
    }

    #[test]
    fn the_htpasswd_holds_bcrypt_hashes_that_verify_and_never_a_password() {
        let cache = cache();
        let text = htpasswd(&cache, &fixed()).unwrap();
        assert!(!text.contains("push-secret") && !text.contains("pull-secret"));
        let lines: Vec<(&str, &str)> = text.lines().map(|l| l.split_once(':').unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].0, "oras");
        assert_eq!(lines[1].0, "oras-pull");
        assert!(lines[0].1.starts_with("$2y$10$"));
        assert!(bcrypt::verify("push-secret", lines[0].1).unwrap());
        assert!(!bcrypt::verify("pull-secret", lines[0].1).unwrap());
        assert!(bcrypt::verify("pull-secret", lines[1].1).unwrap());
    }

    #[test]
    fn the_htpasswd_is_the_same_for_the_same_credentials_and_differs_per_cache() {
        let cache = cache();
        assert_eq!(
            htpasswd(&cache, &fixed()).unwrap(),
            htpasswd(&cache, &fixed()).unwrap()
        );
        let mut other = cache.clone();
        other.metadata.uid = Some("another-uid".into());
        assert_ne!(
            htpasswd(&cache, &fixed()).unwrap(),
            htpasswd(&other, &fixed()).unwrap()
        );
    }

    #[test]
    fn the_htpasswd_secret_holds_only_the_file() {
        let cache = cache();
        let secret = htpasswd_secret(
            &cache,
            cache.controller_owner_ref(&()).unwrap(),
            "oras:$2y$10$x\n",
        );
        assert_eq!(secret.metadata.name.as_deref(), Some("oras-htpasswd"));
        let data = secret.data.unwrap();
        assert_eq!(data.len(), 1);
        assert_eq!(data["htpasswd"].0, b"oras:$2y$10$x\n");
    }
}
