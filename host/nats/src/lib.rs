//! Shards, the mempool worker and executor hosts as separate processes
//! over NATS: the wire format, the subjects, the router, and each kind of
//! process.
//!
//! A deployment is one NATS server (with JetStream) and, under one
//! namespace, N shard processes, one worker and any number of executor
//! hosts; clients submit transactions to the worker. What travels where,
//! and why it survives a lost message, a dead executor host and a server
//! restart, is in the README's "Running across processes" and in
//! [`link`]'s docs.
//!
//! - [`wire`]: the bytes of a message (version byte, MessagePack, size cap);
//! - [`subjects`]: engine ids to NATS subjects and streams;
//! - [`link`]: a process's connection, its router and receivers;
//! - [`roles`]: the shard, worker and executor-host processes;
//! - [`submit`](mod@submit): the client;
//! - `query`: a shard's summary for a client, in parts that fit in messages;
//! - [`metrics`]: Prometheus text and a health check on a local port;
//! - [`local`]: a deployment on one machine, as child processes (tests,
//!   benchmarks).
//!
//! What this crate must not do: change what an engine does. The engines
//! are the library's and the test kit's; this crate only carries their
//! messages.

#![warn(missing_docs)]

pub mod link;
pub mod local;
pub mod metrics;
mod query;
pub mod roles;
pub mod subjects;
pub mod submit;
pub mod wire;

pub use link::{Link, NatsConfig, NatsRouter};
pub use metrics::Metrics;
pub use roles::{ExecutorsConfig, Served, serve_executors, serve_shard, serve_worker};
pub use submit::{Patience, submit};

/// Why a process could not join or use the deployment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// The server could not be reached, or refused the connection.
    #[error("NATS: {0}")]
    Connect(String),
    /// The client is not connected to the server (it keeps trying), so a
    /// request could not be made.
    #[error("the NATS server at {url} cannot be reached: is it running, and is the address right?")]
    Unreachable {
        /// The server's address.
        url: String,
    },
    /// A JetStream request failed (is JetStream enabled on the server?).
    #[error("JetStream: {0}")]
    JetStream(String),
    /// A name cannot be a subject.
    #[error(transparent)]
    Subject(#[from] subjects::BadName),
    /// A message could not be encoded or decoded.
    #[error(transparent)]
    Wire(#[from] wire::WireError),
    /// Something did not happen in time.
    #[error("{0}")]
    Timeout(String),
    /// The run ended without every transaction reported.
    #[error("{0}")]
    Incomplete(String),
    /// A request of this client ran as more than one transaction: it was
    /// published again without its message id, or another client
    /// submitted under this client's id. The outcome would not be the
    /// workload's, so none is given.
    #[error(
        "transaction {index} (counted from 0 in the scenario's order) ran {runs} times, at timestamps {list}{more}: its request was published again without its message id, or another client submits under this client's id",
        runs = .timestamps.len(),
        list = .timestamps.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
        more = if *.others > 0 { format!(" (and {} more of this client's requests ran twice)", .others) } else { String::new() },
    )]
    RanTwice {
        /// The request's place in the workload.
        index: usize,
        /// The timestamps it got.
        timestamps: Vec<executor_host::Timestamp>,
        /// How many other requests ran more than once.
        others: usize,
    },
    /// `--id` names no shard.
    #[error("there is no shard {index} among {shards} (ids run from 0)")]
    NoSuchShard {
        /// The id asked for.
        index: usize,
        /// The deployment's shard count.
        shards: usize,
    },
    /// A key of a shard's initial state and its value are more than a
    /// transaction's report may carry over NATS ([`wire::REPORT_BYTES`]):
    /// no transaction could read them, nor a client.
    #[error(
        "the initial value of key {key} is {bytes} bytes with its key; over NATS a key and its value may have at most {limit}, or no read of it could be sent and reported"
    )]
    InitialValueTooLarge {
        /// The key, printable (escaped, and shortened if long).
        key: String,
        /// The key's and the value's bytes.
        bytes: u64,
        /// The most a key and its value may have.
        limit: u64,
    },
    /// A deployment's shard count is out of range.
    #[error("a deployment has from 1 to {max} shards, not {shards}")]
    ShardCount {
        /// The count given.
        shards: usize,
        /// The most there may be.
        max: usize,
    },
    /// A transaction of a workload cannot be sent (too large for a
    /// message); nothing was submitted.
    #[error("transaction {index} (counted from 0 in the scenario's order) cannot be sent, so none was")]
    Unsendable {
        /// Its place in the workload.
        index: usize,
        /// Why.
        #[source]
        source: wire::WireError,
    },
    /// A workload's shard count is not the deployment's.
    #[error(
        "the scenario is for {shards} shards, and the deployment has {deployment}: every process and the scenario must agree"
    )]
    ShardMismatch {
        /// The workload's count.
        shards: usize,
        /// What the deployment has, in words.
        deployment: String,
    },
    /// This process was given another shard count than the worker's.
    #[error("this process is for {shards} shards, and the worker serves {worker}: every process must agree (--shards)")]
    ShardCountDiffers {
        /// This process's count.
        shards: usize,
        /// The worker's.
        worker: usize,
    },
    /// A running shard was started for another shard count than this
    /// worker's.
    #[error("shard `{shard}` serves {theirs} shards, and this worker {shards}: every process must agree (--shards)")]
    ShardDisagrees {
        /// The shard's id.
        shard: String,
        /// Its count.
        theirs: usize,
        /// This worker's.
        shards: usize,
    },
    /// A shard started after the worker ordered transactions: it would
    /// serve its initial state to them, not what they wrote (a shard
    /// keeps its state in memory, so one restarted alone lost it).
    #[error(
        "the worker has ordered {ordered} transactions already: `{shard}` started now would serve its initial state to them, not what they wrote (a shard keeps its state in memory): restart the deployment, every process"
    )]
    LateShard {
        /// The shard's id.
        shard: String,
        /// Transactions the worker has ordered.
        ordered: u64,
    },
    /// A worker started while a shard holds the state of another worker's
    /// transactions.
    #[error(
        "`{shard}` has served the transactions of another worker (up to timestamp {watermark}): a new worker would number transactions from 1 again, and the shard drop their locks; restart the deployment, every process"
    )]
    ShardServedAnother {
        /// The shard's id.
        shard: String,
        /// Its heard-all-writes watermark.
        watermark: u64,
    },
    /// A worker already serves this namespace.
    #[error(
        "a worker already serves namespace `{namespace}`: one per namespace (stop it first, or use another --namespace)"
    )]
    WorkerRunning {
        /// The namespace.
        namespace: String,
    },
    /// A shard of this id already serves this namespace.
    #[error("`{shard}` already serves namespace `{namespace}`: one process per shard (stop it first)")]
    ShardRunning {
        /// The shard's id.
        shard: String,
        /// The namespace.
        namespace: String,
    },
    /// A process may host one set of executors.
    #[error("this process already hosts executors")]
    ExecutorsTwice,
    /// An engine runtime stopped.
    #[error("an engine runtime stopped")]
    Stopped,
    /// The metrics endpoint could not start.
    #[error("metrics endpoint: {0}")]
    Metrics(String),
}
