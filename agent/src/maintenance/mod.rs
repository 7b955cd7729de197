//! The registry pod's side of garbage collection. `oras-agent serve-registry` runs the
//! registry as its child and, on an authenticated `POST /collect` from `oras-agent
//! collect`, collects its garbage while it refuses pushes:
//!
//! 1. the registry is restarted read-only (`storage.maintenance.readonly`): pulls go on,
//!    every write is answered 405, which the agent retries until its retry window ends;
//! 2. `registry garbage-collect --delete-untagged` runs against the same storage;
//! 3. the registry is restarted read-write.
//!
//! Nothing tagged is deleted (the collector deletes only what no tag reaches). A push in
//! flight either completes or fails cleanly: its uploads are refused during the window
//! and retried after it, and a blob uploaded just before the window whose manifest came
//! after it was collected: the registry refuses that manifest (blob unknown), so no tag
//! ever points at a missing blob, and the agent uploads the blob again.

pub mod client;
pub mod collection;
pub mod process;
pub mod server;
pub mod supervisor;
