//! End-to-end checks of oras-operator without a cluster.
//!
//! - [`policy_host`]: the compiled `policy.wasm` run through the waPC host stack that
//!   Kubewarden's policy-server uses.
//! - [`fixtures`]: the admission requests under `examples/requests/` and their expected
//!   answers.

pub mod fixtures;
pub mod policy_host;
pub mod workspace;
