//! A cache on S3 (`spec.storage.s3`): what the API server's schema cannot check, and the
//! registry's own storage configuration (distribution's `REGISTRY_STORAGE*` variables of
//! its `s3` driver). The access keys reach the registry only as `secretKeyRef`s: never a
//! key in the pod spec.

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};
use oras_contract::kubernetes::is_dns1123_subdomain;

use super::{InvalidSpec, env};
use crate::crd::{OrasCache, S3Storage};

/// Key of the access key id in the `secretName` Secret.
pub const ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// Key of the secret access key in the `secretName` Secret.
pub const SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// Region when `region` is not set: the one S3-compatible services accept.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Checks `spec.storage.s3` and its combination with `spec.storage.size`.
pub fn validate(cache: &OrasCache) -> Result<(), InvalidSpec> {
    let storage = &cache.spec.storage;
    let Some(s3) = &storage.s3 else {
        return Ok(());
    };
    if let Some(size) = &storage.size {
        return Err(InvalidSpec(format!(
            "spec.storage.size {:?} and spec.storage.s3 exclude each other: a cache on S3 \
             keeps nothing on a volume",
            size.0
        )));
    }
    if let Some(class) = &storage.storage_class_name {
        return Err(InvalidSpec(format!(
            "spec.storage.storageClassName {class:?} and spec.storage.s3 exclude each other: \
             a cache on S3 keeps nothing on a volume"
        )));
    }
    if !is_bucket_name(&s3.bucket) {
        return Err(InvalidSpec(format!(
            "spec.storage.s3.bucket {:?} is not a bucket name (3-63 lower case letters, \
             digits, '.' and '-', starting and ending with a letter or digit)",
            s3.bucket
        )));
    }
    if let Some(region) = &s3.region
        && (region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        return Err(InvalidSpec(format!(
            "spec.storage.s3.region {region:?} is not a region name (letters, digits and '-', \
             such as eu-west-1)"
        )));
    }
    if let Some(endpoint) = &s3.endpoint {
        endpoint_url(endpoint, s3.insecure)?;
    }
    if let Some(root) = &s3.root_directory
        && (root.is_empty() || root.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(InvalidSpec(format!(
            "spec.storage.s3.rootDirectory {root:?} must be a key prefix without spaces"
        )));
    }
    if let Some(secret) = &s3.secret_name
        && !is_dns1123_subdomain(secret)
    {
        return Err(InvalidSpec(format!(
            "spec.storage.s3.secretName {secret:?} is not a Secret name"
        )));
    }
    Ok(())
}

/// The endpoint as the URL the registry gets: `http://` for an `insecure` endpoint, else
/// `https://`. A scheme given in `endpoint` must agree with `insecure`.
pub fn endpoint_url(endpoint: &str, insecure: bool) -> Result<String, InvalidSpec> {
    let wanted = if insecure { "http" } else { "https" };
    let (scheme, rest) = match endpoint.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, endpoint),
    };
    let host = rest.split('/').next().unwrap_or_default();
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !valid_host || rest.chars().any(char::is_whitespace) {
        return Err(InvalidSpec(format!(
            "spec.storage.s3.endpoint {endpoint:?} is not host[:port] or an http(s) URL"
        )));
    }
    match scheme {
        None => Ok(format!("{wanted}://{rest}")),
        Some(scheme) if scheme == wanted => Ok(endpoint.to_string()),
        Some("http") => Err(InvalidSpec(format!(
            "spec.storage.s3.endpoint {endpoint:?} is plain HTTP: set spec.storage.s3.insecure \
             to true, or give an https:// endpoint"
        ))),
        Some("https") => Err(InvalidSpec(format!(
            "spec.storage.s3.endpoint {endpoint:?} is HTTPS but spec.storage.s3.insecure is \
             true: give the endpoint without a scheme or with http://"
        ))),
        Some(other) => Err(InvalidSpec(format!(
            "spec.storage.s3.endpoint {endpoint:?} has the scheme {other:?}: only http and \
             https are S3 endpoints"
        ))),
    }
}

/// The registry's storage configuration for `s3`: the `s3` driver with the bucket, the
/// region, the endpoint, the key prefix, the addressing style and the scheme; the keys
/// from the Secret; blobs served by the registry itself (no redirect to the bucket: the
/// agents talk to the cache's Service, never to the storage).
pub fn registry_env(s3: &S3Storage) -> Vec<EnvVar> {
    let mut vars = vec![
        env("REGISTRY_STORAGE", "s3"),
        env("REGISTRY_STORAGE_S3_BUCKET", &s3.bucket),
        env(
            "REGISTRY_STORAGE_S3_REGION",
            s3.region.as_deref().unwrap_or(DEFAULT_REGION),
        ),
    ];
    if let Some(endpoint) = &s3.endpoint {
        // Checked by `validate`; an endpoint it refuses never reaches a builder.
        let url = endpoint_url(endpoint, s3.insecure).unwrap_or_else(|_| endpoint.clone());
        vars.push(env("REGISTRY_STORAGE_S3_REGIONENDPOINT", &url));
    }
    if let Some(root) = &s3.root_directory {
        vars.push(env("REGISTRY_STORAGE_S3_ROOTDIRECTORY", root));
    }
    vars.push(env(
        "REGISTRY_STORAGE_S3_FORCEPATHSTYLE",
        bool_text(s3.force_path_style),
    ));
    vars.push(env("REGISTRY_STORAGE_S3_SECURE", bool_text(!s3.insecure)));
    if let Some(secret) = &s3.secret_name {
        vars.push(from_secret(
            "REGISTRY_STORAGE_S3_ACCESSKEY",
            secret,
            ACCESS_KEY_ID,
        ));
        vars.push(from_secret(
            "REGISTRY_STORAGE_S3_SECRETKEY",
            secret,
            SECRET_ACCESS_KEY,
        ));
    }
    vars.push(env("REGISTRY_STORAGE_REDIRECT_DISABLE", "true"));
    vars
}

fn bool_text(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// `name` from the key `key` of the Secret `secret`, which must exist.
pub fn from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn is_bucket_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge(name.chars().next())
        && edge(name.chars().last())
        && !name.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn cache(spec: Value) -> OrasCache {
        let mut cache = OrasCache::new("oras", serde_json::from_value(spec).unwrap());
        cache.metadata.namespace = Some("workflows".into());
        cache
    }

    fn s3(value: Value) -> S3Storage {
        serde_json::from_value(value).unwrap()
    }

    /// The variables as `name=value`, or `name<-secret/key` for a secretKeyRef.
    fn rendered(vars: &[EnvVar]) -> Vec<String> {
        vars.iter()
            .map(|v| match &v.value_from {
                None => format!("{}={}", v.name, v.value.as_deref().unwrap_or_default()),
                Some(from) => {
                    let key = from.secret_key_ref.as_ref().unwrap();
                    assert_eq!(key.optional, Some(false));
                    format!("{}<-{}/{}", v.name, key.name, key.key)
                }
            })
            .collect()
    }

    #[test]
    fn every_field_becomes_the_registry_s_own_setting() {
        let vars = registry_env(&s3(json!({
            "bucket": "artifacts", "region": "eu-west-1", "endpoint": "minio.storage:9000",
            "rootDirectory": "/caches/a", "forcePathStyle": true, "insecure": true,
            "secretName": "s3-keys"
        })));
        assert_eq!(
            rendered(&vars),
            [
                "REGISTRY_STORAGE=s3",
                "REGISTRY_STORAGE_S3_BUCKET=artifacts",
                "REGISTRY_STORAGE_S3_REGION=eu-west-1",
                "REGISTRY_STORAGE_S3_REGIONENDPOINT=http://minio.storage:9000",
                "REGISTRY_STORAGE_S3_ROOTDIRECTORY=/caches/a",
                "REGISTRY_STORAGE_S3_FORCEPATHSTYLE=true",
                "REGISTRY_STORAGE_S3_SECURE=false",
                "REGISTRY_STORAGE_S3_ACCESSKEY<-s3-keys/AWS_ACCESS_KEY_ID",
                "REGISTRY_STORAGE_S3_SECRETKEY<-s3-keys/AWS_SECRET_ACCESS_KEY",
                "REGISTRY_STORAGE_REDIRECT_DISABLE=true",
            ]
        );
    }

    #[test]
    fn a_bucket_alone_is_aws_over_https_with_the_default_credential_chain() {
        let vars = registry_env(&s3(json!({"bucket": "artifacts"})));
        assert_eq!(
            rendered(&vars),
            [
                "REGISTRY_STORAGE=s3",
                "REGISTRY_STORAGE_S3_BUCKET=artifacts",
                "REGISTRY_STORAGE_S3_REGION=us-east-1",
                "REGISTRY_STORAGE_S3_FORCEPATHSTYLE=false",
                "REGISTRY_STORAGE_S3_SECURE=true",
                "REGISTRY_STORAGE_REDIRECT_DISABLE=true",
            ]
        );
        assert!(vars.iter().all(|v| !v.name.contains("KEY")));
    }

    #[test]
    fn the_endpoint_scheme_follows_insecure() {
        assert_eq!(
            endpoint_url("s3.example:443", false).unwrap(),
            "https://s3.example:443"
        );
        assert_eq!(
            endpoint_url("http://10.0.0.5:9000", true).unwrap(),
            "http://10.0.0.5:9000"
        );
        assert_eq!(
            endpoint_url("https://rgw.example", false).unwrap(),
            "https://rgw.example"
        );
    }

    #[test]
    fn bad_values_are_refused_naming_the_field_and_the_value() {
        let cases = [
            (
                json!({"storage": {"size": "1Gi", "s3": {"bucket": "artifacts"}}}),
                "spec.storage.size \"1Gi\" and spec.storage.s3 exclude each other",
            ),
            (
                json!({"storage": {"storageClassName": "fast", "s3": {"bucket": "artifacts"}}}),
                "spec.storage.storageClassName \"fast\" and spec.storage.s3",
            ),
            (
                json!({"storage": {"s3": {"bucket": "My_Bucket"}}}),
                "spec.storage.s3.bucket \"My_Bucket\" is not a bucket name",
            ),
            (
                json!({"storage": {"s3": {"bucket": "ab"}}}),
                "spec.storage.s3.bucket \"ab\"",
            ),
            (
                json!({"storage": {"s3": {"bucket": "artifacts", "region": "eu west"}}}),
                "spec.storage.s3.region \"eu west\"",
            ),
            (
                json!({"storage": {"s3": {"bucket": "artifacts", "endpoint": "http://minio:9000"}}}),
                "spec.storage.s3.endpoint \"http://minio:9000\" is plain HTTP: set \
                 spec.storage.s3.insecure to true",
            ),
            (
                json!({"storage": {"s3": {"bucket": "artifacts", "endpoint": "https://minio", "insecure": true}}}),
                "spec.storage.s3.endpoint \"https://minio\" is HTTPS but spec.storage.s3.insecure is true",
            ),
            (
                json!({"storage": {"s3": {"bucket": "artifacts", "endpoint": "ftp://minio"}}}),
                "spec.storage.s3.endpoint \"ftp://minio\" has the scheme \"ftp\"",
            ),
            (
                json!({"storage": {"s3": {"bucket": "artifacts", "endpoint": "mini o"}}}),
                "spec.storage.s3.endpoint \"mini o\" is not host[:port]",
            ),
            (
                json!({"storage": {"s3": {"bucket": "artifacts", "rootDirectory": "a b"}}}),
                "spec.storage.s3.rootDirectory \"a b\"",
            ),
            (
                json!({"storage": {"s3": {"bucket": "artifacts", "secretName": "Keys!"}}}),
                "spec.storage.s3.secretName \"Keys!\" is not a Secret name",
            ),
        ];
        for (spec, expected) in cases {
            let error = validate(&cache(spec.clone())).unwrap_err();
            assert!(error.0.contains(expected), "{spec}: {error}");
        }
    }

    #[test]
    fn good_values_pass() {
        for spec in [
            json!({}),
            json!({"storage": {"s3": {"bucket": "artifacts"}}}),
            json!({"storage": {"s3": {"bucket": "my.bucket-1", "region": "eu-west-1",
                "endpoint": "https://s3.eu-west-1.amazonaws.com", "rootDirectory": "/a/b",
                "secretName": "s3-keys"}}}),
            json!({"storage": {"s3": {"bucket": "artifacts", "endpoint": "http://[::1]:9000",
                "insecure": true}}}),
        ] {
            assert_eq!(validate(&cache(spec.clone())), Ok(()), "{spec}");
        }
    }
}
