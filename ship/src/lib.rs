//! How oras-operator is shipped, without kwctl, helm or a container engine: the policy
//! annotated and pushed as Kubewarden's OCI artifact, the static binaries pushed as
//! multi-platform images, and the Helm chart pushed as Helm's OCI artifact. Everything
//! built from one commit is byte for byte the same, wherever it is built.

pub mod archive;
pub mod build_info;
pub mod chart;
pub mod image;
pub mod policy;
pub mod registry;

use anyhow::Result;
use serde::Serialize;

/// JSON with every object's keys sorted: the same value always gives the same bytes
/// (and so the same digest), whatever map type held it.
pub fn canonical_json(value: &impl Serialize) -> Result<Vec<u8>> {
    let mut value = serde_json::to_value(value)?;
    value.sort_all_objects();
    Ok(serde_json::to_vec(&value)?)
}
