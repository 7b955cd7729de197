//! Where registry credentials come from: `ORAS_USER` with `ORAS_PUSH_PASS` /
//! `ORAS_PULL_PASS`, else the Docker config file's `auths`, else anonymous.
//! Never from the command line.

use std::path::PathBuf;

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use oras_contract::annotations::credentials;

/// What the credentials are used for: the original project had one password each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Pull,
    Push,
}

/// Where a credential was found, for the debug log (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Environment,
    DockerConfig(PathBuf),
    Anonymous,
}

/// Resolve credentials for `registry` from the process environment and Docker config.
pub fn resolve(registry: &str, op: Operation) -> (RegistryAuth, Source) {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let config_path = docker_config_path(&env);
    let config = config_path
        .as_ref()
        .and_then(|path| std::fs::read_to_string(path).ok());
    resolve_from(
        registry,
        op,
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

/// The pure part of [`resolve`], for tests.
pub fn resolve_from(
    registry: &str,
    op: Operation,
    env: &dyn Fn(&str) -> Option<String>,
    docker_config: Option<(&str, &std::path::Path)>,
) -> (RegistryAuth, Source) {
    if let Some(user) = env(credentials::USER) {
        let password_key = match op {
            Operation::Pull => credentials::PULL_PASSWORD,
            Operation::Push => credentials::PUSH_PASSWORD,
        };
        if let Some(password) = env(password_key) {
            return (RegistryAuth::Basic(user, password), Source::Environment);
        }
        tracing::debug!(
            "{} is set but {password_key} is not: looking in the Docker config",
            credentials::USER
        );
    }
    if let Some((text, path)) = docker_config {
        match from_docker_config(text, registry) {
            Ok(Some((user, password))) => {
                return (
                    RegistryAuth::Basic(user, password),
                    Source::DockerConfig(path.to_path_buf()),
                );
            }
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!("ignoring Docker config {}: {reason}", path.display())
            }
        }
    }
    (RegistryAuth::Anonymous, Source::Anonymous)
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
    use std::path::Path;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn basic(auth: &RegistryAuth) -> Option<(&str, &str)> {
        match auth {
            RegistryAuth::Basic(u, p) => Some((u.as_str(), p.as_str())),
            _ => None,
        }
    }

    #[test]
    fn environment_picks_the_password_of_the_operation() {
        let env = env_of(&[
            ("ORAS_USER", "me"),
            ("ORAS_PUSH_PASS", "push"),
            ("ORAS_PULL_PASS", "pull"),
        ]);
        let (auth, source) = resolve_from("r:5000", Operation::Push, &env, None);
        assert_eq!(basic(&auth), Some(("me", "push")));
        assert_eq!(source, Source::Environment);
        let (auth, _) = resolve_from("r:5000", Operation::Pull, &env, None);
        assert_eq!(basic(&auth), Some(("me", "pull")));
    }

    #[test]
    fn docker_config_auth_entry_is_used_when_env_is_missing() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("alice:secret");
        let config = format!(
            r#"{{"auths":{{"https://other.io":{{"auth":"eDp5"}},"https://r.example:5000/v1/":{{"auth":"{encoded}"}}}}}}"#
        );
        let env = env_of(&[("ORAS_USER", "me")]);
        let (auth, source) = resolve_from(
            "r.example:5000",
            Operation::Pull,
            &env,
            Some((&config, Path::new("/c.json"))),
        );
        assert_eq!(basic(&auth), Some(("alice", "secret")));
        assert_eq!(source, Source::DockerConfig("/c.json".into()));
    }

    #[test]
    fn docker_config_username_password_fields_are_used() {
        let config = r#"{"auths":{"r.example":{"username":"bob","password":"pw"}}}"#;
        let (auth, _) = resolve_from(
            "r.example",
            Operation::Push,
            &env_of(&[]),
            Some((config, Path::new("/c.json"))),
        );
        assert_eq!(basic(&auth), Some(("bob", "pw")));
    }

    #[test]
    fn nothing_known_means_anonymous() {
        let config = r#"{"auths":{"elsewhere.io":{"username":"bob","password":"pw"}}}"#;
        let (auth, source) = resolve_from(
            "r.example",
            Operation::Pull,
            &env_of(&[]),
            Some((config, Path::new("/c.json"))),
        );
        assert!(matches!(auth, RegistryAuth::Anonymous));
        assert_eq!(source, Source::Anonymous);
        let (auth, _) = resolve_from(
            "r.example",
            Operation::Pull,
            &env_of(&[]),
            Some(("not json", Path::new("/c.json"))),
        );
        assert!(matches!(auth, RegistryAuth::Anonymous));
    }
}
