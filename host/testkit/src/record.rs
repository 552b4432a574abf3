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
//! The transaction runs as the executor runs it, so that the recording
//! says what a run would: its steps in the executor's rounds (and so with
//! its gas), within `options.gas_limit` and `options.report_bytes`; a second
//! write of one key fails in streaming mode (`options.write_mode`); a
//! program that neither halts nor asks for a value it has not been fed
//! fails as [`Failure::Stalled`]. A failed transaction's writes are applied
//! in streaming mode (each was final when the program made it) and not in
//! atomic mode; its keys are recorded as far as it got. The same workload
//! records the same key sets every time.
//!
//! This module must not touch a shard, a worker or a clock: it is a serial
//! simulation with the program alone.

use std::collections::{BTreeMap, BTreeSet};

use executor_host::{
    Access, Datum, ExecutorOptions, Failure, Input, Key, KeySets, Oversize, Program, Request, Session, StepCall,
    WriteMode, report_entry_bytes,
};

use crate::harness::Workload;

/// One transaction's recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The key sets it needs, normalized.
    pub keys: KeySets,
    /// Whether the program halted, or why it failed.
    pub outcome: Result<(), Failure>,
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
    let mut run = Run {
        program,
        executable,
        options,
        store,
        queued: eager.iter().cloned().collect(),
        queue: eager.clone(),
        fed: 0,
        asked: Vec::new(),
        write_keys: BTreeSet::new(),
        writes: Vec::new(),
        state: None,
        gas_used: 0,
        report_size: 0,
    };
    let outcome = run.go();
    let Run { asked, write_keys, writes, .. } = run;
    let keys = KeySets {
        eager_read_keys: eager,
        lazy_read_keys: asked,
        will_write_keys: write_keys.into_iter().collect(),
        may_write_keys: Vec::new(),
    }
    .normalized();
    if outcome.is_ok() || options.write_mode == WriteMode::Streaming {
        store.extend(writes);
    }
    Recorded { keys, outcome }
}

/// One transaction being recorded: what the executor would hold.
struct Run<'a> {
    program: &'a dyn Program,
    executable: &'a [u8],
    options: &'a ExecutorOptions,
    /// The state the transactions before left.
    store: &'a BTreeMap<Key, Datum>,
    /// Values to feed, in order: the eager keys, then requests as made.
    queue: Vec<Key>,
    /// The keys of `queue`, to look up.
    queued: BTreeSet<Key>,
    /// How many of `queue` were fed.
    fed: usize,
    /// The keys asked for that are not eager.
    asked: Vec<Key>,
    /// Every key the program wrote, or tried to (a run checks that it is
    /// declared before anything else).
    write_keys: BTreeSet<Key>,
    /// The last value written per key, in first-write order.
    writes: Vec<(Key, Datum)>,
    state: Option<Vec<u8>>,
    gas_used: u64,
    /// The report's size as `options.report_bytes` counts it.
    report_size: u64,
}

/// How a step ended.
enum Stepped {
    Halted,
    Continues,
}

impl Run<'_> {
    /// The executor's order: a first step without input only when nothing
    /// is eager; then round by round (the eager keys, then the keys the
    /// round before asked for), a round's steps in one session.
    fn go(&mut self) -> Result<(), Failure> {
        if self.queue.is_empty() && matches!(self.step(None, None)?, Stepped::Halted) {
            return Ok(());
        }
        loop {
            let round_end = self.queue.len();
            if self.fed == round_end {
                return Err(Failure::Stalled);
            }
            let program = self.program;
            let mut session = program.session();
            while let Some(key) = self.queue.get(self.fed).filter(|_| self.fed < round_end).cloned() {
                self.fed += 1;
                let datum = self.store.get(&key).cloned();
                if let Stepped::Halted = self.step(session.as_deref_mut(), Some(Input { key, datum }))? {
                    return Ok(());
                }
            }
        }
    }

    fn step(&mut self, session: Option<&mut (dyn Session + '_)>, input: Option<Input>) -> Result<Stepped, Failure> {
        if let Some(input) = &input {
            self.report(0, report_entry_bytes(&input.key, input.datum.as_deref()))?;
        }
        let call = StepCall {
            executable: self.executable,
            state: self.state.as_deref(),
            input: input.as_ref(),
            gas_limit: self.options.gas_limit.saturating_sub(self.gas_used),
        };
        let program = self.program;
        let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match session {
            Some(session) => session.step(call),
            None => program.step(call),
        }))
        .map_err(|_| Failure::Host { message: "the program panicked".into() })?;
        self.gas_used = self.gas_used.saturating_add(report.gas_used);
        let output = report.result?;
        // The requests in order, as the executor takes them: it stops at
        // the first a run refuses.
        for request in output.requests {
            match request {
                Request::Read(key) => {
                    if self.queued.insert(key.clone()) {
                        self.asked.push(key.clone());
                        self.queue.push(key);
                    }
                }
                Request::Write(key, datum) => self.write(key, datum)?,
            }
        }
        if output.halted {
            return Ok(Stepped::Halted);
        }
        self.state = Some(output.state);
        Ok(Stepped::Continues)
    }

    fn write(&mut self, key: Key, datum: Datum) -> Result<(), Failure> {
        self.write_keys.insert(key.clone());
        let previous = self.writes.iter().position(|(k, _)| *k == key);
        match (self.options.write_mode, previous) {
            (WriteMode::Streaming, Some(_)) => return Err(Failure::AccessViolation { key, access: Access::Rewrite }),
            (WriteMode::Atomic, Some(at)) => {
                let replaced = self.writes.get(at).map_or(0, |(_, value)| value.len() as u64);
                self.report(replaced, datum.len() as u64)?;
                if let Some((_, value)) = self.writes.get_mut(at) {
                    *value = datum;
                }
            }
            (_, None) => {
                self.report(0, report_entry_bytes(&key, Some(&datum)))?;
                self.writes.push((key, datum));
            }
        }
        Ok(())
    }

    /// The executor's count of the report against `options.report_bytes`.
    fn report(&mut self, removed: u64, added: u64) -> Result<(), Failure> {
        let Some(limit) = self.options.report_bytes else { return Ok(()) };
        let size = self.report_size.saturating_sub(removed).saturating_add(added);
        if size > limit {
            return Err(Failure::TooLarge { what: Oversize::Report, size, limit });
        }
        self.report_size = size;
        Ok(())
    }
}
