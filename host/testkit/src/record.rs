//! Recording mode: run each transaction with access unrestricted and
//! record the keys it touches, so an author learns a transaction's key sets
//! instead of fixing them one strict-mode failure at a time (Soroban's
//! recording footprint and `simulateTransaction` do this for its
//! contracts).
//!
//! Transactions run one after another in submission order, each on the
//! state the previous ones left (the serial order the worker's timestamps
//! give), the way the executor feeds a program: the declared eager keys
//! first, in key order, then every key the program asks for, in the order
//! asked, whether declared or not. Recorded:
//!
//! - `eager_read_keys`: the declared eager keys (a program that reads a
//!   value unasked needs it declared so);
//! - `lazy_read_keys`: every other key the program asked for;
//! - `will_write_keys`: every key it wrote;
//! - `may_write_keys`: none (a key written in the recording is written).
//!
//! A failed transaction's writes are not applied (as in atomic mode), and
//! its keys are recorded as far as it got. What strict mode refuses beyond
//! undeclared keys fails the recording too: a second write of one key in
//! streaming mode (`options.write_mode`). The same workload records the
//! same key sets every time.
//!
//! This module must not touch a shard, a worker or a clock: it is a serial
//! simulation with the program alone.

use std::collections::BTreeMap;

use executor_host::{
    Access, Datum, ExecutorOptions, Failure, Input, Key, KeySets, Program, Request, StepCall, WriteMode,
};

use crate::harness::Workload;

/// One transaction's recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The key sets it needs, normalized.
    pub keys: KeySets,
    /// Whether the program halted; `None` if it did not halt once fed
    /// every value it asked for, and asked for no more (a run fails it at
    /// its deadline).
    pub outcome: Option<Result<(), Failure>>,
}

/// Records every transaction of `workload`, in order, from its initial
/// state, within `options.gas_limit` per transaction.
pub fn record(workload: &Workload, program: &dyn Program, options: &ExecutorOptions) -> Vec<Recorded> {
    let mut store = workload.initial.clone();
    workload.transactions.iter().map(|tx| record_one(program, &tx.executable, &tx.keys, options, &mut store)).collect()
}

fn record_one(
    program: &dyn Program,
    executable: &[u8],
    declared: &KeySets,
    options: &ExecutorOptions,
    store: &mut BTreeMap<Key, Datum>,
) -> Recorded {
    let eager = declared.clone().normalized().eager_read_keys;
    // Values to feed, in order: eager keys first, then requests as made.
    let mut queue: Vec<Key> = eager.clone();
    let mut fed = 0;
    let mut asked: Vec<Key> = Vec::new();
    let mut writes: BTreeMap<Key, Datum> = BTreeMap::new();
    let mut state: Option<Vec<u8>> = None;
    let mut gas_left = options.gas_limit;
    // The first step runs without input only when nothing is eager.
    let mut input: Option<Input> = match queue.first() {
        None => None,
        Some(key) => {
            fed = 1;
            Some(Input { key: key.clone(), datum: store.get(key).cloned() })
        }
    };
    let outcome = loop {
        let report =
            program.step(StepCall { executable, state: state.as_deref(), input: input.as_ref(), gas_limit: gas_left });
        gas_left = gas_left.saturating_sub(report.gas_used);
        let output = match report.result {
            Ok(output) => output,
            Err(failure) => break Some(Err(failure)),
        };
        // The requests in order, as the executor takes them: it stops at
        // the first a run refuses.
        let mut rewrite = None;
        for request in output.requests {
            match request {
                Request::Read(key) => {
                    if !queue.contains(&key) {
                        asked.push(key.clone());
                        queue.push(key);
                    }
                }
                Request::Write(key, _) if options.write_mode == WriteMode::Streaming && writes.contains_key(&key) => {
                    rewrite = Some(key);
                    break;
                }
                Request::Write(key, datum) => {
                    writes.insert(key, datum);
                }
            }
        }
        if let Some(key) = rewrite {
            break Some(Err(Failure::AccessViolation { key, access: Access::Rewrite }));
        }
        if output.halted {
            break Some(Ok(()));
        }
        state = Some(output.state);
        let Some(next) = queue.get(fed) else { break None };
        fed += 1;
        input = Some(Input { key: next.clone(), datum: store.get(next).cloned() });
    };
    let keys = KeySets {
        eager_read_keys: eager,
        lazy_read_keys: asked,
        will_write_keys: writes.keys().cloned().collect(),
        may_write_keys: Vec::new(),
    }
    .normalized();
    if outcome == Some(Ok(())) {
        store.extend(writes);
    }
    Recorded { keys, outcome }
}
