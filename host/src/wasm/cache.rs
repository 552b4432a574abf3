//! The compiled-artifact cache, keyed by the component's content hash and
//! the engine's whole configuration, with every artifact on disk bound to
//! its key by a MAC.
//!
//! Why the configuration and not just wasmtime's compatibility check:
//! wasmtime accepts a precompiled artifact built without NaN
//! canonicalization into an engine that has it on, and the guest then
//! silently produces non-canonical NaNs. So the key covers every setting
//! the sandbox gives the engine ([`super::EngineSettings`], the same value
//! that configures it), plus wasmtime's own compatibility hash, plus
//! whether the sandbox is in dev mode (it then accepts components a
//! production sandbox refuses, and artifacts skip the world check).
//!
//! Why a MAC: deserializing an artifact runs its machine code, outside the
//! sandbox. A file name proves nothing (copying one component's artifact
//! over another's made the host run the wrong code), so each artifact on
//! disk carries an HMAC-SHA-256 over its key and its bytes, under a secret
//! kept in the artifact directory (`.artifact-key`, created readable by
//! its owner only). An artifact whose tag does not verify is never
//! deserialized: the component is compiled again and the file replaced.
//! What this protects against: swapped, stale, corrupt or crafted files
//! from anyone who cannot read the secret. Whoever can read the secret and
//! write the directory can forge artifacts: keep the store directory the
//! host's own.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::EngineSettings;
use super::inspect::{LoadError, cause};

/// The header of an artifact file: magic and format version, then the
/// 32-byte tag, then wasmtime's serialized component.
const MAGIC: &[u8; 8] = b"EXHCWA\x00\x01";
const TAG: usize = 32;
/// The secret's file in the artifact directory.
const SECRET: &str = ".artifact-key";

/// Compiled components by key, in memory, and optionally on disk.
pub struct ArtifactCache {
    /// Hash of the engine configuration, mixed into every key.
    config_digest: [u8; 32],
    compiled: Mutex<Remembered<Component>>,
}

/// The components kept in memory: the last [`REMEMBERED`] compiled or
/// loaded, so that a long-lived process that loads many components (a
/// host trying each new deployment) does not keep every one for ever.
/// A program holds its own component: forgetting one here only means that
/// loading it again reads its artifact (or compiles it) again.
struct Remembered<C> {
    components: HashMap<[u8; 32], C>,
    /// Keys, oldest first.
    order: std::collections::VecDeque<[u8; 32]>,
}

impl<C> Default for Remembered<C> {
    fn default() -> Self {
        Self { components: HashMap::new(), order: std::collections::VecDeque::new() }
    }
}

/// How many compiled components a sandbox keeps in memory.
const REMEMBERED: usize = 32;

impl<C: Clone> Remembered<C> {
    fn get(&self, key: &[u8; 32]) -> Option<C> {
        self.components.get(key).cloned()
    }

    fn insert(&mut self, key: [u8; 32], component: C) {
        if self.components.insert(key, component).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > REMEMBERED {
            if let Some(oldest) = self.order.pop_front() {
                self.components.remove(&oldest);
            }
        }
    }
}

impl std::fmt::Debug for ArtifactCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactCache").field("config", &hex::encode(self.config_digest)).finish_non_exhaustive()
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

/// The digest of everything that shapes compiled code, and of which
/// components the sandbox accepts: `dev` sandboxes also accept debug
/// builds, and an artifact is trusted without checking its world again,
/// so a production sandbox must never find one a dev sandbox kept.
pub(super) fn config_digest(engine: &Engine, settings: &EngineSettings, dev: bool) -> [u8; 32] {
    let mut sha = Sha256::new();
    sha.update(b"executor-host artifact v2\0wasmtime 48.0.8\0");
    // Serialized, so every field (including future ones) is covered.
    sha.update(serde_json::to_vec(settings).unwrap_or_default());
    engine.precompile_compatibility_hash().hash(&mut ShaHasher(&mut sha));
    // Only in dev mode, so that production keys (and the artifacts already
    // on disk) stay as they were.
    if dev {
        sha.update(b"\0dev: the executor-debug world is accepted\0");
    }
    sha.finalize().into()
}

impl ArtifactCache {
    pub(super) fn new(engine: &Engine, settings: &EngineSettings, dev: bool) -> Self {
        Self { config_digest: config_digest(engine, settings, dev), compiled: Mutex::new(Remembered::default()) }
    }

    fn key(&self, bytes: &[u8]) -> [u8; 32] {
        let mut sha = Sha256::new();
        sha.update(self.config_digest);
        sha.update(Sha256::digest(bytes));
        sha.finalize().into()
    }

    /// The compiled component of `bytes`, if this process loaded it.
    pub(super) fn remembered(&self, bytes: &[u8]) -> Option<Component> {
        self.compiled.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&self.key(bytes))
    }

    /// The compiled component of `bytes`: from memory, from a verified
    /// artifact in `dir`, or compiled (and, once `validate` accepts it,
    /// kept in `dir`).
    pub(super) fn get_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        dir: Option<&cap_std::fs::Dir>,
        validate: impl Fn(&Component) -> Result<(), LoadError>,
    ) -> Result<Component, LoadError> {
        let key = self.key(bytes);
        let file = format!("{}.cwasm", hex::encode(key));
        let remembered = self.compiled.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key);
        let component = match remembered {
            Some(component) => {
                // Compiled before in this process, maybe without a
                // directory: make sure the directory keeps it too. (Whether
                // the file there verifies is checked when a process loads
                // it; deserializing it here only to look would cost a load.)
                if let Some(dir) = dir
                    && !dir.exists(&file)
                {
                    store_artifact(dir, &file, &key, &component)?;
                }
                return Ok(component);
            }
            None => match dir.and_then(|dir| load_artifact(engine, dir, &file, &key)) {
                Some(component) => component,
                None => {
                    let component = Component::new(engine, bytes).map_err(super::inspect::compile_error)?;
                    validate(&component)?;
                    if let Some(dir) = dir {
                        store_artifact(dir, &file, &key, &component)?;
                    }
                    component
                }
            },
        };
        self.compiled.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, component.clone());
        Ok(component)
    }
}

/// The directory's artifact secret, created on first use.
fn secret(dir: &cap_std::fs::Dir) -> Result<[u8; 32], LoadError> {
    if let Ok(bytes) = read_bounded(dir, SECRET, 32)
        && let Ok(secret) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(secret);
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| failed("making", SECRET)(e.to_string()))?;
    // Written like an artifact (temporary file, then rename), readable by
    // its owner only; a concurrent first use may win the race, and then
    // its secret is the one on disk and the one to use.
    write_atomically(dir, SECRET, &secret)?;
    let bytes = read_bounded(dir, SECRET, 32).map_err(failed("reading", SECRET))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| failed("reading", SECRET)("not 32 bytes"))
}

/// The most bytes an artifact file is read for: far more than any
/// component the sandbox loads compiles to.
const ARTIFACT_BYTES: u64 = 1 << 30;

/// The bytes of `file` in `dir`, a regular file of at most `limit` bytes.
/// The artifact cache and the module store write their files themselves:
/// anything else there (a pipe or a device, which would block or never
/// end, or a file grown past what they could have written) is damage,
/// refused unread as `InvalidData`.
pub(crate) fn read_bounded(dir: &cap_std::fs::Dir, file: &str, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let damaged = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let metadata = dir.metadata(file)?;
    if !metadata.is_file() {
        return Err(damaged("is not a regular file".into()));
    }
    if metadata.len() > limit {
        return Err(damaged(format!("is larger than {limit} bytes")));
    }
    let mut bytes = Vec::new();
    dir.open(file)?.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(damaged(format!("is larger than {limit} bytes")));
    }
    Ok(bytes)
}

fn tag(secret: &[u8; 32], key: &[u8; 32], artifact: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(key);
    mac.update(artifact);
    mac
}

/// Loads a precompiled artifact whose tag verifies; any problem (missing,
/// truncated, swapped, crafted, from another wasmtime) means "compile
/// again", never an error.
fn load_artifact(engine: &Engine, dir: &cap_std::fs::Dir, file: &str, key: &[u8; 32]) -> Option<Component> {
    let bytes = read_bounded(dir, file, ARTIFACT_BYTES).ok()?;
    let rest = bytes.strip_prefix(MAGIC)?;
    let (claimed, artifact) = rest.split_at_checked(TAG)?;
    let secret = secret(dir).ok()?;
    if tag(&secret, key, artifact).verify_slice(claimed).is_err() {
        tracing::warn!(file, "artifact does not verify: compiling again");
        return None;
    }
    // SAFETY: `Component::deserialize` runs machine code from the artifact.
    // Its tag proves this host (or one holding the directory's secret)
    // wrote it for exactly this key: this component under this engine
    // configuration. wasmtime still checks its header and version.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize(engine, artifact) };
    component.ok()
}

/// Writes an artifact with its tag, atomically.
fn store_artifact(dir: &cap_std::fs::Dir, file: &str, key: &[u8; 32], component: &Component) -> Result<(), LoadError> {
    let artifact = component.serialize().map_err(failed("serializing", file))?;
    let secret = secret(dir)?;
    let mut bytes = Vec::with_capacity(MAGIC.len() + TAG + artifact.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&tag(&secret, key, &artifact).finalize().into_bytes());
    bytes.extend_from_slice(&artifact);
    write_atomically(dir, file, &bytes)
}

/// Writes `file` through a temporary file of its own (unique per process
/// and call, so concurrent loads of one component never share one), synced
/// and renamed over the target, so a crash leaves the old file or none,
/// never half of one; owner-only permissions. A failed write removes its
/// temporary file.
fn write_atomically(dir: &cap_std::fs::Dir, file: &str, bytes: &[u8]) -> Result<(), LoadError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let temp = format!(".{file}.{}.{}.tmp", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let mut options = cap_std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    cap_std::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = dir.open_with(&temp, &options).and_then(|mut out| {
        out.write_all(bytes)?;
        out.sync_all()
    });
    let renamed = written.and_then(|()| dir.rename(&temp, dir, file));
    if let Err(error) = renamed {
        let _ = dir.remove_file(&temp);
        return Err(failed("writing", file)(error));
    }
    Ok(())
}

/// Makes a [`LoadError::Cache`] of a failure while `doing` something to
/// `file`.
fn failed<E: Into<Box<dyn std::error::Error + Send + Sync>>>(doing: &str, file: &str) -> impl FnOnce(E) -> LoadError {
    let context = format!("{doing} {file}");
    move |e| LoadError::Cache { context, source: cause(e) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sandbox_remembers_only_the_last_components() {
        let mut remembered = Remembered::default();
        let key = |i: u8| [i; 32];
        for i in 0..40 {
            remembered.insert(key(i), i);
            remembered.insert(key(i), i);
        }
        assert_eq!(remembered.components.len(), REMEMBERED);
        assert_eq!(remembered.order.len(), REMEMBERED);
        assert_eq!(remembered.get(&key(7)), None, "the oldest are forgotten");
        assert_eq!(remembered.get(&key(39)), Some(39));
        assert_eq!(remembered.get(&key(8)), Some(8));
    }
}
