//! The compiled-artifact cache, keyed by the component's content hash and
//! the whole sandbox configuration.
//!
//! Why the configuration and not just wasmtime's compatibility check:
//! wasmtime accepts a precompiled artifact built without NaN
//! canonicalization into an engine that has it on, and the guest then
//! silently produces non-canonical NaNs. So the key covers every setting
//! that could change compiled code, plus wasmtime's own compatibility hash.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::SandboxConfig;
use super::inspect::{LoadError, cause};

/// Compiled components by key, in memory, and optionally on disk.
pub struct ArtifactCache {
    /// Hash of the engine configuration, mixed into every key.
    config_digest: [u8; 32],
    compiled: Mutex<HashMap<[u8; 32], Component>>,
}

impl std::fmt::Debug for ArtifactCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactCache").field("config", &hex(&self.config_digest)).finish_non_exhaustive()
    }
}

/// Feeds `Hash` output into SHA-256 (stable across processes, unlike
/// `DefaultHasher`'s contract).
struct ShaHasher<'a>(&'a mut Sha256);

impl Hasher for ShaHasher<'_> {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ArtifactCache {
    pub(super) fn new(engine: &Engine, config: &SandboxConfig) -> Self {
        let mut sha = Sha256::new();
        sha.update(b"executor-host artifact v1\0wasmtime 48.0.8\0");
        // Serialized, so every field (including future ones) is covered.
        sha.update(serde_json::to_vec(config).unwrap_or_default());
        engine.precompile_compatibility_hash().hash(&mut ShaHasher(&mut sha));
        Self { config_digest: sha.finalize().into(), compiled: Mutex::new(HashMap::new()) }
    }

    fn key(&self, bytes: &[u8]) -> [u8; 32] {
        let mut sha = Sha256::new();
        sha.update(self.config_digest);
        sha.update(Sha256::digest(bytes));
        sha.finalize().into()
    }

    pub(super) fn get_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        dir: Option<&cap_std::fs::Dir>,
    ) -> Result<Component, LoadError> {
        let key = self.key(bytes);
        let memory = |compiled: &Mutex<HashMap<_, Component>>| {
            compiled.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key).cloned()
        };
        if let Some(component) = memory(&self.compiled) {
            return Ok(component);
        }
        let file = format!("{}.cwasm", hex(&key));
        let component = match dir.and_then(|dir| load_artifact(engine, dir, &file)) {
            Some(component) => component,
            None => {
                let component = Component::new(engine, bytes).map_err(|e| LoadError::Invalid(cause(e)))?;
                if let Some(dir) = dir {
                    store_artifact(dir, &file, &component)?;
                }
                component
            }
        };
        self.compiled.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, component.clone());
        Ok(component)
    }
}

/// Loads a precompiled artifact; any problem (missing, truncated, from
/// another wasmtime) means "compile again", never an error.
fn load_artifact(engine: &Engine, dir: &cap_std::fs::Dir, file: &str) -> Option<Component> {
    let bytes = dir.read(file).ok()?;
    // SAFETY: `Component::deserialize` runs machine code from the artifact.
    // The cache directory belongs to this host (it writes every artifact in
    // it, named by a key over the component and the configuration); whoever
    // can write there can already run code as this process. wasmtime still
    // checks the artifact's header and version before using it.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize(engine, &bytes) };
    component.ok()
}

/// Writes an artifact atomically: a temporary file, then a rename, so a
/// crash leaves either the old artifact or none, never half of one.
fn store_artifact(dir: &cap_std::fs::Dir, file: &str, component: &Component) -> Result<(), LoadError> {
    let bytes = component.serialize().map_err(failed("serializing", file))?;
    let temp = format!(".{file}.{}.tmp", std::process::id());
    let mut out = dir.create(&temp).map_err(failed("writing", file))?;
    out.write_all(&bytes).and_then(|()| out.sync_all()).map_err(failed("writing", file))?;
    dir.rename(&temp, dir, file).map_err(failed("writing", file))
}

/// Makes a [`LoadError::Cache`] of a failure while `doing` something to
/// `file`.
fn failed<E: Into<Box<dyn std::error::Error + Send + Sync>>>(doing: &str, file: &str) -> impl FnOnce(E) -> LoadError {
    let context = format!("{doing} {file}");
    move |e| LoadError::Cache { context, source: cause(e) }
}
