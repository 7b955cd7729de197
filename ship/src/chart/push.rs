//! Uploads a packaged chart the way `helm push` does.

use std::collections::BTreeMap;

use anyhow::Result;
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageManifest};

use crate::build_info::{BuildInfo, TITLE, VERSION};
use crate::canonical_json;
use crate::chart::{CONFIG_MEDIA_TYPE, CONTENT_MEDIA_TYPE, Chart};
use crate::registry::{Blob, Repository};

const DESCRIPTION: &str = "org.opencontainers.image.description";
const URL: &str = "org.opencontainers.image.url";

/// Push `chart` to `destination/NAME:VERSION` (`destination` is `host[:port]/path`, what
/// follows `oci://` in `helm push`); returns `destination/NAME@sha256:...`.
pub async fn push_chart(
    chart: &Chart,
    destination: &str,
    plain_http: bool,
    info: &BuildInfo,
) -> Result<String> {
    // Checked in BuildInfo::new: not negative.
    let mtime = u64::try_from(info.epoch).unwrap_or_default();
    let content = Blob::new(CONTENT_MEDIA_TYPE, chart.package(mtime)?);
    let config = Blob::new(CONFIG_MEDIA_TYPE, canonical_json(&chart.metadata)?);
    let manifest = OciImageManifest {
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
        config: config.descriptor(),
        layers: vec![content.descriptor()],
        annotations: Some(annotations(chart, info)),
        ..OciImageManifest::default()
    };
    let repository =
        Repository::connect(&format!("{destination}/{}", chart.name), plain_http).await?;
    repository.push_blob(&content).await?;
    repository.push_blob(&config).await?;
    let digest = repository
        .push_manifest(
            &chart.version,
            OCI_IMAGE_MEDIA_TYPE,
            canonical_json(&manifest)?,
        )
        .await?;
    Ok(format!("{}@{digest}", repository.name()))
}

/// What `helm push` writes (title, version, description, url), and where the chart was
/// built from.
fn annotations(chart: &Chart, info: &BuildInfo) -> BTreeMap<String, String> {
    let mut annotations = info.annotations();
    annotations.insert(TITLE.to_string(), chart.name.clone());
    annotations.insert(VERSION.to_string(), chart.version.clone());
    for (key, field) in [(DESCRIPTION, "description"), (URL, "home")] {
        if let Some(value) = chart.metadata[field].as_str() {
            annotations.insert(key.to_string(), value.to_string());
        }
    }
    annotations
}
