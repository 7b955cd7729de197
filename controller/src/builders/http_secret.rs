//! The registry's HTTP secret (distribution's `REGISTRY_HTTP_SECRET`, the key that signs
//! the state of an upload between its requests). Registry pods that share their storage
//! must share it too, or an upload begun on one pod fails on the next. It comes from
//! `secrets.registryHttp` when the cache names one; a cache on S3 without it gets a
//! generated Secret `<cache>-http-secret`, owned by the cache, made once and never
//! written again (deleting it makes a new one and restarts the pods together).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{EnvVar, PodTemplateSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use super::{REGISTRY_CONTAINER, REGISTRY_HTTP_SECRET_KEY, owned_meta_named, s3::from_secret};
use crate::crd::OrasCache;

/// Random bytes of a generated secret (256 bits), base64 in the Secret.
pub const SECRET_BYTES: usize = 32;
/// Pod template annotation with the SHA-256 of the generated secret: a new secret
/// restarts every registry pod, so that no two pods sign uploads differently for long.
pub const DIGEST_ANNOTATION: &str = "cache.converged-computing.github.io/http-secret-sha256";

/// Whether the controller generates the secret: shared storage and no
/// `secrets.registryHttp`.
pub fn generated(cache: &OrasCache) -> bool {
    cache.spec.storage.s3.is_some() && cache.spec.secrets.registry_http.is_none()
}

/// `<cache>-http-secret`.
pub fn generated_name(cache: &OrasCache) -> String {
    format!("{}-http-secret", cache.name_any())
}

/// The Secret the registry reads its HTTP secret from, when there is one.
pub fn secret_name(cache: &OrasCache) -> Option<String> {
    match &cache.spec.secrets.registry_http {
        Some(name) => Some(name.clone()),
        None if generated(cache) => Some(generated_name(cache)),
        None => None,
    }
}

/// `REGISTRY_HTTP_SECRET` from the Secret's key of that name, when there is a Secret.
pub fn env_var(cache: &OrasCache) -> Option<EnvVar> {
    secret_name(cache)
        .map(|name| from_secret("REGISTRY_HTTP_SECRET", &name, REGISTRY_HTTP_SECRET_KEY))
}

/// A new random secret from the operating system's generator.
pub fn generate() -> Result<String, getrandom::Error> {
    use base64::Engine as _;
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The generated Secret, owned by the cache.
pub fn secret(cache: &OrasCache, owner: OwnerReference, value: &str) -> Secret {
    Secret {
        metadata: owned_meta_named(cache, owner, generated_name(cache)),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            REGISTRY_HTTP_SECRET_KEY.to_string(),
            ByteString(value.as_bytes().to_vec()),
        )])),
        ..Default::default()
    }
}

/// The secret an existing generated Secret holds; the error names the Secret and says
/// how to repair it.
pub fn value_of(secret: &Secret) -> Result<String, String> {
    let name = secret.name_any();
    let bytes = secret
        .data
        .as_ref()
        .and_then(|data| data.get(REGISTRY_HTTP_SECRET_KEY))
        .ok_or_else(|| {
            format!(
                "Secret {name} has no key {REGISTRY_HTTP_SECRET_KEY}: delete the Secret to \
                 generate a new one"
            )
        })?;
    match String::from_utf8(bytes.0.clone()) {
        Ok(text) if !text.is_empty() => Ok(text),
        _ => Err(format!(
            "Secret {name} key {REGISTRY_HTTP_SECRET_KEY} is empty or not UTF-8: delete the \
             Secret to generate a new one"
        )),
    }
}

/// Marks the registry pods with the digest of the generated secret.
pub fn annotate(template: &mut PodTemplateSpec, value: &str) {
    template
        .metadata
        .get_or_insert_with(Default::default)
        .annotations
        .get_or_insert_with(Default::default)
        .insert(
            DIGEST_ANNOTATION.into(),
            format!("{:x}", Sha256::digest(value.as_bytes())),
        );
}

/// Whether `template`'s registry container reads `REGISTRY_HTTP_SECRET` from `secret`.
pub fn reads_from(template: &PodTemplateSpec, secret: &str) -> bool {
    template
        .spec
        .iter()
        .flat_map(|pod| pod.containers.iter())
        .filter(|c| c.name == REGISTRY_CONTAINER)
        .flat_map(|c| c.env.iter().flatten())
        .any(|var| {
            var.name == "REGISTRY_HTTP_SECRET"
                && var
                    .value_from
                    .as_ref()
                    .and_then(|from| from.secret_key_ref.as_ref())
                    .is_some_and(|key| key.name == secret && key.key == REGISTRY_HTTP_SECRET_KEY)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;
    use serde_json::{Value, json};

    fn cache(spec: Value) -> OrasCache {
        let mut cache = OrasCache::new("oras", serde_json::from_value(spec).unwrap());
        cache.metadata.namespace = Some("workflows".into());
        cache.metadata.uid = Some("0b5c6a9e-1111-2222-3333-444455556666".into());
        cache
    }

    #[test]
    fn a_cache_on_s3_without_registry_http_gets_a_generated_secret() {
        let c = cache(json!({"storage": {"s3": {"bucket": "artifacts"}}}));
        assert!(generated(&c));
        assert_eq!(secret_name(&c).as_deref(), Some("oras-http-secret"));
        let template = super::super::pod_template(&c);
        assert!(reads_from(&template, "oras-http-secret"));
    }

    #[test]
    fn registry_http_wins_and_a_volume_cache_needs_none() {
        let named = cache(json!({"storage": {"s3": {"bucket": "artifacts"}},
            "secrets": {"registryHttp": "mine"}}));
        assert!(!generated(&named));
        assert_eq!(secret_name(&named).as_deref(), Some("mine"));
        assert!(reads_from(&super::super::pod_template(&named), "mine"));
        let plain = cache(json!({}));
        assert!(!generated(&plain));
        assert_eq!(env_var(&plain), None);
    }

    #[test]
    fn generated_secrets_are_random_and_round_trip_through_the_secret() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 44, "32 bytes in base64");
        let c = cache(json!({"storage": {"s3": {"bucket": "artifacts"}}}));
        let secret = secret(&c, c.controller_owner_ref(&()).unwrap(), &a);
        assert_eq!(secret.metadata.name.as_deref(), Some("oras-http-secret"));
        assert_eq!(
            secret.metadata.owner_references.as_ref().unwrap()[0].uid,
            "0b5c6a9e-1111-2222-3333-444455556666"
        );
        assert_eq!(value_of(&secret).unwrap(), a);
    }

    #[test]
    fn a_broken_secret_says_how_to_repair_it() {
        let mut broken = Secret::default();
        broken.metadata.name = Some("oras-http-secret".into());
        assert_eq!(
            value_of(&broken).unwrap_err(),
            "Secret oras-http-secret has no key REGISTRY_HTTP_SECRET: delete the Secret to \
             generate a new one"
        );
    }

    #[test]
    fn the_pods_carry_the_digest_never_the_secret() {
        let c = cache(json!({"storage": {"s3": {"bucket": "artifacts"}}}));
        let mut a = super::super::pod_template(&c);
        annotate(&mut a, "first");
        let mut b = super::super::pod_template(&c);
        annotate(&mut b, "second");
        let digest = |t: &PodTemplateSpec| {
            t.metadata.as_ref().unwrap().annotations.as_ref().unwrap()[DIGEST_ANNOTATION].clone()
        };
        assert_ne!(digest(&a), digest(&b));
        assert_eq!(digest(&a).len(), 64);
        assert!(!serde_json::to_string(&a).unwrap().contains("first"));
        assert!(!DIGEST_ANNOTATION.starts_with(oras_contract::annotations::PREFIX));
    }
}
