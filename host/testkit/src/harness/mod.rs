//! A whole node in one process, for tests, examples and the `run` command:
//! shards, a mempool worker and the executor host with one guest.
//!
//! Build a [`Workload`] (shard count, initial state, transactions), pick a
//! [`Delivery`] and call [`execute`]: it submits every transaction, runs until
//! nothing is left to do, and returns every transaction's
//! `ExecutorFinished` (by timestamp), the final state and what the shards
//! still hold.
//!
//! - [`Delivery::Deterministic`]: one thread, a virtual clock, and every
//!   message in flight delivered in an order drawn from a seeded generator:
//!   the same seed gives the same run, message for message.
//! - [`Delivery::Concurrent`], [`Delivery::OpenLoop`] and
//!   [`Delivery::ClosedLoop`]: each shard, the worker and one executor host
//!   per thread on their own runtimes over a multi-threaded tokio runtime,
//!   guest calls inline on those threads; every transaction submitted at
//!   once, at a fixed rate, or with at most a window of them unfinished.
//!   Their worker orders at most [`crate::worker::DEFAULT_WINDOW`]
//!   transactions ahead of the finished ones and queues the rest of the
//!   requests, in arrival order, as a node's mempool would.
//!
//! ```
//! use std::sync::Arc;
//! use executor_host::{KeySets, Limits, NativeProgram};
//! use executor_testkit::harness::{self, Delivery, TxSpec, Workload};
//!
//! let keys = vec![b"alice".to_vec(), b"bob".to_vec()];
//! let workload = Workload {
//!     shards: 2,
//!     initial: [(b"alice".to_vec(), b"10".to_vec())].into(),
//!     transactions: vec![TxSpec {
//!         executable: br#"{"from":"alice","to":"bob","amount":3}"#.to_vec(),
//!         keys: KeySets { eager_read_keys: keys.clone(), will_write_keys: keys, ..KeySets::default() },
//!     }],
//! };
//! let program = Arc::new(NativeProgram::<transfer_guest::TransferFunction>::new(Limits::default()));
//! let outcome = harness::execute(&workload, program, &Default::default(), Delivery::Deterministic { seed: 7 })?;
//! assert_eq!(outcome.final_state[&b"bob".to_vec()], b"3");
//! # Ok::<(), executor_testkit::harness::HarnessError>(())
//! ```

mod concurrent;
mod simulation;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use executor_host::{
    Datum, EngineId, Envelope, ExecutorFinished, ExecutorOptions, Key, KeySets, Message, Program, ShardMap, Stopped,
    Timestamp, Transaction,
};
use serde::{Deserialize, Serialize};

use crate::shard::ShardState;
use crate::worker::{SpawnExecutor, WorkerState};

/// One transaction to submit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxSpec {
    /// The transaction's code, handed to the executor function.
    pub executable: Vec<u8>,
    /// The keys it declares.
    pub keys: KeySets,
}

/// What to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    /// How many shards the keys are spread over (at least 1).
    pub shards: usize,
    /// The value of each key before the first transaction.
    pub initial: BTreeMap<Key, Datum>,
    /// Submitted in this order, so the worker gives them timestamps 1, 2, …
    /// in this order.
    pub transactions: Vec<TxSpec>,
}

/// How messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Single thread, virtual time, every message in flight delivered in an
    /// order drawn from `seed`.
    Deterministic {
        /// The seed of the delivery order.
        seed: u64,
    },
    /// tokio, multi-threaded, real time, every transaction submitted at
    /// once (latency includes queueing behind all the others).
    Concurrent {
        /// Threads of the tokio runtime; guest calls run on them (0 is
        /// taken as 1; more than [`MAX_THREADS`] is refused).
        threads: usize,
    },
    /// As [`Delivery::Concurrent`], with transactions submitted at a fixed
    /// offered rate (open loop), so latency is measured under a steady
    /// load instead of behind a queue of everything.
    OpenLoop {
        /// Threads of the tokio runtime; guest calls run on them (0 is
        /// taken as 1; more than [`MAX_THREADS`] is refused).
        threads: usize,
        /// Transactions submitted per second (0 is taken as 1).
        per_second: u32,
    },
    /// As [`Delivery::Concurrent`], with at most `in_flight` transactions
    /// submitted and not yet finished: what the `run` command uses, so
    /// that what is in flight (executors, the shards' pending versions)
    /// follows `in_flight`, not the scenario's length (outcomes are the
    /// same; latency then counts queueing behind at most `in_flight`
    /// others). The reports, one per transaction, are kept to the end.
    ClosedLoop {
        /// Threads of the tokio runtime; guest calls run on them (0 is
        /// taken as 1; more than [`MAX_THREADS`] is refused).
        threads: usize,
        /// Transactions submitted and not finished, at most (0 is taken
        /// as 1).
        in_flight: usize,
    },
}

/// How a concurrent run submits its transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// Every one at once.
    AllAtOnce,
    /// This many per second.
    Rate(u32),
    /// At most this many not finished.
    Window(usize),
}

/// One transaction's fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutcome {
    /// The timestamp the worker gave it.
    pub timestamp: Timestamp,
    /// What was submitted.
    pub tx: TxSpec,
    /// How its executor ended: the report the worker received (shared,
    /// not copied: a large run's reports must not be in memory twice).
    pub finished: Arc<ExecutorFinished>,
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// In timestamp order.
    pub transactions: Vec<TxOutcome>,
    /// The latest value of every key.
    pub final_state: BTreeMap<Key, Datum>,
    /// Markers the shards still hold unresolved (0 when all went well).
    pub pending_markers: usize,
    /// Messages the engines dropped as bad input.
    pub dropped: u64,
    /// Concurrent delivery only: for each transaction (by timestamp), the
    /// time from its submission to its `ExecutorFinished` reaching the
    /// client.
    pub latencies: Vec<Duration>,
    /// Writes a shard refused because they contradicted the one recorded
    /// for the same timestamp and key: a transaction run twice wrote
    /// differently (nondeterminism), by timestamp and key, sorted. Empty
    /// when all went well.
    pub conflicting_writes: Vec<(Timestamp, Key)>,
}

/// The run could not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// The workload names no shard.
    #[error("a workload needs at least one shard")]
    NoShards,
    /// The workload names more shards than the harness hosts.
    #[error("a workload may have at most {max} shards, not {shards}")]
    TooManyShards {
        /// What the workload asked for.
        shards: usize,
        /// The most the harness hosts.
        max: usize,
    },
    /// A concurrent run asked for more threads than the harness starts.
    #[error("a concurrent run may have at most {max} threads, not {threads}")]
    TooManyThreads {
        /// What the delivery asked for.
        threads: usize,
        /// The most the harness starts.
        max: usize,
    },
    /// Not every transaction finished.
    #[error("the run did not settle: {0}")]
    Stuck(String),
    /// The tokio runtime of a concurrent run could not start.
    #[error("could not start the runtime")]
    Runtime(#[source] std::io::Error),
    /// An engine runtime stopped mid-run.
    #[error("an engine runtime stopped")]
    Stopped(#[from] Stopped),
}

/// The most shards a harness run hosts: each is an engine with its own
/// state, and a workload beyond this is a mistake, not a test.
pub const MAX_SHARDS: usize = 1024;

/// The most threads a concurrent run starts (each with an executor host):
/// far more than cores only adds handoffs, and an operating system refuses
/// to start some number of them, which would abort the process.
pub const MAX_THREADS: usize = 1024;

/// Keys spread over `shard-0 .. shard-{n-1}` by an FNV-1a hash: stable
/// across runs and platforms.
#[derive(Debug, Clone)]
pub struct HashShards {
    shards: Vec<EngineId>,
}

impl HashShards {
    /// `count` shards (at least one).
    pub fn new(count: usize) -> Self {
        Self { shards: (0..count.max(1)).map(|i| EngineId::local(format!("shard-{i}"))).collect() }
    }

    /// Every shard's id.
    pub fn all(&self) -> &[EngineId] {
        &self.shards
    }

    /// The index in [`HashShards::all`] of the shard that owns `key`.
    pub fn shard_for_index(&self, key: &[u8]) -> usize {
        let hash =
            key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
        usize::try_from(hash % self.shards.len() as u64).unwrap_or(0)
    }
}

impl ShardMap for HashShards {
    fn shard_for(&self, key: &[u8]) -> &EngineId {
        // In range: `new` makes at least one shard, and the index is below
        // their count.
        #[allow(clippy::indexing_slicing)]
        &self.shards[self.shard_for_index(key)]
    }
}

fn worker_id() -> EngineId {
    EngineId::local("worker")
}

fn client_id() -> EngineId {
    EngineId::local("client")
}

/// The initial values, by the shard that owns them.
fn shard_initial(shards: &HashShards, initial: &BTreeMap<Key, Datum>) -> HashMap<EngineId, Vec<(Key, Datum)>> {
    let mut out: HashMap<EngineId, Vec<(Key, Datum)>> = HashMap::new();
    for (key, value) in initial {
        out.entry(shards.shard_for(key).clone()).or_default().push((key.clone(), value.clone()));
    }
    out
}

/// The client's requests, in submission order, from `client` to
/// `worker`: one id each for all of them, as a real client has (a copy
/// per request would be an allocation each, and ids compare by pointer
/// first).
fn requests<'a>(
    workload: &'a Workload,
    client: &'a EngineId,
    worker: &'a EngineId,
) -> impl Iterator<Item = Envelope<Message>> + 'a {
    workload.transactions.iter().map(|tx| {
        let request = Message::TransactionRequest {
            executable: tx.executable.clone(),
            keys: Box::new(tx.keys.clone()),
            resubmission: None,
            tag: None,
        };
        Envelope::new(client.clone(), worker.clone(), request)
    })
}

/// The transaction an executor runs for the worker's spawn request.
fn transaction(spawn: SpawnExecutor, program: &Arc<dyn Program>) -> Transaction {
    Transaction {
        timestamp: spawn.timestamp,
        executable: spawn.tx.executable,
        keys: spawn.tx.keys,
        worker: spawn.worker,
        issuer: spawn.tx.issuer,
        program: program.clone(),
    }
}

/// Runs `workload` to the end: submits every transaction, runs until
/// nothing is left to do, and collects what happened.
pub fn execute(
    workload: &Workload,
    program: Arc<dyn Program>,
    options: &ExecutorOptions,
    delivery: Delivery,
) -> Result<Outcome, HarnessError> {
    if workload.shards == 0 {
        return Err(HarnessError::NoShards);
    }
    if workload.shards > MAX_SHARDS {
        return Err(HarnessError::TooManyShards { shards: workload.shards, max: MAX_SHARDS });
    }
    match delivery {
        Delivery::Deterministic { seed } => {
            simulation::Simulation::new(workload, program, options, seed).settle(workload)
        }
        Delivery::Concurrent { threads }
        | Delivery::OpenLoop { threads, .. }
        | Delivery::ClosedLoop { threads, .. } => {
            let pace = match delivery {
                Delivery::OpenLoop { per_second, .. } => Pace::Rate(per_second.max(1)),
                Delivery::ClosedLoop { in_flight, .. } => Pace::Window(in_flight.max(1)),
                _ => Pace::AllAtOnce,
            };
            if threads > MAX_THREADS {
                return Err(HarnessError::TooManyThreads { threads, max: MAX_THREADS });
            }
            let threads = threads.max(1);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()
                .map_err(HarnessError::Runtime)?;
            runtime.block_on(concurrent::execute(workload, program, options, threads, pace))
        }
    }
}

/// What one shard holds at the end of a run: what [`assemble_outcome`]
/// needs of it, serializable so that a shard in another process can send
/// it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSummary {
    /// The latest value of every key that has one (as a list of pairs
    /// when serialized, so that keys may be any bytes).
    #[serde(with = "pairs")]
    pub latest: BTreeMap<Key, Datum>,
    /// Markers not resolved ([`ShardState::pending_markers`]).
    pub pending: usize,
    /// Messages dropped ([`ShardState::dropped`]).
    pub dropped: u64,
    /// Writes refused as contradicting the recorded one
    /// ([`ShardState::conflicting_writes`]).
    pub conflicting_writes: Vec<(Timestamp, Key)>,
}

impl ShardSummary {
    /// The summary of `shard`'s state.
    pub fn of(shard: &ShardState) -> Self {
        Self {
            latest: shard.latest(),
            pending: shard.pending_markers(),
            dropped: shard.dropped,
            conflicting_writes: shard.conflicting_writes.clone(),
        }
    }
}

/// A map serialized as a sequence of `(key, value)` pairs.
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map)
    }

    pub fn deserialize<'de, K, V, D>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(deserializer)?.into_iter().collect())
    }
}

/// Every transaction the worker saw finish, in timestamp order, with what
/// was submitted: `submitted` in submission order, which is timestamp
/// order (the worker gives timestamps from 1 in the order requests
/// arrive, and the harness submits one at a time).
pub fn finished_transactions(worker: &WorkerState, submitted: &[TxSpec]) -> Vec<TxOutcome> {
    outcomes(&worker.finished, submitted)
}

/// [`finished_transactions`] from the worker's reports.
pub(super) fn outcomes(finished: &BTreeMap<Timestamp, Arc<ExecutorFinished>>, submitted: &[TxSpec]) -> Vec<TxOutcome> {
    finished
        .iter()
        .filter_map(|(ts, finished)| {
            let tx = submitted.get(usize::try_from(ts.checked_sub(1)?).ok()?)?;
            Some(TxOutcome { timestamp: *ts, tx: tx.clone(), finished: finished.clone() })
        })
        .collect()
}

/// The one place a run's outcome is assembled, whatever the delivery and
/// wherever the shards ran: `expected` transactions must all have
/// finished (else [`HarnessError::Stuck`]); `transactions` in timestamp
/// order; `dropped` counts the messages the worker and executors dropped
/// (the shards' are added); `latencies` by timestamp, or empty.
pub fn assemble_outcome(
    expected: usize,
    transactions: Vec<TxOutcome>,
    shards: Vec<ShardSummary>,
    dropped: u64,
    latencies: Vec<Duration>,
) -> Result<Outcome, HarnessError> {
    if transactions.len() != expected {
        return Err(HarnessError::Stuck(format!("{} of {expected} transactions finished", transactions.len())));
    }
    let mut final_state = BTreeMap::new();
    let mut pending_markers = 0;
    let mut dropped = dropped;
    let mut conflicting_writes = Vec::new();
    for shard in shards {
        final_state.extend(shard.latest);
        pending_markers += shard.pending;
        dropped += shard.dropped;
        conflicting_writes.extend(shard.conflicting_writes);
    }
    conflicting_writes.sort();
    Ok(Outcome { transactions, final_state, pending_markers, dropped, latencies, conflicting_writes })
}

/// The benchmarks' workload: `transactions` transfers of 1 between two
/// accounts drawn uniformly (with a fixed seed) from `accounts`, each
/// holding 1,000,000, over `shards` shards; both accounts eager reads and
/// will-writes. Fewer accounts, more contention.
pub fn uniform_transfers(transactions: usize, accounts: usize, shards: usize) -> Workload {
    let name = |i: usize| format!("acct{i}");
    let mut rng = crate::Rng::new(0x2545_f491_4f6c_dd1d);
    Workload {
        shards,
        initial: (0..accounts).map(|i| (name(i).into_bytes(), b"1000000".to_vec())).collect(),
        transactions: (0..transactions)
            .map(|_| {
                let (from, to) = (name(rng.index(accounts)), name(rng.index(accounts)));
                let keys = vec![from.clone().into_bytes(), to.clone().into_bytes()];
                TxSpec {
                    executable: format!(r#"{{"from":"{from}","to":"{to}","amount":1}}"#).into_bytes(),
                    keys: KeySets { eager_read_keys: keys.clone(), will_write_keys: keys, ..KeySets::default() },
                }
            })
            .collect(),
    }
}
