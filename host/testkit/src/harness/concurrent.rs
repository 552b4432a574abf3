//! The concurrent run: each shard, the worker and one executor host per
//! thread on their own engine runtimes over a multi-threaded tokio
//! runtime, guest calls inline on those threads. In four parts: [`wire`] the network,
//! [`submit`] the workload, [`settle`] until nothing moves, [`collect`]
//! what happened.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use executor_host::runtime::{self, RuntimeConfig, RuntimeHandle};
use executor_host::{
    EngineId, Envelope, Execution, ExecutorHost, ExecutorOptions, HostConfig, Inbox, Message, Program, Router, Spawner,
    Timestamp, executor_timestamp,
};

use super::{
    HarnessError, HashShards, Outcome, Pace, ShardSummary, Workload, assemble_outcome, client_id, outcomes, requests,
    shard_initial, transaction, worker_id,
};
use crate::shard::Shard;
use crate::worker::{self, SpawnExecutor, Worker, WorkerConfig};

/// Routes envelopes between the runtimes of a concurrent run.
struct Network {
    runtimes: OnceLock<Runtimes>,
    /// The timestamps of the reports reaching the client, with when they
    /// arrived (the outcomes come from the worker).
    reports: Mutex<Vec<(Timestamp, Instant)>>,
    /// How many reports the harness waits for: the runtimes wake it only
    /// once that many have arrived. Waking it for every report (its task
    /// runs on the thread outside the runtime's workers) cost a futex wake,
    /// an interrupt and two context switches each, for it to look at a
    /// count and sleep again: at high contention, where reports trickle
    /// in, a fifth of the CPU per transaction (e2e bench, 2026-12-08).
    awaited: AtomicUsize,
    notify: tokio::sync::Notify,
}

struct Runtimes {
    shards: Vec<(EngineId, RuntimeHandle<Shard>)>,
    worker: RuntimeHandle<Worker>,
    /// One executor host per thread of the run, each hosting the executors
    /// of the timestamps that fall to it ([`partition`]): one runtime is
    /// one task, so one host would run every guest call on one thread.
    executors: Vec<ExecutorHost>,
    worker_id: EngineId,
    client_id: EngineId,
}

/// Where an envelope goes in a concurrent run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Destination {
    Shard(usize),
    Worker,
    Client,
    Executors(usize),
}

/// Which executor host of `hosts` hosts the executor of `timestamp`.
fn partition(timestamp: Timestamp, hosts: usize) -> usize {
    usize::try_from(timestamp % hosts.max(1) as u64).unwrap_or(0)
}

impl Network {
    fn destination(runtimes: &Runtimes, target: &EngineId) -> Destination {
        // Executors first: most messages are for them, and a run may have
        // many shards. No other engine of a run is named like one.
        if let Some(timestamp) = executor_timestamp(target) {
            Destination::Executors(partition(timestamp, runtimes.executors.len()))
        } else if let Some(index) = runtimes.shards.iter().position(|(id, _)| id == target) {
            Destination::Shard(index)
        } else if *target == runtimes.worker_id {
            Destination::Worker
        } else if *target == runtimes.client_id {
            Destination::Client
        } else {
            // No engine of the run: the first host counts it as unknown.
            Destination::Executors(0)
        }
    }

    fn report(&self, envelopes: impl IntoIterator<Item = Envelope<Message>>) {
        let now = Instant::now();
        let mut reports = self.reports.lock().unwrap_or_else(PoisonError::into_inner);
        for envelope in envelopes {
            if let Message::ExecutorFinished(report) = envelope.payload {
                reports.push((report.timestamp, now));
            }
        }
        let arrived = reports.len();
        drop(reports);
        // The waiter stores what it awaits before it counts under the same
        // lock, so either it counts these reports or this sees its target
        // (and the permit the notification leaves wakes it).
        if arrived >= self.awaited.load(Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }

    /// Hands `envelopes`, all for `destination`, to it in one go.
    fn forward(&self, runtimes: &Runtimes, destination: Destination, envelopes: Vec<Envelope<Message>>) {
        match destination {
            Destination::Shard(index) => {
                if let Some((_, shard)) = runtimes.shards.get(index) {
                    shard.try_deliver_all(envelopes);
                }
            }
            Destination::Worker => {
                runtimes.worker.try_deliver_all(envelopes);
            }
            Destination::Client => self.report(envelopes),
            Destination::Executors(index) => {
                if let Some(host) = runtimes.executors.get(index) {
                    host.try_deliver_all(envelopes);
                }
            }
        }
    }
}

impl Router<Message> for Network {
    fn route(&self, envelope: Envelope<Message>) {
        let Some(runtimes) = self.runtimes.get() else { return };
        let destination = Self::destination(runtimes, &envelope.target);
        self.forward(runtimes, destination, vec![envelope]);
    }

    /// One delivery per destination per turn of the sending runtime, each
    /// destination's envelopes in the order sent.
    fn route_all(&self, batch: &mut Vec<Envelope<Message>>) {
        let Some(runtimes) = self.runtimes.get() else {
            batch.clear();
            return;
        };
        // Counted first, so each destination's batch is allocated once at
        // its size: batches are freed on the receiving thread, and regrown
        // ones cost the allocator fresh pages.
        let destinations: Vec<Destination> = batch.iter().map(|e| Self::destination(runtimes, &e.target)).collect();
        let mut counts: Vec<(Destination, usize)> = Vec::new();
        for destination in &destinations {
            match counts.iter_mut().find(|(d, _)| d == destination) {
                Some((_, count)) => *count += 1,
                None => counts.push((*destination, 1)),
            }
        }
        let mut by_destination: Vec<(Destination, Vec<Envelope<Message>>)> =
            counts.into_iter().map(|(d, count)| (d, Vec::with_capacity(count))).collect();
        for (envelope, destination) in batch.drain(..).zip(destinations) {
            if let Some((_, envelopes)) = by_destination.iter_mut().find(|(d, _)| *d == destination) {
                envelopes.push(envelope);
            }
        }
        for (destination, mut envelopes) in by_destination {
            if let Destination::Shard(_) = destination {
                coalesce_watermarks(&mut envelopes);
            }
            self.forward(runtimes, destination, envelopes);
        }
    }
}

/// Keeps, of the `UpdateSeenAll` messages of each kind (write or read) one
/// sender sent in `batch`, only the last, carrying the largest timestamp.
/// The worker announces each watermark as it moves, several times per
/// turn under load; a shard max-merges them, so one does what all do. The
/// kept one is the last: a watermark may arrive later than it was sent
/// (that only delays reads), never earlier than a lock sent before it (a
/// shard refuses locks below its watermark).
fn coalesce_watermarks(batch: &mut Vec<Envelope<Message>>) {
    if batch.len() < 2 {
        return;
    }
    let mut last: Vec<(EngineId, bool, usize, u64)> = Vec::new();
    for (index, envelope) in batch.iter().enumerate() {
        if let Message::UpdateSeenAll { timestamp, write } = envelope.payload {
            match last.iter_mut().find(|(s, w, _, _)| *s == envelope.sender && *w == write) {
                Some(entry) => {
                    entry.2 = index;
                    entry.3 = entry.3.max(timestamp);
                }
                None => last.push((envelope.sender.clone(), write, index, timestamp)),
            }
        }
    }
    if last.is_empty() {
        return;
    }
    let mut index = 0;
    batch.retain_mut(|envelope| {
        let here = index;
        index += 1;
        let Message::UpdateSeenAll { timestamp, write } = &mut envelope.payload else { return true };
        match last.iter().find(|(s, w, _, _)| *s == envelope.sender && *w == *write) {
            Some((_, _, kept, max)) if *kept == here => {
                *timestamp = *max;
                true
            }
            Some(_) => false,
            None => true,
        }
    });
}

/// Spawns the worker's executors on the executor hosts (each on the host
/// its timestamp picks, as its messages are).
struct SpawnOnHost {
    network: Arc<Network>,
    program: Arc<dyn Program>,
}

impl Spawner<SpawnExecutor> for SpawnOnHost {
    fn spawn(&self, request: SpawnExecutor) {
        self.spawn_all(&mut vec![request]);
    }

    fn spawn_all(&self, requests: &mut Vec<SpawnExecutor>) {
        let Some(runtimes) = self.network.runtimes.get() else { return };
        let hosts = runtimes.executors.len();
        let mut by_host: Vec<Vec<SpawnExecutor>> = (0..hosts).map(|_| Vec::new()).collect();
        for request in requests.drain(..) {
            if let Some(batch) = by_host.get_mut(partition(request.timestamp, hosts)) {
                batch.push(request);
            }
        }
        for (host, batch) in runtimes.executors.iter().zip(by_host) {
            if batch.is_empty() {
                continue;
            }
            let txs = batch.into_iter().map(|request| transaction(request, &self.program));
            if let Err(error) = host.try_spawn_all(txs) {
                tracing::error!(%error, "could not spawn an executor");
            }
        }
    }
}

/// Runs `workload` on `threads` threads (at least 1), one executor host
/// each, submitting at `pace`.
pub(super) async fn execute(
    workload: &Workload,
    program: Arc<dyn Program>,
    options: &ExecutorOptions,
    threads: usize,
    pace: Pace,
) -> Result<Outcome, HarnessError> {
    let network = wire(workload, program, options, threads).await?;
    let Some(runtimes) = network.runtimes.get() else { return Err(HarnessError::Stuck("network not wired".into())) };
    let submitted = submit(workload, &network, runtimes, pace, stall_limit(options)).await?;
    settle(&network, runtimes, workload.transactions.len(), stall_limit(options)).await?;
    collect(&network, runtimes, workload, &submitted).await
}

/// Starts the shards, the worker and the executor hosts, and connects them.
async fn wire(
    workload: &Workload,
    program: Arc<dyn Program>,
    options: &ExecutorOptions,
    threads: usize,
) -> Result<Arc<Network>, HarnessError> {
    let shard_map = Arc::new(HashShards::new(workload.shards));
    let network = Arc::new(Network {
        runtimes: OnceLock::new(),
        reports: Mutex::new(Vec::new()),
        awaited: AtomicUsize::new(0),
        notify: tokio::sync::Notify::new(),
    });
    let router: Arc<dyn Router<Message>> = network.clone();
    // Unbounded inboxes: a router must never wait on another runtime.
    let config = RuntimeConfig { inbox: Inbox::Unbounded, execution: Execution::Inline, ..RuntimeConfig::default() };
    let mut initial = shard_initial(&shard_map, &workload.initial);
    // One worker id for every engine that names it: ids compare by
    // pointer first.
    let worker_id = worker_id();
    let mut shards = Vec::new();
    for id in shard_map.all() {
        let handle = runtime::start::<Shard>(config.clone(), router.clone(), None);
        handle
            .spawn(Shard::serving(id.clone(), worker_id.clone(), initial.remove(id).unwrap_or_default()), Vec::new())
            .await?;
        shards.push((id.clone(), handle));
    }
    let spawner = Arc::new(SpawnOnHost { network: network.clone(), program });
    let worker = runtime::start::<Worker>(config, router.clone(), Some(spawner));
    let worker_config = WorkerConfig { shards: shard_map.clone(), all_shards: shard_map.all().to_vec() };
    let instance = Worker::windowed(worker_id.clone(), worker_config, worker::DEFAULT_WINDOW);
    worker.spawn(instance, Vec::new()).await?;
    let host_config = HostConfig {
        executor: options.clone(),
        // Guest calls on the runtime's own threads, as many as cores: a
        // pool of more threads only adds handoffs (measured: the e2e bench
        // runs 1.2-1.9x faster inline). A long call holds one thread for at
        // most the sandbox's call bound; the other keeps the rest moving.
        execution: Execution::Inline,
        inbox: Inbox::Unbounded,
        ..HostConfig::default()
    };
    let executors =
        (0..threads).map(|_| ExecutorHost::start(host_config.clone(), shard_map.clone(), router.clone())).collect();
    let runtimes = Runtimes { shards, worker, executors, worker_id, client_id: client_id() };
    if network.runtimes.set(runtimes).is_err() {
        return Err(HarnessError::Stuck("network already wired".into()));
    }
    Ok(network)
}

/// Submits every transaction in order (so the i-th gets timestamp i + 1)
/// at `pace`, and returns when each was submitted. With a window, fails if
/// nothing moves for `stall` while it waits.
async fn submit(
    workload: &Workload,
    network: &Network,
    runtimes: &Runtimes,
    pace: Pace,
    stall: Duration,
) -> Result<Vec<Instant>, HarnessError> {
    let mut submitted = Vec::with_capacity(workload.transactions.len());
    let start = tokio::time::Instant::now();
    for (i, request) in requests(workload, &runtimes.client_id, &runtimes.worker_id).enumerate() {
        match pace {
            Pace::AllAtOnce => {}
            Pace::Rate(rate) => {
                // On schedule, not after the previous send: a late tick
                // does not push every later submission back.
                let due = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
                tokio::time::sleep_until(due).await;
            }
            // Room for one more: fewer than `in_flight` of the `i`
            // submitted are unfinished.
            Pace::Window(in_flight) if i >= in_flight => {
                wait_for_reports(network, runtimes, i + 1 - in_flight, stall).await?;
            }
            Pace::Window(_) => {}
        }
        submitted.push(Instant::now());
        runtimes.worker.deliver(request).await?;
    }
    Ok(submitted)
}

/// How long a run may make no progress at all before the harness gives
/// up: past every transaction's deadline (which ends it, reads or no reads)
/// with room to spare, and at most five minutes, so a bug that loses a
/// message or stops a runtime fails the run instead of hanging it.
fn stall_limit(options: &ExecutorOptions) -> Duration {
    options.deadline.saturating_add(Duration::from_secs(10)).min(MAX_STALL)
}

/// The longest a concurrent run waits with nothing moving.
const MAX_STALL: Duration = Duration::from_secs(300);

/// Triggers handled by every runtime, and reports received: what moves
/// while a run makes progress.
fn progress(network: &Network, runtimes: &Runtimes) -> (u64, usize) {
    let handled = runtimes.shards.iter().map(|(_, s)| s.metrics().handled()).sum::<u64>()
        + runtimes.worker.metrics().handled()
        + runtimes.executors.iter().map(|host| host.runtime_metrics().handled()).sum::<u64>();
    (handled, network.reports.lock().unwrap_or_else(PoisonError::into_inner).len())
}

/// Waits until at least `reports` reports have arrived. Fails if nothing
/// moves for `stall`.
async fn wait_for_reports(
    network: &Network,
    runtimes: &Runtimes,
    reports: usize,
    stall: Duration,
) -> Result<(), HarnessError> {
    network.awaited.store(reports, Ordering::SeqCst);
    let mut last = progress(network, runtimes);
    let mut last_change = Instant::now();
    loop {
        let notified = network.notify.notified();
        if last.1 >= reports {
            return Ok(());
        }
        // Woken by a report, or every so often to look for progress.
        let _ = tokio::time::timeout(Duration::from_millis(250), notified).await;
        let now = progress(network, runtimes);
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() > stall {
            return Err(HarnessError::Stuck(format!(
                "{} of the {reports} transactions waited for finished, and nothing moved for {} s (the harness \
                 waits the transactions' deadline and 10 s more, at most {} s: a longer deadline cannot end in a run)",
                now.1,
                stall.as_secs(),
                MAX_STALL.as_secs()
            )));
        }
    }
}

/// Waits for every report, then for trailing messages (releases, late
/// reads) to settle. Fails if nothing moves for `stall`.
async fn settle(network: &Network, runtimes: &Runtimes, expected: usize, stall: Duration) -> Result<(), HarnessError> {
    wait_for_reports(network, runtimes, expected, stall).await?;
    loop {
        let before = progress(network, runtimes).0;
        for (_, shard) in &runtimes.shards {
            shard.idle().await?;
        }
        runtimes.worker.idle().await?;
        for host in &runtimes.executors {
            host.idle().await?;
        }
        if progress(network, runtimes).0 == before {
            return Ok(());
        }
    }
}

/// Reads the worker's and shards' final states and the latencies.
async fn collect(
    network: &Network,
    runtimes: &Runtimes,
    workload: &Workload,
    submitted: &[Instant],
) -> Result<Outcome, HarnessError> {
    let expected = workload.transactions.len();
    let (worker_reports, worker_dropped) = runtimes
        .worker
        .inspect(worker_id(), |w| w.map(|w| (w.env.local.finished.clone(), w.env.local.dropped)))
        .await?
        .ok_or_else(|| HarnessError::Stuck("no worker".into()))?;
    let transactions = outcomes(&worker_reports, &workload.transactions);
    let mut shards = Vec::new();
    for (id, shard) in &runtimes.shards {
        if let Some(summary) = shard.inspect(id.clone(), |s| s.map(|s| ShardSummary::of(&s.env.local))).await? {
            shards.push(summary);
        }
    }
    let dropped = worker_dropped
        + runtimes
            .executors
            .iter()
            .map(|host| host.metrics().dropped_total() + host.runtime_metrics().unknown_target())
            .sum::<u64>();
    let reports = std::mem::take(&mut *network.reports.lock().unwrap_or_else(PoisonError::into_inner));
    let arrived: BTreeMap<Timestamp, Instant> = reports.into_iter().collect();
    let latencies: Vec<Duration> = arrived
        .iter()
        .filter_map(|(ts, at)| {
            let index = usize::try_from(ts.checked_sub(1)?).ok()?;
            submitted.get(index).map(|sent| at.saturating_duration_since(*sent))
        })
        .collect();
    assemble_outcome(expected, transactions, shards, dropped, latencies)
}
