//! Building executor guests: the one home of the steps that turn a guest
//! into an executor component.
//!
//! 1. [`GuestBuild`] runs cargo for `wasm32-unknown-unknown` on the guest
//!    crates you select and returns the core modules it built
//!    ([`CoreModule`]), found in cargo's own JSON messages rather than by
//!    guessing paths.
//! 2. [`componentize`] (or [`CoreModule::componentize`]) turns a core module
//!    into a component with `wit-component`, using the component type that
//!    `executor_guest::export_executor!` embeds in it.
//! 3. [`c`]: the same for a guest written in C, against the bindings
//!    wit-bindgen's C generator writes from the WIT: generating them,
//!    compiling with clang for wasm32, then the same [`componentize`].
//!
//! Both the `executor-host build` command and the build script of
//! `guest-artifacts` (every guest, for the tests) use this crate, so the
//! guests the tests run are built exactly as users build theirs.
//!
//! ```no_run
//! use executor_guest_build::GuestBuild;
//!
//! # fn main() -> Result<(), executor_guest_build::Error> {
//! let module = GuestBuild::new("release").package("transfer-guest").run()?.single()?;
//! let component: Vec<u8> = module.componentize()?;
//! # Ok(()) }
//! ```
//!
//! The component still has to be checked against the `executor` world by the
//! host (`Sandbox::load`); this crate knows nothing of wasmtime.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

pub mod c;

/// The target guests are compiled for.
pub const TARGET: &str = "wasm32-unknown-unknown";

/// Variables of the caller's environment the nested cargo must not see.
///
/// The caller is often cargo itself (a build script, `cargo run`, `cargo
/// clippy`), whose environment describes the caller's own build: its flags
/// are for the host, and the guests' flags come from the guest workspace's
/// `.cargo/config.toml`.
const REMOVED_ENV: &[&str] = &[
    // Under `cargo clippy` the outer build's lints would apply to the guests,
    // generated bindings included.
    "RUSTC_WORKSPACE_WRAPPER",
    "CLIPPY_ARGS",
    // Host flags (`-C target-cpu=native`, say) are wrong for wasm, and would
    // override `[target.wasm32-unknown-unknown] rustflags`.
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    // The target is always `TARGET`.
    "CARGO_BUILD_TARGET",
    // Guests take their debug info setting from their profile.
    "CARGO_PROFILE_RELEASE_DEBUG",
];

fn build_hint(target_missing: bool) -> String {
    if target_missing {
        format!(": the toolchain has no `{TARGET}` target, run `rustup target add {TARGET}`")
    } else {
        " (cargo's messages above say why)".to_owned()
    }
}

/// Whether the toolchain cargo builds with has no standard library for
/// [`TARGET`] (`rustup target add` installs it).
fn target_missing() -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let printed = Command::new(rustc).args(["--print", "target-libdir", "--target", TARGET]).output();
    match printed {
        Ok(out) if out.status.success() => !std::path::Path::new(String::from_utf8_lossy(&out.stdout).trim()).is_dir(),
        _ => true,
    }
}

/// Why a guest could not be built or componentized.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Cargo could not be started.
    #[error("could not run {}", cargo.to_string_lossy())]
    Spawn {
        cargo: OsString,
        #[source]
        source: io::Error,
    },
    /// Cargo ran and failed; its diagnostics went to this process's stderr.
    #[error("building the wasm guest failed ({status}){}", build_hint(*.target_missing))]
    Build {
        status: ExitStatus,
        /// Whether the toolchain lacks the wasm target's standard library
        /// (then that is the likely cause).
        target_missing: bool,
    },
    /// [`Built::single`] found no cdylib module, or more than one.
    #[error(
        "expected one cdylib wasm module, cargo built {count}: declare `crate-type = [\"cdylib\"]` \
         in the guest's Cargo.toml, or select one package"
    )]
    NotOneModule { count: usize },
    /// A built module could not be read.
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The bytes are not a core wasm module `wit-component` can read.
    #[error("not a valid core wasm module")]
    InvalidModule(#[source] BoxError),
    /// The module has no `component-type` custom section.
    #[error(
        "the module carries no component type: does it call `executor_guest::export_executor!`? \
         (A C guest links the bindings' `executor_component_type.o`.)"
    )]
    NoComponentType,
    /// `wit-component` could not turn the module into a valid component.
    #[error("turning the module into a component")]
    Encode(#[source] BoxError),
    /// A file could not be written.
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The C bindings could not be generated from the WIT.
    #[error("generating C bindings from {}", wit.display())]
    Bindings {
        wit: PathBuf,
        #[source]
        source: BoxError,
    },
    /// Clang could not be started.
    #[error("could not run {}", program.to_string_lossy())]
    SpawnClang {
        program: OsString,
        #[source]
        source: io::Error,
    },
    /// Clang ran and failed.
    #[error("compiling the C guest failed ({status}):\n{diagnostics}")]
    Compile { status: ExitStatus, diagnostics: String },
    /// [`c::Clang::probe`]: this clang cannot build a wasm32 guest.
    #[error(
        "no C toolchain for wasm32 guests (clang, lld's wasm-ld, wasi-libc, compiler-rt's wasm32 builtins; \
         `tools/install-test-deps` installs them): {reason}"
    )]
    NoCToolchain { reason: String },
}

/// The cause `wit-component` reports (an `anyhow::Error`, chain kept).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Turns a core module built for the `executor` world into a component.
///
/// The module must carry the component type `export_executor!` embeds;
/// a module without one is [`Error::NoComponentType`] rather than an empty
/// component. The result is validated by `wit-component`, not checked
/// against the `executor` world (the host's loader does that).
pub fn componentize(core_module: &[u8]) -> Result<Vec<u8>, Error> {
    // `ComponentEncoder` happily encodes a module without a component type
    // (into a component with no exports): ask first, for a useful error.
    let (stripped, _) = wit_component::metadata::decode(core_module).map_err(|e| Error::InvalidModule(e.into()))?;
    if stripped.is_none() {
        return Err(Error::NoComponentType);
    }
    wit_component::ComponentEncoder::default()
        .module(core_module)
        .map_err(|e| Error::Encode(e.into()))?
        .validate(true)
        .encode()
        .map_err(|e| Error::Encode(e.into()))
}

/// The stack size Rust gives a wasm32 module unless told otherwise.
pub const DEFAULT_RUST_STACK: u64 = 1 << 20;

/// The stack the guests here are linked with (`-zstack-size=65536`): a
/// fresh instance's memory, and the gas it is charged, grow with it.
pub const GUEST_STACK: u64 = 64 << 10;

/// Where a core module's stack pointer starts: with the stack first in
/// memory (the layout rustc and the C guests' link use) that is the stack
/// size. Read from the first global, which LLVM's wasm output makes the
/// mutable `i32` `__stack_pointer`; `None` if the module has no such
/// global (another toolchain) or cannot be read.
pub fn stack_pointer_start(core_module: &[u8]) -> Option<u64> {
    for payload in wasmparser::Parser::new(0).parse_all(core_module) {
        match payload.ok()? {
            // An imported global would come first in the index space.
            wasmparser::Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    if matches!(import.ok()?.ty, wasmparser::TypeRef::Global(_)) {
                        return None;
                    }
                }
            }
            wasmparser::Payload::GlobalSection(globals) => {
                let global = globals.into_iter().next()?.ok()?;
                if !global.ty.mutable || global.ty.content_type != wasmparser::ValType::I32 {
                    return None;
                }
                return match global.init_expr.get_operators_reader().read().ok()? {
                    wasmparser::Operator::I32Const { value } => u64::try_from(value).ok(),
                    _ => None,
                };
            }
            _ => {}
        }
    }
    None
}

/// Reads a core module from a file and [`componentize`]s it.
pub fn componentize_file(path: &Path) -> Result<Vec<u8>, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    componentize(&bytes)
}

/// A nested `cargo build --target wasm32-unknown-unknown` of guest crates.
///
/// Builds the library targets of the selected packages (and, with
/// [`examples`](Self::examples), their examples) with a given profile.
/// Cargo's diagnostics go to this process's stderr. The nested cargo does
/// not see the caller's `RUSTFLAGS`, `CARGO_ENCODED_RUSTFLAGS`,
/// `CARGO_BUILD_TARGET`, `CARGO_PROFILE_RELEASE_DEBUG` or clippy's wrapper
/// variables: the guests' flags come from their workspace's
/// `.cargo/config.toml` and their profile.
#[derive(Debug, Clone)]
pub struct GuestBuild {
    profile: String,
    manifest_path: Option<PathBuf>,
    packages: Vec<String>,
    examples: bool,
    target_dir: Option<PathBuf>,
    current_dir: Option<PathBuf>,
    cargo_config: Vec<String>,
}

impl GuestBuild {
    /// A build with this cargo profile (`release`, `dev`, or a custom one),
    /// of whatever package cargo finds from the current directory.
    pub fn new(profile: impl Into<String>) -> Self {
        Self {
            profile: profile.into(),
            manifest_path: None,
            packages: Vec::new(),
            examples: false,
            target_dir: None,
            current_dir: None,
            cargo_config: Vec::new(),
        }
    }

    /// The `Cargo.toml` of the guest crate or of its workspace
    /// (`--manifest-path`). By default cargo finds it from the current
    /// directory.
    pub fn manifest_path(mut self, manifest: impl Into<PathBuf>) -> Self {
        self.manifest_path = Some(manifest.into());
        self
    }

    /// Adds a package to build (`--package`); call once per package. With
    /// none, cargo builds the package of the manifest (or the workspace's
    /// default members) and every cdylib it builds is returned.
    pub fn package(mut self, package: impl Into<String>) -> Self {
        let package = package.into();
        if !self.packages.contains(&package) {
            self.packages.push(package);
        }
        self
    }

    /// Adds several packages, as [`package`](Self::package) does.
    pub fn packages<I, S>(self, packages: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        packages.into_iter().fold(self, Self::package)
    }

    /// Also builds every example of the selected packages (`--examples`);
    /// examples with `crate-type = ["cdylib"]` are returned as modules. By
    /// default only library targets are built.
    pub fn examples(mut self) -> Self {
        self.examples = true;
        self
    }

    /// Where cargo puts its output (`--target-dir`). A build script should
    /// give one of its own (under `OUT_DIR`), so the nested cargo never
    /// waits for the outer build's lock. By default cargo decides
    /// (`CARGO_TARGET_DIR`, or the workspace's `target/`).
    pub fn target_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.target_dir = Some(dir.into());
        self
    }

    /// The directory cargo runs in. By default this process's.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// Adds a cargo `--config KEY=VALUE` override (cargo's own syntax, the
    /// value in TOML: `profile.guest.lto=true`,
    /// `profile.guest.inherits="release"`); call once per override. They
    /// take precedence over the manifest's `[profile]` tables and any
    /// `.cargo/config.toml`, so a profile can be defined for a crate that
    /// has none.
    pub fn cargo_config(mut self, key_value: impl Into<String>) -> Self {
        self.cargo_config.push(key_value.into());
        self
    }

    /// Links the guest with [`GUEST_STACK`] (a cargo `--config` override of
    /// `wasm32-unknown-unknown`'s rustflags), whatever the crate's own
    /// configuration says or lacks.
    pub fn guest_stack(self) -> Self {
        let flags = format!(r#"target.{TARGET}.rustflags=["-C", "link-arg=-zstack-size={GUEST_STACK}"]"#);
        self.cargo_config(flags)
    }

    /// The cargo command this build runs.
    fn command(&self) -> (OsString, Command) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(&cargo);
        cmd.args(["build", "--target", TARGET, "--profile", &self.profile, "--lib"])
            .args(["--message-format", "json-render-diagnostics"]);
        if self.examples {
            cmd.arg("--examples");
        }
        if let Some(manifest) = &self.manifest_path {
            cmd.arg("--manifest-path").arg(manifest);
        }
        for package in &self.packages {
            cmd.args(["--package", package]);
        }
        if let Some(dir) = &self.target_dir {
            cmd.arg("--target-dir").arg(dir);
        }
        for key_value in &self.cargo_config {
            cmd.arg("--config").arg(key_value);
        }
        if let Some(dir) = &self.current_dir {
            cmd.current_dir(dir);
        }
        for var in REMOVED_ENV {
            cmd.env_remove(var);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        (cargo, cmd)
    }

    /// Runs cargo and returns what it built.
    pub fn run(&self) -> Result<Built, Error> {
        let (cargo, mut cmd) = self.command();
        let out = cmd.output().map_err(|source| Error::Spawn { cargo, source })?;
        if !out.status.success() {
            return Err(Error::Build { status: out.status, target_missing: target_missing() });
        }
        Ok(self.read_messages(&String::from_utf8_lossy(&out.stdout)))
    }

    /// Collects the modules and local packages from cargo's JSON messages
    /// (one per line; lines that are not a message are skipped).
    fn read_messages(&self, stdout: &str) -> Built {
        let mut modules = Vec::new();
        let mut package_dirs = BTreeSet::new();
        for artifact in stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<messages::Message>(line).ok())
            .filter(|msg| msg.reason == "compiler-artifact")
        {
            if artifact.package_id.starts_with("path+")
                && let Some(dir) = artifact.manifest_path.as_deref().and_then(Path::parent)
            {
                package_dirs.insert(dir.to_path_buf());
            }
            let Some(target) = artifact.target else { continue };
            let package = messages::package_name(&artifact.package_id);
            let selected =
                self.packages.is_empty() || self.packages.iter().any(|p| messages::package_name(p) == package);
            if !selected || !target.crate_types.iter().any(|t| t == "cdylib") {
                continue;
            }
            let kind = if target.kind.iter().any(|k| k == "example") { TargetKind::Example } else { TargetKind::Lib };
            for path in artifact.filenames.into_iter().filter(|f| f.extension().is_some_and(|e| e == "wasm")) {
                modules.push(CoreModule { package: package.to_string(), target: target.name.clone(), kind, path });
            }
        }
        Built { modules, package_dirs: package_dirs.into_iter().collect() }
    }
}

/// What a [`GuestBuild`] built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Built {
    /// Every cdylib core module of the selected packages, in cargo's order.
    pub modules: Vec<CoreModule>,
    /// The directory of every local (path) package the build compiled,
    /// dependencies included, sorted: what a build script watches with
    /// `cargo::rerun-if-changed`.
    pub package_dirs: Vec<PathBuf>,
}

impl Built {
    /// The one module built, or [`Error::NotOneModule`].
    pub fn single(self) -> Result<CoreModule, Error> {
        let count = self.modules.len();
        let mut modules = self.modules.into_iter();
        match (modules.next(), modules.next()) {
            (Some(module), None) => Ok(module),
            _ => Err(Error::NotOneModule { count }),
        }
    }
}

/// A core wasm module cargo built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoreModule {
    /// The package it belongs to (`transfer-guest`).
    pub package: String,
    /// The target's name: the library's crate name (`transfer_guest`) or
    /// the example's name.
    pub target: String,
    pub kind: TargetKind,
    /// The `.wasm` file.
    pub path: PathBuf,
}

impl CoreModule {
    /// Reads the module and [`componentize`]s it.
    pub fn componentize(&self) -> Result<Vec<u8>, Error> {
        componentize_file(&self.path)
    }

    /// Reads the module's [`stack_pointer_start`].
    pub fn stack_pointer_start(&self) -> Result<Option<u64>, Error> {
        let bytes = std::fs::read(&self.path).map_err(|source| Error::Read { path: self.path.clone(), source })?;
        Ok(stack_pointer_start(&bytes))
    }
}

/// The kind of target a module was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// The package's library (`[lib] crate-type = ["cdylib", ...]`).
    Lib,
    /// An example (`[[example]] crate-type = ["cdylib"]`).
    Example,
}

/// The part of cargo's `--message-format json` output read here.
mod messages {
    use std::path::PathBuf;

    #[derive(serde::Deserialize)]
    pub(crate) struct Message {
        pub reason: String,
        #[serde(default)]
        pub package_id: String,
        pub manifest_path: Option<PathBuf>,
        pub target: Option<Target>,
        #[serde(default)]
        pub filenames: Vec<PathBuf>,
    }

    #[derive(serde::Deserialize)]
    pub(crate) struct Target {
        pub name: String,
        pub kind: Vec<String>,
        pub crate_types: Vec<String>,
    }

    /// The package name in a package id spec, as cargo prints it in
    /// `package_id` (`path+file:///w/guest/transfer#transfer-guest@0.1.0`,
    /// `path+file:///w/transfer-guest#0.1.0`, or before Cargo 1.77
    /// `transfer-guest 0.1.0 (path+file:///w/guest/transfer)`) or as a user
    /// gives it to `--package` (`transfer-guest`, `transfer-guest@0.1.0`).
    pub(crate) fn package_name(spec: &str) -> &str {
        if !spec.contains("://") || spec.contains(" (") {
            return spec.split([' ', '@', ':']).next().unwrap_or(spec);
        }
        let (url, fragment) = spec.split_once('#').unwrap_or((spec, ""));
        let name = fragment.split(['@', ':']).next().unwrap_or_default();
        // A fragment that is only a version: the name is the last path
        // segment (package names cannot start with a digit).
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            let path = url.split('?').next().unwrap_or(url);
            return path.trim_end_matches('/').rsplit('/').next().unwrap_or(path);
        }
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The toolchain the tests run with has the target; a failed build
    /// on a toolchain without it says how to add it.
    #[test]
    fn a_missing_target_is_named_with_its_remedy() {
        assert!(!target_missing());
        let status = Command::new("false").status().unwrap();
        let missing = Error::Build { status, target_missing: true }.to_string();
        assert!(missing.ends_with("run `rustup target add wasm32-unknown-unknown`"), "{missing}");
    }

    /// The guests here are linked with their 64 KiB stack, and a module
    /// that starts its first global elsewhere, or has none, says so.
    #[test]
    fn the_stack_pointer_start_is_read_from_the_module() {
        let transfer = std::fs::read(guest_artifacts::TRANSFER_CORE).unwrap();
        assert_eq!(stack_pointer_start(&transfer), Some(GUEST_STACK));
        let header = b"\0asm\x01\0\0\0";
        // One global: a mutable i32 starting at 1 MiB (signed LEB128).
        let one_mib = [header.as_slice(), &[6, 9, 1, 0x7f, 1, 0x41, 0x80, 0x80, 0xc0, 0x00, 0x0b]].concat();
        assert_eq!(stack_pointer_start(&one_mib), Some(DEFAULT_RUST_STACK));
        // An immutable one is not a stack pointer.
        let constant = [header.as_slice(), &[6, 9, 1, 0x7f, 0, 0x41, 0x80, 0x80, 0xc0, 0x00, 0x0b]].concat();
        assert_eq!(stack_pointer_start(&constant), None);
        assert_eq!(stack_pointer_start(header), None);
        assert_eq!(stack_pointer_start(b"not wasm"), None);
    }

    #[test]
    fn package_names_from_cargo_ids_and_user_specs() {
        for (spec, name) in [
            ("path+file:///w/guest/transfer#transfer-guest@0.1.0", "transfer-guest"),
            ("path+file:///w/transfer-guest#0.1.0", "transfer-guest"),
            ("path+file:///w/transfer-guest/#0.1.0", "transfer-guest"),
            ("registry+https://github.com/rust-lang/crates.io-index#serde@1.0.229", "serde"),
            ("git+https://example.com/repo?branch=main#guest@0.2.0", "guest"),
            ("git+https://example.com/guest?branch=main#0.2.0", "guest"),
            ("transfer-guest 0.1.0 (path+file:///w/guest/transfer)", "transfer-guest"),
            ("transfer-guest", "transfer-guest"),
            ("transfer-guest@0.1.0", "transfer-guest"),
            ("transfer-guest:0.1.0", "transfer-guest"),
        ] {
            assert_eq!(messages::package_name(spec), name, "{spec}");
        }
    }

    /// Lines as cargo 1.95 prints them (trimmed to the fields read).
    const MESSAGES: &str = r#"{"reason":"compiler-artifact","package_id":"registry+https://github.com/rust-lang/crates.io-index#itoa@1.0.19","manifest_path":"/r/itoa/Cargo.toml","target":{"name":"itoa","kind":["lib"],"crate_types":["lib"]},"filenames":["/t/libitoa.rlib"]}
{"reason":"compiler-artifact","package_id":"path+file:///w/guest/sdk#executor-guest@0.1.0","manifest_path":"/w/guest/sdk/Cargo.toml","target":{"name":"executor_guest","kind":["lib"],"crate_types":["lib"]},"filenames":["/t/libexecutor_guest.rlib"]}
{"reason":"compiler-artifact","package_id":"path+file:///w/guest/hostile#hostile-guests@0.1.0","manifest_path":"/w/guest/hostile/Cargo.toml","target":{"name":"hostile_guests","kind":["cdylib","rlib"],"crate_types":["cdylib","rlib"]},"filenames":["/t/hostile_guests.wasm","/t/libhostile_guests.rlib"]}
{"reason":"compiler-artifact","package_id":"path+file:///w/guest/hostile#hostile-guests@0.1.0","manifest_path":"/w/guest/hostile/Cargo.toml","target":{"name":"wrong_world","kind":["example"],"crate_types":["cdylib"]},"filenames":["/t/examples/wrong_world.wasm"]}
{"reason":"compiler-artifact","package_id":"path+file:///w/counter-guest#0.1.0","manifest_path":"/w/counter-guest/Cargo.toml","target":{"name":"counter_guest","kind":["cdylib","rlib"],"crate_types":["cdylib","rlib"]},"filenames":["/t/counter_guest.wasm","/t/libcounter_guest.rlib"]}
not json
{"reason":"build-finished","success":true}"#;

    fn module(package: &str, target: &str, kind: TargetKind, path: &str) -> CoreModule {
        CoreModule { package: package.into(), target: target.into(), kind, path: path.into() }
    }

    #[test]
    fn modules_are_the_cdylibs_of_the_selected_packages() {
        let built = GuestBuild::new("guest").package("hostile-guests@0.1.0").read_messages(MESSAGES);
        assert_eq!(
            built.modules,
            [
                module("hostile-guests", "hostile_guests", TargetKind::Lib, "/t/hostile_guests.wasm"),
                module("hostile-guests", "wrong_world", TargetKind::Example, "/t/examples/wrong_world.wasm"),
            ]
        );
        // Local packages only, dependencies included.
        let dirs: Vec<PathBuf> = ["/w/counter-guest", "/w/guest/hostile", "/w/guest/sdk"].map(PathBuf::from).into();
        assert_eq!(built.package_dirs, dirs);
        assert!(matches!(built.single(), Err(Error::NotOneModule { count: 2 })));

        let counter = GuestBuild::new("guest").package("counter-guest").read_messages(MESSAGES).single().unwrap();
        assert_eq!(counter, module("counter-guest", "counter_guest", TargetKind::Lib, "/t/counter_guest.wasm"));
    }

    #[test]
    fn without_packages_every_cdylib_is_a_module() {
        let built = GuestBuild::new("guest").read_messages(MESSAGES);
        assert_eq!(built.modules.len(), 3);
    }

    #[test]
    fn the_nested_cargo_sees_none_of_the_callers_build_environment() {
        let (_, cmd) = GuestBuild::new("guest")
            .manifest_path("/w/Cargo.toml")
            .packages(["a", "b", "a"])
            .examples()
            .target_dir("/out")
            .command();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            args.join(" "),
            "build --target wasm32-unknown-unknown --profile guest --lib --message-format json-render-diagnostics \
             --examples --manifest-path /w/Cargo.toml --package a --package b --target-dir /out"
        );
        let (_, cmd) = GuestBuild::new("guest").cargo_config("profile.guest.lto=true").command();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(args.join(" ").ends_with("--config profile.guest.lto=true"), "{args:?}");
        let removed: Vec<_> = cmd.get_envs().filter(|(_, value)| value.is_none()).map(|(name, _)| name).collect();
        assert_eq!(removed.len(), REMOVED_ENV.len());
        for var in REMOVED_ENV {
            assert!(removed.contains(&std::ffi::OsStr::new(var)), "{var}");
        }
    }

    #[test]
    fn a_module_without_component_type_is_named_as_such() {
        // The smallest valid core module: the header alone.
        let empty = b"\0asm\x01\0\0\0";
        let err = componentize(empty).unwrap_err();
        assert!(matches!(err, Error::NoComponentType), "{err:?}");
        assert!(err.to_string().contains("does it call `executor_guest::export_executor!`?"), "{err}");
    }

    #[test]
    fn garbage_is_not_a_module_and_keeps_its_cause() {
        let err = componentize(b"not wasm").unwrap_err();
        assert!(matches!(err, Error::InvalidModule(_)), "{err:?}");
        assert!(std::error::Error::source(&err).is_some());
    }
}
