//! Guests in C: the WIT world is the API, not the Rust SDK.
//!
//! A C guest implements the three exports of the `executor` world against
//! the bindings wit-bindgen's C generator writes from the WIT file
//! ([`bindings`]): `executor.h`, `executor.c` and
//! `executor_component_type.o`, the object that carries the component type
//! into the module. [`Clang`] compiles the guest and the bindings for wasm32
//! against wasi-libc (for `memcpy`, `strlen`, `malloc` and the like; nothing
//! of WASI is called, so the module imports nothing) into a core module, which
//! [`componentize`](crate::componentize) turns into a component exactly as
//! it does a Rust guest's.
//!
//! ```no_run
//! use executor_guest_build::{c, componentize};
//! use std::path::Path;
//!
//! # fn main() -> Result<(), executor_guest_build::Error> {
//! let dir = Path::new("target/c-counter");
//! c::write_bindings(Path::new("wit/executor.wit"), dir)?;
//! let core = dir.join("counter.core.wasm");
//! let sources = ["guest/c-counter/counter.c", "guest/c-counter/arena.c"].map(Path::new);
//! let (bindings, object) = (dir.join(c::BINDINGS_SOURCE), dir.join(c::BINDINGS_OBJECT));
//! let inputs = [sources[0], sources[1], &bindings, &object];
//! c::Clang::from_env().compile(&inputs, Some(dir), &core)?;
//! let component = executor_guest_build::componentize_file(&core)?;
//! # Ok(()) }
//! ```
//!
//! By hand, the same three steps are in the README ("A guest in C").

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use wit_bindgen_core::wit_parser::Resolve;

use crate::{BoxError, Error};

/// The world the bindings are generated for.
pub const WORLD: &str = "executor";

/// The C source of the bindings, which a guest compiles with its own.
pub const BINDINGS_SOURCE: &str = "executor.c";

/// The object carrying the component type, which a guest links with.
pub const BINDINGS_OBJECT: &str = "executor_component_type.o";

/// The C bindings of the `executor` world in the WIT package at `wit` (a
/// `.wit` file or a directory of them): file names and contents, as
/// `wit-bindgen c` writes them.
pub fn bindings(wit: &Path) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let generate = || -> Result<Vec<(String, Vec<u8>)>, BoxError> {
        let mut resolve = Resolve::default();
        let (package, _) = resolve.push_path(wit)?;
        let world = resolve.select_world(&[package], Some(WORLD))?;
        let mut files = wit_bindgen_core::Files::default();
        wit_bindgen_c::Opts::default().build().generate(&mut resolve, world, &mut files)?;
        Ok(files.iter().map(|(name, bytes)| (name.to_string(), bytes.to_vec())).collect())
    };
    generate().map_err(|source| Error::Bindings { wit: wit.to_path_buf(), source })
}

/// Writes the [`bindings`] into `dir` (created if need be) and returns
/// their paths.
pub fn write_bindings(wit: &Path, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let write = |path: &Path, bytes: Option<&[u8]>| {
        match bytes {
            Some(bytes) => std::fs::write(path, bytes),
            None => std::fs::create_dir_all(path),
        }
        .map_err(|source| Error::Write { path: path.to_path_buf(), source })
    };
    let files = bindings(wit)?;
    write(dir, None)?;
    let mut paths = Vec::new();
    for (name, bytes) in files {
        let path = dir.join(name);
        write(&path, Some(&bytes))?;
        paths.push(path);
    }
    Ok(paths)
}

/// What clang is given, besides the sources, include directory and output,
/// to build a guest's core module (the README's "A guest in C" spells the
/// same command):
///
/// - `--target=wasm32-wasi`: wasm32 with wasi-libc's headers and `libc.a`
///   (Debian's `wasi-libc` is found there without `--sysroot`), for
///   `memcpy`, `strlen`, and `malloc`, `realloc` and `free`, which the
///   bindings call (a guest may define its own, as the counter's `arena.c`
///   does). None of these calls into WASI, so nothing is imported;
/// - `-nostartfiles -Wl,--no-entry`: a library of exports, without the C
///   runtime's `_start` (which would import WASI to exit);
/// - `-Wl,-z,stack-size=65536`: the 64 KiB stack the Rust guests have, so a
///   fresh instance's memory stays small;
/// - `-Wl,--strip-all`: no debug or name sections (wasi-libc's `libc.a`
///   carries debug info), like the Rust guests' `strip = true`; the
///   component type's custom section stays;
/// - `-Os`, and warnings on.
pub const CLANG_ARGS: &[&str] = &[
    "--target=wasm32-wasi",
    "-Os",
    "-Wall",
    "-Wextra",
    "-nostartfiles",
    "-Wl,--no-entry",
    "-Wl,-z,stack-size=65536",
    "-Wl,--strip-all",
];

/// A clang that can target wasm32 (with `wasm-ld` and wasi-libc beside it).
#[derive(Debug, Clone)]
pub struct Clang {
    program: OsString,
    sysroot: Option<PathBuf>,
}

impl Clang {
    /// The clang named by `CLANG` (default `clang`), with the sysroot named
    /// by `WASI_SYSROOT` if set (for a wasi-sdk or a wasi-libc built by
    /// hand; Debian's is found without one).
    pub fn from_env() -> Self {
        Self {
            program: std::env::var_os("CLANG").unwrap_or_else(|| "clang".into()),
            sysroot: std::env::var_os("WASI_SYSROOT").map(PathBuf::from),
        }
    }

    /// A given clang program and sysroot.
    pub fn new(program: impl Into<OsString>, sysroot: Option<PathBuf>) -> Self {
        Self { program: program.into(), sysroot }
    }

    /// Whether this toolchain builds a guest at all: compiles and links,
    /// with [`CLANG_ARGS`] into `scratch`, a program that includes the
    /// headers the bindings include and calls `malloc`.
    /// [`Error::NoCToolchain`] says what is missing (clang itself,
    /// `wasm-ld`, wasi-libc, the wasm32 builtins).
    pub fn probe(&self, scratch: &Path) -> Result<(), Error> {
        let source = scratch.join("probe.c");
        std::fs::create_dir_all(scratch)
            .and_then(|()| {
                std::fs::write(
                    &source,
                    "#include <stdbool.h>\n#include <stdint.h>\n#include <stdlib.h>\n#include <string.h>\n\
                     __attribute__((export_name(\"probe\"))) int probe(int n) { return malloc(n) != NULL; }\n",
                )
            })
            .map_err(|source| Error::Write { path: scratch.to_path_buf(), source })?;
        match self.compile(&[&source], None, &scratch.join("probe.wasm")) {
            Err(Error::Compile { diagnostics, .. }) => Err(Error::NoCToolchain { reason: diagnostics }),
            Err(Error::SpawnClang { program, source }) => {
                Err(Error::NoCToolchain { reason: format!("could not run {}: {source}", program.to_string_lossy()) })
            }
            other => other,
        }
    }

    /// Compiles and links `inputs` (C sources and objects: the guest's,
    /// [`BINDINGS_SOURCE`] and [`BINDINGS_OBJECT`]) into the core module
    /// `output`, with [`CLANG_ARGS`] and `include` (the bindings'
    /// directory) on the include path. Clang's diagnostics are in the
    /// error.
    pub fn compile(&self, inputs: &[&Path], include: Option<&Path>, output: &Path) -> Result<(), Error> {
        let out = self
            .command(inputs, include, output)
            .output()
            .map_err(|source| Error::SpawnClang { program: self.program.clone(), source })?;
        if !out.status.success() {
            return Err(Error::Compile {
                status: out.status,
                diagnostics: String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
            });
        }
        Ok(())
    }

    /// The clang command [`compile`](Self::compile) runs.
    pub fn command(&self, inputs: &[&Path], include: Option<&Path>, output: &Path) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(CLANG_ARGS);
        if let Some(sysroot) = &self.sysroot {
            cmd.arg(format!("--sysroot={}", sysroot.display()));
        }
        if let Some(include) = include {
            cmd.arg("-I").arg(include);
        }
        cmd.arg("-o").arg(output).args(inputs);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        cmd
    }
}
