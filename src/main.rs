//! `executor-host`: check, build, deploy and run executor guests.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::sync::Arc;

use executor_host::ModuleStore;
use executor_host::{Limits, NativeProgram, Program};
use executor_host::{Sandbox, SandboxConfig, WasmProgram};
use executor_testkit::harness::{self, Delivery};
use executor_testkit::scenario::{Report, Scenario};

#[derive(Parser)]
#[command(version, about = "Run Anoma's Executor Engine with sandboxed wasm executor functions")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate a component against the `executor` world; print its
    /// exports, imports and size.
    Check {
        /// The component (`.wasm`).
        file: PathBuf,
    },
    /// Build a guest crate for wasm32-unknown-unknown and turn it into a
    /// checked executor component.
    Build {
        /// The guest crate's Cargo.toml (default: the one cargo finds from
        /// the current directory).
        #[arg(long)]
        manifest_path: Option<PathBuf>,
        /// The package to build, in a workspace.
        #[arg(short, long)]
        package: Option<String>,
        /// Cargo profile.
        #[arg(long, default_value = "release")]
        profile: String,
        /// Where to write the component (default: `<crate>.wasm` here).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Validate a component and deploy it into a module store under a name
    /// (replacing any previous deployment of that name).
    Deploy {
        /// The component (`.wasm`).
        file: PathBuf,
        /// The name to deploy it as: 1-64 of a-z, 0-9, `_`, `-`, starting
        /// with a-z or 0-9.
        #[arg(long)]
        name: String,
        /// The module store directory (created if missing).
        #[arg(long, default_value = DEFAULT_STORE)]
        store: PathBuf,
    },
    /// List the modules deployed in a module store: name, hash, size.
    List {
        /// The module store directory (created if missing).
        #[arg(long, default_value = DEFAULT_STORE)]
        store: PathBuf,
    },
    /// Run a scenario on the embedded defaults (in-process shards and
    /// worker) and print a JSON report: each transaction's timestamp,
    /// outcome, gas, values read and written, and the final state.
    Run {
        /// The guest: a component file (`.wasm`) or a deployed name.
        #[arg(long, required_unless_present = "native", conflicts_with = "native")]
        guest: Option<String>,
        /// Run the native build of an example function instead of wasm.
        #[arg(long, value_enum)]
        native: Option<NativeExample>,
        /// The scenario file (JSON; see the README).
        #[arg(long)]
        scenario: PathBuf,
        /// Deliver messages in a random order drawn from this seed, on one
        /// thread (reproducible). Without it, the run is concurrent.
        #[arg(long)]
        seed: Option<u64>,
        /// The module store, for deployed names.
        #[arg(long, default_value = DEFAULT_STORE)]
        store: PathBuf,
    },
    /// Remove a deployed name from a module store.
    Remove {
        /// The deployed name.
        name: String,
        /// The module store directory (created if missing).
        #[arg(long, default_value = DEFAULT_STORE)]
        store: PathBuf,
    },
}

/// The example functions `run --native` can link.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum NativeExample {
    Transfer,
    Counter,
    Nockma,
}

/// The module store used when `--store` is not given.
const DEFAULT_STORE: &str = "executor-store";

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Check { file } => check(&file),
        Cmd::Build { manifest_path, package, profile, output } => {
            build(manifest_path.as_deref(), package.as_deref(), &profile, output)
        }
        Cmd::Deploy { file, name, store } => deploy(&file, &name, &store),
        Cmd::List { store } => list(&store),
        Cmd::Remove { name, store } => remove(&name, &store),
        Cmd::Run { guest, native, scenario, seed, store } => {
            run_scenario(guest.as_deref(), native, &scenario, seed, &store)
        }
    }
}

/// Opens the module store at `path`, creating the directory if `create`.
/// The one place the CLI hands a path's authority to the store.
fn open_store(path: &Path, create: bool) -> Result<ModuleStore> {
    let authority = cap_std::ambient_authority();
    let dir = if create {
        cap_std::fs::Dir::create_ambient_dir_all(path, authority)
            .and_then(|()| cap_std::fs::Dir::open_ambient_dir(path, authority))
    } else {
        cap_std::fs::Dir::open_ambient_dir(path, authority)
    };
    let dir = dir.with_context(|| format!("opening the module store {}", path.display()))?;
    ModuleStore::open(dir).with_context(|| format!("opening the module store {}", path.display()))
}

fn deploy(file: &Path, name: &str, store: &Path) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let sandbox = Sandbox::new(SandboxConfig::default())?;
    let deployed = open_store(store, true)?
        .deploy(&sandbox, name, &bytes)
        .with_context(|| format!("deploying {}", file.display()))?;
    println!("deployed {} as {} ({}, {} bytes)", file.display(), deployed.name, deployed.hash, deployed.size);
    Ok(())
}

fn list(store: &Path) -> Result<()> {
    let deployed = open_store(store, true)?.list().with_context(|| format!("listing {}", store.display()))?;
    let width = deployed.iter().map(|d| d.name.len()).max().unwrap_or(0);
    for d in deployed {
        println!("{:width$}  {}  {} bytes", d.name, d.hash, d.size);
    }
    Ok(())
}

fn remove(name: &str, store: &Path) -> Result<()> {
    open_store(store, true)?.remove(name).with_context(|| format!("removing from {}", store.display()))?;
    println!("removed {name}");
    Ok(())
}

/// Loads the guest named by `guest`: a component file if `guest` ends in
/// `.wasm` (which no deployed name can), otherwise the module deployed under
/// that name in the store at `store`.
fn load_guest(sandbox: &Sandbox, guest: &str, store: &Path) -> Result<WasmProgram> {
    let path = Path::new(guest);
    if path.extension().is_some_and(|e| e == "wasm") {
        let bytes = std::fs::read(path).with_context(|| format!("reading {guest}"))?;
        return sandbox.load(&bytes).with_context(|| format!("{guest} is not a valid executor"));
    }
    if !store.is_dir() {
        bail!("{guest:?} is not a .wasm file, and there is no module store at {}", store.display());
    }
    open_store(store, false)?
        .load(sandbox, guest)
        .with_context(|| format!("loading from the module store {}", store.display()))
}

fn check(file: &Path) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let sandbox = Sandbox::new(SandboxConfig::default())?;
    // Describe first, so even a rejected component shows what it holds.
    if let Ok(info) = sandbox.inspect(&bytes) {
        print!("{info}");
    }
    sandbox.load(&bytes).with_context(|| format!("{} is not a valid executor", file.display()))?;
    println!("ok: {} is a valid executor component", file.display());
    Ok(())
}

fn build(manifest: Option<&Path>, package: Option<&str>, profile: &str, output: Option<PathBuf>) -> Result<()> {
    let mut guest = executor_guest_build::GuestBuild::new(profile);
    if let Some(manifest) = manifest {
        guest = guest.manifest_path(manifest);
    }
    if let Some(package) = package {
        guest = guest.package(package);
    }
    let module = guest.run()?.single().context("pick the guest crate with --package")?;
    let component = module.componentize()?;
    Sandbox::new(SandboxConfig::default())?.load(&component).context("the built component is not a valid executor")?;
    let output = output.unwrap_or_else(|| PathBuf::from(format!("{}.wasm", module.package)));
    std::fs::write(&output, &component).with_context(|| format!("writing {}", output.display()))?;
    println!("built {} ({} bytes)", output.display(), component.len());
    Ok(())
}

fn run_scenario(
    guest: Option<&str>,
    native: Option<NativeExample>,
    scenario: &Path,
    seed: Option<u64>,
    store: &Path,
) -> Result<()> {
    let text = std::fs::read_to_string(scenario).with_context(|| format!("reading {}", scenario.display()))?;
    let scenario =
        Scenario::from_json(&text).with_context(|| format!("{} is not a valid scenario", scenario.display()))?;
    let limits = Limits::default();
    let program: Arc<dyn Program> = match (native, guest) {
        (Some(NativeExample::Transfer), _) => Arc::new(NativeProgram::<transfer_guest::TransferFunction>::new(limits)),
        (Some(NativeExample::Counter), _) => Arc::new(NativeProgram::<counter_guest::CounterFunction>::new(limits)),
        (Some(NativeExample::Nockma), _) => Arc::new(NativeProgram::<nockma_guest::NockmaFunction>::new(limits)),
        (None, Some(guest)) => Arc::new(load_guest(&Sandbox::new(SandboxConfig::default())?, guest, store)?),
        (None, None) => bail!("name a --guest or a --native example"),
    };
    let delivery = match seed {
        Some(seed) => Delivery::Deterministic { seed },
        None => Delivery::Concurrent { threads: std::thread::available_parallelism().map_or(2, usize::from) },
    };
    let outcome = harness::execute(&scenario.workload(), program, &scenario.options, delivery)?;
    println!("{}", Report::from(&outcome));
    Ok(())
}
