//! The wasmtime engine of the waPC host, with wasmtime's own compilation cache on disk.
//! Tests and tools build cranelift without optimisations (optimised, it costs minutes of
//! every clean build), so compiling `policy.wasm` takes seconds; with the cache, only the
//! first process after a change of the policy pays that.

use std::path::{Path, PathBuf};

use anyhow::Result;
use wasmtime::{Cache, CacheConfig, Config, Engine};

/// Where compiled modules are kept: `ORAS_POLICY_CACHE_DIR`, else `policy-cache/` in
/// Cargo's target directory.
pub fn default_dir() -> PathBuf {
    std::env::var_os("ORAS_POLICY_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| oras_testkit::oras_py::target_dir().join("policy-cache"))
}

/// An engine with the default settings whose compilations are cached in `dir`.
pub fn engine(dir: &Path) -> Result<Engine> {
    engine_and_cache(dir).map(|(engine, _)| engine)
}

/// The engine and its cache, whose hit and miss counters the tests read.
fn engine_and_cache(dir: &Path) -> Result<(Engine, Cache)> {
    let mut cache_config = CacheConfig::new();
    cache_config.with_directory(dir);
    let cache = Cache::new(cache_config).map_err(|e| {
        anyhow::anyhow!("cannot use {} as the compilation cache: {e}", dir.display())
    })?;
    let mut config = Config::new();
    config.cache(Some(cache.clone()));
    let engine = Engine::new(&config)
        .map_err(|e| anyhow::anyhow!("cannot create the wasmtime engine: {e}"))?;
    Ok((engine, cache))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::Module;

    /// `(module (func (export "answer") (result i32) i32.const 42))` in binary form.
    fn wasm() -> Vec<u8> {
        vec![
            0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
            0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // type 0: () -> i32
            0x03, 0x02, 0x01, 0x00, // function 0 has type 0
            0x07, 0x0a, 0x01, 0x06, b'a', b'n', b's', b'w', b'e', b'r', 0x00, 0x00, // export
            0x0a, 0x06, 0x01, 0x04, 0x00, 0x41, 0x2a, 0x0b, // body: i32.const 42
        ]
    }

    fn answer(engine: &Engine, module: &Module) -> i32 {
        let mut store = wasmtime::Store::new(engine, ());
        let instance = wasmtime::Instance::new(&mut store, module, &[]).unwrap();
        instance
            .get_typed_func::<(), i32>(&mut store, "answer")
            .unwrap()
            .call(&mut store, ())
            .unwrap()
    }

    #[test]
    fn a_second_engine_on_the_same_directory_loads_the_compiled_module() {
        let dir = tempfile::tempdir().unwrap();
        let (first, first_cache) = engine_and_cache(dir.path()).unwrap();
        let module = Module::new(&first, wasm()).unwrap();
        assert_eq!(answer(&first, &module), 42);
        assert_eq!(first_cache.cache_misses(), 1);

        // As the next test process would: a new engine, the same bytes.
        let (second, second_cache) = engine_and_cache(dir.path()).unwrap();
        let module = Module::new(&second, wasm()).unwrap();
        assert_eq!(answer(&second, &module), 42);
        assert_eq!(second_cache.cache_hits(), 1);
        assert_eq!(second_cache.cache_misses(), 0);
    }

    #[test]
    fn other_bytes_are_compiled_not_served_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        Module::new(&engine(dir.path()).unwrap(), wasm()).unwrap();
        let mut other = wasm();
        *other.iter_mut().rev().nth(1).unwrap() = 0x07; // i32.const 7
        let (second, second_cache) = engine_and_cache(dir.path()).unwrap();
        let module = Module::new(&second, other).unwrap();
        assert_eq!(answer(&second, &module), 7);
        assert_eq!(second_cache.cache_misses(), 1);
        assert_eq!(second_cache.cache_hits(), 0);
    }
}
