//! The reference shard against a model of its protocol, message by
//! message.
//!
//! The model: a lock is accepted when its timestamp is above both
//! watermarks and no lock holds that timestamp yet (the same keys again
//! are acknowledged again; other keys are dropped); a read request or
//! write counts only from the executor the lock registered, for a key it
//! declared (and not yet collected). A read request wants a waiting lazy
//! read (`actual`) or releases it; asked again for a served read (eager or
//! lazy) it serves it again; asked again for a read still due, or released
//! again, it is a no-op; anything else is dropped. A write resolves a
//! pending write; the same resolution again is a no-op; another one is
//! refused and listed as a conflict. Watermarks max-merge; everything else
//! is dropped and counted. Each key's resolved accesses below the
//! heard-all-reads watermark are collapsed into its base value whenever
//! the shard touches the key (a new lock on it, a read request or write
//! that changed it, a watermark passing a lock on it). After every message
//! the shard must have sent exactly the acknowledgements due and exactly
//! the reads that just became servable: a read at `t` is served to the
//! executor of the lock that declared it, when it is eager or requested,
//! `t` is within the heard-all-writes watermark and no write to the key
//! before `t` is pending, with the latest value written before `t` (or the
//! base value, or absent); its dropped messages and conflicts must be the
//! model's. Then the run is completed honestly (watermarks past every lock,
//! every write and lazy read resolved): no marker may stay pending, and
//! the latest values must be the model's.

use std::collections::BTreeMap;

use executor_host::engine::{Envelope, Instance, Trigger};
use executor_host::{Datum, EngineId, Key, KeySets, Message, Timestamp, executor_id};

use super::common::{self, datum, key_sets, stranger};
use super::{Fuzzer, Rng, Stats};
use executor_testkit::shard::Shard;

#[derive(Debug)]
pub struct ShardFuzzer;

impl Fuzzer for ShardFuzzer {
    fn case(&mut self, seed: u64, stats: &mut Stats) -> Result<(), String> {
        let mut rng = Rng::new(seed);
        let universe = common::universe(&mut rng, 6);
        let initial: BTreeMap<Key, Datum> = universe
            .iter()
            .filter_map(|k| if rng.chance(40) { datum(&mut rng).map(|d| (k.clone(), d)) } else { None })
            .collect();
        let id = EngineId::local("shard-0");
        let mut case = Case {
            shard: Shard::instance(id, initial.clone()),
            model: Model { base: initial, ..Model::default() },
            rng,
            universe,
            next: 1,
            now: std::time::Duration::ZERO,
        };
        let events = 10 + case.rng.below(250);
        for _ in 0..events {
            let (sender, trigger) = case.event();
            case.deliver(stats, sender, trigger)?;
        }
        case.complete(stats)?;
        let pending = case.shard.env.local.pending_markers();
        if pending != 0 {
            return Err(format!("{pending} markers pending after an honest completion"));
        }
        let latest = case.shard.env.local.latest();
        let expected = case.model.latest();
        if latest != expected {
            return Err(format!("latest values {latest:?}, model {expected:?}"));
        }
        stats.outcome(format!("shard:locks {}", bucket(case.model.locks.len())));
        stats.outcome(format!("shard:dropped {}", bucket(case.model.dropped as usize)));
        stats.outcome(format!("shard:served again {}", bucket(case.model.served_again)));
        stats.outcome(format!("shard:conflicts {}", bucket(case.model.conflicts.len())));
        Ok(())
    }
}

fn bucket(n: usize) -> String {
    match n {
        0 => "0".into(),
        1..=9 => "1-9".into(),
        10..=99 => "10-99".into(),
        _ => "100+".into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    Waiting,
    Requested,
    Served,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Write {
    Pending,
    Written(Datum),
    Released,
}

#[derive(Debug, Default)]
struct Access {
    read: Option<(bool, Read)>,
    write: Option<Write>,
}

impl Access {
    fn resolved(&self) -> bool {
        !matches!(self.read, Some((_, Read::Waiting | Read::Requested))) && self.write != Some(Write::Pending)
    }
}

#[derive(Debug)]
struct Lock {
    executor: EngineId,
    declared: Vec<Key>,
    /// The accesses not collected yet.
    access: BTreeMap<Key, Access>,
}

#[derive(Debug, Default)]
struct Model {
    hw: Timestamp,
    hr: Timestamp,
    locks: BTreeMap<Timestamp, Lock>,
    /// Each key's value before its accesses still listed: the initial
    /// value, then what collection folded in.
    base: BTreeMap<Key, Datum>,
    dropped: u64,
    conflicts: Vec<(Timestamp, Key)>,
    /// Reads asked for again after they were served.
    served_again: usize,
}

/// What the shard sends, comparable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Out {
    Ack { to: EngineId, timestamp: Timestamp },
    Read { to: EngineId, timestamp: Timestamp, key: Key, data: Option<Datum> },
}

impl Model {
    /// Applies one message from `sender`; returns the acknowledgements it
    /// owes and the keys the shard touches (and so collects).
    fn message(&mut self, sender: &EngineId, payload: &Message) -> (Vec<Out>, Vec<Key>) {
        match payload {
            Message::KvsAcquireLock { timestamp, keys, worker, executor } => {
                let keys = keys.clone().normalized();
                let declared: Vec<Key> = keys.all_keys().into_iter().cloned().collect();
                if *timestamp <= self.hw || *timestamp <= self.hr {
                    self.dropped += 1;
                    return (Vec::new(), Vec::new());
                }
                if let Some(lock) = self.locks.get(timestamp) {
                    if lock.declared == declared {
                        return (vec![Out::Ack { to: worker.clone(), timestamp: *timestamp }], Vec::new());
                    }
                    self.dropped += 1;
                    return (Vec::new(), Vec::new());
                }
                let mut access: BTreeMap<Key, Access> = BTreeMap::new();
                for key in &keys.eager_read_keys {
                    access.entry(key.clone()).or_default().read = Some((true, Read::Waiting));
                }
                for key in &keys.lazy_read_keys {
                    access.entry(key.clone()).or_default().read = Some((false, Read::Waiting));
                }
                for key in keys.will_write_keys.iter().chain(&keys.may_write_keys) {
                    access.entry(key.clone()).or_default().write = Some(Write::Pending);
                }
                let touched = declared.clone();
                self.locks.insert(*timestamp, Lock { executor: executor.clone(), declared, access });
                (vec![Out::Ack { to: worker.clone(), timestamp: *timestamp }], touched)
            }
            Message::KvsReadRequest { timestamp, key, actual } => {
                let Some(access) = self.own_access(sender, *timestamp, key) else { return (Vec::new(), Vec::new()) };
                let Some((eager, status)) = access.read.as_mut() else {
                    self.dropped += 1;
                    return (Vec::new(), Vec::new());
                };
                match (*actual, *eager, *status) {
                    (true, false, Read::Waiting) => *status = Read::Requested,
                    (false, false, Read::Waiting | Read::Requested) => *status = Read::Cancelled,
                    (true, eager, Read::Served) => {
                        *status = if eager { Read::Waiting } else { Read::Requested };
                        self.served_again += 1;
                    }
                    (true, true, Read::Waiting)
                    | (true, false, Read::Requested)
                    | (false, false, Read::Cancelled | Read::Served) => {
                        return (Vec::new(), Vec::new());
                    }
                    _ => {
                        self.dropped += 1;
                        return (Vec::new(), Vec::new());
                    }
                }
                (Vec::new(), vec![key.clone()])
            }
            Message::KvsWrite { timestamp, key, datum } => {
                let Some(access) = self.own_access(sender, *timestamp, key) else { return (Vec::new(), Vec::new()) };
                let Some(status) = access.write.as_mut() else {
                    self.dropped += 1;
                    return (Vec::new(), Vec::new());
                };
                match (&*status, datum) {
                    (Write::Pending, datum) => {
                        *status = datum.clone().map_or(Write::Released, Write::Written);
                        (Vec::new(), vec![key.clone()])
                    }
                    (Write::Written(written), Some(datum)) if written == datum => (Vec::new(), Vec::new()),
                    (Write::Released, None) => (Vec::new(), Vec::new()),
                    _ => {
                        self.conflicts.push((*timestamp, key.clone()));
                        (Vec::new(), Vec::new())
                    }
                }
            }
            Message::UpdateSeenAll { timestamp, write } => {
                let mark = if *write { &mut self.hw } else { &mut self.hr };
                let before = *mark;
                *mark = before.max(*timestamp);
                let after = *mark;
                if after == before {
                    return (Vec::new(), Vec::new());
                }
                let passed = self.locks.range(before + 1..=after);
                (Vec::new(), passed.flat_map(|(_, lock)| lock.declared.iter().cloned()).collect())
            }
            _ => {
                self.dropped += 1;
                (Vec::new(), Vec::new())
            }
        }
    }

    /// The access of `timestamp` to `key` if `sender` is the executor of
    /// its lock and it is still listed; else the message is dropped.
    fn own_access(&mut self, sender: &EngineId, timestamp: Timestamp, key: &Key) -> Option<&mut Access> {
        let access = self
            .locks
            .get_mut(&timestamp)
            .filter(|lock| &lock.executor == sender)
            .and_then(|lock| lock.access.get_mut(key));
        if access.is_none() {
            self.dropped += 1;
        }
        access
    }

    /// Collapses `key`'s resolved accesses below the heard-all-reads
    /// watermark, oldest first, into its base value.
    fn collect(&mut self, key: &Key) {
        for (timestamp, lock) in &mut self.locks {
            if *timestamp >= self.hr {
                break;
            }
            let Some(access) = lock.access.get(key) else { continue };
            if !access.resolved() {
                break;
            }
            if let Some(Write::Written(datum)) = &access.write {
                self.base.insert(key.clone(), datum.clone());
            }
            lock.access.remove(key);
        }
    }

    /// Marks served, and returns, every read servable now.
    fn serve(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        // Per key: the value so far, and whether an earlier write is pending.
        let mut keys: BTreeMap<&Key, (Option<&Datum>, bool)> = BTreeMap::new();
        for (timestamp, lock) in &mut self.locks {
            for (key, access) in &mut lock.access {
                let (value, blocked) = keys.entry(key).or_insert_with(|| (self.base.get(key), false));
                if *timestamp <= self.hw
                    && !*blocked
                    && let Some((eager, status)) = &mut access.read
                    && matches!((*eager, *status), (true, Read::Waiting) | (false, Read::Requested))
                {
                    *status = Read::Served;
                    out.push(Out::Read {
                        to: lock.executor.clone(),
                        timestamp: *timestamp,
                        key: key.clone(),
                        data: value.cloned(),
                    });
                }
                match &access.write {
                    Some(Write::Pending) => *blocked = true,
                    Some(Write::Written(datum)) => *value = Some(datum),
                    _ => {}
                }
            }
        }
        out
    }

    fn latest(&self) -> BTreeMap<Key, Datum> {
        let mut latest = self.base.clone();
        for lock in self.locks.values() {
            for (key, access) in &lock.access {
                if let Some(Write::Written(datum)) = &access.write {
                    latest.insert(key.clone(), datum.clone());
                }
            }
        }
        latest
    }
}

struct Case {
    shard: Instance<Shard>,
    model: Model,
    rng: Rng,
    universe: Vec<Key>,
    /// The next timestamp an orderly worker would lock.
    next: Timestamp,
    now: std::time::Duration,
}

impl Case {
    fn deliver(&mut self, stats: &mut Stats, sender: EngineId, trigger: Trigger<Message, ()>) -> Result<(), String> {
        stats.messages += 1;
        let mut expected = match &trigger {
            Trigger::Message { envelope, .. } => {
                let (acks, mut touched) = self.model.message(&envelope.sender, &envelope.payload);
                touched.sort();
                touched.dedup();
                for key in &touched {
                    self.model.collect(key);
                }
                acks
            }
            Trigger::Elapsed { .. } => {
                self.model.dropped += 1;
                Vec::new()
            }
        };
        expected.extend(self.model.serve());
        let effect = self.shard.handle(trigger.clone());
        let mut actual = Vec::new();
        for envelope in effect.send {
            if envelope.sender != self.shard.id || envelope.mailbox != 0 {
                return Err(format!("sent from {} mailbox {}", envelope.sender, envelope.mailbox));
            }
            actual.push(match envelope.payload {
                Message::KvsLockAcquired { timestamp } => Out::Ack { to: envelope.target, timestamp },
                Message::KvsRead { timestamp, key, data } => Out::Read { to: envelope.target, timestamp, key, data },
                other => return Err(format!("the shard sent a {}", common::kind(&other))),
            });
        }
        actual.sort();
        expected.sort();
        if actual != expected {
            let what = match &trigger {
                Trigger::Message { envelope, .. } => format!("{} from {sender}", describe(&envelope.payload)),
                Trigger::Elapsed { .. } => "a timer".into(),
            };
            return Err(format!("after {what}: sent {}, model expects {}", outs(&actual), outs(&expected)));
        }
        let state = &self.shard.env.local;
        if state.dropped != self.model.dropped {
            return Err(format!("dropped {} messages, model {}", state.dropped, self.model.dropped));
        }
        if state.conflicting_writes != self.model.conflicts {
            return Err(format!("conflicting writes {:?}, model {:?}", state.conflicting_writes, self.model.conflicts));
        }
        let listed = self.model.locks.values().map(|l| l.access.len()).sum::<usize>();
        if state.listed_accesses() != listed {
            return Err(format!("{} accesses listed, model {listed}", state.listed_accesses()));
        }
        if state.watermarks() != (self.model.hw, self.model.hr) {
            return Err(format!("watermarks {:?}, model {:?}", state.watermarks(), (self.model.hw, self.model.hr)));
        }
        Ok(())
    }

    fn envelope(&self, sender: EngineId, payload: Message) -> Trigger<Message, ()> {
        Trigger::Message { envelope: Envelope::new(sender, self.shard.id.clone(), payload), at: self.now }
    }

    /// A timestamp some lock holds, or a random one.
    fn locked_ts(&mut self) -> Timestamp {
        let held: Vec<Timestamp> = self.model.locks.keys().copied().collect();
        match self.rng.pick(&held) {
            Some(ts) if self.rng.chance(85) => *ts,
            _ => common::timestamp_near(&mut self.rng, self.next),
        }
    }

    /// Who sends a read request or write for `timestamp`: mostly the
    /// executor its lock registered, else the worker's executor of that
    /// timestamp or a stranger.
    fn sender_for(&mut self, timestamp: Timestamp) -> EngineId {
        match self.model.locks.get(&timestamp) {
            Some(lock) if self.rng.chance(85) => lock.executor.clone(),
            _ if self.rng.chance(50) => executor_id(&EngineId::local("worker"), timestamp),
            _ => stranger(&mut self.rng),
        }
    }

    /// A key of the lock at `timestamp` that `want` accepts, or any key.
    fn key_of(&mut self, timestamp: Timestamp, want: impl Fn(&Access) -> bool) -> Key {
        let candidates: Vec<Key> = self
            .model
            .locks
            .get(&timestamp)
            .map(|l| l.access.iter().filter(|(_, a)| want(a)).map(|(k, _)| k.clone()).collect())
            .unwrap_or_default();
        match self.rng.pick(&candidates) {
            Some(key) if self.rng.chance(80) => key.clone(),
            _ => self.rng.pick(&self.universe).cloned().unwrap_or_default(),
        }
    }

    fn event(&mut self) -> (EngineId, Trigger<Message, ()>) {
        let worker = EngineId::local("worker");
        self.now += std::time::Duration::from_millis(self.rng.below(10));
        let (sender, payload) = match self.rng.below(100) {
            0..=29 => {
                let timestamp = match self.rng.below(20) {
                    0..=11 => {
                        self.next += 1;
                        self.next - 1
                    }
                    12..=15 => self.locked_ts(),
                    _ => common::timestamp_near(&mut self.rng, self.next),
                };
                // A repeat with the same keys, or new keys.
                let keys = match self.model.locks.get(&timestamp) {
                    Some(lock) if self.rng.chance(50) => {
                        let mut keys = KeySets::default();
                        for (key, access) in &lock.access {
                            match access.read {
                                Some((true, _)) => keys.eager_read_keys.push(key.clone()),
                                Some((false, _)) => keys.lazy_read_keys.push(key.clone()),
                                None => {}
                            }
                            if access.write.is_some() {
                                keys.will_write_keys.push(key.clone());
                            }
                        }
                        keys
                    }
                    _ => key_sets(&mut self.rng, &self.universe, 60),
                };
                let to = if self.rng.chance(90) { worker.clone() } else { stranger(&mut self.rng) };
                let executor = if self.rng.chance(90) { executor_id(&to, timestamp) } else { stranger(&mut self.rng) };
                (to.clone(), Message::KvsAcquireLock { timestamp, keys: Box::new(keys), worker: to, executor })
            }
            30..=44 => {
                let timestamp = self.locked_ts();
                // Mostly lazy reads; eager ones asked for again too.
                let key = if self.rng.chance(60) {
                    self.key_of(timestamp, |a| matches!(a.read, Some((false, _))))
                } else {
                    self.key_of(timestamp, |a| a.read.is_some())
                };
                let actual = self.rng.chance(75);
                (self.sender_for(timestamp), Message::KvsReadRequest { timestamp, key, actual })
            }
            45..=64 => {
                let timestamp = self.locked_ts();
                let key = self.key_of(timestamp, |a| a.write.is_some());
                // Half the time the resolution recorded again (a re-run
                // executor), else any.
                let recorded =
                    self.model.locks.get(&timestamp).and_then(|l| l.access.get(&key)).and_then(|a| match &a.write {
                        Some(Write::Written(datum)) => Some(Some(datum.clone())),
                        Some(Write::Released) => Some(None),
                        _ => None,
                    });
                let datum = match recorded {
                    Some(recorded) if self.rng.chance(50) => recorded,
                    _ => datum(&mut self.rng),
                };
                (self.sender_for(timestamp), Message::KvsWrite { timestamp, key, datum })
            }
            65..=79 => {
                let current = self.model.hw.max(self.model.hr);
                let timestamp = match self.rng.below(10) {
                    0..=5 => current.saturating_add(1 + self.rng.below(3)).min(self.next),
                    6 => current.saturating_sub(self.rng.below(5)),
                    7 if self.rng.chance(10) => u64::MAX,
                    _ => self.rng.below(self.next.saturating_add(2)),
                };
                (worker, Message::UpdateSeenAll { timestamp, write: self.rng.chance(50) })
            }
            80..=94 => {
                let mut payload = common::any_message(&mut self.rng, &self.universe, self.next);
                if matches!(
                    payload,
                    Message::KvsAcquireLock { .. }
                        | Message::KvsReadRequest { .. }
                        | Message::KvsWrite { .. }
                        | Message::UpdateSeenAll { .. }
                ) {
                    payload = Message::KvsLockAcquired { timestamp: self.next };
                }
                (stranger(&mut self.rng), payload)
            }
            _ => {
                let timers = vec![(); self.rng.index(3)];
                return (worker, Trigger::Elapsed { timers, at: self.now });
            }
        };
        let trigger = self.envelope(sender.clone(), payload);
        (sender, trigger)
    }

    /// Completes the protocol honestly: watermarks past every lock, then
    /// every pending write written or released and every waiting lazy read
    /// requested or cancelled.
    fn complete(&mut self, stats: &mut Stats) -> Result<(), String> {
        let worker = EngineId::local("worker");
        let last = self.model.locks.keys().next_back().copied().unwrap_or(0);
        for write in [true, false] {
            let trigger = self.envelope(worker.clone(), Message::UpdateSeenAll { timestamp: last, write });
            self.deliver(stats, worker.clone(), trigger)?;
        }
        let mut todo: Vec<(EngineId, Message)> = Vec::new();
        for (timestamp, lock) in &self.model.locks {
            let from = &lock.executor;
            for (key, access) in &lock.access {
                if access.write == Some(Write::Pending) {
                    let datum = if self.rng.chance(50) { Some(format!("{timestamp}").into_bytes()) } else { None };
                    todo.push((from.clone(), Message::KvsWrite { timestamp: *timestamp, key: key.clone(), datum }));
                }
                if access.read == Some((false, Read::Waiting)) {
                    let actual = self.rng.chance(50);
                    let request = Message::KvsReadRequest { timestamp: *timestamp, key: key.clone(), actual };
                    todo.push((from.clone(), request));
                }
            }
        }
        // In any order, from the executor of each lock.
        while !todo.is_empty() {
            let (from, payload) = todo.swap_remove(self.rng.index(todo.len()));
            let trigger = self.envelope(from.clone(), payload);
            self.deliver(stats, from, trigger)?;
        }
        Ok(())
    }
}

fn describe(message: &Message) -> String {
    match message {
        Message::KvsAcquireLock { timestamp, keys, .. } => {
            format!("KvsAcquireLock {{ timestamp: {timestamp}, keys: {} }}", keys.all_keys().len())
        }
        Message::KvsReadRequest { timestamp, key, actual } => {
            format!("KvsReadRequest {{ {timestamp}, {}, actual: {actual} }}", common::show(key))
        }
        Message::KvsWrite { timestamp, key, datum } => {
            format!("KvsWrite {{ {timestamp}, {}, some: {} }}", common::show(key), datum.is_some())
        }
        other => common::kind(other).to_string(),
    }
}

fn outs(outs: &[Out]) -> String {
    let items: Vec<String> = outs
        .iter()
        .map(|o| match o {
            Out::Ack { to, timestamp } => format!("ack {timestamp} to {to}"),
            Out::Read { to, timestamp, key, data } => {
                format!("read {timestamp} {} = {:?} to {to}", common::show(key), data.as_ref().map(|d| d.len()))
            }
        })
        .collect();
    format!("[{}]", items.join(", "))
}
