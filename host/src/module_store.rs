//! The module store: guest components deployed under names, in a directory.
//!
//! A [`ModuleStore`] lets a host deploy an executor component once and run
//! it later by name (`executor-host deploy`, `list`, `remove`, and `run
//! --guest <name>`). Deploying validates the component against the
//! `executor` world and compiles it through the sandbox's artifact cache, so
//! a later process loads it without compiling. The layout of the store
//! directory:
//!
//! ```text
//! modules/<sha256 hex>.wasm   each component once, named by its content
//! names/<name>                the hex hash the name points at (one line)
//! artifacts/<key>.cwasm       precompiled artifacts (a cache; deletable)
//! ```
//!
//! **Names** are 1 to 64 bytes of `a-z`, `0-9`, `_` and `-`, starting with a
//! letter or digit ([`validate_name`]): no `/`, `.`, `..`, NUL, or anything
//! else that could leave `names/`. The store is also opened on a
//! [`cap_std::fs::Dir`], so even a bug here cannot reach a file outside it,
//! symbolic links included.
//!
//! **Every write is atomic**: the bytes go to a temporary file in the
//! target's own directory (named `.<target>.<pid>.<n>.tmp`, never a valid
//! name), are synced, and the temporary is renamed over the target. The
//! module is written before the name points at it. A crash at any point
//! leaves the previous deployment of the name intact and loadable; at worst
//! a temporary file or an unreferenced module stays behind, which `list` and
//! `load` ignore and which can be deleted when no deploy is running.
//!
//! What this module must not do: take a path or use ambient authority (the
//! caller opens the directory; only the binary calls
//! `cap_std::ambient_authority()`), run a guest, or trust what it reads from
//! disk (a name's hash is checked for shape and a module's bytes against
//! it). It does not coordinate concurrent writers: deploy and remove from
//! one process at a time; loading and listing are safe alongside them.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use executor_host::ModuleStore;
//! use executor_host::{Sandbox, SandboxConfig};
//!
//! let dir = cap_std::fs::Dir::open_ambient_dir("executor-store", cap_std::ambient_authority())?;
//! let store = ModuleStore::open(dir)?;
//! let sandbox = Sandbox::new(SandboxConfig::default())?;
//! let deployed = store.deploy(&sandbox, "transfer", &std::fs::read("transfer.wasm")?)?;
//! println!("{} -> {} ({} bytes)", deployed.name, deployed.hash, deployed.size);
//! let program = store.load(&sandbox, "transfer")?;
//! # drop(program);
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::fs::Dir;
use sha2::{Digest, Sha256};

use crate::wasm::{LoadError, Sandbox, WasmProgram, read_bounded};

const MODULES: &str = "modules";
const NAMES: &str = "names";
const ARTIFACTS: &str = "artifacts";

/// The longest name a module can be deployed under, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// A deployed module: the name, the component it points at and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Deployed {
    /// The name it is deployed under.
    pub name: String,
    /// The SHA-256 of the component, in lowercase hex.
    pub hash: String,
    /// The component's size in bytes.
    pub size: u64,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The name cannot name a module (see [`validate_name`]).
    #[error("invalid module name {name:?}: {reason} (a name is 1-64 of a-z, 0-9, `_`, `-`, starting with a-z or 0-9)")]
    BadName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No module is deployed under the name.
    #[error("no module deployed as `{name}`")]
    NotFound {
        /// The name looked up.
        name: String,
    },
    /// No stored module has this hash (or it is no hash at all).
    #[error("no stored module has the hash sha256:{hash} (a hash is 64 hex digits, as `list` shows it)")]
    NoSuchHash {
        /// The hash looked up, as given.
        hash: String,
    },
    /// The sandbox refused the module: not an executor component, or one
    /// past this sandbox's limits (the source says which). Nothing was
    /// deployed, or nothing loaded.
    #[error("the sandbox refused the component")]
    InvalidComponent {
        /// Why not.
        #[source]
        error: LoadError,
    },
    /// The component is valid but its compiled artifact could not be kept.
    #[error("caching the compiled component")]
    Artifact {
        /// Why not (a [`LoadError::Cache`]).
        #[source]
        error: LoadError,
    },
    /// The store holds something it never writes (edited or damaged).
    #[error("corrupt module store: {0}")]
    Corrupt(String),
    /// A file operation in the store's directory failed.
    #[error("{context}")]
    Io {
        /// What the store was doing, e.g. `writing names/transfer`.
        context: String,
        /// The operating system's error.
        #[source]
        error: io::Error,
    },
}

impl StoreError {
    fn from_load(error: LoadError) -> Self {
        match error {
            LoadError::Cache { .. } => Self::Artifact { error },
            error => Self::InvalidComponent { error },
        }
    }
}

/// How a module is named by its SHA-256 where a deployed name may also
/// be given (`run --guest sha256:<hash>`).
const HASH_PREFIX: &str = "sha256:";

/// Checks that `name` can name a deployed module: 1 to 64 (`MAX_NAME_LEN`)
/// bytes of `a-z`, `0-9`, `_` and `-`, the first a letter or digit.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    let bad = |reason: String| Err(StoreError::BadName { name: name.to_owned(), reason });
    let Some(first) = name.chars().next() else {
        return bad("empty".into());
    };
    if name.starts_with(HASH_PREFIX) {
        return bad(format!(
            "`{HASH_PREFIX}<hash>` names a module by its hash, not a deployed name (`list` shows the names)"
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return bad(format!("longer than {MAX_NAME_LEN} bytes"));
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return bad(format!("starts with {first:?}"));
    }
    let allowed = |c: &char| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-';
    if let Some(c) = name.chars().find(|c| !allowed(c)) {
        return bad(format!("{c:?} is not allowed"));
    }
    Ok(())
}

/// Deployed components by name, in a directory (see the module docs).
#[derive(Debug)]
pub struct ModuleStore {
    modules: Dir,
    names: Dir,
    artifacts: Dir,
}

impl ModuleStore {
    /// Opens the store in `dir`, creating its subdirectories if missing.
    pub fn open(dir: Dir) -> Result<Self, StoreError> {
        let sub = |name: &str| {
            dir.create_dir_all(name).and_then(|()| dir.open_dir(name)).map_err(io_error(format!("opening {name}/")))
        };
        Ok(Self { modules: sub(MODULES)?, names: sub(NAMES)?, artifacts: sub(ARTIFACTS)? })
    }

    /// Validates `bytes` as an executor component, caches its compiled
    /// artifact, stores it (once per content) and points `name` at it,
    /// replacing any previous deployment of `name`. On any error the store
    /// is as before: the previous deployment stays loadable.
    pub fn deploy(&self, sandbox: &Sandbox, name: &str, bytes: &[u8]) -> Result<Deployed, StoreError> {
        validate_name(name)?;
        self.compile(sandbox, bytes)?;
        let hash = hex(&Sha256::digest(bytes));
        let module = module_file(&hash);
        // Identical bytes are stored once; a damaged copy is replaced.
        let limit = bytes.len() as u64;
        if read_bounded(&self.modules, &module, limit).ok().as_deref() != Some(bytes) {
            write_atomic(&self.modules, MODULES, &module, bytes)?;
        }
        let previous = self.hash_of(name).ok();
        write_atomic(&self.names, NAMES, name, format!("{hash}\n").as_bytes())?;
        if let Some(previous) = previous.filter(|previous| *previous != hash) {
            self.collect(&previous);
        }
        Ok(Deployed { name: name.to_owned(), hash, size: u64::try_from(bytes.len()).unwrap_or(u64::MAX) })
    }

    /// Every deployed module, sorted by name. A name whose file is damaged
    /// or points at a missing module is left out with a warning (loading
    /// it says what is wrong), so that one bad file hides no other.
    pub fn list(&self) -> Result<Vec<Deployed>, StoreError> {
        let mut deployed = Vec::new();
        for name in self.names()? {
            let hash = match self.hash_of(&name) {
                Ok(hash) => hash,
                // Removed since the directory was read.
                Err(StoreError::NotFound { .. }) => continue,
                Err(error @ StoreError::Corrupt(_)) => {
                    tracing::warn!(name, %error, "a deployed name left out of the list");
                    continue;
                }
                Err(error) => return Err(error),
            };
            let module = module_file(&hash);
            let size = match self.modules.metadata(&module) {
                Ok(metadata) => metadata.len(),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    tracing::warn!(
                        name,
                        "a deployed name left out of the list: it points at a missing module {MODULES}/{module}"
                    );
                    continue;
                }
                Err(error) => return Err(io_error(format!("reading {MODULES}/{module}"))(error)),
            };
            deployed.push(Deployed { name, hash, size });
        }
        deployed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(deployed)
    }

    /// Loads the component deployed as `name`, through the artifact cache.
    pub fn load(&self, sandbox: &Sandbox, name: &str) -> Result<WasmProgram, StoreError> {
        validate_name(name)?;
        let hash = self.hash_of(name)?;
        self.load_module(sandbox, &hash, &format!("`{name}` points at a missing module"))
    }

    /// Loads the module whose SHA-256 is `hash` (64 lowercase hex digits,
    /// as [`ModuleStore::list`] shows it), whatever name it is deployed
    /// under: what a deployment pins so that every host runs the same code.
    pub fn load_hash(&self, sandbox: &Sandbox, hash: &str) -> Result<WasmProgram, StoreError> {
        // Hex digits in either case name the same hash, with or without
        // the prefix `list` and `--guest` write.
        let given = hash.strip_prefix(HASH_PREFIX).unwrap_or(hash);
        let hash = &given.to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(StoreError::NoSuchHash { hash: given.to_owned() });
        }
        match self.modules.metadata(module_file(hash)) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::NoSuchHash { hash: given.to_owned() })
            }
            _ => self.load_module(sandbox, hash, "a missing module"),
        }
    }

    fn load_module(&self, sandbox: &Sandbox, hash: &str, missing: &str) -> Result<WasmProgram, StoreError> {
        let module = module_file(hash);
        let limit = sandbox.config().max_component_bytes;
        let bytes = read_bounded(&self.modules, &module, limit).map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => StoreError::Corrupt(format!("{missing} {MODULES}/{module}")),
            _ => read_error(format!("{MODULES}/{module}"))(error),
        })?;
        if hex(&Sha256::digest(&bytes)) != hash {
            return Err(StoreError::Corrupt(format!("{MODULES}/{module} does not match its hash")));
        }
        sandbox.load_cached(&bytes, &self.artifacts).map_err(StoreError::from_load)
    }

    /// The SHA-256 of the module `name` points at (64 lowercase hex
    /// digits, as [`ModuleStore::list`] shows it): what
    /// [`ModuleStore::load_hash`] loads whatever `name` points at later.
    pub fn hash(&self, name: &str) -> Result<String, StoreError> {
        validate_name(name)?;
        self.hash_of(name)
    }

    /// Removes the name `name`, and its module if no other name points at
    /// it. Compiled artifacts stay (they are a cache).
    pub fn remove(&self, name: &str) -> Result<(), StoreError> {
        validate_name(name)?;
        // A damaged name file can still be removed.
        let hash = self.hash_of(name).ok();
        self.names.remove_file(name).map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => StoreError::NotFound { name: name.to_owned() },
            _ => io_error(format!("removing {NAMES}/{name}"))(error),
        })?;
        sync_dir(&self.names, NAMES)?;
        if let Some(hash) = hash {
            self.collect(&hash);
        }
        Ok(())
    }

    /// Validates the component by loading it with the store's artifact
    /// directory, so its compiled artifact is kept there. A debug build is
    /// refused even by a dev sandbox: it is for `run --dev`, never for a
    /// deployment.
    fn compile(&self, sandbox: &Sandbox, bytes: &[u8]) -> Result<(), StoreError> {
        let before = self.artifact_files()?;
        let loaded = sandbox
            .load_cached(bytes, &self.artifacts)
            .and_then(|program| if program.is_debug_build() { Err(LoadError::DebugBuild) } else { Ok(program) });
        match loaded {
            Ok(_) => Ok(()),
            Err(error) => {
                // The sandbox checks the world after compiling (and caching):
                // drop any artifact this failed load left behind.
                if let Ok(after) = self.artifact_files() {
                    for file in after.difference(&before) {
                        let _ = self.artifacts.remove_file(file);
                    }
                }
                Err(StoreError::from_load(error))
            }
        }
    }

    fn artifact_files(&self) -> Result<HashSet<OsString>, StoreError> {
        let context = || format!("listing {ARTIFACTS}/");
        let mut files = HashSet::new();
        for entry in self.artifacts.entries().map_err(io_error(context()))? {
            let file = entry.map_err(io_error(context()))?.file_name();
            if file.to_str().is_some_and(|f| f.ends_with(".cwasm") && !f.starts_with('.')) {
                files.insert(file);
            }
        }
        Ok(files)
    }

    /// Every valid name in `names/` (temporary files are not valid names).
    fn names(&self) -> Result<Vec<String>, StoreError> {
        let context = || format!("listing {NAMES}/");
        let mut names = Vec::new();
        for entry in self.names.entries().map_err(io_error(context()))? {
            let file = entry.map_err(io_error(context()))?.file_name();
            if let Some(name) = file.to_str().filter(|name| validate_name(name).is_ok()) {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    /// The hash `name` points at.
    fn hash_of(&self, name: &str) -> Result<String, StoreError> {
        let text = read_bounded(&self.names, name, NAME_FILE_BYTES).map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => StoreError::NotFound { name: name.to_owned() },
            _ => read_error(format!("{NAMES}/{name}"))(error),
        })?;
        let text = String::from_utf8_lossy(&text);
        let hash = text.strip_suffix('\n').unwrap_or(&text);
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(StoreError::Corrupt(format!("{NAMES}/{name} does not hold a SHA-256 hash")));
        }
        Ok(hash.to_owned())
    }

    /// Removes the module `hash` if no name points at it. Best effort: a
    /// module left behind is harmless.
    fn collect(&self, hash: &str) {
        let Ok(names) = self.names() else { return };
        if names.iter().any(|name| self.hash_of(name).ok().as_deref() == Some(hash)) {
            return;
        }
        let module = module_file(hash);
        match self.modules.remove_file(&module) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(%error, "could not remove the unused module {MODULES}/{module}"),
        }
    }
}

fn module_file(hash: &str) -> String {
    format!("{hash}.wasm")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The store error of a failed [`read_bounded`] of `path`: damage is
/// `Corrupt`, naming the path.
fn read_error(path: String) -> impl FnOnce(io::Error) -> StoreError {
    move |error| match error.kind() {
        io::ErrorKind::InvalidData => StoreError::Corrupt(format!("{path} {error}")),
        _ => StoreError::Io { context: format!("reading {path}"), error },
    }
}

/// The longest name file the store writes: a hash and a newline.
const NAME_FILE_BYTES: u64 = 65;

fn io_error(context: String) -> impl FnOnce(io::Error) -> StoreError {
    move |error| StoreError::Io { context, error }
}

/// Writes `file` in `dir` atomically: a synced temporary file in the same
/// directory, renamed over the target, then the directory synced.
fn write_atomic(dir: &Dir, dir_name: &str, file: &str, bytes: &[u8]) -> Result<(), StoreError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let temp = format!(".{file}.{}.{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let written = dir.create(&temp).and_then(|mut out| {
        out.write_all(bytes)?;
        out.sync_all()
    });
    let renamed = written.and_then(|()| dir.rename(&temp, dir, file));
    if let Err(error) = renamed {
        let _ = dir.remove_file(&temp);
        return Err(io_error(format!("writing {dir_name}/{file}"))(error));
    }
    sync_dir(dir, dir_name)
}

/// Makes a rename in `dir` durable. (A `Dir`'s own handle may be `O_PATH`,
/// which cannot be synced: open the directory for reading.)
fn sync_dir(dir: &Dir, dir_name: &str) -> Result<(), StoreError> {
    dir.open(".").and_then(|dir| dir.sync_all()).map_err(io_error(format!("syncing {dir_name}/")))
}
