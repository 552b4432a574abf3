//! Compiling a guest in a child process, bounded in time and memory.
//!
//! Cranelift's time and memory grow faster than a component's size for
//! some shapes of function (many locals live across thousands of branches,
//! thousands of nested blocks with one `br_table` over them): a 97 KB
//! component took 14 s and 1 GB to compile here, a 1.5 MB one grew past
//! 23 GB. The sandbox's bounds on size and function count do not bound
//! that, and wasmtime cannot stop a compilation once started. So before
//! this process compiles a component, a child process of this binary
//! (the hidden command `__compile`) compiles it first, into an artifact
//! cache: the child stops itself once its resident memory passes
//! `[host] compile_memory_bytes`, and this process kills it once it has run
//! `[host] compile_time`. Only a component the child compiled within both
//! bounds is compiled here, and then the compile is a hit in the cache the
//! child filled (its artifacts are bound to the cache's secret, as any
//! are: see the library's artifact cache).
//!
//! What this module must not do: run any guest code (the child only
//! compiles), or decide whether a component is valid (the child's other
//! failures are left to this process's own load, which reports them as it
//! always does).

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

/// What the child compiles, as this process would load it.
pub enum Target<'a> {
    /// A component file, its artifact cached in `artifacts`.
    File { path: &'a Path, artifacts: &'a Path },
    /// A guest in the module store at `store`, by name or `sha256:` hash.
    Store { store: &'a Path, guest: &'a str },
}

/// The child's arguments (`executor-host __compile ...`); its sandbox
/// configuration comes on stdin, as JSON.
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
    /// A component file.
    #[arg(long, requires = "artifacts")]
    file: Option<PathBuf>,
    /// The artifact cache directory for `--file`.
    #[arg(long)]
    artifacts: Option<PathBuf>,
    /// A module store.
    #[arg(long, requires = "guest")]
    store: Option<PathBuf>,
    /// The deployed name or `sha256:` hash in `--store`.
    #[arg(long)]
    guest: Option<String>,
}

/// Compiles `target` in a child process within `config`'s bounds; `Ok`
/// unless it needed more time or memory than they allow (or could not be
/// started, in which case this process compiles unbounded, with a warning).
pub fn bounded(config: &Config, dev: bool, target: Target<'_>) -> Result<()> {
    let what = match &target {
        Target::File { path, .. } => path.display().to_string(),
        Target::Store { guest, .. } => (*guest).to_owned(),
    };
    let limits = &config.host;
    let mut command = Command::new(match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => {
            tracing::warn!(%error, "cannot find this program to compile {what} in a child process: compiling it here, unbounded");
            return Ok(());
        }
    });
    let time_ms = u64::try_from(limits.compile_time.as_millis()).unwrap_or(u64::MAX);
    command
        .arg("__compile")
        .arg("--memory-bytes")
        .arg(limits.compile_memory_bytes.to_string())
        .arg("--time-ms")
        .arg(time_ms.to_string());
    if dev {
        command.arg("--dev");
    }
    match target {
        Target::File { path, artifacts } => command.arg("--file").arg(path).arg("--artifacts").arg(artifacts),
        Target::Store { store, guest } => command.arg("--store").arg(store).arg("--guest").arg(guest),
    };
    command.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).env_remove("RUST_LOG");
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            tracing::warn!(%error, "cannot start a child process to compile {what}: compiling it here, unbounded");
            return Ok(());
        }
    };
    let settings = serde_json::to_vec(&config.sandbox)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A child that exits early closes the pipe: its status says why.
        let _ = stdin.write_all(&settings);
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
        Some(_) => Ok(()),
        None => bail!("{what} is refused: the process compiling it was killed ({status})"),
    }
}

/// The child: compiles its target as told, within `memory_bytes`. Exits 0
/// when it compiled (and loaded), 1 when the component was refused, and
/// [`OVER_MEMORY`] when its memory passed the bound.
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
    let mut settings = Vec::new();
    std::io::stdin().read_to_end(&mut settings).context("reading the sandbox's settings")?;
    let settings: SandboxConfig = serde_json::from_slice(&settings).context("reading the sandbox's settings")?;
    let sandbox = Sandbox::new(SandboxConfig { dev: args.dev, ..settings })?;
    let loaded = match (args.file, args.artifacts, args.store, args.guest) {
        (Some(file), Some(artifacts), _, _) => {
            let bytes = crate::read_component(&file, &sandbox)?;
            let artifacts = crate::open_dir(&artifacts)?;
            sandbox.load_cached(&bytes, &artifacts).is_ok()
        }
        (_, _, Some(store), Some(guest)) => crate::load_from_store(&sandbox, &guest, &store).is_ok(),
        _ => bail!("name --file and --artifacts, or --store and --guest"),
    };
    Ok(if loaded { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// This process's resident memory, from `/proc` (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// A directory of this process's own for an artifact cache, removed when
/// dropped.
pub struct ScratchDir(PathBuf);

/// The name of every scratch directory starts with this, then the id of
/// the process that made it.
const SCRATCH_PREFIX: &str = "executor-host-compile-";

impl ScratchDir {
    /// A new scratch directory in the temporary directory; those a process
    /// left there when it was killed are removed first.
    pub fn new() -> Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let temp = std::env::temp_dir();
        remove_abandoned(&temp);
        let path =
            temp.join(format!("{SCRATCH_PREFIX}{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// Removes the scratch directories in `temp` of processes that no longer
/// run (killed before they could remove their own). Best effort; Linux
/// only (`/proc`), like the memory bound.
fn remove_abandoned(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) =
            name.to_str().and_then(|n| n.strip_prefix(SCRATCH_PREFIX)).and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() && Path::new("/proc/self").exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
