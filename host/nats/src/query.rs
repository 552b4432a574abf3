//! A shard's read-only answer to a client's question "what do you hold?"
//! (`<ns>.query.<shard>`): its [`ShardSummary`] in parts that each fit in
//! a message, however much the shard holds.
//!
//! The client names its query and asks for part 0; the shard takes one
//! snapshot of its state, splits it ([`split`]), answers part 0 with the
//! number of parts, and keeps the snapshot to answer the client's
//! requests for the other parts from it, so that the parts add up to one
//! state. One request, one reply: what a server's `allow_responses`
//! permission allows. A shard keeps a snapshot until its last part is
//! taken, and at most four at once (clients asking together each get
//! theirs; an abandoned query does not hold a copy of the shard for
//! ever): a part asked of a query it no longer holds is answered "start
//! again" (no parts), which a client does a bounded number of times.
//!
//! This module must not change what a shard holds: it only reads it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use executor_host::EngineId;
use executor_host::runtime::RuntimeHandle;
use executor_testkit::harness::ShardSummary;
use executor_testkit::shard::Shard;
use executor_testkit::worker::Worker;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::link::Link;
use crate::{NatsError, wire};

/// A client's request: part `part` of the snapshot its query `query`
/// started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Ask {
    query: String,
    part: u32,
}

/// A shard's reply: part `part` of `parts`, or `parts == 0` when the shard
/// no longer holds the query's snapshot (ask again from part 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Part {
    part: u32,
    parts: u32,
    summary: ShardSummary,
}

/// What one part may carry: the bytes of its keys and values, each entry
/// counted with 16 more, as a report is ([`wire::REPORT_BYTES`]), so a
/// part fits in a message.
const PART_BYTES: u64 = wire::REPORT_BYTES;

/// `summary` in parts of at most `budget` bytes of keys and values each
/// (an entry larger than that alone in its part): the counts and the
/// conflicting writes in the first, the latest values split in key order.
fn split(summary: ShardSummary, budget: u64) -> Vec<ShardSummary> {
    use executor_host::report_entry_bytes as entry;
    let ShardSummary { latest, pending, dropped, conflicting_writes } = summary;
    let mut used: u64 = conflicting_writes.iter().map(|(_, key)| entry(key, None)).sum();
    let mut parts = vec![ShardSummary { pending, dropped, conflicting_writes, ..ShardSummary::default() }];
    for (key, datum) in latest {
        let size = entry(&key, Some(&datum));
        let fits = used.saturating_add(size) <= budget;
        match parts.last_mut() {
            Some(part) if fits || part.latest.is_empty() && part.conflicting_writes.is_empty() => {
                used = used.saturating_add(size);
                part.latest.insert(key, datum);
            }
            _ => {
                used = size;
                parts.push(ShardSummary { latest: [(key, datum)].into(), ..ShardSummary::default() });
            }
        }
    }
    parts
}

/// Answers `<ns>.query.<id>` for `shard`, one of `shards`, until the
/// subscription ends.
pub(crate) async fn answer(
    link: &Arc<Link>,
    id: &EngineId,
    shards: usize,
    shard: RuntimeHandle<Shard>,
) -> Result<JoinHandle<()>, NatsError> {
    let client = link.client().clone();
    let mut queries =
        client.subscribe(link.subjects().query(id)?).await.map_err(|e| NatsError::Connect(e.to_string()))?;
    let id = id.clone();
    Ok(tokio::spawn(async move {
        let mut kept = Snapshots::default();
        while let Some(request) = queries.next().await {
            let Some(reply) = request.reply.filter(is_inbox) else { continue };
            // An empty request asks whether this shard exists, for how
            // many shards it was started, and how far it has served
            // ([`presence`]): its heard-all-writes watermark.
            if request.payload.is_empty() {
                let progress = shard.inspect(id.clone(), |s| s.map_or(0, |s| s.env.local.watermarks().0)).await;
                let Ok(progress) = progress else { return };
                let answer = Presence { shards, progress }.to_string();
                let _ = client.publish(reply, answer.into()).await;
                continue;
            }
            let ask = match wire::decode::<Ask>(&request.payload) {
                Ok(ask) => ask,
                Err(error) => {
                    tracing::debug!(%error, "a malformed query, ignored");
                    continue;
                }
            };
            if ask.part == 0 {
                let Ok(summary) = shard.inspect(id.clone(), |s| s.map(|s| ShardSummary::of(&s.env.local))).await else {
                    return;
                };
                // Not hosted here (yet): no answer, and the client asks again.
                let Some(summary) = summary else { continue };
                kept.keep(ask.query.clone(), split(summary, PART_BYTES));
            }
            let part = kept.take(&ask.query, ask.part);
            match wire::encode(&part) {
                Ok(bytes) => {
                    let _ = client.publish(reply, bytes.into()).await;
                }
                Err(error) => tracing::error!(%error, "a part of the shard's summary does not fit in a message"),
            }
        }
    }))
}

/// Whether a query's reply subject is a requester's inbox (`_INBOX.…`, as
/// NATS clients make them). An answer goes out with this process's
/// permissions: a reply subject a client chose inside the namespace, or
/// JetStream's API, would have a shard or the worker publish there for it
/// (into the worker's service subject, or a stream deletion).
fn is_inbox(reply: &async_nats::Subject) -> bool {
    reply.as_str().starts_with("_INBOX.")
}

/// Whether engine `id` (a shard, the worker) runs: it answers an empty
/// query at once, and the server says at once that nothing listens. Only
/// an answer counts: whatever subscribes and stays silent for 2 s is most
/// likely an operator's monitor (`nats sub '>'` gets every query too),
/// which must not make a process refuse to start or `submit` miscount the
/// shards; it is logged.
pub(crate) async fn exists(link: &Link, id: &EngineId) -> Result<bool, NatsError> {
    Ok(match probe(link, id).await? {
        Ok(_) => true,
        Err(error) => {
            if error.kind() == async_nats::client::RequestErrorKind::TimedOut {
                tracing::warn!(
                    %id,
                    "something subscribes to this engine's queries and did not answer in 2 s (a monitor, or a hung \
                     process): taken as absent"
                );
            }
            false
        }
    })
}

/// An empty query to `id`, answered or not within 2 s. A request that
/// failed while the client was not connected is no answer either way: the
/// server cannot be reached.
async fn probe(
    link: &Link,
    id: &EngineId,
) -> Result<Result<async_nats::Message, async_nats::client::RequestError>, NatsError> {
    let request = async_nats::client::Request::new().timeout(Some(Duration::from_secs(2)));
    match link.client().send_request(link.subjects().query(id)?, request).await {
        Err(error) if !link.connected() => Err(link.jetstream_error(error)),
        answer => Ok(answer),
    }
}

/// Answers every query to the worker `id` with its [`Presence`], the
/// transactions it has ordered as its progress: what [`exists`] and
/// [`presence`] ask.
pub(crate) async fn answer_presence(
    link: &Arc<Link>,
    id: &EngineId,
    shards: usize,
    worker: RuntimeHandle<Worker>,
) -> Result<JoinHandle<()>, NatsError> {
    let client = link.client().clone();
    let mut queries =
        client.subscribe(link.subjects().query(id)?).await.map_err(|e| NatsError::Connect(e.to_string()))?;
    let id = id.clone();
    Ok(tokio::spawn(async move {
        while let Some(request) = queries.next().await {
            if let Some(reply) = request.reply.filter(is_inbox) {
                let ordered = worker
                    .inspect(id.clone(), |w| w.map_or(0, |w| w.env.local.next_timestamp().saturating_sub(1)))
                    .await;
                let Ok(progress) = ordered else { return };
                let _ = client.publish(reply, Presence { shards, progress }.to_string().into()).await;
            }
        }
    }))
}

/// What the worker or a shard says of itself: the shard count it was
/// started for, and how far it has got (the worker: transactions ordered;
/// a shard: its heard-all-writes watermark). `"3 17"`, or `"3"` for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Presence {
    pub(crate) shards: usize,
    pub(crate) progress: u64,
}

impl std::fmt::Display for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.shards, self.progress)
    }
}

impl std::str::FromStr for Presence {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        let mut words = text.split(' ');
        let shards = words.next().ok_or(())?.parse().map_err(|_| ())?;
        let progress = words.next().map_or(Ok(0), str::parse).map_err(|_| ())?;
        Ok(Self { shards, progress })
    }
}

/// What engine `id` (the worker or a shard) says of itself, if it answers.
pub(crate) async fn presence(link: &Link, id: &EngineId) -> Result<Option<Presence>, NatsError> {
    let reply = probe(link, id).await?.ok();
    Ok(reply.and_then(|reply| std::str::from_utf8(&reply.payload).ok()?.parse().ok()))
}

/// The snapshots of the queries being answered, each until its last part
/// is taken; at most [`Snapshots::KEPT`], so that clients asking at once
/// each get theirs, and an abandoned query does not hold a copy of the
/// shard for ever.
#[derive(Default)]
struct Snapshots(std::collections::VecDeque<(String, Vec<Option<ShardSummary>>)>);

impl Snapshots {
    const KEPT: usize = 4;

    fn keep(&mut self, query: String, parts: Vec<ShardSummary>) {
        self.0.retain(|(q, _)| *q != query);
        if self.0.len() == Self::KEPT {
            self.0.pop_front();
        }
        self.0.push_back((query, parts.into_iter().map(Some).collect()));
    }

    /// Part `part` of `query`'s snapshot (each part is given once: the
    /// client starts again from part 0 after any miss), or "start again".
    fn take(&mut self, query: &str, part: u32) -> Part {
        let again = Part { part, parts: 0, summary: ShardSummary::default() };
        let Some(at) = self.0.iter().position(|(q, _)| q == query) else { return again };
        let Some((_, parts)) = self.0.get_mut(at) else { return again };
        let total = u32::try_from(parts.len()).unwrap_or(u32::MAX);
        let taken = usize::try_from(part).ok().and_then(|i| parts.get_mut(i)).and_then(Option::take);
        if parts.iter().all(Option::is_none) {
            self.0.remove(at);
        }
        match taken {
            Some(summary) => Part { part, parts: total, summary },
            None => again,
        }
    }
}

/// Why one attempt at a summary did not give one.
enum Missed {
    /// The shard no longer holds the snapshot: start again.
    Again,
    /// No answer, or one that does not decode.
    Failed(String),
}

/// What shard `id` holds, in as many requests as it has parts; a query
/// the shard forgot midway starts again (up to 20 times), as does one it
/// did not answer.
pub(crate) async fn summary(link: &Link, id: &EngineId) -> Result<ShardSummary, NatsError> {
    let subject = link.subjects().query(id)?;
    let mut last = String::new();
    for _ in 0..20 {
        match attempt(link, &subject).await {
            Ok(summary) => return Ok(summary),
            Err(Missed::Again) => last = "the shard forgot the query midway".into(),
            Err(Missed::Failed(error)) => {
                tracing::debug!(%error, shard = %id, "asking a shard; retrying");
                last = error;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    Err(NatsError::Timeout(format!("shard {id} does not answer: {last}")))
}

async fn attempt(link: &Link, subject: &str) -> Result<ShardSummary, Missed> {
    let query = nuid::next().to_string();
    let query = &query;
    let ask = |part: u32| async move {
        let payload = wire::encode(&Ask { query: query.clone(), part }).map_err(|e| Missed::Failed(e.to_string()))?;
        let reply = link
            .client()
            .request(subject.to_owned(), Bytes::from(payload))
            .await
            .map_err(|e| Missed::Failed(e.to_string()))?;
        let answer: Part = wire::decode(&reply.payload).map_err(|e| Missed::Failed(e.to_string()))?;
        if answer.parts == 0 || answer.part != part { Err(Missed::Again) } else { Ok(answer) }
    };
    let first = ask(0).await?;
    let mut summary = first.summary;
    for part in 1..first.parts {
        let answer = ask(part).await?;
        if answer.parts != first.parts {
            return Err(Missed::Again);
        }
        summary.latest.extend(answer.summary.latest);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(entries: usize, value: usize) -> ShardSummary {
        ShardSummary {
            latest: (0..entries).map(|i| (format!("key{i:06}").into_bytes(), vec![0xff; value])).collect(),
            pending: 3,
            dropped: 4,
            conflicting_writes: vec![(7, b"c".to_vec())],
        }
    }

    /// The parts add up to the summary, each within its budget (but an
    /// entry larger than the budget, alone), the counts in the first; and
    /// each part, at its worst, fits in a message.
    #[test]
    fn a_summary_splits_into_parts_that_each_fit() -> Result<(), wire::WireError> {
        for (entries, value, budget) in [(0, 0, 100), (10, 5, 1_000), (1_000, 50, 700), (5, 200, 100), (3, 10, 20)] {
            let whole = summary(entries, value);
            let parts = split(whole.clone(), budget);
            let mut joined = ShardSummary { latest: Default::default(), ..parts[0].clone() };
            for part in &parts {
                let size: u64 = part.latest.iter().map(|(k, d)| (k.len() + d.len()) as u64 + 16).sum::<u64>()
                    + part.conflicting_writes.iter().map(|(_, k)| k.len() as u64 + 16).sum::<u64>();
                assert!(size <= budget || part.latest.len() == 1, "{size} > {budget}");
                joined.latest.extend(part.latest.clone());
            }
            assert_eq!(joined, whole);
            assert!(parts[1..].iter().all(|p| p.pending == 0 && p.conflicting_writes.is_empty()));
        }
        for part in split(summary(40_000, 20), PART_BYTES) {
            wire::encode(&Part { part: u32::MAX, parts: u32::MAX, summary: part })?;
        }
        Ok(())
    }

    /// Each part is given once; a snapshot goes once its last part is
    /// taken, or when more queries than kept come after it.
    #[test]
    fn snapshots_give_each_part_once_and_forget_old_queries() {
        let mut kept = Snapshots::default();
        let parts = split(summary(10, 5), 40);
        let n = u32::try_from(parts.len()).unwrap();
        assert!(n > 2, "{n} parts");
        kept.keep("a".into(), parts.clone());
        assert_eq!(kept.take("a", 0), Part { part: 0, parts: n, summary: parts[0].clone() });
        assert_eq!(kept.take("a", 0).parts, 0, "given once");
        assert_eq!(kept.take("a", n).parts, 0, "no such part");
        for q in ["b", "c", "d", "e"] {
            kept.keep(q.into(), parts.clone());
        }
        assert_eq!(kept.take("a", 1).parts, 0, "the oldest is forgotten");
        for part in 0..n {
            assert_eq!(kept.take("e", part).parts, n);
        }
        assert_eq!(kept.0.len(), 3, "a snapshot goes with its last part");
    }
}
