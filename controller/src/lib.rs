//! The oras-operator controller: `OrasCache` custom resources become registry
//! StatefulSets and Services.
//!
//! - [`crd`]: the custom resource types (the CRD is generated from them),
//! - [`builders`]: pure functions from a cache to its objects and status,
//! - [`controller`]: reconcile, error policy and the watches,
//! - [`server`]: `/metrics`, `/healthz` and `/readyz`,
//! - [`gate`]: the registry port of a cache with `auth.enabled` (`oras-controller gate`).

pub mod builders;
pub mod controller;
pub mod crd;
pub mod error;
pub mod gate;
pub mod metrics;
pub mod server;

pub use controller::{Context, Settings};
pub use crd::{OrasCache, OrasCacheSpec, OrasCacheStatus};
pub use error::Error;
