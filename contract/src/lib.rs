//! The contract shared by every part of oras-operator: the annotation keys users write,
//! the names the policy gives to what it injects, the command lines it writes for the
//! agent, and the layout of the share the agent roles talk through.
//!
//! Defined once here and imported by the policy, the agent and the tests, so that the
//! parts cannot drift apart.

pub mod agent_args;
pub mod annotations;
pub mod credentials;
pub mod kubernetes;
pub mod pod;
pub mod provenance;
pub mod reference;
pub mod retention;
pub mod share;
