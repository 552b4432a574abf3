//! Loading, validation and hostile guests: every attack ends in its own
//! typed failure, and the same sandbox then runs a normal transfer.

use std::time::Duration;

use executor_host::{Failure, Limits, Oversize, TrapKind};
use executor_host::{LoadError, Sandbox, SandboxConfig};

use crate::support::*;

/// Runs the hostile guest in `mode` on `sandbox`, then checks that the same
/// sandbox still runs a transfer.
fn attack(sandbox: &Sandbox, mode: &str, gas: u64) -> Failure {
    let hostile = load(sandbox, guest_artifacts::HOSTILE);
    let run = drive(&hostile, mode.as_bytes(), &[], gas);
    let transfer = load(sandbox, guest_artifacts::TRANSFER);
    let ok = drive(&transfer, &transfer_exe("a", "b", 1), &[input("a", Some("1")), input("b", None)], GAS);
    assert_eq!(ok.result, Ok(()), "transfer after `{mode}`");
    run.result.expect_err(mode)
}

fn sandbox_with(limits: Limits) -> Sandbox {
    Sandbox::new(SandboxConfig { limits, ..SandboxConfig::default() }).expect("sandbox")
}

#[test]
fn infinite_loop_runs_out_of_gas() {
    assert_eq!(attack(sandbox(), "loop", 1_000_000), Failure::OutOfGas);
}

#[test]
fn infinite_loop_hits_the_wall_clock_bound() {
    let sandbox = sandbox_with(Limits { call_time: Duration::from_millis(50), ..Limits::default() });
    assert_eq!(attack(&sandbox, "loop", u64::MAX), Failure::Timeout { bound_ms: 50 });
}

#[test]
fn memory_growth_hits_the_memory_limit() {
    let limit = Limits::default().memory_bytes;
    assert_eq!(attack(sandbox(), "grow", GAS), Failure::MemoryLimit { limit });
}

#[test]
fn unbounded_recursion_exhausts_the_stack() {
    assert_eq!(attack(sandbox(), "recurse", GAS), Failure::StackOverflow);
}

#[test]
fn panic_is_an_unreachable_trap() {
    assert_eq!(attack(sandbox(), "panic", GAS), Failure::Trap { trap: TrapKind::Unreachable });
}

#[test]
fn guest_error_is_reported_with_its_message() {
    let failure = attack(sandbox(), "err", GAS);
    assert_eq!(failure, Failure::Guest { message: "hostile guest fails on purpose".into() });
}

#[test]
fn a_million_requests_exceed_memory_or_the_request_limit() {
    // With the default 16 MiB the guest cannot even build them.
    let limit = Limits::default().memory_bytes;
    assert_eq!(attack(sandbox(), "flood", u64::MAX), Failure::MemoryLimit { limit });
    // With room to build them, the host refuses the step.
    let roomy = sandbox_with(Limits { memory_bytes: 512 << 20, ..Limits::default() });
    assert_eq!(
        attack(&roomy, "flood", u64::MAX),
        Failure::TooLarge { what: Oversize::Requests, size: 1_000_000, limit: 10_000 }
    );
}

#[test]
fn oversized_key_datum_and_state_are_refused() {
    let limits = Limits::default();
    assert_eq!(
        attack(sandbox(), "huge-key", GAS),
        Failure::TooLarge { what: Oversize::Key, size: 64 << 10, limit: limits.key_bytes }
    );
    assert_eq!(
        attack(sandbox(), "huge-datum", GAS),
        Failure::TooLarge { what: Oversize::Datum, size: 2 << 20, limit: limits.datum_bytes }
    );
    assert_eq!(
        attack(sandbox(), "huge-state", GAS),
        Failure::TooLarge { what: Oversize::State, size: 2 << 20, limit: limits.state_bytes }
    );
}

#[test]
fn not_wasm_is_refused() {
    assert_eq!(sandbox().load(b"hello").unwrap_err(), LoadError::NotWasm);
    assert_eq!(sandbox().load(b"").unwrap_err(), LoadError::NotWasm);
}

#[test]
fn core_module_is_refused() {
    assert_eq!(sandbox().load(&bytes(guest_artifacts::TRANSFER_CORE)).unwrap_err(), LoadError::CoreModule);
}

#[test]
fn truncated_component_is_invalid() {
    let whole = bytes(guest_artifacts::TRANSFER);
    let error = sandbox().load(&whole[..whole.len() / 2]).unwrap_err();
    assert!(matches!(error, LoadError::Invalid(_)), "{error:?}");
}

#[test]
fn wrong_world_is_refused_naming_the_missing_exports() {
    let error = sandbox().load(&bytes(guest_artifacts::WRONG_WORLD)).unwrap_err();
    assert_eq!(error, LoadError::WrongWorld("missing exports starting-state, execute-step, halted".into()));
}

#[test]
fn wasi_import_is_refused_naming_the_import() {
    let error = sandbox().load(&bytes(guest_artifacts::WASI_IMPORT)).unwrap_err();
    assert_eq!(error, LoadError::ForbiddenImport(vec!["wasi:random/random@0.2.0".into()]));
}

#[test]
fn example_guests_are_components_with_zero_imports() {
    for (name, path) in guest_artifacts::ALL {
        let info = sandbox().inspect(&bytes(path)).expect(name);
        match *name {
            "WASI_IMPORT" => assert_eq!(info.imports.len(), 1),
            _ => assert!(info.imports.is_empty(), "{name} imports {:?}", info.imports),
        }
    }
}

#[test]
fn compiled_artifacts_are_cached_on_disk_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cap_std::fs::Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap();
    let component = bytes(guest_artifacts::COUNTER);
    sandbox_with(Limits::default()).load_cached(&component, &cache).unwrap();
    let artifacts = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let first = artifacts();
    assert_eq!(first.len(), 1);
    assert!(first[0].ends_with(".cwasm"));

    // A new sandbox (think: a new process) with the same configuration
    // loads the same artifact and runs it.
    let program = sandbox_with(Limits::default()).load_cached(&component, &cache).unwrap();
    let run = drive(&program, br#"{"key":"k","amount":1}"#, &[input("k", None)], GAS);
    assert_eq!(run.result, Ok(()));
    assert_eq!(artifacts(), first);

    // A different configuration must not reuse it.
    let other = sandbox_with(Limits { state_bytes: 7, ..Limits::default() });
    other.load_cached(&component, &cache).unwrap();
    assert_eq!(artifacts().len(), 2);

    // A corrupt artifact is recompiled, not trusted.
    std::fs::write(dir.path().join(&first[0]), b"garbage").unwrap();
    let program = sandbox_with(Limits::default()).load_cached(&component, &cache).unwrap();
    assert_eq!(drive(&program, br#"{"key":"k","amount":1}"#, &[input("k", None)], GAS).result, Ok(()));
}
