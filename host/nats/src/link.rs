//! One process's connection to NATS: how envelopes leave ([`NatsRouter`])
//! and arrive ([`Link::receive`], [`Link::receive_direct`]).
//!
//! Two classes of message, chosen by what losing one would do:
//!
//! - **Persistent** (to shards, the worker and clients, except retried read
//!   requests): published to the target's JetStream stream with a unique
//!   `Nats-Msg-Id` (the server drops a duplicate within its window), and
//!   published again until the server acknowledges it. The target reads its
//!   stream with an ordered consumer, which delivers every message once and
//!   in order, across a server restart. Losing one of these would leave a
//!   shard's marker pending forever or a transaction unreported.
//! - **Direct** (to executors, and `KvsReadRequest { actual: true }`): plain
//!   NATS, at most once. An executor asks again for what it has not
//!   received ([`executor_host::ExecutorOptions::resend`]), and a shard
//!   answers a repeated request with the same version, so a lost one only
//!   costs a retry.
//!
//! This module must not know the engines' logic: it moves bytes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::ConnectErrorKind;
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use executor_host::{Diagnostics, EngineId, Envelope, ExecutorFinished, Message, Router, Timestamp};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesOrdered;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::NatsError;
use crate::subjects::Subjects;
use crate::wire;

/// Where a received envelope goes: an engine runtime's inbox.
pub type Deliver = Arc<dyn Fn(Envelope<Message>) + Send + Sync>;

/// How a process reaches the NATS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// The server, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// The user name of this process's role, if the server wants one.
    pub user: Option<String>,
    /// Its password.
    pub password: Option<String>,
    /// Every subject and stream of the deployment starts with this.
    pub namespace: String,
    /// How this connection shows in the server's monitoring.
    pub name: String,
    /// Whether [`Link::connect`] waits for a server that is not up yet (a
    /// long-running process may start before it) or fails at once with
    /// [`NatsError::Unreachable`] (a command whose user is waiting, for
    /// whom an unreachable server is most likely a wrong address). Either
    /// way, a connection once made is made again after it drops.
    pub wait_for_server: bool,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            user: None,
            password: None,
            namespace: "exec".into(),
            name: "executor-host".into(),
            wait_for_server: true,
        }
    }
}

/// Counters of what crossed this process's connection.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Messages received (decoded or not).
    pub received: AtomicU64,
    /// Messages sent.
    pub sent: AtomicU64,
    /// Received payloads that were not a valid envelope.
    pub malformed: AtomicU64,
    /// Received envelopes for an engine this process does not host.
    pub wrong_target: AtomicU64,
    /// Envelopes on an engine's client subject that are not a transaction
    /// request (a client passing for an executor or a shard).
    pub refused_from_clients: AtomicU64,
    /// Envelopes that could not be sent (no subject for the target, too
    /// large).
    pub unsendable: AtomicU64,
    /// Persistent publishes tried again (no acknowledgement yet).
    pub retries: AtomicU64,
    /// Spawn requests delivered more than once (their first host died or
    /// was too slow).
    pub redeliveries: AtomicU64,
    /// Consumers re-created after an error (a server restart).
    pub reconnects: AtomicU64,
}

/// `envelope` as a payload. A report that only its diagnostics make too
/// large (a step trace can repeat every value written) travels without
/// its log and step trace, and with as many of its skipped accesses as
/// fit, the first ones: the transaction's outcome must arrive, its
/// debugging aid may not, and what a lenient transaction skipped says what
/// its success did not do.
fn encode(envelope: &Envelope<Message>) -> Result<Vec<u8>, wire::WireError> {
    let encoded = wire::encode(envelope);
    let (Err(wire::WireError::Oversize(size)), Message::ExecutorFinished(report)) = (&encoded, &envelope.payload)
    else {
        return encoded;
    };
    if report.diagnostics.is_empty() {
        return encoded;
    }
    let skipped = &report.diagnostics.skipped;
    let with = |kept: usize| {
        let diagnostics =
            Diagnostics { skipped: skipped.get(..kept).unwrap_or_default().to_vec(), ..Diagnostics::default() };
        let mut envelope = envelope.clone();
        envelope.payload = Message::ExecutorFinished(Arc::new(ExecutorFinished { diagnostics, ..(**report).clone() }));
        wire::encode(&envelope)
    };
    // The most skipped accesses that fit: all of them, or a binary search
    // between none (the report as it was before diagnostics) and all.
    let (mut fits, mut too_many) = (0, skipped.len());
    let mut encoded = with(too_many);
    if encoded.is_err() {
        encoded = with(0);
        while too_many - fits > 1 {
            let middle = fits + (too_many - fits) / 2;
            match with(middle) {
                Ok(bytes) => (fits, encoded) = (middle, Ok(bytes)),
                Err(_) => too_many = middle,
            }
        }
    } else {
        fits = too_many;
    }
    tracing::warn!(
        timestamp = report.timestamp,
        size,
        skipped_kept = fits,
        skipped = skipped.len(),
        "a report too large with its diagnostics: sent without its log and step trace, and with the skipped \
         accesses that fit"
    );
    encoded
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

enum Outgoing {
    Direct {
        subject: String,
        payload: Bytes,
    },
    Persistent {
        subject: String,
        payload: Bytes,
        id: String,
        /// An executor's report to the worker: once it is acknowledged,
        /// the process may acknowledge the spawn request.
        finished: Option<Timestamp>,
    },
}

/// Persistent publishes waiting for their acknowledgement, at most.
const IN_FLIGHT: usize = 8192;

/// A process's connection: the client, its JetStream context, the
/// namespace's subjects and the publisher task.
#[derive(Debug)]
pub struct Link {
    client: async_nats::Client,
    js: jetstream::Context,
    subjects: Subjects,
    counters: Arc<LinkCounters>,
    outbox: mpsc::UnboundedSender<Outgoing>,
    /// Unique per process: prefixes every message id.
    process: String,
    next_id: AtomicU64,
    finished: Mutex<Option<mpsc::UnboundedReceiver<Timestamp>>>,
    /// The server's URL, for errors that are about reaching it.
    url: String,
    /// Counts the connections made: a reader re-creates its consumer at
    /// each (a restarted server has lost it).
    connections: tokio::sync::watch::Receiver<u64>,
}

impl Link {
    /// Connects (waiting for the server if `config.wait_for_server`) and
    /// starts the publisher.
    pub async fn connect(config: &NatsConfig) -> Result<Arc<Self>, NatsError> {
        let subjects = Subjects::new(&config.namespace)?;
        let url = config.url.clone();
        let (connected, connections) = tokio::sync::watch::channel(0_u64);
        let refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refusal = refused.clone();
        let mut options =
            async_nats::ConnectOptions::new().name(&config.name).max_reconnects(None).event_callback(move |event| {
                let url = url.clone();
                if is_refusal(&event) {
                    refusal.store(true, Ordering::Relaxed);
                }
                if event == async_nats::Event::Connected {
                    connected.send_modify(|count| *count += 1);
                }
                async move {
                    match event {
                        async_nats::Event::Connected => tracing::info!(url, "connected to NATS"),
                        async_nats::Event::Disconnected => tracing::warn!(url, "disconnected from NATS"),
                        // This process closed it, on its way out.
                        async_nats::Event::Closed => tracing::debug!(url, "NATS connection closed"),
                        // Failing to connect, which the client tries again.
                        async_nats::Event::ClientError(error) => {
                            tracing::warn!(%error, url, "NATS client error (trying again)");
                        }
                        other => tracing::warn!(event = %other, url, "NATS"),
                    }
                }
            });
        if config.wait_for_server {
            options = options.retry_on_initial_connect();
        }
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        let client = options.connect(&config.url).await.map_err(|error| match error.kind() {
            ConnectErrorKind::Io | ConnectErrorKind::Dns | ConnectErrorKind::TimedOut => {
                NatsError::Unreachable { url: config.url.clone() }
            }
            _ => NatsError::Connect(error.to_string()),
        })?;
        if config.wait_for_server {
            // A process's start-up checks ask the server whether others
            // run; a question asked before it answers would be misread.
            let mut waiting = tokio::time::interval(Duration::from_millis(50));
            let started = std::time::Instant::now();
            let mut said = false;
            while client.connection_state() != async_nats::connection::State::Connected {
                // Credentials the server refuses stay refused: waiting
                // would be for ever.
                if refused.load(Ordering::Relaxed) {
                    return Err(NatsError::Connect(format!(
                        "the server at {} refused this process's credentials (authorization violation): check --nats-user and EXECUTOR_HOST_NATS_PASSWORD{}",
                        config.url,
                        if config.user.is_none() { " (no user was given)" } else { "" }
                    )));
                }
                // Said only when the wait is felt: a server that answers
                // in a moment is not waited for.
                if !said && started.elapsed() > Duration::from_millis(500) {
                    tracing::warn!(url = config.url, "waiting for the NATS server");
                    said = true;
                }
                waiting.tick().await;
            }
        }
        let js = jetstream::new(client.clone());
        let (outbox, queue) = mpsc::unbounded_channel();
        let (finished_tx, finished_rx) = mpsc::unbounded_channel();
        let counters = Arc::new(LinkCounters::default());
        tokio::spawn(publish(client.clone(), js.clone(), queue, counters.clone(), finished_tx));
        Ok(Arc::new(Self {
            client,
            js,
            subjects,
            counters,
            outbox,
            process: nuid::next().to_string(),
            next_id: AtomicU64::new(0),
            finished: Mutex::new(Some(finished_rx)),
            url: config.url.clone(),
            connections,
        }))
    }

    /// The error of a request that failed (JetStream's, or a probe): the server cannot be
    /// reached if the client is not connected (it keeps trying in the
    /// background, so a request times out rather than saying so).
    pub(crate) fn jetstream_error(&self, error: impl std::fmt::Display) -> NatsError {
        if self.client.connection_state() == async_nats::connection::State::Connected {
            NatsError::JetStream(error.to_string())
        } else {
            NatsError::Unreachable { url: self.url.clone() }
        }
    }

    /// The NATS client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The namespace's subjects.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// What crossed the connection.
    pub fn counters(&self) -> &LinkCounters {
        &self.counters
    }

    /// Whether the connection is up (for the health endpoint).
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The timestamps of executors whose `ExecutorFinished` the server has
    /// acknowledged (with every message they sent before it). Once.
    pub(crate) fn take_finished(&self) -> Option<mpsc::UnboundedReceiver<Timestamp>> {
        self.finished.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// A message id unique to this process.
    pub fn message_id(&self) -> String {
        format!("{}-{}", self.process, self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends an envelope towards its target, persistent or direct as its
    /// kind wants (see the module docs). Never blocks.
    pub fn send(&self, envelope: &Envelope<Message>) {
        let target = &envelope.target;
        let direct =
            Subjects::is_executor(target) || matches!(envelope.payload, Message::KvsReadRequest { actual: true, .. });
        let subject = if Subjects::is_executor(target) || Subjects::is_client(target) {
            self.subjects.engine(target)
        } else if direct {
            self.subjects.direct(target)
        } else {
            // Not the subject clients may publish to: what arrives here is
            // from the deployment.
            self.subjects.service(target)
        };
        let (subject, payload) = match (subject, encode(envelope)) {
            (Ok(subject), Ok(payload)) => (subject, Bytes::from(payload)),
            (Err(error), _) => {
                tracing::warn!(%error, "an envelope for an engine no subject reaches");
                return bump(&self.counters.unsendable);
            }
            (_, Err(error)) => {
                tracing::warn!(%error, "an envelope that cannot be encoded");
                return bump(&self.counters.unsendable);
            }
        };
        let outgoing = if direct {
            Outgoing::Direct { subject, payload }
        } else {
            let finished = match &envelope.payload {
                Message::ExecutorFinished(report) if !Subjects::is_client(target) => Some(report.timestamp),
                _ => None,
            };
            Outgoing::Persistent { subject, payload, id: self.message_id(), finished }
        };
        if self.outbox.send(outgoing).is_err() {
            tracing::error!("the publisher has stopped");
        }
    }

    /// Publishes `payload` to a stream's subject with message id `id`
    /// until the server acknowledges it, and returns the stream sequence it
    /// got. For a caller that needs the sequence; [`Link::send`] and
    /// [`Link::send_persistent`] do the same in the background.
    pub(crate) async fn persist(&self, subject: String, payload: Bytes, id: &str) -> u64 {
        persist(&self.js, &self.counters, subject, payload, id).await
    }

    /// Publishes `payload` to a stream's subject until the server
    /// acknowledges it; not in order with [`Link::send`].
    pub(crate) fn send_persistent(&self, subject: String, payload: Vec<u8>, id: String) {
        let outgoing = Outgoing::Persistent { subject, payload: Bytes::from(payload), id, finished: None };
        if self.outbox.send(outgoing).is_err() {
            tracing::error!("the publisher has stopped");
        }
    }

    /// The stream named `name` holding `subjects`, created if missing.
    pub(crate) async fn stream(
        &self,
        name: String,
        subjects: Vec<String>,
        retention: stream::RetentionPolicy,
    ) -> Result<stream::Stream, NatsError> {
        let config = stream::Config {
            name,
            subjects,
            retention,
            storage: stream::StorageType::File,
            // Long enough for any run; a deployment that runs for days
            // bounds its disk here.
            max_age: Duration::from_secs(24 * 3600),
            duplicate_window: Duration::from_secs(120),
            ..stream::Config::default()
        };
        self.js.get_or_create_stream(config).await.map_err(|e| self.jetstream_error(e))
    }

    /// An engine's own stream, emptied: what a previous process left there
    /// was for engines that no longer exist.
    /// It keeps the engine's client subject and its service subject
    /// ([`Subjects::service`]); a stream an older version made with only
    /// the first is given the second.
    pub(crate) async fn own_stream(&self, id: &EngineId) -> Result<stream::Stream, NatsError> {
        let subjects = vec![self.subjects.engine(id)?, self.subjects.service(id)?];
        let mut stream =
            self.stream(self.subjects.stream(id)?, subjects.clone(), stream::RetentionPolicy::Limits).await?;
        if stream.cached_info().config.subjects != subjects {
            let config = stream::Config { subjects, ..stream.cached_info().config.clone() };
            self.js.update_stream(config).await.map_err(|e| self.jetstream_error(e))?;
            stream = self.js.get_stream(self.subjects.stream(id)?).await.map_err(|e| self.jetstream_error(e))?;
        }
        stream.purge().await.map_err(|e| self.jetstream_error(e))?;
        Ok(stream)
    }

    /// Reads `stream` (only `filter`, if not empty) from its start, every
    /// message once and in order, re-creating the consumer after a server
    /// restart where it left off, and hands each envelope for `me` to
    /// `deliver`. Of what arrives on `me`'s client subject, only a
    /// transaction request is taken (the rest is counted and dropped).
    pub fn receive(self: &Arc<Self>, stream: String, filter: String, me: EngineId, deliver: Deliver) -> JoinHandle<()> {
        let from_clients = self.subjects.engine(&me).ok().filter(|_| !Subjects::is_client(&me));
        let link = self.clone();
        tokio::spawn(async move {
            let mut next: Option<u64> = None;
            let mut connections = link.connections.clone();
            loop {
                connections.mark_unchanged();
                let deliver_policy = match next {
                    None => consumer::DeliverPolicy::All,
                    Some(start_sequence) => consumer::DeliverPolicy::ByStartSequence { start_sequence },
                };
                let config = consumer::pull::OrderedConfig {
                    filter_subject: filter.clone(),
                    deliver_policy,
                    ..consumer::pull::OrderedConfig::default()
                };
                let messages = match link.js.get_stream(&stream).await {
                    Ok(s) => match s.create_consumer(config).await {
                        Ok(c) => c.messages().await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    },
                    Err(e) => Err(e.to_string()),
                };
                match messages {
                    Ok(mut messages) => {
                        loop {
                            let message = tokio::select! {
                                message = messages.next() => message,
                                // A new connection: if the server restarted,
                                // the consumer is gone, which the client
                                // finds out only when its pull expires (every
                                // process stood still about 16 s after each
                                // restart, and transactions then missed
                                // their deadlines). Read on from the next
                                // message with a new consumer.
                                _ = connections.changed() => {
                                    tracing::debug!(stream, "connected again: reading on from where it left off");
                                    break;
                                }
                            };
                            let Some(message) = message else { break };
                            match message {
                                Ok(message) => {
                                    if let Ok(info) = message.info() {
                                        next = Some(info.stream_sequence.saturating_add(1));
                                    }
                                    let client = from_clients.as_deref() == Some(message.subject.as_str());
                                    link.accept_from(&message.payload, &me, &deliver, client);
                                }
                                Err(error) => {
                                    tracing::warn!(%error, stream, "reading a stream");
                                    break;
                                }
                            }
                        }
                    }
                    Err(error) => tracing::warn!(%error, stream, "opening a stream"),
                }
                bump(&link.counters.reconnects);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    }

    /// Hands each envelope for `me` arriving on the plain subject
    /// `subject` to `deliver`. The subscription ends when the task is
    /// aborted.
    pub async fn receive_direct(
        self: &Arc<Self>,
        subject: String,
        me: EngineId,
        deliver: Deliver,
    ) -> Result<JoinHandle<()>, NatsError> {
        let mut subscriber = self.client.subscribe(subject).await.map_err(|e| NatsError::Connect(e.to_string()))?;
        let link = self.clone();
        Ok(tokio::spawn(async move {
            while let Some(message) = subscriber.next().await {
                link.accept(&message.payload, &me, &deliver);
            }
        }))
    }

    fn accept(&self, payload: &[u8], me: &EngineId, deliver: &Deliver) {
        self.accept_from(payload, me, deliver, false);
    }

    /// As [`Link::accept`]; from a client (`client`), only a transaction
    /// request.
    fn accept_from(&self, payload: &[u8], me: &EngineId, deliver: &Deliver, client: bool) {
        bump(&self.counters.received);
        match wire::decode::<Envelope<Message>>(payload) {
            Err(error) => {
                tracing::debug!(%error, "dropped a malformed payload");
                bump(&self.counters.malformed);
            }
            Ok(envelope) if envelope.target != *me => bump(&self.counters.wrong_target),
            Ok(envelope) if client && !matches!(envelope.payload, Message::TransactionRequest { .. }) => {
                tracing::warn!(sender = %envelope.sender, "dropped a message on the client subject that is not a request");
                bump(&self.counters.refused_from_clients);
            }
            Ok(envelope) => deliver(envelope),
        }
    }
}

/// The publisher: plain messages at once, persistent ones each retried
/// until acknowledged, their acknowledgements awaited in order (so an
/// executor's report is acknowledged only after everything it sent
/// before).
async fn publish(
    client: async_nats::Client,
    js: jetstream::Context,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
    counters: Arc<LinkCounters>,
    finished: mpsc::UnboundedSender<Timestamp>,
) {
    let mut pending = FuturesOrdered::new();
    let mut open = true;
    while open || !pending.is_empty() {
        tokio::select! {
            biased;
            Some(done) = pending.next(), if !pending.is_empty() => {
                if let Some(timestamp) = done {
                    let _ = finished.send(timestamp);
                }
            }
            outgoing = queue.recv(), if open && pending.len() < IN_FLIGHT => match outgoing {
                None => open = false,
                Some(Outgoing::Direct { subject, payload }) => {
                    bump(&counters.sent);
                    if let Err(error) = client.publish(subject, payload).await {
                        tracing::debug!(%error, "a direct message was not sent");
                    }
                }
                Some(Outgoing::Persistent { subject, payload, id, finished }) => {
                    bump(&counters.sent);
                    let (js, counters) = (js.clone(), counters.clone());
                    pending.push_back(async move {
                        persist(&js, &counters, subject, payload, &id).await;
                        finished
                    });
                }
            },
        }
    }
}

/// Publishes until the stream acknowledges (the same id each time, so a
/// publish that did land is not stored twice); returns the sequence the
/// stream gave it (the original one for a repeat).
async fn persist(js: &jetstream::Context, counters: &LinkCounters, subject: String, payload: Bytes, id: &str) -> u64 {
    let mut backoff = Duration::from_millis(50);
    loop {
        let publish = jetstream::message::PublishMessage::build().message_id(id).payload(payload.clone());
        let error = match js.send_publish(subject.clone(), publish).await {
            Ok(ack) => match ack.await {
                Ok(ack) => return ack.sequence,
                Err(error) => error.to_string(),
            },
            Err(error) => error.to_string(),
        };
        tracing::debug!(%error, subject, "persistent publish not acknowledged; retrying");
        bump(&counters.retries);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Whether `event` says the server refuses this client's credentials.
fn is_refusal(event: &async_nats::Event) -> bool {
    match event {
        async_nats::Event::ServerError(async_nats::ServerError::AuthorizationViolation) => true,
        async_nats::Event::ClientError(error) => error.to_string().contains("authorization violation"),
        _ => false,
    }
}

/// Routes what a process's engines send: to an engine of the same process
/// directly, to any other over NATS.
pub struct NatsRouter {
    link: Arc<Link>,
    local: HashMap<EngineId, Deliver>,
}

impl std::fmt::Debug for NatsRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsRouter").field("local", &self.local.keys().collect::<Vec<_>>()).finish()
    }
}

impl NatsRouter {
    /// A router over `link`, delivering to the engines in `local` without
    /// leaving the process.
    pub fn new(link: Arc<Link>, local: HashMap<EngineId, Deliver>) -> Self {
        Self { link, local }
    }
}

impl Router<Message> for NatsRouter {
    fn route(&self, envelope: Envelope<Message>) {
        match self.local.get(&envelope.target) {
            Some(deliver) => deliver(envelope),
            None => self.link.send(&envelope),
        }
    }
}

#[cfg(test)]
mod tests {
    use executor_host::{Access, SkippedAccess, StepTrace, TracedRequest};

    use super::*;

    /// A lenient report whose skipped accesses (256 keys of 4 KiB) and step
    /// trace (a 600 KB write) cannot all travel: the trace goes, and the
    /// first skipped accesses that fit stay.
    #[test]
    fn a_report_too_large_keeps_the_skipped_accesses_that_fit() -> Result<(), wire::WireError> {
        let skipped: Vec<SkippedAccess> = (0..256u32)
            .map(|i| SkippedAccess { key: [i.to_be_bytes().as_slice(), &[b'k'; 4092]].concat(), access: Access::Read })
            .collect();
        let step = StepTrace {
            key: None,
            gas_used: 1,
            requests: vec![TracedRequest::Write { key: b"w".to_vec(), datum: vec![0; 600_000] }],
            halted: true,
        };
        let report = |diagnostics: Diagnostics| ExecutorFinished {
            timestamp: 7,
            success: true,
            values_read: Vec::new(),
            values_written: Vec::new(),
            failure: None,
            gas_used: 1,
            diagnostics,
        };
        let envelope = |diagnostics: Diagnostics| Envelope {
            sender: EngineId::local("executor/worker/7"),
            target: EngineId::local("worker"),
            mailbox: 0,
            payload: Message::ExecutorFinished(Arc::new(report(diagnostics))),
        };
        let full = Diagnostics { steps: vec![step], skipped: skipped.clone(), ..Diagnostics::default() };
        let sent: Envelope<Message> = wire::decode(&encode(&envelope(full))?)?;
        let Message::ExecutorFinished(sent) = sent.payload else { panic!("not a report") };
        let kept = sent.diagnostics.skipped.len();
        assert!(sent.diagnostics.steps.is_empty() && sent.diagnostics.log.is_empty());
        assert!(kept > 200 && kept < 256, "{kept} kept");
        assert_eq!(sent.diagnostics.skipped, skipped[..kept]);
        // One more would not have fit.
        let more = Diagnostics { skipped: skipped[..=kept].to_vec(), ..Diagnostics::default() };
        assert!(matches!(wire::encode(&envelope(more)), Err(wire::WireError::Oversize(_))));
        Ok(())
    }
}
