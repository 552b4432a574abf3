//! The step trace (`ExecutorOptions::step_trace`): each step's key, gas,
//! requests and halted flag, in `ExecutorFinished`; nothing when off.

use std::sync::Arc;

use executor_host::{ExecutorFinished, ExecutorOptions, Failure, KeySets, Program, StepTrace, TracedRequest};
use executor_testkit::harness::{self, Delivery, TxSpec, Workload};

use crate::support::*;

fn keys(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|k| k.as_bytes().to_vec()).collect()
}

/// Three transfers on the wasm transfer guest: one that starts on its
/// eager reads, one that declares no eager read (so its first step runs
/// without input), one that fails for lack of funds.
fn run(step_trace: bool) -> Vec<ExecutorFinished> {
    let eager = KeySets {
        eager_read_keys: keys(&["alice", "bob"]),
        will_write_keys: keys(&["alice", "bob"]),
        ..KeySets::default()
    };
    let lazy = KeySets {
        lazy_read_keys: keys(&["alice", "bob"]),
        will_write_keys: keys(&["alice", "bob"]),
        ..KeySets::default()
    };
    let transactions = vec![
        TxSpec { executable: transfer_exe("alice", "bob", 30), keys: eager.clone() },
        TxSpec { executable: transfer_exe("bob", "alice", 5), keys: lazy },
        TxSpec { executable: transfer_exe("bob", "alice", 1_000), keys: eager },
    ];
    let workload = Workload { shards: 2, initial: [(b"alice".to_vec(), b"100".to_vec())].into(), transactions };
    let options = ExecutorOptions { step_trace, ..ExecutorOptions::default() };
    let program: Arc<dyn Program> = Arc::new(transfer());
    let outcome = harness::execute(&workload, program, &options, Delivery::Deterministic { seed: 11 }).unwrap();
    outcome.transactions.into_iter().map(|tx| executor_host::ExecutorFinished::clone(&tx.finished)).collect()
}

fn read(key: &str) -> TracedRequest {
    TracedRequest::Read { key: key.as_bytes().to_vec() }
}

fn write(key: &str, datum: &str) -> TracedRequest {
    TracedRequest::Write { key: key.as_bytes().to_vec(), datum: datum.as_bytes().to_vec() }
}

fn key_of(step: &StepTrace) -> Option<&str> {
    step.key.as_deref().map(|key| std::str::from_utf8(key).unwrap())
}

#[test]
fn each_step_is_traced_with_its_key_gas_requests_and_halt() {
    let finished = run(true);
    for tx in &finished {
        let steps = &tx.diagnostics.steps;
        assert!(!steps.is_empty(), "{tx:?}");
        assert_eq!(steps.iter().map(|s| s.gas_used).sum::<u64>(), tx.gas_used, "steps add up: {tx:?}");
        assert!(steps.iter().all(|s| s.gas_used > 0), "{steps:?}");
        let (last, earlier) = steps.split_last().unwrap();
        assert_eq!(last.halted, tx.success, "{steps:?}");
        assert!(earlier.iter().all(|s| !s.halted), "{steps:?}");
        assert!(tx.diagnostics.log.is_empty());
    }

    // Started by its eager reads, fed in key order; every request in the
    // order the step returned it (a read of an eager key sends nothing,
    // but is traced).
    let eager = &finished[0].diagnostics.steps;
    let fed: Vec<_> = eager.iter().map(key_of).collect();
    assert_eq!(fed, [Some("alice"), Some("bob")]);
    assert_eq!(eager[0].requests, [read("bob")], "it has alice, and asks for bob");
    assert_eq!(eager[1].requests, [write("alice", "70"), write("bob", "30")]);

    // No eager read: the first step runs without input.
    let lazy = &finished[1].diagnostics.steps;
    let fed: Vec<_> = lazy.iter().map(key_of).collect();
    assert_eq!(fed, [None, Some("bob"), Some("alice")]);
    assert_eq!(lazy[0].requests, [read("bob"), read("alice")]);
    assert_eq!(lazy[2].requests, [write("bob", "25"), write("alice", "75")]);

    // A failing step is traced too, with its gas and no requests.
    let failed = &finished[2];
    assert!(matches!(failed.failure, Some(Failure::Guest { .. })), "{failed:?}");
    let last = failed.diagnostics.steps.last().unwrap();
    assert!(last.requests.is_empty() && !last.halted, "{last:?}");
}

#[test]
fn without_the_option_nothing_is_traced_and_the_gas_is_the_same() {
    let (traced, plain) = (run(true), run(false));
    for (traced, plain) in traced.iter().zip(&plain) {
        assert!(plain.diagnostics.is_empty(), "{plain:?}");
        assert_eq!(traced.gas_used, plain.gas_used);
        assert_eq!((&traced.values_read, &traced.values_written), (&plain.values_read, &plain.values_written));
    }
}
