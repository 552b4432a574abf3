//! The embedding API: what a shard (or worker) process links to run
//! executors.
//!
//! Create one [`ExecutorHost`] per process, on its tokio runtime, with the
//! embedder's [`Router`] for outgoing messages and its [`ShardMap`]. Load
//! guests once with a [`crate::wasm::Sandbox`] (one wasmtime engine, shared)
//! and hand the loaded [`Program`] to each [`Transaction`]. Then
//! [`ExecutorHost::spawn`] one executor per transaction and
//! [`ExecutorHost::deliver`] every message addressed to one.
//!
//! An executor waiting for reads holds no wasm instance: only its config
//! and state bytes (see the README for the measured cost).
//!
//! ```no_run
//! # async fn demo(router: std::sync::Arc<dyn executor_host::node::Router<executor_host::messages::Message>>,
//! #               shards: std::sync::Arc<dyn executor_host::executor::ShardMap>,
//! #               program: std::sync::Arc<dyn executor_host::program::Program>) -> anyhow::Result<()> {
//! use executor_host::engine::EngineId;
//! use executor_host::host::{ExecutorHost, HostConfig, Transaction};
//! use executor_host::messages::KeySets;
//!
//! let host = ExecutorHost::start(HostConfig::default(), shards, router);
//! let executor = host
//!     .spawn(Transaction {
//!         timestamp: 1,
//!         executable: br#"{"from":"alice","to":"bob","amount":5}"#.to_vec(),
//!         keys: KeySets { eager_read_keys: vec![b"alice".to_vec(), b"bob".to_vec()], will_write_keys: vec![b"alice".to_vec(), b"bob".to_vec()], ..KeySets::default() },
//!         worker: EngineId::local("worker"),
//!         issuer: EngineId::local("client"),
//!         program,
//!     })
//!     .await?;
//! // ... host.deliver(envelope).await? for every KvsRead addressed to `executor`.
//! # Ok(()) }
//! ```

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::{EngineId, Envelope};
pub use crate::executor::Transaction;
use crate::executor::{Executor, ExecutorConfig, ExecutorMetrics, ExecutorOptions, ShardMap, Shared};
use crate::messages::Message;
use crate::node::{self, NodeConfig, NodeHandle, NodeMetrics, NodeStopped, Router};

/// How an [`ExecutorHost`] runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    pub executor: ExecutorOptions,
    /// Threads for guest calls; `0` runs them on the node task (only for
    /// tests with paused time). Default: one per core.
    pub threads: Option<usize>,
    /// Bound of the inbox (`deliver` waits when it is full); `0` for no
    /// bound (in-process networks). Default: 4096.
    pub inbox: Option<usize>,
}

/// Runs executors for an embedding process. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ExecutorHost {
    node: NodeHandle<Executor>,
    shared: Arc<Shared>,
}

impl ExecutorHost {
    /// Starts the host on the current tokio runtime.
    pub fn start(config: HostConfig, shards: Arc<dyn ShardMap>, router: Arc<dyn Router<Message>>) -> Self {
        let mut node_config = NodeConfig::default();
        match config.threads {
            Some(0) => node_config.execution = node::Execution::Inline,
            Some(threads) => node_config.execution = node::Execution::Pool { threads },
            None => {}
        }
        if let Some(inbox) = config.inbox {
            node_config.inbox = inbox;
        }
        let node = node::start::<Executor>(node_config, router, None);
        let shared =
            Arc::new(Shared { options: config.executor, shards, metrics: Arc::new(ExecutorMetrics::default()) });
        Self { node, shared }
    }

    /// Spawns the executor of `tx` and returns its id (the id it sends from
    /// and must be addressed by). Its first step runs at once.
    pub async fn spawn(&self, tx: Transaction) -> Result<EngineId, NodeStopped> {
        let config = ExecutorConfig::new(tx, self.shared.clone());
        let (instance, timers) = Executor::spawn(config, self.node.now());
        let id = instance.id.clone();
        self.node.spawn(instance, timers).await?;
        Ok(id)
    }

    /// As [`ExecutorHost::spawn`] without waiting for room in the inbox
    /// (which never runs out when it is unbounded).
    pub fn try_spawn(&self, tx: Transaction) -> Result<EngineId, NodeStopped> {
        let config = ExecutorConfig::new(tx, self.shared.clone());
        let (instance, timers) = Executor::spawn(config, self.node.now());
        let id = instance.id.clone();
        if self.node.try_spawn(instance, timers) { Ok(id) } else { Err(NodeStopped) }
    }

    /// Delivers a message to the executor it is addressed to. Messages for
    /// no executor of this host are dropped and counted.
    pub async fn deliver(&self, envelope: Envelope<Message>) -> Result<(), NodeStopped> {
        self.node.deliver(envelope).await
    }

    /// As [`ExecutorHost::deliver`], without waiting for room; `false` if
    /// the message was dropped.
    pub fn try_deliver(&self, envelope: Envelope<Message>) -> bool {
        self.node.try_deliver(envelope)
    }

    /// The executors' node, for inspection and settling.
    pub fn node(&self) -> &NodeHandle<Executor> {
        &self.node
    }

    /// Waits until no executor has work queued or running.
    pub async fn idle(&self) -> Result<(), NodeStopped> {
        self.node.idle().await
    }

    pub fn metrics(&self) -> &ExecutorMetrics {
        &self.shared.metrics
    }

    /// Messages for unknown executors, full mailboxes, executors hosted.
    pub fn node_metrics(&self) -> &NodeMetrics {
        self.node.metrics()
    }
}
