//! The executor's invariants, checked on everything one executor sends.
//!
//! After every trigger: every envelope is from the executor's id on mailbox
//! 0, for its timestamp, to the shard that owns the key, about a declared
//! key of the right kind; releases (`actual: false`, `datum: None`) and
//! atomic writes leave only with the finish; nothing at all (no message, no
//! timer) leaves after the finish; the host is told to remove the executor
//! only on the `Reap` timer after the finish, and the finish sets it. Only
//! with `resend` may a read be asked for again (`actual: true` for an
//! eager key, or for a lazy key asked for already).
//!
//! At the end: exactly one `ExecutorFinished` to the worker and one to the
//! issuer (one in all when they are the same engine), identical; every
//! declared lazy key got exactly one first read request (asked or
//! released; re-asks aside) and
//! every declared write key exactly one write (written or released); the
//! report is consistent with what was sent; and (with [`ExecLog::reads`])
//! the values the program was fed are exactly the ones the owning shard
//! sent.

use std::collections::BTreeMap;
use std::sync::Arc;

use executor_host::__internal::{Executor, ExecutorConfig, ExecutorTimer};
use executor_host::engine::{Effect, TimerOp};
use executor_host::{Datum, EngineId, Envelope, ExecutorFinished, Key, KeySets, Message, ShardMap, Timestamp};
use executor_host::{WriteMode, executor_id};

use super::common::{kind, show};

/// What one executor sent, and the checks on it.
#[derive(Debug)]
pub struct ExecLog {
    pub id: EngineId,
    timestamp: Timestamp,
    keys: KeySets,
    worker: EngineId,
    issuer: EngineId,
    shards: Arc<dyn ShardMap>,
    atomic: bool,
    /// Whether the executor re-asks for reads (`resend`).
    resend: bool,
    /// The bound on what the report carries (`report_bytes`).
    report_bytes: Option<u64>,
    /// Reads asked for again.
    pub asked_again: usize,
    /// Reports sent, with their recipients.
    reports: Vec<(EngineId, ExecutorFinished)>,
    /// `actual` of every read request, per key.
    requests: BTreeMap<Key, Vec<bool>>,
    /// Every write, per key.
    writes: BTreeMap<Key, Vec<Option<Datum>>>,
    /// Lazy keys asked for (`actual: true`), in order: what the shard owes.
    pub requested: Vec<Key>,
    /// The Reap timer is set.
    reap_set: bool,
    /// The host was told to remove the executor.
    pub stopped: bool,
}

fn contains(set: &[Key], key: &[u8]) -> bool {
    set.iter().any(|k| k.as_slice() == key)
}

impl ExecLog {
    /// A log for the executor of `config` (its id as [`executor_id`]
    /// names it).
    pub fn new(config: &ExecutorConfig) -> Self {
        let tx = &config.tx;
        Self {
            id: executor_id(&tx.worker, tx.timestamp),
            timestamp: tx.timestamp,
            keys: tx.keys.clone().normalized(),
            worker: tx.worker.clone(),
            issuer: tx.issuer.clone(),
            shards: config.shared.shards.clone(),
            atomic: config.shared.options.write_mode == WriteMode::Atomic,
            resend: config.shared.options.resend.is_some(),
            report_bytes: config.shared.options.report_bytes,
            asked_again: 0,
            reports: Vec::new(),
            requests: BTreeMap::new(),
            writes: BTreeMap::new(),
            requested: Vec::new(),
            reap_set: false,
            stopped: false,
        }
    }

    pub fn finished(&self) -> bool {
        !self.reports.is_empty()
    }

    /// The report, once finished.
    pub fn report(&self) -> Option<&ExecutorFinished> {
        self.reports.first().map(|(_, r)| r)
    }

    /// Checks the effect of one trigger; `reap` says whether the trigger
    /// fired the `Reap` timer.
    pub fn effect(&mut self, effect: &Effect<Executor>, reap: bool) -> Result<(), String> {
        let was_finished = self.finished();
        if self.stopped {
            return Err("a trigger reached an executor its host was told to remove".into());
        }
        if was_finished && (!effect.send.is_empty() || !effect.timers.is_empty()) {
            let kinds: Vec<&str> = effect.send.iter().map(|e| kind(&e.payload)).collect();
            return Err(format!("acted after its finish: sent {kinds:?}, timer ops {:?}", effect.timers));
        }
        if effect.stop && !(was_finished && reap) {
            return Err(format!("asked to be removed (finished: {was_finished}, reap fired: {reap})"));
        }
        if was_finished && reap && self.reap_set && !effect.stop {
            return Err("the Reap timer fired after the finish and the executor did not stop".into());
        }
        self.stopped = effect.stop;
        let mut releases = 0;
        let mut atomic_writes = 0;
        for envelope in &effect.send {
            match self.message(envelope)? {
                Sent::Release => releases += 1,
                Sent::Write => atomic_writes += usize::from(self.atomic),
                Sent::Other => {}
            }
        }
        let finishing = !was_finished && self.finished();
        if !finishing && (releases > 0 || atomic_writes > 0) {
            return Err(format!(
                "{releases} releases and {atomic_writes} atomic writes sent before the transaction finished"
            ));
        }
        for op in &effect.timers {
            match op {
                TimerOp::Set(timer) if timer.handle == ExecutorTimer::Reap => {
                    if !finishing {
                        return Err("set the Reap timer before finishing".into());
                    }
                    self.reap_set = true;
                }
                _ => {}
            }
        }
        if finishing && !self.reap_set {
            return Err("finished without setting the Reap timer: its host would never remove it".into());
        }
        Ok(())
    }

    fn message(&mut self, envelope: &Envelope<Message>) -> Result<Sent, String> {
        if envelope.sender != self.id || envelope.mailbox != 0 {
            return Err(format!(
                "sent from {} mailbox {}, not {} mailbox 0",
                envelope.sender, envelope.mailbox, self.id
            ));
        }
        let to_owner = |key: &[u8]| -> Result<(), String> {
            let owner = self.shards.shard_for(key);
            if &envelope.target == owner {
                Ok(())
            } else {
                Err(format!(
                    "{} of {} sent to {}, not its shard {owner}",
                    kind(&envelope.payload),
                    show(key),
                    envelope.target
                ))
            }
        };
        let ours = |timestamp: Timestamp| -> Result<(), String> {
            if timestamp == self.timestamp {
                Ok(())
            } else {
                Err(format!("sent timestamp {timestamp}, not its own {}", self.timestamp))
            }
        };
        match &envelope.payload {
            Message::KvsReadRequest { timestamp, key, actual } => {
                ours(*timestamp)?;
                to_owner(key)?;
                let again = *actual && (contains(&self.keys.eager_read_keys, key) || self.requested.contains(key));
                if again {
                    if !self.resend {
                        return Err(format!("asked for {} again without resend", show(key)));
                    }
                    self.asked_again += 1;
                    return Ok(Sent::Other);
                }
                if !contains(&self.keys.lazy_read_keys, key) {
                    return Err(format!("read request (actual: {actual}) for {}, not a lazy key", show(key)));
                }
                self.requests.entry(key.clone()).or_default().push(*actual);
                if *actual {
                    self.requested.push(key.clone());
                    Ok(Sent::Other)
                } else {
                    Ok(Sent::Release)
                }
            }
            Message::KvsWrite { timestamp, key, datum } => {
                ours(*timestamp)?;
                to_owner(key)?;
                if !contains(&self.keys.will_write_keys, key) && !contains(&self.keys.may_write_keys, key) {
                    return Err(format!("write of {}, not a declared write key", show(key)));
                }
                self.writes.entry(key.clone()).or_default().push(datum.clone());
                Ok(if datum.is_none() { Sent::Release } else { Sent::Write })
            }
            Message::ExecutorFinished(report) => {
                if envelope.target != self.worker && envelope.target != self.issuer {
                    return Err(format!("ExecutorFinished to {}, neither worker nor issuer", envelope.target));
                }
                ours(report.timestamp)?;
                self.reports.push((envelope.target.clone(), ExecutorFinished::clone(report)));
                Ok(Sent::Other)
            }
            other => Err(format!("sent a {}", kind(other))),
        }
    }

    /// The end-of-run checks; the executor must have finished.
    pub fn check(&self) -> Result<&ExecutorFinished, String> {
        let Some((_, report)) = self.reports.first() else {
            return Err("never finished".into());
        };
        let to = |who: &EngineId| self.reports.iter().filter(|(t, _)| t == who).count();
        let expected = if self.worker == self.issuer { 1 } else { 2 };
        if self.reports.len() != expected || to(&self.worker) != 1 || to(&self.issuer) != 1 {
            let targets: Vec<String> = self.reports.iter().map(|(t, _)| t.to_string()).collect();
            return Err(format!("ExecutorFinished sent to {targets:?}; expected once to the worker and the issuer"));
        }
        if self.reports.iter().any(|(_, r)| r != report) {
            return Err("the worker's and the issuer's ExecutorFinished differ".into());
        }
        // A lazy key fed was asked for once; one not fed is released once,
        // asked for before or not (a request may be lost across processes).
        for key in &self.keys.lazy_read_keys {
            let sent = self.requests.get(key).map_or(&[][..], Vec::as_slice);
            let fed = report.values_read.iter().any(|(k, _)| k == key);
            let expected = match sent {
                [true] => fed,
                [false] | [true, false] => !fed,
                _ => false,
            };
            if !expected {
                let fed = if fed { "fed" } else { "not fed" };
                return Err(format!("lazy key {} ({fed}) got read requests {sent:?}", show(key)));
            }
        }
        let mut written: Vec<(Key, Datum)> = Vec::new();
        for key in self.keys.will_write_keys.iter().chain(&self.keys.may_write_keys) {
            let sent = self.writes.get(key).map_or(&[][..], Vec::as_slice);
            match sent {
                [Some(datum)] => written.push((key.clone(), datum.clone())),
                [None] => {}
                _ => return Err(format!("write key {} got {} writes, not exactly one", show(key), sent.len())),
            }
        }
        written.sort();
        if report.success != report.failure.is_none() {
            return Err(format!("success {} with failure {:?}", report.success, report.failure));
        }
        if self.atomic && !report.success && !written.is_empty() {
            return Err("a failed atomic transaction wrote".into());
        }
        if report.values_written != written {
            return Err(format!(
                "values_written lists {} keys, {} were written",
                report.values_written.len(),
                written.len()
            ));
        }
        if let Some(limit) = self.report_bytes {
            use executor_host::report_entry_bytes as entry;
            let read = report.values_read.iter().map(|(k, d)| entry(k, d.as_deref()));
            let size: u64 = read.chain(report.values_written.iter().map(|(k, d)| entry(k, Some(d)))).sum();
            if size > limit {
                return Err(format!("a report of {size} bytes, past its bound of {limit}"));
            }
        }
        if !report.values_read.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err("values_read not in strict key order".into());
        }
        for (key, _) in &report.values_read {
            if !contains(&self.keys.eager_read_keys, key) && !self.requested.contains(key) {
                return Err(format!("fed {}, neither eager nor requested", show(key)));
            }
        }
        Ok(report)
    }

    /// Checks the values fed against what the owning shards sent.
    pub fn reads(&self, sent: &BTreeMap<Key, Option<Datum>>) -> Result<(), String> {
        let report = self.check()?;
        for (key, value) in &report.values_read {
            match sent.get(key) {
                Some(v) if v == value => {}
                other => {
                    return Err(format!("fed {} = {value:?}, but its shard sent {other:?}", show(key)));
                }
            }
        }
        Ok(())
    }
}

enum Sent {
    Release,
    Write,
    Other,
}
