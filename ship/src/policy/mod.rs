//! What `kwctl annotate` and `kwctl push` do, for machines without kwctl: embed a
//! policy's metadata in its wasm module as the `io.kubewarden.metadata` custom section,
//! and push the annotated module as a Kubewarden OCI artifact.

pub mod artifact;
pub mod metadata;
pub mod push;
pub mod wasm_sections;

/// Name of the custom section Kubewarden reads a policy's metadata from.
pub const METADATA_SECTION: &str = "io.kubewarden.metadata";
