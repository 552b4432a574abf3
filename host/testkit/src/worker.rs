//! The mempool worker: orders transactions and starts their executors.
//!
//! It gives each `TransactionRequest` the next timestamp (from 1), sends
//! `KvsAcquireLock` with the keys each shard owns to every shard that owns
//! a declared key, and, once all of them answered `KvsLockAcquired`, asks its
//! host to spawn the transaction's executor (with a unique id:
//! [`executor_id`]). It collects `ExecutorFinished` from the executor's
//! real id.
//!
//! A windowed worker ([`Worker::windowed`]) orders at most a window of
//! transactions not yet finished. A request beyond it waits, without a
//! timestamp, and the reports that free the window order the waiting ones
//! in arrival order: timestamps follow arrival order as without a window,
//! but a flood of requests costs the node only a queue of requests, not
//! every transaction's locks, versions and executor at once.
//!
//! It tells every shard two watermarks, each only when it changes (for
//! each shard the write watermark first):
//!
//! - heard-all-writes, `UpdateSeenAll { N, write: true }`: every
//!   transaction up to `N` holds its locks;
//! - heard-all-reads, `UpdateSeenAll { M, write: false }`: the smaller of
//!   that `N` and the largest `M` such that every transaction up to `M`
//!   has finished (its `ExecutorFinished` recorded). A shard collapses the
//!   versions below heard-all-reads; an executor re-run from the start (a
//!   new incarnation on another host, or one re-asking for a lost read)
//!   must still find the version it reads until its transaction finished,
//!   so this watermark waits for the finish, and also moves on one.
//!
//! A request may carry a tag its issuer chose; the worker then tells the
//! issuer `TransactionOrdered { tag, timestamp }` when it orders it, so an
//! issuer with many requests in flight matches each report to its request
//! exactly (and sees a request that ran twice) instead of by arrival order.
//!
//! Fixed from nspec: the last transaction's locks are counted (nspec's
//! off-by-one never lets it run), watermarks only grow, and the executor
//! is addressed by the id it sends from. Resubmission is not supported: a
//! resubmitted transaction is treated as new.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use executor_host::engine::{Behaviour, Effect, EngineId, Envelope, Environment, GuardStrategy, Instance, Trigger};
use executor_host::{ExecutorFinished, KeySets, Message, Timestamp};
use executor_host::{ShardMap, executor_id, is_executor_id};

/// The window a node's worker runs with ([`Worker::windowed`]): the
/// concurrent harness's and a deployment's. With everything submitted at
/// once and no bound, every transaction's locks, versions and executor are
/// live together, and each message finds its transaction's state evicted
/// from the caches: 50,000 native transfers ran about 25% slower than with
/// this bound (measured from 128 to 4,000: 512 to 2,000 were alike).
pub const DEFAULT_WINDOW: std::num::NonZeroU64 = std::num::NonZeroU64::MIN.saturating_add(1023);

/// The worker's configuration.
#[derive(Debug)]
pub struct WorkerConfig {
    /// Which shard owns a key, to send each its part of the locks.
    pub shards: Arc<dyn ShardMap>,
    /// Every shard, to tell them the watermarks.
    pub all_shards: Vec<EngineId>,
}

/// A transaction as the worker records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ordered {
    /// The transaction's code.
    pub executable: Vec<u8>,
    /// Its key sets, normalized.
    pub keys: KeySets,
    /// Who submitted it (gets `ExecutorFinished` too).
    pub issuer: EngineId,
}

/// What the worker asks its host to spawn: an executor for this
/// transaction (the host supplies the program).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpawnExecutor {
    /// The transaction's timestamp.
    pub timestamp: Timestamp,
    /// The worker (names the executor and gets its report).
    pub worker: EngineId,
    /// The transaction.
    pub tx: Ordered,
}

/// The worker's local state.
#[derive(Debug, Default)]
pub struct WorkerState {
    next: Timestamp,
    /// Transactions waiting for their locks, by timestamp. A transaction
    /// leaves when its executor is spawned: the spawn request takes it
    /// (the worker keeps no copy of what it has handed on).
    pub transactions: BTreeMap<Timestamp, Ordered>,
    /// Shards yet to acknowledge each transaction's locks: an
    /// acknowledgement counts once, and only from a shard that was asked
    /// (a handful per transaction: a list, not a set).
    waiting: BTreeMap<Timestamp, Vec<EngineId>>,
    /// Locked transactions above the watermark.
    locked: BTreeSet<Timestamp>,
    /// Every transaction up to here holds its locks (and shards know: the
    /// heard-all-writes watermark).
    pub watermark: Timestamp,
    /// Every transaction up to here has finished.
    pub finished_watermark: Timestamp,
    /// The heard-all-reads watermark last sent: the smaller of
    /// `watermark` and `finished_watermark`.
    pub read_watermark: Timestamp,
    /// Each finished transaction's report, by timestamp; the first from
    /// its executor's real id counts.
    pub finished: BTreeMap<Timestamp, Arc<ExecutorFinished>>,
    /// Messages dropped (unknown acknowledgements, reports from impostors).
    pub dropped: u64,
    /// At most this many transactions ordered and not finished; `None`:
    /// no bound.
    window: Option<u64>,
    /// Transactions received while the window was full, in arrival
    /// order, each with its request's tag: not yet ordered (no timestamp,
    /// no lock).
    queued: VecDeque<(Ordered, Option<u64>)>,
}

/// What the worker's guard names.
#[derive(Debug)]
pub enum WorkerAction {
    /// A `TransactionRequest`: give it the next timestamp and lock its keys
    /// (the transaction is moved out of the request, its key sets
    /// normalized; its sender is the issuer).
    Order,
    /// A shard acknowledged the locks of `timestamp`, for the first time.
    Acquired {
        /// The transaction whose locks a shard holds.
        timestamp: Timestamp,
        /// The shard.
        shard: EngineId,
    },
    /// An executor's report, from its real id.
    Finished(Arc<ExecutorFinished>),
    /// Anything else: dropped and counted.
    Drop,
}

/// The worker behaviour.
#[derive(Debug)]
pub struct Worker;

impl WorkerState {
    /// The timestamp the next transaction gets: every one below it has
    /// been ordered.
    pub fn next_timestamp(&self) -> Timestamp {
        self.next
    }

    /// Whether `timestamp` was given to a transaction.
    pub fn ordered(&self, timestamp: Timestamp) -> bool {
        (1..self.next).contains(&timestamp)
    }

    /// Requests received and not yet ordered (the window was full).
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    fn window_full(&self) -> bool {
        self.window.is_some_and(|window| {
            let ordered = self.next.saturating_sub(1);
            let finished = u64::try_from(self.finished.len()).unwrap_or(u64::MAX);
            ordered.saturating_sub(finished) >= window
        })
    }
}

impl Worker {
    /// A worker engine named `id`, whose first transaction gets timestamp 1.
    pub fn instance(id: EngineId, config: WorkerConfig) -> Instance<Self> {
        Instance {
            id,
            config: Arc::new(config),
            env: Environment::new(WorkerState { next: 1, ..WorkerState::default() }),
        }
    }

    /// A worker that orders at most `window` transactions not yet
    /// finished, and queues the requests beyond them in arrival order.
    pub fn windowed(id: EngineId, config: WorkerConfig, window: std::num::NonZeroU64) -> Instance<Self> {
        let mut instance = Self::instance(id, config);
        instance.env.local.window = Some(window.get());
        instance
    }
}

fn guard(trigger: &Trigger<Message, ()>, _: &WorkerConfig, env: &Environment<Worker>) -> Option<WorkerAction> {
    let Trigger::Message { envelope, .. } = trigger else { return Some(WorkerAction::Drop) };
    Some(match &envelope.payload {
        Message::TransactionRequest { .. } => WorkerAction::Order,
        Message::KvsLockAcquired { timestamp }
            if env.local.waiting.get(timestamp).is_some_and(|shards| shards.contains(&envelope.sender)) =>
        {
            WorkerAction::Acquired { timestamp: *timestamp, shard: envelope.sender.clone() }
        }
        Message::ExecutorFinished(report)
            if is_executor_id(&envelope.sender, &envelope.target, report.timestamp)
                && env.local.ordered(report.timestamp)
                && !env.local.finished.contains_key(&report.timestamp) =>
        {
            WorkerAction::Finished(report.clone())
        }
        _ => WorkerAction::Drop,
    })
}

impl Behaviour for Worker {
    type Config = WorkerConfig;
    type Local = WorkerState;
    type Msg = Message;
    type Timer = ();
    type Action = WorkerAction;
    type Spawn = SpawnExecutor;

    const STRATEGY: GuardStrategy = GuardStrategy::FirstMatch;

    fn guards() -> &'static [executor_host::engine::Guard<Self>] {
        &[guard]
    }

    fn act(
        action: WorkerAction,
        trigger: &mut Trigger<Message, ()>,
        me: &EngineId,
        config: &WorkerConfig,
        env: &mut Environment<Self>,
    ) -> Effect<Self> {
        let state = &mut env.local;
        let mut effect = Effect::default();
        // The worker sets no timer: one elapsing is dropped, and counted,
        // like any other trigger it does not expect.
        let Trigger::Message { envelope, .. } = trigger else {
            tracing::debug!("worker dropped a timer it never set");
            state.dropped += 1;
            return effect;
        };
        match action {
            WorkerAction::Order => {
                // The guard names `Order` for a request only.
                let Message::TransactionRequest { executable, keys, tag, .. } = &mut envelope.payload else {
                    state.dropped += 1;
                    return effect;
                };
                let tx = Ordered {
                    executable: std::mem::take(executable),
                    keys: std::mem::take(&mut **keys).normalized(),
                    issuer: envelope.sender.clone(),
                };
                // Transactions wait only while the window is full (a report
                // that frees it orders them), so they keep arrival order.
                if state.window_full() {
                    state.queued.push_back((tx, *tag));
                } else {
                    order(state, tx, *tag, me, config, &mut effect);
                }
            }
            WorkerAction::Acquired { timestamp, shard } => {
                if let Some(missing) = state.waiting.get_mut(&timestamp) {
                    missing.retain(|s| *s != shard);
                    if missing.is_empty() {
                        locked(state, timestamp, me, config, &mut effect);
                    }
                }
            }
            WorkerAction::Finished(report) => {
                state.finished.insert(report.timestamp, report);
                while state.finished.contains_key(&(state.finished_watermark + 1)) {
                    state.finished_watermark += 1;
                }
                announce(state, false, me, config, &mut effect);
                while !state.window_full()
                    && let Some((tx, tag)) = state.queued.pop_front()
                {
                    order(state, tx, tag, me, config, &mut effect);
                }
            }
            WorkerAction::Drop => {
                tracing::debug!(?envelope.payload, "worker dropped a message");
                state.dropped += 1;
            }
        }
        effect
    }
}

/// Gives `tx` the next timestamp, tells its issuer which one if the
/// request was tagged, and asks each shard it touches for its locks.
fn order(
    state: &mut WorkerState,
    tx: Ordered,
    tag: Option<u64>,
    me: &EngineId,
    config: &WorkerConfig,
    effect: &mut Effect<Worker>,
) {
    let timestamp = state.next;
    state.next += 1;
    if let Some(tag) = tag {
        effect.send.push(Envelope::new(me.clone(), tx.issuer.clone(), Message::TransactionOrdered { tag, timestamp }));
    }
    let per_shard = split_by_shard(&tx.keys, config.shards.as_ref());
    state.transactions.insert(timestamp, tx);
    state.waiting.insert(timestamp, per_shard.keys().cloned().collect());
    let executor = executor_id(me, timestamp);
    for (shard, keys) in per_shard {
        let payload =
            Message::KvsAcquireLock { timestamp, keys: Box::new(keys), worker: me.clone(), executor: executor.clone() };
        effect.send.push(Envelope::new(me.clone(), shard, payload));
    }
    if state.waiting.get(&timestamp).is_some_and(Vec::is_empty) {
        locked(state, timestamp, me, config, effect);
    }
}

/// Every lock of `timestamp` is held: spawn its executor and advance the
/// watermark as far as the locked prefix reaches, telling the shards.
fn locked(
    state: &mut WorkerState,
    timestamp: Timestamp,
    me: &EngineId,
    config: &WorkerConfig,
    effect: &mut Effect<Worker>,
) {
    state.waiting.remove(&timestamp);
    if let Some(tx) = state.transactions.remove(&timestamp) {
        effect.spawn.push(SpawnExecutor { timestamp, worker: me.clone(), tx });
    }
    state.locked.insert(timestamp);
    let before = state.watermark;
    while state.locked.remove(&(state.watermark + 1)) {
        state.watermark += 1;
    }
    announce(state, state.watermark != before, me, config, effect);
}

/// Tells every shard the watermarks that moved: heard-all-writes if
/// `write_moved`, heard-all-reads if the smaller of the lock and finished
/// watermarks grew past the one last sent.
fn announce(
    state: &mut WorkerState,
    write_moved: bool,
    me: &EngineId,
    config: &WorkerConfig,
    effect: &mut Effect<Worker>,
) {
    let read = state.watermark.min(state.finished_watermark);
    let read_moved = read > state.read_watermark;
    if read_moved {
        state.read_watermark = read;
    }
    for shard in &config.all_shards {
        for (write, moved, timestamp) in [(true, write_moved, state.watermark), (false, read_moved, read)] {
            if moved {
                let seen = Message::UpdateSeenAll { timestamp, write };
                effect.send.push(Envelope::new(me.clone(), shard.clone(), seen));
            }
        }
    }
}

/// The declared keys, grouped by the shard that owns them.
fn split_by_shard(keys: &KeySets, shards: &dyn ShardMap) -> BTreeMap<EngineId, KeySets> {
    type Field = fn(&mut KeySets) -> &mut Vec<Vec<u8>>;
    let mut out: BTreeMap<EngineId, KeySets> = BTreeMap::new();
    let sets: [(&Vec<Vec<u8>>, Field); 4] = [
        (&keys.lazy_read_keys, |k| &mut k.lazy_read_keys),
        (&keys.eager_read_keys, |k| &mut k.eager_read_keys),
        (&keys.will_write_keys, |k| &mut k.will_write_keys),
        (&keys.may_write_keys, |k| &mut k.may_write_keys),
    ];
    for (set, field) in sets {
        for key in set {
            field(out.entry(shards.shard_for(key).clone()).or_default()).push(key.clone());
        }
    }
    out
}
