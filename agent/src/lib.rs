//! `oras-agent` as a library: the binary (`main.rs`) parses arguments and runs these
//! modules; the fuzz targets (`fuzz/`) call the parsers that face untrusted bytes.

pub mod cli;
pub mod credentials;
pub mod fsutil;
pub mod init;
pub mod launch;
pub mod layout;
pub mod logging;
pub mod maintenance;
pub mod progress;
pub mod provenance;
pub mod prune;
pub mod reference;
pub mod registry;
pub mod share;
pub mod sidecar;
pub mod transfer;
