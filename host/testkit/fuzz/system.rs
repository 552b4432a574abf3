//! Shards, the worker and executors in one simulation (as the harness's
//! deterministic delivery, one message at a time in a seeded order, timers
//! on a virtual clock), with junk injected: messages duplicated by the
//! network (any message, any number of times, late), junk from strangers
//! to every engine, messages of the wrong kind, reads from the wrong shard
//! or for another transaction, stale watermarks, new submissions mid-run,
//! and executor timers fired at random. With `resend`, the network also
//! loses reads on their way to executors, and (in orderly runs) an
//! unfinished executor is now and then re-run from the start (a new
//! incarnation: same id, same transaction, its predecessor's messages
//! still in flight), as a host on another machine would.
//!
//! Junk here is what the protocol must survive: the reference shard trusts
//! the sender of a lock or a watermark (it cannot tell the worker from an
//! impostor), so a stranger's message to a shard is one that names no
//! lock it holds, a watermark the worker has already passed, or a message
//! of a kind a shard drops.
//!
//! At quiescence: every transaction finished, each executor's log passes
//! [`ExecLog`] (one report to the worker and one to the client, every
//! declared key resolved once, nothing after the finish, fed exactly what
//! its shards sent), every executor was reaped, no shard holds a pending
//! marker, every value read and the final state equal running the
//! transactions one after another in timestamp order (with what each
//! reported), no shard refused a conflicting write, and, in runs without
//! early deadlines or undeclared access, no transaction failed on its
//! deadline (nothing stalled: not even with reads lost or executors
//! re-run).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use executor_host::__internal::{Clock, Executor, ExecutorConfig, ExecutorTimer, Shared};
use executor_host::engine::{Admission, Behaviour, Effect, EngineTimers, Instance, TimerOp, TimerQueue, Trigger};
use executor_host::{AccessMode, Datum, EngineId, Envelope, ExecutorMetrics, ExecutorOptions, Key, KeySets, Message};
use executor_host::{Program, ShardMap, Transaction, WriteMode};
use executor_testkit::harness::HashShards;
use executor_testkit::shard::Shard;
use executor_testkit::worker::{SpawnExecutor, Worker, WorkerConfig};

use super::common::{self, datum, stranger};
use super::exec_log::ExecLog;
use super::script;
use super::{Fuzzer, Rng, Stats};

#[derive(Debug)]
pub struct SystemFuzzer;

impl Fuzzer for SystemFuzzer {
    fn case(&mut self, seed: u64, stats: &mut Stats) -> Result<(), String> {
        Sim::new(seed).run(stats)
    }
}

/// A hosted executor: the engine, its timers, its log, what its shards
/// sent it.
struct Hosted {
    instance: Instance<Executor>,
    timers: EngineTimers<ExecutorTimer>,
}

struct Sim {
    rng: Rng,
    now: Duration,
    shard_map: Arc<HashShards>,
    shards: BTreeMap<EngineId, Instance<Shard>>,
    worker: Instance<Worker>,
    executors: HashMap<EngineId, Hosted>,
    logs: BTreeMap<EngineId, ExecLog>,
    /// Per executor, the first value each key's owning shard sent it.
    served: HashMap<EngineId, BTreeMap<Key, Option<Datum>>>,
    timers: TimerQueue<ExecutorTimer>,
    /// Locks the shards acknowledged: (shard, timestamp).
    acked: Vec<(EngineId, u64)>,
    in_flight: Vec<Envelope<Message>>,
    /// Recently delivered messages, for late duplicates.
    history: Vec<Envelope<Message>>,
    program: Arc<dyn Program>,
    shared: Arc<Shared>,
    universe: Vec<Key>,
    initial: BTreeMap<Key, Datum>,
    /// Honest transactions only, every access declared, no early deadline:
    /// nothing may fail on its deadline.
    orderly: bool,
    /// Percent of steps that inject junk.
    junk_pct: u64,
    /// Percent of reads to executors the network loses (with `resend`).
    loss_pct: u64,
    /// Whether unfinished executors are re-run now and then (orderly runs
    /// with `resend`).
    reruns: bool,
}

fn client() -> EngineId {
    EngineId::local("client")
}

impl Sim {
    fn new(seed: u64) -> Self {
        // Drawn apart, so that the cases of earlier seeds stay as they were.
        let mut apart = Rng::new(seed ^ 0x7265_7365_6e64_0000);
        // A period short beside the deadline: a lost read costs its reader
        // (and everyone after it on the key) up to a period, and a chain
        // of thirty transactions on one key must still end in time.
        let resend = apart.chance(40).then(|| Duration::from_millis(100 + apart.below(500)));
        let loss_pct = if resend.is_some() { [0, 10, 25][apart.index(3)] } else { 0 };
        let mut rng = Rng::new(seed);
        let shard_map = Arc::new(HashShards::new(1 + rng.index(4)));
        let mut universe: Vec<Key> = (0..1 + rng.below(12)).map(|i| format!("k{i}").into_bytes()).collect();
        // Now and then the empty key and a key longer than a step may name.
        if rng.chance(20) {
            universe.push(Vec::new());
        }
        if rng.chance(10) {
            universe.push(vec![b'h'; common::HUGE_KEY_LEN + 10]);
        }
        let initial: BTreeMap<Key, Datum> = universe
            .iter()
            .filter_map(
                |k| if rng.chance(60) { Some((k.clone(), rng.below(100).to_string().into_bytes())) } else { None },
            )
            .collect();
        let orderly = rng.chance(50);
        let options = ExecutorOptions {
            write_mode: if rng.chance(50) { WriteMode::Streaming } else { WriteMode::Atomic },
            access_mode: if orderly || rng.chance(50) { AccessMode::Strict } else { AccessMode::Lenient },
            resend,
            ..ExecutorOptions::default()
        };
        let reruns = resend.is_some() && orderly && apart.chance(60);
        // Now and then a worker that orders only a few transactions ahead
        // of the finished ones, as the concurrent harness's does (drawn
        // last, so the draws before it stay as they were).
        let window = if apart.chance(30) { std::num::NonZeroU64::new(1 + apart.below(4)) } else { None };
        // Now and then a bound on reports small enough to fail some
        // transactions midway, as a deployment over NATS has (drawn after
        // the window, for the same reason).
        let report_bytes = apart.chance(20).then(|| 20 + apart.below(200));
        let options = ExecutorOptions { report_bytes, ..options };
        let shards = shard_map
            .all()
            .iter()
            .map(|id| {
                let mine =
                    initial.iter().filter(|(k, _)| shard_map.shard_for(k) == id).map(|(k, v)| (k.clone(), v.clone()));
                (id.clone(), Shard::instance(id.clone(), mine.collect::<Vec<_>>()))
            })
            .collect();
        let worker_config = WorkerConfig { shards: shard_map.clone(), all_shards: shard_map.all().to_vec() };
        let worker = match window {
            Some(window) => Worker::windowed(EngineId::local("worker"), worker_config, window),
            None => Worker::instance(EngineId::local("worker"), worker_config),
        };
        let shared = Arc::new(Shared {
            options,
            shards: shard_map.clone() as Arc<dyn ShardMap>,
            metrics: Arc::new(ExecutorMetrics::default()),
            clock: Clock::Virtual,
        });
        let junk_pct = [0, 5, 15, 30][rng.index(4)];
        Sim {
            rng,
            now: Duration::ZERO,
            shard_map,
            shards,
            worker,
            executors: HashMap::new(),
            logs: BTreeMap::new(),
            served: HashMap::new(),
            timers: TimerQueue::default(),
            acked: Vec::new(),
            in_flight: Vec::new(),
            history: Vec::new(),
            program: script::program(),
            shared,
            universe,
            initial,
            orderly,
            junk_pct,
            loss_pct,
            reruns,
        }
    }

    /// A transaction: a transfer or a counter, every access declared
    /// (orderly runs), or with random declarations, or a random script.
    fn transaction(&mut self) -> (Vec<u8>, KeySets) {
        let rng = &mut self.rng;
        let mut keys = KeySets::default();
        if !self.orderly && rng.chance(40) {
            let keys = common::key_sets(rng, &self.universe, 30);
            let mut names = self.universe.clone();
            names.push(b"undeclared".to_vec());
            return (script::executable(rng.next_u64(), &names), keys);
        }
        let (executable, touched) = if rng.chance(30) {
            let executable = script::counter(rng, &self.universe);
            let key: Key = serde_json::from_slice::<serde_json::Value>(&executable)
                .ok()
                .and_then(|v| v.get("key").and_then(|k| k.as_str()).map(|k| k.as_bytes().to_vec()))
                .unwrap_or_default();
            (executable, vec![key])
        } else {
            let executable = script::transfer(rng, &self.universe);
            let value = serde_json::from_slice::<serde_json::Value>(&executable).unwrap_or_default();
            let name = |field: &str| value.get(field).and_then(|k| k.as_str()).unwrap_or("").as_bytes().to_vec();
            (executable, vec![name("from"), name("to")])
        };
        for key in &touched {
            if rng.chance(50) { &mut keys.eager_read_keys } else { &mut keys.lazy_read_keys }.push(key.clone());
            if rng.chance(70) { &mut keys.will_write_keys } else { &mut keys.may_write_keys }.push(key.clone());
        }
        if rng.chance(20) {
            let extra = rng.pick(&self.universe).cloned().unwrap_or_default();
            if rng.chance(50) { &mut keys.lazy_read_keys } else { &mut keys.may_write_keys }.push(extra);
        }
        if !self.orderly && rng.chance(20) {
            // An access left undeclared.
            keys.eager_read_keys.clear();
            keys.lazy_read_keys.truncate(1);
        }
        (executable, keys)
    }

    fn submit(&mut self) {
        let (executable, keys) = self.transaction();
        let request = Message::TransactionRequest { executable, keys: Box::new(keys), resubmission: None, tag: None };
        self.in_flight.push(Envelope::new(client(), self.worker.id.clone(), request));
    }

    fn run(mut self, stats: &mut Stats) -> Result<(), String> {
        let transactions = 1 + self.rng.below(30);
        let up_front = self.rng.below(transactions + 1);
        for _ in 0..up_front {
            self.submit();
        }
        let mut later = transactions - up_front;
        // Re-asking adds a few messages per waiting executor and period,
        // up to its deadline.
        let rounds = self.shared.options.resend.map_or(0, |period| {
            let deadline = self.shared.options.deadline.as_millis();
            u64::try_from(deadline / period.as_millis().max(1)).unwrap_or(u64::MAX)
        });
        let limit = 2_000 + 400 * transactions + rounds.saturating_mul(40 * transactions);
        let mut steps = 0;
        loop {
            steps += 1;
            if steps > limit {
                return Err(format!("stuck: {} messages in flight after {limit} steps", self.in_flight.len()));
            }
            if later > 0 && self.rng.chance(10) {
                later -= 1;
                self.submit();
            }
            if self.reruns && self.rng.chance(2) {
                self.rerun(stats)?;
            }
            if self.rng.chance(self.junk_pct) {
                self.junk(stats)?;
            } else if !self.in_flight.is_empty() {
                let envelope = self.in_flight.swap_remove(self.rng.index(self.in_flight.len()));
                if self.loss_pct > 0
                    && matches!(envelope.payload, Message::KvsRead { .. })
                    && self.executors.contains_key(&envelope.target)
                    && self.rng.chance(self.loss_pct)
                {
                    stats.outcome("system:read lost");
                    continue;
                }
                if self.history.len() < 256 {
                    self.history.push(envelope.clone());
                } else {
                    let slot = self.rng.index(256);
                    self.history[slot] = envelope.clone();
                }
                self.deliver(stats, envelope)?;
            } else if later > 0 {
                later -= 1;
                self.submit();
            } else if let Some(at) = self.timers.next_due() {
                self.now = self.now.max(at);
                self.fire_due(stats)?;
            } else {
                break;
            }
        }
        self.check(stats)
    }

    fn deliver(&mut self, stats: &mut Stats, envelope: Envelope<Message>) -> Result<(), String> {
        stats.messages += 1;
        let target = envelope.target.clone();
        let at = self.now;
        if let Some(shard) = self.shards.get_mut(&target) {
            let effect = shard.handle(Trigger::Message { envelope, at });
            for sent in &effect.send {
                match &sent.payload {
                    Message::KvsRead { key, data, .. } => {
                        self.served.entry(sent.target.clone()).or_default().entry(key.clone()).or_insert(data.clone());
                    }
                    Message::KvsLockAcquired { timestamp } => self.acked.push((target.clone(), *timestamp)),
                    _ => {}
                }
            }
            self.in_flight.extend(effect.send);
        } else if target == self.worker.id {
            let effect = self.worker.handle(Trigger::Message { envelope, at });
            for spawn in effect.spawn {
                self.spawn(stats, spawn)?;
            }
            self.in_flight.extend(effect.send);
        } else if let Some(hosted) = self.executors.get_mut(&target) {
            // Half the time the host screens on arrival, as the tokio
            // runtime does.
            if Executor::admit(&hosted.instance.config, &envelope) == Admission::Drop && self.rng.chance(50) {
                return Ok(());
            }
            let effect = hosted.instance.handle(Trigger::Message { envelope, at });
            self.apply(stats, &target, effect, false)?;
        }
        // Anything else (the client, strangers, reaped executors) is lost.
        Ok(())
    }

    fn spawn(&mut self, stats: &mut Stats, spawn: SpawnExecutor) -> Result<(), String> {
        let tx = Transaction {
            timestamp: spawn.timestamp,
            executable: spawn.tx.executable,
            keys: spawn.tx.keys,
            worker: spawn.worker,
            issuer: spawn.tx.issuer,
            program: self.program.clone(),
        };
        let config = ExecutorConfig::new(tx, self.shared.clone());
        let log = ExecLog::new(&config);
        let (instance, ops) = Executor::spawn(config, self.now);
        let id = instance.id.clone();
        if id != log.id || self.logs.contains_key(&id) {
            return Err(format!("spawned {id} twice, or under another id than {}", log.id));
        }
        self.logs.insert(id.clone(), log);
        self.executors.insert(id.clone(), Hosted { instance, timers: EngineTimers::default() });
        self.schedule(stats, &id, ops)
    }

    fn apply(&mut self, stats: &mut Stats, id: &EngineId, effect: Effect<Executor>, reap: bool) -> Result<(), String> {
        if let Some(log) = self.logs.get_mut(id) {
            log.effect(&effect, reap).map_err(|e| format!("executor {id}: {e}"))?;
        }
        self.in_flight.extend(effect.send);
        self.schedule(stats, id, effect.timers)?;
        if effect.stop
            && let Some(hosted) = self.executors.remove(id)
        {
            self.timers.remove(hosted.timers);
        }
        Ok(())
    }

    fn schedule(&mut self, stats: &mut Stats, id: &EngineId, ops: Vec<TimerOp<ExecutorTimer>>) -> Result<(), String> {
        let Some(hosted) = self.executors.get_mut(id) else { return Ok(()) };
        let due_now = self.timers.apply(id, &mut hosted.timers, ops, self.now);
        if due_now.is_empty() { Ok(()) } else { self.elapse(stats, id, due_now) }
    }

    fn elapse(&mut self, stats: &mut Stats, id: &EngineId, timers: Vec<ExecutorTimer>) -> Result<(), String> {
        let Some(hosted) = self.executors.get_mut(id) else { return Ok(()) };
        stats.messages += 1;
        let reap = timers.contains(&ExecutorTimer::Reap);
        let effect = hosted.instance.handle(Trigger::Elapsed { timers, at: self.now });
        self.apply(stats, id, effect, reap)
    }

    fn fire_due(&mut self, stats: &mut Stats) -> Result<(), String> {
        let executors = &mut self.executors;
        let due = self.timers.take_due(self.now, |id, key| {
            if let Some(hosted) = executors.get_mut(id) {
                hosted.timers.forget(key);
            }
        });
        for (id, timers) in due {
            self.elapse(stats, &id, timers)?;
        }
        Ok(())
    }

    /// Re-runs an unfinished executor from the start, as a host elsewhere
    /// would after losing it: same id and transaction, a new instance, its
    /// predecessor's timers gone and its messages still in flight.
    fn rerun(&mut self, stats: &mut Stats) -> Result<(), String> {
        let mut ids: Vec<EngineId> =
            self.executors.keys().filter(|id| !self.logs.get(*id).is_some_and(ExecLog::finished)).cloned().collect();
        ids.sort();
        let Some(id) = self.rng.pick(&ids).cloned() else { return Ok(()) };
        let Some(hosted) = self.executors.remove(&id) else { return Ok(()) };
        self.timers.remove(hosted.timers);
        let config = ExecutorConfig::new(hosted.instance.config.tx.clone(), self.shared.clone());
        self.logs.insert(id.clone(), ExecLog::new(&config));
        let (instance, ops) = Executor::spawn(config, self.now);
        self.executors.insert(id.clone(), Hosted { instance, timers: EngineTimers::default() });
        stats.outcome("system:executor re-run");
        self.schedule(stats, &id, ops)
    }

    /// One piece of junk the protocol must survive.
    fn junk(&mut self, stats: &mut Stats) -> Result<(), String> {
        let watermark = self.worker.env.local.watermark;
        let next = self.worker.env.local.next_timestamp();
        match self.rng.below(10) {
            // The network duplicates a message in flight, or one delivered
            // a while ago.
            0..=3 => {
                let pool =
                    if self.rng.chance(40) && !self.in_flight.is_empty() { &self.in_flight } else { &self.history };
                if let Some(copy) = self.rng.pick(pool).cloned() {
                    self.in_flight.push(copy);
                }
            }
            // A stranger writes to a shard: nothing it names is locked, or
            // the watermark it claims is already passed.
            4 => {
                let shard = self.rng.pick(self.shard_map.all()).cloned().unwrap_or_else(|| EngineId::local("shard-0"));
                let key = self.rng.pick(&self.universe).cloned().unwrap_or_default();
                let unlocked = next + 1_000 + self.rng.below(1_000);
                let payload = match self.rng.below(6) {
                    0 => Message::KvsWrite { timestamp: unlocked, key, datum: datum(&mut self.rng) },
                    1 => Message::KvsReadRequest { timestamp: unlocked, key, actual: self.rng.chance(50) },
                    2 => Message::KvsWrite {
                        timestamp: self.rng.below(next + 1),
                        key: b"junk-key".to_vec(),
                        datum: None,
                    },
                    3 => {
                        Message::UpdateSeenAll { timestamp: self.rng.below(watermark + 1), write: self.rng.chance(50) }
                    }
                    4 => Message::KvsRead { timestamp: self.rng.below(next + 1), key, data: datum(&mut self.rng) },
                    _ => {
                        let timestamp = self.rng.below(next + 1);
                        Message::ExecutorFinished(common::report(&mut self.rng, timestamp).into())
                    }
                };
                self.in_flight.push(Envelope::new(stranger(&mut self.rng), shard, payload));
            }
            // Junk to the worker: anything from a stranger (a stranger's
            // transaction is a real one).
            5 => {
                let mut payload = common::any_message(&mut self.rng, &self.universe, next);
                if let Message::TransactionRequest { .. } = payload {
                    let (executable, keys) = self.transaction();
                    payload = Message::TransactionRequest {
                        executable,
                        keys: Box::new(keys),
                        resubmission: Some(1),
                        tag: None,
                    };
                }
                self.in_flight.push(Envelope::new(stranger(&mut self.rng), self.worker.id.clone(), payload));
            }
            // Junk to an executor: from a stranger or the wrong shard, or
            // for another transaction.
            6 | 7 => {
                let ids: Vec<EngineId> = self.executors.keys().cloned().collect();
                let Some(target) = self.rng.pick(&ids).cloned() else { return Ok(()) };
                let timestamp = self.executors.get(&target).map_or(0, |h| h.instance.config.tx.timestamp);
                let key = self.rng.pick(&self.universe).cloned().unwrap_or_default();
                let owner = self.shard_map.shard_for(&key).clone();
                let (sender, payload) = match self.rng.below(4) {
                    0 => (owner, Message::KvsRead { timestamp: timestamp + 1, key, data: datum(&mut self.rng) }),
                    1 => {
                        let wrong = self
                            .shard_map
                            .all()
                            .iter()
                            .find(|s| **s != owner)
                            .cloned()
                            .unwrap_or_else(|| stranger(&mut self.rng));
                        (wrong, Message::KvsRead { timestamp, key, data: datum(&mut self.rng) })
                    }
                    _ => {
                        let mut payload = common::any_message(&mut self.rng, &self.universe, timestamp);
                        if let Message::KvsRead { timestamp: t, .. } = &mut payload {
                            *t = timestamp.wrapping_add(1);
                        }
                        (stranger(&mut self.rng), payload)
                    }
                };
                self.in_flight.push(Envelope::new(sender, target, payload));
            }
            // A timer fires at random: Start or Reap, and (outside orderly
            // runs) the deadline.
            8 => {
                let mut ids: Vec<EngineId> = self.executors.keys().cloned().collect();
                ids.sort();
                let Some(id) = self.rng.pick(&ids).cloned() else { return Ok(()) };
                let mut timers = vec![if self.rng.chance(50) { ExecutorTimer::Start } else { ExecutorTimer::Reap }];
                if !self.orderly && self.rng.chance(30) {
                    timers.push(ExecutorTimer::Deadline);
                }
                self.elapse(stats, &id, timers)?;
            }
            // A second lock, with other keys, for a timestamp a shard
            // already holds (or has passed): the shard must drop it.
            9 if !self.acked.is_empty() && self.rng.chance(50) => {
                let (shard, timestamp) =
                    self.rng.pick(&self.acked).cloned().unwrap_or_else(|| (EngineId::local("shard-0"), 0));
                let mut keys = common::key_sets(&mut self.rng, &self.universe, 50);
                keys.may_write_keys.push(b"forged-key".to_vec());
                let worker = if self.rng.chance(50) { self.worker.id.clone() } else { stranger(&mut self.rng) };
                let payload = Message::KvsAcquireLock {
                    timestamp,
                    keys: Box::new(keys),
                    worker: worker.clone(),
                    executor: stranger(&mut self.rng),
                };
                self.in_flight.push(Envelope::new(worker, shard, payload));
            }
            // Something for nobody.
            _ => {
                let payload = common::any_message(&mut self.rng, &self.universe, next);
                self.in_flight.push(Envelope::new(stranger(&mut self.rng), EngineId::local("nobody"), payload));
            }
        }
        Ok(())
    }

    fn check(self, stats: &mut Stats) -> Result<(), String> {
        let worker = &self.worker.env.local;
        let ordered = usize::try_from(worker.next_timestamp() - 1).unwrap_or(usize::MAX);
        if !worker.transactions.is_empty() {
            return Err(format!("{} transactions never got their locks", worker.transactions.len()));
        }
        if worker.queued() != 0 {
            return Err(format!("{} requests never ordered", worker.queued()));
        }
        if ordered != worker.finished.len() {
            return Err(format!("{} of {ordered} transactions finished", worker.finished.len()));
        }
        if !self.executors.is_empty() {
            return Err(format!("{} executors never reaped", self.executors.len()));
        }
        if self.logs.len() != ordered {
            return Err(format!("{} executors for {ordered} transactions", self.logs.len()));
        }
        let no_reads = BTreeMap::new();
        let mut serial = self.initial.clone();
        for (timestamp, recorded) in &worker.finished {
            let id = executor_host::executor_id(&self.worker.id, *timestamp);
            let log = self.logs.get(&id).ok_or_else(|| format!("no executor for {timestamp}"))?;
            let ctx = |e: String| format!("executor {id}: {e}");
            let report = log.check().map_err(ctx)?;
            log.reads(self.served.get(&id).unwrap_or(&no_reads)).map_err(ctx)?;
            if *report != **recorded {
                return Err(ctx("the worker recorded another report than the executor sent".into()));
            }
            for (key, value) in &report.values_read {
                if serial.get(key) != value.as_ref() {
                    return Err(ctx(format!(
                        "read {} = {value:?}; serially it is {:?}",
                        common::show(key),
                        serial.get(key)
                    )));
                }
            }
            for (key, value) in &report.values_written {
                serial.insert(key.clone(), value.clone());
            }
            let kind = report.failure.as_ref().map_or("success", |f| f.kind());
            if self.orderly && kind == "deadline" {
                return Err(ctx("an orderly transaction failed on its deadline: it stalled".into()));
            }
            stats.outcome(format!("system:{}:{kind}", if self.orderly { "orderly" } else { "chaos" }));
        }
        let mut latest = BTreeMap::new();
        for shard in self.shards.values() {
            let state = &shard.env.local;
            if state.pending_markers() != 0 {
                return Err(format!("{} holds {} pending markers at quiescence", shard.id, state.pending_markers()));
            }
            if !state.conflicting_writes.is_empty() {
                return Err(format!("{} refused conflicting writes {:?}", shard.id, state.conflicting_writes));
            }
            latest.extend(state.latest());
        }
        if latest != serial {
            return Err(format!("final state {latest:?}; serially {serial:?}"));
        }
        Ok(())
    }
}
