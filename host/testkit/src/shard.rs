//! The reference shard: a multi-version key/value store speaking nspec's
//! shard protocol, with the internals fixed.
//!
//! Per key, a timeline of transactions (by timestamp) with their declared
//! accesses: a read marker (eager or lazy; waiting, requested, served,
//! cancelled) and a write marker (will or may; pending, written, released).
//! A read at `t` is answered once (and again only when its executor asks
//! again), with the latest value written before `t`, only when no earlier write to the key is still pending and every
//! lock up to `t` has been heard (the heard-all-writes watermark; nspec's
//! `t - 1` is not enough to know the reader's executor exists).
//! A key with no earlier version reads as absent, or as the initial value
//! the shard was loaded with. Watermarks are max-merged; versions below the
//! heard-all-reads watermark are collapsed once nothing older is pending.
//!
//! Only the executor a lock registered may read or write under it: a read
//! request or write from anyone else is dropped and counted. Asking again
//! is safe, so that an executor may re-ask for a `KvsRead` the network
//! lost, or be re-run from the start elsewhere (a new incarnation: same
//! id, same timestamp, a deterministic program; see
//! [`executor_host::ExecutorOptions::resend`]): a read request (eager or
//! lazy) for a read already served
//! serves it again with the same version (the versions before a timestamp
//! never change once it was served, so the value is the same), and one
//! for a read still due is a no-op. A write that repeats the resolution
//! recorded (the same value, or a release again) is a no-op; a different
//! one is refused and listed in [`ShardState::conflicting_writes`]: two
//! runs of one deterministic transaction disagreed, which must be
//! reported. Versions stay until the heard-all-reads watermark passes
//! them, and the worker holds that watermark below every transaction not
//! yet finished, so a re-run executor still finds the version it reads.
//!
//! nspec's shard serves reads only in a one-instant window, never answers a
//! key without a value, loses lazy requests whose value is not known yet,
//! ignores pending may-writes, and assigns watermarks instead of merging
//! them; none of that is kept. It is for tests, examples and the `run`
//! command: it keeps everything in memory and persists nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::RangeBounds;
use std::sync::Arc;

use executor_host::engine::{Behaviour, Effect, EngineId, Envelope, Environment, GuardStrategy, Instance, Trigger};
use executor_host::{Datum, Key, KeySets, Message, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadStatus {
    Waiting,
    Requested,
    Served,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum WriteStatus {
    Pending,
    Written(Datum),
    Released,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReadMarker {
    eager: bool,
    status: ReadStatus,
}

impl ReadMarker {
    /// Whether the reader is owed an answer now (given the value is known).
    fn due(&self) -> bool {
        matches!((self.eager, self.status), (true, ReadStatus::Waiting) | (false, ReadStatus::Requested))
    }

    fn unresolved(&self) -> bool {
        matches!(self.status, ReadStatus::Waiting | ReadStatus::Requested)
    }
}

/// One transaction's accesses to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Access {
    executor: EngineId,
    read: Option<ReadMarker>,
    write: Option<WriteStatus>,
}

impl Access {
    fn resolved(&self) -> bool {
        !self.read.as_ref().is_some_and(ReadMarker::unresolved) && self.write != Some(WriteStatus::Pending)
    }
}

/// A timestamp-ordered map, for a key's timeline and its indexes: a sorted
/// deque. Timelines are short at low contention (a key has a few accesses
/// at a time), grow at the end (the worker locks in timestamp order) and
/// shrink at the front (versions are collected oldest first). A deque
/// does that in one small allocation, where a B-tree allocates a node of
/// eleven entries per key and shifts within it; a lookup is a binary
/// search either way.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ByTimestamp<V> {
    entries: VecDeque<(Timestamp, V)>,
}

impl<V> Default for ByTimestamp<V> {
    fn default() -> Self {
        Self { entries: VecDeque::new() }
    }
}

impl<V> ByTimestamp<V> {
    fn search(&self, timestamp: Timestamp) -> Result<usize, usize> {
        // The usual insertion is past the end: check it before searching.
        match self.entries.back() {
            Some((last, _)) if *last < timestamp => Err(self.entries.len()),
            _ => self.entries.binary_search_by_key(&timestamp, |(t, _)| *t),
        }
    }

    fn get(&self, timestamp: Timestamp) -> Option<&V> {
        let at = self.search(timestamp).ok()?;
        self.entries.get(at).map(|(_, v)| v)
    }

    fn get_mut(&mut self, timestamp: Timestamp) -> Option<&mut V> {
        let at = self.search(timestamp).ok()?;
        self.entries.get_mut(at).map(|(_, v)| v)
    }

    /// Inserts `make()` at `timestamp` unless an entry is there already.
    fn insert_with(&mut self, timestamp: Timestamp, make: impl FnOnce() -> V) {
        if let Err(at) = self.search(timestamp) {
            self.entries.insert(at, (timestamp, make()));
        }
    }

    fn remove(&mut self, timestamp: Timestamp) -> Option<V> {
        let at = self.search(timestamp).ok()?;
        self.entries.remove(at).map(|(_, v)| v)
    }

    fn first(&self) -> Option<(Timestamp, &V)> {
        self.entries.front().map(|(t, v)| (*t, v))
    }

    fn pop_first(&mut self) -> Option<(Timestamp, V)> {
        self.entries.pop_front()
    }

    /// The entries whose timestamps are in `range`, in order.
    fn range(&self, range: impl RangeBounds<Timestamp>) -> impl DoubleEndedIterator<Item = (Timestamp, &V)> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let start = match range.start_bound() {
            Included(t) => self.entries.partition_point(|(e, _)| e < t),
            Excluded(t) => self.entries.partition_point(|(e, _)| e <= t),
            Unbounded => 0,
        };
        let end = match range.end_bound() {
            Included(t) => self.entries.partition_point(|(e, _)| e <= t),
            Excluded(t) => self.entries.partition_point(|(e, _)| e < t),
            Unbounded => self.entries.len(),
        };
        self.entries.range(start..end.max(start)).map(|(t, v)| (*t, v))
    }

    fn values(&self) -> impl DoubleEndedIterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// One key's versions and accesses.
///
/// Besides the accesses, two indexes over them, so that serving a read
/// costs a lookup, not a walk from the oldest version kept (timelines get
/// long under contention: the worker keeps versions until their readers
/// finished): the timestamps whose read is due and those whose write is
/// pending. Every change of a marker's status goes through
/// [`Timeline::set_read`] or [`Timeline::set_write`], which keep them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Timeline {
    /// The value before every access still listed (collected history, or
    /// the initial value).
    base: Option<Datum>,
    accesses: ByTimestamp<Access>,
    /// Timestamps whose read marker is due ([`ReadMarker::due`]).
    due_reads: ByTimestamp<()>,
    /// Timestamps whose write marker is pending.
    pending_writes: ByTimestamp<()>,
}

impl Timeline {
    fn set_read(&mut self, timestamp: Timestamp, marker: ReadMarker) {
        if marker.due() {
            self.due_reads.insert_with(timestamp, || ());
        } else {
            self.due_reads.remove(timestamp);
        }
        if let Some(access) = self.accesses.get_mut(timestamp) {
            access.read = Some(marker);
        }
    }

    fn set_write(&mut self, timestamp: Timestamp, status: WriteStatus) {
        if status == WriteStatus::Pending {
            self.pending_writes.insert_with(timestamp, || ());
        } else {
            self.pending_writes.remove(timestamp);
        }
        if let Some(access) = self.accesses.get_mut(timestamp) {
            access.write = Some(status);
        }
    }

    /// The value a read at `timestamp` sees: the latest written before it,
    /// else the base.
    fn value_before(&self, timestamp: Timestamp) -> Option<&Datum> {
        self.accesses
            .range(..timestamp)
            .rev()
            .find_map(|(_, access)| match &access.write {
                Some(WriteStatus::Written(datum)) => Some(datum),
                _ => None,
            })
            .or(self.base.as_ref())
    }
}

/// The shard's local state.
#[derive(Debug, Default)]
pub struct ShardState {
    /// Looked up for every message: hashed (seeded, keys come from
    /// transactions), not ordered.
    keys: HashMap<Key, Timeline, foldhash::fast::RandomState>,
    /// Every write lock at or before this timestamp has been heard.
    heard_all_writes: Timestamp,
    /// Every read lock at or before this timestamp has been heard.
    heard_all_reads: Timestamp,
    /// The keys each transaction locked here, for the transactions the
    /// watermarks have not both passed: what to look at when they move.
    locks_by_ts: BTreeMap<Timestamp, Vec<Key>>,
    /// Messages dropped as protocol violations (unknown lock, a read
    /// request or write from another than the lock's executor, a read of
    /// a cancelled read, late lock).
    pub dropped: u64,
    /// Writes refused because they contradict the write already recorded
    /// for the same timestamp and key (another value, or a write against
    /// a release): nondeterminism, by timestamp and key, in arrival order.
    pub conflicting_writes: Vec<(Timestamp, Key)>,
}

impl ShardState {
    /// A shard loaded with initial values.
    pub fn with_initial(initial: impl IntoIterator<Item = (Key, Datum)>) -> Self {
        let keys = initial.into_iter().map(|(k, v)| (k, Timeline { base: Some(v), ..Timeline::default() })).collect();
        Self { keys, ..Self::default() }
    }

    /// The latest value of every key that has one.
    pub fn latest(&self) -> BTreeMap<Key, Datum> {
        self.keys
            .iter()
            .filter_map(|(key, timeline)| {
                let written = timeline.accesses.values().rev().find_map(|a| match &a.write {
                    Some(WriteStatus::Written(datum)) => Some(datum.clone()),
                    _ => None,
                });
                written.or_else(|| timeline.base.clone()).map(|v| (key.clone(), v))
            })
            .collect()
    }

    /// Markers not resolved: writes pending, reads not served or cancelled.
    pub fn pending_markers(&self) -> usize {
        self.keys
            .values()
            .flat_map(|t| t.accesses.values())
            .map(|a| {
                usize::from(a.write == Some(WriteStatus::Pending))
                    + usize::from(a.read.as_ref().is_some_and(ReadMarker::unresolved))
            })
            .sum()
    }

    /// Accesses still listed (after garbage collection).
    pub fn listed_accesses(&self) -> usize {
        self.keys.values().map(|t| t.accesses.len()).sum()
    }

    /// The heard-all-writes and heard-all-reads watermarks.
    pub fn watermarks(&self) -> (Timestamp, Timestamp) {
        (self.heard_all_writes, self.heard_all_reads)
    }
}

/// What a shard's guard names: one action per protocol message (see
/// [`Message`] for their fields). Actions carry no fields: `act` reads
/// them from the message and takes what the shard keeps (a lock's keys, a
/// written value) out of it instead of copying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardAction {
    /// `KvsAcquireLock`: register the accesses and acknowledge them.
    Lock,
    /// `KvsReadRequest`: a lazy read is wanted, or not, or a read is asked
    /// for again.
    ReadRequest,
    /// `KvsWrite`: a pending write is written or released.
    Write,
    /// `UpdateSeenAll`: a watermark moves.
    SeenAll,
    /// Anything else: dropped and counted.
    Drop,
}

/// The shard behaviour.
#[derive(Debug)]
pub struct Shard;

/// A shard's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardConfig {
    /// The worker whose locks and watermarks the shard takes; `None` takes
    /// them from anyone (for tests that play the worker themselves). A
    /// stranger's `UpdateSeenAll` would otherwise make the shard drop the
    /// worker's later locks as below the watermark.
    pub worker: Option<EngineId>,
}

fn guard(trigger: &Trigger<Message, ()>, config: &ShardConfig, _: &Environment<Shard>) -> Option<ShardAction> {
    let Trigger::Message { envelope, .. } = trigger else { return Some(ShardAction::Drop) };
    let from_worker = |named: Option<&EngineId>| {
        config.worker.as_ref().is_none_or(|w| *w == envelope.sender && named.is_none_or(|n| n == w))
    };
    Some(match &envelope.payload {
        Message::KvsAcquireLock { worker, .. } if !from_worker(Some(worker)) => ShardAction::Drop,
        Message::UpdateSeenAll { .. } if !from_worker(None) => ShardAction::Drop,
        Message::KvsAcquireLock { .. } => ShardAction::Lock,
        Message::KvsReadRequest { .. } => ShardAction::ReadRequest,
        Message::KvsWrite { .. } => ShardAction::Write,
        Message::UpdateSeenAll { .. } => ShardAction::SeenAll,
        _ => ShardAction::Drop,
    })
}

impl Shard {
    /// A shard engine named `id`, loaded with `initial` values, that takes
    /// locks and watermarks from anyone.
    pub fn instance(id: EngineId, initial: impl IntoIterator<Item = (Key, Datum)>) -> Instance<Self> {
        Self::with_config(id, ShardConfig::default(), initial)
    }

    /// A shard engine named `id`, loaded with `initial` values, that takes
    /// locks and watermarks only from `worker` (and locks only naming it).
    pub fn serving(id: EngineId, worker: EngineId, initial: impl IntoIterator<Item = (Key, Datum)>) -> Instance<Self> {
        Self::with_config(id, ShardConfig { worker: Some(worker) }, initial)
    }

    fn with_config(
        id: EngineId,
        config: ShardConfig,
        initial: impl IntoIterator<Item = (Key, Datum)>,
    ) -> Instance<Self> {
        Instance { id, config: Arc::new(config), env: Environment::new(ShardState::with_initial(initial)) }
    }
}

impl Behaviour for Shard {
    type Config = ShardConfig;
    type Local = ShardState;
    type Msg = Message;
    type Timer = ();
    type Action = ShardAction;
    type Spawn = std::convert::Infallible;

    const STRATEGY: GuardStrategy = GuardStrategy::FirstMatch;

    fn guards() -> &'static [executor_host::engine::Guard<Self>] {
        &[guard]
    }

    fn act(
        action: ShardAction,
        trigger: &mut Trigger<Message, ()>,
        me: &EngineId,
        _: &ShardConfig,
        env: &mut Environment<Self>,
    ) -> Effect<Self> {
        let state = &mut env.local;
        let mut effect = Effect::default();
        let Trigger::Message { envelope, .. } = trigger else {
            state.dropped += 1;
            return effect;
        };
        let sender = &envelope.sender;
        match (action, &mut envelope.payload) {
            (ShardAction::Lock, Message::KvsAcquireLock { timestamp, keys, worker, executor }) => {
                lock(state, *timestamp, std::mem::take(&mut **keys), executor, worker, me, &mut effect);
            }
            (ShardAction::ReadRequest, Message::KvsReadRequest { timestamp, key, actual }) => {
                if read_request(state, *timestamp, key, *actual, sender) {
                    serve(state, key, me, &mut effect);
                }
            }
            (ShardAction::Write, Message::KvsWrite { timestamp, key, datum }) => {
                if write(state, *timestamp, key, datum.take(), sender) {
                    serve(state, key, me, &mut effect);
                }
            }
            (ShardAction::SeenAll, Message::UpdateSeenAll { timestamp, write }) => {
                let mut touched = seen_all(state, *timestamp, *write);
                touched.sort();
                touched.dedup();
                for key in touched {
                    serve(state, &key, me, &mut effect);
                }
            }
            (_, payload) => {
                tracing::debug!(?payload, "shard dropped a message");
                state.dropped += 1;
            }
        }
        effect
    }
}

/// `KvsAcquireLock`: registers a transaction's accesses to this shard's
/// keys (normalized here: the lock may come from anyone when the shard
/// takes locks from anyone), acknowledges them, and serves the keys it
/// touched.
fn lock(
    state: &mut ShardState,
    timestamp: Timestamp,
    keys: KeySets,
    executor: &EngineId,
    worker: &EngineId,
    me: &EngineId,
    effect: &mut Effect<Shard>,
) {
    if timestamp <= state.heard_all_writes || timestamp <= state.heard_all_reads {
        // The worker promised no more locks this old.
        tracing::warn!(timestamp, "lock below a watermark dropped");
        state.dropped += 1;
        return;
    }
    let keys = keys.normalized();
    if let Some(locked) = state.locks_by_ts.get(&timestamp) {
        // A repeated lock (a retry) must not reset markers: that would
        // serve a read twice or forget a write. The same keys again are
        // acknowledged again, idempotently; other keys for the same
        // timestamp are a protocol violation.
        if locked.iter().eq(keys.all_keys()) {
            effect.send.push(Envelope::new(me.clone(), worker.clone(), Message::KvsLockAcquired { timestamp }));
        } else {
            tracing::warn!(timestamp, "a second, different lock for one timestamp dropped");
            state.dropped += 1;
        }
        return;
    }
    let marks = [
        (&keys.eager_read_keys, Some(true), false),
        (&keys.lazy_read_keys, Some(false), false),
        (&keys.will_write_keys, None, true),
        (&keys.may_write_keys, None, true),
    ];
    for (set, read, write) in marks {
        for key in set {
            // Looked up before inserting: a key seen before (the usual
            // case) is not copied.
            if !state.keys.contains_key(key) {
                state.keys.insert(key.clone(), Timeline::default());
            }
            let Some(timeline) = state.keys.get_mut(key) else { continue };
            timeline.accesses.insert_with(timestamp, || Access { executor: executor.clone(), read: None, write: None });
            if let Some(eager) = read {
                timeline.set_read(timestamp, ReadMarker { eager, status: ReadStatus::Waiting });
            }
            if write {
                timeline.set_write(timestamp, WriteStatus::Pending);
            }
        }
    }
    // The keys are the shard's now: kept in the lock window, not copied.
    let declared = keys.into_all_keys();
    effect.send.push(Envelope::new(me.clone(), worker.clone(), Message::KvsLockAcquired { timestamp }));
    for key in &declared {
        serve(state, key, me, effect);
    }
    state.locks_by_ts.insert(timestamp, declared);
}

/// The timeline of `key`, if `timestamp` has an access to it and `sender`
/// is the executor its lock registered; otherwise the message is dropped
/// and counted.
fn own_timeline<'a>(
    state: &'a mut ShardState,
    timestamp: Timestamp,
    key: &Key,
    sender: &EngineId,
) -> Option<&'a mut Timeline> {
    let found = state.keys.get_mut(key).and_then(|t| {
        let owner = t.accesses.get(timestamp).map(|access| &access.executor == sender)?;
        Some((t, owner))
    });
    match found {
        Some((timeline, true)) => Some(timeline),
        Some((_, false)) => {
            tracing::debug!(timestamp, %sender, "shard dropped a read request or write from a stranger");
            state.dropped += 1;
            None
        }
        None => {
            state.dropped += 1;
            None
        }
    }
}

/// `KvsReadRequest`: a lazy read is wanted (`actual`) or not, or a read
/// is asked for again (a retry, or a re-run of the executor). Returns
/// whether the key's reads changed.
fn read_request(state: &mut ShardState, timestamp: Timestamp, key: &Key, actual: bool, sender: &EngineId) -> bool {
    let Some(timeline) = own_timeline(state, timestamp, key, sender) else { return false };
    let Some(marker) = timeline.accesses.get(timestamp).and_then(|a| a.read) else {
        state.dropped += 1;
        return false;
    };
    let status = match (actual, marker.eager, marker.status) {
        (true, false, ReadStatus::Waiting) => ReadStatus::Requested,
        // Released before or after it was asked for, unanswered (the
        // executor finished without the value: its request may have been
        // lost on the way, or the answer would come too late).
        (false, false, ReadStatus::Waiting | ReadStatus::Requested) => ReadStatus::Cancelled,
        // Asked again for a read already served: serve it again. The same
        // timestamp reads the same version.
        (true, eager, ReadStatus::Served) => {
            if eager {
                ReadStatus::Waiting
            } else {
                ReadStatus::Requested
            }
        }
        // Asked again while the answer is still due, released again, or
        // released once answered (the answer and the release crossed):
        // nothing to do, and nothing wrong.
        (true, true, ReadStatus::Waiting)
        | (true, false, ReadStatus::Requested)
        | (false, false, ReadStatus::Cancelled | ReadStatus::Served) => return false,
        // A read of a cancelled read, or a release of an eager one: the
        // executor contradicts itself.
        _ => {
            state.dropped += 1;
            return false;
        }
    };
    timeline.set_read(timestamp, ReadMarker { status, ..marker });
    true
}

/// `KvsWrite`: a pending write is written (`Some`) or released (`None`).
/// The same resolution again is a no-op; another one is refused and
/// listed as a conflict. Returns whether the key's writes changed.
fn write(state: &mut ShardState, timestamp: Timestamp, key: &Key, datum: Option<Datum>, sender: &EngineId) -> bool {
    let Some(timeline) = own_timeline(state, timestamp, key, sender) else { return false };
    let Some(status) = timeline.accesses.get(timestamp).and_then(|a| a.write.as_ref()) else {
        state.dropped += 1;
        return false;
    };
    match (status, datum) {
        (WriteStatus::Pending, datum) => {
            timeline.set_write(timestamp, datum.map_or(WriteStatus::Released, WriteStatus::Written));
            true
        }
        (WriteStatus::Written(written), Some(datum)) if *written == datum => false,
        (WriteStatus::Released, None) => false,
        (recorded, datum) => {
            tracing::warn!(
                timestamp,
                key = %String::from_utf8_lossy(key),
                recorded = ?recorded,
                now = ?datum,
                "a second, different write for one timestamp and key refused: the transaction is nondeterministic"
            );
            state.conflicting_writes.push((timestamp, key.clone()));
            false
        }
    }
}

/// `UpdateSeenAll`: max-merges a watermark. Only the transactions it newly
/// passes can change anything: their reads may become servable, their
/// keys' old versions collectable. Returns those keys.
fn seen_all(state: &mut ShardState, timestamp: Timestamp, write: bool) -> Vec<Key> {
    let watermark = if write { &mut state.heard_all_writes } else { &mut state.heard_all_reads };
    let before = *watermark;
    *watermark = before.max(timestamp);
    let after = *watermark;
    let mut touched = Vec::new();
    if after > before {
        touched.extend(state.locks_by_ts.range(before + 1..=after).flat_map(|(_, keys)| keys.iter().cloned()));
    }
    // Forget what both watermarks passed, from the oldest: what is left is
    // the window between them, which must not be copied on every move.
    // Those transactions' versions may now be collectable: collect them
    // here, or a key nobody touches again keeps them to the end.
    let both = state.heard_all_writes.min(state.heard_all_reads);
    while let Some(entry) = state.locks_by_ts.first_entry() {
        if *entry.key() > both {
            break;
        }
        for key in entry.remove() {
            if let Some(timeline) = state.keys.get_mut(&key) {
                collect(timeline, state.heard_all_reads);
            }
        }
    }
    touched
}

/// Collapses the key's old versions, then answers every read of `key` that
/// is due and whose value is known: at or before the heard-all-writes
/// watermark (it must cover the reader's timestamp itself, not just the
/// one before: the worker spawns an executor when its locks are all held,
/// before it raises the watermark, so this is also what tells the shard
/// the reader exists to receive an unasked eager read), and at or before
/// the first write still pending (a transaction's own pending write does
/// not hold up its read, which sees the version before it).
fn serve(state: &mut ShardState, key: &Key, me: &EngineId, effect: &mut Effect<Shard>) {
    let Some(timeline) = state.keys.get_mut(key) else { return };
    collect(timeline, state.heard_all_reads);
    let limit = timeline.pending_writes.first().map_or(state.heard_all_writes, |(p, ())| p.min(state.heard_all_writes));
    let mut due = timeline.due_reads.range(..=limit).map(|(t, ())| t).peekable();
    let (Some(&first), Some((last, ()))) = (due.peek(), timeline.due_reads.range(..=limit).next_back()) else { return };
    // One walk from the first due read to the last, carrying the value
    // forward: looking each one's value up on its own would walk back over
    // the same readers again and again on a read-mostly key.
    let mut served = Vec::new();
    let mut value = timeline.value_before(first);
    for (timestamp, access) in timeline.accesses.range(first..=last) {
        if due.next_if_eq(&timestamp).is_some() {
            served.push((timestamp, access.executor.clone(), access.read, value.cloned()));
        }
        if let Some(WriteStatus::Written(datum)) = &access.write {
            value = Some(datum);
        }
    }
    drop(due);
    for (timestamp, executor, marker, data) in served {
        if let Some(marker) = marker {
            timeline.set_read(timestamp, ReadMarker { status: ReadStatus::Served, ..marker });
        }
        let read = Message::KvsRead { timestamp, key: key.clone(), data };
        effect.send.push(Envelope::new(me.clone(), executor, read));
    }
}

/// Collapses a key's resolved accesses below the heard-all-reads watermark
/// into its base value: no reader can need those versions any more (every
/// later read lock has been heard, and every reader before them is served).
fn collect(timeline: &mut Timeline, heard_all_reads: Timestamp) {
    while let Some((timestamp, access)) = timeline.accesses.first() {
        if timestamp >= heard_all_reads || !access.resolved() {
            break;
        }
        if let Some((_, Access { write: Some(WriteStatus::Written(datum)), .. })) = timeline.accesses.pop_first() {
            timeline.base = Some(datum);
        }
    }
}
