//! A client: submits a workload's transactions to a deployment's worker,
//! waits for every `ExecutorFinished`, asks the shards what they hold, and
//! assembles the same [`Outcome`] as an in-process run.
//!
//! This module must not talk to an executor: a client knows only the
//! worker (where it submits), its own reports, and the shards' read-only
//! queries.

use std::collections::BTreeMap;
use std::future::IntoFuture as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage as Publish;
use executor_host::{EngineId, Envelope, ExecutorFinished, Message, Timestamp};
use executor_testkit::harness::{HashShards, Outcome, ShardSummary, TxOutcome, TxSpec, Workload, assemble_outcome};

use crate::link::{Deliver, Link};
use crate::roles::worker_id;
use crate::{NatsError, wire};

/// What the deployment told this client.
#[derive(Default)]
struct Heard {
    /// This client's requests: tags from 0 to this (a tag past them is
    /// not this client's).
    expected: u64,
    /// The timestamps the worker gave each request, by the request's tag
    /// (its index in the workload). More than one: the request ran again.
    ordered: BTreeMap<u64, Vec<Timestamp>>,
    /// The timestamps in `ordered`, each with its tag.
    owners: std::collections::HashMap<Timestamp, u64>,
    /// Each report, by timestamp, and when it arrived.
    reports: BTreeMap<Timestamp, (Arc<ExecutorFinished>, Instant)>,
    /// Counted as messages arrive (a count over everything at each
    /// arrival would cost a large submission quadratic time).
    progress: Progress,
}

impl Heard {
    fn new(expected: usize) -> Self {
        Self { expected: u64::try_from(expected).unwrap_or(u64::MAX), ..Self::default() }
    }

    /// The worker gave request `tag` the timestamp `timestamp`.
    fn order(&mut self, tag: u64, timestamp: Timestamp) {
        if tag >= self.expected {
            return;
        }
        let timestamps = self.ordered.entry(tag).or_default();
        if timestamps.contains(&timestamp) {
            return;
        }
        if timestamps.is_empty() {
            self.progress.ordered += 1;
        }
        timestamps.push(timestamp);
        self.owners.insert(timestamp, tag);
        self.progress.runs += 1;
        if self.reports.contains_key(&timestamp) {
            self.progress.reported += 1;
        }
    }

    /// A transaction's report.
    fn report(&mut self, report: Arc<ExecutorFinished>) {
        let timestamp = report.timestamp;
        if self.reports.contains_key(&timestamp) {
            return;
        }
        self.reports.insert(timestamp, (report, Instant::now()));
        if self.owners.contains_key(&timestamp) {
            self.progress.reported += 1;
        }
    }

    /// The first requests, counted from 0, not yet ordered or reported.
    fn missing(&self, expected: usize, most: usize) -> Vec<usize> {
        (0..expected)
            .filter(|&i| {
                let timestamps = u64::try_from(i).ok().and_then(|tag| self.ordered.get(&tag));
                timestamps.is_none_or(|t| t.iter().any(|t| !self.reports.contains_key(t)))
            })
            .take(most)
            .collect()
    }
}

/// How far a submission has got.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Progress {
    /// Requests the worker ordered.
    ordered: usize,
    /// Transactions it ordered for them (more than `ordered` when a
    /// request ran twice).
    runs: usize,
    /// Of those, the ones reported.
    reported: usize,
}

impl Progress {
    fn done(&self, expected: usize) -> bool {
        self.ordered == expected && self.reported == self.runs
    }
}

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
    let heard = Arc::new(Mutex::new(Heard::new(workload.transactions.len())));
    let notify = Arc::new(tokio::sync::Notify::new());
    let deliver: Deliver = {
        let (heard, notify) = (heard.clone(), notify.clone());
        Arc::new(move |envelope: Envelope<Message>| {
            let mut heard = heard.lock().unwrap_or_else(PoisonError::into_inner);
            match envelope.payload {
                Message::ExecutorFinished(report) => heard.report(report),
                Message::TransactionOrdered { tag, timestamp } if envelope.sender == worker_id() => {
                    heard.order(tag, timestamp);
                }
                _ => return,
            }
            notify.notify_one();
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
    let result = run(link, workload, &me, &heard, &notify, patience).await;
    receiver.abort();
    result
}

async fn run(
    link: &Arc<Link>,
    workload: &Workload,
    me: &EngineId,
    heard: &Mutex<Heard>,
    notify: &tokio::sync::Notify,
    patience: Patience,
) -> Result<Outcome, NatsError> {
    let worker = link.subjects().engine(&worker_id())?;
    // Every request must fit in a message before any is sent: a run must
    // not stop halfway with some transactions executed and none reported.
    // Each request is tagged with its index: the worker answers with the
    // timestamp it gave it, which names its report. (Matching reports to
    // requests by order would go wrong, silently, if a request of ours
    // were published again without its message id, or forged under our
    // id: it would run as one more transaction.)
    let request = |index: usize, tx: &TxSpec| {
        let request = Message::TransactionRequest {
            executable: tx.executable.clone(),
            keys: Box::new(tx.keys.clone()),
            resubmission: None,
            tag: u64::try_from(index).ok(),
        };
        wire::encode(&Envelope::new(me.clone(), worker_id(), request))
    };
    for (index, tx) in workload.transactions.iter().enumerate() {
        request(index, tx).map_err(|source| NatsError::Unsendable { index, source })?;
    }
    // Published in order, acknowledgements awaited in order, at most
    // `WINDOW` outstanding (the JetStream context lends a limited number
    // of acknowledgement slots: waiting for none while publishing more
    // would never end).
    const WINDOW: usize = 1024;
    let mut window = std::collections::VecDeque::with_capacity(WINDOW);
    let mut sent = Vec::with_capacity(workload.transactions.len());
    for (i, tx) in workload.transactions.iter().enumerate() {
        let bytes = bytes::Bytes::from(request(i, tx)?);
        let id = format!("{}-{i}", me.name);
        let at = Instant::now();
        sent.push(at);
        let ack = link
            .jetstream()
            .send_publish(worker.clone(), Publish::build().message_id(&id).payload(bytes.clone()))
            .await;
        window.push_back(Submission { id, bytes, at, ack: ack.map_err(|e| e.to_string()) });
        if window.len() >= WINDOW
            && let Some(oldest) = window.pop_front()
        {
            acknowledged(link, &worker, oldest, patience.stall).await?;
        }
    }
    for submission in window {
        acknowledged(link, &worker, submission, patience.stall).await?;
    }
    let expected = sent.len();
    match wait_for_reports(heard, notify, expected, &patience).await {
        Ok(()) => {}
        Err(NatsError::Timeout(stalled)) => {
            return Err(NatsError::Timeout(format!("{stalled}{}", silent_processes(link, workload.shards).await)));
        }
        Err(other) => return Err(other),
    }
    let Heard { ordered, mut reports, .. } = std::mem::take(&mut *heard.lock().unwrap_or_else(PoisonError::into_inner));
    // Only tags below `expected` were taken.
    let ours = ordered.iter();
    let mut twice = ours.clone().filter(|(_, timestamps)| timestamps.len() > 1);
    if let Some((tag, timestamps)) = twice.next() {
        let mut timestamps = timestamps.clone();
        timestamps.sort_unstable();
        return Err(NatsError::RanTwice {
            index: usize::try_from(*tag).unwrap_or(usize::MAX),
            timestamps,
            others: twice.count(),
        });
    }
    let mut transactions = Vec::with_capacity(expected);
    let mut latencies = Vec::with_capacity(expected);
    for (tag, timestamps) in ours {
        let (Some(&timestamp), Ok(i)) = (timestamps.first(), usize::try_from(*tag)) else { continue };
        let (Some(tx), Some(sent), Some((finished, arrived))) =
            (workload.transactions.get(i), sent.get(i), reports.remove(&timestamp))
        else {
            continue;
        };
        latencies.push(arrived.saturating_duration_since(*sent));
        // What was submitted, as an in-process outcome holds it.
        transactions.push(TxOutcome { timestamp, tx: tx.clone(), finished });
    }
    // Requests are published in order, but one the server lost (it
    // restarted while they were in flight) is sent again after later
    // ones: each transaction is still run once, in the order of its
    // timestamp, which is then not the scenario's.
    let out_of_order =
        transactions.windows(2).filter(|pair| matches!(pair, [a, b] if a.timestamp > b.timestamp)).count();
    if out_of_order > 0 {
        tracing::warn!(
            out_of_order,
            "the server lost some requests in flight and they were sent again: the transactions ran in the order of their timestamps, which differs from the scenario's"
        );
    }
    transactions.sort_unstable_by_key(|tx| tx.timestamp);
    if !reports.is_empty() {
        tracing::warn!(
            reports = reports.len(),
            "reports of transactions this client did not submit, under its id, were left out"
        );
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
    if let Some(worker) = crate::query::presence(link, &worker_id()).await?
        && worker.shards != shards
    {
        return Err(NatsError::ShardMismatch { shards, deployment: worker.shards.to_string() });
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
    // Every shard, not only the last: a shard that starts after the
    // worker has ordered a transaction refuses to (it would have missed
    // the transaction's lock request).
    let waited = Instant::now();
    for index in (0..shards).rev() {
        while !exists(index).await? {
            if waited.elapsed() > stall {
                return Err(mismatch("fewer (or they are not running)"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// One submitted transaction, its acknowledgement not yet seen.
struct Submission {
    id: String,
    bytes: bytes::Bytes,
    /// When it was published.
    at: Instant,
    ack: Result<async_nats::jetstream::context::PublishAckFuture, String>,
}

/// How long a publish waits for the server's acknowledgement, counted
/// from the publish (the JetStream context's own bound, 5 s, starts only
/// when its future is awaited: after a server restart had lost the
/// acknowledgements of a window of publishes, each waited 5 s in turn,
/// over an hour for a full window).
const ACK_WAIT: Duration = Duration::from_secs(5);

/// Waits for a submission's acknowledgement, at most until [`ACK_WAIT`]
/// after its publish; if none came, publishes it again under the same id
/// (never stored twice) until it is stored, for at most `stall`.
async fn acknowledged(link: &Link, worker: &str, submission: Submission, stall: Duration) -> Result<(), NatsError> {
    let Submission { id, bytes, at, ack } = submission;
    if let Ok(future) = ack {
        // An acknowledgement that came already is taken even when the
        // time is up: the future is polled before the clock.
        match tokio::time::timeout(ACK_WAIT.saturating_sub(at.elapsed()), future.into_future()).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(error)) => tracing::debug!(%error, "submission not acknowledged; retrying"),
            Err(_) => tracing::debug!("submission not acknowledged in time; retrying"),
        }
    }
    tokio::time::timeout(stall, link.persist(worker.to_owned(), bytes, &id)).await.map(|_| ()).map_err(|_| {
        NatsError::Timeout(format!(
            "the server stored none of this client's requests for {} s: is it running, with JetStream?",
            stall.as_secs()
        ))
    })
}

/// Waits until every request is ordered and every transaction ordered
/// for one is reported, or nothing moves for `patience.stall`.
async fn wait_for_reports(
    heard: &Mutex<Heard>,
    notify: &tokio::sync::Notify,
    expected: usize,
    patience: &Patience,
) -> Result<(), NatsError> {
    let progress = || heard.lock().unwrap_or_else(PoisonError::into_inner).progress;
    let (mut last, mut moved) = (progress(), Instant::now());
    let stall = patience.stall;
    while !last.done(expected) {
        let notified = notify.notified();
        let _ = tokio::time::timeout(Duration::from_millis(250), notified).await;
        let now = progress();
        if now != last {
            if now.reported != last.reported
                && let Some(progress) = &patience.progress
            {
                progress(now.reported);
            }
            (last, moved) = (now, Instant::now());
        } else if moved.elapsed() > stall {
            let missing = heard.lock().unwrap_or_else(PoisonError::into_inner).missing(expected, 10);
            let missing: Vec<String> = missing.iter().map(usize::to_string).collect();
            return Err(NatsError::Timeout(format!(
                "{} of {expected} transactions reported, and none for {} s; not reported (counted from 0 in the scenario's order): {}{}",
                last.reported.min(expected),
                stall.as_secs(),
                missing.join(", "),
                if expected - last.reported.min(expected) > missing.len() { ", …" } else { "" },
            )));
        }
    }
    Ok(())
}

/// The deployment's processes that do not answer, said after a stall
/// (a dead shard or worker stalls a run: the README says to restart the
/// deployment), or nothing.
async fn silent_processes(link: &Link, shards: usize) -> String {
    let mut silent = Vec::new();
    for id in std::iter::once(worker_id()).chain(HashShards::new(shards).all().iter().cloned()) {
        if !matches!(crate::query::exists(link, &id).await, Ok(true)) {
            silent.push(id.to_string());
        }
    }
    if silent.is_empty() {
        String::new()
    } else {
        format!(
            "; not answering: {} (a shard or the worker that died lost its state: restart the deployment, every process)",
            silent.join(", ")
        )
    }
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
