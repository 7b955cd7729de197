//! Runs the compiled policy the way Kubewarden's policy-server does: a waPC host on
//! wasmtime with WASI, calling the guest's `protocol_version`, `validate_settings` and
//! `validate` functions with JSON payloads. The one host capability the policy uses,
//! Kubewarden's OCI manifest and config lookup, is answered by an [`ImageRegistry`] when
//! one is given; any other host call, or that one without a registry, is an error.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use wapc::WapcHost;
use wasmtime_provider::WasmtimeEngineProviderBuilder;

use crate::compile_cache;
use crate::oci_host::ImageRegistry;

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
        let engine = compile_cache::engine(&compile_cache::default_dir())?;
        let module = wasmtime::Module::new(&engine, bytes)
            .map_err(|e| anyhow::anyhow!("cannot compile the policy module: {e}"))?;
        Ok(Self { engine, module })
    }

    /// An instance without registries: every host call is an error.
    pub fn instantiate(&self) -> Result<PolicyHost> {
        self.instantiate_with(None)
    }

    /// An instance whose image lookups `registry` answers.
    pub fn instantiate_with(&self, registry: Option<Arc<ImageRegistry>>) -> Result<PolicyHost> {
        let engine = WasmtimeEngineProviderBuilder::new()
            .engine(self.engine.clone())
            .module(self.module.clone())
            .build()
            .context("cannot prepare the policy module")?;
        PolicyHost::new(engine, registry)
    }
}

pub struct PolicyHost {
    host: WapcHost,
    host_calls: Arc<AtomicUsize>,
}

impl PolicyHost {
    /// Reads, compiles and instantiates the wasm module at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        CompiledPolicy::load(path)?.instantiate()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        CompiledPolicy::from_bytes(bytes)?.instantiate()
    }

    fn new(
        engine: wasmtime_provider::WasmtimeEngineProvider,
        registry: Option<Arc<ImageRegistry>>,
    ) -> Result<Self> {
        let host_calls = Arc::new(AtomicUsize::new(0));
        let counted = host_calls.clone();
        // The image lookup is the policy's only host call (no cluster context, no
        // logging to the host); answering any other with an error makes it visible.
        let host = WapcHost::new(
            Box::new(engine),
            Some(Box::new(
                move |_, binding, namespace, operation, payload| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    match (binding, namespace, operation, &registry) {
                        ("kubewarden", "oci", "v1/oci_manifest_config", Some(registry)) => {
                            registry.answer(payload).map_err(Into::into)
                        }
                        _ => Err(
                            format!("unexpected host call {binding}/{namespace}/{operation}")
                                .into(),
                        ),
                    }
                },
            )),
        )
        .context("cannot instantiate the policy module")?;
        Ok(Self { host, host_calls })
    }

    /// How many host calls the policy made so far.
    pub fn host_calls(&self) -> usize {
        self.host_calls.load(Ordering::SeqCst)
    }

    /// Calls the guest's `function` with `payload`; its answer as it sent it.
    pub fn call_raw(&self, function: &str, payload: &[u8]) -> Result<Vec<u8>> {
        self.host
            .call(function, payload)
            .with_context(|| format!("the policy's {function} failed"))
    }

    fn call(&self, function: &str, payload: &[u8]) -> Result<Value> {
        let answer = self.call_raw(function, payload)?;
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
