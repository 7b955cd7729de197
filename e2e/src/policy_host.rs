//! Runs the compiled policy the way Kubewarden's policy-server does: a waPC host on
//! wasmtime with WASI, calling the guest's `protocol_version`, `validate_settings` and
//! `validate` functions with JSON payloads.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use wapc::WapcHost;
use wasmtime_provider::WasmtimeEngineProviderBuilder;

/// The policy compiled once, shareable between threads; each [`PolicyHost`] made from
/// it is a fresh instance, as policy-server makes one per worker.
pub struct CompiledPolicy {
    engine: wasmtime::Engine,
    module: wasmtime::Module,
}

impl CompiledPolicy {
    /// Reads and compiles the wasm module at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "cannot read the compiled policy {} (build it with `make policy.wasm`)",
                path.display()
            )
        })?;
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, bytes)
            .map_err(|e| anyhow::anyhow!("cannot compile the policy module: {e}"))?;
        Ok(Self { engine, module })
    }

    pub fn instantiate(&self) -> Result<PolicyHost> {
        let engine = WasmtimeEngineProviderBuilder::new()
            .engine(self.engine.clone())
            .module(self.module.clone())
            .build()
            .context("cannot prepare the policy module")?;
        PolicyHost::new(engine)
    }
}

pub struct PolicyHost {
    host: WapcHost,
}

impl PolicyHost {
    /// Reads, compiles and instantiates the wasm module at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        CompiledPolicy::load(path)?.instantiate()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        CompiledPolicy::from_bytes(bytes)?.instantiate()
    }

    fn new(engine: wasmtime_provider::WasmtimeEngineProvider) -> Result<Self> {
        // The policy makes no host calls (no cluster context, no logging to the host);
        // answering any with an error makes an unexpected one visible.
        let host = WapcHost::new(
            Box::new(engine),
            Some(Box::new(|_, binding, namespace, operation, _| {
                Err(format!("unexpected host call {binding}/{namespace}/{operation}").into())
            })),
        )
        .context("cannot instantiate the policy module")?;
        Ok(Self { host })
    }

    fn call(&self, function: &str, payload: &[u8]) -> Result<Value> {
        let answer = self
            .host
            .call(function, payload)
            .with_context(|| format!("the policy's {function} failed"))?;
        serde_json::from_slice(&answer)
            .with_context(|| format!("the policy's {function} answered something that is not JSON"))
    }

    pub fn protocol_version(&self) -> Result<Value> {
        self.call("protocol_version", b"")
    }

    pub fn validate_settings(&self, settings: &Value) -> Result<Value> {
        self.call("validate_settings", &serde_json::to_vec(settings)?)
    }

    /// Evaluates one admission request (the `request` of an AdmissionReview).
    pub fn validate(&self, settings: &Value, request: &Value) -> Result<Value> {
        let payload = json!({"settings": settings, "request": request});
        self.call("validate", &serde_json::to_vec(&payload)?)
    }

    /// Evaluates a raw payload, as a misbehaving host could send it.
    pub fn validate_raw(&self, payload: &[u8]) -> Result<Value> {
        self.call("validate", payload)
    }
}
