//! Debug builds (the `executor-debug` world, which imports `log`): refused
//! by a production sandbox, whatever its artifact cache holds; run by a
//! dev sandbox, whose `log` is bounded per line, per call and per
//! transaction, and paid for in gas; the lines reach `ExecutorFinished`.

use std::sync::{Arc, OnceLock};

use executor_host::{
    ExecutorFinished, ExecutorOptions, Failure, GuestLog, KeySets, LOG_GAS_PER_BYTE, LOG_GAS_PER_LINE, LOG_LINE_BYTES,
    LOG_LINES, LoadError, Program, Sandbox, SandboxConfig, StepCall, StepOutput, StepReport, TrapKind, WasmProgram,
};
use executor_testkit::harness::{self, Delivery, TxSpec, Workload};

use crate::support::*;

/// A dev sandbox, created once per test binary.
fn dev() -> &'static Sandbox {
    static DEV: OnceLock<Sandbox> = OnceLock::new();
    DEV.get_or_init(|| Sandbox::new(SandboxConfig { dev: true, ..SandboxConfig::default() }).unwrap())
}

fn debug_hostile() -> WasmProgram {
    dev().load(&bytes(guest_artifacts::HOSTILE_DEBUG)).unwrap()
}

/// The first step of `mode` (starting state included), with `gas`.
fn first_step(program: &dyn Program, mode: &str, gas: u64) -> StepReport {
    program.step(StepCall { executable: mode.as_bytes(), state: None, input: None, gas_limit: gas })
}

#[test]
fn a_production_sandbox_refuses_a_debug_build_and_says_what_to_do() {
    let error = sandbox().load(&bytes(guest_artifacts::HOSTILE_DEBUG)).unwrap_err();
    assert_eq!(error, LoadError::DebugBuild);
    assert_eq!(error.kind(), "debug_build");
    let text = error.to_string();
    assert!(text.contains("debug build") && text.contains("imports `log`"), "{text}");
    assert!(text.contains("executor-host run --dev") && text.contains("without `--dev`"), "{text}");
    // What it imports, for `check`.
    let info = sandbox().inspect(&bytes(guest_artifacts::HOSTILE_DEBUG)).unwrap();
    assert_eq!(info.imports, [("log".to_string(), "func(message: string) -> ()".to_string())]);
}

/// Artifacts are trusted without checking the world again: one a dev
/// sandbox kept must not let a debug build into a production sandbox that
/// shares the directory.
#[test]
fn an_artifact_a_dev_sandbox_kept_does_not_admit_a_debug_build_in_production() {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = cap_std::fs::Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap();
    let debug = bytes(guest_artifacts::HOSTILE_DEBUG);
    let loaded = dev().load_cached(&debug, &artifacts).unwrap();
    assert!(loaded.is_debug_build());
    let production = Sandbox::new(SandboxConfig::default()).unwrap();
    assert_eq!(production.load_cached(&debug, &artifacts).unwrap_err(), LoadError::DebugBuild);
    // A release build loads in both, and is no debug build.
    let transfer = bytes(guest_artifacts::TRANSFER);
    assert!(!dev().load_cached(&transfer, &artifacts).unwrap().is_debug_build());
    assert!(!production.load_cached(&transfer, &artifacts).unwrap().is_debug_build());
}

#[test]
fn a_dev_sandbox_returns_what_each_call_logged() {
    let program = debug_hostile();
    assert!(program.is_debug_build());
    let first = first_step(&program, "log", GAS);
    let output = first.result.clone().unwrap();
    assert_eq!(first.log.lines, ["starting state for \"log\"", "first step: asking for l"]);
    let l = input("l", Some("7"));
    let second = program.step(StepCall {
        executable: b"log",
        state: Some(&output.state),
        input: Some(&l),
        gas_limit: GAS - first.gas_used,
    });
    assert!(second.result.unwrap().halted);
    assert_eq!(second.log, GuestLog { lines: vec!["l is \"7\"; halting".into()], dropped: 0 });
    // A release build of the same guest logs nothing, in either sandbox.
    let release = dev().load(&bytes(guest_artifacts::HOSTILE)).unwrap();
    assert!(!release.is_debug_build());
    assert!(first_step(&release, "log", GAS).log.is_empty());
}

#[test]
fn a_panic_message_is_logged_before_the_trap() {
    let report = first_step(&debug_hostile(), "log-panic", GAS);
    assert_eq!(report.result, Err(Failure::Trap { trap: TrapKind::Unreachable }));
    let [before, panic] = report.log.lines.as_slice() else { panic!("{:?}", report.log) };
    assert_eq!(before, "about to panic");
    assert!(panic.starts_with("panicked at ") && panic.contains("hostile"), "{panic}");
    assert!(panic.ends_with("hostile guest panics after logging"), "{panic}");
}

#[test]
fn lines_are_cut_and_counted_and_every_byte_is_paid_for() {
    let program = debug_hostile();
    let many = first_step(&program, "log-lines:100", GAS);
    assert!(many.result.is_ok());
    assert_eq!((many.log.lines.len(), many.log.dropped), (LOG_LINES, 100 - LOG_LINES as u64));
    assert_eq!(many.log.lines.first().map(String::as_str), Some("line 0"));
    // Dropped lines cost as much as kept ones.
    let few = first_step(&program, "log-lines:10", GAS);
    let per_line = (many.gas_used - few.gas_used) / 90;
    assert!(per_line >= LOG_GAS_PER_LINE, "{per_line} gas per line");

    let huge = first_step(&program, "log-huge", GAS);
    assert!(huge.result.is_ok());
    let [line] = huge.log.lines.as_slice() else { panic!("{:?}", huge.log) };
    assert_eq!(line, &format!("{}… (1048576 bytes in all)", "y".repeat(LOG_LINE_BYTES)));
    let paid = LOG_GAS_PER_LINE + (1 << 20) * LOG_GAS_PER_BYTE;
    assert!(huge.gas_used > paid, "{} gas for a 1 MiB line", huge.gas_used);
    // Enough for everything but half the line: out of gas at `log`, and
    // the line is not kept.
    let short = huge.gas_used - paid / 2;
    let poor = first_step(&program, "log-huge", short);
    assert_eq!((poor.result, poor.gas_used), (Err(Failure::OutOfGas), short));
    assert!(poor.log.is_empty(), "{:?}", poor.log);
}

/// A guest that logs forever neither hangs the host nor fills its memory:
/// it runs out of gas with at most `LOG_LINES` lines kept, and the same
/// sandbox then runs the next call normally.
#[test]
fn logging_in_a_loop_runs_out_of_gas_with_a_bounded_log() {
    let started = std::time::Instant::now();
    let report = first_step(&debug_hostile(), "log-loop", 20_000_000);
    assert_eq!(report.result, Err(Failure::OutOfGas));
    assert_eq!(report.log.lines.len(), LOG_LINES);
    assert!(report.log.dropped > 1_000, "{:?} dropped", report.log.dropped);
    assert!(report.log.lines.iter().all(|line| line.len() <= LOG_LINE_BYTES + 32));
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(first_step(&debug_hostile(), "log", GAS).result.is_ok());
}

fn tx(executable: &str, keys: KeySets) -> TxSpec {
    TxSpec { executable: executable.as_bytes().to_vec(), keys }
}

fn run(program: Arc<dyn Program>, transactions: Vec<TxSpec>) -> Vec<ExecutorFinished> {
    let workload = Workload { shards: 2, initial: [(b"l".to_vec(), b"5".to_vec())].into(), transactions };
    let outcome =
        harness::execute(&workload, program, &ExecutorOptions::default(), Delivery::Deterministic { seed: 7 }).unwrap();
    assert_eq!(outcome.pending_markers, 0);
    outcome.transactions.into_iter().map(|tx| executor_host::ExecutorFinished::clone(&tx.finished)).collect()
}

/// Through the executor: each transaction's lines, from every step, in
/// order, the failing step's included; none for a transaction that logged
/// nothing.
#[test]
fn the_executor_reports_each_transactions_lines_in_executor_finished() {
    let lazy_l = KeySets { lazy_read_keys: vec![b"l".to_vec()], ..KeySets::default() };
    let finished = run(
        Arc::new(debug_hostile()),
        vec![tx("log", lazy_l), tx("log-panic", KeySets::default()), tx("err", KeySets::default())],
    );
    assert!(finished[0].success);
    assert_eq!(
        finished[0].diagnostics.log.lines,
        ["starting state for \"log\"", "first step: asking for l", "l is \"5\"; halting"]
    );
    assert!(finished[0].diagnostics.steps.is_empty(), "no step trace unless asked for");
    assert_eq!(finished[1].failure, Some(Failure::Trap { trap: TrapKind::Unreachable }));
    assert_eq!(finished[1].diagnostics.log.lines.len(), 2);
    assert!(finished[1].diagnostics.log.lines[1].ends_with("hostile guest panics after logging"));
    assert!(finished[2].diagnostics.is_empty());
}

/// Three steps (reading `a`, then `b`, then halting) that each log more
/// than a call keeps: a transaction keeps `LOG_LINES` in all and counts
/// the rest.
#[derive(Debug)]
struct Chatty;

impl Program for Chatty {
    fn step(&self, call: StepCall<'_>) -> StepReport {
        let step = call.state.map_or(0, <[u8]>::len);
        let mut log = GuestLog::default();
        for line in 0..LOG_LINES + 2 {
            log.push(&format!("step {step} line {line}"));
        }
        let requests = match step {
            0 => vec![read("a")],
            1 => vec![read("b")],
            _ => Vec::new(),
        };
        let output = StepOutput { state: vec![0; step + 1], requests, halted: step == 2 };
        StepReport { result: Ok(output), gas_used: 1, log }
    }
}

#[test]
fn a_transaction_keeps_at_most_log_lines_over_all_its_steps() {
    let lazy = KeySets { lazy_read_keys: vec![b"a".to_vec(), b"b".to_vec()], ..KeySets::default() };
    let finished = run(Arc::new(Chatty), vec![tx("chatty", lazy)]);
    assert!(finished[0].success, "{:?}", finished[0].failure);
    let log = &finished[0].diagnostics.log;
    assert_eq!(log.lines.len(), LOG_LINES);
    assert_eq!(log.lines.last().map(String::as_str), Some(format!("step 0 line {}", LOG_LINES - 1).as_str()));
    // Three steps of `LOG_LINES + 2` lines, two of each dropped by the call.
    assert_eq!(log.dropped, 3 * (LOG_LINES as u64 + 2) - LOG_LINES as u64);
}

/// `ExecutorFinished` without diagnostics serializes as before, and a
/// report written before they existed still reads.
#[test]
fn executor_finished_without_diagnostics_reads_and_writes_as_before() {
    let old = r#"{"timestamp":1,"success":true,"values_read":[],"values_written":[],"failure":null,"gas_used":5}"#;
    let finished: ExecutorFinished = serde_json::from_str(old).unwrap();
    assert!(finished.diagnostics.is_empty());
    assert_eq!(serde_json::to_string(&finished).unwrap(), old);
}
