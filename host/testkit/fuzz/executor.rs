//! One executor engine, driven on a virtual clock: the honest side of the
//! protocol (each eager key and each requested lazy key sent once by the
//! shard that owns it) interleaved with junk, and the executor's timers
//! fired when due and at random. With `resend`, the network also loses
//! some of those reads: a lost one is owed again only once the executor
//! asks for it again (its `Resend` timer), as a shard serves a read again
//! only when asked. [`ExecLog`] checks every trigger's effect
//! and the end state; the screen a host applies on arrival
//! (`Behaviour::admit`) is checked against the guards: it may only drop
//! what the guards would drop, and must never drop a read the program will
//! be fed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use executor_host::__internal::{Clock, Executor, ExecutorAction, ExecutorConfig, ExecutorTimer, Shared};
use executor_host::engine::{Admission, Behaviour, Envelope, Instance, TimerOp, Trigger};
use executor_host::{AccessMode, EngineId, ExecutorMetrics, ExecutorOptions, Key, KeySets, Message, ShardMap};
use executor_host::{Datum, ExecutorFinished, Transaction, WriteMode};

use super::common::{self, datum, stranger};
use super::exec_log::ExecLog;
use super::script;
use super::{Fuzzer, Rng, Stats};
use executor_testkit::harness::HashShards;

#[derive(Debug)]
pub struct ExecutorFuzzer;

impl Fuzzer for ExecutorFuzzer {
    fn case(&mut self, seed: u64, stats: &mut Stats) -> Result<(), String> {
        let first = Case::new(seed, 0).run(stats)?;
        // A third of the cases run again, with another delivery order,
        // other junk and other timer firings: an executor that finished
        // on its own (not on its deadline) must report exactly the same.
        if seed.is_multiple_of(3) {
            let second = Case::new(seed, 1).run(stats)?;
            let natural = |r: &ExecutorFinished| r.failure.as_ref().map(|f| f.kind()) != Some("deadline");
            if natural(&first) && natural(&second) {
                if first != second {
                    return Err(format!(
                        "the same transaction and values, delivered in another order, reported {second:?}, \
                         not {first:?}"
                    ));
                }
                stats.outcome("executor:same-report-in-another-order");
            }
        }
        Ok(())
    }
}

struct Case {
    rng: Rng,
    shards: Arc<HashShards>,
    universe: Vec<Key>,
    keys: KeySets,
    instance: Instance<Executor>,
    log: ExecLog,
    now: Duration,
    /// Timers set, by handle.
    timers: BTreeMap<u8, Duration>,
    /// What the owning shards sent so far (each key once).
    sent: BTreeMap<Key, Option<Datum>>,
    /// Whether the host screens mail with `admit` (as the tokio runtime
    /// does) or hands everything to the guards (as the simulation does).
    screens: bool,
    /// Seeds each key's value at the shards.
    values: u64,
    /// Whether the network may lose a read (only with `resend`).
    lossy: bool,
    /// Reads the network lost and the executor has not asked for again:
    /// not owed until it does.
    lost: BTreeSet<Key>,
}

fn slot(timer: ExecutorTimer) -> u8 {
    match timer {
        ExecutorTimer::Start => 0,
        ExecutorTimer::Deadline => 1,
        ExecutorTimer::Reap => 2,
        ExecutorTimer::Resend => 3,
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The timers fired at random.
const TIMERS: [ExecutorTimer; 3] = [ExecutorTimer::Start, ExecutorTimer::Deadline, ExecutorTimer::Reap];
/// Every timer, in the order a due set fires.
const ALL_TIMERS: [ExecutorTimer; 4] =
    [ExecutorTimer::Start, ExecutorTimer::Deadline, ExecutorTimer::Resend, ExecutorTimer::Reap];

impl Case {
    /// The case of `seed`; `variant` draws another delivery order, other
    /// junk and other timer firings for the same transaction and values.
    fn new(seed: u64, variant: u64) -> Self {
        let mut rng = Rng::new(seed);
        let shards = Arc::new(HashShards::new(1 + rng.index(3)));
        let universe = common::universe(&mut rng, 8);
        let keys = common::key_sets(&mut rng, &universe, 70);
        let options = ExecutorOptions {
            write_mode: if rng.chance(50) { WriteMode::Streaming } else { WriteMode::Atomic },
            access_mode: if rng.chance(70) { AccessMode::Strict } else { AccessMode::Lenient },
            gas_limit: if rng.chance(10) { rng.below(3) } else { 100_000_000 },
            deadline: Duration::from_millis(if rng.chance(5) { rng.below(3) } else { 30_000 }),
            linger: Duration::from_millis(rng.below(2_000)),
            resend: None,
            step_trace: false,
            report_bytes: None,
        };
        // Drawn apart, so that the cases of earlier seeds stay as they were.
        let mut apart = Rng::new(seed ^ 0x7265_7365_6e64_0000);
        let resend = apart.chance(40).then(|| Duration::from_millis(apart.below(1_000)));
        let lossy = resend.is_some() && apart.chance(70);
        // Now and then a bound on the report small enough to bind (drawn
        // last, so the draws before it stay as they were).
        let report_bytes = apart.chance(25).then(|| apart.below(120));
        let options = ExecutorOptions { resend, report_bytes, ..options };
        let timestamp = match rng.below(10) {
            0 => 0,
            1 => u64::MAX,
            _ => 1 + rng.below(1_000),
        };
        let worker = EngineId::local("worker");
        let issuer = match rng.below(3) {
            0 => worker.clone(),
            1 => EngineId { node: Some("remote".into()), name: "client".into() },
            _ => EngineId::local("client"),
        };
        let executable = match rng.below(10) {
            0 => script::transfer(&mut rng, &universe),
            1 => script::counter(&mut rng, &universe),
            2 => {
                let n = rng.index(30);
                rng.bytes(n)
            }
            _ => {
                // Scripts name declared keys, and in some cases others.
                let normalized = keys.clone().normalized();
                let mut names: Vec<Key> = normalized.all_keys().into_iter().cloned().collect();
                if names.is_empty() || rng.chance(30) {
                    names = universe.clone();
                    names.push(b"undeclared".to_vec());
                }
                script::executable(rng.next_u64(), &names)
            }
        };
        let shared = Arc::new(Shared {
            options,
            shards: shards.clone() as Arc<dyn ShardMap>,
            metrics: Arc::new(ExecutorMetrics::default()),
            clock: Clock::Virtual,
        });
        let tx = Transaction { timestamp, executable, keys: keys.clone(), worker, issuer, program: script::program() };
        let config = ExecutorConfig::new(tx, shared);
        let log = ExecLog::new(&config);
        let values = rng.next_u64();
        if variant != 0 {
            rng = Rng::new(rng.next_u64() ^ variant.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        let now = Duration::from_millis(rng.below(10_000));
        let (instance, ops) = Executor::spawn(config, now);
        let screens = rng.chance(50);
        let mut case = Case {
            rng,
            shards,
            universe,
            keys: keys.normalized(),
            instance,
            log,
            now,
            timers: BTreeMap::new(),
            sent: BTreeMap::new(),
            screens,
            values,
            lossy,
            lost: BTreeSet::new(),
        };
        case.apply_timers(&ops);
        case
    }

    fn apply_timers(&mut self, ops: &[TimerOp<ExecutorTimer>]) {
        for op in ops {
            match op {
                TimerOp::Set(timer) => {
                    self.timers.insert(slot(timer.handle), timer.at);
                }
                TimerOp::Cancel(handle) => {
                    self.timers.remove(&slot(*handle));
                }
            }
        }
    }

    fn owner(&self, key: &[u8]) -> EngineId {
        self.shards.shard_for(key).clone()
    }

    /// Keys the shards owe and have not sent.
    fn owed(&self) -> Vec<Key> {
        let mut owed: Vec<Key> = self.keys.eager_read_keys.clone();
        for key in &self.log.requested {
            if !owed.contains(key) {
                owed.push(key.clone());
            }
        }
        owed.retain(|k| !self.sent.contains_key(k) && !self.lost.contains(k));
        owed
    }

    fn run(mut self, stats: &mut Stats) -> Result<ExecutorFinished, String> {
        let timestamp = self.instance.config.tx.timestamp;
        // Most hosts fire a timer due at spawn at once.
        if self.rng.chance(80) {
            self.fire_due(stats)?;
        }
        let events = 5 + self.rng.below(300);
        for _ in 0..events {
            if self.log.stopped {
                break;
            }
            let owed = self.owed();
            let roll = self.rng.below(100);
            match roll {
                0..=44 if !owed.is_empty() => {
                    let key = self.rng.pick(&owed).cloned().unwrap_or_default();
                    let data = datum(&mut Rng::new(self.values ^ fnv(&key)));
                    if self.lossy && self.rng.chance(30) {
                        self.lost.insert(key);
                        continue;
                    }
                    self.sent.insert(key.clone(), data.clone());
                    let sender = self.owner(&key);
                    self.message(stats, sender, Message::KvsRead { timestamp, key, data })?;
                }
                0..=84 => {
                    let (sender, payload) = self.junk(timestamp);
                    self.message(stats, sender, payload)?;
                }
                85..=89 => self.fire_due(stats)?,
                90..=94 => {
                    let mut fired: Vec<ExecutorTimer> =
                        (0..1 + self.rng.below(3)).filter_map(|_| self.rng.pick(&TIMERS).copied()).collect();
                    // Deadline ends the run early; keep it rare.
                    if fired.contains(&ExecutorTimer::Deadline) && self.rng.chance(70) {
                        fired.retain(|t| *t != ExecutorTimer::Deadline);
                    }
                    self.elapse(stats, fired)?;
                }
                _ => self.now += Duration::from_millis(self.rng.below(500)),
            }
        }
        // Whatever happened, the deadline ends it.
        if !self.log.finished() && !self.log.stopped {
            self.elapse(stats, vec![ExecutorTimer::Deadline])?;
            match self.log.report() {
                None => return Err("the deadline fired and the executor did not finish".into()),
                Some(report) if report.failure.as_ref().map(|f| f.kind()) != Some("deadline") => {
                    return Err(format!("the deadline fired and the executor reported {:?}", report.failure));
                }
                Some(_) => {}
            }
        }
        // A few late messages, then the host reaps it.
        for _ in 0..self.rng.below(4) {
            if self.log.stopped {
                break;
            }
            let (sender, payload) = self.junk(timestamp);
            self.message(stats, sender, payload)?;
        }
        if !self.log.stopped {
            let Some(&at) = self.timers.get(&slot(ExecutorTimer::Reap)) else {
                return Err("finished, but no Reap timer is set".into());
            };
            self.now = self.now.max(at);
            self.elapse(stats, vec![ExecutorTimer::Reap])?;
            if !self.log.stopped {
                return Err("the Reap timer fired and the executor did not stop".into());
            }
        }
        self.log.reads(&self.sent)?;
        let report = self.log.check()?;
        stats.outcome(format!("executor:{}", report.failure.as_ref().map_or("success", |f| f.kind())));
        Ok(report.clone())
    }

    fn fire_due(&mut self, stats: &mut Stats) -> Result<(), String> {
        let due: Vec<ExecutorTimer> =
            ALL_TIMERS.into_iter().filter(|t| self.timers.get(&slot(*t)).is_some_and(|at| *at <= self.now)).collect();
        if due.is_empty() { Ok(()) } else { self.elapse(stats, due) }
    }

    fn elapse(&mut self, stats: &mut Stats, timers: Vec<ExecutorTimer>) -> Result<(), String> {
        let reap = timers.contains(&ExecutorTimer::Reap);
        for t in &timers {
            self.timers.remove(&slot(*t));
        }
        let trigger = Trigger::Elapsed { timers, at: self.now };
        stats.messages += 1;
        let effect = self.instance.handle(trigger);
        self.log.effect(&effect, reap)?;
        self.apply_timers(&effect.timers);
        self.asked_again(&effect.send);
        Ok(())
    }

    /// A read the network lost is owed again once the executor asks again.
    fn asked_again(&mut self, sent: &[Envelope<Message>]) {
        for envelope in sent {
            if let Message::KvsReadRequest { key, actual: true, .. } = &envelope.payload {
                self.lost.remove(key);
            }
        }
    }

    fn message(&mut self, stats: &mut Stats, sender: EngineId, payload: Message) -> Result<(), String> {
        let mut envelope = Envelope::new(sender, self.instance.id.clone(), payload);
        if self.rng.chance(3) {
            envelope.mailbox = self.rng.below(3);
        }
        // Now and then a message stamped earlier than the last one.
        let at = if self.rng.chance(5) { self.now.saturating_sub(Duration::from_millis(500)) } else { self.now };
        let trigger = Trigger::Message { envelope, at };
        stats.messages += 1;
        let Trigger::Message { envelope, .. } = &trigger else { return Ok(()) };
        let admission = Executor::admit(&self.instance.config, envelope);
        let actions = self.instance.choose(&trigger);
        let is_read = matches!(actions.as_slice(), [ExecutorAction::Read { .. }]);
        if actions.len() != 1 {
            return Err(format!("guards named {} actions for one message: {actions:?}", actions.len()));
        }
        if admission == Admission::Drop && !matches!(actions.as_slice(), [ExecutorAction::Drop(_)]) {
            return Err(format!(
                "admit drops a {} that the guards act on: {actions:?}",
                common::kind(&envelope.payload)
            ));
        }
        if is_read && admission != Admission::Always {
            return Err(format!("a read the program will be fed is admitted as {admission:?}, not Always"));
        }
        if admission == Admission::Drop && self.screens {
            return Ok(());
        }
        let effect = self.instance.perform(actions, trigger);
        self.log.effect(&effect, false)?;
        self.apply_timers(&effect.timers);
        self.asked_again(&effect.send);
        Ok(())
    }

    /// A message that is not an honest shard's next read: another
    /// transaction's, from a shard that does not own the key or from a
    /// stranger, a second copy, an undeclared, unrequested or huge key, or
    /// a message of another kind.
    fn junk(&mut self, timestamp: u64) -> (EngineId, Message) {
        let rng = &mut self.rng;
        let key = rng.pick(&self.universe).cloned().unwrap_or_default();
        let data = datum(rng);
        match rng.below(12) {
            0 => {
                let other = match rng.below(3) {
                    0 => timestamp.wrapping_add(1),
                    1 => timestamp.wrapping_sub(1),
                    _ => rng.next_u64(),
                };
                let sender = self.shards.shard_for(&key).clone();
                (sender, Message::KvsRead { timestamp: other, key, data })
            }
            1 => {
                let owner = self.shards.shard_for(&key).clone();
                let mut sender = rng.pick(self.shards.all()).cloned().unwrap_or_else(|| EngineId::local("shard-0"));
                if sender == owner {
                    sender = match rng.below(3) {
                        0 => self.instance.id.clone(),
                        1 => EngineId::local("worker"),
                        _ => stranger(rng),
                    };
                }
                (sender, Message::KvsRead { timestamp, key, data })
            }
            2 if !self.sent.is_empty() => {
                let keys: Vec<&Key> = self.sent.keys().collect();
                let key = rng.pick(&keys).map(|k| (*k).clone()).unwrap_or_default();
                (self.shards.shard_for(&key).clone(), Message::KvsRead { timestamp, key, data })
            }
            3 | 4 => {
                // A key neither eager nor lazy, or a huge one.
                let key = if rng.chance(50) {
                    {
                        let n = 1 + rng.index(5);
                        rng.bytes(n)
                    }
                } else {
                    vec![b'z'; 1 + rng.index(10_000)]
                };
                let readable = self.keys.eager_read_keys.contains(&key) || self.keys.lazy_read_keys.contains(&key);
                let key = if readable { b"never-declared".to_vec() } else { key };
                (self.shards.shard_for(&key).clone(), Message::KvsRead { timestamp, key, data })
            }
            5 => {
                // A lazy key nobody asked for (yet).
                let unasked: Vec<&Key> =
                    self.keys.lazy_read_keys.iter().filter(|k| !self.log.requested.contains(k)).collect();
                match rng.pick(&unasked) {
                    Some(key) => {
                        let key = (*key).clone();
                        (self.shards.shard_for(&key).clone(), Message::KvsRead { timestamp, key, data })
                    }
                    None => (stranger(rng), Message::KvsLockAcquired { timestamp }),
                }
            }
            _ => {
                // Any other kind, from anyone.
                let mut payload = common::any_message(rng, &self.universe, timestamp);
                if let Message::KvsRead { timestamp: t, .. } = &mut payload {
                    *t = timestamp.wrapping_add(1);
                }
                let sender = match rng.below(3) {
                    0 => self.shards.shard_for(&key).clone(),
                    1 => EngineId::local("worker"),
                    _ => stranger(rng),
                };
                (sender, payload)
            }
        }
    }
}
