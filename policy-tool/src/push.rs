//! Uploads an annotated policy to a registry with Kubewarden's media types.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

use crate::artifact::{
    CONFIG_CONTENT, CONFIG_MEDIA_TYPE, LAYER_MEDIA_TYPE, LAYER_TITLE, TITLE_ANNOTATION,
};

/// Credentials from `ORAS_USER` / `ORAS_PUSH_PASS`, else anonymous.
fn auth_from_env() -> RegistryAuth {
    match (std::env::var("ORAS_USER"), std::env::var("ORAS_PUSH_PASS")) {
        (Ok(user), Ok(password)) => RegistryAuth::Basic(user, password),
        _ => RegistryAuth::Anonymous,
    }
}

/// Pushes `module` as `reference`; returns the immutable `reference@sha256:...`.
pub async fn push_policy(
    module: Vec<u8>,
    reference: &str,
    annotations: BTreeMap<String, String>,
    plain_http: bool,
) -> Result<String> {
    let image: Reference = reference
        .parse()
        .with_context(|| format!("{reference:?} is not a valid reference"))?;
    let client = Client::new(ClientConfig {
        protocol: if plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        use_monolithic_push: true,
        ..ClientConfig::default()
    });
    let auth = auth_from_env();
    client
        .auth(&image, &auth, oci_client::RegistryOperation::Push)
        .await
        .with_context(|| format!("cannot authenticate to {}", image.resolve_registry()))?;

    let layer_annotations =
        BTreeMap::from([(TITLE_ANNOTATION.to_string(), LAYER_TITLE.to_string())]);
    let layer = ImageLayer::new(
        module,
        LAYER_MEDIA_TYPE.to_string(),
        Some(layer_annotations),
    );
    let config = Config::new(CONFIG_CONTENT.to_vec(), CONFIG_MEDIA_TYPE.to_string(), None);
    let manifest =
        OciImageManifest::build(std::slice::from_ref(&layer), &config, Some(annotations));
    let push_error = || format!("cannot push to {reference}");
    client
        .push_blob(&image, layer.data.clone(), &manifest.layers[0].digest)
        .await
        .with_context(push_error)?;
    client
        .push_blob(&image, config.data.clone(), &manifest.config.digest)
        .await
        .with_context(push_error)?;
    let body = serde_json::to_vec(&manifest)?;
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
    client
        .push_manifest_raw(&image, body, OCI_IMAGE_MEDIA_TYPE.parse()?)
        .await
        .with_context(push_error)?;
    let repository = format!("{}/{}", image.resolve_registry(), image.repository());
    Ok(format!("{repository}@{digest}"))
}
