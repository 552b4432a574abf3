//! nspec's Executor Engine, with the spec's defects fixed.
//!
//! One executor runs one transaction: it feeds the values shards send to the
//! executor function ([`Program`]) one step at a time, turns the step's
//! requests into messages to shards, and when the program halts or fails,
//! sends `ExecutorFinished` and releases every lock the transaction declared
//! but did not use. Each departure from nspec is deliberate and listed in
//! the README ("Differences from nspec"); in short:
//!
//! - finished means finished: later triggers are dropped and counted;
//! - cleanup is computed after the final step, and covers every declared
//!   key on every path (will-writes and failures too);
//! - `ExecutorFinished` is complete (final step included, each key once,
//!   failure reason, gas; a debug build's log lines, and with
//!   [`ExecutorOptions::step_trace`] every step) and goes to both the
//!   worker and the issuer;
//! - messages leave in the order the step emitted them;
//! - undeclared access fails the transaction ([`AccessMode::Strict`]) or is
//!   only reported ([`AccessMode::Lenient`]), and is never sent;
//! - only eager or requested keys are fed to the program, each once, and
//!   only from the shard that owns the key, in a canonical order (eager
//!   keys in key order, then requested keys in request order) whatever the
//!   order they arrive in, so a transaction's steps, gas and outcome depend
//!   on the transaction and its snapshot only; a program with sessions (a
//!   wasm guest) is fed whole rounds, each in one instance ([`round`]);
//! - writes stream to shards as emitted ([`WriteMode::Streaming`], nspec) or
//!   are held until a successful halt ([`WriteMode::Atomic`]);
//! - a transaction that declares no eager read runs its first step at
//!   spawn, without a read; one that does starts on its first eager read,
//!   as in nspec;
//! - a panicking program fails its transaction instead of its host;
//! - exhausting gas fails; a deadline timer bounds the whole transaction,
//!   and the deadline is also checked before every guest call, since the
//!   timer fires only between actions (the one place this module reads a
//!   clock; in a simulated time, [`Clock::Virtual`], calls take none);
//! - the executor's id names its worker and timestamp, and is the sender of
//!   everything it sends;
//! - with [`ExecutorOptions::resend`], it re-asks the shards for every value
//!   due and not received, at spawn and then periodically, so a lost
//!   `KvsRead` or a re-run of the executor elsewhere (same id, same
//!   timestamp, a deterministic program) does not stall the transaction;
//!   the shards answer a re-ask with the same version, and the canonical
//!   feeding order keeps steps and gas unchanged.
//!
//! This module decides; it does no I/O and never blocks except inside the
//! guest call. Hosting (mailboxes, timers, threads) is [`crate::runtime`]'s.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::diagnostics::{Diagnostics, GuestLog, SKIPPED_ACCESSES, SkippedAccess, StepTrace};
use crate::engine::{
    Admission, Behaviour, Effect, EngineId, Envelope, Environment, GuardStrategy, Instance, Timer, TimerOp, Trigger,
};
use crate::messages::{Datum, ExecutorFinished, Key, KeySets, Message, Timestamp};
use crate::program::{Access, Failure, Input, Oversize, Program, Request, Session, StepCall, StepReport};

/// Which shard owns a key (nspec's `key_to_shard`). Returns a reference:
/// it is asked for every message, and must not allocate.
pub trait ShardMap: Send + Sync + fmt::Debug {
    /// The shard that owns `key`: where the executor sends its reads and
    /// writes of it, and the only sender whose `KvsRead` of it it accepts.
    fn shard_for(&self, key: &[u8]) -> &EngineId;
}

/// When writes reach the shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// As the step emits them (nspec). A failure after a write leaves it
    /// written; each key may be written once, since a shard may serve a
    /// written value to later readers at once.
    #[default]
    Streaming,
    /// Held until the program halts successfully, then sent (the last value
    /// per key); on failure every write lock is released unwritten.
    Atomic,
}

/// What an undeclared read or write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessMode {
    /// Fails the transaction.
    #[default]
    Strict,
    /// Skips the request and reports it (metrics and a trace event).
    Lenient,
}

/// Settings shared by every executor of a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutorOptions {
    /// Gas budget per transaction, shared by all its steps; exhausting it
    /// fails the transaction. By default 100 million.
    pub gas_limit: u64,
    /// A transaction not finished this long after spawn fails. It is
    /// checked between guest calls: a call under way ends first (each is
    /// bounded by [`Limits::call_time`](crate::Limits::call_time) in a
    /// sandbox). [`NO_DEADLINE`] or more is no deadline. By default 30 s.
    pub deadline: Duration,
    /// How long a finished executor stays to count late messages (as
    /// [`DropReason::AfterFinish`]) before its host removes it; later ones
    /// are counted as addressed to no one. A lingering executor keeps its
    /// transaction, so at a high rate this costs memory: at 100k
    /// transactions per second, a second of linger is 100k executors. By
    /// default 100 ms.
    pub linger: Duration,
    /// When writes reach the shards. By default [`WriteMode::Streaming`],
    /// as in nspec.
    pub write_mode: WriteMode,
    /// What an undeclared read or write does. By default
    /// [`AccessMode::Strict`].
    pub access_mode: AccessMode,
    /// Re-ask shards for values not yet received: once at spawn and then
    /// every this long. For networks that may lose a message to an
    /// executor or re-run one elsewhere (NATS); `None` in process. By
    /// default `None`. A zero period re-asks every millisecond.
    pub resend: Option<Duration>,
    /// Record every step (the key it was fed, its gas, its requests,
    /// whether it halted) in `ExecutorFinished`'s
    /// [`diagnostics`](ExecutorFinished::diagnostics), for debugging a
    /// guest. Off, nothing more is allocated per step. By default off.
    pub step_trace: bool,
    /// The most a transaction's report may carry: the bytes of every key
    /// and value it reads and writes, each entry counted with
    /// [`REPORT_ENTRY_BYTES`] more. A value whose feeding, or a write
    /// whose sending, would take the report past it fails the transaction
    /// instead ([`Oversize::Report`]), so no message the executor sends
    /// outgrows what a transport carries. For networks that bound a
    /// message (NATS sets it); `None` (no bound) by default.
    pub report_bytes: Option<u64>,
}

/// What [`ExecutorOptions::report_bytes`] counts for each key read or
/// written on top of its key's and value's bytes: the framing a transport
/// gives an entry.
pub const REPORT_ENTRY_BYTES: u64 = 16;

impl Default for ExecutorOptions {
    fn default() -> Self {
        Self {
            gas_limit: 100_000_000,
            deadline: Duration::from_secs(30),
            linger: Duration::from_millis(100),
            write_mode: WriteMode::Streaming,
            access_mode: AccessMode::Strict,
            resend: None,
            step_trace: false,
            report_bytes: None,
        }
    }
}

/// Why a trigger was dropped without effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The executor had already finished.
    AfterFinish,
    /// A `KvsRead` for another transaction.
    WrongTimestamp,
    /// A `KvsRead` not sent by the shard that owns the key.
    NotFromOwningShard,
    /// A `KvsRead` of a key neither eager nor requested.
    Unrequested,
    /// A second `KvsRead` of a key.
    Duplicate,
    /// A message an executor never accepts.
    Unexpected,
}

impl DropReason {
    /// Every reason, in declaration order (`reason as usize` is its index),
    /// for reading every counter of [`ExecutorMetrics::dropped`].
    pub const ALL: [Self; 6] = [
        Self::AfterFinish,
        Self::WrongTimestamp,
        Self::NotFromOwningShard,
        Self::Unrequested,
        Self::Duplicate,
        Self::Unexpected,
    ];
}

/// Counters shared by the executors of one host.
#[derive(Debug, Default)]
pub struct ExecutorMetrics {
    dropped: [AtomicU64; DropReason::ALL.len()],
    pub(crate) finished: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) gas_used: AtomicU64,
    pub(crate) violations_reported: AtomicU64,
    failures: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl ExecutorMetrics {
    pub(crate) fn count_drop(&self, reason: DropReason) {
        if let Some(counter) = self.dropped.get(reason as usize) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Triggers dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(reason as usize).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Triggers dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Transactions finished, successfully or not.
    pub fn finished(&self) -> u64 {
        self.finished.load(Ordering::Relaxed)
    }

    /// Transactions finished with a failure.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Gas used by the finished transactions, all together.
    pub fn gas_used(&self) -> u64 {
        self.gas_used.load(Ordering::Relaxed)
    }

    /// Undeclared accesses skipped in lenient mode.
    pub fn violations_reported(&self) -> u64 {
        self.violations_reported.load(Ordering::Relaxed)
    }

    /// Failed transactions by the kind of failure (`out_of_gas`, `guest`,
    /// `deadline`, ...).
    pub fn failures_by_reason(&self) -> std::collections::BTreeMap<String, u64> {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn record_finish(&self, failure: Option<&Failure>, gas: u64) {
        self.finished.fetch_add(1, Ordering::Relaxed);
        // Saturating, as a transaction's own total is: a counter that
        // wrapped would report little gas for a host that burnt the most.
        let _ = self.gas_used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| Some(used.saturating_add(gas)));
        if let Some(failure) = failure {
            self.failed.fetch_add(1, Ordering::Relaxed);
            *self
                .failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(failure.kind().to_owned())
                .or_default() += 1;
        }
    }
}

/// What every executor of a host shares.
#[derive(Debug)]
pub struct Shared {
    /// The settings every executor follows.
    pub options: ExecutorOptions,
    /// Which shard owns each key.
    pub shards: Arc<dyn ShardMap>,
    /// The counters every executor updates.
    pub metrics: Arc<ExecutorMetrics>,
    /// What the host's time is, for the one place an executor reads a
    /// clock.
    pub clock: Clock,
}

/// What a host's time (a trigger's `at`) is, for the one place an executor
/// reads a clock: the deadline between the guest calls of one action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Clock {
    /// The wall clock since the host started: a guest call takes as long
    /// as it takes, and the deadline may pass during one action.
    #[default]
    Real,
    /// A simulated time that moves only between triggers (a seeded,
    /// reproducible run): a guest call takes no time, so whether a
    /// deadline passes depends only on the seed, never on how fast this
    /// machine ran the calls.
    Virtual,
}

/// One transaction to execute: what a worker knows of it.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// The transaction's logical timestamp: it tags every message about the
    /// transaction and, with `worker`, names the executor.
    pub timestamp: Timestamp,
    /// The transaction's code, handed to every step of `program`.
    pub executable: Vec<u8>,
    /// The keys it declares; only these may be read or written.
    pub keys: KeySets,
    /// Gets `ExecutorFinished`, and names the executor.
    pub worker: EngineId,
    /// Also gets `ExecutorFinished`.
    pub issuer: EngineId,
    /// The executor function that runs `executable`.
    pub program: Arc<dyn Program>,
}

/// One executor's configuration (nspec's `ExecutorCfg`): its transaction,
/// with normalized key sets, and what the host shares.
#[derive(Debug)]
pub struct ExecutorConfig {
    /// The transaction, its key sets normalized.
    pub tx: Transaction,
    /// What the host shares with every executor.
    pub shared: Arc<Shared>,
    /// Whether the program serves a round's steps together
    /// ([`Program::session`]): then a round waits until all its values
    /// are here ([`round`]); otherwise each value is fed as soon as its
    /// turn comes.
    rounds: bool,
}

impl ExecutorConfig {
    /// Normalizes the key sets of `tx` ([`KeySets::normalized`]), which
    /// the executor looks keys up in by binary search.
    pub fn new(mut tx: Transaction, shared: Arc<Shared>) -> Self {
        tx.keys = tx.keys.normalized();
        // A program whose `session` panics is taken to have sessions: the
        // executor then asks again when it feeds, and fails the transaction.
        let rounds =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tx.program.session().is_some())).unwrap_or(true);
        Self { tx, shared, rounds }
    }
}

/// nspec's `ExecutorLocalState`, plus what the fixes need to remember.
#[derive(Debug, Default)]
pub struct ExecutorState {
    /// `None` until the first step ran.
    pub program_state: Option<Vec<u8>>,
    /// Values fed to the program, in the order fed.
    pub reads: Vec<(Key, Option<Datum>)>,
    /// Values that arrived before their turn, held until the canonical
    /// order reaches them.
    pub held: BTreeMap<Key, Option<Datum>>,
    /// How many eager keys were fed (they are fed in key order).
    pub eager_fed: usize,
    /// How many requested lazy keys were fed (in request order).
    pub lazy_fed: usize,
    /// The last value written per key (sent in streaming mode, held in
    /// atomic mode), in first-write order.
    pub writes: Vec<(Key, Datum)>,
    /// Lazy keys the program asked for (eager keys need no asking).
    pub requested: Vec<Key>,
    /// Gas the steps have used so far.
    pub gas_used: u64,
    /// Whether `ExecutorFinished` was sent; later triggers are dropped.
    pub finished: bool,
    /// What a debug build logged so far (bounded; empty outside dev
    /// sandboxes).
    pub log: GuestLog,
    /// Each step so far, with [`ExecutorOptions::step_trace`] only.
    pub steps: Vec<StepTrace>,
    /// The undeclared accesses skipped in lenient mode, for the report.
    /// Boxed: only a lenient transaction that skips anything fills it,
    /// and every waiting executor would carry an empty list's 24 bytes.
    #[allow(clippy::box_collection)]
    pub skipped: Option<Box<Vec<SkippedAccess>>>,
    /// What the report carries so far, as [`ExecutorOptions::report_bytes`]
    /// counts it (counted only under a bound).
    report_size: u64,
    /// For each declared lazy key (by its index in the sorted set), its
    /// place in `requested` plus one, or 0 if not asked for: whether a key
    /// was asked for or fed is then a binary search, not a scan, so a
    /// transaction of many keys costs its host no more than linear time.
    /// Empty until the first request.
    lazy_asked: Vec<u32>,
    /// Where each key of `writes` is, once there are more than a few.
    write_index: Option<std::collections::HashMap<Key, usize>>,
    /// When the deadline passes, if there is one: checked before every
    /// guest call too, since the timer fires only between actions (and a
    /// value may be handled before a timer that was due first).
    deadline: Option<Deadline>,
}

/// When a transaction's deadline passes, on the host's [`Clock`].
#[derive(Debug, Clone, Copy)]
enum Deadline {
    /// The wall clock's instant ([`Clock::Real`]): read before each call,
    /// since a host's time is read once per turn of many actions.
    Wall(std::time::Instant),
    /// The host's time ([`Clock::Virtual`]), in which calls take none.
    Host(Duration),
}

/// Writes looked up by a scan up to this many (the common case: a scan of
/// a few keys is cheaper than hashing one).
const WRITES_SCANNED: usize = 16;

/// The skipped accesses of one transaction that lenient mode logs (the
/// first, each once); its report lists up to [`SKIPPED_ACCESSES`].
const LOGGED_SKIPS: usize = 16;

impl ExecutorState {
    /// Lists an access skipped in lenient mode for the report: each key
    /// once per kind of access, the first [`SKIPPED_ACCESSES`].
    /// Returns how many it lists once it lists this one, `None` if it
    /// did not (listed already, or the list is full).
    fn skip(&mut self, skipped: SkippedAccess) -> Option<usize> {
        let list = self.skipped.get_or_insert_default();
        if list.len() < SKIPPED_ACCESSES && !list.contains(&skipped) {
            list.push(skipped);
            return Some(list.len());
        }
        None
    }

    /// The place in `requested` of lazy key number `index`, if asked for.
    fn asked_at(&self, index: usize) -> Option<usize> {
        let place = *self.lazy_asked.get(index)?;
        usize::try_from(place).ok()?.checked_sub(1)
    }

    /// Whether the program asked for `key` (a declared lazy key).
    fn was_requested(&self, config: &ExecutorConfig, key: &[u8]) -> bool {
        position(&config.tx.keys.lazy_read_keys, key).is_some_and(|index| self.asked_at(index).is_some())
    }

    /// Whether the value of `key` was fed to the program (eager keys are
    /// fed in key order, requested ones in request order).
    fn was_fed(&self, config: &ExecutorConfig, key: &[u8]) -> bool {
        if let Some(index) = position(&config.tx.keys.eager_read_keys, key) {
            return index < self.eager_fed;
        }
        position(&config.tx.keys.lazy_read_keys, key)
            .and_then(|index| self.asked_at(index))
            .is_some_and(|place| place < self.lazy_fed)
    }

    /// Counts lazy key `key` asked for, at the end of `requested`.
    fn ask(&mut self, config: &ExecutorConfig, key: Key) {
        let lazy = &config.tx.keys.lazy_read_keys;
        if let Some(index) = position(lazy, &key) {
            if self.lazy_asked.is_empty() {
                self.lazy_asked = vec![0; lazy.len()];
            }
            let place = u32::try_from(self.requested.len().saturating_add(1)).unwrap_or(u32::MAX);
            if let Some(slot) = self.lazy_asked.get_mut(index) {
                *slot = place;
            }
        }
        self.requested.push(key);
    }

    /// Where `key` is in `writes`.
    fn written_at(&mut self, key: &[u8]) -> Option<usize> {
        if self.writes.len() <= WRITES_SCANNED {
            return self.writes.iter().position(|(k, _)| k.as_slice() == key);
        }
        let writes = &self.writes;
        let index = self
            .write_index
            .get_or_insert_with(|| writes.iter().enumerate().map(|(at, (k, _))| (k.clone(), at)).collect());
        index.get(key).copied()
    }

    /// Adds a key's first write.
    fn push_write(&mut self, key: Key, datum: Datum) {
        if let Some(index) = &mut self.write_index {
            index.insert(key.clone(), self.writes.len());
        }
        self.writes.push((key, datum));
    }
}

/// A deadline this long (100 years) or longer is none
/// ([`ExecutorOptions::deadline`]).
pub const NO_DEADLINE: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// The executor's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorTimer {
    /// Run the first step, without input (set at spawn, due at once, for a
    /// transaction that declares no eager read).
    Start,
    /// The transaction's deadline.
    Deadline,
    /// Re-ask the shards for the values not yet received (set only with
    /// [`ExecutorOptions::resend`]).
    Resend,
    /// Remove the finished executor.
    Reap,
}

/// An action named by a guard.
#[derive(Debug)]
pub enum ExecutorAction {
    /// Run the first step (the `Start` timer elapsed).
    Start,
    /// Take the value a shard sent (the key and value are moved out of
    /// the `KvsRead`), and feed the program every value now due in the
    /// canonical order.
    Read {
        /// Whether it is the value due next, so a guest call follows (the
        /// host then runs the action off its event loop).
        due: bool,
    },
    /// Fail the transaction: its deadline passed.
    Expire,
    /// Re-ask the shards for every eager or requested key neither fed nor
    /// held, and set the next `Resend` (the `Resend` timer elapsed).
    Resend,
    /// Remove the finished executor (it has lingered long enough).
    Reap,
    /// Count the trigger as dropped and do nothing else.
    Drop(DropReason),
}

/// The executor behaviour (nspec's `executorBehaviour`).
#[derive(Debug)]
pub struct Executor;

/// The id of the executor of `timestamp` spawned by `worker`. Unique per
/// worker and transaction, and the id it sends from.
pub fn executor_id(worker: &EngineId, timestamp: Timestamp) -> EngineId {
    let number = Decimal::of(timestamp);
    let parts = ["executor/", &worker.name, "/", number.as_str()];
    // Built on the stack and copied once into the shared name: one
    // allocation per executor, not a `String` and then its copy.
    let mut buffer = [0u8; 128];
    let mut len = 0;
    for part in parts {
        match buffer.get_mut(len..len + part.len()) {
            Some(room) => room.copy_from_slice(part.as_bytes()),
            None => return EngineId { node: worker.node.clone(), name: parts.concat().into() },
        }
        len += part.len();
    }
    let name = std::str::from_utf8(buffer.get(..len).unwrap_or_default()).unwrap_or_default();
    EngineId { node: worker.node.clone(), name: name.into() }
}

/// Whether `id` is [`executor_id`]`(worker, timestamp)`, without building
/// it: a worker checks this for every report.
pub fn is_executor_id(id: &EngineId, worker: &EngineId, timestamp: Timestamp) -> bool {
    id.node == worker.node
        && id
            .name
            .strip_prefix("executor/")
            .and_then(|rest| rest.strip_prefix(&*worker.name))
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|number| number == Decimal::of(timestamp).as_str())
}

/// The timestamp an executor id names, whichever worker spawned it:
/// `Some` only for a name of [`executor_id`]'s form.
pub fn executor_timestamp(id: &EngineId) -> Option<Timestamp> {
    let (worker, number) = id.name.strip_prefix("executor/")?.rsplit_once('/')?;
    let timestamp: Timestamp = number.parse().ok()?;
    (!worker.is_empty() && number == Decimal::of(timestamp).as_str()).then_some(timestamp)
}

/// A number's decimal digits, on the stack.
struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    fn of(mut n: u64) -> Self {
        let mut digits = [b'0'; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            if let Some(digit) = digits.get_mut(start) {
                *digit = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 || start == 0 {
                break;
            }
        }
        Self { digits, start }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(self.digits.get(self.start..).unwrap_or_default()).unwrap_or_default()
    }
}

impl Executor {
    /// A new executor and the timers its host must schedule: the deadline,
    /// for a transaction without eager reads the first step at once, and
    /// with [`ExecutorOptions::resend`] the first re-ask (at once when
    /// there are eager reads to ask for, else one period on).
    pub fn spawn(config: ExecutorConfig, now: Duration) -> (Instance<Self>, Vec<TimerOp<ExecutorTimer>>) {
        let id = executor_id(&config.tx.worker, config.tx.timestamp);
        let eager = !config.tx.keys.eager_read_keys.is_empty();
        let mut timers = Vec::with_capacity(3);
        if !eager {
            timers.push(Timer { handle: ExecutorTimer::Start, at: now });
        }
        // A deadline of [`NO_DEADLINE`] or more is none, in every host: a
        // time that far never comes on a real clock, and a simulated one
        // must not reach it either.
        let deadline_at =
            (config.shared.options.deadline < NO_DEADLINE).then(|| now.saturating_add(config.shared.options.deadline));
        let deadline = deadline_at.and_then(|at| match config.shared.clock {
            Clock::Real => std::time::Instant::now().checked_add(config.shared.options.deadline).map(Deadline::Wall),
            Clock::Virtual => Some(Deadline::Host(at)),
        });
        if let Some(at) = deadline_at {
            timers.push(Timer { handle: ExecutorTimer::Deadline, at });
        }
        if let Some(period) = resend_period(&config.shared.options) {
            let at = if eager { now } else { now.saturating_add(period) };
            timers.push(Timer { handle: ExecutorTimer::Resend, at });
        }
        let mut env = Environment::new(ExecutorState { deadline, ..ExecutorState::default() });
        env.timers.clone_from(&timers);
        (Instance { id, config: Arc::new(config), env }, timers.into_iter().map(TimerOp::Set).collect())
    }
}

/// The period of the `Resend` timer, if set: never zero, so a re-armed
/// timer is never due at once (a host would fire it forever).
fn resend_period(options: &ExecutorOptions) -> Option<Duration> {
    options.resend.map(|period| period.max(Duration::from_millis(1)))
}

type Trig = Trigger<Message, ExecutorTimer>;
type Env = Environment<Executor>;

fn guard_finished(trigger: &Trig, _: &ExecutorConfig, env: &Env) -> Option<ExecutorAction> {
    if !env.local.finished {
        return None;
    }
    Some(match trigger {
        Trigger::Elapsed { timers, .. } if timers.contains(&ExecutorTimer::Reap) => ExecutorAction::Reap,
        _ => ExecutorAction::Drop(DropReason::AfterFinish),
    })
}

fn guard_timers(trigger: &Trig, config: &ExecutorConfig, _: &Env) -> Option<ExecutorAction> {
    let Trigger::Elapsed { timers, .. } = trigger else { return None };
    if timers.contains(&ExecutorTimer::Deadline) {
        Some(ExecutorAction::Expire)
    } else if timers.contains(&ExecutorTimer::Start) && config.tx.keys.eager_read_keys.is_empty() {
        // A transaction with eager reads starts on the first of them.
        Some(ExecutorAction::Start)
    } else if timers.contains(&ExecutorTimer::Resend) {
        Some(ExecutorAction::Resend)
    } else {
        None
    }
}

/// nspec's guard, tightened: a `KvsRead` for this transaction, from the
/// shard that owns the key, of a key the program will be fed, neither fed
/// nor held yet.
fn guard_read(trigger: &Trig, config: &ExecutorConfig, env: &Env) -> Option<ExecutorAction> {
    let Trigger::Message { envelope, .. } = trigger else { return None };
    let Message::KvsRead { timestamp, key, .. } = &envelope.payload else { return None };
    let state = &env.local;
    let reason = if *timestamp != config.tx.timestamp {
        DropReason::WrongTimestamp
    } else if &envelope.sender != config.shared.shards.shard_for(key) {
        DropReason::NotFromOwningShard
    } else if state.held.contains_key(key) || state.was_fed(config, key) {
        DropReason::Duplicate
    } else if !contains(&config.tx.keys.eager_read_keys, key) && !state.was_requested(config, key) {
        DropReason::Unrequested
    } else {
        // The value that completes its round, or the next one due when
        // values are fed one by one, sets off a guest call.
        let round = round(config, state);
        let due = if config.rounds { state.held.len() + 1 == round.len() } else { round.first() == Some(key) };
        return Some(ExecutorAction::Read { due });
    };
    Some(ExecutorAction::Drop(reason))
}

/// The keys of the round to be fed next, in the canonical order: first
/// every eager key (in key order), then, round by round, the lazy keys the
/// previous round requested (in the order requested). A round's steps run
/// only once all its values have arrived, back to back; so neither the
/// steps nor which of them share an instance (and so their gas) depend on
/// the order values arrive in, only on the transaction and its snapshot.
/// Only values of the current round can have arrived: eager keys are all
/// in the first, and a lazy key is asked for by the round before its own.
fn round<'a>(config: &'a ExecutorConfig, state: &'a ExecutorState) -> &'a [Key] {
    match config.tx.keys.eager_read_keys.get(state.eager_fed..) {
        Some(eager) if !eager.is_empty() => eager,
        _ => state.requested.get(state.lazy_fed..).unwrap_or_default(),
    }
}

/// Whether every value of the current round has arrived.
fn round_complete(config: &ExecutorConfig, state: &ExecutorState) -> bool {
    let round = round(config, state);
    !round.is_empty() && state.held.len() >= round.len() && round.iter().all(|key| state.held.contains_key(key))
}

fn guard_other(_: &Trig, _: &ExecutorConfig, _: &Env) -> Option<ExecutorAction> {
    Some(ExecutorAction::Drop(DropReason::Unexpected))
}

fn contains(set: &[Key], key: &[u8]) -> bool {
    position(set, key).is_some()
}

/// Where `key` is in the sorted `set`.
fn position(set: &[Key], key: &[u8]) -> Option<usize> {
    set.binary_search_by(|k| k.as_slice().cmp(key)).ok()
}

impl Behaviour for Executor {
    type Config = ExecutorConfig;
    type Local = ExecutorState;
    type Msg = Message;
    type Timer = ExecutorTimer;
    type Action = ExecutorAction;
    type Spawn = std::convert::Infallible;

    const STRATEGY: GuardStrategy = GuardStrategy::FirstMatch;

    fn guards() -> &'static [crate::engine::Guard<Self>] {
        &[guard_finished, guard_timers, guard_read, guard_other]
    }

    fn offload(action: &Self::Action) -> bool {
        matches!(action, ExecutorAction::Start | ExecutorAction::Read { due: true, .. })
    }

    /// Only a `KvsRead` for this transaction, from the shard that owns the
    /// key, of a key declared readable, can ever be fed: everything else is
    /// dropped on arrival (and counted), so junk cannot fill the mailbox.
    /// Such a read is never dropped, even past the mailbox's bound: its
    /// shard will not send it again.
    fn admit(config: &ExecutorConfig, envelope: &Envelope<Message>) -> Admission {
        let reason = match &envelope.payload {
            Message::KvsRead { timestamp, .. } if *timestamp != config.tx.timestamp => DropReason::WrongTimestamp,
            Message::KvsRead { key, .. } if &envelope.sender != config.shared.shards.shard_for(key) => {
                DropReason::NotFromOwningShard
            }
            Message::KvsRead { key, .. }
                if !contains(&config.tx.keys.eager_read_keys, key)
                    && !contains(&config.tx.keys.lazy_read_keys, key) =>
            {
                DropReason::Unrequested
            }
            Message::KvsRead { .. } => return Admission::Always,
            _ => DropReason::Unexpected,
        };
        config.shared.metrics.count_drop(reason);
        Admission::Drop
    }

    fn act(
        action: ExecutorAction,
        trigger: &mut Trig,
        id: &EngineId,
        config: &ExecutorConfig,
        env: &mut Env,
    ) -> Effect<Self> {
        let mut turn = Turn { config, state: &mut env.local, effect: Effect::default(), now: trigger.at(), id };
        match action {
            ExecutorAction::Start => {
                turn.effect.timers.push(TimerOp::Cancel(ExecutorTimer::Start));
                if turn.state.program_state.is_none() && !turn.state.finished {
                    if turn.past_deadline() {
                        turn.expire();
                    } else {
                        turn.step(None, None);
                    }
                }
                turn.feed_due();
                turn.fail_if_stalled();
                // A `Resend` due with `Start` (a zero period) is not lost.
                if matches!(trigger, Trigger::Elapsed { timers, .. } if timers.contains(&ExecutorTimer::Resend)) {
                    turn.resend();
                }
            }
            ExecutorAction::Read { .. } => {
                // The guard named this action for a `KvsRead` only.
                if let Trigger::Message { envelope, .. } = trigger
                    && let Message::KvsRead { key, data, .. } = &mut envelope.payload
                {
                    turn.state.held.insert(std::mem::take(key), data.take());
                }
                turn.feed_due();
                turn.fail_if_stalled();
            }
            ExecutorAction::Resend => turn.resend(),
            ExecutorAction::Expire => turn.expire(),
            ExecutorAction::Reap => turn.effect.stop = true,
            ExecutorAction::Drop(reason) => {
                tracing::debug!(?reason, timestamp = config.tx.timestamp, "executor dropped a trigger");
                config.shared.metrics.count_drop(reason);
            }
        }
        turn.effect
    }
}

/// One action's work on one executor: what it reads and what it emits.
struct Turn<'a> {
    config: &'a ExecutorConfig,
    state: &'a mut ExecutorState,
    effect: Effect<Executor>,
    now: Duration,
    id: &'a EngineId,
}

impl Turn<'_> {
    fn send(&mut self, target: EngineId, payload: Message) {
        self.effect.send.push(Envelope::new(self.id.clone(), target, payload));
    }

    fn send_to_shard(&mut self, key: &[u8], payload: Message) {
        let shard = self.config.shared.shards.shard_for(key).clone();
        self.send(shard, payload);
    }

    /// Re-asks the owning shard for every eager key and every requested
    /// lazy key neither fed nor held (eager keys in key order, then lazy
    /// keys in request order), and sets the next `Resend`. Runs no step:
    /// steps and gas are those of a run without loss.
    fn resend(&mut self) {
        let Some(period) = resend_period(&self.config.shared.options) else { return };
        if self.state.finished {
            return;
        }
        let timestamp = self.config.tx.timestamp;
        let state = &*self.state;
        // Keys are fed in the canonical order, so the ones not fed yet are
        // the tails past the counts fed.
        let eager = self.config.tx.keys.eager_read_keys.get(state.eager_fed..).unwrap_or_default();
        let lazy = state.requested.get(state.lazy_fed..).unwrap_or_default();
        let missing: Vec<Key> =
            eager.iter().chain(lazy).filter(|key| !state.held.contains_key(*key)).cloned().collect();
        for key in missing {
            self.send_to_shard(&key, Message::KvsReadRequest { timestamp, key: key.clone(), actual: true });
        }
        self.effect
            .timers
            .push(TimerOp::Set(Timer { handle: ExecutorTimer::Resend, at: self.now.saturating_add(period) }));
    }

    /// Fails the transaction: its deadline has passed.
    fn expire(&mut self) {
        let bound_ms = u64::try_from(self.config.shared.options.deadline.as_millis()).unwrap_or(u64::MAX);
        self.finish(Some(Failure::Deadline { bound_ms }));
    }

    /// Before each guest call: whether the deadline has passed. The
    /// deadline timer fires only between actions, one action may feed a
    /// transaction many values (a call each), and a value that arrived
    /// after the deadline may be handled before the timer that was due
    /// first: without this, whether such a transaction succeeded would
    /// depend on the order the host took them in. On a [`Clock::Real`]
    /// the wall clock is read before each call; on a [`Clock::Virtual`]
    /// calls take no time, and the host's time of the trigger decides.
    fn past_deadline(&self) -> bool {
        match self.state.deadline {
            None => false,
            Some(Deadline::Wall(at)) => std::time::Instant::now() >= at,
            Some(Deadline::Host(at)) => self.now >= at,
        }
    }

    /// Whether the next value in the canonical order is held, ready to feed.
    fn next_is_due(&self) -> bool {
        round(self.config, self.state).first().is_some_and(|key| self.state.held.contains_key(key))
    }

    /// Feeds the program, in the canonical order ([`round`]), every value
    /// whose turn has come: for a program with sessions, every round whose
    /// values have all arrived, a round's steps back to back in one
    /// session; for one without, each value as soon as it and every value
    /// before it have arrived. Stops at the first value missing, or when
    /// the transaction is over.
    /// Between two calls, a deadline passed fails the transaction.
    fn feed_due(&mut self) {
        let config = self.config;
        if !config.rounds {
            while !self.state.finished && self.next_is_due() {
                if self.past_deadline() {
                    return self.expire();
                }
                let Some(input) = self.take_next_due() else { return };
                self.step(None, Some(input));
            }
            return;
        }
        while !self.state.finished && round_complete(config, self.state) {
            let len = round(config, self.state).len();
            let session = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.tx.program.session()));
            let mut session = match session {
                Ok(session) => session,
                Err(panic) => return self.finish(Some(panicked(&*panic))),
            };
            for _ in 0..len {
                if self.past_deadline() {
                    return self.expire();
                }
                let Some(input) = self.take_next_due() else { return };
                self.step(session.as_deref_mut(), Some(input));
                if self.state.finished {
                    return;
                }
            }
        }
    }

    /// Fails the transaction ([`Failure::Stalled`]) if the program has run,
    /// has not halted, and waits for no value: every eager value and every
    /// value it asked for was fed, so no input can ever come. (A step runs
    /// only on an input, but for the first.)
    fn fail_if_stalled(&mut self) {
        if !self.state.finished && self.state.program_state.is_some() && round(self.config, self.state).is_empty() {
            self.finish(Some(Failure::Stalled));
        }
    }

    /// Takes the next value in the canonical order ([`round`]) out of
    /// those held, and counts it fed; `None` if it has not arrived.
    fn take_next_due(&mut self) -> Option<Input> {
        let key = round(self.config, self.state).first()?.clone();
        let datum = self.state.held.remove(&key)?;
        if self.state.eager_fed < self.config.tx.keys.eager_read_keys.len() {
            self.state.eager_fed += 1;
        } else {
            self.state.lazy_fed += 1;
        }
        Some(Input { key, datum })
    }

    fn step(&mut self, session: Option<&mut (dyn Session + '_)>, input: Option<Input>) {
        let config = self.config;
        // Checked before the program sees the value: a value fed is a value
        // reported.
        if let Some(input) = &input
            && let Err(failure) = self.report(0, report_entry_bytes(&input.key, input.datum.as_deref()))
        {
            return self.finish(Some(failure));
        }
        let gas_left = config.shared.options.gas_limit.saturating_sub(self.state.gas_used);
        let call = StepCall {
            executable: &config.tx.executable,
            state: self.state.program_state.as_deref(),
            input: input.as_ref(),
            gas_limit: gas_left,
        };
        // A program that panics (a native one, or a host bug under a wasm
        // one) fails its transaction, with every lock released, instead of
        // taking the host's thread down and leaving the locks dangling.
        let mut report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match session {
            Some(session) => session.step(call),
            None => config.tx.program.step(call),
        }))
        .unwrap_or_else(|panic| StepReport {
            result: Err(panicked(&*panic)),
            gas_used: 0,
            log: GuestLog::default(),
        });
        // A program says what its step used; one that says more than the
        // step was given (an embedder's own `Program`) ran out of gas, and
        // is charged what it was given.
        if report.gas_used > gas_left {
            report.gas_used = gas_left;
            report.result = Err(Failure::OutOfGas);
        }
        self.state.gas_used = self.state.gas_used.saturating_add(report.gas_used);
        if config.shared.options.step_trace {
            self.state.steps.push(StepTrace::of(input.as_ref(), &report));
        }
        self.state.log.append(report.log);
        if let Some(Input { key, datum }) = input {
            self.state.reads.push((key, datum));
        }
        let output = match report.result {
            Ok(output) => output,
            Err(failure) => return self.finish(Some(failure)),
        };
        self.state.program_state = Some(output.state);
        for request in output.requests {
            if let Err(violation) = self.request(request, output.halted) {
                match config.shared.options.access_mode {
                    // Only an undeclared access can be skipped. A second
                    // write in streaming mode cannot: the program's last
                    // word would be lost and the transaction reported a
                    // success with the wrong value. Nor can a write past
                    // the report's bound.
                    _ if !matches!(
                        violation,
                        Failure::AccessViolation { access: Access::Read | Access::Write, .. }
                    ) =>
                    {
                        return self.finish(Some(violation));
                    }
                    AccessMode::Strict => return self.finish(Some(violation)),
                    AccessMode::Lenient => self.skip_access(&violation),
                }
            }
        }
        if output.halted {
            self.finish(None);
        }
    }

    /// Lenient mode: lists an undeclared access instead of failing, and
    /// logs it as the report lists it, each once, and only the first few:
    /// a guest that skips thousands must not flood the log.
    fn skip_access(&mut self, violation: &Failure) {
        let config = self.config;
        config.shared.metrics.violations_reported.fetch_add(1, Ordering::Relaxed);
        let Failure::AccessViolation { key, access } = violation else { return };
        let timestamp = config.tx.timestamp;
        match self.state.skip(SkippedAccess { key: key.clone(), access: *access }) {
            Some(n) if n < LOGGED_SKIPS => tracing::warn!(%violation, timestamp, "undeclared access skipped"),
            Some(LOGGED_SKIPS) => tracing::warn!(
                %violation,
                timestamp,
                "undeclared access skipped; this transaction's later ones are not logged (its report lists them)"
            ),
            _ => {}
        }
    }

    /// Turns one request into messages, or names the violation. A read
    /// asked for by a step that halted is checked but not sent: no value
    /// can be fed once the program has halted, and its shard would answer
    /// a request the executor cancels at once (its lock is released as
    /// every lazy key's never asked for is).
    fn request(&mut self, request: Request, halting: bool) -> Result<(), Failure> {
        let keys = &self.config.tx.keys;
        let timestamp = self.config.tx.timestamp;
        match request {
            Request::Read(key) => {
                let already = self.state.was_requested(self.config, &key) || self.state.was_fed(self.config, &key);
                if already {
                    return Ok(());
                }
                if contains(&keys.lazy_read_keys, &key) {
                    if !halting {
                        self.send_to_shard(&key, Message::KvsReadRequest { timestamp, key: key.clone(), actual: true });
                        self.state.ask(self.config, key);
                    }
                } else if !contains(&keys.eager_read_keys, &key) {
                    return Err(Failure::AccessViolation { key, access: Access::Read });
                }
                // An eager key needs no request: its shard sends it anyway.
            }
            Request::Write(key, datum) => {
                if !contains(&keys.will_write_keys, &key) && !contains(&keys.may_write_keys, &key) {
                    return Err(Failure::AccessViolation { key, access: Access::Write });
                }
                let previous = self.state.written_at(&key);
                match (self.config.shared.options.write_mode, previous) {
                    (WriteMode::Streaming, Some(_)) => {
                        return Err(Failure::AccessViolation { key, access: Access::Rewrite });
                    }
                    (WriteMode::Streaming, None) => {
                        self.report(0, report_entry_bytes(&key, Some(&datum)))?;
                        self.send_to_shard(
                            &key,
                            Message::KvsWrite { timestamp, key: key.clone(), datum: Some(datum.clone()) },
                        );
                        self.state.push_write(key, datum);
                    }
                    (WriteMode::Atomic, Some(at)) => {
                        // The report keeps only the last value per key.
                        let replaced = self.state.writes.get(at).map_or(0, |(_, value)| value.len() as u64);
                        self.report(replaced, datum.len() as u64)?;
                        if let Some((_, value)) = self.state.writes.get_mut(at) {
                            *value = datum;
                        }
                    }
                    (WriteMode::Atomic, None) => {
                        self.report(0, report_entry_bytes(&key, Some(&datum)))?;
                        self.state.push_write(key, datum);
                    }
                }
            }
        }
        Ok(())
    }

    /// Counts `added` bytes into the report in place of `removed`, or names
    /// the failure if that takes it past [`ExecutorOptions::report_bytes`]
    /// (and counts nothing). Without a bound nothing is counted: the
    /// options do not change during a transaction.
    fn report(&mut self, removed: u64, added: u64) -> Result<(), Failure> {
        let Some(limit) = self.config.shared.options.report_bytes else { return Ok(()) };
        let size = self.state.report_size.saturating_sub(removed).saturating_add(added);
        if size > limit {
            return Err(Failure::TooLarge { what: Oversize::Report, size, limit });
        }
        self.state.report_size = size;
        Ok(())
    }

    /// Ends the transaction: writes held for an atomic success, releases
    /// for every declared key left unresolved (computed now, after the
    /// final step), then `ExecutorFinished` to the worker and the issuer.
    fn finish(&mut self, failure: Option<Failure>) {
        let config = self.config;
        let timestamp = config.tx.timestamp;
        let options = &config.shared.options;
        self.state.finished = true;
        let success = failure.is_none();
        // The state is not needed past this point (every later trigger is
        // dropped), so what the report carries is moved out of it, and the
        // rest freed below: a finished executor lingers (to count late
        // messages), and must not hold its transaction's values meanwhile.
        let written: Vec<(Key, Datum)> = match (options.write_mode, success) {
            (WriteMode::Atomic, false) => Vec::new(),
            _ => {
                let mut writes = std::mem::take(&mut self.state.writes);
                writes.sort();
                writes
            }
        };
        if options.write_mode == WriteMode::Atomic {
            for (key, datum) in &written {
                self.send_to_shard(key, Message::KvsWrite { timestamp, key: key.clone(), datum: Some(datum.clone()) });
            }
        }
        let mut values_read = std::mem::take(&mut self.state.reads);
        values_read.sort();
        for key in &config.tx.keys.lazy_read_keys {
            // Released unless the report says it was read, even if asked
            // for: across processes a request is sent at most once, so the
            // shard may never have heard it (and then, with no release,
            // would keep the read's marker pending for ever). A shard that
            // did takes the release as a cancel if it has not answered
            // yet, and ignores it if it has (an answer held here, or one
            // the report had no room for).
            if values_read.binary_search_by(|(k, _)| k.cmp(key)).is_err() {
                self.send_to_shard(key, Message::KvsReadRequest { timestamp, key: key.clone(), actual: false });
            }
        }
        let mut write_keys: Vec<&Key> =
            config.tx.keys.will_write_keys.iter().chain(&config.tx.keys.may_write_keys).collect();
        write_keys.sort();
        write_keys.dedup();
        for key in write_keys {
            // `written` is sorted.
            if written.binary_search_by(|(k, _)| k.cmp(key)).is_err() {
                self.send_to_shard(key, Message::KvsWrite { timestamp, key: key.clone(), datum: None });
            }
        }
        self.state.program_state = None;
        self.state.writes = Vec::new();
        self.state.held = BTreeMap::new();
        self.state.requested = Vec::new();
        self.state.lazy_asked = Vec::new();
        self.state.write_index = None;
        config.shared.metrics.record_finish(failure.as_ref(), self.state.gas_used);
        match &failure {
            None => tracing::debug!(timestamp, gas = self.state.gas_used, "transaction succeeded"),
            Some(failure) => tracing::debug!(timestamp, %failure, "transaction failed"),
        }
        let finished = ExecutorFinished {
            timestamp,
            success,
            values_read,
            values_written: written,
            failure,
            gas_used: self.state.gas_used,
            diagnostics: Diagnostics {
                log: std::mem::take(&mut self.state.log),
                steps: std::mem::take(&mut self.state.steps),
                skipped: self.state.skipped.take().map(|list| *list).unwrap_or_default(),
            },
        };
        let finished = Arc::new(finished);
        if config.tx.issuer != config.tx.worker {
            self.send(config.tx.issuer.clone(), Message::ExecutorFinished(finished.clone()));
        }
        self.send(config.tx.worker.clone(), Message::ExecutorFinished(finished));
        self.effect.timers.push(TimerOp::Cancel(ExecutorTimer::Start));
        self.effect.timers.push(TimerOp::Cancel(ExecutorTimer::Deadline));
        if options.resend.is_some() {
            self.effect.timers.push(TimerOp::Cancel(ExecutorTimer::Resend));
        }
        self.effect
            .timers
            .push(TimerOp::Set(Timer { handle: ExecutorTimer::Reap, at: self.now.saturating_add(options.linger) }));
    }
}

/// What one key and its value (`None`: absent) add to a report, as
/// [`ExecutorOptions::report_bytes`] counts it: their bytes and
/// [`REPORT_ENTRY_BYTES`].
pub fn report_entry_bytes(key: &[u8], datum: Option<&[u8]>) -> u64 {
    (key.len() as u64).saturating_add(datum.map_or(0, |d| d.len() as u64)).saturating_add(REPORT_ENTRY_BYTES)
}

/// The text of a panic's payload, if it has one.
/// The failure of a transaction whose program panicked.
fn panicked(panic: &(dyn std::any::Any + Send)) -> Failure {
    Failure::Host { message: format!("the program panicked: {}", panic_message(panic)) }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

#[cfg(test)]
mod tests {
    use super::{EngineId, executor_id, executor_timestamp, is_executor_id};

    #[test]
    fn an_executor_id_is_recognized_without_being_built() {
        let worker = EngineId::local("worker");
        for timestamp in [0, 1, 9, 10, 12_345, u64::MAX] {
            let id = executor_id(&worker, timestamp);
            assert_eq!(&*id.name, format!("executor/worker/{timestamp}"));
            assert!(is_executor_id(&id, &worker, timestamp));
            assert!(!is_executor_id(&id, &worker, timestamp.wrapping_add(1)));
        }
        let long = EngineId::local("w".repeat(300));
        assert_eq!(&*executor_id(&long, 7).name, format!("executor/{}/7", long.name));
        assert!(!is_executor_id(&EngineId::local("executor/worker/07"), &worker, 7), "no leading zeros");
        assert!(!is_executor_id(&EngineId::local("executor/other/7"), &worker, 7));
        let elsewhere = EngineId { node: Some("n".into()), name: "executor/worker/7".into() };
        assert!(!is_executor_id(&elsewhere, &worker, 7), "another node");
        let remote = EngineId { node: Some("n".into()), name: "worker".into() };
        assert!(is_executor_id(&executor_id(&remote, 3), &remote, 3));
        assert!(!is_executor_id(&executor_id(&remote, 3), &worker, 3));
    }

    #[test]
    fn an_executor_id_names_its_timestamp_whatever_its_worker() {
        for (worker, timestamp) in [("worker", 0), ("a/b", 12_345), ("w", u64::MAX)] {
            assert_eq!(executor_timestamp(&executor_id(&EngineId::local(worker), timestamp)), Some(timestamp));
        }
        for name in ["worker", "shard-0", "executor/7", "executor//7", "executor/w/07", "executor/w/x", "client/7"] {
            assert_eq!(executor_timestamp(&EngineId::local(name)), None, "{name}");
        }
    }
}
