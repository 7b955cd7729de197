//! What `kwctl annotate` does, for machines without kwctl: embed a policy's metadata in
//! its wasm module as the `io.kubewarden.metadata` custom section.

pub mod metadata;
pub mod wasm_sections;

/// Name of the custom section Kubewarden reads a policy's metadata from.
pub const METADATA_SECTION: &str = "io.kubewarden.metadata";
