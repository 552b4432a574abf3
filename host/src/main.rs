//! `executor-host`: check, build and run executor guests.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use executor_host::wasm::{Sandbox, SandboxConfig};

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
}

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
    }
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

const GUEST_TARGET: &str = "wasm32-unknown-unknown";

/// The part of cargo's `--message-format json` output `build` reads.
#[derive(serde::Deserialize)]
struct CargoMessage {
    reason: String,
    target: Option<CargoTarget>,
    #[serde(default)]
    filenames: Vec<PathBuf>,
}

#[derive(serde::Deserialize)]
struct CargoTarget {
    name: String,
    crate_types: Vec<String>,
}

fn build(manifest: Option<&Path>, package: Option<&str>, profile: &str, output: Option<PathBuf>) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--lib", "--target", GUEST_TARGET, "--profile", profile])
        .args(["--message-format", "json-render-diagnostics"])
        .stdout(Stdio::piped());
    if let Some(manifest) = manifest {
        cmd.arg("--manifest-path").arg(manifest);
    }
    if let Some(package) = package {
        cmd.args(["--package", package]);
    }
    let out = cmd.output().context("running cargo")?;
    if !out.status.success() {
        bail!("cargo build failed ({}); if the target is missing: rustup target add {GUEST_TARGET}", out.status);
    }
    let wanted = |name: &str| package.is_none_or(|p| p.replace('_', "-") == name.replace('_', "-"));
    let modules: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<CargoMessage>(line).ok())
        .filter(|msg| msg.reason == "compiler-artifact")
        .filter_map(|msg| {
            msg.target.filter(|t| t.crate_types.iter().any(|c| c == "cdylib") && wanted(&t.name)).map(|_| msg.filenames)
        })
        .flatten()
        .filter(|path| path.extension().is_some_and(|e| e == "wasm"))
        .collect();
    let [module] = modules.as_slice() else {
        bail!(
            "expected one cdylib wasm module, cargo built {}: declare `crate-type = [\"cdylib\"]`, or pick one with --package",
            modules.len()
        );
    };
    let core = std::fs::read(module).with_context(|| format!("reading {}", module.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&core)
        .context("the module carries no component type: does it call `executor_guest::export_executor!`?")?
        .validate(true)
        .encode()
        .context("turning the module into a component")?;
    Sandbox::new(SandboxConfig::default())?.load(&component).context("the built component is not a valid executor")?;
    let output = output.unwrap_or_else(|| {
        let stem = module.file_stem().map_or("guest".into(), |s| s.to_string_lossy().replace('_', "-"));
        PathBuf::from(format!("{stem}.wasm"))
    });
    std::fs::write(&output, &component).with_context(|| format!("writing {}", output.display()))?;
    println!("built {} ({} bytes)", output.display(), component.len());
    Ok(())
}
