//! The engine runtime on tokio: hosts many engine instances of one
//! behaviour, with a mailbox each, real timers and a router for what they
//! send.
//!
//! A [`Node`] is one tokio task that owns its engines (no lock per engine,
//! no task per engine: an idle engine costs only its state). Incoming
//! envelopes arrive through a bounded channel ([`NodeHandle::deliver`]),
//! are queued in the target engine's mailbox (bounded: overflow is dropped
//! and counted), and are handled one trigger at a time per engine. Timers
//! live in one ordered queue served by `sleep_until`.
//!
//! Guest calls are CPU-bound and must not stall the reactor: an action the
//! behaviour marks with [`Behaviour::offload`] runs on a dedicated pool of
//! OS threads ([`Execution::Pool`]); the engine is "busy" meanwhile and its
//! triggers wait. [`Execution::Inline`] runs everything on the node task,
//! which is what tests with paused tokio time want (a pool thread's work is
//! invisible to tokio's auto-advance).
//!
//! This module must not know any particular engine: it only moves
//! triggers in and effects out.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::engine::{Behaviour, EngineId, Envelope, Instance, Time, TimerOp, Trigger};

/// Where the envelopes engines send go. The embedder implements it (an
/// in-process network, a socket, a test recorder). Must not block.
pub trait Router<M>: Send + Sync {
    fn route(&self, envelope: Envelope<M>);
}

/// Receives what engines ask to spawn.
pub trait Spawner<S>: Send + Sync {
    fn spawn(&self, request: S);
}

/// Where offloaded actions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// On the node task itself.
    Inline,
    /// On this many dedicated threads.
    Pool { threads: usize },
}

/// How a node is set up.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Envelopes waiting to enter the node (backpressure on `deliver`);
    /// `0` for no bound (in-process networks, where a router must never
    /// wait on another node).
    pub inbox: usize,
    /// Triggers one engine may have queued; more are dropped.
    pub mailbox: usize,
    pub execution: Execution,
}

impl Default for NodeConfig {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        Self { inbox: 4096, mailbox: 1024, execution: Execution::Pool { threads } }
    }
}

/// Counters of the node itself (engines keep their own).
#[derive(Debug, Default)]
pub struct NodeMetrics {
    unknown_target: AtomicU64,
    mailbox_full: AtomicU64,
    engines: AtomicU64,
    handled: AtomicU64,
}

impl NodeMetrics {
    /// Envelopes for an engine this node does not host.
    pub fn unknown_target(&self) -> u64 {
        self.unknown_target.load(Ordering::Relaxed)
    }
    /// Envelopes dropped because the target's mailbox was full.
    pub fn mailbox_full(&self) -> u64 {
        self.mailbox_full.load(Ordering::Relaxed)
    }
    /// Engines currently hosted.
    pub fn engines(&self) -> u64 {
        self.engines.load(Ordering::Relaxed)
    }
    /// Triggers handled so far.
    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }
}

/// The node has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the node has stopped")]
pub struct NodeStopped;

enum Command<B: Behaviour> {
    Deliver(Envelope<B::Msg>),
    Spawn {
        instance: Instance<B>,
        timers: Vec<TimerOp<B::Timer>>,
    },
    /// Answers once every engine is idle with nothing queued.
    Idle(oneshot::Sender<()>),
    /// Runs a function on an engine (or on `None` if there is no such
    /// engine), on the node task.
    Inspect(EngineId, Inspector<B>),
}

type Inspector<B> = Box<dyn FnOnce(Option<&Instance<B>>) + Send>;

/// The sending half of a node's inbox.
enum Inbox<B: Behaviour> {
    Bounded(mpsc::Sender<Command<B>>),
    Unbounded(mpsc::UnboundedSender<Command<B>>),
}

impl<B: Behaviour> Clone for Inbox<B> {
    fn clone(&self) -> Self {
        match self {
            Self::Bounded(tx) => Self::Bounded(tx.clone()),
            Self::Unbounded(tx) => Self::Unbounded(tx.clone()),
        }
    }
}

impl<B: Behaviour> Inbox<B> {
    async fn send(&self, command: Command<B>) -> Result<(), NodeStopped> {
        match self {
            Self::Bounded(tx) => tx.send(command).await.map_err(|_| NodeStopped),
            Self::Unbounded(tx) => tx.send(command).map_err(|_| NodeStopped),
        }
    }

    fn try_send(&self, command: Command<B>) -> bool {
        match self {
            Self::Bounded(tx) => tx.try_send(command).is_ok(),
            Self::Unbounded(tx) => tx.send(command).is_ok(),
        }
    }
}

enum InboxReceiver<B: Behaviour> {
    Bounded(mpsc::Receiver<Command<B>>),
    Unbounded(mpsc::UnboundedReceiver<Command<B>>),
}

impl<B: Behaviour> InboxReceiver<B> {
    async fn recv(&mut self) -> Option<Command<B>> {
        match self {
            Self::Bounded(rx) => rx.recv().await,
            Self::Unbounded(rx) => rx.recv().await,
        }
    }
}

/// A cloneable handle to a running node. The node stops when every handle
/// is dropped.
pub struct NodeHandle<B: Behaviour> {
    commands: Inbox<B>,
    metrics: Arc<NodeMetrics>,
    epoch: Instant,
}

impl<B: Behaviour> Clone for NodeHandle<B> {
    fn clone(&self) -> Self {
        Self { commands: self.commands.clone(), metrics: self.metrics.clone(), epoch: self.epoch }
    }
}

impl<B: Behaviour> fmt::Debug for NodeHandle<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeHandle").field("metrics", &self.metrics).finish_non_exhaustive()
    }
}

impl<B: Behaviour> NodeHandle<B> {
    /// Hands an envelope to the node (waits while its inbox is full).
    pub async fn deliver(&self, envelope: Envelope<B::Msg>) -> Result<(), NodeStopped> {
        self.commands.send(Command::Deliver(envelope)).await
    }

    /// Hands an envelope to the node without waiting; `false` if the inbox
    /// is full or the node stopped (the envelope is then dropped).
    pub fn try_deliver(&self, envelope: Envelope<B::Msg>) -> bool {
        self.commands.try_send(Command::Deliver(envelope))
    }

    /// Starts hosting `instance` and schedules its initial timers.
    pub async fn spawn(&self, instance: Instance<B>, timers: Vec<TimerOp<B::Timer>>) -> Result<(), NodeStopped> {
        self.commands.send(Command::Spawn { instance, timers }).await
    }

    /// As [`NodeHandle::spawn`] without waiting; `false` if the inbox is
    /// full or the node stopped.
    pub fn try_spawn(&self, instance: Instance<B>, timers: Vec<TimerOp<B::Timer>>) -> bool {
        self.commands.try_send(Command::Spawn { instance, timers })
    }

    /// Runs `f` on the engine `id` on the node task, and returns its result
    /// (`f` gets `None` if the node hosts no such engine).
    pub async fn inspect<R: Send + 'static>(
        &self,
        id: EngineId,
        f: impl FnOnce(Option<&Instance<B>>) -> R + Send + 'static,
    ) -> Result<R, NodeStopped> {
        let (tx, rx) = oneshot::channel();
        let inspector: Inspector<B> = Box::new(move |instance| {
            let _ = tx.send(f(instance));
        });
        self.commands.send(Command::Inspect(id, inspector)).await?;
        rx.await.map_err(|_| NodeStopped)
    }

    /// Waits until every engine is idle: nothing queued, nothing running.
    /// (Timers may still be set.)
    pub async fn idle(&self) -> Result<(), NodeStopped> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Idle(tx)).await?;
        rx.await.map_err(|_| NodeStopped)
    }

    /// The node's time now.
    pub fn now(&self) -> Time {
        Instant::now().saturating_duration_since(self.epoch)
    }

    pub fn metrics(&self) -> &Arc<NodeMetrics> {
        &self.metrics
    }
}

/// Starts a node on the current tokio runtime.
pub fn start<B: Behaviour>(
    config: NodeConfig,
    router: Arc<dyn Router<B::Msg>>,
    spawner: Option<Arc<dyn Spawner<B::Spawn>>>,
) -> NodeHandle<B>
where
    B::Msg: Clone,
{
    let (commands, inbox) = if config.inbox == 0 {
        let (tx, rx) = mpsc::unbounded_channel();
        (Inbox::Unbounded(tx), InboxReceiver::Unbounded(rx))
    } else {
        let (tx, rx) = mpsc::channel(config.inbox);
        (Inbox::Bounded(tx), InboxReceiver::Bounded(rx))
    };
    let metrics = Arc::new(NodeMetrics::default());
    let epoch = Instant::now();
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let pool = match config.execution {
        Execution::Inline => None,
        Execution::Pool { threads } => Some(Pool::start(threads.max(1), done_tx)),
    };
    let node = Node::<B> {
        engines: HashMap::new(),
        timers: BTreeMap::new(),
        next_seq: 0,
        router,
        spawner,
        metrics: metrics.clone(),
        epoch,
        mailbox: config.mailbox.max(1),
        pool,
        busy: 0,
        idle_waiters: Vec::new(),
    };
    tokio::spawn(node.run(inbox, done_rx));
    NodeHandle { commands, metrics, epoch }
}

struct Slot<B: Behaviour> {
    /// `None` while an offloaded action runs.
    instance: Option<Instance<B>>,
    /// Triggers that arrived while busy, in order.
    backlog: VecDeque<Trigger<B::Msg, B::Timer>>,
    /// This engine's entries in the timer queue.
    timer_keys: Vec<(B::Timer, (Time, u64))>,
}

type Job<B> = (Instance<B>, Vec<<B as Behaviour>::Action>, Trigger<<B as Behaviour>::Msg, <B as Behaviour>::Timer>);
type Done<B> = (Instance<B>, crate::engine::Effect<B>);

struct Node<B: Behaviour> {
    /// Boxed: the table then holds only a key and a pointer per engine,
    /// so its spare capacity costs little.
    engines: HashMap<EngineId, Box<Slot<B>>>,
    timers: BTreeMap<(Time, u64), (EngineId, B::Timer)>,
    next_seq: u64,
    router: Arc<dyn Router<B::Msg>>,
    spawner: Option<Arc<dyn Spawner<B::Spawn>>>,
    metrics: Arc<NodeMetrics>,
    epoch: Instant,
    mailbox: usize,
    pool: Option<Pool<B>>,
    busy: usize,
    idle_waiters: Vec<oneshot::Sender<()>>,
}

impl<B: Behaviour> Node<B>
where
    B::Msg: Clone,
{
    async fn run(mut self, mut inbox: InboxReceiver<B>, mut done: mpsc::UnboundedReceiver<Done<B>>) {
        loop {
            let next = self.timers.keys().next().map(|(at, _)| self.epoch + *at);
            tokio::select! {
                command = inbox.recv() => match command {
                    Some(Command::Deliver(envelope)) => self.deliver(envelope),
                    Some(Command::Spawn { instance, timers }) => self.spawn(instance, timers),
                    Some(Command::Idle(reply)) => self.idle_waiters.push(reply),
                    Some(Command::Inspect(id, inspector)) => {
                        inspector(self.engines.get(&id).and_then(|slot| slot.instance.as_ref()));
                    }
                    None => break,
                },
                Some((instance, effect)) = done.recv() => {
                    self.busy -= 1;
                    let id = instance.id.clone();
                    if let Some(slot) = self.engines.get_mut(&id) {
                        slot.instance = Some(instance);
                    }
                    self.apply(&id, effect);
                    self.drain(&id);
                }
                () = sleep_until(next), if next.is_some() => self.fire_timers(),
            }
            if self.busy == 0 && !self.idle_waiters.is_empty() {
                for waiter in self.idle_waiters.drain(..) {
                    let _ = waiter.send(());
                }
            }
        }
    }

    fn now(&self) -> Time {
        Instant::now().saturating_duration_since(self.epoch)
    }

    fn spawn(&mut self, instance: Instance<B>, timers: Vec<TimerOp<B::Timer>>) {
        let id = instance.id.clone();
        let slot = Box::new(Slot { instance: Some(instance), backlog: VecDeque::new(), timer_keys: Vec::new() });
        if self.engines.insert(id.clone(), slot).is_none() {
            self.metrics.engines.fetch_add(1, Ordering::Relaxed);
        }
        self.schedule(&id, timers);
    }

    fn deliver(&mut self, envelope: Envelope<B::Msg>) {
        let at = self.now();
        if !self.engines.contains_key(&envelope.target) {
            tracing::debug!(target = %envelope.target, "no such engine: message dropped");
            self.metrics.unknown_target.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let id = envelope.target.clone();
        self.dispatch(&id, Trigger::Message { envelope, at });
    }

    fn fire_timers(&mut self) {
        let now = self.now();
        let mut due: Vec<(EngineId, B::Timer)> = Vec::new();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((at, seq), (id, handle)) = entry.remove_entry();
            if let Some(slot) = self.engines.get_mut(&id) {
                slot.timer_keys.retain(|(_, key)| *key != (at, seq));
            }
            due.push((id, handle));
        }
        // One trigger per engine with every timer due for it.
        let mut by_engine: Vec<(EngineId, Vec<B::Timer>)> = Vec::new();
        for (id, handle) in due {
            match by_engine.iter_mut().find(|(e, _)| *e == id) {
                Some((_, handles)) => handles.push(handle),
                None => by_engine.push((id, vec![handle])),
            }
        }
        for (id, timers) in by_engine {
            self.dispatch(&id, Trigger::Elapsed { timers, at: now });
        }
    }

    /// Hands a trigger to an engine: at once if it is idle (the common
    /// case, which then costs no queue), else behind what it has queued.
    /// Messages beyond the mailbox bound are dropped; timers never are.
    fn dispatch(&mut self, id: &EngineId, trigger: Trigger<B::Msg, B::Timer>) {
        let Some(slot) = self.engines.get_mut(id) else { return };
        if slot.instance.is_some() && slot.backlog.is_empty() {
            self.handle(id, trigger);
        } else if matches!(trigger, Trigger::Message { .. }) && slot.backlog.len() >= self.mailbox {
            tracing::warn!(target = %id, "mailbox full: message dropped");
            self.metrics.mailbox_full.fetch_add(1, Ordering::Relaxed);
            return;
        } else {
            slot.backlog.push_back(trigger);
        }
        self.drain(id);
    }

    /// Handles queued triggers of one engine until it is empty or busy.
    fn drain(&mut self, id: &EngineId) {
        loop {
            let Some(slot) = self.engines.get_mut(id) else { return };
            if slot.instance.is_none() {
                return;
            }
            let Some(trigger) = slot.backlog.pop_front() else {
                // An idle engine keeps no queue buffer.
                if slot.backlog.capacity() > 0 {
                    slot.backlog = VecDeque::new();
                }
                return;
            };
            self.handle(id, trigger);
        }
    }

    /// Runs one trigger on an idle engine: guards here, actions here or on
    /// the pool.
    fn handle(&mut self, id: &EngineId, trigger: Trigger<B::Msg, B::Timer>) {
        let Some(slot) = self.engines.get_mut(id) else { return };
        let Some(instance) = slot.instance.as_mut() else { return };
        self.metrics.handled.fetch_add(1, Ordering::Relaxed);
        let actions = instance.choose(&trigger);
        if let Some(pool) = self.pool.as_ref().filter(|_| actions.iter().any(B::offload)) {
            if let Some(instance) = slot.instance.take() {
                self.busy += 1;
                pool.submit((instance, actions, trigger));
            }
            return;
        }
        let effect = {
            let _span = tracing::debug_span!("engine", id = %instance.id).entered();
            instance.run(actions, &trigger)
        };
        self.apply(id, effect);
    }

    fn apply(&mut self, id: &EngineId, effect: crate::engine::Effect<B>) {
        // Spawn before sending: a message the effect sends may cause one
        // to the new engine, which must exist by then.
        if let Some(spawner) = &self.spawner {
            for request in effect.spawn {
                spawner.spawn(request);
            }
        }
        for envelope in effect.send {
            self.router.route(envelope);
        }
        self.schedule(id, effect.timers);
        if effect.stop
            && let Some(slot) = self.engines.remove(id)
        {
            for (_, key) in slot.timer_keys {
                self.timers.remove(&key);
            }
            self.metrics.engines.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn schedule(&mut self, id: &EngineId, ops: Vec<TimerOp<B::Timer>>) {
        let now = self.now();
        let mut due_now = Vec::new();
        let Some(slot) = self.engines.get_mut(id) else { return };
        for op in ops {
            let handle = match &op {
                TimerOp::Set(timer) => &timer.handle,
                TimerOp::Cancel(handle) => handle,
            };
            // Setting supersedes, cancelling removes: either way the old
            // entry goes.
            slot.timer_keys.retain(|(h, key)| {
                let keep = h != handle;
                if !keep {
                    self.timers.remove(key);
                }
                keep
            });
            if let TimerOp::Set(timer) = op {
                if timer.at <= now {
                    // Due already (an engine's "at once" timer): no trip
                    // through the timer queue.
                    due_now.push(timer.handle);
                    continue;
                }
                let key = (timer.at, self.next_seq);
                self.next_seq += 1;
                self.timers.insert(key, (id.clone(), timer.handle.clone()));
                slot.timer_keys.push((timer.handle, key));
            }
        }
        if !due_now.is_empty() {
            self.dispatch(id, Trigger::Elapsed { timers: due_now, at: now });
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Dedicated threads for offloaded actions.
struct Pool<B: Behaviour> {
    jobs: std_mpsc::Sender<Job<B>>,
}

impl<B: Behaviour> Pool<B> {
    fn start(threads: usize, done: mpsc::UnboundedSender<Done<B>>) -> Self {
        let (jobs, receiver) = std_mpsc::channel::<Job<B>>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..threads {
            let receiver = receiver.clone();
            let done = done.clone();
            let spawned = std::thread::Builder::new().name(format!("engine-pool-{n}")).spawn(move || {
                loop {
                    let job = receiver.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                    let Ok((mut instance, actions, trigger)) = job else { return };
                    let effect = {
                        let _span = tracing::debug_span!("engine", id = %instance.id).entered();
                        instance.run(actions, &trigger)
                    };
                    if done.send((instance, effect)).is_err() {
                        return;
                    }
                }
            });
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start a pool thread");
            }
        }
        Self { jobs }
    }

    fn submit(&self, job: Job<B>) {
        // The pool lives as long as the node; a send fails only if every
        // thread failed to start, and then the engine stays busy forever,
        // which the deadline of a transaction turns into a failure.
        let _ = self.jobs.send(job);
    }
}

impl<B: Behaviour> Drop for Node<B> {
    fn drop(&mut self) {
        self.metrics.engines.store(0, Ordering::Relaxed);
    }
}
