//! The three kinds of process a deployment runs, each an engine runtime
//! wired to a [`Link`]: a shard ([`serve_shard`], optionally with executors
//! in the same process), the mempool worker ([`serve_worker`]) and an
//! executor host ([`serve_executors`]).
//!
//! Every engine of a deployment must agree on the shard count: it decides
//! which shard owns a key ([`HashShards`]).
//!
//! This module must not change what an engine does: it only connects
//! engines that the in-process harness connects with channels.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use executor_host::runtime::{self, RuntimeConfig, RuntimeHandle};
use executor_host::{
    Datum, EngineId, Execution, ExecutorHost, HostConfig, Inbox, Key, Message, Program, REPORT_ENTRY_BYTES, Spawner,
    Timestamp, Transaction, executor_id, report_entry_bytes,
};
use executor_testkit::harness::{HashShards, MAX_SHARDS};
use executor_testkit::shard::Shard;
use executor_testkit::worker::{DEFAULT_WINDOW, SpawnExecutor, Worker, WorkerConfig};
use futures_util::StreamExt as _;
use tokio::task::JoinHandle;

use crate::link::{Deliver, Link, NatsRouter};
use crate::{NatsError, metrics::Metrics, wire};

/// The worker's engine id: every deployment has one worker.
pub fn worker_id() -> EngineId {
    EngineId::local("worker")
}

/// Runtimes never wait to take an envelope: the router and the receiving
/// tasks must not block on one another.
fn runtime_config() -> RuntimeConfig {
    RuntimeConfig { inbox: Inbox::Unbounded, execution: Execution::Inline, ..RuntimeConfig::default() }
}

fn into_runtime<B>(handle: RuntimeHandle<B>) -> Deliver
where
    B: executor_host::engine::Behaviour<Msg = Message>,
{
    Arc::new(move |envelope| {
        handle.try_deliver(envelope);
    })
}

/// A running process: its tasks, and what its metrics endpoint shows.
#[derive(Debug)]
pub struct Served {
    tasks: Vec<JoinHandle<()>>,
    /// What the process counts.
    pub metrics: Metrics,
}

impl Served {
    /// Waits until a task of the process ends (it should not), or forever.
    pub async fn wait(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        if !tasks.is_empty() {
            let _ = futures_util::future::select_all(tasks).await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Executors in a process, as [`serve_executors`] and [`serve_shard`] set
/// them up.
#[derive(Debug, Clone)]
pub struct ExecutorsConfig {
    /// The guest every executor runs.
    pub program: Arc<dyn Program>,
    /// How the host runs them; its `executor.resend` is set if missing
    /// (executors must ask again for what a network may lose), and its
    /// `executor.report_bytes` to at most [`wire::REPORT_BYTES`] (what a
    /// message can carry).
    pub host: HostConfig,
    /// How long a spawn request may go unacknowledged before the server
    /// hands it to another host: a host acknowledges progress every third
    /// of it, so only a dead (or frozen) host's transactions move.
    pub ack_wait: Duration,
}

/// Serves shard `index` of `shards`, loaded with `initial` (only the keys
/// it owns are kept), and with `executors` in the same process if given.
pub async fn serve_shard(
    link: &Arc<Link>,
    index: usize,
    shards: usize,
    initial: impl IntoIterator<Item = (Key, Datum)>,
    executors: Option<ExecutorsConfig>,
) -> Result<Served, NatsError> {
    let map = shard_map(shards)?;
    let id = map.all().get(index).cloned().ok_or(NatsError::NoSuchShard { index, shards })?;
    let initial: Vec<(Key, Datum)> = initial.into_iter().collect();
    // Every shard checks the whole state, so that the deployment refuses it
    // whichever process starts first.
    check_initial(&initial)?;
    // A second process for this shard would empty its stream under the
    // first (messages it had not read yet would be lost, their locks held).
    if crate::query::exists(link, &id).await? {
        return Err(NatsError::ShardRunning {
            shard: id.to_string(),
            namespace: link.subjects().namespace().to_owned(),
        });
    }
    // A shard for another count would keep another part of the initial
    // state than it owns: reads of the keys it lacks would say "absent".
    // (A worker started later asks the shards.)
    same_count_as_worker(link, shards, Some(&id)).await?;
    let mine: Vec<(Key, Datum)> = initial.into_iter().filter(|(k, _)| map.shard_for_index(k) == index).collect();
    let stream = link.own_stream(&id).await?;
    // The router needs the shard's handle (for co-located executors) and
    // the shard's runtime needs the router: the shard delivers through a
    // slot filled once both exist.
    let slot: Arc<std::sync::OnceLock<RuntimeHandle<Shard>>> = Arc::new(std::sync::OnceLock::new());
    let to_shard: Deliver = {
        let slot = slot.clone();
        Arc::new(move |envelope| {
            if let Some(shard) = slot.get() {
                shard.try_deliver(envelope);
            }
        })
    };
    let router = Arc::new(NatsRouter::new(link.clone(), HashMap::from([(id.clone(), to_shard.clone())])));
    let shard = runtime::start::<Shard>(runtime_config(), router.clone(), None);
    shard.spawn(Shard::serving(id.clone(), worker_id(), mine), Vec::new()).await.map_err(|_| NatsError::Stopped)?;
    let _ = slot.set(shard.clone());
    let mut metrics = Metrics::new(link.clone());
    metrics.runtime("shard", shard.metrics().clone());
    let mut tasks = vec![
        link.receive(stream.cached_info().config.name.clone(), String::new(), id.clone(), to_shard.clone()),
        link.receive_direct(link.subjects().direct(&id)?, id.clone(), to_shard).await?,
        crate::query::answer(link, &id, shards, shard).await?,
    ];
    if let Some(config) = executors {
        let mut served = serve_executors_with(link, map, config, router).await?;
        tasks.append(&mut served.tasks);
        metrics.merge(std::mem::take(&mut served.metrics));
    }
    Ok(Served { tasks, metrics })
}

/// Refuses an initial state with a value too large to travel: a read of it
/// would be dropped as unsendable until its transaction's deadline, and a
/// client's query could not carry it either.
fn check_initial(initial: &[(Key, Datum)]) -> Result<(), NatsError> {
    let limit = wire::REPORT_BYTES.saturating_sub(REPORT_ENTRY_BYTES);
    match initial.iter().find(|(key, datum)| report_entry_bytes(key, Some(datum)) > wire::REPORT_BYTES) {
        None => Ok(()),
        Some((key, datum)) => {
            const SHOWN: usize = 64;
            let mut shown: String = key.iter().take(SHOWN).flat_map(|b| b.escape_ascii()).map(char::from).collect();
            if key.len() > SHOWN {
                shown.push('…');
            }
            Err(NatsError::InitialValueTooLarge {
                key: shown,
                bytes: (key.len() as u64).saturating_add(datum.len() as u64),
                limit,
            })
        }
    }
}

/// Sends the worker's spawn requests to the executor hosts' work queue.
struct SpawnOverNats {
    link: Arc<Link>,
    process: String,
}

impl Spawner<SpawnExecutor> for SpawnOverNats {
    fn spawn(&self, request: SpawnExecutor) {
        match wire::encode(&request) {
            // One id per transaction of this worker: a retried publish is
            // never queued twice.
            Ok(bytes) => self.link.send_persistent(
                self.link.subjects().spawn(),
                bytes,
                format!("{}-spawn-{}", self.process, request.timestamp),
            ),
            // Cannot happen: a spawn request is never larger than the
            // transaction request it comes from (see `wire`'s tests), and
            // the link refuses a request past the limit on arrival.
            Err(error) => tracing::error!(%error, timestamp = request.timestamp, "a spawn request too large to send"),
        }
    }
}

/// Serves the mempool worker of a deployment of `shards` shards. It
/// creates (and empties) the spawn queue and the clients' stream, and
/// orders at most [`DEFAULT_WINDOW`] transactions not yet finished (a
/// flood of requests waits as requests, not as locks and executors).
pub async fn serve_worker(link: &Arc<Link>, shards: usize) -> Result<Served, NatsError> {
    let map = shard_map(shards)?;
    let id = worker_id();
    let subjects = link.subjects();
    // A second worker would empty the queues under the first and number
    // transactions again: one per namespace.
    if crate::query::exists(link, &id).await? {
        return Err(NatsError::WorkerRunning { namespace: subjects.namespace().to_owned() });
    }
    same_count_as_shards(link, &map).await?;
    let own = link.own_stream(&id).await?;
    for (name, subject, retention) in [
        (subjects.spawn_stream(), subjects.spawn(), stream::RetentionPolicy::WorkQueue),
        (subjects.clients_stream(), subjects.clients(), stream::RetentionPolicy::Limits),
    ] {
        let stream = link.stream(name, vec![subject], retention).await?;
        stream.purge().await.map_err(|e| link.jetstream_error(e))?;
    }
    let router = Arc::new(NatsRouter::new(link.clone(), HashMap::new()));
    let spawner = Arc::new(SpawnOverNats { link: link.clone(), process: link.message_id() });
    let worker = runtime::start::<Worker>(runtime_config(), router, Some(spawner));
    let config = WorkerConfig { shards: map.clone(), all_shards: map.all().to_vec() };
    worker
        .spawn(Worker::windowed(id.clone(), config, DEFAULT_WINDOW), Vec::new())
        .await
        .map_err(|_| NatsError::Stopped)?;
    let presence = crate::query::answer_presence(link, &id, shards, worker.clone()).await?;
    let mut metrics = Metrics::new(link.clone());
    metrics.runtime("worker", worker.metrics().clone());
    let tasks =
        vec![link.receive(own.cached_info().config.name.clone(), String::new(), id, into_runtime(worker)), presence];
    Ok(Served { tasks, metrics })
}

/// Serves an executor host: takes spawn requests from the deployment's
/// work queue (shared with every other host), runs each transaction, and
/// acknowledges the request once its `ExecutorFinished` is stored. A
/// request whose host dies goes to another host after `ack_wait`, which
/// runs the transaction again from the start.
pub async fn serve_executors(link: &Arc<Link>, shards: usize, config: ExecutorsConfig) -> Result<Served, NatsError> {
    let map = shard_map(shards)?;
    let router = Arc::new(NatsRouter::new(link.clone(), HashMap::new()));
    serve_executors_with(link, map, config, router).await
}

/// Refuses a process for `shards` shards when the deployment's worker
/// answers with another count, and a shard (`late`) when the worker has
/// ordered transactions already: the shard would serve its initial state
/// to them, not what they wrote, and the lock requests sent to the shard
/// before it started are gone with its emptied stream. (No worker yet:
/// nothing to compare.)
async fn same_count_as_worker(link: &Link, shards: usize, late: Option<&EngineId>) -> Result<(), NatsError> {
    match crate::query::presence(link, &worker_id()).await? {
        Some(worker) if worker.shards != shards => Err(NatsError::ShardCountDiffers { shards, worker: worker.shards }),
        Some(worker) if worker.progress > 0 && late.is_some() => Err(NatsError::LateShard {
            shard: late.map(ToString::to_string).unwrap_or_default(),
            ordered: worker.progress,
        }),
        _ => Ok(()),
    }
}

/// Refuses a worker for the shards of `map` when a running shard was
/// started for another count: one of them, or one past them (a shard
/// there belongs to a larger deployment).
async fn same_count_as_shards(link: &Link, map: &HashShards) -> Result<(), NatsError> {
    let shards = map.all().len();
    let beyond = HashShards::new(shards.saturating_add(1));
    let answers = futures_util::future::join_all(
        beyond.all().iter().map(|id| async move { crate::query::presence(link, id).await.map(|answer| (id, answer)) }),
    )
    .await;
    for answer in answers {
        match answer? {
            (id, Some(theirs)) if theirs.shards != shards => {
                return Err(NatsError::ShardDisagrees { shard: id.to_string(), theirs: theirs.shards, shards });
            }
            // A new worker numbers transactions from 1 again: the shard
            // would drop their locks as below its watermark.
            (id, Some(theirs)) if theirs.progress > 0 => {
                return Err(NatsError::ShardServedAnother { shard: id.to_string(), watermark: theirs.progress });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Which shard owns each key, for a deployment of `shards` (1 to
/// [`MAX_SHARDS`], as a scenario may have).
fn shard_map(shards: usize) -> Result<Arc<HashShards>, NatsError> {
    if !(1..=MAX_SHARDS).contains(&shards) {
        return Err(NatsError::ShardCount { shards, max: MAX_SHARDS });
    }
    Ok(Arc::new(HashShards::new(shards)))
}

async fn serve_executors_with(
    link: &Arc<Link>,
    map: Arc<HashShards>,
    mut config: ExecutorsConfig,
    router: Arc<NatsRouter>,
) -> Result<Served, NatsError> {
    // Executors for another shard count would send every lock's read and
    // write to the wrong shard: every transaction would wait out its
    // deadline, its locks held for ever. (A host started before the worker
    // asks again at the worker's first request.)
    let shards = map.all().len();
    same_count_as_worker(link, shards, None).await?;
    let finished = link.take_finished().ok_or(NatsError::ExecutorsTwice)?;
    let options = &mut config.host.executor;
    if options.resend.is_none() {
        options.resend = Some(Duration::from_millis(500));
    }
    // A write or report that cannot travel would leave its locks held and
    // its transaction unfinished: fail the transaction instead.
    options.report_bytes = Some(options.report_bytes.map_or(wire::REPORT_BYTES, |b| b.min(wire::REPORT_BYTES)));
    config.host.inbox = Inbox::Unbounded;
    let host = ExecutorHost::start(config.host.clone(), map, router);
    let subjects = link.subjects();
    let stream =
        link.stream(subjects.spawn_stream(), vec![subjects.spawn()], stream::RetentionPolicy::WorkQueue).await?;
    let consumer_config = consumer::pull::Config {
        durable_name: Some("executors".into()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: config.ack_wait,
        // Every transaction waiting for reads holds its request.
        max_ack_pending: 1_000_000,
        ..consumer::pull::Config::default()
    };
    stream.get_or_create_consumer("executors", consumer_config.clone()).await.map_err(|e| link.jetstream_error(e))?;
    let mut metrics = Metrics::new(link.clone());
    metrics.executors(host.clone());
    let service = Executors {
        link: link.clone(),
        host,
        program: config.program,
        shards,
        held: HashMap::new(),
        done: BTreeSet::new(),
        worker: None,
    };
    let task = tokio::spawn(service.run(stream, consumer_config, finished, config.ack_wait));
    Ok(Served { tasks: vec![task], metrics })
}

/// A spawn request being executed here: acknowledged when its report is
/// out, its executor's subscription dropped then.
struct Held {
    request: jetstream::Message,
    listener: JoinHandle<()>,
}

struct Executors {
    link: Arc<Link>,
    host: ExecutorHost,
    program: Arc<dyn Program>,
    /// The shard count executors here send reads and writes for.
    shards: usize,
    held: HashMap<Timestamp, Held>,
    /// Transactions whose report is stored: a redelivered request for one
    /// (its acknowledgement was lost) is acknowledged at once.
    done: BTreeSet<Timestamp>,
    /// The worker process whose requests this host serves (from the
    /// requests' message ids): timestamps are that worker's.
    worker: Option<String>,
}

/// Whether the host goes on after a spawn request.
#[derive(Debug)]
enum Taken {
    Continue,
    /// The request is from another worker process than the earlier ones.
    NewWorker,
    /// The worker serves another shard count than this host's.
    ShardCountDiffers(NatsError),
}

/// The worker process a spawn request comes from: its message id is
/// `<worker process>-spawn-<timestamp>` (see `SpawnOverNats`).
fn spawning_worker(request: &jetstream::Message) -> Option<&str> {
    let id = request.headers.as_ref()?.get(async_nats::header::NATS_MESSAGE_ID)?.as_str();
    id.rsplit_once("-spawn-").map(|(worker, _)| worker)
}

impl Executors {
    async fn run(
        mut self,
        stream: stream::Stream,
        consumer_config: consumer::pull::Config,
        mut finished: tokio::sync::mpsc::UnboundedReceiver<Timestamp>,
        ack_wait: Duration,
    ) {
        let mut progress = tokio::time::interval((ack_wait / 3).max(Duration::from_millis(100)));
        loop {
            let requests = match stream.get_or_create_consumer("executors", consumer_config.clone()).await {
                Ok(consumer) => consumer.messages().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let mut requests = match requests {
                Ok(requests) => requests,
                Err(error) => {
                    tracing::warn!(%error, "opening the spawn queue");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            };
            loop {
                tokio::select! {
                    request = requests.next() => match request {
                        Some(Ok(request)) => match self.take(request).await {
                            Taken::Continue => {}
                            // A new worker numbers from 1 again: an executor
                            // of the old one would be taken for the new
                            // transaction of its timestamp (its report, its
                            // writes). Only a restart of this host with the
                            // deployment is safe; the request, not
                            // acknowledged, goes to a host that has one.
                            Taken::NewWorker => {
                                tracing::error!(
                                    "the worker was replaced (the deployment was restarted): this executor host \
                                     stops, and must be restarted too"
                                );
                                return;
                            }
                            // Likewise: executors here would wait on the wrong
                            // shards until their deadline.
                            Taken::ShardCountDiffers(error) => {
                                tracing::error!(%error, "this executor host stops");
                                return;
                            }
                        },
                        Some(Err(error)) => {
                            tracing::warn!(%error, "reading the spawn queue");
                            break;
                        }
                        None => break,
                    },
                    Some(timestamp) = finished.recv() => self.release(timestamp).await,
                    _ = progress.tick() => {
                        for held in self.held.values() {
                            let _ = held.request.ack_with(AckKind::Progress).await;
                        }
                    }
                }
            }
            self.link.counters().reconnects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn take(&mut self, request: jetstream::Message) -> Taken {
        if request.info().is_ok_and(|info| info.delivered > 1) {
            self.link.counters().redeliveries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let spawn: SpawnExecutor = match wire::decode(&request.payload) {
            Ok(spawn) => spawn,
            Err(error) => {
                tracing::warn!(%error, "a malformed spawn request, discarded");
                self.link.counters().malformed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _ = request.ack_with(AckKind::Term).await;
                return Taken::Continue;
            }
        };
        if let Some(worker) = spawning_worker(&request) {
            match &self.worker {
                Some(known) if known != worker => return Taken::NewWorker,
                Some(_) => {}
                None => {
                    // This host may have started before the worker: ask it
                    // now, once.
                    if let Err(error) = same_count_as_worker(&self.link, self.shards, None).await {
                        return Taken::ShardCountDiffers(error);
                    }
                    self.worker = Some(worker.to_owned());
                }
            }
        }
        let timestamp = spawn.timestamp;
        if self.done.contains(&timestamp) {
            let _ = request.ack().await;
            return Taken::Continue;
        }
        if let Some(held) = self.held.get_mut(&timestamp) {
            // Redelivered while it runs here (this host was slow): keep the
            // newest delivery, the one the server will accept an ack for.
            held.request = request;
            return Taken::Continue;
        }
        let id = executor_id(&spawn.worker, timestamp);
        let host = self.host.clone();
        let deliver: Deliver = Arc::new(move |envelope| {
            host.try_deliver(envelope);
        });
        let listener = match self.link.subjects().engine(&id) {
            Ok(subject) => self.link.receive_direct(subject, id.clone(), deliver).await,
            Err(error) => Err(error.into()),
        };
        let listener = match listener {
            Ok(listener) => listener,
            Err(error) => {
                // Not acknowledged: another host (or this one, later) takes it.
                tracing::warn!(%error, timestamp, "could not listen for an executor's messages");
                return Taken::Continue;
            }
        };
        let tx = Transaction {
            timestamp,
            executable: spawn.tx.executable,
            keys: spawn.tx.keys,
            worker: spawn.worker,
            issuer: spawn.tx.issuer,
            program: self.program.clone(),
        };
        if let Err(error) = self.host.spawn(tx).await {
            tracing::error!(%error, timestamp, "the executor host stopped");
            listener.abort();
            return Taken::Continue;
        }
        self.held.insert(timestamp, Held { request, listener });
        Taken::Continue
    }

    async fn release(&mut self, timestamp: Timestamp) {
        if let Some(held) = self.held.remove(&timestamp) {
            held.listener.abort();
            if let Err(error) = held.request.double_ack().await {
                tracing::warn!(%error, timestamp, "a spawn request's acknowledgement was lost; it may run again");
            }
        }
        self.done.insert(timestamp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_initial_value_too_large_to_travel_is_refused_with_its_key() -> Result<(), NatsError> {
        let limit = wire::REPORT_BYTES - REPORT_ENTRY_BYTES;
        let largest = limit as usize - 3;
        check_initial(&[(b"abc".to_vec(), vec![7; largest]), (vec![0xff; 200], b"1".to_vec())])?;
        let Err(error) = check_initial(&[(b"ok".to_vec(), b"1".to_vec()), (b"big\n".to_vec(), vec![7; largest + 1])])
        else {
            panic!("one byte more is refused")
        };
        assert!(
            matches!(&error, NatsError::InitialValueTooLarge { key, bytes, limit: l }
                if key == "big\\n" && *bytes == limit + 2 && *l == limit),
            "{error:?}"
        );
        // A long binary key is shown escaped and shortened.
        let Err(NatsError::InitialValueTooLarge { key, .. }) = check_initial(&[(vec![0xff; 1000], vec![0; largest])])
        else {
            panic!("a long key counts too")
        };
        assert_eq!(key, format!("{}…", "\\xff".repeat(64)));
        Ok(())
    }
}
