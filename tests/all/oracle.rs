//! The serializability oracle: for random workloads, under many seeds and
//! both delivery modes, every value read and the final state equal running
//! the same transactions one after another in timestamp order with the
//! native build of the function; at the end no shard holds a pending marker.
//!
//! A failure names its seed; rerun one with `ORACLE_SEED=<seed> cargo test
//! oracle`. `cargo test -- --ignored oracle` runs the long version.

use std::collections::BTreeMap;
use std::sync::Arc;

use counter_guest::CounterFunction;
use executor_guest::{ExecutorFunction, Input, Step};
use executor_host::{Datum, Key, KeySets};
use executor_host::{ExecutorOptions, WriteMode};
use executor_host::{Limits, NativeProgram, Program, Request, StepCall};
use executor_testkit::Rng;
use executor_testkit::harness::{self, Delivery, Outcome, TxSpec, Workload};
use transfer_guest::TransferFunction;

use crate::support;

/// Transfers and counters in one function: a transfer's executable has a
/// `from`, a counter's has a `key`.
#[derive(Debug)]
pub struct Mixed;

fn is_transfer(executable: &[u8]) -> bool {
    executable.starts_with(b"{\"from\"")
}

impl ExecutorFunction for Mixed {
    fn starting_state(executable: &[u8]) -> Result<Vec<u8>, String> {
        if is_transfer(executable) {
            TransferFunction::starting_state(executable)
        } else {
            CounterFunction::starting_state(executable)
        }
    }
    fn execute_step(executable: &[u8], state: &[u8], input: Option<Input>) -> Result<Step, String> {
        if is_transfer(executable) {
            TransferFunction::execute_step(executable, state, input)
        } else {
            CounterFunction::execute_step(executable, state, input)
        }
    }
    fn halted(state: &[u8]) -> bool {
        TransferFunction::halted(state) || CounterFunction::halted(state)
    }
}

/// A random workload: `accounts` keys (1 means everything contends on one
/// key), transfers and counters, eager or lazy reads, will or may writes,
/// extra declared keys the program never touches.
fn workload(seed: u64, transactions: usize, accounts: u64, counters: bool) -> Workload {
    let mut rng = Rng::new(seed);
    let key = |i: u64| format!("k{i}").into_bytes();
    let mut initial = BTreeMap::new();
    for i in 0..accounts {
        if rng.chance(80) {
            initial.insert(key(i), rng.below(100).to_string().into_bytes());
        }
    }
    let mut rng = Rng::new(seed.wrapping_add(17));
    let transactions = (0..transactions)
        .map(|_| {
            let mut keys = KeySets::default();
            let (executable, touched) = if counters && rng.chance(30) {
                let k = key(rng.below(accounts));
                (format!(r#"{{"key":"{}","amount":{}}}"#, String::from_utf8_lossy(&k), rng.below(10)), vec![k])
            } else {
                let (from, to) = (key(rng.below(accounts)), key(rng.below(accounts)));
                let exe = format!(
                    r#"{{"from":"{}","to":"{}","amount":{}}}"#,
                    String::from_utf8_lossy(&from),
                    String::from_utf8_lossy(&to),
                    rng.below(60)
                );
                (exe, vec![from, to])
            };
            for k in &touched {
                if rng.chance(50) { &mut keys.eager_read_keys } else { &mut keys.lazy_read_keys }.push(k.clone());
                if rng.chance(80) { &mut keys.will_write_keys } else { &mut keys.may_write_keys }.push(k.clone());
            }
            // Declared but never touched: lazy reads and may-writes to
            // release. (Not eager reads: those are fed to the program,
            // which these functions treat as an error.)
            if rng.chance(20) {
                let extra = key(rng.below(accounts + 3));
                if rng.chance(50) { &mut keys.lazy_read_keys } else { &mut keys.may_write_keys }.push(extra);
            }
            TxSpec { executable: executable.into_bytes(), keys }
        })
        .collect();
    Workload { shards: 1 + (seed % 4) as usize, initial, transactions }
}

/// A random workload of transfers only (what the `transfer` guest runs).
pub fn transfer_workload(seed: u64, transactions: usize, accounts: u64) -> Workload {
    workload(seed, transactions, accounts, false)
}

/// Runs one transaction alone against `store`: eager keys first in key
/// order, then each requested key as asked. Returns success, and applies
/// its writes on success.
fn serial_step(
    program: &dyn Program,
    tx: &TxSpec,
    store: &mut BTreeMap<Vec<u8>, Vec<u8>>,
) -> (bool, Vec<(Key, Datum)>) {
    let keys = tx.keys.clone().normalized();
    let mut queue: Vec<Vec<u8>> = keys.eager_read_keys.clone();
    let mut fed: Vec<Vec<u8>> = Vec::new();
    let mut state: Option<Vec<u8>> = None;
    let mut input: Option<Input> = None;
    let mut writes: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    loop {
        let report = program.step(StepCall {
            executable: &tx.executable,
            state: state.as_deref(),
            input: input.as_ref(),
            gas_limit: u64::MAX,
        });
        let Ok(output) = report.result else { return (false, Vec::new()) };
        for request in output.requests {
            match request {
                Request::Read(k) => {
                    if !queue.contains(&k) && !fed.contains(&k) {
                        queue.push(k);
                    }
                }
                Request::Write(k, v) => {
                    writes.insert(k, v);
                }
            }
        }
        if output.halted {
            store.extend(writes.clone());
            return (true, writes.into_iter().collect());
        }
        state = Some(output.state);
        let Some(next) = queue.iter().position(|k| !fed.contains(k)).map(|i| queue.remove(i)) else {
            return (false, Vec::new());
        };
        input = Some(Input { datum: store.get(&next).cloned(), key: next.clone() });
        fed.push(next);
    }
}

/// Checks `outcome` against the serial execution; returns the first
/// difference.
pub fn check(workload: &Workload, outcome: &Outcome) -> Result<(), String> {
    let reference = NativeProgram::<Mixed>::new(Limits::default());
    let mut store = workload.initial.clone();
    if outcome.transactions.len() != workload.transactions.len() {
        return Err(format!("{} of {} finished", outcome.transactions.len(), workload.transactions.len()));
    }
    for tx in &outcome.transactions {
        let report = &tx.finished;
        for (key, value) in &report.values_read {
            if value.as_ref() != store.get(key) {
                return Err(format!("tx {} read {:?} = {value:?}, serially {:?}", tx.timestamp, key, store.get(key)));
            }
        }
        let (success, written) = serial_step(&reference, &tx.tx, &mut store);
        if success != report.success || written != report.values_written {
            return Err(format!("tx {}: {:?} vs serial success={success} writes={written:?}", tx.timestamp, report));
        }
    }
    if store != outcome.final_state {
        return Err(format!("final state differs: {:?} vs serial {:?}", outcome.final_state, store));
    }
    if outcome.pending_markers != 0 {
        return Err(format!("{} markers still pending", outcome.pending_markers));
    }
    Ok(())
}

fn run_seeds(
    seeds: impl IntoIterator<Item = u64>,
    transactions: usize,
    program: Arc<dyn Program>,
    counters: bool,
    concurrent: bool,
) {
    let transactions = std::env::var("ORACLE_TXS").ok().and_then(|s| s.parse().ok()).unwrap_or(transactions);
    for seed in seeds {
        // Contention from none (many accounts) to everything on one key.
        let accounts = [1, 2, 5, 20, 200, 5000][(seed % 6) as usize];
        let workload = workload(seed, transactions, accounts, counters);
        let write_mode = if seed % 2 == 0 { WriteMode::Streaming } else { WriteMode::Atomic };
        let options = ExecutorOptions { write_mode, ..ExecutorOptions::default() };
        let delivery = if concurrent { Delivery::Concurrent { threads: 2 } } else { Delivery::Deterministic { seed } };
        let outcome = harness::execute(&workload, program.clone(), &options, delivery)
            .unwrap_or_else(|e| panic!("seed {seed} ({delivery:?}): {e}"));
        if let Err(difference) = check(&workload, &outcome) {
            panic!("seed {seed} ({delivery:?}, {accounts} accounts, {write_mode:?}) is not serializable: {difference}");
        }
    }
}

fn seeds(default: std::ops::Range<u64>) -> Vec<u64> {
    match std::env::var("ORACLE_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => default.collect(),
    }
}

fn mixed() -> Arc<dyn Program> {
    Arc::new(NativeProgram::<Mixed>::new(Limits::default()))
}

#[test]
fn oracle_deterministic_delivery_is_serializable() {
    run_seeds(seeds(0..50), 10_000, mixed(), true, false);
}

#[test]
fn oracle_concurrent_delivery_is_serializable() {
    run_seeds(seeds(100..150), 10_000, mixed(), true, true);
}

#[test]
fn oracle_wasm_guest_is_serializable() {
    let wasm: Arc<dyn Program> = Arc::new(support::transfer());
    run_seeds(seeds(200..204), 1_000, wasm.clone(), false, false);
    run_seeds(seeds(300..302), 1_000, wasm, false, true);
}

#[test]
fn same_seed_same_run() {
    let workload = workload(9, 300, 5, true);
    let options = ExecutorOptions::default();
    let run = || harness::execute(&workload, mixed(), &options, Delivery::Deterministic { seed: 9 }).unwrap();
    assert_eq!(run(), run());
}

#[test]
#[ignore = "long: 200 seeds of 20,000 transactions in each mode"]
fn oracle_long() {
    run_seeds(1000..1200, 20_000, mixed(), true, false);
    run_seeds(2000..2200, 20_000, mixed(), true, true);
}
