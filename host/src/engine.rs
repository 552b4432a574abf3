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
//! or a channel. [`crate::runtime`] hosts engines on tokio; the testkit's
//! simulation hosts them on a virtual clock. Both call [`Instance::handle`]
//! and keep timers in a [`TimerQueue`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point in time: how long after its node started. Monotonic; virtual in
/// simulations.
pub type Time = Duration;

/// Which mailbox of an engine a message is for. Every engine here uses
/// mailbox 0.
pub type MailboxId = u64;

/// An engine's identity: an optional node and a name unique on that node.
///
/// Ids are shared strings: every message carries two and every executor
/// sends many, so a clone is a reference count, not an allocation. They
/// are compared for every message (routing, sender checks), mostly clones
/// of one id, so equality compares pointers before text.
// Equality is by content with a pointer shortcut (below), so the derived
// hash of the content agrees with it.
#[allow(clippy::derived_hash_with_manual_eq)]
#[derive(Debug, Clone, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EngineId {
    /// The node (process or machine) the engine lives on; `None` for a
    /// local engine.
    pub node: Option<Arc<str>>,
    /// The engine's name, unique on its node.
    pub name: Arc<str>,
}

impl EngineId {
    /// A local engine (no node id).
    pub fn local(name: impl Into<Arc<str>>) -> Self {
        Self { node: None, name: name.into() }
    }
}

/// Equal when node and name are. The pointer shortcut is written out
/// because `Arc<str>`'s own `==` does not take it: std's pointer-equality
/// shortcut applies only to sized contents, so a derived equality compares
/// the text of every id, clones of one id included.
impl PartialEq for EngineId {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: &Arc<str>, b: &Arc<str>| Arc::ptr_eq(a, b) || a == b;
        same(&self.name, &other.name)
            && match (&self.node, &other.node) {
                (None, None) => true,
                (Some(a), Some(b)) => same(a, b),
                _ => false,
            }
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
    /// Who sent it: the id the target may reply to.
    pub sender: EngineId,
    /// The engine it is for.
    pub target: EngineId,
    /// Which of the target's mailboxes it is for.
    pub mailbox: MailboxId,
    /// The message itself.
    pub payload: M,
}

impl<M> Envelope<M> {
    /// An envelope for the target's mailbox 0, the only one the engines
    /// here use.
    pub fn new(sender: EngineId, target: EngineId, payload: M) -> Self {
        Self { sender, target, mailbox: 0, payload }
    }
}

/// What an engine reacts to, and when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger<M, H> {
    /// A message arrived.
    Message {
        /// The message.
        envelope: Envelope<M>,
        /// When it arrived.
        at: Time,
    },
    /// One or more timers elapsed (all those due at `at`, in the order set).
    Elapsed {
        /// The handles of the timers that elapsed.
        timers: Vec<H>,
        /// When they elapsed.
        at: Time,
    },
}

impl<M, H> Trigger<M, H> {
    /// When the trigger happened.
    pub fn at(&self) -> Time {
        match self {
            Self::Message { at, .. } | Self::Elapsed { at, .. } => *at,
        }
    }
}

/// A timer an engine has set: `handle` elapses at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer<H> {
    /// The engine's name for the timer.
    pub handle: H,
    /// When it elapses.
    pub at: Time,
}

/// What an action does to timers. Setting a handle that is already set
/// supersedes it (the old deadline is forgotten).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerOp<H> {
    /// Set (or supersede) a timer.
    Set(Timer<H>),
    /// Cancel the timer with this handle, if set.
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
    /// The engine's own state.
    pub local: B::Local,
    /// Messages received and not yet handled, by mailbox. Empty mailboxes
    /// are removed, so an idle engine pays nothing for them.
    pub mailboxes: BTreeMap<MailboxId, VecDeque<Envelope<B::Msg>>>,
    /// Engines this one knows of.
    pub acquaintances: Vec<EngineId>,
    /// The timers set, in the order they were set.
    pub timers: Vec<Timer<B::Timer>>,
}

impl<B: Behaviour> Environment<B> {
    /// An environment with `local` state, no mail, no acquaintances, no
    /// timers.
    pub fn new(local: B::Local) -> Self {
        Self { local, mailboxes: BTreeMap::new(), acquaintances: Vec::new(), timers: Vec::new() }
    }
}

/// What an action returns besides its change to the environment.
#[derive(Debug)]
pub struct Effect<B: Behaviour> {
    /// Messages to send, in order.
    pub send: Vec<Envelope<B::Msg>>,
    /// Timers to set, supersede or cancel, in order.
    pub timers: Vec<TimerOp<B::Timer>>,
    /// Engines to ask the host to spawn.
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
    /// Appends `other`. Usually one action runs per trigger and `self` is
    /// empty: its vectors are then taken over, not copied.
    fn absorb(&mut self, other: Self) {
        fn append<T>(into: &mut Vec<T>, from: Vec<T>) {
            if into.is_empty() {
                *into = from;
            } else {
                into.extend(from);
            }
        }
        append(&mut self.send, other.send);
        append(&mut self.timers, other.timers);
        append(&mut self.spawn, other.spawn);
        self.stop |= other.stop;
    }
}

/// The actions a trigger's guards named, in guard order. Most triggers
/// name exactly one, which is kept inline: choosing runs for every
/// message, and must not allocate.
#[derive(Debug)]
pub struct Actions<A>(Chosen<A>);

#[derive(Debug)]
enum Chosen<A> {
    None,
    One(A),
    Many(Vec<A>),
}

impl<A> Actions<A> {
    fn push(&mut self, action: A) {
        self.0 = match std::mem::replace(&mut self.0, Chosen::None) {
            Chosen::None => Chosen::One(action),
            Chosen::One(first) => Chosen::Many(vec![first, action]),
            Chosen::Many(mut all) => {
                all.push(action);
                Chosen::Many(all)
            }
        };
    }

    /// The actions, in order.
    pub fn as_slice(&self) -> &[A] {
        match &self.0 {
            Chosen::None => &[],
            Chosen::One(action) => std::slice::from_ref(action),
            Chosen::Many(all) => all,
        }
    }

    /// How many actions were named.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether no guard matched.
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// The actions, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, A> {
        self.as_slice().iter()
    }
}

impl<A> IntoIterator for Actions<A> {
    type Item = A;
    type IntoIter = ActionsIter<A>;

    fn into_iter(self) -> Self::IntoIter {
        ActionsIter(match self.0 {
            Chosen::None => Taken::One(None),
            Chosen::One(action) => Taken::One(Some(action)),
            Chosen::Many(all) => Taken::Many(all.into_iter()),
        })
    }
}

/// The actions of an [`Actions`], by value.
#[derive(Debug)]
pub struct ActionsIter<A>(Taken<A>);

#[derive(Debug)]
enum Taken<A> {
    One(Option<A>),
    Many(std::vec::IntoIter<A>),
}

impl<A> Iterator for ActionsIter<A> {
    type Item = A;

    fn next(&mut self) -> Option<A> {
        match &mut self.0 {
            Taken::One(action) => action.take(),
            Taken::Many(all) => all.next(),
        }
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
    /// The read-only configuration of one engine.
    type Config: Send + Sync + fmt::Debug;
    /// The engine's local state.
    type Local: Send + fmt::Debug;
    /// The messages it exchanges.
    type Msg: Send + fmt::Debug + 'static;
    /// The handles of its timers.
    type Timer: Clone + PartialEq + Send + fmt::Debug;
    /// An action named by a guard, with its arguments.
    type Action: Send + fmt::Debug;
    /// What this engine asks its host to spawn.
    type Spawn: Send + fmt::Debug;

    /// How the guards are evaluated.
    const STRATEGY: GuardStrategy;

    /// The guards, in evaluation order.
    fn guards() -> &'static [Guard<Self>];

    /// Whether a host should run `action` off its event loop (it calls a
    /// guest, or is otherwise CPU-bound).
    fn offload(_action: &Self::Action) -> bool {
        false
    }

    /// Screens a message on arrival, before its host queues it, even while
    /// the engine is busy: it sees only the config, never the state, so
    /// it can only judge what is wrong or right whatever the state (a
    /// wrong timestamp, a stranger's message). By default every message is
    /// queued.
    fn admit(_config: &Self::Config, _envelope: &Envelope<Self::Msg>) -> Admission {
        Admission::Queue
    }

    /// Runs `action` for the engine `id` (the sender of what it sends).
    ///
    /// The trigger is the action's to take from: what the engine keeps of
    /// a message (a transaction, a key, a value) it may move out of it
    /// (`std::mem::take`) instead of copying it; under
    /// [`GuardStrategy::AnyMatch`] the later actions see what the earlier
    /// ones left. An elapsed trigger's timers must be left as they are:
    /// the host reads them after the actions ran.
    fn act(
        action: Self::Action,
        trigger: &mut Trigger<Self::Msg, Self::Timer>,
        id: &EngineId,
        config: &Self::Config,
        env: &mut Environment<Self>,
    ) -> Effect<Self>;
}

/// What a host does with a message on arrival ([`Behaviour::admit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Junk whatever the engine's state: drop it now, without queueing.
    Drop,
    /// Queue it, within the mailbox's bound (beyond it, it is dropped).
    Queue,
    /// Queue it even past the mailbox's bound: the protocol cannot resend
    /// it (a shard marks a read served once it sent it), so dropping it
    /// would stall the engine.
    Always,
}

/// An engine: its identity, config, environment.
#[derive(Debug)]
pub struct Instance<B: Behaviour> {
    /// Its identity: the sender of everything it sends.
    pub id: EngineId,
    /// Its read-only configuration, shared with its host (which screens
    /// mail with it while the engine is busy).
    pub config: Arc<B::Config>,
    /// Its environment.
    pub env: Environment<B>,
}

impl<B: Behaviour> Instance<B> {
    /// Evaluates the guards on `trigger` and runs the actions they name.
    /// Applies the effect's timer operations to `env.timers` (the host reads
    /// them from the returned effect to schedule them).
    pub fn handle(&mut self, trigger: Trigger<B::Msg, B::Timer>) -> Effect<B> {
        let actions = self.choose(&trigger);
        self.perform(actions, trigger)
    }

    /// The guard step alone: which actions `trigger` names. Cheap; a host
    /// may run it inline and the actions elsewhere.
    pub fn choose(&self, trigger: &Trigger<B::Msg, B::Timer>) -> Actions<B::Action> {
        let mut chosen = Actions(Chosen::None);
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

    /// The action step: runs `actions` in order (they may take what they
    /// keep out of `trigger`, [`Behaviour::act`]) and applies their timer
    /// operations to the environment.
    pub fn perform(&mut self, actions: Actions<B::Action>, mut trigger: Trigger<B::Msg, B::Timer>) -> Effect<B> {
        let mut effect = Effect::default();
        for action in actions {
            effect.absorb(B::act(action, &mut trigger, &self.id, &self.config, &mut self.env));
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
        if let Trigger::Elapsed { timers, .. } = &trigger {
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

/// A timer's place in a [`TimerQueue`]: when, and a sequence number that
/// keeps timers due at the same time in the order they were set.
pub type TimerKey = (Time, u64);

/// One engine's entries in a [`TimerQueue`]. Its host keeps it beside the
/// engine (so an engine without timers costs nothing in the queue) and
/// hands it to the queue with every change.
#[derive(Debug)]
pub struct EngineTimers<H>(Vec<(H, TimerKey)>);

impl<H> EngineTimers<H> {
    /// Drops the entry [`TimerQueue::take_due`] took.
    pub fn forget(&mut self, key: TimerKey) {
        self.0.retain(|(_, k)| *k != key);
    }
}

impl<H> Default for EngineTimers<H> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

/// The timers of every engine on one host, in the order they elapse: the
/// one timer mechanism of the tokio runtime and the deterministic
/// simulation. Set supersedes a timer with the same handle, cancel removes
/// it; a timer due at or before `now` when set is handed back to fire at
/// once instead of entering the queue.
#[derive(Debug)]
pub struct TimerQueue<H> {
    queue: BTreeMap<TimerKey, (EngineId, H)>,
    next_seq: u64,
}

impl<H> Default for TimerQueue<H> {
    fn default() -> Self {
        Self { queue: BTreeMap::new(), next_seq: 0 }
    }
}

impl<H: Clone + PartialEq> TimerQueue<H> {
    /// Applies an effect's timer operations for engine `id`, in order.
    /// Returns the handles due already (at or before `now`), in the order
    /// set, minus any that a later operation of the same effect cancelled
    /// or pushed into the future.
    pub fn apply(&mut self, id: &EngineId, timers: &mut EngineTimers<H>, ops: Vec<TimerOp<H>>, now: Time) -> Vec<H> {
        let mut due_now: Vec<H> = Vec::new();
        for op in ops {
            let handle = match &op {
                TimerOp::Set(timer) => &timer.handle,
                TimerOp::Cancel(handle) => handle,
            };
            // Setting supersedes, cancelling removes: either way the old
            // entry goes, queued or due.
            due_now.retain(|h| h != handle);
            timers.0.retain(|(h, key)| {
                let keep = h != handle;
                if !keep {
                    self.queue.remove(key);
                }
                keep
            });
            if let TimerOp::Set(timer) = op {
                if timer.at <= now {
                    due_now.push(timer.handle);
                    continue;
                }
                let key = (timer.at, self.next_seq);
                self.next_seq += 1;
                self.queue.insert(key, (id.clone(), timer.handle.clone()));
                timers.0.push((timer.handle, key));
            }
        }
        due_now
    }

    /// When the next timer elapses.
    pub fn next_due(&self) -> Option<Time> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// Takes every timer due at or before `now`: one entry per engine, its
    /// handles in the order they elapse, engines in the order of their
    /// first due timer. `forget` is called for each timer taken, so the
    /// host can drop it from that engine's [`EngineTimers`]
    /// ([`EngineTimers::forget`]).
    pub fn take_due(&mut self, now: Time, mut forget: impl FnMut(&EngineId, TimerKey)) -> Vec<(EngineId, Vec<H>)> {
        let mut by_engine: Vec<(EngineId, Vec<H>)> = Vec::new();
        // Thousands of timers can come due at once (every executor's
        // reap after a burst, or a simulation's clock jumping): find an
        // engine's entry by hash, not by a scan of the entries so far.
        let mut index: HashMap<EngineId, usize, foldhash::fast::RandomState> = HashMap::default();
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (key, (id, handle)) = entry.remove_entry();
            forget(&id, key);
            match index.get(&id).and_then(|&i| by_engine.get_mut(i)) {
                Some((_, handles)) => handles.push(handle),
                None => {
                    index.insert(id.clone(), by_engine.len());
                    by_engine.push((id, vec![handle]));
                }
            }
        }
        by_engine
    }

    /// Forgets every timer of an engine that is gone.
    pub fn remove(&mut self, timers: EngineTimers<H>) {
        for (_, key) in timers.0 {
            self.queue.remove(&key);
        }
    }

    /// How many timers are queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no timer is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{EngineId, EngineTimers, Timer, TimerOp, TimerQueue};

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn set(handle: &'static str, ms: u64) -> TimerOp<&'static str> {
        TimerOp::Set(Timer { handle, at: at(ms) })
    }

    #[test]
    fn setting_a_handle_again_supersedes_it() {
        let mut queue = TimerQueue::default();
        let (id, mut timers) = (EngineId::local("e"), EngineTimers::default());
        assert!(queue.apply(&id, &mut timers, vec![set("deadline", 10), set("other", 20)], at(0)).is_empty());
        assert!(queue.apply(&id, &mut timers, vec![set("deadline", 30)], at(0)).is_empty());
        assert_eq!(queue.len(), 2);
        let mut forgotten = Vec::new();
        assert_eq!(queue.take_due(at(25), |_, key| forgotten.push(key)), vec![(id.clone(), vec!["other"])]);
        assert_eq!(queue.take_due(at(30), |_, key| forgotten.push(key)), vec![(id, vec!["deadline"])]);
        assert_eq!(forgotten.len(), 2);
        assert!(queue.is_empty());
    }

    /// A timer due at once is handed back, not queued; a cancel later in
    /// the same effect takes it back (it used to fire anyway).
    #[test]
    fn a_cancel_later_in_the_same_effect_beats_a_due_timer() {
        let mut queue = TimerQueue::default();
        let (id, mut timers) = (EngineId::local("e"), EngineTimers::default());
        let due = queue.apply(&id, &mut timers, vec![set("start", 5), set("now", 5)], at(5));
        assert_eq!(due, vec!["start", "now"]);
        let due = queue.apply(&id, &mut timers, vec![set("start", 5), TimerOp::Cancel("start")], at(5));
        assert!(due.is_empty());
        let due = queue.apply(&id, &mut timers, vec![set("later", 5), set("later", 50)], at(5));
        assert!(due.is_empty(), "pushed into the future by the second set");
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn due_timers_come_one_entry_per_engine_in_order() {
        let mut queue = TimerQueue::default();
        let (a, b) = (EngineId::local("a"), EngineId::local("b"));
        let (mut ta, mut tb) = (EngineTimers::default(), EngineTimers::default());
        queue.apply(&a, &mut ta, vec![set("a1", 10), set("a2", 12)], at(0));
        queue.apply(&b, &mut tb, vec![set("b1", 11)], at(0));
        assert_eq!(queue.next_due(), Some(at(10)));
        let due = queue.take_due(at(20), |_, _| {});
        assert_eq!(due, vec![(a, vec!["a1", "a2"]), (b, vec!["b1"])]);
    }

    #[test]
    fn removing_an_engine_forgets_its_timers() {
        let mut queue = TimerQueue::default();
        let (id, mut timers) = (EngineId::local("e"), EngineTimers::default());
        queue.apply(&id, &mut timers, vec![set("x", 10), set("y", 20)], at(0));
        queue.remove(timers);
        assert!(queue.is_empty());
    }
}
