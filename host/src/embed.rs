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
//! # async fn demo(router: std::sync::Arc<dyn executor_host::Router<executor_host::Message>>,
//! #               shards: std::sync::Arc<dyn executor_host::ShardMap>,
//! #               program: std::sync::Arc<dyn executor_host::Program>) -> anyhow::Result<()> {
//! use executor_host::{EngineId, ExecutorHost, HostConfig, KeySets, Transaction};
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

use std::num::NonZeroUsize;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::{EngineId, Envelope};
use crate::executor::{
    Clock, Executor, ExecutorConfig, ExecutorMetrics, ExecutorOptions, ShardMap, Shared, Transaction,
};
use crate::messages::Message;
use crate::runtime::{self, Execution, Inbox, Refused, Router, RuntimeConfig, RuntimeHandle, RuntimeMetrics, Stopped};

/// How an [`ExecutorHost`] runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    /// Settings every executor of the host shares (gas, deadline, modes).
    pub executor: ExecutorOptions,
    /// Where guest calls run: [`Execution::Inline`] runs them on the
    /// host's task (for tests with paused time). By default a pool of one
    /// thread per core.
    pub execution: Execution,
    /// How many deliveries and spawns (each one envelope or transaction,
    /// or one batch of them) may wait to enter the host (`deliver` waits
    /// when it is full); [`Inbox::Unbounded`] for in-process networks. By
    /// default bounded at 4096.
    pub inbox: Inbox,
    /// Triggers one executor may have queued while its guest call runs.
    /// By default 1024.
    pub mailbox: NonZeroUsize,
}

impl Default for HostConfig {
    fn default() -> Self {
        let runtime = RuntimeConfig::default();
        Self {
            executor: ExecutorOptions::default(),
            execution: runtime.execution,
            inbox: runtime.inbox,
            mailbox: runtime.mailbox,
        }
    }
}

/// Runs executors for an embedding process. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ExecutorHost {
    runtime: RuntimeHandle<Executor>,
    shared: Arc<Shared>,
}

impl ExecutorHost {
    /// Starts the host on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as `tokio::spawn` does).
    pub fn start(config: HostConfig, shards: Arc<dyn ShardMap>, router: Arc<dyn Router<Message>>) -> Self {
        let runtime_config =
            RuntimeConfig { inbox: config.inbox, mailbox: config.mailbox, execution: config.execution };
        let runtime = runtime::start::<Executor>(runtime_config, router, None);
        let metrics = Arc::new(ExecutorMetrics::default());
        let shared = Arc::new(Shared { options: config.executor, shards, metrics, clock: Clock::Real });
        Self { runtime, shared }
    }

    /// Spawns the executor of `tx` and returns its id (the id it sends from
    /// and must be addressed by). Its first step runs at once.
    ///
    /// `Ok` means the host took the spawn, not that it ran: one of a
    /// transaction whose executor this host still hosts (the same worker
    /// and timestamp) is refused when the host comes to it, counted in
    /// [`ExecutorHost::runtime_metrics`]' `duplicate_spawns`, and the
    /// executor already hosted goes on; the refused transaction's locks
    /// are the caller's to release. Spawn each transaction once.
    pub async fn spawn(&self, tx: Transaction) -> Result<EngineId, Stopped> {
        let config = ExecutorConfig::new(tx, self.shared.clone());
        let (instance, timers) = Executor::spawn(config, self.runtime.now());
        let id = instance.id.clone();
        self.runtime.spawn(instance, timers).await?;
        Ok(id)
    }

    /// As [`ExecutorHost::spawn`] without waiting for room in the inbox
    /// (which never runs out when it is [`Inbox::Unbounded`]). On
    /// [`Refused::Full`] the executor was not spawned: keep the
    /// transaction (it is cheap to clone) and spawn it again later, or its
    /// locks stay held.
    pub fn try_spawn(&self, tx: Transaction) -> Result<EngineId, Refused> {
        let config = ExecutorConfig::new(tx, self.shared.clone());
        let (instance, timers) = Executor::spawn(config, self.runtime.now());
        let id = instance.id.clone();
        self.runtime.try_spawn(instance, timers).map(|()| id)
    }

    /// As [`ExecutorHost::try_spawn`] for several transactions at once (one
    /// entry of the host's inbox), returning their executors' ids. On
    /// [`Refused`] none was spawned; on `Ok`, each is spawned but a
    /// duplicate, as for [`ExecutorHost::spawn`].
    pub fn try_spawn_all(&self, txs: impl IntoIterator<Item = Transaction>) -> Result<Vec<EngineId>, Refused> {
        let now = self.runtime.now();
        let (engines, ids): (Vec<_>, Vec<_>) = txs
            .into_iter()
            .map(|tx| {
                let (instance, timers) = Executor::spawn(ExecutorConfig::new(tx, self.shared.clone()), now);
                let id = instance.id.clone();
                ((instance, timers), id)
            })
            .unzip();
        self.runtime.try_spawn_all(engines).map(|()| ids)
    }

    /// Delivers a message to the executor it is addressed to. Messages for
    /// no executor of this host are dropped and counted.
    pub async fn deliver(&self, envelope: Envelope<Message>) -> Result<(), Stopped> {
        self.runtime.deliver(envelope).await
    }

    /// As [`ExecutorHost::deliver`], without waiting for room; `false` if
    /// the message was dropped.
    pub fn try_deliver(&self, envelope: Envelope<Message>) -> bool {
        self.runtime.try_deliver(envelope)
    }

    /// As [`ExecutorHost::try_deliver`] for several messages at once (one
    /// entry of the host's inbox, handled in order); `false` if they were
    /// dropped.
    pub fn try_deliver_all(&self, envelopes: Vec<Envelope<Message>>) -> bool {
        self.runtime.try_deliver_all(envelopes)
    }

    /// The executors' runtime, for inspection and settling.
    #[doc(hidden)]
    pub fn runtime(&self) -> &RuntimeHandle<Executor> {
        &self.runtime
    }

    /// Waits until no executor has work queued or running.
    pub async fn idle(&self) -> Result<(), Stopped> {
        self.runtime.idle().await
    }

    /// Counters of the executors: finished, failed and why, gas, drops.
    pub fn metrics(&self) -> &ExecutorMetrics {
        &self.shared.metrics
    }

    /// Messages for unknown executors, full mailboxes, executors hosted.
    pub fn runtime_metrics(&self) -> &RuntimeMetrics {
        self.runtime.metrics()
    }
}
