//! The mempool worker against a model, message by message.
//!
//! The model: each `TransactionRequest` gets the next timestamp from 1 and
//! sends `KvsAcquireLock` to each shard owning a declared key (with that
//! shard's keys, normalized); a `KvsLockAcquired` counts once, only from a
//! shard that was asked and has not answered; when the last answers (or at
//! once, for a transaction without keys) the executor is spawned; an
//! `ExecutorFinished` counts once, only from the executor's real id, for a
//! known transaction; everything else is dropped and counted. Each shard
//! is told, each only when it moved (and for each shard in this order),
//! heard-all-writes when the locked prefix grew, and heard-all-reads when
//! the smaller of the locked prefix and the finished prefix grew. After
//! the traffic, every missing acknowledgement is sent: every transaction
//! must then have been spawned exactly once and the watermark must cover
//! them all; then every missing report: the read watermark must too.
//!
//! Half the cases bound the worker's window (1 to 4 transactions ordered
//! and not finished): a request beyond it waits, unordered, and the
//! reports that free the window order the waiting ones, in arrival order,
//! after telling the shards the read watermark. Those cases go on
//! acknowledging and reporting until nothing waits.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::num::NonZeroU64;
use std::sync::Arc;

use executor_host::engine::{Envelope, Instance, Trigger};
use executor_host::{EngineId, ExecutorFinished, Key, KeySets, Message, ShardMap, Timestamp, executor_id};
use executor_testkit::harness::HashShards;
use executor_testkit::worker::{Ordered, SpawnExecutor, Worker, WorkerConfig};

use super::common::{self, key_sets, stranger};
use super::{Fuzzer, Rng, Stats};

#[derive(Debug)]
pub struct WorkerFuzzer;

impl Fuzzer for WorkerFuzzer {
    fn case(&mut self, seed: u64, stats: &mut Stats) -> Result<(), String> {
        let mut rng = Rng::new(seed);
        let shards = Arc::new(HashShards::new(1 + rng.index(4)));
        let universe = common::universe(&mut rng, 8);
        let id = EngineId::local("worker");
        let config = WorkerConfig { shards: shards.clone(), all_shards: shards.all().to_vec() };
        // Drawn apart, so that the cases of earlier seeds (the corpus's)
        // stay as they were.
        let mut apart = Rng::new(seed ^ 0x7769_6e64_6f77_0000);
        let window = if apart.chance(50) { NonZeroU64::new(1 + apart.below(4)) } else { None };
        let worker = match window {
            Some(window) => Worker::windowed(id.clone(), config, window),
            None => Worker::instance(id.clone(), config),
        };
        let mut case = Case {
            worker,
            shards,
            model: Model { next: 1, window: window.map(NonZeroU64::get), ..Model::default() },
            rng,
            universe,
            id,
        };
        let events = 10 + case.rng.below(200);
        for _ in 0..events {
            let (sender, trigger) = case.event();
            case.deliver(stats, &sender, &trigger)?;
        }
        // Every missing acknowledgement, then every missing report, each
        // in random order, until no request waits for the window.
        loop {
            let mut missing: Vec<(Timestamp, EngineId)> = case
                .model
                .txs
                .iter()
                .flat_map(|(ts, tx)| tx.waiting.iter().map(|shard| (*ts, shard.clone())))
                .collect();
            while !missing.is_empty() {
                let (timestamp, shard) = missing.swap_remove(case.rng.index(missing.len()));
                let trigger = case.message(shard.clone(), Message::KvsLockAcquired { timestamp });
                case.deliver(stats, &shard, &trigger)?;
            }
            let count = case.model.txs.len() as u64;
            if case.model.txs.values().any(|tx| !tx.spawned) || case.worker.env.local.watermark != count {
                return Err(format!(
                    "after every acknowledgement: watermark {} of {count} transactions",
                    case.worker.env.local.watermark
                ));
            }
            let mut unfinished: Vec<Timestamp> =
                case.model.txs.keys().filter(|ts| !case.model.finished.contains_key(ts)).copied().collect();
            while !unfinished.is_empty() {
                let timestamp = unfinished.swap_remove(case.rng.index(unfinished.len()));
                let report = common::report(&mut case.rng, timestamp);
                let sender = executor_id(&case.id, timestamp);
                let trigger = case.message(sender.clone(), Message::ExecutorFinished(report.into()));
                case.deliver(stats, &sender, &trigger)?;
            }
            if case.model.queued.is_empty() && case.model.finished.len() == case.model.txs.len() {
                break;
            }
        }
        let count = case.model.txs.len() as u64;
        if case.worker.env.local.read_watermark != count || case.worker.env.local.queued() != 0 {
            return Err(format!(
                "after every report: read watermark {} of {count} transactions, {} requests waiting",
                case.worker.env.local.read_watermark,
                case.worker.env.local.queued()
            ));
        }
        if case.model.window.is_some() {
            stats.outcome("worker:windowed");
        }
        stats.outcome(format!("worker:transactions {}", if count < 10 { "<10" } else { "10+" }));
        Ok(())
    }
}

#[derive(Debug)]
struct Tx {
    tx: Ordered,
    /// Shards asked and yet to answer.
    waiting: BTreeSet<EngineId>,
    spawned: bool,
}

#[derive(Debug, Default)]
struct Model {
    next: Timestamp,
    txs: BTreeMap<Timestamp, Tx>,
    watermark: Timestamp,
    finished: BTreeMap<Timestamp, std::sync::Arc<ExecutorFinished>>,
    /// The read watermark last sent.
    read_watermark: Timestamp,
    dropped: u64,
    /// Transactions ordered and not finished, at most.
    window: Option<u64>,
    /// Requests waiting for the window, in arrival order.
    queued: VecDeque<(Ordered, Option<u64>)>,
}

impl Model {
    /// The largest `N` such that every transaction up to `N` finished.
    fn finished_prefix(&self) -> Timestamp {
        let mut n = 0;
        while self.finished.contains_key(&(n + 1)) {
            n += 1;
        }
        n
    }

    fn window_full(&self) -> bool {
        let in_flight = self.txs.len() - self.finished.len();
        self.window.is_some_and(|window| in_flight as u64 >= window)
    }
}

struct Case {
    worker: Instance<Worker>,
    shards: Arc<HashShards>,
    model: Model,
    rng: Rng,
    universe: Vec<Key>,
    id: EngineId,
}

/// The keys of `keys` that `shard` owns, set by set, in order.
fn part(keys: &KeySets, shards: &HashShards, shard: &EngineId) -> KeySets {
    let own = |set: &Vec<Key>| -> Vec<Key> { set.iter().filter(|k| shards.shard_for(k) == shard).cloned().collect() };
    KeySets {
        lazy_read_keys: own(&keys.lazy_read_keys),
        eager_read_keys: own(&keys.eager_read_keys),
        will_write_keys: own(&keys.will_write_keys),
        may_write_keys: own(&keys.may_write_keys),
    }
}

impl Case {
    fn message(&self, sender: EngineId, payload: Message) -> Trigger<Message, ()> {
        Trigger::Message { envelope: Envelope::new(sender, self.id.clone(), payload), at: std::time::Duration::ZERO }
    }

    /// What the model expects for one trigger: messages and spawns.
    fn expect(
        &mut self,
        sender: &EngineId,
        trigger: &Trigger<Message, ()>,
    ) -> (Vec<Envelope<Message>>, Vec<SpawnExecutor>) {
        let mut send = Vec::new();
        let Trigger::Message { envelope, .. } = trigger else {
            // The worker sets no timer: one elapsing is dropped and counted.
            self.model.dropped += 1;
            return (send, Vec::new());
        };
        let mut spawn = Vec::new();
        match &envelope.payload {
            Message::TransactionRequest { executable, keys, tag, .. } => {
                let tx =
                    Ordered { executable: executable.clone(), keys: keys.clone().normalized(), issuer: sender.clone() };
                if self.model.window_full() {
                    self.model.queued.push_back((tx, *tag));
                } else {
                    self.order(tx, *tag, &mut send, &mut spawn);
                }
            }
            Message::KvsLockAcquired { timestamp } => {
                match self.model.txs.get_mut(timestamp).filter(|tx| tx.waiting.contains(sender)) {
                    Some(tx) => {
                        tx.waiting.remove(sender);
                        if tx.waiting.is_empty() {
                            self.locked(*timestamp, &mut send, &mut spawn);
                        }
                    }
                    None => self.model.dropped += 1,
                }
            }
            Message::ExecutorFinished(report)
                if *sender == executor_id(&self.id, report.timestamp)
                    && self.model.txs.contains_key(&report.timestamp)
                    && !self.model.finished.contains_key(&report.timestamp) =>
            {
                self.model.finished.insert(report.timestamp, report.clone());
                self.announce(false, &mut send);
                while !self.model.window_full()
                    && let Some((tx, tag)) = self.model.queued.pop_front()
                {
                    self.order(tx, tag, &mut send, &mut spawn);
                }
            }
            _ => self.model.dropped += 1,
        }
        (send, spawn)
    }

    /// The next timestamp for a request: the issuer told which, if it
    /// tagged the request; its locks, or at once its spawn.
    fn order(
        &mut self,
        tx: Ordered,
        tag: Option<u64>,
        send: &mut Vec<Envelope<Message>>,
        spawn: &mut Vec<SpawnExecutor>,
    ) {
        let timestamp = self.model.next;
        self.model.next += 1;
        if let Some(tag) = tag {
            let payload = Message::TransactionOrdered { tag, timestamp };
            send.push(Envelope::new(self.id.clone(), tx.issuer.clone(), payload));
        }
        let owners: BTreeSet<EngineId> =
            tx.keys.all_keys().into_iter().map(|k| self.shards.shard_for(k).clone()).collect();
        for shard in &owners {
            let payload = Message::KvsAcquireLock {
                timestamp,
                keys: Box::new(part(&tx.keys, &self.shards, shard)),
                worker: self.id.clone(),
                executor: executor_id(&self.id, timestamp),
            };
            send.push(Envelope::new(self.id.clone(), shard.clone(), payload));
        }
        let done = owners.is_empty();
        self.model.txs.insert(timestamp, Tx { tx, waiting: owners, spawned: false });
        if done {
            self.locked(timestamp, send, spawn);
        }
    }

    /// Every lock of `timestamp` is held: its spawn, and the watermarks.
    fn locked(&mut self, timestamp: Timestamp, send: &mut Vec<Envelope<Message>>, spawn: &mut Vec<SpawnExecutor>) {
        let model = &mut self.model;
        let before = model.watermark;
        if let Some(tx) = model.txs.get_mut(&timestamp) {
            tx.spawned = true;
            spawn.push(SpawnExecutor { timestamp, worker: self.id.clone(), tx: tx.tx.clone() });
            while model.txs.get(&(model.watermark + 1)).is_some_and(|tx| tx.spawned) {
                model.watermark += 1;
            }
        }
        let moved = model.watermark != before;
        self.announce(moved, send);
    }

    /// Each shard, in order, told heard-all-writes if it moved and
    /// heard-all-reads if that grew.
    fn announce(&mut self, write_moved: bool, send: &mut Vec<Envelope<Message>>) {
        let model = &mut self.model;
        let read = model.watermark.min(model.finished_prefix());
        let read_moved = read > model.read_watermark;
        model.read_watermark = model.read_watermark.max(read);
        for shard in self.shards.all() {
            if write_moved {
                let payload = Message::UpdateSeenAll { timestamp: model.watermark, write: true };
                send.push(Envelope::new(self.id.clone(), shard.clone(), payload));
            }
            if read_moved {
                let payload = Message::UpdateSeenAll { timestamp: read, write: false };
                send.push(Envelope::new(self.id.clone(), shard.clone(), payload));
            }
        }
    }

    fn deliver(&mut self, stats: &mut Stats, sender: &EngineId, trigger: &Trigger<Message, ()>) -> Result<(), String> {
        stats.messages += 1;
        let (send, spawn) = self.expect(sender, trigger);
        let effect = self.worker.handle(trigger.clone());
        if effect.send != send {
            return Err(format!(
                "sent {:?}, model expects {:?}",
                effect.send.iter().map(|e| (e.target.to_string(), common::kind(&e.payload))).collect::<Vec<_>>(),
                send.iter().map(|e| (e.target.to_string(), common::kind(&e.payload))).collect::<Vec<_>>()
            ));
        }
        if effect.spawn != spawn {
            return Err(format!("spawned {:?}, model expects {:?}", effect.spawn, spawn));
        }
        let state = &self.worker.env.local;
        if state.watermark != self.model.watermark {
            return Err(format!("watermark {}, model {}", state.watermark, self.model.watermark));
        }
        if state.read_watermark != self.model.read_watermark {
            return Err(format!("read watermark {}, model {}", state.read_watermark, self.model.read_watermark));
        }
        if state.dropped != self.model.dropped {
            return Err(format!("dropped {}, model {}", state.dropped, self.model.dropped));
        }
        if state.finished != self.model.finished {
            return Err("the recorded reports differ from the model's".into());
        }
        if state.queued() != self.model.queued.len() {
            return Err(format!("{} requests waiting, model {}", state.queued(), self.model.queued.len()));
        }
        Ok(())
    }

    fn event(&mut self) -> (EngineId, Trigger<Message, ()>) {
        let known: Vec<Timestamp> = self.model.txs.keys().copied().collect();
        let timestamp = match self.rng.pick(&known) {
            Some(ts) if self.rng.chance(80) => *ts,
            _ => common::timestamp_near(&mut self.rng, self.model.next),
        };
        let (sender, payload) = match self.rng.below(100) {
            0..=24 => {
                let issuer = if self.rng.chance(70) { EngineId::local("client") } else { stranger(&mut self.rng) };
                let keys = key_sets(&mut self.rng, &self.universe, 40);
                let executable = {
                    let n = self.rng.index(16);
                    self.rng.bytes(n)
                };
                let resubmission = if self.rng.chance(10) { Some(timestamp) } else { None };
                let tag = if self.rng.chance(60) { Some(self.rng.next_u64() % 1000) } else { None };
                (issuer, Message::TransactionRequest { executable, keys: Box::new(keys), resubmission, tag })
            }
            25..=59 => {
                // From a shard that owes it, another shard, or a stranger.
                let owing: Vec<EngineId> =
                    self.model.txs.get(&timestamp).map(|tx| tx.waiting.iter().cloned().collect()).unwrap_or_default();
                let sender = match self.rng.pick(&owing) {
                    Some(shard) if self.rng.chance(70) => shard.clone(),
                    _ if self.rng.chance(50) => {
                        self.rng.pick(self.shards.all()).cloned().unwrap_or_else(|| stranger(&mut self.rng))
                    }
                    _ => stranger(&mut self.rng),
                };
                (sender, Message::KvsLockAcquired { timestamp })
            }
            60..=79 => {
                let report = common::report(&mut self.rng, timestamp);
                let sender = match self.rng.below(4) {
                    0 | 1 => executor_id(&self.id, timestamp),
                    2 => executor_id(&self.id, timestamp.wrapping_add(1)),
                    _ => stranger(&mut self.rng),
                };
                (sender, Message::ExecutorFinished(report.into()))
            }
            80..=94 => {
                let mut payload = common::any_message(&mut self.rng, &self.universe, timestamp);
                if matches!(
                    payload,
                    Message::TransactionRequest { .. }
                        | Message::TransactionOrdered { .. }
                        | Message::KvsLockAcquired { .. }
                        | Message::ExecutorFinished(_)
                ) {
                    payload = Message::UpdateSeenAll { timestamp, write: true };
                }
                let sender = self.rng.pick(self.shards.all()).cloned().unwrap_or_else(|| stranger(&mut self.rng));
                (sender, payload)
            }
            _ => {
                return (
                    self.id.clone(),
                    Trigger::Elapsed { timers: vec![(); self.rng.index(3)], at: std::time::Duration::ZERO },
                );
            }
        };
        let trigger = self.message(sender.clone(), payload);
        (sender, trigger)
    }
}
