//! The `executor-host` binary.

use std::process::Command;

fn check(path: &str) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_executor-host")).args(["check", path]).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_an_executor_and_prints_its_shape() {
    let (ok, stdout, _) = check(guest_artifacts::TRANSFER);
    assert!(ok);
    assert!(
        stdout.contains("execute-step: func(executable: list<u8>, state: list<u8>, input: option<record>)"),
        "{stdout}"
    );
    assert!(stdout.contains("imports: none"), "{stdout}");
    assert!(stdout.contains("size: "), "{stdout}");
}

#[test]
fn check_refuses_bad_input_with_a_one_line_reason() {
    let garbage = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(garbage.path(), b"not wasm at all").unwrap();
    let garbage = garbage.path().to_str().unwrap();
    for (path, reason) in [
        (guest_artifacts::TRANSFER_CORE, "a core wasm module, not a component"),
        (guest_artifacts::WRONG_WORLD, "wrong world"),
        (guest_artifacts::WASI_IMPORT, "forbidden import: wasi:random/random@0.2.0"),
        (garbage, "not a wasm binary"),
        ("/nonexistent.wasm", "reading /nonexistent.wasm"),
    ] {
        let (ok, _, stderr) = check(path);
        assert!(!ok, "{path}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(reason), "{path}: {stderr}");
    }
}
