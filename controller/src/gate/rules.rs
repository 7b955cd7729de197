//! What the gate does with one request, decided from its method and its `Authorization`
//! header against the registry's htpasswd file. No I/O here.
//!
//! The registry authenticates (htpasswd: the push password as `ORAS_USER`, the pull
//! password as [`PULL_USER`]); distribution's htpasswd has no per-user permissions, so
//! the gate authorizes: the pull password may only read.

use std::collections::HashMap;

use base64::Engine as _;

use crate::builders::credentials::PULL_USER;

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward it unchanged: the registry authenticates it.
    Forward,
    /// Forward it with this `Authorization` header instead (the pull password, sent as
    /// `ORAS_USER`, presented to the registry as [`PULL_USER`]).
    ForwardAs(String),
    /// Refuse with 403 and this message: the pull password tried to write.
    Deny(String),
}

/// The htpasswd entries the gate knows: the pull user's hash.
#[derive(Debug, Clone)]
pub struct Htpasswd {
    pull_hash: String,
}

impl Htpasswd {
    /// Parses an htpasswd file (`user:hash` lines); it must have a [`PULL_USER`] line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let entries: HashMap<&str, &str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once(':'))
            .collect();
        let pull_hash = entries
            .get(PULL_USER)
            .ok_or_else(|| format!("the htpasswd file has no {PULL_USER} entry"))?;
        Ok(Self {
            pull_hash: pull_hash.to_string(),
        })
    }

    /// Whether `password` is the pull password (bcrypt, slow: callers cache the answer).
    pub fn is_pull_password(&self, password: &str) -> bool {
        bcrypt::verify(password, &self.pull_hash).unwrap_or(false)
    }
}

/// Whether a method only reads (what the pull password may do).
pub fn reads_only(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// User and password of a `Basic` authorization header.
pub fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The message of a refused write.
pub fn denied_message(method: &str, path: &str) -> String {
    format!(
        "{method} {path}: the pull credentials of this cache (ORAS_PULL_PASS) can only read; \
         push with ORAS_PUSH_PASS"
    )
}

/// The decision for a request whose credentials, when it has any, are `basic` and whose
/// password is the pull password when `is_pull` says so.
pub fn decide(
    method: &str,
    path: &str,
    basic: Option<&(String, String)>,
    is_pull: impl FnOnce(&str) -> bool,
) -> Decision {
    let Some((user, password)) = basic else {
        // Anonymous: the registry answers 401 with its challenge.
        return Decision::Forward;
    };
    if !is_pull(password) {
        // The push password, or a wrong one: the registry decides.
        return Decision::Forward;
    }
    if !reads_only(method) {
        return Decision::Deny(denied_message(method, path));
    }
    if user == PULL_USER {
        return Decision::Forward;
    }
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{PULL_USER}:{password}"));
    Decision::ForwardAs(format!("Basic {encoded}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> Option<(String, String)> {
        Some((user.into(), password.into()))
    }

    fn pull(password: &str) -> bool {
        password == "pull-pw"
    }

    #[test]
    fn the_pull_password_reads_as_the_pull_user() {
        let decision = decide(
            "GET",
            "/v2/a/manifests/v1",
            basic("oras", "pull-pw").as_ref(),
            pull,
        );
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("oras-pull:pull-pw")
        );
        assert_eq!(decision, Decision::ForwardAs(expected));
        assert_eq!(
            decide("HEAD", "/v2/", basic("oras-pull", "pull-pw").as_ref(), pull),
            Decision::Forward
        );
    }

    #[test]
    fn the_pull_password_never_writes_whatever_the_user_name() {
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            for user in ["oras", "oras-pull", "anyone"] {
                let decision = decide(
                    method,
                    "/v2/a/blobs/uploads/",
                    basic(user, "pull-pw").as_ref(),
                    pull,
                );
                assert_eq!(
                    decision,
                    Decision::Deny(format!(
                        "{method} /v2/a/blobs/uploads/: the pull credentials of this cache \
                         (ORAS_PULL_PASS) can only read; push with ORAS_PUSH_PASS"
                    ))
                );
            }
        }
    }

    #[test]
    fn everything_else_goes_to_the_registry_unchanged() {
        assert_eq!(decide("PUT", "/v2/x", None, pull), Decision::Forward);
        assert_eq!(
            decide("PUT", "/v2/x", basic("oras", "push-pw").as_ref(), pull),
            Decision::Forward
        );
        assert_eq!(
            decide("GET", "/v2/x", basic("oras", "wrong").as_ref(), pull),
            Decision::Forward
        );
    }

    #[test]
    fn basic_headers_are_parsed() {
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("oras:a:b")
        );
        assert_eq!(
            basic_credentials(&header),
            Some(("oras".into(), "a:b".into()))
        );
        assert_eq!(basic_credentials("Bearer abc"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
    }

    #[test]
    fn the_htpasswd_needs_the_pull_user() {
        let hash = bcrypt::hash("pull-pw", 4).unwrap();
        let file = Htpasswd::parse(&format!("oras:$2y$x\noras-pull:{hash}\n")).unwrap();
        assert!(file.is_pull_password("pull-pw"));
        assert!(!file.is_pull_password("push-pw"));
        assert_eq!(
            Htpasswd::parse("oras:$2y$x\n").unwrap_err(),
            "the htpasswd file has no oras-pull entry"
        );
    }
}
