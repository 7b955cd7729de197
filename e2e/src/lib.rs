//! End-to-end checks of oras-operator without a cluster.
//!
//! - [`policy_host`]: the compiled `policy.wasm` run through the waPC host stack that
//!   Kubewarden's policy-server uses; [`compile_cache`] keeps its compiled form between
//!   processes.
//! - [`oci_host`]: Kubewarden's OCI host capability (an image's manifest and config
//!   from its registry), as policy-server answers the policy's image lookups.
//! - [`fixtures`]: the admission requests under `examples/requests/` and their expected
//!   answers.
//! - [`admission`]: a Kubernetes object through the policy, as the API server would
//!   send it, with the patch the policy applied.
//! - [`pod`], [`runner`], [`isolation`], [`timing`]: the local pod runner, which runs
//!   the pod spec the policy returned the way the kubelet does, with host processes.
//! - [`webhook`]: the compiled policy served to a real API server as a mutating
//!   admission webhook, as policy-server serves it.
//! - [`local`]: the pieces wired together: a real registry on 127.0.0.1, the policy
//!   pointed at it, the runner, as the workflow tests and `make demo` use them.

pub mod admission;
pub mod compile_cache;
pub mod fixtures;
pub mod isolation;
pub mod local;
pub mod oci_host;
pub mod pod;
pub mod policy_host;
pub mod runner;
pub mod timing;
pub mod webhook;
pub mod workspace;
