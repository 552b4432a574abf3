//! A whole node in one process, for tests, examples and the `run` command:
//! shards, a mempool worker and the executor host with one guest.
//!
//! Build a [`Workload`] (shard count, initial state, transactions), pick a
//! [`Delivery`] and call [`run`]: it submits every transaction, runs until
//! nothing is left to do, and returns every transaction's
//! `ExecutorFinished` (by timestamp), the final state and what the shards
//! still hold.
//!
//! - [`Delivery::Deterministic`]: one thread, a virtual clock, and every
//!   message in flight delivered in an order drawn from a seeded generator:
//!   the same seed gives the same run, message for message.
//! - [`Delivery::Concurrent`]: each shard, the worker and the executors on
//!   their own tokio nodes over a multi-threaded runtime, guest calls on the
//!   executor host's thread pool.
//!
//! ```
//! use std::sync::Arc;
//! use executor_host::harness::{self, Delivery, TxSpec, Workload};
//! use executor_host::messages::KeySets;
//! use executor_host::program::{Limits, NativeProgram};
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
//! let outcome = harness::run(&workload, program, &Default::default(), Delivery::Deterministic { seed: 7 })?;
//! assert_eq!(outcome.final_state[&b"bob".to_vec()], b"3");
//! # Ok::<(), executor_host::harness::HarnessError>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::engine::{EngineId, Envelope, Instance, Time, TimerOp, Trigger};
use crate::executor::{
    Executor, ExecutorConfig, ExecutorMetrics, ExecutorOptions, ExecutorTimer, ShardMap, Shared, Transaction,
};
use crate::host::{ExecutorHost, HostConfig};
use crate::messages::{Datum, ExecutorFinished, Key, KeySets, Message, Timestamp};
use crate::node::{self, NodeConfig, NodeHandle, Router, Spawner};
use crate::program::Program;
use crate::shard::Shard;
use crate::worker::{SpawnExecutor, Worker, WorkerConfig};

/// One transaction to submit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxSpec {
    pub executable: Vec<u8>,
    pub keys: KeySets,
}

/// What to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    pub shards: usize,
    pub initial: BTreeMap<Key, Datum>,
    /// Submitted in this order, so the worker gives them timestamps 1, 2, …
    /// in this order.
    pub transactions: Vec<TxSpec>,
}

/// How messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Single thread, virtual time, seeded random delivery order.
    Deterministic { seed: u64 },
    /// tokio, multi-threaded, real time.
    Concurrent { threads: usize },
}

/// One transaction's fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutcome {
    pub timestamp: Timestamp,
    pub tx: TxSpec,
    pub finished: ExecutorFinished,
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
}

/// The run could not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    #[error("a workload needs at least one shard")]
    NoShards,
    #[error("the run did not settle: {0}")]
    Stuck(String),
    #[error("could not start the runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("a node stopped")]
    NodeStopped(#[from] node::NodeStopped),
}

/// Keys spread over `shard-0 .. shard-{n-1}` by an FNV-1a hash: stable
/// across runs and platforms.
#[derive(Debug, Clone)]
pub struct HashShards {
    shards: Vec<EngineId>,
}

impl HashShards {
    pub fn new(count: usize) -> Self {
        Self { shards: (0..count.max(1)).map(|i| EngineId::local(format!("shard-{i}"))).collect() }
    }

    pub fn all(&self) -> &[EngineId] {
        &self.shards
    }
}

impl ShardMap for HashShards {
    fn shard_for(&self, key: &[u8]) -> &EngineId {
        let hash =
            key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
        let index = usize::try_from(hash % self.shards.len() as u64).unwrap_or(0);
        // In range: `new` makes at least one shard, and `index < len`.
        #[allow(clippy::indexing_slicing)]
        &self.shards[index]
    }
}

fn worker_id() -> EngineId {
    EngineId::local("worker")
}

fn client_id() -> EngineId {
    EngineId::local("client")
}

fn shard_initial(shards: &HashShards, initial: &BTreeMap<Key, Datum>) -> HashMap<EngineId, Vec<(Key, Datum)>> {
    let mut out: HashMap<EngineId, Vec<(Key, Datum)>> = HashMap::new();
    for (key, value) in initial {
        out.entry(shards.shard_for(key).clone()).or_default().push((key.clone(), value.clone()));
    }
    out
}

fn requests(workload: &Workload) -> impl Iterator<Item = Envelope<Message>> + '_ {
    workload.transactions.iter().map(|tx| Envelope {
        sender: client_id(),
        target: worker_id(),
        mailbox: 0,
        payload: Message::TransactionRequest {
            executable: tx.executable.clone(),
            keys: tx.keys.clone(),
            resubmission: None,
        },
    })
}

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

/// Runs `workload` to the end.
pub fn run(
    workload: &Workload,
    program: Arc<dyn Program>,
    options: &ExecutorOptions,
    delivery: Delivery,
) -> Result<Outcome, HarnessError> {
    if workload.shards == 0 {
        return Err(HarnessError::NoShards);
    }
    match delivery {
        Delivery::Deterministic { seed } => Simulation::new(workload, program, options, seed).run(workload),
        Delivery::Concurrent { threads } => {
            let runtime =
                tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).enable_all().build()?;
            runtime.block_on(concurrent(workload, program, options, threads.max(1)))
        }
    }
}

/// SplitMix64: a small, well-mixed generator, enough to pick delivery
/// orders reproducibly.
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        usize::try_from(z % (n.max(1) as u64)).unwrap_or(0)
    }
}

/// A timer's place in the queue: when, and a sequence number for ties.
type TimerKey = (Time, u64);

/// The deterministic single-threaded run.
struct Simulation {
    now: Time,
    rng: SplitMix,
    shards: HashMap<EngineId, Instance<Shard>>,
    worker: Instance<Worker>,
    executors: HashMap<EngineId, Instance<Executor>>,
    timers: BTreeMap<TimerKey, (EngineId, ExecutorTimer)>,
    /// Each executor's entries in `timers`, to cancel them.
    timer_keys: HashMap<EngineId, Vec<(ExecutorTimer, TimerKey)>>,
    seq: u64,
    in_flight: Vec<Envelope<Message>>,
    program: Arc<dyn Program>,
    shared: Arc<Shared>,
    unknown: u64,
}

impl Simulation {
    fn new(workload: &Workload, program: Arc<dyn Program>, options: &ExecutorOptions, seed: u64) -> Self {
        let shard_map = Arc::new(HashShards::new(workload.shards));
        let mut initial = shard_initial(&shard_map, &workload.initial);
        let shards = shard_map
            .all()
            .iter()
            .map(|id| (id.clone(), Shard::instance(id.clone(), initial.remove(id).unwrap_or_default())))
            .collect();
        let worker = Worker::instance(
            worker_id(),
            WorkerConfig { shards: shard_map.clone(), all_shards: shard_map.all().to_vec() },
        );
        let shared = Arc::new(Shared {
            options: options.clone(),
            shards: shard_map.clone(),
            metrics: Arc::new(ExecutorMetrics::default()),
        });
        Self {
            now: Duration::ZERO,
            rng: SplitMix(seed),
            shards,
            worker,
            executors: HashMap::new(),
            timers: BTreeMap::new(),
            timer_keys: HashMap::new(),
            seq: 0,
            in_flight: Vec::new(),
            program,
            shared,
            unknown: 0,
        }
    }

    fn run(mut self, workload: &Workload) -> Result<Outcome, HarnessError> {
        // The client submits in order, so timestamps follow the workload's
        // order; everything after that is delivered in random order.
        for request in requests(workload) {
            self.deliver(request);
        }
        // Generous: a transaction exchanges a few dozen messages at most.
        let limit = 1_000 + 200 * workload.transactions.len() as u64 * (1 + workload.shards as u64);
        let mut steps = 0u64;
        loop {
            steps += 1;
            if steps > limit {
                return Err(HarnessError::Stuck(format!(
                    "{} messages in flight after {limit} steps",
                    self.in_flight.len()
                )));
            }
            if !self.in_flight.is_empty() {
                let index = self.rng.below(self.in_flight.len());
                let envelope = self.in_flight.swap_remove(index);
                self.deliver(envelope);
            } else if let Some((&(at, _), _)) = self.timers.first_key_value() {
                self.now = self.now.max(at);
                self.fire_due();
            } else {
                break;
            }
        }
        let state = &self.worker.env.local;
        let transactions = state
            .transactions
            .iter()
            .filter_map(|(ts, tx)| {
                state.finished.get(ts).map(|finished| TxOutcome {
                    timestamp: *ts,
                    tx: TxSpec { executable: tx.executable.clone(), keys: tx.keys.clone() },
                    finished: finished.clone(),
                })
            })
            .collect::<Vec<_>>();
        if transactions.len() != workload.transactions.len() {
            return Err(HarnessError::Stuck(format!(
                "{} of {} transactions finished",
                transactions.len(),
                workload.transactions.len()
            )));
        }
        let mut final_state = BTreeMap::new();
        let mut pending_markers = 0;
        let mut dropped = self.unknown + state.dropped + self.shared.metrics.dropped_total();
        for shard in self.shards.values() {
            final_state.extend(shard.env.local.latest());
            pending_markers += shard.env.local.pending_markers();
            dropped += shard.env.local.dropped;
        }
        Ok(Outcome { transactions, final_state, pending_markers, dropped, latencies: Vec::new() })
    }

    fn deliver(&mut self, envelope: Envelope<Message>) {
        let trigger = |envelope, at| Trigger::Message { envelope, at };
        let now = self.now;
        let target = envelope.target.clone();
        if let Some(shard) = self.shards.get_mut(&target) {
            let effect = shard.handle(&trigger(envelope, now));
            self.in_flight.extend(effect.send);
        } else if target == self.worker.id {
            let effect = self.worker.handle(&trigger(envelope, now));
            for spawn in effect.spawn {
                self.spawn(spawn);
            }
            self.in_flight.extend(effect.send);
        } else if let Some(executor) = self.executors.get_mut(&target) {
            let effect = executor.handle(&Trigger::Message { envelope, at: now });
            self.apply_executor(&target, effect);
        } else if target != client_id() {
            self.unknown += 1;
        }
    }

    fn spawn(&mut self, spawn: SpawnExecutor) {
        let config = ExecutorConfig::new(transaction(spawn, &self.program), self.shared.clone());
        let (instance, timers) = Executor::spawn(config, self.now);
        let id = instance.id.clone();
        self.executors.insert(id.clone(), instance);
        self.schedule(&id, timers);
        self.fire_due();
    }

    fn apply_executor(&mut self, id: &EngineId, effect: crate::engine::Effect<Executor>) {
        self.in_flight.extend(effect.send);
        self.schedule(id, effect.timers);
        if effect.stop {
            self.executors.remove(id);
            for (_, key) in self.timer_keys.remove(id).unwrap_or_default() {
                self.timers.remove(&key);
            }
        }
    }

    fn schedule(&mut self, id: &EngineId, ops: Vec<TimerOp<ExecutorTimer>>) {
        for op in ops {
            let handle = match &op {
                TimerOp::Set(timer) => timer.handle,
                TimerOp::Cancel(handle) => *handle,
            };
            let keys = self.timer_keys.entry(id.clone()).or_default();
            keys.retain(|(h, key)| {
                let keep = *h != handle;
                if !keep {
                    self.timers.remove(key);
                }
                keep
            });
            if let TimerOp::Set(timer) = op {
                self.seq += 1;
                let key = (timer.at, self.seq);
                self.timers.insert(key, (id.clone(), timer.handle));
                keys.push((timer.handle, key));
            }
        }
    }

    /// Fires every timer due now, one trigger per engine.
    fn fire_due(&mut self) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let (key, (id, handle)) = entry.remove_entry();
            if let Some(keys) = self.timer_keys.get_mut(&id) {
                keys.retain(|(_, k)| *k != key);
            }
            let Some(executor) = self.executors.get_mut(&id) else { continue };
            let effect = executor.handle(&Trigger::Elapsed { timers: vec![handle], at: self.now });
            self.apply_executor(&id, effect);
        }
    }
}

/// Routes envelopes between the nodes of a concurrent run.
struct Network {
    nodes: OnceLock<Nodes>,
    /// Reports reaching the client, with when they arrived.
    reports: Mutex<Vec<(ExecutorFinished, Instant)>>,
    notify: tokio::sync::Notify,
}

struct Nodes {
    shards: HashMap<EngineId, NodeHandle<Shard>>,
    worker: NodeHandle<Worker>,
    executors: ExecutorHost,
}

impl Router<Message> for Network {
    fn route(&self, envelope: Envelope<Message>) {
        let Some(nodes) = self.nodes.get() else { return };
        if let Some(shard) = nodes.shards.get(&envelope.target) {
            shard.try_deliver(envelope);
        } else if envelope.target == worker_id() {
            nodes.worker.try_deliver(envelope);
        } else if envelope.target == client_id() {
            if let Message::ExecutorFinished(report) = envelope.payload {
                self.reports.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((report, Instant::now()));
                self.notify.notify_one();
            }
        } else {
            nodes.executors.try_deliver(envelope);
        }
    }
}

struct SpawnOnHost {
    network: Arc<Network>,
    program: Arc<dyn Program>,
}

impl Spawner<SpawnExecutor> for SpawnOnHost {
    fn spawn(&self, request: SpawnExecutor) {
        if let Some(nodes) = self.network.nodes.get()
            && let Err(error) = nodes.executors.try_spawn(transaction(request, &self.program))
        {
            tracing::error!(%error, "could not spawn an executor");
        }
    }
}

async fn concurrent(
    workload: &Workload,
    program: Arc<dyn Program>,
    options: &ExecutorOptions,
    threads: usize,
) -> Result<Outcome, HarnessError> {
    let shard_map = Arc::new(HashShards::new(workload.shards));
    let network = Arc::new(Network {
        nodes: OnceLock::new(),
        reports: Mutex::new(Vec::new()),
        notify: tokio::sync::Notify::new(),
    });
    let router: Arc<dyn Router<Message>> = network.clone();
    // Unbounded inboxes: a router must never wait on another node.
    let config = NodeConfig { inbox: 0, execution: node::Execution::Inline, ..NodeConfig::default() };
    let mut initial = shard_initial(&shard_map, &workload.initial);
    let mut shards = HashMap::new();
    for id in shard_map.all() {
        let handle = node::start::<Shard>(config.clone(), router.clone(), None);
        handle.spawn(Shard::instance(id.clone(), initial.remove(id).unwrap_or_default()), Vec::new()).await?;
        shards.insert(id.clone(), handle);
    }
    let spawner = Arc::new(SpawnOnHost { network: network.clone(), program });
    let worker = node::start::<Worker>(config, router.clone(), Some(spawner));
    worker
        .spawn(
            Worker::instance(
                worker_id(),
                WorkerConfig { shards: shard_map.clone(), all_shards: shard_map.all().to_vec() },
            ),
            Vec::new(),
        )
        .await?;
    let host_config = HostConfig { executor: options.clone(), threads: Some(threads), inbox: Some(0) };
    let executors = ExecutorHost::start(host_config, shard_map.clone(), router);
    let nodes = Nodes { shards, worker, executors };
    if network.nodes.set(nodes).is_err() {
        return Err(HarnessError::Stuck("network already wired".into()));
    }
    let Some(nodes) = network.nodes.get() else { return Err(HarnessError::Stuck("network not wired".into())) };
    // Delivered in order, so the i-th request gets timestamp i + 1.
    let mut submitted = Vec::with_capacity(workload.transactions.len());
    for request in requests(workload) {
        submitted.push(Instant::now());
        nodes.worker.deliver(request).await?;
    }
    // Every transaction ends (the deadline sees to it): wait for the reports.
    let expected = workload.transactions.len();
    loop {
        let notified = network.notify.notified();
        if network.reports.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len() >= expected {
            break;
        }
        notified.await;
    }
    // Then let trailing messages (releases, late reads) settle.
    let handled = |nodes: &Nodes| {
        nodes.shards.values().map(|s| s.metrics().handled()).sum::<u64>()
            + nodes.worker.metrics().handled()
            + nodes.executors.node_metrics().handled()
    };
    loop {
        let before = handled(nodes);
        for shard in nodes.shards.values() {
            shard.idle().await?;
        }
        nodes.worker.idle().await?;
        nodes.executors.idle().await?;
        if handled(nodes) == before {
            break;
        }
    }
    let worker_state = nodes
        .worker
        .inspect(worker_id(), |w| {
            w.map(|w| (w.env.local.transactions.clone(), w.env.local.finished.clone(), w.env.local.dropped))
        })
        .await?
        .ok_or_else(|| HarnessError::Stuck("no worker".into()))?;
    let (ordered, finished, worker_dropped) = worker_state;
    let transactions: Vec<TxOutcome> = ordered
        .into_iter()
        .filter_map(|(ts, tx)| {
            finished.get(&ts).map(|f| TxOutcome {
                timestamp: ts,
                tx: TxSpec { executable: tx.executable, keys: tx.keys },
                finished: f.clone(),
            })
        })
        .collect();
    if transactions.len() != expected {
        return Err(HarnessError::Stuck(format!("{} of {expected} transactions finished", transactions.len())));
    }
    let mut final_state = BTreeMap::new();
    let mut pending_markers = 0;
    let mut dropped =
        worker_dropped + nodes.executors.metrics().dropped_total() + nodes.executors.node_metrics().unknown_target();
    for (id, shard) in &nodes.shards {
        let seen = shard
            .inspect(id.clone(), |s| {
                s.map(|s| (s.env.local.latest(), s.env.local.pending_markers(), s.env.local.dropped))
            })
            .await?;
        if let Some((latest, pending, shard_dropped)) = seen {
            final_state.extend(latest);
            pending_markers += pending;
            dropped += shard_dropped;
        }
    }
    let reports = std::mem::take(&mut *network.reports.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let arrived: BTreeMap<Timestamp, Instant> = reports.into_iter().map(|(r, at)| (r.timestamp, at)).collect();
    let latencies = arrived
        .iter()
        .filter_map(|(ts, at)| {
            let index = usize::try_from(ts.checked_sub(1)?).ok()?;
            submitted.get(index).map(|sent| at.saturating_duration_since(*sent))
        })
        .collect();
    Ok(Outcome { transactions, final_state, pending_markers, dropped, latencies })
}
