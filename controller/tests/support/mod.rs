//! Helpers shared by the integration-style tests.

pub mod fake_api;
pub mod running;
