//! Uploads an annotated policy to a registry with Kubewarden's media types.

use std::collections::BTreeMap;

use anyhow::Result;
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageManifest};

use crate::build_info::TITLE;
use crate::policy::artifact::{CONFIG_CONTENT, CONFIG_MEDIA_TYPE, LAYER_MEDIA_TYPE, LAYER_TITLE};
use crate::registry::{Blob, Repository, split_tag};

/// Pushes `module` as `reference` (`host[:port]/path:tag`); returns the immutable
/// `host[:port]/path@sha256:...`.
pub async fn push_policy(
    module: Vec<u8>,
    reference: &str,
    annotations: BTreeMap<String, String>,
    plain_http: bool,
) -> Result<String> {
    let (repository, tag) = split_tag(reference)?;
    let repository = Repository::connect(&repository, plain_http).await?;
    let mut layer = Blob::new(LAYER_MEDIA_TYPE, module);
    layer.annotations = Some(BTreeMap::from([(
        TITLE.to_string(),
        LAYER_TITLE.to_string(),
    )]));
    let config = Blob::new(CONFIG_MEDIA_TYPE, CONFIG_CONTENT.to_vec());
    let manifest = OciImageManifest {
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
        config: config.descriptor(),
        layers: vec![layer.descriptor()],
        annotations: Some(annotations),
        ..OciImageManifest::default()
    };
    repository.push_blob(&layer).await?;
    repository.push_blob(&config).await?;
    let digest = repository
        .push_manifest(&tag, OCI_IMAGE_MEDIA_TYPE, serde_json::to_vec(&manifest)?)
        .await?;
    Ok(format!("{}@{digest}", repository.name()))
}
