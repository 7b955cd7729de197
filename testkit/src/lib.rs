//! Test support shared by the oras-operator crates.
//!
//! - [`registry`]: a real OCI registry (Debian's `docker-registry`, the CNCF
//!   distribution registry) on 127.0.0.1 with a free port and a temporary storage
//!   directory, killed on drop, that can be stopped and restarted on the same port and
//!   storage.
//! - [`images`]: container images (config with Entrypoint/Cmd, a gzip tar layer, image
//!   manifest, image index over platforms) pushed into that registry.
//! - [`oras_py`]: the ORAS Python SDK (`pip install oras`) in a venv made once under the
//!   target directory.

pub mod images;
pub mod oras_py;
pub mod registry;

pub use images::ContainerImage;
pub use oras_py::OrasPy;
pub use registry::{Registry, RegistryError};
