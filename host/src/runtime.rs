//! The engine runtime on tokio: hosts many engine instances of one
//! behaviour, with a mailbox each, real timers and a router for what they
//! send.
//!
//! A runtime is one tokio task that owns its engines (no lock per engine,
//! no task per engine: an idle engine costs only its state). Incoming
//! envelopes arrive through a bounded channel ([`RuntimeHandle::deliver`]),
//! are queued in the target engine's mailbox (bounded: overflow is dropped
//! and counted), and are handled one trigger at a time per engine. Timers
//! live in one ordered queue served by one `sleep_until`.
//!
//! It works in turns: each wake-up takes every command waiting (up to a
//! bound), handles them, and only then hands what the engines sent to the
//! router in one batch ([`Router::route_all`]) and what they asked to
//! spawn to the spawner ([`Spawner::spawn_all`]), spawns first. A router
//! that forwards a batch per destination then wakes each other runtime
//! once per turn, not once per message: thread wake-ups, not engine logic,
//! were most of the cost of a message between runtimes.
//!
//! Guest calls are CPU-bound and must not stall the reactor: an action the
//! behaviour marks with [`Behaviour::offload`] runs on a dedicated pool of
//! OS threads ([`Execution::Pool`]); the engine is "busy" meanwhile and its
//! triggers wait. [`Execution::Inline`] runs everything on the runtime task,
//! which is what tests with paused tokio time want (a pool thread's work is
//! invisible to tokio's auto-advance).
//!
//! This module must not know any particular engine: it only moves
//! triggers in and effects out.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::engine::{
    Actions, Admission, Behaviour, EngineId, EngineTimers, Envelope, Instance, Time, TimerOp, TimerQueue, Trigger,
};

/// Where the envelopes engines send go. The embedder implements it (an
/// in-process network, a socket, a test recorder). Must not block.
pub trait Router<M>: Send + Sync {
    /// Sends `envelope` towards `envelope.target`. Called on the runtime's
    /// task, in the order each engine sent.
    fn route(&self, envelope: Envelope<M>);

    /// Sends every envelope of `batch` (in order: each engine's in the
    /// order it sent them); it may take them out (the runtime empties
    /// `batch` afterwards and keeps its allocation). A runtime hands over
    /// all its engines sent in one turn at once; a router between
    /// runtimes should forward the envelopes for one destination together.
    /// By default, [`Router::route`] for each.
    fn route_all(&self, batch: &mut Vec<Envelope<M>>) {
        for envelope in batch.drain(..) {
            self.route(envelope);
        }
    }
}

/// Receives what engines ask to spawn.
pub trait Spawner<S>: Send + Sync {
    /// Starts the engine `request` describes. Called on the runtime's task
    /// (so it must not block), before the messages of the same effect are
    /// routed: they may lead to messages for the new engine, which must be
    /// spawned, or queued to be, by the time this returns.
    fn spawn(&self, request: S);

    /// Starts every engine of `requests`, in order; it may take them out
    /// (the runtime empties `requests` afterwards). Called before the
    /// messages of the same turn are routed. By default, [`Spawner::spawn`]
    /// for each.
    fn spawn_all(&self, requests: &mut Vec<S>) {
        for request in requests.drain(..) {
            self.spawn(request);
        }
    }
}

/// Where offloaded actions (guest calls) run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Execution {
    /// On the runtime task itself: what tests under paused tokio time want
    /// (a pool thread's work is invisible to tokio's auto-advance).
    Inline,
    /// On dedicated OS threads, so guest calls never stall the reactor.
    Pool {
        /// How many threads; `None` for one per core.
        threads: Option<NonZeroUsize>,
    },
}

impl Default for Execution {
    /// A pool with one thread per core.
    fn default() -> Self {
        Self::Pool { threads: None }
    }
}

impl Execution {
    fn threads(self) -> Option<usize> {
        match self {
            Self::Inline => None,
            Self::Pool { threads: Some(threads) } => Some(threads.get()),
            Self::Pool { threads: None } => Some(std::thread::available_parallelism().map_or(2, usize::from)),
        }
    }
}

/// How many commands (an envelope, a router's batch of envelopes, a
/// spawn or a batch of spawns) may wait to enter a runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Inbox {
    /// At most this many: `deliver` waits while it is full (backpressure).
    Bounded(NonZeroUsize),
    /// No bound: for in-process networks, where a router must never wait
    /// on another runtime.
    Unbounded,
}

impl Default for Inbox {
    /// Bounded at 4096 commands.
    fn default() -> Self {
        Self::Bounded(NonZeroUsize::new(4096).unwrap_or(NonZeroUsize::MIN))
    }
}

/// How an engine runtime is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Commands waiting to enter the runtime. By default bounded at 4096.
    pub inbox: Inbox,
    /// Triggers one engine may have queued while it is busy; more messages
    /// are dropped and counted (timers never are). By default 1024.
    pub mailbox: NonZeroUsize,
    /// Where guest calls run. By default a pool of one thread per core.
    pub execution: Execution,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            inbox: Inbox::default(),
            mailbox: NonZeroUsize::new(1024).unwrap_or(NonZeroUsize::MIN),
            execution: Execution::default(),
        }
    }
}

/// Counters of the runtime itself (engines keep their own).
#[derive(Debug, Default)]
pub struct RuntimeMetrics {
    unknown_target: AtomicU64,
    mailbox_full: AtomicU64,
    screened: AtomicU64,
    duplicate_spawns: AtomicU64,
    panicked: AtomicU64,
    engines: AtomicU64,
    handled: AtomicU64,
}

impl RuntimeMetrics {
    /// Envelopes for an engine this runtime does not host.
    pub fn unknown_target(&self) -> u64 {
        self.unknown_target.load(Ordering::Relaxed)
    }
    /// Envelopes dropped because the target's mailbox was full.
    pub fn mailbox_full(&self) -> u64 {
        self.mailbox_full.load(Ordering::Relaxed)
    }
    /// Envelopes the engine's [`Behaviour::admit`] dropped on arrival.
    pub fn screened(&self) -> u64 {
        self.screened.load(Ordering::Relaxed)
    }
    /// Spawns refused because an engine with the same id was hosted (the
    /// running engine is kept).
    pub fn duplicate_spawns(&self) -> u64 {
        self.duplicate_spawns.load(Ordering::Relaxed)
    }
    /// Engines removed because an action panicked: a bug in the engine.
    /// (An executor catches its program's panic, native or not, and fails
    /// the transaction instead.)
    pub fn panicked(&self) -> u64 {
        self.panicked.load(Ordering::Relaxed)
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

/// Why a runtime did not take a command without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// Its inbox is full: try again later, or wait with the async method.
    #[error("the engine runtime's inbox is full")]
    Full,
    /// It has stopped.
    #[error("the engine runtime has stopped")]
    Stopped,
}

/// The runtime has stopped (every handle was dropped, or its task ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the engine runtime has stopped")]
pub struct Stopped;

/// An engine to host and the timers to schedule for it.
pub type Spawned<B> = (Instance<B>, Vec<TimerOp<<B as Behaviour>::Timer>>);

enum Command<B: Behaviour> {
    Deliver(Envelope<B::Msg>),
    DeliverAll(Vec<Envelope<B::Msg>>),
    // Boxed: an engine is much larger than an envelope, and every slot of
    // the channel is as large as its largest command.
    Spawn(Box<Spawned<B>>),
    SpawnAll(Vec<Spawned<B>>),
    /// Answers once every engine is idle with nothing queued.
    Idle(oneshot::Sender<()>),
    /// Runs a function on an engine (or on `None` if there is no such
    /// engine), on the runtime task.
    Inspect(EngineId, Inspector<B>),
}

type Inspector<B> = Box<dyn FnOnce(Option<&Instance<B>>) + Send>;

/// The sending half of a runtime's inbox.
enum InboxSender<B: Behaviour> {
    Bounded(mpsc::Sender<Command<B>>),
    Unbounded(mpsc::UnboundedSender<Command<B>>),
}

impl<B: Behaviour> Clone for InboxSender<B> {
    fn clone(&self) -> Self {
        match self {
            Self::Bounded(tx) => Self::Bounded(tx.clone()),
            Self::Unbounded(tx) => Self::Unbounded(tx.clone()),
        }
    }
}

impl<B: Behaviour> InboxSender<B> {
    async fn send(&self, command: Command<B>) -> Result<(), Stopped> {
        match self {
            Self::Bounded(tx) => tx.send(command).await.map_err(|_| Stopped),
            Self::Unbounded(tx) => tx.send(command).map_err(|_| Stopped),
        }
    }

    fn try_send(&self, command: Command<B>) -> Result<(), Refused> {
        match self {
            Self::Bounded(tx) => tx.try_send(command).map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => Refused::Full,
                mpsc::error::TrySendError::Closed(_) => Refused::Stopped,
            }),
            Self::Unbounded(tx) => tx.send(command).map_err(|_| Refused::Stopped),
        }
    }
}

enum InboxReceiver<B: Behaviour> {
    Bounded(mpsc::Receiver<Command<B>>),
    Unbounded(mpsc::UnboundedReceiver<Command<B>>),
}

impl<B: Behaviour> InboxReceiver<B> {
    /// Takes up to `limit` commands into `into`, waiting for at least one;
    /// 0 once every sender is gone.
    async fn recv_many(&mut self, into: &mut Vec<Command<B>>, limit: usize) -> usize {
        match self {
            Self::Bounded(rx) => rx.recv_many(into, limit).await,
            Self::Unbounded(rx) => rx.recv_many(into, limit).await,
        }
    }
}

/// A cloneable handle to a running engine runtime. It stops when every handle
/// is dropped.
pub struct RuntimeHandle<B: Behaviour> {
    commands: InboxSender<B>,
    metrics: Arc<RuntimeMetrics>,
    epoch: Instant,
}

impl<B: Behaviour> Clone for RuntimeHandle<B> {
    fn clone(&self) -> Self {
        Self { commands: self.commands.clone(), metrics: self.metrics.clone(), epoch: self.epoch }
    }
}

impl<B: Behaviour> fmt::Debug for RuntimeHandle<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeHandle").field("metrics", &self.metrics).finish_non_exhaustive()
    }
}

impl<B: Behaviour> RuntimeHandle<B> {
    /// Hands an envelope to the runtime (waits while its inbox is full).
    pub async fn deliver(&self, envelope: Envelope<B::Msg>) -> Result<(), Stopped> {
        self.commands.send(Command::Deliver(envelope)).await
    }

    /// Hands an envelope to the runtime without waiting; `false` if the inbox
    /// is full or the runtime stopped (the envelope is then dropped).
    pub fn try_deliver(&self, envelope: Envelope<B::Msg>) -> bool {
        self.commands.try_send(Command::Deliver(envelope)).is_ok()
    }

    /// Hands a batch of envelopes to the runtime without waiting, as one
    /// entry of its inbox (they are handled in order); `false` if the
    /// inbox is full or the runtime stopped (the batch is then dropped).
    pub fn try_deliver_all(&self, envelopes: Vec<Envelope<B::Msg>>) -> bool {
        self.commands.try_send(Command::DeliverAll(envelopes)).is_ok()
    }

    /// Starts hosting `instance` and schedules its initial timers.
    pub async fn spawn(&self, instance: Instance<B>, timers: Vec<TimerOp<B::Timer>>) -> Result<(), Stopped> {
        self.commands.send(Command::Spawn(Box::new((instance, timers)))).await
    }

    /// As [`RuntimeHandle::spawn`] without waiting; `false` if the inbox is
    /// full or the runtime stopped.
    pub fn try_spawn(&self, instance: Instance<B>, timers: Vec<TimerOp<B::Timer>>) -> Result<(), Refused> {
        self.commands.try_send(Command::Spawn(Box::new((instance, timers))))
    }

    /// As [`RuntimeHandle::try_spawn`] for several engines, as one entry of
    /// the inbox.
    pub fn try_spawn_all(&self, engines: Vec<Spawned<B>>) -> Result<(), Refused> {
        self.commands.try_send(Command::SpawnAll(engines))
    }

    /// Runs `f` on the engine `id` on the runtime task, and returns its result
    /// (`f` gets `None` if the runtime hosts no such engine).
    pub async fn inspect<R: Send + 'static>(
        &self,
        id: EngineId,
        f: impl FnOnce(Option<&Instance<B>>) -> R + Send + 'static,
    ) -> Result<R, Stopped> {
        let (tx, rx) = oneshot::channel();
        let inspector: Inspector<B> = Box::new(move |instance| {
            let _ = tx.send(f(instance));
        });
        self.commands.send(Command::Inspect(id, inspector)).await?;
        rx.await.map_err(|_| Stopped)
    }

    /// Waits until every engine is idle: nothing queued, nothing running.
    /// (Timers may still be set.)
    pub async fn idle(&self) -> Result<(), Stopped> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Idle(tx)).await?;
        rx.await.map_err(|_| Stopped)
    }

    /// The runtime's time now.
    pub fn now(&self) -> Time {
        Instant::now().saturating_duration_since(self.epoch)
    }

    /// The runtime's own counters, updated live by its task.
    pub fn metrics(&self) -> &Arc<RuntimeMetrics> {
        &self.metrics
    }
}

/// Starts an engine runtime on the current tokio runtime.
pub fn start<B: Behaviour>(
    config: RuntimeConfig,
    router: Arc<dyn Router<B::Msg>>,
    spawner: Option<Arc<dyn Spawner<B::Spawn>>>,
) -> RuntimeHandle<B>
where
    B::Msg: Clone,
{
    let (commands, inbox) = match config.inbox {
        Inbox::Unbounded => {
            let (tx, rx) = mpsc::unbounded_channel();
            (InboxSender::Unbounded(tx), InboxReceiver::Unbounded(rx))
        }
        Inbox::Bounded(capacity) => {
            let (tx, rx) = mpsc::channel(capacity.get());
            (InboxSender::Bounded(tx), InboxReceiver::Bounded(rx))
        }
    };
    let metrics = Arc::new(RuntimeMetrics::default());
    let epoch = Instant::now();
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let pool = config.execution.threads().map(|threads| Pool::start(threads, done_tx));
    let runtime = Runtime::<B> {
        engines: HashMap::default(),
        core: Core {
            timers: TimerQueue::default(),
            router,
            spawner,
            metrics: metrics.clone(),
            mailbox: config.mailbox.get(),
            pool,
            busy: 0,
            // Kept across turns (the router drains it): a batch is built in
            // place, not regrown every turn.
            outbox: Vec::with_capacity(OUTBOX),
            spawns: Vec::new(),
            clock: Time::ZERO,
        },
        epoch,
        idle_waiters: Vec::new(),
    };
    tokio::spawn(runtime.serve(inbox, done_rx));
    RuntimeHandle { commands, metrics, epoch }
}

struct Slot<B: Behaviour> {
    /// The engine's config, to screen mail while the instance is away.
    config: Arc<B::Config>,
    /// `None` while an offloaded action runs.
    instance: Option<Instance<B>>,
    /// Triggers that arrived while busy, in order.
    backlog: VecDeque<Trigger<B::Msg, B::Timer>>,
    /// This engine's entries in the timer queue.
    timers: EngineTimers<B::Timer>,
}

type Job<B> = (Instance<B>, Actions<<B as Behaviour>::Action>, Trigger<<B as Behaviour>::Msg, <B as Behaviour>::Timer>);
/// An offloaded action's engine and its effect (`None`: it panicked).
type Done<B> = (Instance<B>, Option<crate::engine::Effect<B>>);

/// Runs actions on an engine in its span; `None` if they panicked, which
/// must not take the runtime or a pool thread down with it.
fn perform<B: Behaviour>(
    instance: &mut Instance<B>,
    actions: Actions<B::Action>,
    trigger: Trigger<B::Msg, B::Timer>,
) -> Option<crate::engine::Effect<B>> {
    let _span = tracing::debug_span!("engine", id = %instance.id).entered();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| instance.perform(actions, trigger))).ok()
}

/// Commands a runtime takes per wake-up at most, and envelopes its engines
/// may have sent before they are handed to the router even mid-turn: a
/// bound on how long a turn holds back what it produced.
const TURN: usize = 64;
const OUTBOX: usize = 256;

/// Engine tables are looked up for every message: a fast hash, seeded per
/// table, since engine ids can come from the network.
type Table<B> = HashMap<EngineId, Box<Slot<B>>, foldhash::fast::RandomState>;

struct Runtime<B: Behaviour> {
    /// Boxed: the table then holds only a key and a pointer per engine,
    /// so its spare capacity costs little.
    engines: Table<B>,
    /// Everything else a trigger's handling touches: kept apart from the
    /// table so that an engine's slot, looked up once per trigger, can be
    /// worked on beside it (each lookup hashes the id, and compares its
    /// text when the sender built the id anew).
    core: Core<B>,
    epoch: Instant,
    idle_waiters: Vec<oneshot::Sender<()>>,
}

struct Core<B: Behaviour> {
    timers: TimerQueue<B::Timer>,
    router: Arc<dyn Router<B::Msg>>,
    spawner: Option<Arc<dyn Spawner<B::Spawn>>>,
    metrics: Arc<RuntimeMetrics>,
    mailbox: usize,
    pool: Option<Pool<B>>,
    busy: usize,
    /// What the engines sent this turn, in order.
    outbox: Vec<Envelope<B::Msg>>,
    /// What the engines asked to spawn this turn, in order.
    spawns: Vec<B::Spawn>,
    /// When this turn started ([`Core::now`]).
    clock: Time,
}

/// Whether an engine is still hosted after what was just done to it. A
/// stopped or panicked one takes no further trigger, and is removed by the
/// runtime once its slot is no longer borrowed ([`Runtime::bury`]).
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Stays,
    Stopped,
    Panicked,
}

impl<B: Behaviour> Runtime<B>
where
    B::Msg: Clone,
{
    async fn serve(mut self, mut inbox: InboxReceiver<B>, mut done: mpsc::UnboundedReceiver<Done<B>>) {
        let mut commands = Vec::with_capacity(TURN);
        let mut finished = Vec::new();
        let mut pool_open = self.core.pool.is_some();
        // One sleep, moved when the next timer changes: a new one per
        // turn would register and cancel a timer entry every time.
        let sleep = tokio::time::sleep_until(self.epoch);
        tokio::pin!(sleep);
        let mut armed: Option<Time> = None;
        loop {
            let next = self.core.timers.next_due();
            if next != armed {
                armed = next;
                // A time too far to represent never comes: such a timer
                // never fires (a deadline of "forever").
                if let Some(deadline) = next.and_then(|at| self.epoch.checked_add(at)) {
                    sleep.as_mut().reset(deadline);
                }
            }
            let timer = armed.is_some_and(|at| self.epoch.checked_add(at).is_some());
            tokio::select! {
                received = inbox.recv_many(&mut commands, TURN) => {
                    if received == 0 {
                        break;
                    }
                    self.tick();
                    for command in commands.drain(..) {
                        self.command(command);
                    }
                }
                received = done.recv_many(&mut finished, TURN), if pool_open => {
                    pool_open = received > 0;
                    self.tick();
                    for (instance, effect) in finished.drain(..) {
                        self.offloaded(instance, effect);
                    }
                }
                () = &mut sleep, if timer => {
                    // Re-armed next turn: a finished sleep stays ready.
                    armed = None;
                    self.tick();
                    self.fire_timers();
                }
            }
            self.core.flush();
            if self.core.busy == 0 && !self.idle_waiters.is_empty() {
                for waiter in self.idle_waiters.drain(..) {
                    let _ = waiter.send(());
                }
            }
        }
    }

    fn command(&mut self, command: Command<B>) {
        match command {
            Command::Deliver(envelope) => self.deliver(envelope),
            Command::DeliverAll(envelopes) => {
                for envelope in envelopes {
                    self.deliver(envelope);
                }
            }
            Command::Spawn(spawned) => {
                let (instance, timers) = *spawned;
                self.spawn(instance, timers);
            }
            Command::SpawnAll(engines) => {
                for (instance, timers) in engines {
                    self.spawn(instance, timers);
                }
            }
            Command::Idle(reply) => self.idle_waiters.push(reply),
            Command::Inspect(id, inspector) => {
                inspector(self.engines.get(&id).and_then(|slot| slot.instance.as_ref()));
            }
        }
    }

    /// An offloaded action came back from the pool.
    fn offloaded(&mut self, instance: Instance<B>, effect: Option<crate::engine::Effect<B>>) {
        self.core.busy -= 1;
        let id = instance.id.clone();
        let fate = match (effect, self.engines.get_mut(&id)) {
            (None, _) => Fate::Panicked,
            (Some(effect), Some(slot)) => {
                slot.instance = Some(instance);
                match self.core.apply(&id, slot, effect) {
                    Fate::Stays => self.core.drain(&id, slot),
                    gone => gone,
                }
            }
            // Cannot happen: only its own stop or panic removes an engine,
            // and a busy one handles nothing.
            (Some(_), None) => Fate::Stays,
        };
        self.bury(&id, fate);
    }

    /// The time of this turn: read once when it starts, not for every
    /// message (a clock read costs as much as handling a small message).
    fn tick(&mut self) {
        self.core.clock = Instant::now().saturating_duration_since(self.epoch);
    }

    fn spawn(&mut self, instance: Instance<B>, timers: Vec<TimerOp<B::Timer>>) {
        let id = instance.id.clone();
        let slot = match self.engines.entry(id.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => {
                // Replacing it would hand the running engine's timers and
                // mail to the newcomer and lose its state: keep the first.
                tracing::warn!(%id, "an engine with this id is hosted already: spawn refused");
                self.core.metrics.duplicate_spawns.fetch_add(1, Ordering::Relaxed);
                return;
            }
            std::collections::hash_map::Entry::Vacant(vacant) => vacant.insert(Box::new(Slot {
                config: instance.config.clone(),
                instance: Some(instance),
                backlog: VecDeque::new(),
                timers: EngineTimers::default(),
            })),
        };
        self.core.metrics.engines.fetch_add(1, Ordering::Relaxed);
        let fate = self.core.schedule(&id, slot, timers);
        self.bury(&id, fate);
    }

    fn deliver(&mut self, envelope: Envelope<B::Msg>) {
        let at = self.core.now();
        let Some(slot) = self.engines.get_mut(&envelope.target) else {
            tracing::debug!(target = %envelope.target, "no such engine: message dropped");
            self.core.metrics.unknown_target.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let essential = match B::admit(&slot.config, &envelope) {
            Admission::Drop => {
                self.core.metrics.screened.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Admission::Queue => false,
            Admission::Always => true,
        };
        let id = envelope.target.clone();
        let fate = self.core.dispatch(&id, slot, Trigger::Message { envelope, at }, essential);
        self.bury(&id, fate);
    }

    fn fire_timers(&mut self) {
        let now = self.core.now();
        let engines = &mut self.engines;
        let due = self.core.timers.take_due(now, |id, key| {
            if let Some(slot) = engines.get_mut(id) {
                slot.timers.forget(key);
            }
        });
        for (id, timers) in due {
            let Some(slot) = self.engines.get_mut(&id) else { continue };
            let fate = self.core.dispatch(&id, slot, Trigger::Elapsed { timers, at: now }, true);
            self.bury(&id, fate);
        }
    }

    /// Removes an engine that stopped or panicked, with its timers.
    fn bury(&mut self, id: &EngineId, fate: Fate) {
        if fate == Fate::Stays {
            return;
        }
        if let Some(slot) = self.engines.remove(id) {
            self.core.timers.remove(slot.timers);
            self.core.metrics.engines.fetch_sub(1, Ordering::Relaxed);
        }
        if fate == Fate::Panicked {
            // The engine's state is suspect, so it goes; the runtime
            // carries on.
            self.core.metrics.panicked.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%id, "an engine's action panicked: engine removed");
        }
    }
}

impl<B: Behaviour> Core<B>
where
    B::Msg: Clone,
{
    fn now(&self) -> Time {
        self.clock
    }

    /// Hands this turn's spawns to the spawner, then its envelopes to the
    /// router (spawns first: a message may lead to one for a new engine).
    fn flush(&mut self) {
        if !self.spawns.is_empty() {
            if let Some(spawner) = &self.spawner {
                spawner.spawn_all(&mut self.spawns);
            }
            self.spawns.clear();
        }
        if !self.outbox.is_empty() {
            self.router.route_all(&mut self.outbox);
            self.outbox.clear();
        }
    }

    /// Hands a trigger to an engine: at once if it is idle (the common
    /// case, which then costs no queue), else behind what it has queued.
    /// Messages beyond the mailbox bound are dropped unless `essential`;
    /// timers are always essential.
    fn dispatch(
        &mut self,
        id: &EngineId,
        slot: &mut Slot<B>,
        trigger: Trigger<B::Msg, B::Timer>,
        essential: bool,
    ) -> Fate {
        if slot.instance.is_some() && slot.backlog.is_empty() {
            let fate = self.handle(id, slot, trigger);
            if fate != Fate::Stays {
                return fate;
            }
        } else if !essential && slot.backlog.len() >= self.mailbox {
            tracing::warn!(target = %id, "mailbox full: message dropped");
            self.metrics.mailbox_full.fetch_add(1, Ordering::Relaxed);
            return Fate::Stays;
        } else {
            slot.backlog.push_back(trigger);
        }
        self.drain(id, slot)
    }

    /// Handles queued triggers of one engine until it is empty or busy.
    fn drain(&mut self, id: &EngineId, slot: &mut Slot<B>) -> Fate {
        while slot.instance.is_some() {
            let Some(trigger) = slot.backlog.pop_front() else {
                // An idle engine keeps no queue buffer.
                if slot.backlog.capacity() > 0 {
                    slot.backlog = VecDeque::new();
                }
                break;
            };
            let fate = self.handle(id, slot, trigger);
            if fate != Fate::Stays {
                return fate;
            }
        }
        Fate::Stays
    }

    /// Runs one trigger on an idle engine: guards here, actions here or on
    /// the pool.
    fn handle(&mut self, id: &EngineId, slot: &mut Slot<B>, trigger: Trigger<B::Msg, B::Timer>) -> Fate {
        let Some(instance) = slot.instance.as_mut() else { return Fate::Stays };
        self.metrics.handled.fetch_add(1, Ordering::Relaxed);
        let actions = instance.choose(&trigger);
        if let Some(pool) = self.pool.as_ref().filter(|_| actions.iter().any(B::offload)) {
            if let Some(instance) = slot.instance.take() {
                self.busy += 1;
                pool.submit((instance, actions, trigger));
            }
            return Fate::Stays;
        }
        match perform(instance, actions, trigger) {
            Some(effect) => self.apply(id, slot, effect),
            None => Fate::Panicked,
        }
    }

    fn apply(&mut self, id: &EngineId, slot: &mut Slot<B>, effect: crate::engine::Effect<B>) -> Fate {
        // Held until the end of the turn, spawns before sends (`flush`).
        self.spawns.extend(effect.spawn);
        self.outbox.extend(effect.send);
        if self.outbox.len() >= OUTBOX {
            self.flush();
        }
        match self.schedule(id, slot, effect.timers) {
            Fate::Stays if effect.stop => Fate::Stopped,
            fate => fate,
        }
    }

    fn schedule(&mut self, id: &EngineId, slot: &mut Slot<B>, ops: Vec<TimerOp<B::Timer>>) -> Fate {
        let now = self.now();
        // Due already (an engine's "at once" timer): no trip through the
        // timer queue.
        let due_now = self.timers.apply(id, &mut slot.timers, ops, now);
        if due_now.is_empty() {
            return Fate::Stays;
        }
        self.dispatch(id, slot, Trigger::Elapsed { timers: due_now, at: now }, true)
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
                    let effect = perform(&mut instance, actions, trigger);
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
        // The pool lives as long as the runtime; a send fails only if every
        // thread failed to start, and then the engine stays busy forever,
        // which the deadline of a transaction turns into a failure.
        let _ = self.jobs.send(job);
    }
}

impl<B: Behaviour> Drop for Runtime<B> {
    fn drop(&mut self) {
        self.core.metrics.engines.store(0, Ordering::Relaxed);
    }
}
