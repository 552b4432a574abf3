//! The C side of the crate without a C toolchain: the bindings generated
//! from the workspace's WIT, and what a missing toolchain says. (Building
//! and running the C guest is `tests/all/c_guest.rs` at the root.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

use executor_guest_build::Error;
use executor_guest_build::c::{self, Clang};

fn wit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit/executor.wit")
}

#[test]
fn the_bindings_declare_the_three_exports_and_carry_the_component_type() {
    let files = c::bindings(&wit()).unwrap();
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["executor.c", "executor.h", c::BINDINGS_OBJECT]);
    let header = String::from_utf8(files[1].1.clone()).unwrap();
    for export in [
        "bool exports_executor_starting_state(executor_list_u8_t *executable, executor_list_u8_t *ret, executor_string_t *err);",
        "bool exports_executor_execute_step(executor_list_u8_t *executable, executor_list_u8_t *state, executor_input_t *maybe_input, executor_step_t *ret, executor_string_t *err);",
        "bool exports_executor_halted(executor_list_u8_t *state);",
    ] {
        assert!(header.contains(export), "executor.h lacks {export}");
    }
    // The object is a wasm object file whose custom section is the world.
    let object = &files[2].1;
    assert_eq!(object[..4], *b"\0asm");
    assert!(object.windows(23).any(|w| w == b"component-type:executor"));
    // Generated alike every time.
    assert_eq!(c::bindings(&wit()).unwrap(), files);
}

#[test]
fn the_bindings_are_written_where_asked() {
    let dir = tempfile_dir("written");
    let paths = c::write_bindings(&wit(), &dir).unwrap();
    assert_eq!(paths.len(), 3);
    assert!(paths.iter().all(|p| p.starts_with(&dir) && p.is_file()), "{paths:?}");
}

#[test]
fn a_missing_wit_file_is_named() {
    let err = c::bindings(Path::new("/nonexistent/executor.wit")).unwrap_err();
    assert!(matches!(err, Error::Bindings { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/executor.wit"), "{err}");
}

#[test]
fn a_missing_clang_is_no_toolchain_and_says_how_to_install_one() {
    let err = Clang::new("/nonexistent/clang", None).probe(&tempfile_dir("probe")).unwrap_err();
    let Error::NoCToolchain { reason } = &err else { panic!("{err:?}") };
    assert!(reason.contains("/nonexistent/clang"), "{reason}");
    assert!(err.to_string().contains("tools/install-test-deps"), "{err}");
}

#[test]
fn the_clang_command_is_the_documented_one() {
    let cmd = Clang::new("clang", Some("/sysroot".into())).command(
        &[Path::new("guest.c"), Path::new("executor.c")],
        Some(Path::new("bindings")),
        Path::new("out.wasm"),
    );
    let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    assert_eq!(
        args.join(" "),
        format!("{} --sysroot=/sysroot -I bindings -o out.wasm guest.c executor.c", c::CLANG_ARGS.join(" "))
    );
}

/// A fresh directory under cargo's `CARGO_TARGET_TMPDIR`.
fn tempfile_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-bindings").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The binary's two commands, as the README runs them.
#[test]
fn the_binary_writes_bindings_and_componentizes() {
    let bin = env!("CARGO_BIN_EXE_executor-guest-build");
    let dir = tempfile_dir("binary");
    let out = std::process::Command::new(bin).arg("c-bindings").arg(wit()).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(dir.join(c::BINDINGS_OBJECT)).unwrap(), c::bindings(&wit()).unwrap()[2].1);

    let component = dir.join("counter.wasm");
    let out = std::process::Command::new(bin)
        .args(["componentize", guest_artifacts::COUNTER_CORE])
        .arg(&component)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&component).unwrap(), std::fs::read(guest_artifacts::COUNTER).unwrap());

    // A core module without the component type: one line that says why.
    let empty = dir.join("empty.wasm");
    std::fs::write(&empty, b"\0asm\x01\0\0\0").unwrap();
    let out = std::process::Command::new(bin).arg("componentize").arg(&empty).arg(&component).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: ") && stderr.contains("executor_component_type.o"), "{stderr}");

    let out = std::process::Command::new(bin).arg("build").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("usage: "));
}
