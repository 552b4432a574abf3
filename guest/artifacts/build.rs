//! Builds every guest of the workspace as a wasm component (see `src/lib.rs`).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

const TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "guest";

/// (constant name, cargo package, file stem, is an example target)
const GUESTS: &[(&str, &str, &str, bool)] = &[
    ("TRANSFER", "transfer-guest", "transfer_guest", false),
    ("COUNTER", "counter-guest", "counter_guest", false),
    ("HOSTILE", "hostile-guests", "hostile_guests", false),
    ("NOCKMA", "nockma-guest", "nockma_guest", false),
    ("WRONG_WORLD", "hostile-guests", "wrong_world", true),
    ("WASI_IMPORT", "hostile-guests", "wasi_import", true),
];

fn main() -> Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir.join("../..").canonicalize()?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    for watched in [
        "wit",
        "guest/sdk",
        "guest/transfer",
        "guest/counter",
        "guest/hostile",
        "guest/nockma",
        ".cargo/config.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let target_dir = out_dir.join("target");
    build_guests(&root, &target_dir)?;

    let built = target_dir.join(TARGET).join(PROFILE);
    let mut generated = String::new();
    for (constant, _, stem, example) in GUESTS {
        let core = if *example { built.join("examples") } else { built.clone() }.join(format!("{stem}.wasm"));
        let component = out_dir.join(format!("{stem}.component.wasm"));
        componentize(&core, &component)?;
        generated += &format!(
            "/// The `{stem}` guest, as a component.\npub const {constant}: &str = {:?};\n",
            component.display().to_string()
        );
        if *constant == "TRANSFER" {
            generated += &format!(
                "/// The `transfer` guest as a core module (not a component): hosts must reject it.\npub const TRANSFER_CORE: &str = {:?};\n",
                core.display().to_string()
            );
        }
    }
    generated += "/// Every component built here, by constant name.\npub const ALL: &[(&str, &str)] = &[\n";
    for (constant, ..) in GUESTS {
        generated += &format!("    ({constant:?}, {constant}),\n");
    }
    generated += "];\n";
    fs::write(out_dir.join("artifacts.rs"), generated)?;
    Ok(())
}

fn build_guests(root: &Path, target_dir: &Path) -> Result<()> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--profile", PROFILE, "--target", TARGET])
        .args([
            "-p",
            "transfer-guest",
            "-p",
            "counter-guest",
            "-p",
            "hostile-guests",
            "-p",
            "nockma-guest",
            "--lib",
            "--examples",
        ])
        .env("CARGO_TARGET_DIR", target_dir)
        // The outer build's flags are for the host; the guests' come from
        // `.cargo/config.toml`.
        // Under `cargo clippy` the outer build's lints would apply to the
        // generated guest bindings too.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_PROFILE_RELEASE_DEBUG");
    let status = cmd.status().context("running cargo to build the guests")?;
    if !status.success() {
        bail!("building the wasm guests failed ({status}); if the target is missing, run `rustup target add {TARGET}`");
    }
    Ok(())
}

fn componentize(core: &Path, component: &Path) -> Result<()> {
    let module = fs::read(core).with_context(|| format!("reading {}", core.display()))?;
    let bytes = wit_component::ComponentEncoder::default()
        .module(&module)
        .with_context(|| format!("{} carries no component type", core.display()))?
        .validate(true)
        .encode()
        .with_context(|| format!("componentizing {}", core.display()))?;
    fs::write(component, bytes)?;
    Ok(())
}
