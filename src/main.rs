//! `executor-host`: check, build, deploy and run executor guests.
//!
//! - `config`: the configuration file (`--config`) and how it merges with
//!   scenarios and flags;
//! - `logging`: `tracing` on stderr (`--log-level`, `--log-format`,
//!   `RUST_LOG`);
//! - `output`: what `run`, `list` and `check` print (`--output`), and
//!   `run`'s progress bar.

mod cluster;
mod compile;
mod config;
mod logging;
mod output;
mod scaffold;

use std::io::{Read as _, Write as _};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory as _, Parser, Subcommand};

use executor_host::ModuleStore;
use executor_host::{NativeProgram, Program};
use executor_host::{Sandbox, WasmProgram};
use executor_testkit::harness::{self, Delivery};
use executor_testkit::scenario::{Report, Scenario};

use config::Config;
use logging::{LogFormat, LogLevel};
use output::{Output, RunOutput};

/// mimalloc: engines on different threads hand each other messages, so
/// memory is freed on another thread than the one that allocated it,
/// which glibc's malloc serves slowly (the end-to-end benchmark ran about
/// twice as fast with mimalloc; README, "Benchmarks"). The library leaves
/// this choice to whoever links it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "executor-host",
    version,
    about = "Run Anoma's Executor Engine with sandboxed wasm executor functions"
)]
struct Cli {
    /// A configuration file (TOML) with `[sandbox]` (and
    /// `[sandbox.limits]`), `[executor]`, `[host]` and `[nats]` sections;
    /// `executor-host config --default` prints every key
    /// with its default. Flags given on the command line override it.
    #[arg(long, global = true, help_heading = "Global options", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The least severe log events shown on stderr. When given it overrides
    /// `RUST_LOG`; without either, `warn`.
    #[arg(long, global = true, help_heading = "Global options", value_enum, value_name = "LEVEL")]
    log_level: Option<LogLevel>,
    /// How log events are written on stderr.
    #[arg(long, global = true, help_heading = "Global options", value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
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
        #[command(flatten)]
        output: OutputArg,
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
        /// A cargo profile of the guest's workspace to build with, as it is
        /// defined there. Without it, the profile `guest` is set up for a
        /// compact component (opt-level 3, lto, one codegen unit, panic
        /// abort, stripped; overriding any `[profile.guest]` of the crate).
        #[arg(long, conflicts_with = "dev")]
        profile: Option<String>,
        /// Build the debug variant: the `dev` profile, whose debug
        /// assertions make the SDK target the `executor-debug` world
        /// (`debug!` lines and panic messages reach the host through `log`).
        /// Only `run --dev` runs it; it cannot be deployed.
        #[arg(long)]
        dev: bool,
        /// Where to write the component (default: `<crate>.wasm` here).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Create a guest crate in a new directory: an example executor
    /// function, a host-side test, a scenario and a README with the loop
    /// (test, build, run, record, deploy).
    New {
        /// The directory to create (its name names the crate).
        dir: PathBuf,
        /// The executor-host checkout the crate depends on (default: the
        /// one this binary was built from).
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
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
        #[command(flatten)]
        store: StoreArg,
    },
    /// List the modules deployed in a module store: name, hash, size.
    List {
        #[command(flatten)]
        store: StoreArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Run a scenario on the embedded defaults (in-process shards and
    /// worker) and print a summary, or the JSON report: each transaction's
    /// timestamp, outcome, gas, values read and written, the final state
    /// and the totals.
    Run(RunArgs),
    /// Run one process of a deployment over NATS: a shard, the worker or
    /// an executor host (see the README's "Running across processes").
    Serve {
        #[command(subcommand)]
        role: cluster::Role,
    },
    /// Submit a scenario's transactions to a deployment over NATS, wait
    /// for every one to finish, and print the report `run` prints.
    Submit(cluster::SubmitArgs),
    /// Remove a deployed name from a module store.
    Remove {
        /// The deployed name.
        name: String,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Print the configuration as TOML: the effective one (the defaults
    /// with `--config`'s file applied), or with `--default` the defaults.
    Config {
        /// Print the defaults, documented, whatever `--config` says.
        #[arg(long)]
        default: bool,
    },
    /// Print a shell completion script on stdout.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout: the command's, or a
    /// subcommand's (`executor-host-run(1)`).
    Man {
        /// The subcommand (`run`, `build`, ...).
        command: Option<String>,
    },
    /// Compiles a guest within bounds of time and memory, for another
    /// `executor-host` process (see `src/compile.rs`).
    #[command(name = "__compile", hide = true)]
    Compile(compile::ChildArgs),
}

/// The guest to run: `--guest` or `--native`, and the store it may be in.
#[derive(clap::Args)]
#[group(id = "guest_or_native", multiple = false)]
struct GuestArgs {
    /// The guest: a component file (`.wasm`), a deployed name, or
    /// `sha256:<hash>` of a deployed module (as `list` shows it).
    #[arg(long, conflicts_with = "native")]
    guest: Option<String>,
    /// Run the native build of an example function instead of wasm.
    #[arg(long, value_enum)]
    native: Option<NativeExample>,
    #[command(flatten)]
    store: StoreArg,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    guest: GuestArgs,
    /// The scenario file (JSON; see the README).
    #[arg(long)]
    scenario: PathBuf,
    /// Deliver messages in a random order drawn from this seed, on one
    /// thread (reproducible). Without it (nor `host.seed`), the run is
    /// concurrent.
    #[arg(long, conflicts_with_all = ["concurrent", "threads", "in_flight"])]
    seed: Option<u64>,
    /// Deliver concurrently even if the configuration file sets a seed.
    #[arg(long)]
    concurrent: bool,
    /// Threads of a concurrent run (default: `host.threads`, else one per
    /// core). The run is then concurrent, as with `--concurrent`, even if
    /// the configuration file sets a seed.
    #[arg(long, value_name = "N")]
    threads: Option<NonZeroUsize>,
    /// Transactions a concurrent run keeps submitted and not finished, at
    /// most (default: `host.in_flight`, else 10,000): what is in flight
    /// (executors, the shards' pending versions) follows this; the
    /// reports, one per transaction, are kept to the end. The run is then
    /// concurrent, as with `--threads`.
    #[arg(long, value_name = "N")]
    in_flight: Option<NonZeroUsize>,
    /// Gas budget per transaction, over the configuration file's and the
    /// scenario's `gas_limit`.
    #[arg(long, value_name = "GAS")]
    gas_limit: Option<u64>,
    /// Exit with status 1 when any transaction failed (for CI).
    #[arg(long)]
    fail_on_failure: bool,
    /// Dev mode: also run debug builds (`build --dev`: components that
    /// import `log`), and show what they log per transaction (at most 64
    /// lines, each cut at 512 bytes, its bytes charged as gas).
    #[arg(long)]
    dev: bool,
    /// Record every step of every transaction (the key it was fed, its gas,
    /// its requests, whether it halted) and print them with the
    /// transaction in the JSON report (the option `step_trace`, over the
    /// configuration file's and the scenario's).
    #[arg(long)]
    step_trace: bool,
    /// Recording mode: run each transaction with access unrestricted, one
    /// after another, and print the key sets it needs (declared eager
    /// keys, other reads as lazy, writes as will) instead of running the
    /// scenario.
    #[arg(long, conflicts_with_all = ["seed", "concurrent", "threads", "in_flight"])]
    record: bool,
    /// With `--record`: write the scenario here with each transaction's
    /// recorded key sets, so that the next `run` passes in strict mode.
    #[arg(long, value_name = "FILE", requires = "record")]
    write_scenario: Option<PathBuf>,
    #[command(flatten)]
    output: OutputArg,
}

/// `--store`, shared by the commands that use the module store.
#[derive(clap::Args)]
struct StoreArg {
    /// The module store directory, created if missing (default:
    /// `host.store` of the configuration, else `executor-store`).
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
}

impl StoreArg {
    fn resolve(self, config: &Config) -> PathBuf {
        self.store.unwrap_or_else(|| config.host.store.clone())
    }
}

/// `--output`, shared by `run`, `list` and `check`.
#[derive(clap::Args)]
struct OutputArg {
    /// What to print: `human` (tables) or `json`. Default: human when
    /// stdout is a terminal, JSON otherwise.
    #[arg(long, value_enum, value_name = "FORMAT")]
    output: Option<Output>,
}

impl OutputArg {
    fn resolve(self) -> Output {
        Output::resolve(self.output)
    }
}

/// The example functions `run --native` can link.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum NativeExample {
    Transfer,
    Counter,
    Nockma,
}

/// The profile `build --dev` builds with: cargo's own, with debug
/// assertions, so the SDK targets the `executor-debug` world.
const DEV_PROFILE: &str = "dev";

/// What `build` sets up as the profile `guest` when no `--profile` is
/// given: the workspace's `[profile.guest]`, as cargo `--config` overrides
/// so that it exists for any crate.
const COMPACT_PROFILE: &str = "guest";
const COMPACT_SETTINGS: &[&str] = &[
    "profile.guest.inherits=\"release\"",
    "profile.guest.opt-level=3",
    "profile.guest.lto=true",
    "profile.guest.codegen-units=1",
    "profile.guest.panic=\"abort\"",
    "profile.guest.strip=true",
    "profile.guest.debug=false",
];

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    if let Err(error) = logging::init(cli.log_level, cli.log_format) {
        eprintln!("error: {}", one_line(&format!("{error:#}")));
        return ExitCode::FAILURE;
    }
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            tracing::debug!(error = format!("{error:?}"), "failed");
            eprintln!("error: {}", one_line(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

/// A command-line error in one line (clap's own spans several: the
/// error, the possible values, the usage); help and version as clap
/// prints them.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        error.exit();
    }
    let text = error.render().to_string();
    let line: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .collect();
    eprintln!("{}", line.join(" "));
    ExitCode::from(2)
}

/// `text` on one line: each line trimmed, joined by spaces, control
/// characters escaped.
fn one_line(text: &str) -> String {
    // Escaped: an error may quote a scenario's or a guest's bytes.
    let line = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    output::printable(&line).into_owned()
}

/// Writes `value` as pretty JSON and a newline to stdout as it is
/// serialized: a large run's report is never held as one string.
fn emit_json(value: &impl serde::Serialize) -> Result<()> {
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    stdout_written(
        serde_json::to_writer_pretty(&mut stdout, value)
            .map_err(std::io::Error::from)
            .and_then(|()| stdout.write_all(b"\n"))
            .and_then(|()| stdout.flush()),
    )
}

/// Writes `text` to stdout.
fn emit(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout_written(stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()))
}

/// The outcome of writing to stdout: a closed pipe (`| head`) is not an
/// error.
fn stdout_written(written: std::io::Result<()>) -> Result<()> {
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(()),
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let config = match &cli.config {
        Some(path) => {
            let config = Config::load(path)?;
            tracing::debug!(file = %path.display(), ?config, "configuration loaded");
            config
        }
        None => Config::default(),
    };
    match cli.command {
        Cmd::Check { file, output } => check(&file, &config, output.resolve())?,
        Cmd::Build { manifest_path, package, profile, dev, output } => {
            let profile = if dev { Some(DEV_PROFILE) } else { profile.as_deref() };
            build(manifest_path.as_deref(), package.as_deref(), profile, dev, output, &config)?
        }
        Cmd::New { dir, repo } => {
            let name = scaffold::new(&dir, repo)?;
            let shown = dir.display();
            emit(&format!(
                "created {name} in {shown}\nnext: cd {shown} && cargo test && executor-host build -o {name}.wasm && executor-host run --guest {name}.wasm --scenario scenario.json\n"
            ))?;
        }
        Cmd::Deploy { file, name, store } => deploy(&file, &name, &store.resolve(&config), &config)?,
        Cmd::List { store, output } => list(&store.resolve(&config), output.resolve())?,
        Cmd::Remove { name, store } => remove(&name, &store.resolve(&config))?,
        Cmd::Run(args) => return run_scenario(args, &config),
        Cmd::Serve { role } => return cluster::serve(role, &config),
        Cmd::Submit(args) => return cluster::submit(args, &config),
        Cmd::Config { default } => {
            let shown = if default { Config::default() } else { config };
            emit(&shown.to_toml()?)?;
        }
        Cmd::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "executor-host", &mut out);
            emit(&String::from_utf8_lossy(&out))?;
        }
        Cmd::Man { command } => emit(&man_page(command.as_deref())?)?,
        Cmd::Compile(args) => return compile::child(args),
    }
    Ok(ExitCode::SUCCESS)
}

/// The man page of the command, or of one of its subcommands.
fn man_page(subcommand: Option<&str>) -> Result<String> {
    let mut command = Cli::command();
    // Propagates the global options to each subcommand.
    command.build();
    let page = match subcommand {
        None => command,
        Some(name) => {
            let Some(sub) = command.find_subcommand(name).filter(|_| name != "help") else {
                let names: Vec<&str> =
                    command.get_subcommands().map(clap::Command::get_name).filter(|n| *n != "help").collect();
                bail!("no command `{name}` (commands: {})", names.join(", "));
            };
            let title = format!("executor-host-{}", sub.get_name());
            sub.clone().name(title)
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out).context("rendering the man page")?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The configured sandbox; with `dev` (`run --dev`, `build --dev`) in dev
/// mode, which no configuration file can set.
fn sandbox(config: &Config, dev: bool) -> Result<Sandbox> {
    let settings = executor_host::SandboxConfig { dev, ..config.sandbox.clone() };
    Sandbox::new(settings).context("setting up the sandbox ([sandbox] of the configuration)")
}

/// The directory at `path`, as a capability.
fn open_dir(path: &Path) -> Result<cap_std::fs::Dir> {
    cap_std::fs::Dir::open_ambient_dir(path, cap_std::ambient_authority())
        .with_context(|| format!("opening {}", path.display()))
}

/// Opens the module store at `path`, creating the directory if `create`.
/// The one place the CLI hands a path's authority to the store.
fn open_store(path: &Path, create: bool) -> Result<ModuleStore> {
    if path.exists() && !path.is_dir() {
        bail!("the module store {} is not a directory", path.display());
    }
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

fn deploy(file: &Path, name: &str, store: &Path, config: &Config) -> Result<()> {
    let sandbox = sandbox(config, false)?;
    let bytes = read_component(file, &sandbox)?;
    let scratch = compile::ScratchDir::new()?;
    let what = file.display().to_string();
    compile::bounded(config, false, compile::Target::Bytes { bytes: &bytes, what: &what, artifacts: scratch.path() })?;
    let deployed = open_store(store, true)?
        .deploy(&sandbox, name, &bytes)
        .with_context(|| format!("deploying {}", file.display()))?;
    emit(&format!("deployed {} as {} ({}, {} bytes)\n", file.display(), deployed.name, deployed.hash, deployed.size))
}

fn list(store: &Path, format: Output) -> Result<()> {
    // Nothing is deployed where no store is (and listing creates none).
    let deployed = if store.exists() {
        open_store(store, false)?.list().with_context(|| format!("listing {}", store.display()))?
    } else {
        Vec::new()
    };
    emit(&output::list(&deployed, format)?)
}

fn remove(name: &str, store: &Path) -> Result<()> {
    open_store(store, false)?.remove(name).with_context(|| format!("removing from {}", store.display()))?;
    emit(&format!("removed {name}\n"))
}

/// The most bytes a scenario file may have: far beyond any run this
/// process could hold (a million transfers take about 150 MB), but a
/// device or pipe without end is refused instead of read until memory
/// runs out.
const SCENARIO_BYTES: u64 = 1 << 30;

/// The text of `path` (`what` it is, for errors: "the configuration
/// file ", or empty), read only up to `limit` bytes (a pipe or
/// `/dev/stdin` is read as a file is).
fn read_text(path: &Path, limit: u64, what: &str) -> Result<String> {
    let Some(bytes) = read_up_to(path, limit, what)? else {
        bail!("reading {what}{}: larger than {limit} bytes, the most this reads", path.display());
    };
    String::from_utf8(bytes).map_err(|e| anyhow::anyhow!("reading {what}{}: not UTF-8 text: {e}", path.display()))
}

/// The bytes of `path` (`what` it is, for errors), or `None` if there
/// are more than `limit`: a regular file is judged by its size before it
/// is read, a pipe or a device by reading one byte past the limit.
fn read_up_to(path: &Path, limit: u64, what: &str) -> Result<Option<Vec<u8>>> {
    if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > limit) {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|opened| opened.take(limit.saturating_add(1)).read_to_end(&mut bytes))
        .with_context(|| format!("reading {what}{}", path.display()))?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// A scenario file's text ([`read_text`] up to [`SCENARIO_BYTES`]).
fn read_scenario_text(path: &Path) -> Result<String> {
    read_text(path, SCENARIO_BYTES, "")
}

/// The component file at `file`, read only up to the size `sandbox` loads:
/// a larger file, or a device or pipe without end, is refused without
/// being read into memory whole.
fn read_component(file: &Path, sandbox: &Sandbox) -> Result<Vec<u8>> {
    let limit = sandbox.config().max_component_bytes;
    let Some(bytes) = read_up_to(file, limit, "")? else {
        bail!(
            "{} is larger than this sandbox loads: more than {limit} bytes (`max_component_bytes` in `[sandbox]`)",
            file.display()
        );
    };
    Ok(bytes)
}

/// Loads the guest named by `guest`: a component file if `guest` ends in
/// `.wasm` (which no deployed name can), the module with that hash if it is
/// `sha256:<hash>`, otherwise the module deployed under that name in the
/// store at `store`.
///
/// Compiled first in a child process, bounded by `config` (see
/// [`compile`]); `dev` is the sandbox's dev mode.
fn load_guest(sandbox: &Sandbox, guest: &str, store: &Path, config: &Config, dev: bool) -> Result<WasmProgram> {
    let path = Path::new(guest);
    if path.extension().is_some_and(|e| e == "wasm") {
        let bytes = read_component(path, sandbox)?;
        let scratch = compile::ScratchDir::new()?;
        compile::bounded(
            config,
            dev,
            compile::Target::Bytes { bytes: &bytes, what: guest, artifacts: scratch.path() },
        )?;
        return sandbox
            .load_cached(&bytes, &open_dir(scratch.path())?)
            .with_context(|| format!("{guest} is not a valid executor"));
    }
    if !store.is_dir() {
        bail!("{guest:?} is not a .wasm file, and there is no module store at {}", store.display());
    }
    let store_dir = store;
    let context = || format!("loading from the module store {}", store_dir.display());
    let store = open_store(store_dir, false)?;
    // Resolved once: the child and this process load the same module
    // even if the name is redeployed meanwhile.
    let hash = match guest.strip_prefix("sha256:") {
        Some(hash) => hash.to_owned(),
        None => store.hash(guest).with_context(context)?,
    };
    compile::bounded(config, dev, compile::Target::Stored { store: store_dir, hash: &hash, what: guest })?;
    store.load_hash(sandbox, &hash).with_context(context)
}

/// `run --record`: prints the recorded key sets, and writes the scenario
/// with them if asked.
fn record(
    scenario: Scenario,
    text: &str,
    program: &dyn Program,
    options: &executor_host::ExecutorOptions,
    args: &RunArgs,
) -> Result<ExitCode> {
    // The written scenario replaces the one recorded only if asked to by
    // another name: it keeps only the key sets that were used.
    if let Some(path) = &args.write_scenario
        && same_file(path, &args.scenario)
    {
        bail!(
            "--write-scenario {} is the scenario being recorded: write the recording to another file (it would lose the key sets declared and not used)",
            path.display()
        );
    }
    let recorded = executor_testkit::record::record(&scenario.into_workload(), program, options);
    let format = Output::resolve(args.output.output);
    emit(&output::recorded(&recorded, format)?)?;
    if let Some(path) = &args.write_scenario {
        let mut document: serde_json::Value = serde_json::from_str(text).context("re-reading the scenario")?;
        // The options the recording ran with (defaults, configuration,
        // scenario, flags), so that a run of the file does what it said;
        // in strict mode, which the recorded key sets pass, so that a
        // key the program comes to need is named, not skipped.
        let options =
            executor_host::ExecutorOptions { access_mode: executor_host::AccessMode::Strict, ..options.clone() };
        if let Some(document) = document.as_object_mut() {
            document.insert("options".to_owned(), serde_json::to_value(options)?);
        }
        let transactions = document
            .get_mut("transactions")
            .and_then(serde_json::Value::as_array_mut)
            .context("the scenario has no transactions array")?;
        for (tx, recorded) in transactions.iter_mut().zip(&recorded) {
            let Some(tx) = tx.as_object_mut() else { continue };
            let keys = &recorded.keys;
            for (field, set) in [
                ("eager_read_keys", &keys.eager_read_keys),
                ("lazy_read_keys", &keys.lazy_read_keys),
                ("will_write_keys", &keys.will_write_keys),
                ("may_write_keys", &keys.may_write_keys),
            ] {
                let set: Vec<executor_testkit::scenario::Bytes> =
                    set.iter().map(|k| executor_testkit::scenario::Bytes(k.clone())).collect();
                tx.insert(field.to_owned(), serde_json::to_value(set)?);
            }
        }
        let text = serde_json::to_string_pretty(&document)? + "\n";
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {} with the recorded key sets", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `a` and `b` name one existing file (through symbolic or hard
/// links, `..` or another spelling).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if let (Ok(a), Ok(b)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return (a.dev(), a.ino()) == (b.dev(), b.ino());
        }
    }
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The program `--guest` or `--native` names; with `dev`, a debug build
/// is accepted (a native program is what it is).
fn program(args: &GuestArgs, config: &Config, dev: bool) -> Result<Arc<dyn Program>> {
    let limits = config.sandbox.limits.clone();
    Ok(match (args.native, args.guest.as_deref()) {
        (Some(NativeExample::Transfer), _) => Arc::new(NativeProgram::<transfer_guest::TransferFunction>::new(limits)),
        (Some(NativeExample::Counter), _) => Arc::new(NativeProgram::<counter_guest::CounterFunction>::new(limits)),
        (Some(NativeExample::Nockma), _) => Arc::new(NativeProgram::<nockma_guest::NockmaFunction>::new(limits)),
        (None, Some(guest)) => {
            let store = args.store.store.clone().unwrap_or_else(|| config.host.store.clone());
            let sandbox = sandbox(config, dev)?;
            Arc::new(load_guest(&sandbox, guest, &store, config, dev)?)
        }
        (None, None) => bail!("name a --guest or a --native example"),
    })
}

fn check(file: &Path, config: &Config, format: Output) -> Result<()> {
    let sandbox = sandbox(config, false)?;
    let bytes = read_component(file, &sandbox)?;
    // Loaded first, so that describing it takes the compiled component
    // from the sandbox's memory instead of compiling it again; described
    // even when refused, to show what it holds.
    let scratch = compile::ScratchDir::new()?;
    let what = file.display().to_string();
    let target = compile::Target::Bytes { bytes: &bytes, what: &what, artifacts: scratch.path() };
    let bounded = compile::bounded(config, false, target);
    // Described only when it compiles within the bounds: describing it
    // compiles it.
    let (loaded, info) = match bounded {
        Ok(()) => {
            let loaded = sandbox
                .load_cached(&bytes, &open_dir(scratch.path())?)
                .map(drop)
                .with_context(|| format!("{} is not a valid executor", file.display()));
            (loaded, sandbox.inspect(&bytes).ok())
        }
        Err(error) => (Err(error), None),
    };
    match format {
        Output::Human => {
            if let Some(info) = &info {
                emit(&info.to_string())?;
            }
            if loaded.is_ok() {
                emit(&format!("ok: {} is a valid executor component\n", file.display()))?;
            }
        }
        Output::Json => {
            let error = loaded.as_ref().err().map(|e| one_line(&format!("{e:#}")));
            emit(&(output::check_json(&file.display().to_string(), bytes.len(), info.as_ref(), error)? + "\n"))?;
        }
    }
    loaded
}

fn build(
    manifest: Option<&Path>,
    package: Option<&str>,
    profile: Option<&str>,
    dev: bool,
    output: Option<PathBuf>,
    config: &Config,
) -> Result<()> {
    let mut guest = match profile {
        Some(profile) => executor_guest_build::GuestBuild::new(profile),
        None => {
            COMPACT_SETTINGS.iter().fold(executor_guest_build::GuestBuild::new(COMPACT_PROFILE), |build, setting| {
                build.cargo_config(*setting)
            })
        }
    };
    // The 64 KiB stack for the builds `build` sets up (the compact one and
    // `--dev`), so that a crate outside this workspace is not linked with
    // Rust's 1 MiB: a fresh instance's memory, and the gas it is charged,
    // grow with the stack. `--profile` builds take the crate's own flags.
    if profile.is_none() || dev {
        guest = guest.guest_stack();
    }
    if let Some(manifest) = manifest {
        guest = guest.manifest_path(manifest);
    }
    if let Some(package) = package {
        guest = guest.package(package);
    }
    tracing::info!(profile = profile.unwrap_or(COMPACT_PROFILE), "building the guest");
    let built = guest.run()?;
    let several = built.modules.len() > 1;
    let module =
        built.single().with_context(|| if several { "pick the guest crate with --package" } else { "no guest" })?;
    if let Some(stack) = module.stack_pointer_start()?.filter(|&stack| stack > executor_guest_build::GUEST_STACK) {
        tracing::warn!(
            "the guest's stack pointer starts at {} KiB (Rust's default stack is 1024 KiB): every instance's memory, \
             and the gas it is charged, grow with it; link with `-zstack-size=65536` (the crate's \
             `.cargo/config.toml`, `[target.wasm32-unknown-unknown] rustflags`, read from the directory cargo runs in)",
            stack >> 10
        );
    }
    let component = module.componentize()?;
    let checked = sandbox(config, dev)?.load(&component);
    match checked {
        Err(executor_host::LoadError::DebugBuild) => bail!(
            "the profile `{}` builds a debug component (its debug assertions are on, so the SDK targets the \
             `executor-debug` world): pass --dev to build one on purpose, or pick a profile without debug assertions",
            profile.unwrap_or(COMPACT_PROFILE)
        ),
        checked => checked.context("the built component is not a valid executor")?,
    };
    let output = output.unwrap_or_else(|| PathBuf::from(format!("{}.wasm", module.package)));
    if let Some(parent) = output.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&output, &component).with_context(|| format!("writing {}", output.display()))?;
    let note = if dev { ", a debug build: run it with `run --dev`" } else { "" };
    emit(&format!("built {} ({} bytes{note})\n", output.display(), component.len()))
}

fn run_scenario(args: RunArgs, config: &Config) -> Result<ExitCode> {
    if args.guest.guest.is_none() && args.guest.native.is_none() {
        bail!("name the function to run: --guest <file.wasm|name|sha256:hash> or --native <example>");
    }
    let path = &args.scenario;
    let text = read_scenario_text(path)?;
    let scenario = Scenario::from_json(&text).with_context(|| format!("{} is not a valid scenario", path.display()))?;
    let mut options = config::executor_options(&config.executor, &text, args.gas_limit)
        .with_context(|| format!("{} is not a valid scenario", path.display()))?;
    options.step_trace |= args.step_trace;
    let program = program(&args.guest, config, args.dev)?;
    if args.record {
        return record(scenario, &text, program.as_ref(), &options, &args);
    }
    // A flag wins over the file: one that only a concurrent run has
    // makes the run concurrent, whatever seed the file sets.
    let concurrent = args.concurrent || args.threads.is_some() || args.in_flight.is_some();
    let seed = if concurrent { None } else { args.seed.or(config.host.seed) };
    let delivery = match seed {
        Some(seed) => Delivery::Deterministic { seed },
        None => Delivery::ClosedLoop {
            threads: args
                .threads
                .or(config.host.threads)
                .map_or_else(|| std::thread::available_parallelism().map_or(2, usize::from), NonZeroUsize::get),
            in_flight: args.in_flight.unwrap_or(config.host.in_flight).get(),
        },
    };
    let transactions = scenario.transactions.len();
    tracing::info!(transactions, shards = scenario.shards, ?delivery, ?options, "running the scenario");
    // The scenario lives on as the workload only: a large one must not be
    // in memory three times (text, parsed, workload).
    drop(text);
    let workload = scenario.into_workload();

    let bar = output::progress_bar(transactions);
    let program: Arc<dyn Program> = match &bar {
        Some(bar) => Arc::new(output::Counted { inner: program, bar: bar.clone() }),
        None => program,
    };
    let started = Instant::now();
    let outcome = harness::execute(&workload, program, &options, delivery);
    drop(workload);
    let elapsed = started.elapsed();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let outcome = outcome?;
    print_outcome(outcome, elapsed, args.output.resolve(), args.fail_on_failure)
}

/// Prints what `run` and `submit` print: the report, as a summary or JSON;
/// with `fail_on_failure`, fails when any transaction did.
fn print_outcome(
    outcome: executor_testkit::harness::Outcome,
    elapsed: std::time::Duration,
    format: Output,
    fail_on_failure: bool,
) -> Result<ExitCode> {
    let (pending_markers, dropped, total) = (outcome.pending_markers, outcome.dropped, outcome.transactions.len());
    let report = Report::from(outcome);
    let summary = RunOutput::new(&report, elapsed);
    tracing::info!(
        succeeded = report.succeeded,
        failed = report.failed,
        seconds = summary.seconds,
        pending_markers,
        dropped,
        "run finished"
    );
    match format {
        Output::Human => emit(&summary.to_string())?,
        Output::Json => emit_json(&summary)?,
    }
    if pending_markers > 0 {
        // Every lock a transaction declares must be resolved: one that is
        // not is a broken run, whatever the transactions' outcomes say.
        eprintln!(
            "error: {pending_markers} locks are still pending at the shards after every transaction ended (across \
             processes, another submission's transactions may still hold them; otherwise a release was lost or \
             never sent: a bug, please report it)"
        );
        return Ok(ExitCode::FAILURE);
    }
    if fail_on_failure && report.failed > 0 {
        eprintln!("error: {} of {total} transactions failed (--fail-on-failure)", report.failed);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
