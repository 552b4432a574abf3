//! The harness and the scenario format against bad or extreme input: no
//! panic, no hang, a clear error.

use std::sync::Arc;
use std::time::Duration;

use executor_host::{ExecutorOptions, KeySets, Limits, NativeProgram};
use executor_testkit::Scenario;
use executor_testkit::harness::{self, Delivery, TxSpec, Workload};
use transfer_guest::TransferFunction;

fn transfers(n: usize) -> Workload {
    let keys = vec![b"a".to_vec(), b"b".to_vec()];
    Workload {
        shards: 2,
        initial: [(b"a".to_vec(), b"1000".to_vec())].into(),
        transactions: (0..n)
            .map(|_| TxSpec {
                executable: br#"{"from":"a","to":"b","amount":1}"#.to_vec(),
                keys: KeySets { eager_read_keys: keys.clone(), will_write_keys: keys.clone(), ..KeySets::default() },
            })
            .collect(),
    }
}

/// A deadline or linger too large to add to the runtime's clock used to
/// panic its task (`Instant + Duration` overflow): the concurrent run then
/// hung forever with every lock dangling. Such a timer now never fires.
#[test]
fn huge_deadline_and_linger_neither_panic_nor_hang() {
    let options = ExecutorOptions { deadline: Duration::MAX, linger: Duration::MAX, ..ExecutorOptions::default() };
    let program = Arc::new(NativeProgram::<TransferFunction>::new(Limits::default()));
    for delivery in [Delivery::Concurrent { threads: 2 }, Delivery::Deterministic { seed: 3 }] {
        let outcome = harness::execute(&transfers(20), program.clone(), &options, delivery).unwrap();
        assert_eq!(outcome.transactions.len(), 20, "{delivery:?}");
        assert!(outcome.transactions.iter().all(|t| t.finished.success), "{delivery:?}");
        assert_eq!(outcome.pending_markers, 0, "{delivery:?}");
        assert_eq!(outcome.final_state[&b"b".to_vec()], b"20", "{delivery:?}");
    }
}

#[test]
fn scenario_shard_count_is_bounded() {
    for shards in ["0", "1025", "100000000", "18446744073709551615"] {
        let text = format!(r#"{{"shards": {shards}, "transactions": []}}"#);
        let error = Scenario::from_json(&text).unwrap_err().to_string();
        assert!(error.starts_with("shards: must be from 1 to 1024"), "{error}");
    }
    let workload = Workload { shards: 5000, ..transfers(1) };
    let program = Arc::new(NativeProgram::<TransferFunction>::new(Limits::default()));
    let error = harness::execute(&workload, program, &ExecutorOptions::default(), Delivery::Deterministic { seed: 1 })
        .unwrap_err();
    assert!(error.to_string().contains("at most 1024 shards"), "{error}");
}

/// A thread count past what the harness starts is an error, not a panic
/// in tokio's builder or an abort when the system refuses a thread.
#[test]
fn a_concurrent_run_refuses_too_many_threads() {
    let program = Arc::new(NativeProgram::<TransferFunction>::new(Limits::default()));
    for threads in [1025, 100_000, usize::MAX] {
        for delivery in [
            Delivery::Concurrent { threads },
            Delivery::ClosedLoop { threads, in_flight: 4 },
            Delivery::OpenLoop { threads, per_second: 1000 },
        ] {
            let error = harness::execute(&transfers(1), program.clone(), &ExecutorOptions::default(), delivery)
                .unwrap_err()
                .to_string();
            assert_eq!(error, format!("a concurrent run may have at most 1024 threads, not {threads}"));
        }
    }
    let outcome =
        harness::execute(&transfers(3), program, &ExecutorOptions::default(), Delivery::Concurrent { threads: 1024 })
            .unwrap();
    assert_eq!(outcome.transactions.len(), 3);
}

/// Recording says what a run would: a second write of a key fails in
/// streaming mode (and not in atomic mode), and a program that asks for
/// nothing more yet never halts stalls.
#[test]
fn a_recording_fails_what_a_run_fails() {
    use executor_host::{Access, Failure, WriteMode};
    use executor_testkit::record;
    let hostile = crate::support::load(crate::support::sandbox(), guest_artifacts::HOSTILE);
    let workload = |exe: &str| Workload {
        shards: 1,
        initial: [(b"l".to_vec(), b"5".to_vec())].into(),
        transactions: vec![TxSpec { executable: exe.as_bytes().to_vec(), keys: KeySets::default() }],
    };
    let streaming = ExecutorOptions::default();
    let atomic = ExecutorOptions { write_mode: WriteMode::Atomic, ..ExecutorOptions::default() };
    let twice = record::record(&workload("write-twice"), &hostile, &streaming).remove(0);
    let rewrite = Failure::AccessViolation { key: b"w".to_vec(), access: Access::Rewrite };
    assert_eq!(twice.outcome, Err(rewrite));
    assert_eq!(twice.keys.will_write_keys, vec![b"w".to_vec()]);
    assert_eq!(record::record(&workload("write-twice"), &hostile, &atomic).remove(0).outcome, Ok(()));
    let reread = record::record(&workload("reread"), &hostile, &streaming).remove(0);
    assert_eq!((reread.outcome, reread.keys.lazy_read_keys), (Err(Failure::Stalled), vec![b"l".to_vec()]));
}

/// What a scenario file would be misread as is refused, with where; what
/// it says exactly is kept.
#[test]
fn scenario_refuses_what_it_would_misread() {
    let with = |executable: &str| format!(r#"{{"transactions": [{{"executable": {executable}}}]}}"#);
    let error = Scenario::from_json(&with(r#"{"amount": 123456789012345678901234567890}"#)).unwrap_err().to_string();
    assert!(
        error.starts_with(
            "transactions[0].executable: the number 123456789012345678901234567890 does not fit in 64 bits"
        ),
        "{error}"
    );
    let negative = Scenario::from_json(&with("[-9223372036854775809]")).unwrap_err().to_string();
    assert!(negative.contains("the number -9223372036854775809 does not fit"), "{negative}");
    for (executable, bytes) in [
        (
            r#"{"a": 18446744073709551615, "b": -9223372036854775808}"#,
            r#"{"a":18446744073709551615,"b":-9223372036854775808}"#,
        ),
        (
            r#"{"s": "123456789012345678901234567890 \" 99999999999999999999"}"#,
            r#"{"s":"123456789012345678901234567890 \" 99999999999999999999"}"#,
        ),
        (r#"{"x": 1.5e300}"#, r#"{"x":1.5e+300}"#),
    ] {
        let scenario = Scenario::from_json(&with(executable)).unwrap();
        assert_eq!(scenario.transactions[0].executable.0, bytes.as_bytes(), "{executable}");
    }
    // An error inside an executable says where it is in the file (where
    // the executable ends), not where in the executable.
    let text = "{\"transactions\": [\n {\"executable\": \"H\"},\n {\"executable\": {\"x\": 1e999}}\n]}";
    let inside = Scenario::from_json(text).unwrap_err().to_string();
    assert_eq!(inside, "transactions[1].executable: number out of range at line 3 column 29");
    let trailing = Scenario::from_json(r#"{"transactions": []} // a comment"#).unwrap_err().to_string();
    assert_eq!(trailing, "scenario: trailing characters at line 1 column 22 after the scenario's closing brace");
    let comma = Scenario::from_json(r#"{"transactions": [],}"#).unwrap_err().to_string();
    assert_eq!(comma, "scenario: trailing comma at line 1 column 21");
    for not_an_object in ["[]", "3", ""] {
        let error = Scenario::from_json(not_an_object).unwrap_err().to_string();
        assert!(error.starts_with("scenario: a scenario is a JSON object"), "{error}");
    }
    assert!(Scenario::from_json("\u{feff}{\"transactions\": []}").is_ok(), "a byte-order mark is skipped");
    // A key given twice in an executable's object is refused, at any
    // depth, where a JSON value would keep the last silently (a transfer
    // of 1 ran as one of 500).
    for executable in [r#"{"from": "a", "to": "b", "amount": 1, "amount": 500}"#, r#"[{"x": {"k": 1, "k": 1}}]"#] {
        let error = Scenario::from_json(&with(executable)).unwrap_err().to_string();
        assert!(error.starts_with("transactions[0].executable: the key `"), "{error}");
        assert!(error.contains("is given twice in one object"), "{error}");
    }
    let nested = Scenario::from_json(&with(r#"{"a": {"k": 1}, "b": {"k": 2}}"#)).unwrap();
    assert_eq!(nested.transactions[0].executable.0, br#"{"a":{"k":1},"b":{"k":2}}"#);
}

#[test]
fn scenario_refuses_a_key_given_twice_in_initial_state() {
    let text = r#"{"initial_state": {"a": "1", "b": "2", "a": "3"}, "transactions": []}"#;
    let error = Scenario::from_json(text).unwrap_err().to_string();
    assert!(error.contains("initial_state") && error.contains("key \"a\" is given twice"), "{error}");
}

/// A transaction with thousands of eager keys used to die at its deadline
/// (its mailbox dropped most of the reads) or exhaust the deterministic
/// harness's step budget. Every read reaches it now, in both deliveries.
#[test]
fn a_transaction_with_five_thousand_eager_keys_finishes() {
    use executor_guest::{ExecutorFunction, Input, Step};

    /// Halts once it has been fed `n` values (the count is the state).
    #[derive(Debug)]
    struct CountReads;
    impl ExecutorFunction for CountReads {
        fn starting_state(_: &[u8]) -> Result<Vec<u8>, String> {
            Ok(0u32.to_le_bytes().to_vec())
        }
        fn execute_step(exe: &[u8], state: &[u8], _: Option<Input>) -> Result<Step, String> {
            let seen = u32::from_le_bytes(state.try_into().map_err(|_| "state")?) + 1;
            let done = seen.to_string().as_bytes() == exe;
            let state = if done { b"done".to_vec() } else { seen.to_le_bytes().to_vec() };
            Ok(Step::new(state, Vec::new()))
        }
        fn halted(state: &[u8]) -> bool {
            state == b"done"
        }
    }
    let keys: Vec<Vec<u8>> = (0..5000).map(|i| format!("key{i:05}").into_bytes()).collect();
    let workload = Workload {
        shards: 3,
        initial: Default::default(),
        transactions: vec![TxSpec {
            executable: b"5000".to_vec(),
            keys: KeySets { eager_read_keys: keys, ..KeySets::default() },
        }],
    };
    let program = Arc::new(NativeProgram::<CountReads>::new(Limits::default()));
    for delivery in [Delivery::Deterministic { seed: 2 }, Delivery::Concurrent { threads: 2 }] {
        let outcome = harness::execute(&workload, program.clone(), &ExecutorOptions::default(), delivery).unwrap();
        let report = &outcome.transactions[0].finished;
        assert!(report.success, "{delivery:?}: {:?}", report.failure);
        assert_eq!(report.values_read.len(), 5000, "{delivery:?}");
        assert_eq!(outcome.pending_markers, 0, "{delivery:?}");
    }
}
