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
//! - [`s3`]: an S3-compatible server (moto, from the same venv) on 127.0.0.1 with a free
//!   port, killed on drop.
//! - [`tools`]: where `make tools` put the upstream tools (oras Go CLI, helm, etcd,
//!   Kubernetes' binaries, ...).
//! - [`control_plane`]: a real etcd and kube-apiserver on 127.0.0.1, envtest-style.
//! - [`node`]: a whole single-node cluster (kubelet, containerd, scheduler,
//!   controller-manager, kube-proxy, CoreDNS) around that control plane, as root.
//! - [`tls`]: a throw-away CA and serving certificates for test servers.

pub mod control_plane;
pub mod images;
pub mod node;
pub mod oras_py;
pub mod registry;
pub mod s3;
pub mod tls;
pub mod token_server;
pub mod tools;

pub use control_plane::ControlPlane;
pub use images::ContainerImage;
pub use node::Node;
pub use oras_py::OrasPy;
pub use registry::{Registry, RegistryError};
pub use s3::S3Server;
pub use token_server::TokenServer;
