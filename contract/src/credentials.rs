//! Where registry credentials come from, for the agent and for `ship`: `ORAS_USER` with
//! `ORAS_PUSH_PASS` / `ORAS_PULL_PASS` (the keys of the `oras-env` Secret), else the
//! registry's `auths` entry in the Docker config file (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`), else anonymous. Never from the command line.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::annotations::credentials as keys;

/// What the credentials are used for: the original project had one password each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Pull,
    Push,
}

/// Where a credential was found (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Environment,
    DockerConfig(PathBuf),
    Anonymous,
}

/// What [`resolve`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// User and password; `None`: anonymous.
    pub basic: Option<(String, String)>,
    pub source: Source,
    /// What was passed over on the way, for the caller's debug log.
    pub notes: Vec<String>,
    /// What is wrong with the Docker config file, for the caller's warning.
    pub warnings: Vec<String>,
}

/// Credentials for `registry` (`host[:port]`) from the process environment and the
/// Docker config file.
pub fn resolve(registry: &str, operation: Operation) -> Resolved {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let config_path = docker_config_path(&env);
    let config = config_path
        .as_ref()
        .and_then(|path| std::fs::read_to_string(path).ok());
    resolve_from(
        registry,
        operation,
        &env,
        config.as_deref().zip(config_path.as_deref()),
    )
}

fn docker_config_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(dir) = env("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    env("HOME").map(|home| PathBuf::from(home).join(".docker").join("config.json"))
}

/// The pure part of [`resolve`]: `env` reads a variable, `docker_config` is the config
/// file's text and path.
pub fn resolve_from(
    registry: &str,
    operation: Operation,
    env: &dyn Fn(&str) -> Option<String>,
    docker_config: Option<(&str, &Path)>,
) -> Resolved {
    let mut notes = Vec::new();
    let mut warnings = Vec::new();
    if let Some(user) = env(keys::USER) {
        let password_key = match operation {
            Operation::Pull => keys::PULL_PASSWORD,
            Operation::Push => keys::PUSH_PASSWORD,
        };
        if let Some(password) = env(password_key) {
            return Resolved {
                basic: Some((user, password)),
                source: Source::Environment,
                notes,
                warnings,
            };
        }
        notes.push(format!(
            "{} is set but {password_key} is not: looking in the Docker config",
            keys::USER
        ));
    }
    if let Some((text, path)) = docker_config {
        match from_docker_config(text, registry) {
            Ok(Some(basic)) => {
                return Resolved {
                    basic: Some(basic),
                    source: Source::DockerConfig(path.to_path_buf()),
                    notes,
                    warnings,
                };
            }
            Ok(None) => {}
            Err(reason) => warnings.push(format!(
                "ignoring the Docker config {}: {reason}",
                path.display()
            )),
        }
    }
    Resolved {
        basic: None,
        source: Source::Anonymous,
        notes,
        warnings,
    }
}

/// The host part of an `auths` key: `https://host:5000/v1/` -> `host:5000`.
fn auth_key_host(key: &str) -> &str {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    without_scheme.split('/').next().unwrap_or(without_scheme)
}

fn from_docker_config(text: &str, registry: &str) -> Result<Option<(String, String)>, String> {
    let config: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let Some(auths) = config.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let Some(entry) = auths
        .iter()
        .find(|(key, _)| auth_key_host(key) == registry)
        .map(|(_, entry)| entry)
    else {
        return Ok(None);
    };
    if let Some(encoded) = entry.get("auth").and_then(|a| a.as_str()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| format!("auth entry for {registry} is not base64: {e}"))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| format!("auth entry for {registry} is not UTF-8"))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| format!("auth entry for {registry} is not user:password"))?;
        return Ok(Some((user.to_string(), password.to_string())));
    }
    let field = |name: &str| entry.get(name).and_then(|v| v.as_str()).map(String::from);
    Ok(field("username").zip(field("password")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn basic(resolved: &Resolved) -> Option<(&str, &str)> {
        resolved
            .basic
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    #[test]
    fn environment_picks_the_password_of_the_operation() {
        let env = env_of(&[
            ("ORAS_USER", "me"),
            ("ORAS_PUSH_PASS", "push"),
            ("ORAS_PULL_PASS", "pull"),
        ]);
        let push = resolve_from("r:5000", Operation::Push, &env, None);
        assert_eq!(basic(&push), Some(("me", "push")));
        assert_eq!(push.source, Source::Environment);
        let pull = resolve_from("r:5000", Operation::Pull, &env, None);
        assert_eq!(basic(&pull), Some(("me", "pull")));
    }

    #[test]
    fn docker_config_auth_entry_is_used_when_env_is_missing() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("alice:secret");
        let config = format!(
            r#"{{"auths":{{"https://other.io":{{"auth":"eDp5"}},"https://r.example:5000/v1/":{{"auth":"{encoded}"}}}}}}"#
        );
        let env = env_of(&[("ORAS_USER", "me")]);
        let found = resolve_from(
            "r.example:5000",
            Operation::Pull,
            &env,
            Some((&config, Path::new("/c.json"))),
        );
        assert_eq!(basic(&found), Some(("alice", "secret")));
        assert_eq!(found.source, Source::DockerConfig("/c.json".into()));
        assert!(
            found.notes[0].contains("ORAS_PULL_PASS is not"),
            "{:?}",
            found.notes
        );
    }

    #[test]
    fn docker_config_username_password_fields_are_used() {
        let config = r#"{"auths":{"r.example":{"username":"bob","password":"pw"}}}"#;
        let found = resolve_from(
            "r.example",
            Operation::Push,
            &env_of(&[]),
            Some((config, Path::new("/c.json"))),
        );
        assert_eq!(basic(&found), Some(("bob", "pw")));
    }

    #[test]
    fn nothing_known_means_anonymous_and_a_broken_config_is_noted() {
        let config = r#"{"auths":{"elsewhere.io":{"username":"bob","password":"pw"}}}"#;
        let none = resolve_from(
            "r.example",
            Operation::Pull,
            &env_of(&[]),
            Some((config, Path::new("/c.json"))),
        );
        assert_eq!(none.basic, None);
        assert_eq!(none.source, Source::Anonymous);
        let broken = resolve_from(
            "r.example",
            Operation::Pull,
            &env_of(&[]),
            Some(("not json", Path::new("/c.json"))),
        );
        assert_eq!(broken.basic, None);
        assert!(
            broken.warnings[0].contains("/c.json"),
            "{:?}",
            broken.warnings
        );
        let bad = r#"{"auths":{"r.example":{"auth":"%%%"}}}"#;
        let refused = resolve_from(
            "r.example",
            Operation::Pull,
            &env_of(&[]),
            Some((bad, Path::new("/c.json"))),
        );
        assert!(
            refused.warnings[0].contains("not base64"),
            "{:?}",
            refused.warnings
        );
    }
}
