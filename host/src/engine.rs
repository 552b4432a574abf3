//! The engine model of nspec, in Rust types.
//!
//! An engine has a read-only *config*, an *environment* (local state,
//! mailboxes by id, acquaintances, timers) and a *behaviour*: a list of
//! guards evaluated first-match or any-match. A *trigger* (a message
//! arrived, or timers elapsed) comes with the time it happened. A guard
//! looks at (trigger, config, environment) and either declines or names an
//! action with its arguments; the action returns an *effect*: messages to
//! send, timers to set, supersede or cancel, engines to spawn.
//!
//! One departure in form, not in meaning: an action updates the environment
//! in place (`&mut Environment`) instead of returning a new one.
//!
//! This module is pure and synchronous: it never touches a clock, a thread
//! or a channel. [`crate::node`] hosts engines on tokio; the test harness
//! hosts them on a virtual clock. Both call [`Instance::handle`].

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point in time: how long after its node started. Monotonic; virtual in
/// simulations.
pub type Time = Duration;

/// Which mailbox of an engine a message is for. Every engine here uses
/// mailbox 0.
pub type MailboxId = u64;

/// An engine's identity: an optional node and a name unique on that node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EngineId {
    pub node: Option<String>,
    pub name: String,
}

impl EngineId {
    /// A local engine (no node id).
    pub fn local(name: impl Into<String>) -> Self {
        Self { node: None, name: name.into() }
    }
}

impl fmt::Display for EngineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(node) => write!(f, "{node}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A message in transit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<M> {
    pub sender: EngineId,
    pub target: EngineId,
    pub mailbox: MailboxId,
    pub payload: M,
}

/// What an engine reacts to, and when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger<M, H> {
    Message {
        envelope: Envelope<M>,
        at: Time,
    },
    /// One or more timers elapsed (all those due at `at`, in the order set).
    Elapsed {
        timers: Vec<H>,
        at: Time,
    },
}

impl<M, H> Trigger<M, H> {
    pub fn at(&self) -> Time {
        match self {
            Self::Message { at, .. } | Self::Elapsed { at, .. } => *at,
        }
    }
}

/// A timer an engine has set: `handle` elapses at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer<H> {
    pub handle: H,
    pub at: Time,
}

/// What an action does to timers. Setting a handle that is already set
/// supersedes it (the old deadline is forgotten).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerOp<H> {
    Set(Timer<H>),
    Cancel(H),
}

/// How a behaviour's guards are evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardStrategy {
    /// The first guard that matches names the one action.
    FirstMatch,
    /// Every guard that matches names an action; they run in guard order.
    AnyMatch,
}

/// An engine's environment.
#[derive(Debug)]
pub struct Environment<B: Behaviour> {
    pub local: B::Local,
    /// Messages received and not yet handled, by mailbox. Empty mailboxes
    /// are removed, so an idle engine pays nothing for them.
    pub mailboxes: BTreeMap<MailboxId, VecDeque<Envelope<B::Msg>>>,
    pub acquaintances: Vec<EngineId>,
    /// The timers set, in the order they were set.
    pub timers: Vec<Timer<B::Timer>>,
}

impl<B: Behaviour> Environment<B> {
    pub fn new(local: B::Local) -> Self {
        Self { local, mailboxes: BTreeMap::new(), acquaintances: Vec::new(), timers: Vec::new() }
    }
}

/// What an action returns besides its change to the environment.
#[derive(Debug)]
pub struct Effect<B: Behaviour> {
    /// Messages to send, in order.
    pub send: Vec<Envelope<B::Msg>>,
    pub timers: Vec<TimerOp<B::Timer>>,
    pub spawn: Vec<B::Spawn>,
    /// The engine is finished and may be removed by its host.
    pub stop: bool,
}

impl<B: Behaviour> Default for Effect<B> {
    fn default() -> Self {
        Self { send: Vec::new(), timers: Vec::new(), spawn: Vec::new(), stop: false }
    }
}

impl<B: Behaviour> Effect<B> {
    fn absorb(&mut self, other: Self) {
        self.send.extend(other.send);
        self.timers.extend(other.timers);
        self.spawn.extend(other.spawn);
        self.stop |= other.stop;
    }
}

/// A guard: declines (`None`) or names an action with its arguments.
pub type Guard<B> = fn(
    &Trigger<<B as Behaviour>::Msg, <B as Behaviour>::Timer>,
    &<B as Behaviour>::Config,
    &Environment<B>,
) -> Option<<B as Behaviour>::Action>;

/// An engine type: its config, state, messages, timers and behaviour.
pub trait Behaviour: Sized + Send + 'static {
    type Config: Send + Sync + fmt::Debug;
    type Local: Send + fmt::Debug;
    type Msg: Send + fmt::Debug + 'static;
    type Timer: Clone + PartialEq + Send + fmt::Debug;
    /// An action named by a guard, with its arguments.
    type Action: Send + fmt::Debug;
    /// What this engine asks its host to spawn.
    type Spawn: Send + fmt::Debug;

    const STRATEGY: GuardStrategy;

    fn guards() -> &'static [Guard<Self>];

    /// Whether a host should run `action` off its event loop (it calls a
    /// guest, or is otherwise CPU-bound).
    fn offload(_action: &Self::Action) -> bool {
        false
    }

    /// Runs `action` for the engine `id` (the sender of what it sends).
    fn act(
        action: Self::Action,
        trigger: &Trigger<Self::Msg, Self::Timer>,
        id: &EngineId,
        config: &Self::Config,
        env: &mut Environment<Self>,
    ) -> Effect<Self>;
}

/// An engine: its identity, config, environment.
#[derive(Debug)]
pub struct Instance<B: Behaviour> {
    pub id: EngineId,
    pub config: B::Config,
    pub env: Environment<B>,
}

impl<B: Behaviour> Instance<B> {
    /// Evaluates the guards on `trigger` and runs the actions they name.
    /// Applies the effect's timer operations to `env.timers` (the host reads
    /// them from the returned effect to schedule them).
    pub fn handle(&mut self, trigger: &Trigger<B::Msg, B::Timer>) -> Effect<B> {
        let actions = self.choose(trigger);
        self.run(actions, trigger)
    }

    /// The guard step alone: which actions `trigger` names. Cheap; a host
    /// may run it inline and the actions elsewhere.
    pub fn choose(&self, trigger: &Trigger<B::Msg, B::Timer>) -> Vec<B::Action> {
        let mut chosen = Vec::new();
        for guard in B::guards() {
            if let Some(action) = guard(trigger, &self.config, &self.env) {
                chosen.push(action);
                if B::STRATEGY == GuardStrategy::FirstMatch {
                    break;
                }
            }
        }
        chosen
    }

    /// The action step: runs `actions` in order and applies their timer
    /// operations to the environment.
    pub fn run(&mut self, actions: Vec<B::Action>, trigger: &Trigger<B::Msg, B::Timer>) -> Effect<B> {
        let mut effect = Effect::default();
        for action in actions {
            effect.absorb(B::act(action, trigger, &self.id, &self.config, &mut self.env));
        }
        for op in &effect.timers {
            match op {
                TimerOp::Set(timer) => {
                    self.env.timers.retain(|t| t.handle != timer.handle);
                    self.env.timers.push(timer.clone());
                }
                TimerOp::Cancel(handle) => self.env.timers.retain(|t| &t.handle != handle),
            }
        }
        if let Trigger::Elapsed { timers, .. } = trigger {
            self.env.timers.retain(|t| !timers.contains(&t.handle) || effect_sets(&effect, &t.handle));
        }
        effect
    }
}

/// Whether the effect (re)set `handle`: an elapsed timer that its own
/// action set again stays.
fn effect_sets<B: Behaviour>(effect: &Effect<B>, handle: &B::Timer) -> bool {
    effect.timers.iter().any(|op| matches!(op, TimerOp::Set(t) if &t.handle == handle))
}
