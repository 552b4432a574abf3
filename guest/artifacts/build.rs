//! Builds every guest of the workspace as a wasm component (see `src/lib.rs`).
//!
//! `GUESTS` is the one list of guests: the nested cargo's packages, the
//! generated constants and `foreach_guest!` all come from it, and the
//! directories to watch come from what cargo reports it compiled.

use anyhow::{Context, Result};
use executor_guest_build::{GuestBuild, TargetKind};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::{env, fs};

/// The profile guests are built with (root `Cargo.toml`).
const PROFILE: &str = "guest";

/// One guest: its name (snake case: the constant is its upper case, and the
/// test `foreach_guest!` asks for is a function of this name), its package,
/// and the target it is (for an example, the example named `name`).
struct Guest {
    name: &'static str,
    package: &'static str,
    kind: TargetKind,
}

const fn guest(name: &'static str, package: &'static str, kind: TargetKind) -> Guest {
    Guest { name, package, kind }
}

const GUESTS: &[Guest] = &[
    guest("transfer", "transfer-guest", TargetKind::Lib),
    guest("counter", "counter-guest", TargetKind::Lib),
    guest("hostile", "hostile-guests", TargetKind::Lib),
    guest("nockma", "nockma-guest", TargetKind::Lib),
    // Components that are wrong in shape rather than in behaviour.
    guest("wrong_world", "hostile-guests", TargetKind::Example),
    guest("wasi_import", "hostile-guests", TargetKind::Example),
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

    // Its own target directory: the outer build holds the lock on its own.
    let built = GuestBuild::new(PROFILE)
        .current_dir(&root)
        .packages(GUESTS.iter().map(|g| g.package))
        .examples()
        .target_dir(out_dir.join("target"))
        .run()
        .context("building the guests")?;
    // Every local package the guests were compiled from, the SDK included,
    // and what configures the build.
    for dir in &built.package_dirs {
        println!("cargo::rerun-if-changed={}", dir.display());
    }
    for file in ["Cargo.toml", "Cargo.lock", ".cargo/config.toml"] {
        println!("cargo::rerun-if-changed={}", root.join(file).display());
    }

    let mut generated = String::new();
    for guest in GUESTS {
        let (name, constant, target) = (guest.name, guest.constant(), guest.target());
        let module = built
            .modules
            .iter()
            .find(|m| m.package == guest.package && m.kind == guest.kind && m.target == target)
            .with_context(|| format!("cargo built no cdylib `{target}` ({:?}) of {}", guest.kind, guest.package))?;
        let component = module.componentize().with_context(|| format!("componentizing {}", module.path.display()))?;
        let path = out_dir.join(format!("{name}.component.wasm"));
        fs::write(&path, component).with_context(|| format!("writing {}", path.display()))?;
        writeln!(
            generated,
            "/// The `{name}` guest (`{}`), as a component.\npub const {constant}: &str = {:?};",
            guest.package,
            path.display().to_string()
        )?;
        writeln!(
            generated,
            "/// The `{name}` guest as a core module (not a component): hosts must reject it.\n\
             pub const {constant}_CORE: &str = {:?};",
            module.path.display().to_string()
        )?;
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
