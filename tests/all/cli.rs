//! The `executor-host` binary.

use std::process::Command;

fn check(path: &str) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_executor-host"))
        .args(["check", path, "--output", "human"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
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

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_executor-host"))
        .arg("run")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn example(name: &str) -> String {
    format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn run_prints_the_same_report_for_wasm_native_and_every_delivery() {
    let scenario = example("transfers.json");
    let report = |args: &[&str]| -> serde_json::Value {
        let (ok, stdout, stderr) = run(args);
        assert!(ok, "{stderr}");
        serde_json::from_str(&stdout).unwrap()
    };
    let native = report(&["--native", "transfer", "--scenario", &scenario]);
    assert_eq!(native["transactions"].as_array().unwrap().len(), 300);
    assert!(native["failed"].as_u64().unwrap() > 0, "some transfers lack funds");
    let wasm = report(&["--guest", guest_artifacts::TRANSFER, "--scenario", &scenario, "--seed", "3"]);
    assert_eq!(wasm["final_state"], native["final_state"]);
    assert_eq!(wasm["succeeded"], native["succeeded"]);
    assert!(wasm["gas_used"].as_u64().unwrap() > 0);
    let first = &wasm["transactions"][0];
    assert_eq!(first["timestamp"], 1);
    assert!(first["values_read"].is_object() && first["values_written"].is_object());
}

#[test]
fn run_executes_the_nock_example_end_to_end() {
    let (ok, stdout, stderr) = run(&["--guest", guest_artifacts::NOCKMA, "--scenario", &example("nock.json")]);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["final_state"]["a"], "D", "A incremented three times");
    assert_eq!(report["succeeded"], 3);
}

#[test]
fn run_refuses_a_malformed_scenario_naming_the_field_and_position() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "{\"transactions\": [\n {\"executable\": \"x\",\n  \"eager_read_keys\": [7]}]}")
        .unwrap();
    let (ok, _, stderr) = run(&["--native", "transfer", "--scenario", file.path().to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("transactions[0].eager_read_keys[0]") && stderr.contains("line 3"), "{stderr}");
    let (ok, _, stderr) = run(&["--scenario", file.path().to_str().unwrap()]);
    assert!(!ok && stderr.contains("--guest"), "{stderr}");
}
