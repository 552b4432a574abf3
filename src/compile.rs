//! Compiling a guest in a child process, bounded in time and memory.
//!
//! Cranelift's time and memory grow faster than a component's size for
//! some shapes of function (many locals live across thousands of branches,
//! thousands of nested blocks with one `br_table` over them): a 97 KB
//! component took 14 s and 1 GB to compile here, a 1.5 MB one grew past
//! 23 GB. The sandbox's bounds on size and function count do not bound
//! that, and wasmtime cannot stop a compilation once started. So before
//! this process compiles a component, a child process of this binary
//! (the hidden command `__compile`) compiles it first, given the very
//! bytes this process read (or a stored module's hash), into an artifact
//! cache: the store's, or a fresh private scratch directory. The child
//! stops itself once its resident memory passes `[host]
//! compile_memory_bytes` or it has run `[host] compile_time`, and this
//! process kills it then too. Only a component the child compiled within
//! both bounds (or found invalid) is compiled here, and then the compile
//! is a hit in the cache the child filled (its artifacts are bound to the
//! cache's secret, as any are: see the library's artifact cache), except
//! for `deploy`: the store compiles the component once more into its own
//! cache, which keeps an artifact only of what it deploys (the child's is
//! in a scratch directory, so a component refused after compiling leaves
//! nothing in the store). A child that fails otherwise fails the command.
//!
//! What this module must not do: run any guest code (the child only
//! compiles), compile anything unbounded when the child cannot, or decide
//! whether a component is valid (this process's own load reports why a
//! component the child found invalid is refused, as it always did).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use executor_host::{Sandbox, SandboxConfig};

use crate::config::Config;

/// The child's exit status when its memory passed the bound.
const OVER_MEMORY: u8 = 3;
/// The child's exit status when its time passed the bound.
const OVER_TIME: u8 = 4;
/// The child's exit status when it compiled the component (or found it
/// invalid before compiling) and the sandbox refused it: this process's
/// own load says why, at no greater cost.
const REFUSED: u8 = 5;

/// What the child compiles, as this process will load it.
pub enum Target<'a> {
    /// These bytes (the child gets them from this process, never from a
    /// path that could name other bytes by the time it reads), their
    /// artifact cached in `artifacts`. `what` names them in errors.
    Bytes { bytes: &'a [u8], what: &'a str, artifacts: &'a Path },
    /// The module of this SHA-256 in the module store at `store` (a hash,
    /// not a name: a name may be redeployed between two reads).
    Stored { store: &'a Path, hash: &'a str, what: &'a str },
}

/// The child's arguments (`executor-host __compile ...`); its sandbox
/// configuration comes on stdin, as a line of JSON, then the component's
/// bytes with `--artifacts`.
#[derive(clap::Args)]
pub struct ChildArgs {
    /// Stop once resident memory passes this many bytes.
    #[arg(long)]
    memory_bytes: u64,
    /// Stop after this many milliseconds (the parent kills it then too;
    /// this bounds a child whose parent was killed first).
    #[arg(long)]
    time_ms: u64,
    /// The sandbox is in dev mode (never in a configuration).
    #[arg(long)]
    dev: bool,
    /// The artifact cache directory for the bytes on stdin.
    #[arg(long, conflicts_with = "store")]
    artifacts: Option<PathBuf>,
    /// A module store.
    #[arg(long, requires = "hash")]
    store: Option<PathBuf>,
    /// The SHA-256 of the module in `--store`.
    #[arg(long)]
    hash: Option<String>,
}

/// Compiles `target` in a child process within `config`'s bounds; `Ok`
/// unless it needed more time or memory than they allow, or no child
/// could be started (then nothing is compiled: the bound is not given
/// up).
pub fn bounded(config: &Config, dev: bool, target: Target<'_>) -> Result<()> {
    let what = match &target {
        Target::Bytes { what, .. } | Target::Stored { what, .. } => *what,
    };
    let limits = &config.host;
    let exe =
        std::env::current_exe().with_context(|| format!("finding this program, to compile {what} within bounds"))?;
    let mut command = Command::new(exe);
    let time_ms = u64::try_from(limits.compile_time.as_millis()).unwrap_or(u64::MAX);
    // Every value joined to its flag: a path starting with `-` is a value.
    let flag = |name: &str, value: &std::ffi::OsStr| {
        let mut arg = std::ffi::OsString::from(format!("--{name}="));
        arg.push(value);
        arg
    };
    command
        .arg("__compile")
        .arg(format!("--memory-bytes={}", limits.compile_memory_bytes))
        .arg(format!("--time-ms={time_ms}"));
    if dev {
        command.arg("--dev");
    }
    let bytes = match target {
        Target::Bytes { bytes, artifacts, .. } => {
            command.arg(flag("artifacts", artifacts.as_os_str()));
            bytes
        }
        Target::Stored { store, hash, .. } => {
            command.arg(flag("store", store.as_os_str())).arg(flag("hash", hash.as_ref()));
            &[]
        }
    };
    command.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).env_remove("RUST_LOG");
    let mut child = command.spawn().with_context(|| format!("starting a process to compile {what} within bounds"))?;
    let mut input = serde_json::to_vec(&config.sandbox)?;
    input.push(b'\n');
    if let Some(mut stdin) = child.stdin.take() {
        // A child that exits early closes the pipe: its status says why.
        let _ = stdin.write_all(&input).and_then(|()| stdin.write_all(bytes));
    }
    let over_time = || {
        bail!(
            "{what} is refused: compiling it took longer than {} s (`compile_time` in `[host]`)",
            limits.compile_time.as_secs_f64()
        )
    };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for the compiling child process")? {
            break status;
        }
        if started.elapsed() > limits.compile_time {
            let _ = child.kill();
            let _ = child.wait();
            return over_time();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    match status.code() {
        Some(code) if code == i32::from(OVER_TIME) => over_time(),
        Some(code) if code == i32::from(OVER_MEMORY) => bail!(
            "{what} is refused: compiling it needed more than {} bytes of memory (`compile_memory_bytes` in `[host]`)",
            limits.compile_memory_bytes
        ),
        Some(0) => Ok(()),
        Some(code) if code == i32::from(REFUSED) => Ok(()),
        // Not the component's doing, as far as this process knows; and
        // compiling here instead would give the bound up.
        Some(_) => bail!("could not compile {what} within bounds: the compiling process failed ({status})"),
        None => bail!("{what} is refused: the process compiling it was killed ({status})"),
    }
}

/// The child: compiles its target as told, within its bounds. Exits 0
/// when it compiled (and loaded), [`REFUSED`] when the component was
/// refused, [`OVER_MEMORY`] or [`OVER_TIME`] past a bound, and otherwise
/// (1 or 2) when it could not do its work at all.
pub fn child(args: ChildArgs) -> Result<ExitCode> {
    let limit = args.memory_bytes;
    let started = Instant::now();
    let time = Duration::from_millis(args.time_ms);
    std::thread::spawn(move || {
        loop {
            if resident_bytes().is_some_and(|bytes| bytes > limit) {
                std::process::exit(i32::from(OVER_MEMORY));
            }
            if started.elapsed() > time {
                std::process::exit(i32::from(OVER_TIME));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).context("reading the sandbox's settings")?;
    let (settings, bytes) = input.split_at(input.iter().position(|&b| b == b'\n').unwrap_or(input.len()));
    let bytes = bytes.get(1..).unwrap_or_default();
    let settings: SandboxConfig = serde_json::from_slice(settings).context("reading the sandbox's settings")?;
    let sandbox = Sandbox::new(SandboxConfig { dev: args.dev, ..settings })?;
    let loaded = match (args.artifacts, args.store, args.hash) {
        (Some(artifacts), _, _) => sandbox.load_cached(bytes, &crate::open_dir(&artifacts)?).is_ok(),
        (_, Some(store), Some(hash)) => crate::open_store(&store, false)?.load_hash(&sandbox, &hash).is_ok(),
        _ => bail!("name --artifacts, or --store and --hash"),
    };
    Ok(if loaded { ExitCode::SUCCESS } else { ExitCode::from(REFUSED) })
}

/// This process's resident memory, from `/proc` (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// A directory of this process's own for an artifact cache, removed when
/// dropped: made afresh (never one that exists already, which another user
/// could have prepared with an artifact and the secret that vouches for
/// it), under a name no one can guess, readable by this user only.
pub struct ScratchDir(tempfile::TempDir);

/// The name of every scratch directory starts with this, then the id of
/// the process that made it.
const SCRATCH_PREFIX: &str = "executor-host-compile-";

impl ScratchDir {
    /// A new scratch directory in the temporary directory; those this
    /// user's processes left there when they were killed are removed.
    pub fn new() -> Result<Self> {
        let temp = std::env::temp_dir();
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{SCRATCH_PREFIX}{}-", std::process::id()))
            // Not left to the umask: the cache's secret will be in it.
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(&temp)
            .with_context(|| format!("making a directory to compile in, in {}", temp.display()))?;
        remove_abandoned(&temp, dir.path());
        Ok(Self(dir))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// Removes the scratch directories in `temp` of processes that no longer
/// run, made by the user who made `ours`. Best effort; Linux only
/// (`/proc`), like the memory bound.
fn remove_abandoned(temp: &Path, ours: &Path) {
    use std::os::unix::fs::MetadataExt as _;
    let (Ok(entries), Ok(ours)) = (std::fs::read_dir(temp), std::fs::symlink_metadata(ours)) else { return };
    if !Path::new("/proc/self").exists() {
        return;
    }
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) =
            name.to_str().and_then(|n| n.strip_prefix(SCRATCH_PREFIX)).and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        let mine = entry.metadata().is_ok_and(|m| m.is_dir() && m.uid() == ours.uid());
        if mine && pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
