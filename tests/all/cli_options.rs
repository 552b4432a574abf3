//! The `executor-host` binary as an operator and a CI job use it: the
//! configuration file, output formats, exit statuses, logs, completions
//! and the man page, and the one-line refusal of every bad input.

use std::path::Path;
use std::process::Command;

/// What one run of the binary did: its exit status, stdout and stderr.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// Failed with exactly one line on stderr that contains `reason`.
    fn refused(&self, reason: &str) -> bool {
        self.code != Some(0) && self.stderr.lines().count() == 1 && self.stderr.contains(reason)
    }
}

/// Runs the binary in `dir` with `env` set (and `RUST_LOG` unset unless
/// given), its stdout a pipe.
fn cli_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut command = Command::new(env!("CARGO_BIN_EXE_executor-host"));
    command.current_dir(dir).args(args).env_remove("RUST_LOG");
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn cli(args: &[&str]) -> Ran {
    cli_in(Path::new(env!("CARGO_MANIFEST_DIR")), args, &[])
}

fn example(name: &str) -> String {
    format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Writes `text` to `name` in `dir`; returns the path as a string.
fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// A scenario of `count` transfers of 1 from alice (who holds 1000) to bob,
/// with `options` as its options object (or none).
fn transfers(count: usize, options: Option<&str>) -> String {
    let tx = r#"{"executable": {"from": "alice", "to": "bob", "amount": 1},
                 "eager_read_keys": ["alice", "bob"], "will_write_keys": ["alice", "bob"]}"#;
    let options = options.map(|o| format!(r#""options": {o},"#)).unwrap_or_default();
    format!(
        r#"{{"shards": 2, "initial_state": {{"alice": "1000"}}, {options} "transactions": [{}]}}"#,
        vec![tx; count].join(",")
    )
}

#[test]
fn config_default_reads_back_through_config_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let defaults = cli(&["config", "--default"]);
    assert_eq!(defaults.code, Some(0), "{}", defaults.stderr);
    for section in ["[sandbox]", "[sandbox.limits]", "[executor]", "[host]"] {
        let at = defaults.stdout.find(&format!("\n{section}\n")).unwrap_or_else(|| panic!("{section}"));
        let before = defaults.stdout[..at].lines().last().unwrap();
        assert!(before.starts_with(&format!("# {section}: ")), "a comment line above {section}: {before}");
    }
    assert!(defaults.stdout.contains("deadline = { secs = 30, nanos = 0 }"), "{}", defaults.stdout);
    let file = write(dir.path(), "default.toml", &defaults.stdout);
    // The effective configuration of the defaults file is the defaults,
    // printed the same way.
    let effective = cli(&["--config", &file, "config"]);
    assert_eq!(effective.code, Some(0), "{}", effective.stderr);
    assert_eq!(effective.stdout, defaults.stdout);
    // And a run under it behaves as one without it.
    let run = cli(&["--config", &file, "run", "--native", "transfer", "--scenario", &example("transfers.json")]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.json()["transactions"].as_array().unwrap().len(), 300);
}

#[test]
fn a_bad_configuration_is_refused_in_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = example("transfers.json");
    for (text, reason) in [
        (
            "[sandbox.limits]\nmemory_bytes = \"x\"\n",
            "sandbox.limits.memory_bytes: invalid type: string \"x\", expected u64 at line 2 column 16",
        ),
        ("[executor]\ngas = 1\n", "executor.gas: unknown field `gas`, expected one of `gas_limit`"),
        ("[sandbox]\nlimits = 3\n", "sandbox.limits: invalid type: integer `3`"),
        ("[surprise]\n", "surprise: unknown field `surprise`, expected one of `sandbox`, `executor`, `host`"),
        ("[executor\n", "at line 1 column 10"),
        ("[host]\nthreads = 0\n", "host.threads: invalid value: integer `0`, expected a nonzero usize"),
        ("[executor]\ndeadline = 30\n", "executor.deadline: invalid type: integer `30`, expected struct Duration"),
        ("[executor]\nwrite_mode = \"eventually\"\n", "executor.write_mode: unknown variant `eventually`"),
    ] {
        let file = write(dir.path(), "bad.toml", text);
        let ran = cli(&["--config", &file, "run", "--native", "transfer", "--scenario", &scenario]);
        assert!(ran.refused(reason), "{text:?}: {:?} {}", ran.code, ran.stderr);
        assert!(ran.stderr.contains("bad.toml: "), "names the file: {}", ran.stderr);
        assert!(ran.stdout.is_empty(), "{text:?}: {}", ran.stdout);
    }
    // The duration shape is explained where it is wrong.
    let file = write(dir.path(), "bad.toml", "[executor]\ndeadline = 30\n");
    assert!(cli(&["--config", &file, "config"]).stderr.contains("{ secs = 30, nanos = 0 }"));
    // A missing file, for every command.
    for args in [vec!["list"], vec!["config"], vec!["run", "--native", "transfer", "--scenario", &scenario]] {
        let ran = cli(&[&["--config", "/nonexistent/executor.toml"][..], &args[..]].concat());
        assert!(ran.refused("reading the configuration file /nonexistent/executor.toml"), "{args:?}: {}", ran.stderr);
    }
    // A device without end is refused once past what a configuration
    // could be, not read until memory runs out.
    let ran = cli(&["--config", "/dev/zero", "config"]);
    assert!(ran.refused("reading the configuration file /dev/zero: larger than"), "{}", ran.stderr);
    // A value only the sandbox can refuse, when it is set up.
    let file = write(dir.path(), "tick.toml", "[sandbox]\nepoch_tick = { secs = 0, nanos = 0 }\n");
    let ran = cli(&["--config", &file, "check", guest_artifacts::TRANSFER]);
    assert!(ran.refused("epoch_tick"), "{}", ran.stderr);
    let file = write(dir.path(), "tick.toml", "[sandbox]\nepoch_tick = { secs = 0, nanos = 1 }\n");
    let ran = cli(&["--config", &file, "check", guest_artifacts::TRANSFER]);
    assert!(ran.refused("`epoch_tick` must be at least 100 µs"), "{}", ran.stderr);
    let file = write(dir.path(), "tick.toml", "[sandbox]\nepoch_tick = { secs = 3600, nanos = 0 }\n");
    let ran = cli(&["--config", &file, "check", guest_artifacts::TRANSFER]);
    assert!(ran.refused("`epoch_tick` must be at most 1 s"), "{}", ran.stderr);
}

#[test]
fn precedence_is_defaults_then_file_then_scenario_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let tiny_gas = write(dir.path(), "tiny.toml", "[executor]\ngas_limit = 10\n[host]\nseed = 4\n");
    let plain = write(dir.path(), "plain.json", &transfers(3, None));
    let generous = write(dir.path(), "generous.json", &transfers(3, Some(r#"{"gas_limit": 100000000}"#)));
    let stingy = write(dir.path(), "stingy.json", &transfers(3, Some(r#"{"gas_limit": 10}"#)));
    let outcome = |config: Option<&str>, scenario: &str, flags: &[&str]| -> serde_json::Value {
        let mut args = vec![];
        if let Some(config) = config {
            args.extend(["--config", config]);
        }
        args.extend(["run", "--guest", guest_artifacts::TRANSFER, "--scenario", scenario, "--output", "json"]);
        args.extend(flags);
        let ran = cli(&args);
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        ran.json()
    };
    // Defaults: enough gas.
    assert_eq!(outcome(None, &plain, &[])["succeeded"], 3);
    // The file's gas limit applies...
    let starved = outcome(Some(&tiny_gas), &plain, &[]);
    assert_eq!(starved["failed_by_reason"]["out_of_gas"], 3, "{starved}");
    // ...below the scenario's own options...
    assert_eq!(outcome(Some(&tiny_gas), &generous, &[])["succeeded"], 3);
    // ...and the flag beats both.
    assert_eq!(outcome(Some(&tiny_gas), &generous, &["--gas-limit", "10"])["failed_by_reason"]["out_of_gas"], 3);
    assert_eq!(outcome(None, &stingy, &["--gas-limit", "100000000"])["succeeded"], 3);
    // The file's seed makes the run deterministic; --concurrent undoes it,
    // and so does a flag only a concurrent run has (it was ignored).
    assert_eq!(outcome(Some(&tiny_gas), &generous, &["--concurrent", "--threads", "1"])["succeeded"], 3);
    let delivery = |flags: &[&str]| {
        let args = [&["--log-level", "info", "--config", &tiny_gas, "run", "--native", "transfer"][..], flags].concat();
        let ran = cli(&[&args[..], &["--scenario", &generous]].concat());
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        ran.stderr.lines().find_map(|l| Some(l.split_once("delivery=")?.1.split(' ').next()?.to_owned()))
    };
    assert_eq!(delivery(&[]).as_deref(), Some("Deterministic"));
    assert_eq!(delivery(&["--threads", "2"]).as_deref(), Some("ClosedLoop"));
    assert_eq!(delivery(&["--in-flight", "5"]).as_deref(), Some("ClosedLoop"));
    // One transaction in flight at a time, from the file or the flag: the
    // same report as all at once.
    let one_at_a_time = write(dir.path(), "window.toml", "[host]\nin_flight = 1\n");
    let windowed = outcome(Some(&one_at_a_time), &plain, &[]);
    assert_eq!(windowed["transactions"], outcome(None, &plain, &["--in-flight", "1000"])["transactions"]);
    assert_eq!(outcome(None, &plain, &["--in-flight", "1"])["transactions"], windowed["transactions"]);
}

/// A component file larger than `max_component_bytes` is refused by
/// `check`, `deploy` and `run` without being read whole: a file past the
/// bound, and a device that never ends.
#[test]
fn a_component_file_past_the_size_bound_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "small.toml", "[sandbox]\nmax_component_bytes = 1000\n");
    let big = write_bytes(dir.path(), "big.wasm", &[0; 1001]);
    let store = dir.path().join("store");
    let scenario = write(dir.path(), "s.json", &transfers(1, None));
    let bound = "larger than this sandbox loads: more than 1000 bytes (`max_component_bytes` in `[sandbox]`)";
    for args in [
        vec!["check", &big],
        vec!["deploy", &big, "--name", "big", "--store", store.to_str().unwrap()],
        vec!["run", "--guest", &big, "--scenario", &scenario],
    ] {
        let ran = cli(&[&["--config", &config][..], &args].concat());
        assert!(ran.refused(bound), "{args:?}: {}", ran.stderr);
    }
    // Without end: the default bound, 8 MiB, read and no more.
    let ran = cli(&["check", "/dev/zero"]);
    assert!(ran.refused("/dev/zero is larger than this sandbox loads"), "{}", ran.stderr);
    // At the bound it is read, and refused for what it is.
    let fits = write_bytes(dir.path(), "fits.wasm", &[0; 1000]);
    assert!(cli(&["--config", &config, "check", &fits]).stderr.contains("not a wasm binary"));
}

/// Each transaction's gas is a `u64`, and so is the report's total: two
/// transactions charged their whole budget of `u64::MAX` (a call stopped
/// by the wall clock is) add up to `u64::MAX`, not to a panic.
#[test]
fn the_total_gas_of_a_run_saturates() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "fast.toml", "[sandbox.limits]\ncall_time = { secs = 0, nanos = 50000000 }\n");
    let scenario = write(
        dir.path(),
        "spin.json",
        r#"{"options": {"gas_limit": 18446744073709551615},
            "transactions": [{"executable": "loop"}, {"executable": "loop"}]}"#,
    );
    let ran = cli(&["--config", &config, "run", "--guest", guest_artifacts::HOSTILE, "--scenario", &scenario]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let report = ran.json();
    assert_eq!(report["failed_by_reason"], serde_json::json!({"timeout": 2}), "{report}");
    assert_eq!(report["transactions"][0]["gas_used"], u64::MAX, "{report}");
    assert_eq!(report["gas_used"], u64::MAX, "{report}");
}

#[test]
fn host_store_of_the_configuration_is_where_deployed_guests_live() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "c.toml", "[host]\nstore = \"elsewhere\"\n");
    let ran = cli_in(dir.path(), &["--config", &config, "deploy", guest_artifacts::COUNTER, "--name", "c"], &[]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert!(dir.path().join("elsewhere/names/c").is_file());
    let listed = cli_in(dir.path(), &["--config", &config, "list", "--output", "json"], &[]).json();
    assert_eq!(listed[0]["name"], "c");
    // --store beats the file.
    let listed = cli_in(dir.path(), &["--config", &config, "list", "--store", "other", "--output", "json"], &[]);
    assert_eq!(listed.json(), serde_json::json!([]));
}

#[test]
fn run_json_is_the_report_with_a_summary() {
    // Piped stdout: JSON by default.
    let ran = cli(&["run", "--native", "transfer", "--scenario", &example("transfers.json"), "--seed", "1"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let report = ran.json();
    assert_eq!(report["transactions"].as_array().unwrap().len(), 300);
    let failed = report["failed"].as_u64().unwrap();
    assert!(failed > 0);
    assert_eq!(report["failed_by_reason"], serde_json::json!({ "guest": failed }));
    assert!(report["seconds"].as_f64().unwrap() > 0.0);
    assert!(report["tx_per_second"].as_f64().unwrap() > 0.0);
    assert!(report["final_state"].is_object() && report["gas_used"].is_u64());
}

#[test]
fn run_human_output_is_a_summary_and_a_line_per_failure() {
    let scenario = example("transfers.json");
    let ran = cli(&["run", "--native", "transfer", "--scenario", &scenario, "--seed", "1", "--output", "human"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let json = cli(&["run", "--native", "transfer", "--scenario", &scenario, "--seed", "1", "--output", "json"]).json();
    let failed = json["failed"].as_u64().unwrap();
    let row = |label: &str| -> String {
        // A row is its label padded to 16 characters, then the value.
        let line = ran.stdout.lines().find(|l| l.get(..16).map(str::trim_end) == Some(label));
        line.unwrap_or_else(|| panic!("no row {label:?}: {}", ran.stdout))[16..].trim().to_string()
    };
    assert_eq!(row("transactions"), "300");
    assert_eq!(row("failed"), failed.to_string());
    assert_eq!(row("  guest"), failed.to_string());
    assert_eq!(row("succeeded"), json["succeeded"].to_string());
    assert!(row("wall time").ends_with(" s") && row("throughput").ends_with(" tx/s"), "{}", ran.stdout);
    let failures: Vec<&str> = ran.stdout.lines().filter(|l| l.contains("guest error: insufficient funds")).collect();
    assert_eq!(failures.len() as u64, failed, "{}", ran.stdout);
    // Each starts with the transaction's timestamp.
    let first_failed = json["transactions"].as_array().unwrap().iter().find(|t| t["success"] == false).unwrap();
    assert_eq!(failures[0].split_whitespace().next().unwrap(), first_failed["timestamp"].to_string());
    assert!(ran.stderr.is_empty(), "{}", ran.stderr);
}

#[test]
fn fail_on_failure_sets_the_exit_status() {
    let transfers = example("transfers.json");
    let ran = cli(&["run", "--native", "transfer", "--scenario", &transfers, "--fail-on-failure"]);
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert!(ran.json()["failed"].as_u64().unwrap() > 0, "the report is printed all the same");
    assert!(ran.refused("of 300 transactions failed"), "{}", ran.stderr);
    // Without the flag, failed transactions are not a failed command.
    assert_eq!(cli(&["run", "--native", "transfer", "--scenario", &transfers]).code, Some(0));
    // With it, a run where every transaction succeeds is a success.
    let nock = cli(&["run", "--native", "nockma", "--scenario", &example("nock.json"), "--fail-on-failure"]);
    assert_eq!(nock.code, Some(0), "{}", nock.stderr);
    assert_eq!(nock.json()["succeeded"], 3);
}

#[test]
fn bad_flag_values_are_refused_in_one_line() {
    let scenario = example("transfers.json");
    for (args, reason) in [
        (
            vec!["run", "--native", "transfer", "--scenario", &scenario, "--output", "xml"],
            "invalid value 'xml' for '--output",
        ),
        (vec!["list", "--output", "yaml"], "invalid value 'yaml' for '--output"),
        (vec!["check", guest_artifacts::TRANSFER, "--output", "table"], "invalid value 'table' for '--output"),
        (vec!["--log-level", "loud", "list"], "invalid value 'loud' for '--log-level"),
        (vec!["list", "--log-format", "yaml"], "invalid value 'yaml' for '--log-format"),
        (vec!["run", "--native", "transfer", "--scenario", &scenario, "--threads", "0"], "--threads"),
        (vec!["run", "--native", "transfer", "--scenario", &scenario, "--in-flight", "0"], "--in-flight"),
        (vec!["run", "--native", "transfer", "--scenario", &scenario, "--gas-limit", "lots"], "--gas-limit"),
        (vec!["run", "--native", "transfer", "--scenario", &scenario, "--seed", "1", "--concurrent"], "--concurrent"),
        (vec!["completions", "tcsh"], "invalid value 'tcsh'"),
        (vec!["man", "fly"], "no command `fly`"),
    ] {
        let ran = cli(&args);
        assert!(ran.refused(reason), "{args:?}: {:?} {}", ran.code, ran.stderr);
        assert!(ran.stdout.is_empty(), "{args:?}: {}", ran.stdout);
    }
    // A byte-order mark before the scenario is skipped, as editors on some
    // systems write one.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&scenario).unwrap();
    let marked = write(dir.path(), "bom.json", &format!("\u{feff}{text}"));
    let ran = cli(&["run", "--native", "transfer", "--scenario", &marked, "--seed", "1"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    // An invalid RUST_LOG is refused too, rather than silently ignored.
    let ran = cli_in(Path::new("."), &["config"], &[("RUST_LOG", "a=b=c")]);
    assert!(ran.refused("RUST_LOG=\"a=b=c\" is not a valid log filter"), "{}", ran.stderr);
}

#[test]
fn logs_go_to_stderr_and_stdout_stays_the_report() {
    let scenario = example("transfers.json");
    let run = ["run", "--guest", guest_artifacts::TRANSFER, "--scenario", &scenario, "--seed", "2"];
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ran = cli_in(here, &run, &[("RUST_LOG", "debug")]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(ran.json()["transactions"].as_array().unwrap().len(), 300);
    assert!(ran.stderr.contains("DEBUG") && ran.stderr.contains("running the scenario"), "{}", ran.stderr);
    // JSON lines on request.
    let ran = cli_in(here, &[&run[..], &["--log-format", "json", "--log-level", "info"]].concat(), &[]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    ran.json();
    assert!(ran.stderr.lines().count() >= 2, "{}", ran.stderr);
    for line in ran.stderr.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(event["level"], "INFO", "{line}");
    }
    // The flag wins over RUST_LOG; the default is warn, and a clean run warns of nothing.
    let ran = cli_in(here, &[&run[..], &["--log-level", "warn"]].concat(), &[("RUST_LOG", "trace")]);
    assert!(ran.stderr.is_empty(), "{}", ran.stderr);
    assert!(cli(&run).stderr.is_empty());
}

/// A guest chooses the keys it reads, and lenient mode logs the ones it
/// skips: a newline or an escape sequence in a key must not forge a line
/// of the log or reach the terminal, and thousands of skips must not
/// flood it.
#[test]
fn a_guests_keys_neither_forge_nor_flood_the_log() {
    // Reads 40 keys it did not declare, each a longer prefix of a text
    // that starts with a forged log line and a terminal escape.
    let forger = crate::sandbox::wat_guest::Wat {
        extra: r#"(data (i32.const 2000) "\0a2026-01-01T00:00:00Z ERROR forged\1b[2J\07 abcdefghij")"#,
        execute_step: crate::sandbox::wat_guest::step_of_requests(
            "(i32.const 40)",
            "(i32.store8 (local.get $a) (i32.const 0))
             (i32.store offset=4 (local.get $a) (i32.const 2000))
             (i32.store offset=8 (local.get $a) (i32.add (local.get $i) (i32.const 1)))",
        ),
        ..crate::sandbox::wat_guest::Wat::BENIGN
    };
    let dir = tempfile::tempdir().unwrap();
    let guest = dir.path().join("forger.wasm");
    std::fs::write(&guest, forger.component()).unwrap();
    let scenario = write(
        dir.path(),
        "s.json",
        r#"{"shards": 1, "options": {"access_mode": "lenient"}, "transactions": [{"executable": "x"}]}"#,
    );
    let ran = cli(&["run", "--guest", guest.to_str().unwrap(), "--scenario", &scenario, "--seed", "1"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(ran.json()["transactions"][0]["skipped_accesses"].as_array().map(Vec::len), Some(40));
    assert!(!ran.stderr.contains(['\u{1b}', '\u{7}']), "{}", ran.stderr);
    let lines: Vec<&str> = ran.stderr.lines().collect();
    assert_eq!(lines.len(), 16, "the first 16 skips, each on a line of its own: {}", ran.stderr);
    assert!(lines.iter().all(|l| l.contains(" WARN ") && !l.contains(" ERROR ")), "{}", ran.stderr);
    assert!(lines[15].contains("later ones are not logged"), "{}", lines[15]);
    assert!(lines[1].contains(r"key \n2 timestamp=1"), "{}", lines[1]);
}

/// A component whose one function has `locals` locals, all live across
/// `branches` branches of one loop: cranelift's time and memory grow with
/// their product, while the component stays small.
fn compile_bomb(locals: usize, branches: usize) -> Vec<u8> {
    let mut body = format!("(func $bomb (param $p i32) (result i32) (local{}) (loop $top", " i32".repeat(locals));
    for i in 0..branches {
        let (a, b) = (1 + i % locals, 1 + (i * 7 + 3) % locals);
        body.push_str(&format!(
            "(local.set {a} (i32.add (local.get {a}) (local.get {b}))) (br_if $top (local.get {b}))"
        ));
    }
    body.push_str(") (local.get 1))");
    let extra: &'static str = Box::leak(body.into_boxed_str());
    crate::sandbox::wat_guest::Wat { extra, ..crate::sandbox::wat_guest::Wat::BENIGN }.component()
}

/// Compiling a component takes time and memory that grow faster than its
/// size for some shapes: the CLI compiles each first in a child process,
/// bounded by `[host] compile_time` and `compile_memory_bytes`, and
/// refuses one past either, for every command that compiles.
#[test]
fn a_component_that_compiles_past_the_bounds_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // About 300 KB; compiling it takes some 20 s and 2 GB here.
    let bomb = dir.path().join("bomb.wasm");
    std::fs::write(&bomb, compile_bomb(1_000, 20_000)).unwrap();
    let bomb = bomb.to_str().unwrap();
    let scenario = write(dir.path(), "s.json", r#"{"shards": 1, "transactions": [{"executable": "x"}]}"#);
    let memory = write(dir.path(), "memory.toml", "[host]\ncompile_memory_bytes = 300000000\n");
    let time = write(dir.path(), "time.toml", "[host]\ncompile_time = { secs = 1, nanos = 0 }\n");
    // The child compiles into a scratch directory in the temporary
    // directory, removed after; one a killed process left is removed by
    // the next (no process has this id: ids stop at 2^22).
    let temp = tempfile::tempdir().unwrap();
    std::fs::create_dir(temp.path().join("executor-host-compile-99999999-0")).unwrap();
    let temp = temp.path().to_str().unwrap();
    let env = [("TMPDIR", temp)];
    for (config, reason) in [
        (&memory, "needed more than 300000000 bytes of memory (`compile_memory_bytes` in `[host]`)"),
        (&time, "took longer than 1 s (`compile_time` in `[host]`)"),
    ] {
        for args in [
            vec!["check", bomb, "--output", "human"],
            vec!["deploy", bomb, "--name", "bomb"],
            vec!["run", "--guest", bomb, "--scenario", &scenario],
        ] {
            let started = std::time::Instant::now();
            let ran = cli_in(dir.path(), &[&["--config", config][..], &args[..]].concat(), &env);
            assert!(ran.refused(&format!("{bomb} is refused: compiling it {reason}")), "{args:?}: {}", ran.stderr);
            assert!(started.elapsed() < std::time::Duration::from_secs(15), "{args:?} took {:?}", started.elapsed());
        }
    }
    assert!(!dir.path().join("executor-store/names/bomb").exists(), "nothing deployed");
    // The bounded compile is of the bytes this process read, not of what
    // the path names when read again: through a pipe, the same refusal.
    let mut piped = Command::new(env!("CARGO_BIN_EXE_executor-host"))
        .args(["--config", &memory, "check", "/dev/stdin", "--output", "human"])
        .env("TMPDIR", temp)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(bomb).unwrap();
    std::io::Write::write_all(&mut piped.stdin.take().unwrap(), &bytes).unwrap();
    let piped = piped.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(stderr.contains("/dev/stdin is refused: compiling it needed more than"), "{stderr}");
    // Within the bounds, a guest compiles and runs as before, through a
    // file and through the store.
    let ok = cli_in(dir.path(), &["deploy", guest_artifacts::COUNTER, "--name", "counter"], &env);
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    let counter = r#"{"shards": 1, "transactions": [{"executable": {"key": "k", "amount": 2},
        "eager_read_keys": ["k"], "will_write_keys": ["k"]}]}"#;
    let counter = write(dir.path(), "counter.json", counter);
    for guest in ["counter", guest_artifacts::COUNTER] {
        let ran = cli_in(dir.path(), &["run", "--guest", guest, "--scenario", &counter], &env);
        assert_eq!(ran.json()["final_state"]["k"], "2", "{guest}: {}", ran.stderr);
    }
    assert_eq!(std::fs::read_dir(temp).unwrap().count(), 0, "no scratch directory is left behind");
    // While it is there, it is its user's only: the cache's secret is in
    // it. (Seen through a compile the time bound stops.)
    let mut slow = Command::new(env!("CARGO_BIN_EXE_executor-host"))
        .args(["--config", &time, "check", bomb])
        .env("TMPDIR", temp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let scratch = loop {
        if let Some(entry) = std::fs::read_dir(temp).unwrap().next() {
            break entry.unwrap().path();
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&scratch).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700, "{}", scratch.display());
    slow.wait().unwrap();
}

#[test]
fn list_and_check_print_json_for_programs() {
    let dir = tempfile::tempdir().unwrap();
    let ran = cli_in(dir.path(), &["deploy", guest_artifacts::TRANSFER, "--name", "transfer"], &[]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    // Piped: JSON by default.
    let listed = cli_in(dir.path(), &["list"], &[]).json();
    let size = std::fs::metadata(guest_artifacts::TRANSFER).unwrap().len();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["name"], "transfer");
    assert_eq!(listed[0]["hash"].as_str().unwrap().len(), 64);
    assert_eq!(listed[0]["size"], size);
    let human = cli_in(dir.path(), &["list", "--output", "human"], &[]);
    assert!(human.stdout.starts_with("transfer  ") && human.stdout.ends_with(" bytes\n"), "{}", human.stdout);

    let ok = cli(&["check", guest_artifacts::TRANSFER]);
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    let ok = ok.json();
    assert_eq!(
        (ok["ok"].clone(), ok["error"].clone(), ok["size"].clone()),
        (true.into(), serde_json::Value::Null, size.into())
    );
    assert_eq!(ok["imports"], serde_json::json!([]));
    let exports: Vec<&str> = ok["exports"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert!(exports.contains(&"execute-step"), "{exports:?}");

    for (file, has_shape, reason) in [
        (guest_artifacts::WASI_IMPORT, true, "forbidden import: wasi:random/random@0.2.0"),
        (guest_artifacts::TRANSFER_CORE, false, "a core wasm module"),
    ] {
        let ran = cli(&["check", file, "--output", "json"]);
        assert!(ran.refused(reason), "{file}: {}", ran.stderr);
        let json = ran.json();
        assert_eq!(json["ok"], false);
        assert!(json["error"].as_str().unwrap().contains(reason), "{json}");
        assert_eq!(json["imports"].is_array(), has_shape, "{json}");
        assert!(json["size"].as_u64().unwrap() > 0);
    }
}

#[test]
fn completions_and_man_pages_go_to_stdout() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let ran = cli(&["completions", shell]);
        assert_eq!(ran.code, Some(0), "{shell}: {}", ran.stderr);
        assert!(ran.stdout.contains("executor-host") && ran.stdout.contains("fail-on-failure"), "{shell}");
    }
    let man = cli(&["man"]);
    assert_eq!(man.code, Some(0), "{}", man.stderr);
    assert!(man.stdout.starts_with(".ie") && man.stdout.contains(".TH executor-host 1"), "{}", man.stdout);
    assert!(man.stdout.contains("completions"), "lists the subcommands");
    let run = cli(&["man", "run"]);
    assert!(
        run.stdout.contains(".TH executor-host-run 1") && run.stdout.contains("fail\\-on\\-failure"),
        "{}",
        run.stdout
    );
}

/// The component `executor-host build` makes with no `--profile`, and what
/// it printed.
fn build(dir: &Path, args: &[&str]) -> (Vec<u8>, String) {
    let output = dir.join("out.wasm");
    // The guests' own target directory: the dependencies are compiled there
    // already, for the profile `guest` at least.
    let ran = cli_in(
        dir,
        &[args, &["-o", output.to_str().unwrap()]].concat(),
        &[("CARGO_TARGET_DIR", guest_artifacts::TARGET_DIR), ("CARGO_NET_OFFLINE", "true")],
    );
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    (std::fs::read(&output).unwrap(), ran.stderr)
}

/// `build` sets up the compact profile itself, so a crate outside this
/// workspace, which has no `[profile.guest]`, gets a component as small as
/// the one the tests build with the workspace's profile.
#[test]
fn build_makes_the_compact_component_for_any_crate() {
    let compact = std::fs::metadata(guest_artifacts::TRANSFER).unwrap().len() as usize;
    let near = |size: usize| size.abs_diff(compact) * 100 <= compact;

    let dir = tempfile::tempdir().unwrap();
    let workspace = env!("CARGO_MANIFEST_DIR");
    let manifest = format!("{workspace}/Cargo.toml");
    let (component, stderr) = build(dir.path(), &["build", "--manifest-path", &manifest, "-p", "transfer-guest"]);
    assert!(near(component.len()), "{} bytes, the test artifact {compact}", component.len());
    assert!(stderr.contains("`guest` profile"), "{stderr}");

    // The transfer guest as a crate of its own, outside the workspace.
    let outside = dir.path().join("my-transfer");
    std::fs::create_dir_all(outside.join("src")).unwrap();
    std::fs::copy(format!("{workspace}/guest/transfer/src/lib.rs"), outside.join("src/lib.rs")).unwrap();
    std::fs::copy(format!("{workspace}/Cargo.lock"), outside.join("Cargo.lock")).unwrap();
    let manifest = format!(
        r#"[package]
name = "my-transfer"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
executor-guest = {{ path = "{workspace}/guest/sdk" }}
example-decimal = {{ path = "{workspace}/guest/decimal" }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

[workspace]
"#
    );
    std::fs::write(outside.join("Cargo.toml"), manifest).unwrap();
    let (component, stderr) = build(&outside, &["build"]);
    assert!(near(component.len()), "{} bytes, the test artifact {compact}", component.len());
    assert!(stderr.contains("`guest` profile"), "{stderr}");
    assert!(!stderr.contains("stack pointer starts"), "{stderr}");
    let built = outside.join("out.wasm");
    let checked = cli(&["check", built.to_str().unwrap(), "--output", "json"]).json();
    assert_eq!(checked["ok"], true, "{checked}");
    // Its stack is the artifact's 64 KiB, not Rust's 1 MiB (this crate has
    // no `.cargo/config.toml`): every transaction uses the same gas.
    let scenario = format!("{workspace}/examples/transfers.json");
    let gas = |guest: &str| {
        let report = cli(&["run", "--guest", guest, "--scenario", &scenario, "--seed", "1", "--output", "json"]).json();
        report["gas_used"].as_u64().unwrap()
    };
    assert_eq!(gas(built.to_str().unwrap()), gas(guest_artifacts::TRANSFER));

    // A profile of the crate's own takes the crate's flags, and is told
    // what Rust's default stack costs.
    let (_, stderr) = build(&outside, &["build", "--profile", "release"]);
    assert!(stderr.contains("stack pointer starts at 1024 KiB"), "{stderr}");
}

/// Recording mode: a scenario that declares no keys fails in strict mode;
/// `run --record --write-scenario` learns the key sets (the same every
/// time), and the scenario it writes runs with no access violation, and
/// as the recording said.
#[test]
fn recording_learns_the_key_sets_that_strict_mode_then_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "undeclared.json",
        r#"{"shards": 2, "initial_state": {"alice": "10", "bob": "5"}, "transactions": [
            {"executable": {"from": "alice", "to": "bob", "amount": 3}},
            {"executable": {"from": "bob", "to": "carol", "amount": 8}, "lazy_read_keys": ["bob"]},
            {"executable": {"from": "carol", "to": "alice", "amount": 100}}]}"#,
    );
    let strict = cli(&["run", "--native", "transfer", "--scenario", &scenario, "--output", "json"]);
    assert_eq!(strict.json()["failed_by_reason"]["access_violation"], 3, "{}", strict.stdout);
    // The key, as the report writes bytes (not a list of numbers).
    let violation = serde_json::json!({"kind": "access_violation", "key": "alice", "access": "read"});
    assert_eq!(strict.json()["transactions"][0]["failure_kind"], violation);

    let out = dir.path().join("recorded.json");
    let out = out.to_str().unwrap();
    let record = ["run", "--native", "transfer", "--scenario", &scenario, "--record", "--output", "json"];
    let first = cli(&[&record[..], &["--write-scenario", out]].concat());
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(cli(&record).stdout, first.stdout, "a recording is deterministic");
    let recorded = first.json();
    assert_eq!(recorded[0]["lazy_read_keys"], serde_json::json!(["alice", "bob"]));
    assert_eq!(recorded[0]["will_write_keys"], serde_json::json!(["alice", "bob"]));
    assert_eq!(recorded[1]["lazy_read_keys"], serde_json::json!(["bob", "carol"]));
    assert_eq!(recorded[2]["will_write_keys"], serde_json::json!([]), "a failure writes nothing");

    let rerun = cli(&["run", "--native", "transfer", "--scenario", out, "--output", "json"]).json();
    assert_eq!(rerun["succeeded"], 2, "{rerun}");
    assert_eq!(rerun["failed_by_reason"], serde_json::json!({"guest": 1}), "{rerun}");
    assert_eq!(rerun["final_state"], serde_json::json!({"alice": "7", "bob": "0", "carol": "8"}));

    let refused = cli(&["run", "--native", "transfer", "--scenario", &scenario, "--write-scenario", out]);
    assert_eq!(refused.code, Some(2), "--write-scenario without --record is a usage error");
}

/// A recording says what a run of the scenario it writes does, in what a
/// program may rely on: a failed streaming transaction's write stays (a
/// Nock program reads the key its predecessor wrote before crashing, then
/// the key named by that value), the report's bound, a program that
/// stalls, and the gas of the executor's rounds (a wasm transfer with a
/// budget of one more than the gas a run uses, less than one instance per
/// step would use).
#[test]
fn a_recording_agrees_with_the_run_of_the_scenario_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("recorded.json");
    let out = out.to_str().unwrap();
    let agree = |program: &[&str], scenario: &str| {
        let scenario = write(dir.path(), "scenario.json", scenario);
        let record = [&["run"], program, &["--scenario", &scenario, "--record", "--output", "json"]].concat();
        let recorded = cli(&[&record[..], &["--write-scenario", out]].concat());
        assert_eq!(recorded.code, Some(0), "{}", recorded.stderr);
        let rerun = cli(&[&["run"], program, &["--scenario", out, "--output", "json"]].concat()).json();
        let recorded = recorded.json();
        let said: Vec<String> = recorded.as_array().unwrap().iter().map(|r| r["outcome"].to_string()).collect();
        let did: Vec<String> = rerun["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| match t["failure"].as_str() {
                None => "\"halted\"".to_owned(),
                Some(failure) => format!("\"failed: {failure}\""),
            })
            .collect();
        assert_eq!(said, did, "{rerun}");
        rerun
    };
    let nock = r#"{"shards": 2, "initial_state": {"k": "1", "r": "x"}, "transactions": [
        {"executable": {"hex": "61173ad1a5715cf035b40e2e17"}, "lazy_read_keys": ["r"], "will_write_keys": ["k"]},
        {"executable": {"hex": "61173ad1855db82532e68a91257e6c31f0e9d2f0cab1c51c075f0b"}}]}"#;
    let run = agree(&["--native", "nockma"], nock);
    assert_eq!(run["succeeded"], 1, "{run}");
    assert_eq!(run["transactions"][1]["values_read"], serde_json::json!({"5": null, "k": "5"}), "{run}");
    let bound = r#"{"shards": 1, "initial_state": {"hits": "40"}, "options": {"report_bytes": 30}, "transactions": [
        {"executable": {"key": "hits", "amount": 2}, "eager_read_keys": ["hits"], "will_write_keys": ["hits"]}]}"#;
    assert_eq!(agree(&["--native", "counter"], bound)["failed_by_reason"], serde_json::json!({"too_large": 1}));
    let stall = r#"{"shards": 1, "initial_state": {"a": "1"}, "options": {"access_mode": "lenient"}, "transactions": [
        {"executable": {"key": "a", "amount": 1}, "will_write_keys": ["a"]},
        {"executable": {"key": "a", "amount": 1}, "eager_read_keys": ["a"], "will_write_keys": ["a"]}]}"#;
    let scenario = write(dir.path(), "stall.json", stall);
    let run = cli(&["run", "--native", "counter", "--scenario", &scenario, "--output", "json"]).json();
    assert_eq!(run["failed_by_reason"], serde_json::json!({"stalled": 1}), "{run}");
    assert_eq!(run["final_state"]["a"], "2", "the one after it is not held up");
    // The written scenario is strict, whatever mode the recording ran in,
    // and the recording does not write over the scenario it records.
    let record = ["run", "--native", "counter", "--scenario", &scenario, "--record", "--write-scenario"];
    assert_eq!(cli(&[&record[..], &[out]].concat()).code, Some(0));
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    assert_eq!(written["options"]["access_mode"], "strict", "{written}");
    let before = std::fs::read_to_string(&scenario).unwrap();
    let same = dir.path().join(".").join("stall.json");
    let onto_itself = cli(&[&record[..], &[same.to_str().unwrap()]].concat());
    assert!(onto_itself.refused("is the scenario being recorded"), "{}", onto_itself.stderr);
    let hard_link = dir.path().join("linked.json");
    std::fs::hard_link(&scenario, &hard_link).unwrap();
    let through_a_link = cli(&[&record[..], &[hard_link.to_str().unwrap()]].concat());
    assert!(through_a_link.refused("is the scenario being recorded"), "{}", through_a_link.stderr);
    assert_eq!(std::fs::read_to_string(&scenario).unwrap(), before);
    let wasm = ["--guest", guest_artifacts::TRANSFER];
    let transfer = |gas: &str| {
        format!(
            r#"{{"initial_state": {{"a": "9", "b": "0"}}, "options": {{"gas_limit": {gas}}}, "transactions": [
            {{"executable": {{"from": "a", "to": "b", "amount": 4}}, "eager_read_keys": ["a", "b"],
              "will_write_keys": ["a", "b"]}}]}}"#
        )
    };
    let gas = agree(&wasm, &transfer("10000000"))["gas_used"].as_u64().unwrap();
    // A budget used exactly is out of gas; one more unit is enough.
    assert_eq!(agree(&wasm, &transfer(&(gas + 1).to_string()))["succeeded"], 1);
    assert_eq!(agree(&wasm, &transfer(&gas.to_string()))["failed_by_reason"], serde_json::json!({"out_of_gas": 1}));
    // Options from the command line (or a configuration) are written into
    // the scenario: its run is the recording's.
    let scenario = write(dir.path(), "flag.json", &transfer("10000000"));
    let gas = gas.to_string();
    let record = ["run", wasm[0], wasm[1], "--scenario", &scenario, "--record", "--gas-limit", &gas];
    let recorded = cli(&[&record[..], &["--output", "json", "--write-scenario", out]].concat());
    assert_eq!(recorded.json()[0]["outcome"], "failed: out of gas", "{}", recorded.stdout);
    let rerun = cli(&["run", wasm[0], wasm[1], "--scenario", out, "--output", "json"]).json();
    assert_eq!(rerun["failed_by_reason"], serde_json::json!({"out_of_gas": 1}), "{rerun}");
}

/// Text a scenario or a guest chose (here a key, in an access violation
/// and in what `--record` learns) reaches the terminal with its control
/// characters escaped: it cannot recolour it or forge a line.
#[test]
fn the_summary_escapes_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "escapes.json",
        r#"{"initial_state": {"a": "5"}, "transactions": [
            {"executable": {"from": "\u001b[31mX\r\n       2  succeeded", "to": "a", "amount": 1}}]}"#,
    );
    let run = ["run", "--native", "transfer", "--scenario", &scenario, "--output", "human"];
    for args in [&run[..], &[&run[..], &["--record"]].concat()] {
        let ran = cli(args);
        assert!(ran.stdout.contains("\\u{1b}[31mX\\r\\n       2  succeeded"), "{args:?}: {}", ran.stdout);
        assert!(!ran.stdout.contains(['\u{1b}', '\r']), "{args:?}: {:?}", ran.stdout);
    }
}

/// Flags that cannot apply together are refused, not silently ignored.
#[test]
fn conflicting_run_flags_are_usage_errors() {
    let scenario = example("transfers.json");
    let run = ["run", "--scenario", &scenario];
    for (args, conflict) in [
        (&["--guest", "missing.wasm", "--native", "transfer"][..], "'--guest <GUEST>' cannot be used with '--native"),
        (&["--native", "transfer", "--seed", "1", "--threads", "2"], "'--seed <SEED>' cannot be used with '--threads"),
        (&["--native", "transfer", "--seed", "1", "--in-flight", "2"], "cannot be used with '--in-flight"),
        (&["--native", "transfer", "--record", "--seed", "1"], "'--record' cannot be used with '--seed"),
        (&["--native", "transfer", "--record", "--threads", "2"], "'--record' cannot be used with '--threads"),
    ] {
        let ran = cli(&[&run[..], args].concat());
        assert_eq!(ran.code, Some(2), "{args:?}: {}", ran.stderr);
        assert!(ran.refused(conflict), "{args:?}: {}", ran.stderr);
    }
    for role in
        [&["serve", "worker"][..], &["serve", "shard", "--id", "0"], &["serve", "executor", "--native", "counter"]]
    {
        let ran = cli(&[role, &["--shards", "0"]].concat());
        assert!(ran.refused("invalid value '0' for '--shards <N>': 0 is not in 1..=1024"), "{role:?}: {}", ran.stderr);
    }
}

/// `new` creates a guest crate outside the repository that `build` turns
/// into a component which runs its scenario; the undeclared transaction of
/// that scenario fails in strict mode until recorded. It refuses to write
/// into a directory that is not empty, and a name that makes no crate.
#[test]
fn new_makes_a_guest_crate_that_builds_runs_and_records() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("my-guest");
    let created = cli(&["new", project.to_str().unwrap()]);
    assert_eq!(created.code, Some(0), "{}", created.stderr);
    for file in
        ["Cargo.toml", "src/lib.rs", "tests/host.rs", "scenario.json", "README.md", ".gitignore", ".cargo/config.toml"]
    {
        assert!(project.join(file).is_file(), "{file}");
    }
    assert!(cli(&["new", project.to_str().unwrap()]).refused("is not empty"));
    assert!(cli(&["new", dir.path().join("9lives").to_str().unwrap()]).refused("does not make a crate name"));
    let taken = cli(&["new", dir.path().join("Executor_Guest").to_str().unwrap()]);
    assert!(taken.refused("as a package it depends on is named"), "{}", taken.stderr);
    for reserved in ["test", "self", "Std", "proc-macro"] {
        let made = cli(&["new", dir.path().join(reserved).to_str().unwrap()]);
        assert!(made.refused("a Rust keyword or a crate of the standard library"), "{reserved}: {}", made.stderr);
    }
    let accented = cli(&["new", dir.path().join("über").to_str().unwrap()]);
    assert!(accented.refused("use ASCII letters, digits"), "{}", accented.stderr);

    // In the guests' target directory: the new crate is compiled, its
    // dependencies are there already.
    let target = [("CARGO_TARGET_DIR", guest_artifacts::TARGET_DIR)];
    let built = cli_in(&project, &["build", "-o", "out/my-guest.wasm"], &target);
    assert_eq!(built.code, Some(0), "{}", built.stderr);
    std::fs::rename(project.join("out/my-guest.wasm"), project.join("my-guest.wasm")).unwrap();
    let run =
        cli_in(&project, &["run", "--guest", "my-guest.wasm", "--scenario", "scenario.json", "--output", "json"], &[]);
    let report = run.json();
    assert_eq!(report["final_state"]["visits"], "43", "{report}");
    assert_eq!(report["failed_by_reason"], serde_json::json!({"access_violation": 1}), "{report}");
    let recorded = ["run", "--guest", "my-guest.wasm", "--scenario", "scenario.json", "--record"];
    let recorded = cli_in(&project, &[&recorded[..], &["--write-scenario", "recorded.json"]].concat(), &[]);
    assert_eq!(recorded.code, Some(0), "{}", recorded.stderr);
    let rerun = ["run", "--guest", "my-guest.wasm", "--scenario", "recorded.json", "--output", "json"];
    let rerun = cli_in(&project, &rerun, &[]).json();
    assert_eq!((rerun["succeeded"].as_u64(), rerun["failed"].as_u64()), (Some(3), Some(0)), "{rerun}");
    assert_eq!(rerun["final_state"]["likes"], "1");
}

/// The host-side test `new` writes passes (`cargo test` in the new crate
/// builds wasmtime for it: minutes, so not in CI's default run).
#[test]
#[ignore = "builds the executor host from scratch in a new crate"]
fn the_host_side_test_of_a_new_crate_passes() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("counted");
    assert_eq!(cli(&["new", project.to_str().unwrap()]).code, Some(0));
    let status = Command::new("cargo").arg("test").current_dir(&project).status().unwrap();
    assert!(status.success());
}

/// A scenario for the debug build of the hostile guest: a transaction that
/// logs over three calls, one that logs and panics, one that logs past the
/// bound, one that logs nothing.
fn logging_scenario(dir: &Path) -> String {
    write(
        dir,
        "logging.json",
        r#"{"initial_state": {"l": "5"}, "transactions": [
            {"executable": "log", "lazy_read_keys": ["l"]},
            {"executable": "log-panic"},
            {"executable": "log-lines:100"},
            {"executable": "err"}]}"#,
    )
}

/// `run --dev` runs a debug build and shows its lines per transaction, the
/// panic message included, in the JSON report and the summary; plain `run`
/// refuses it in one line that says what to do.
#[test]
fn run_dev_shows_each_transactions_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = logging_scenario(dir.path());
    let run = ["run", "--guest", guest_artifacts::HOSTILE_DEBUG, "--scenario", &scenario, "--seed", "1"];
    let ran = cli(&[&run[..], &["--dev", "--output", "json"]].concat());
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let report = ran.json();
    let tx = |i: usize| &report["transactions"][i];
    assert_eq!(
        tx(0)["log"],
        serde_json::json!({"lines": ["starting state for \"log\"", "first step: asking for l", "l is \"5\"; halting"]}),
    );
    let panicked = tx(1)["log"]["lines"].as_array().unwrap();
    assert_eq!(panicked[0], "about to panic");
    assert!(panicked[1].as_str().unwrap().ends_with("hostile guest panics after logging"), "{panicked:?}");
    assert_eq!(tx(1)["failure_kind"], serde_json::json!({"kind": "trap", "trap": "unreachable"}));
    assert_eq!(tx(2)["log"]["lines"].as_array().unwrap().len(), 64);
    assert_eq!(tx(2)["log"]["dropped"], 36);
    assert!(tx(3).get("log").is_none(), "omitted when nothing was logged: {}", tx(3));

    let human = cli(&[&run[..], &["--dev", "--output", "human"]].concat());
    assert_eq!(human.code, Some(0), "{}", human.stderr);
    let text = &human.stdout;
    assert!(text.starts_with("guest log (timestamp, line):\n"), "{text}");
    assert!(text.contains("\n         1  first step: asking for l\n"), "{text}");
    assert!(text.contains("\n         2  about to panic\n         2  panicked at "), "{text}");
    assert!(text.contains("\n         3  (36 more lines dropped: at most 64 per transaction)\n"), "{text}");

    let refused = cli(&run);
    assert!(refused.refused("is a debug build (it imports `log`"), "{}", refused.stderr);
    assert!(refused.stderr.contains("run --dev"), "{}", refused.stderr);
    assert!(refused.stdout.is_empty());
    // `--dev` changes nothing for a release build.
    let release =
        ["run", "--guest", guest_artifacts::TRANSFER, "--scenario", &example("transfers.json"), "--seed", "1"];
    let (plain, dev) = (cli(&release).json(), cli(&[&release[..], &["--dev"]].concat()).json());
    assert_eq!(plain["transactions"], dev["transactions"]);
    assert!(dev["transactions"][0].get("log").is_none());
}

/// Neither `deploy` nor `check` lets a debug build pass, and both say why.
#[test]
fn deploy_and_check_refuse_a_debug_build() {
    let dir = tempfile::tempdir().unwrap();
    let deploy = cli_in(dir.path(), &["deploy", guest_artifacts::HOSTILE_DEBUG, "--name", "debug"], &[]);
    assert!(deploy.refused("is a debug build (it imports `log`"), "{}", deploy.stderr);
    assert_eq!(cli_in(dir.path(), &["list"], &[]).json(), serde_json::json!([]), "nothing deployed");
    let check = cli(&["check", guest_artifacts::HOSTILE_DEBUG, "--output", "json"]);
    assert!(check.refused("is a debug build"), "{}", check.stderr);
    let json = check.json();
    assert_eq!(json["ok"], false);
    assert_eq!(json["imports"], serde_json::json!([{"name": "log", "kind": "func(message: string) -> ()"}]));
    // No configuration file turns dev mode on (for `serve` say): it is a
    // flag of one run, not a setting.
    let config = write(dir.path(), "dev.toml", "[sandbox]\ndev = true\n");
    let deploy =
        cli_in(dir.path(), &["--config", &config, "deploy", guest_artifacts::HOSTILE_DEBUG, "--name", "d"], &[]);
    assert!(deploy.refused("sandbox.dev: unknown field `dev`"), "{}", deploy.stderr);
}

/// The step trace is off by default; `--step-trace`, the scenario's
/// `step_trace` option and the configuration file's each turn it on.
#[test]
fn the_step_trace_is_set_by_flag_scenario_or_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let plain = write(dir.path(), "plain.json", &transfers(2, None));
    let traced = write(dir.path(), "traced.json", &transfers(2, Some(r#"{"step_trace": true}"#)));
    let config = write(dir.path(), "trace.toml", "[executor]\nstep_trace = true\n");
    let run = |config: Option<&str>, scenario: &str, flags: &[&str]| -> serde_json::Value {
        let mut args = vec![];
        if let Some(config) = config {
            args.extend(["--config", config]);
        }
        args.extend(["run", "--guest", guest_artifacts::TRANSFER, "--scenario", scenario, "--seed", "3"]);
        args.extend(flags);
        let ran = cli(&args);
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        ran.json()
    };
    let off = run(None, &plain, &[]);
    assert!(off["transactions"][0].get("steps").is_none(), "{}", off["transactions"][0]);
    for report in [run(None, &plain, &["--step-trace"]), run(None, &traced, &[]), run(Some(&config), &plain, &[])] {
        for tx in report["transactions"].as_array().unwrap() {
            let steps = tx["steps"].as_array().unwrap_or_else(|| panic!("{tx}"));
            let gas: u64 = steps.iter().map(|s| s["gas_used"].as_u64().unwrap()).sum();
            assert_eq!(gas, tx["gas_used"].as_u64().unwrap(), "{tx}");
            assert_eq!(steps.len(), 2, "{tx}");
            assert_eq!((&steps[0]["key"], &steps[0]["halted"]), (&"alice".into(), &false.into()), "{tx}");
            assert_eq!(steps[0]["requests"], serde_json::json!([{"read": "bob"}]), "{tx}");
            assert_eq!(steps[1]["key"], "bob");
            assert_eq!(steps[1]["halted"], true);
        }
        let second = &report["transactions"][1]["steps"][1]["requests"];
        assert_eq!(*second, serde_json::json!([{"write": "alice", "value": "998"}, {"write": "bob", "value": "2"}]));
    }
    assert!(cli(&["config", "--default"]).stdout.contains("\nstep_trace = false\n"));
}

/// `build --dev` makes the debug variant (the `dev` profile: the SDK's
/// debug assertions select the `executor-debug` world), which only `run
/// --dev` runs; the default build imports nothing; a profile with debug
/// assertions is refused without `--dev`, saying so.
#[test]
fn build_dev_makes_a_debug_component_that_only_run_dev_runs() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!("{}/Cargo.toml", env!("CARGO_MANIFEST_DIR"));
    let (component, stdout_err) =
        build(dir.path(), &["build", "--dev", "--manifest-path", &manifest, "-p", "transfer-guest"]);
    assert!(stdout_err.contains("`dev` profile"), "{stdout_err}");
    let file = write_bytes(dir.path(), "debug.wasm", &component);
    let check = cli(&["check", &file, "--output", "json"]).json();
    assert_eq!(check["imports"][0]["name"], "log", "{check}");
    let scenario = write(dir.path(), "s.json", &transfers(3, None));
    let refused = cli(&["run", "--guest", &file, "--scenario", &scenario]);
    assert!(refused.refused("is a debug build"), "{}", refused.stderr);
    let ran = cli(&["run", "--guest", &file, "--scenario", &scenario, "--dev"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(ran.json()["succeeded"], 3);

    let out = dir.path().join("no.wasm");
    let by_profile = cli_in(
        dir.path(),
        &[
            "build",
            "--profile",
            "dev",
            "--manifest-path",
            &manifest,
            "-p",
            "transfer-guest",
            "-o",
            out.to_str().unwrap(),
        ],
        &[("CARGO_TARGET_DIR", guest_artifacts::TARGET_DIR), ("CARGO_NET_OFFLINE", "true")],
    );
    assert_eq!(by_profile.code, Some(1), "{}", by_profile.stderr);
    assert!(by_profile.stderr.contains("pass --dev"), "{}", by_profile.stderr);
    assert!(!out.exists());
    assert!(cli(&["build", "--dev", "--profile", "release"]).refused("cannot be used with"));
}

fn write_bytes(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn submit_says_at_once_that_no_server_answers() {
    // A port nothing listens on: bound, then freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("nats://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let ran = cli(&["submit", "--scenario", &example("transfers.json"), "--nats", &url, "--stall", "600"]);
    assert!(ran.refused(&format!("the NATS server at {url} cannot be reached")), "{}", ran.stderr);
    // Not after `--stall`, nor after retrying for a while: connecting to a
    // closed local port fails at once, and no retry can change that.
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "{:?}", started.elapsed());
}

#[test]
fn a_shard_without_executors_refuses_a_guest_for_them() {
    let ran = cli(&["serve", "shard", "--id", "0", "--native", "transfer", "--nats", "nats://127.0.0.1:1"]);
    assert!(ran.refused("add --with-executors"), "{}", ran.stderr);
}

/// A `serve` reads the files its arguments name before it waits for the
/// server, so a mistyped path is said at once, not once a server comes
/// (it waited, logging connection attempts).
#[test]
fn serve_reads_its_arguments_before_it_waits_for_the_server() {
    let nowhere = "nats://127.0.0.1:1";
    for (args, reason) in [
        (&["serve", "executor", "--guest", "no-such.wasm"][..], "no-such.wasm"),
        (&["serve", "executor"], "name a --guest or a --native example"),
        (&["serve", "shard", "--id", "0", "--scenario", "no-such.json"], "reading no-such.json"),
        (&["serve", "shard", "--id", "0", "--with-executors", "--guest", "no-such.wasm"], "no-such.wasm"),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_executor-host"))
            .args(args)
            .args(["--nats", nowhere])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let waited = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if waited.elapsed() > std::time::Duration::from_secs(60) {
                child.kill().unwrap();
                panic!("{args:?} waited for the server before reading its arguments");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(!status.success(), "{args:?}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
        assert!(!stderr.contains("waiting for the NATS server"), "{args:?}: {stderr}");
    }
}
