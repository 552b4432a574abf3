//! A client: submits a workload's transactions to a deployment's worker,
//! waits for every `ExecutorFinished`, asks the shards what they hold, and
//! assembles the same [`Outcome`] as an in-process run.
//!
//! This module must not talk to an executor: a client knows only the
//! worker (where it submits), its own reports, and the shards' read-only
//! queries.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage as Publish;
use executor_host::{EngineId, Envelope, ExecutorFinished, Message, Timestamp};
use executor_testkit::harness::{HashShards, Outcome, ShardSummary, TxOutcome, Workload, assemble_outcome};

use crate::link::{Deliver, Link};
use crate::roles::worker_id;
use crate::{NatsError, wire};

/// Each transaction's report, by timestamp, and when it arrived.
type Reports = BTreeMap<Timestamp, (Arc<ExecutorFinished>, Instant)>;

/// How long a submission may see no new report before it gives up, and
/// how long it waits for the shards to settle afterwards.
#[derive(Clone)]
pub struct Patience {
    /// No report for this long: the run is stuck.
    pub stall: Duration,
    /// Shards still holding markers this long after the last report: give
    /// the outcome as it is (it lists the pending markers).
    pub settle: Duration,
    /// Called with the number of reports received whenever it grows (a
    /// progress bar).
    pub progress: Option<Arc<dyn Fn(usize) + Send + Sync>>,
}

impl std::fmt::Debug for Patience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patience").field("stall", &self.stall).field("settle", &self.settle).finish_non_exhaustive()
    }
}

impl Default for Patience {
    fn default() -> Self {
        Self { stall: Duration::from_secs(120), settle: Duration::from_secs(10), progress: None }
    }
}

/// Submits every transaction of `workload` (in order) to the deployment
/// `link` reaches, and returns what happened. `workload.shards` must be
/// the deployment's shard count; its `initial` state is the shards' to
/// load, not the client's.
pub async fn submit(link: &Arc<Link>, workload: &Workload, patience: Patience) -> Result<Outcome, NatsError> {
    let me = EngineId::local(format!("client/{}", nuid::next()));
    let subjects = link.subjects();
    let reports: Arc<Mutex<Reports>> = Arc::default();
    let notify = Arc::new(tokio::sync::Notify::new());
    let deliver: Deliver = {
        let (reports, notify) = (reports.clone(), notify.clone());
        Arc::new(move |envelope: Envelope<Message>| {
            if let Message::ExecutorFinished(report) = envelope.payload {
                reports
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(report.timestamp)
                    .or_insert((report, Instant::now()));
                notify.notify_one();
            }
        })
    };
    // The worker creates the clients' stream; wait for it.
    let waited = Instant::now();
    while let Err(error) = link.jetstream().get_stream(subjects.clients_stream()).await {
        if waited.elapsed() > patience.stall {
            return Err(match link.jetstream_error(error) {
                NatsError::JetStream(_) => NatsError::Timeout("no worker: the clients' stream does not exist".into()),
                unreachable => unreachable,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    check_shards(link, workload.shards, patience.stall).await?;
    let receiver = link.receive(subjects.clients_stream(), subjects.engine(&me)?, me.clone(), deliver);
    let result = run(link, workload, &me, &reports, &notify, patience).await;
    receiver.abort();
    result
}

async fn run(
    link: &Arc<Link>,
    workload: &Workload,
    me: &EngineId,
    reports: &Mutex<Reports>,
    notify: &tokio::sync::Notify,
    patience: Patience,
) -> Result<Outcome, NatsError> {
    let worker = link.subjects().engine(&worker_id())?;
    // Every request must fit in a message before any is sent: a run must
    // not stop halfway with some transactions executed and none reported.
    for (index, tx) in workload.transactions.iter().enumerate() {
        let request = Message::TransactionRequest {
            executable: tx.executable.clone(),
            keys: Box::new(tx.keys.clone()),
            resubmission: None,
        };
        wire::encode(&Envelope::new(me.clone(), worker_id(), request))
            .map_err(|source| NatsError::Unsendable { index, source })?;
    }
    // Published in order, acknowledgements awaited in order, at most
    // `WINDOW` outstanding (the JetStream context lends a limited number
    // of acknowledgement slots: waiting for none while publishing more
    // would never end). The worker numbers requests in stream order, so
    // sorting ours by the sequence the server gave each one sorts them by
    // timestamp, whatever other clients submit meanwhile and whichever
    // publish had to be retried.
    const WINDOW: usize = 1024;
    let mut window = std::collections::VecDeque::with_capacity(WINDOW);
    let mut order = Vec::with_capacity(workload.transactions.len());
    for (i, tx) in workload.transactions.iter().enumerate() {
        let request = Message::TransactionRequest {
            executable: tx.executable.clone(),
            keys: Box::new(tx.keys.clone()),
            resubmission: None,
        };
        let bytes = bytes::Bytes::from(wire::encode(&Envelope::new(me.clone(), worker_id(), request))?);
        let id = format!("{}-{i}", me.name);
        let sent = Instant::now();
        let ack = link
            .jetstream()
            .send_publish(worker.clone(), Publish::build().message_id(&id).payload(bytes.clone()))
            .await;
        window.push_back(Submission { index: i, id, bytes, sent, ack: ack.map_err(|e| e.to_string()) });
        if window.len() >= WINDOW
            && let Some(oldest) = window.pop_front()
        {
            order.push(acknowledged(link, &worker, oldest).await);
        }
    }
    for submission in window {
        order.push(acknowledged(link, &worker, submission).await);
    }
    order.sort_unstable();
    let expected = order.len();
    wait_for_reports(reports, notify, expected, &patience).await?;
    let reports = std::mem::take(&mut *reports.lock().unwrap_or_else(PoisonError::into_inner));
    let mut transactions = Vec::with_capacity(expected);
    let mut latencies = Vec::with_capacity(expected);
    for ((_, i, sent), (timestamp, (finished, arrived))) in order.into_iter().zip(reports) {
        let Some(tx) = workload.transactions.get(i) else { continue };
        latencies.push(arrived.saturating_duration_since(sent));
        // What was submitted, as an in-process outcome holds it.
        transactions.push(TxOutcome { timestamp, tx: tx.clone(), finished });
    }
    let shards = settled_shards(link, workload.shards, patience.settle).await?;
    assemble_outcome(expected, transactions, shards, 0, latencies).map_err(|e| NatsError::Incomplete(e.to_string()))
}

/// Refuses a workload whose shard count is not the deployment's, before
/// anything is sent: the deployment would run it (its processes agree on
/// theirs), but the report would miss shards, or wait for one that does
/// not exist. The worker and each shard answer an empty query at once
/// with their count, and the server says at once that a subject has no
/// subscriber; the last shard is given `stall` to come up.
async fn check_shards(link: &Link, shards: usize, stall: Duration) -> Result<(), NatsError> {
    if let Some(worker) = crate::query::shard_count(link, &worker_id()).await?
        && worker != shards
    {
        return Err(NatsError::ShardMismatch { shards, deployment: worker.to_string() });
    }
    let ids = HashShards::new(shards.saturating_add(1));
    let exists = |index: usize| {
        let id = ids.all().get(index).cloned();
        async move {
            match id {
                Some(id) => crate::query::exists(link, &id).await,
                None => Ok(false),
            }
        }
    };
    let mismatch = |deployment: &str| NatsError::ShardMismatch { shards, deployment: deployment.to_owned() };
    if exists(shards).await? {
        return Err(mismatch("more"));
    }
    let waited = Instant::now();
    while !exists(shards.saturating_sub(1)).await? {
        if waited.elapsed() > stall {
            return Err(mismatch("fewer (or they are not running)"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// One submitted transaction, its acknowledgement not yet seen.
struct Submission {
    index: usize,
    id: String,
    bytes: bytes::Bytes,
    sent: Instant,
    ack: Result<async_nats::jetstream::context::PublishAckFuture, String>,
}

/// Waits for a submission's acknowledgement; if the first publish failed,
/// publishes it again under the same id (never stored twice) until it is
/// stored. Returns its stream sequence, index and when it was first sent.
async fn acknowledged(link: &Link, worker: &str, submission: Submission) -> (u64, usize, Instant) {
    let Submission { index, id, bytes, sent, ack } = submission;
    if let Ok(future) = ack {
        match future.await {
            Ok(ack) => return (ack.sequence, index, sent),
            Err(error) => tracing::debug!(%error, "submission not acknowledged; retrying"),
        }
    }
    (link.persist(worker.to_owned(), bytes, &id).await, index, sent)
}

async fn wait_for_reports(
    reports: &Mutex<Reports>,
    notify: &tokio::sync::Notify,
    expected: usize,
    patience: &Patience,
) -> Result<(), NatsError> {
    let count = || reports.lock().unwrap_or_else(PoisonError::into_inner).len();
    let (mut last, mut moved) = (count(), Instant::now());
    let stall = patience.stall;
    while last < expected {
        let notified = notify.notified();
        let _ = tokio::time::timeout(Duration::from_millis(250), notified).await;
        let now = count();
        if now != last {
            (last, moved) = (now, Instant::now());
            if let Some(progress) = &patience.progress {
                progress(now);
            }
        } else if moved.elapsed() > stall {
            return Err(NatsError::Timeout(format!(
                "{last} of {expected} transactions reported, and none for {} s",
                stall.as_secs()
            )));
        }
    }
    Ok(())
}

/// Every shard's summary, asked again while any holds a pending marker
/// (trailing releases may still be in flight), for at most `settle`.
async fn settled_shards(link: &Arc<Link>, shards: usize, settle: Duration) -> Result<Vec<ShardSummary>, NatsError> {
    let started = Instant::now();
    loop {
        let mut summaries = Vec::new();
        for id in HashShards::new(shards).all() {
            summaries.push(shard_summary(link, id).await?);
        }
        if summaries.iter().all(|s| s.pending == 0) || started.elapsed() > settle {
            return Ok(summaries);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What one shard holds, asked over `<ns>.query.<shard>` (in as many
/// requests as the shard needs messages to say it).
pub async fn shard_summary(link: &Arc<Link>, id: &EngineId) -> Result<ShardSummary, NatsError> {
    crate::query::summary(link, id).await
}
