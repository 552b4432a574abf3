//! Builds every guest of the workspace as a wasm component (see `src/lib.rs`).
//!
//! `GUESTS` is the one list of guests: the nested cargo's packages, the
//! generated constants and `foreach_guest!` all come from it, and the
//! directories to watch come from what cargo reports it compiled.

use anyhow::{Context, Result};
use executor_guest_build::{CoreModule, GuestBuild, TargetKind};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

/// The profile guests are built with (root `Cargo.toml`).
const PROFILE: &str = "guest";

/// What makes a build a debug build: the SDK picks the `executor-debug`
/// world when it is compiled with debug assertions (what `executor-host
/// build --dev` gets from the `dev` profile). Turning them on for the SDK
/// alone, in the same profile and target directory, gives that world
/// without compiling every dependency and proc macro a second time for
/// another profile: only the SDK and the guest are compiled again.
const DEBUG_SDK: &str = "profile.guest.package.executor-guest.debug-assertions=true";

/// One guest: its name (snake case: the constant is its upper case, and the
/// test `foreach_guest!` asks for is a function of this name), its package,
/// the target it is (for an example, the example named `name`), and
/// whether it is a debug build (which imports `log`).
struct Guest {
    name: &'static str,
    package: &'static str,
    kind: TargetKind,
    debug: bool,
}

const fn guest(name: &'static str, package: &'static str, kind: TargetKind) -> Guest {
    Guest { name, package, kind, debug: false }
}

/// A debug build of a guest's library.
const fn debug_guest(name: &'static str, package: &'static str) -> Guest {
    Guest { name, package, kind: TargetKind::Lib, debug: true }
}

const GUESTS: &[Guest] = &[
    guest("transfer", "transfer-guest", TargetKind::Lib),
    guest("counter", "counter-guest", TargetKind::Lib),
    guest("hostile", "hostile-guests", TargetKind::Lib),
    guest("nockma", "nockma-guest", TargetKind::Lib),
    // Components that are wrong in shape rather than in behaviour.
    guest("wrong_world", "hostile-guests", TargetKind::Example),
    guest("wasi_import", "hostile-guests", TargetKind::Example),
    // The `executor-debug` world: its logging modes log, its panics say why.
    debug_guest("hostile_debug", "hostile-guests"),
];

impl Guest {
    /// The name of the cargo target: the library's crate name, or the
    /// example's name.
    fn target(&self) -> String {
        match self.kind {
            TargetKind::Lib => self.package.replace('-', "_"),
            TargetKind::Example => self.name.to_string(),
        }
    }

    fn constant(&self) -> String {
        self.name.to_ascii_uppercase()
    }
}

fn main() -> Result<()> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../..").canonicalize()?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let target_dir = nested_target_dir(&out_dir);
    let mut generated = format!(
        "/// The target directory the guests were built in (with the profile `{PROFILE}`): tests that\n\
         /// build a guest again can build in it, and so compile its dependencies once.\n\
         pub const TARGET_DIR: &str = {:?};\n",
        target_dir.display().to_string()
    );
    // Release builds first, then debug builds: one cargo run each, since a
    // profile override applies to every package a run builds. Both share
    // one target directory of their own (the outer build holds the lock on
    // its own).
    for debug in [false, true] {
        let guests: Vec<&Guest> = GUESTS.iter().filter(|g| g.debug == debug).collect();
        let mut build = GuestBuild::new(PROFILE)
            .current_dir(&root)
            .packages(guests.iter().map(|g| g.package))
            .target_dir(&target_dir);
        build = if debug { build.cargo_config(DEBUG_SDK) } else { build.examples() };
        let built = build.run().with_context(|| format!("building the guests (debug: {debug})"))?;
        // Every local package the guests were compiled from, the SDK
        // included.
        for dir in &built.package_dirs {
            println!("cargo::rerun-if-changed={}", dir.display());
        }
        for guest in guests {
            write_guest(guest, &built.modules, &out_dir, &mut generated)?;
        }
    }
    // And what configures the build.
    for file in ["Cargo.toml", "Cargo.lock", ".cargo/config.toml"] {
        println!("cargo::rerun-if-changed={}", root.join(file).display());
    }

    generated += "/// Every component built here, by constant name.\npub const ALL: &[(&str, &str)] = &[\n";
    for guest in GUESTS {
        writeln!(generated, "    ({:?}, {}),", guest.constant(), guest.constant())?;
    }
    generated += "];\n";

    generated += "\
/// Invokes `$mac!(name, path)` once per guest: `name` is the guest's snake
/// case name (an identifier), `path` the expression `guest_artifacts::NAME`
/// (the component's path, a `&str`). See the crate docs for the test that
/// makes a guest without a test a compile error.
#[macro_export]
macro_rules! foreach_guest {
    ($mac:ident) => {
";
    for guest in GUESTS {
        writeln!(generated, "        $mac!({}, $crate::{});", guest.name, guest.constant())?;
    }
    generated += "    };\n}\n";

    fs::write(out_dir.join("artifacts.rs"), generated)?;
    Ok(())
}

/// The nested cargo's target directory: `guest-builds` beside the outer
/// build's `build/` directory (`target/debug/guest-builds`), so the outer
/// builds of one profile directory (`cargo test`, then `cargo clippy`,
/// whose build script runs again in a directory of its own) compile the
/// guests once, not once each: about 230 MB and a few minutes of CI. It is
/// inside the outer profile directory, whose lock the outer cargo holds,
/// so no two runs of this script use it at once (the debug builds write
/// over files a release build reports until this script copies them).
/// Where `OUT_DIR` is not laid out as `<profile>/build/<package>/out`, a
/// directory of this run's own.
fn nested_target_dir(out_dir: &Path) -> PathBuf {
    let mut up = out_dir.ancestors().skip(2);
    match (up.next(), up.next()) {
        (Some(build), Some(profile_dir)) if build.file_name().is_some_and(|name| name == "build") => {
            profile_dir.join("guest-builds")
        }
        _ => out_dir.join("target"),
    }
}

/// Componentizes `guest`'s module among `modules`, writes the component and
/// a copy of the core module to `out_dir`, and their constants to
/// `generated`. The core module is copied because a later cargo run (the
/// debug builds) writes over the file cargo reports for a package it
/// builds again.
fn write_guest(guest: &Guest, modules: &[CoreModule], out_dir: &Path, generated: &mut String) -> Result<()> {
    let (name, constant, target) = (guest.name, guest.constant(), guest.target());
    let module = modules
        .iter()
        .find(|m| m.package == guest.package && m.kind == guest.kind && m.target == target)
        .with_context(|| format!("cargo built no cdylib `{target}` ({:?}) of {}", guest.kind, guest.package))?;
    let component = module.componentize().with_context(|| format!("componentizing {}", module.path.display()))?;
    let path = out_dir.join(format!("{name}.component.wasm"));
    fs::write(&path, component).with_context(|| format!("writing {}", path.display()))?;
    let core = out_dir.join(format!("{name}.core.wasm"));
    fs::copy(&module.path, &core).with_context(|| format!("copying {}", module.path.display()))?;
    let build = if guest.debug { "debug build" } else { "release build" };
    writeln!(
        generated,
        "/// The `{name}` guest (`{}`, {build}), as a component.\npub const {constant}: &str = {:?};",
        guest.package,
        path.display().to_string()
    )?;
    writeln!(
        generated,
        "/// The `{name}` guest as a core module (not a component): hosts must reject it.\n\
         pub const {constant}_CORE: &str = {:?};",
        core.display().to_string()
    )?;
    Ok(())
}
