//! The mechanism against real cargo and real guests. Every guest module in
//! `guest-artifacts` was built and componentized by this crate (its build
//! script would fail otherwise); these tests pin the rest: cargo's real
//! messages, failures, and the component a real module becomes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

use executor_guest_build::{Error, GuestBuild, componentize};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A cheap build: the `dev` profile, in a target directory under cargo's
/// `CARGO_TARGET_TMPDIR` (kept between runs).
fn build() -> GuestBuild {
    GuestBuild::new("dev").current_dir(workspace()).target_dir(Path::new(env!("CARGO_TARGET_TMPDIR")).join("guests"))
}

#[test]
fn a_package_without_a_cdylib_builds_no_module() {
    let built = build().package("example-decimal").run().unwrap();
    assert_eq!(built.package_dirs, [workspace().join("guest/decimal")]);
    let err = built.single().unwrap_err();
    assert!(matches!(err, Error::NotOneModule { count: 0 }), "{err:?}");
    assert!(err.to_string().contains("crate-type = [\"cdylib\"]"), "{err}");
}

/// A build that fails for another reason than a missing target (here an
/// unknown package; the tests' toolchain has the target) points at
/// cargo's messages, not at `rustup target add`, which it used to suggest
/// for every failure.
#[test]
fn a_failed_build_says_where_to_look() {
    let err = build().package("no-such-guest").run().unwrap_err();
    assert!(matches!(err, Error::Build { target_missing: false, .. }), "{err:?}");
    assert!(err.to_string().ends_with("(cargo's messages above say why)"), "{err}");
    assert!(!err.to_string().contains("rustup"), "{err}");
}

#[test]
fn a_guest_module_becomes_a_component() {
    let core = std::fs::read(guest_artifacts::TRANSFER_CORE).unwrap();
    assert_eq!(core[..8], *b"\0asm\x01\0\0\0", "a core module");
    let component = componentize(&core).unwrap();
    assert_eq!(component[..8], *b"\0asm\x0d\0\x01\0", "a component (layer 1)");
    // Deterministic: the same bytes the build script wrote.
    assert_eq!(component, std::fs::read(guest_artifacts::TRANSFER).unwrap());
}

#[test]
fn a_component_is_not_a_core_module_to_componentize() {
    let component = std::fs::read(guest_artifacts::TRANSFER).unwrap();
    assert!(componentize(&component).is_err());
}
