//! The reference shard, message by message.

use executor_host::engine::{EngineId, Envelope, Instance, Trigger};
use executor_host::{KeySets, Message};
use executor_testkit::shard::Shard;

struct Fixture {
    shard: Instance<Shard>,
}

fn worker() -> EngineId {
    EngineId::local("worker")
}

fn exec(ts: u64) -> EngineId {
    EngineId::local(format!("executor/worker/{ts}"))
}

impl Fixture {
    fn new(initial: &[(&str, &str)]) -> Self {
        let initial = initial.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()));
        Self { shard: Shard::serving(EngineId::local("shard-0"), worker(), initial) }
    }

    fn send(&mut self, sender: EngineId, payload: Message) -> Vec<(EngineId, Message)> {
        let envelope = Envelope::new(sender, self.shard.id.clone(), payload);
        let effect = self.shard.handle(Trigger::Message { envelope, at: std::time::Duration::ZERO });
        effect.send.into_iter().map(|e| (e.target, e.payload)).collect()
    }

    fn lock(
        &mut self,
        ts: u64,
        eager: &[&str],
        lazy: &[&str],
        will: &[&str],
        may: &[&str],
    ) -> Vec<(EngineId, Message)> {
        let set = |keys: &[&str]| keys.iter().map(|k| k.as_bytes().to_vec()).collect();
        let keys = KeySets {
            eager_read_keys: set(eager),
            lazy_read_keys: set(lazy),
            will_write_keys: set(will),
            may_write_keys: set(may),
        };
        self.send(
            worker(),
            Message::KvsAcquireLock { timestamp: ts, keys: Box::new(keys), worker: worker(), executor: exec(ts) },
        )
    }

    fn seen(&mut self, ts: u64) -> Vec<(EngineId, Message)> {
        let mut out = self.send(worker(), Message::UpdateSeenAll { timestamp: ts, write: true });
        out.extend(self.send(worker(), Message::UpdateSeenAll { timestamp: ts, write: false }));
        out
    }

    /// Only heard-all-writes: the worker holds heard-all-reads below the
    /// transactions not finished.
    fn seen_writes(&mut self, ts: u64) -> Vec<(EngineId, Message)> {
        self.send(worker(), Message::UpdateSeenAll { timestamp: ts, write: true })
    }

    fn write(&mut self, ts: u64, key: &str, datum: Option<&str>) -> Vec<(EngineId, Message)> {
        let payload = Message::KvsWrite {
            timestamp: ts,
            key: key.as_bytes().to_vec(),
            datum: datum.map(|d| d.as_bytes().to_vec()),
        };
        self.send(exec(ts), payload)
    }

    fn request(&mut self, ts: u64, key: &str, actual: bool) -> Vec<(EngineId, Message)> {
        self.send(exec(ts), Message::KvsReadRequest { timestamp: ts, key: key.as_bytes().to_vec(), actual })
    }
}

fn read(ts: u64, key: &str, data: Option<&str>) -> (EngineId, Message) {
    (
        exec(ts),
        Message::KvsRead { timestamp: ts, key: key.as_bytes().to_vec(), data: data.map(|d| d.as_bytes().to_vec()) },
    )
}

#[test]
fn lock_is_acknowledged_and_eager_reads_wait_for_the_watermark() {
    let mut f = Fixture::new(&[("a", "1")]);
    assert_eq!(f.lock(1, &["a", "z"], &[], &[], &[]), vec![(worker(), Message::KvsLockAcquired { timestamp: 1 })]);
    // Served once the watermark covers the reader, with the initial value,
    // and absent for a key never written.
    assert_eq!(f.seen(1), vec![read(1, "a", Some("1")), read(1, "z", None)]);
    assert!(f.seen(1).is_empty(), "served exactly once");
}

#[test]
fn a_read_waits_for_an_earlier_pending_write_and_sees_the_latest_version_before_it() {
    let mut f = Fixture::new(&[("a", "1")]);
    f.lock(1, &[], &[], &["a"], &[]);
    f.lock(2, &[], &[], &["a"], &[]);
    f.lock(3, &["a"], &[], &[], &[]);
    assert!(f.seen(3).is_empty(), "writes of 1 and 2 pending");
    assert!(f.write(2, "a", Some("two")).is_empty(), "1 still pending");
    assert_eq!(f.write(1, "a", Some("one")), vec![read(3, "a", Some("two"))]);
}

#[test]
fn released_and_may_writes_are_skipped_and_lazy_reads_answer_when_asked() {
    let mut f = Fixture::new(&[("a", "1")]);
    f.lock(1, &[], &[], &[], &["a"]);
    f.lock(2, &[], &["a"], &[], &[]);
    f.seen(2);
    assert!(f.request(2, "a", true).is_empty(), "the may-write of 1 is pending");
    assert_eq!(f.write(1, "a", None), vec![read(2, "a", Some("1"))], "released: the older version");
}

#[test]
fn cancelled_lazy_read_is_never_served() {
    let mut f = Fixture::new(&[]);
    f.lock(1, &[], &["a"], &[], &[]);
    f.seen(1);
    assert!(f.request(1, "a", false).is_empty());
    assert!(f.request(1, "a", true).is_empty(), "already cancelled");
    assert_eq!(f.shard.env.local.pending_markers(), 0);
}

/// An executor that finishes without the value it asked for releases the
/// read: before the shard answers (the request may never have reached
/// it, or the value is not known yet) it is cancelled and never served;
/// after (the answer and the release crossed) it changes nothing. Neither
/// is an error.
#[test]
fn a_requested_read_released_unanswered_is_cancelled_and_one_answered_stays_served() {
    let mut f = Fixture::new(&[("a", "1")]);
    f.lock(1, &[], &[], &["a"], &[]);
    f.lock(2, &[], &["a"], &[], &[]);
    f.lock(3, &[], &["a"], &[], &[]);
    f.seen(3);
    assert!(f.request(2, "a", true).is_empty(), "waits for the write of 1");
    assert!(f.request(2, "a", false).is_empty());
    // Released before it was asked for: the request came too late.
    assert!(f.request(3, "a", false).is_empty());
    assert!(f.request(3, "a", true).is_empty(), "already released");
    assert!(f.write(1, "a", Some("2")).is_empty(), "no read left to serve");
    assert_eq!(f.shard.env.local.pending_markers(), 0);
    assert_eq!(f.shard.env.local.dropped, 1, "only the request after the release");

    f.lock(4, &[], &["a"], &[], &[]);
    f.seen(4);
    assert_eq!(f.request(4, "a", true), vec![read(4, "a", Some("2"))]);
    assert!(f.request(4, "a", false).is_empty());
    assert!(f.request(4, "a", false).is_empty());
    assert_eq!(f.shard.env.local.dropped, 1);
    assert_eq!(f.shard.env.local.pending_markers(), 0);
}

#[test]
fn watermarks_are_max_merged_and_old_locks_refused() {
    let mut f = Fixture::new(&[]);
    f.lock(1, &["a"], &[], &[], &[]);
    f.seen(5);
    f.send(worker(), Message::UpdateSeenAll { timestamp: 2, write: true });
    assert_eq!(f.shard.env.local.watermarks(), (5, 5));
    assert!(f.lock(4, &["a"], &[], &[], &[]).is_empty(), "a lock at or below the watermark is refused");
    assert_eq!(f.shard.env.local.dropped, 1);
}

#[test]
fn old_versions_are_collected_below_the_read_watermark() {
    let mut f = Fixture::new(&[]);
    for ts in 1..=10 {
        f.lock(ts, &[], &[], &["a"], &[]);
    }
    f.seen(10);
    for ts in 1..=9 {
        f.write(ts, "a", Some(&ts.to_string()));
    }
    // The pending write of 10 keeps itself listed; everything older is one
    // base version now.
    assert!(f.shard.env.local.listed_accesses() <= 2, "{}", f.shard.env.local.listed_accesses());
    f.write(10, "a", Some("10"));
    f.lock(11, &["a"], &[], &[], &[]);
    assert_eq!(f.seen(11), vec![read(11, "a", Some("10"))]);
    assert_eq!(f.shard.env.local.latest()[&b"a".to_vec()], b"10");
}

#[test]
fn stray_messages_are_dropped_and_counted() {
    let mut f = Fixture::new(&[]);
    assert!(f.write(3, "a", Some("x")).is_empty(), "no lock");
    assert!(f.request(3, "a", true).is_empty(), "no lock");
    f.lock(1, &["e"], &["l"], &["a"], &[]);
    assert!(f.request(1, "a", true).is_empty(), "no read declared");
    assert!(f.write(1, "e", Some("x")).is_empty(), "no write declared");
    assert!(f.request(1, "e", false).is_empty(), "an eager read cannot be released");
    f.request(1, "l", false);
    assert!(f.request(1, "l", true).is_empty(), "cancelled");
    assert_eq!(f.shard.env.local.dropped, 6);
    assert!(f.shard.env.local.conflicting_writes.is_empty());
}

fn stranger() -> EngineId {
    EngineId::local("executor/impostor/1")
}

/// An executor re-run from the start elsewhere (or re-asking for a read
/// the network lost) asks again for a read already served: before, the
/// shard dropped the request (and an eager one always), and the re-run
/// executor waited for its deadline. It is served again, with the same
/// version, even after later transactions wrote the key and the
/// heard-all-writes watermark moved past it: the worker holds the
/// heard-all-reads watermark below the unfinished reader, so its version
/// is still there.
#[test]
fn a_served_read_asked_for_again_is_served_again_with_the_same_version() {
    let mut f = Fixture::new(&[("a", "1")]);
    f.lock(1, &["a"], &[], &[], &[]);
    f.lock(2, &[], &["a"], &[], &[]);
    f.lock(3, &[], &[], &["a"], &[]);
    assert_eq!(f.seen_writes(3), vec![read(1, "a", Some("1"))]);
    assert_eq!(f.request(2, "a", true), vec![read(2, "a", Some("1"))]);
    assert!(f.write(3, "a", Some("3")).is_empty());
    f.lock(4, &["a"], &[], &[], &[]);
    assert_eq!(f.seen_writes(4), vec![read(4, "a", Some("3"))]);
    // 1 and 2 have not finished: the heard-all-reads watermark stays at 0.
    assert_eq!(f.request(1, "a", true), vec![read(1, "a", Some("1"))], "eager, served again");
    assert_eq!(f.request(2, "a", true), vec![read(2, "a", Some("1"))], "lazy, served again");
    assert_eq!(f.request(1, "a", true), vec![read(1, "a", Some("1"))], "as often as asked");
    assert_eq!(f.request(4, "a", true), vec![read(4, "a", Some("3"))]);
    assert_eq!(f.shard.env.local.dropped, 0);
    assert_eq!(f.shard.env.local.pending_markers(), 0);
    // Asking while the answer is still due is a retry, not an error.
    f.lock(5, &["a"], &["b"], &[], &[]);
    assert!(f.request(5, "a", true).is_empty(), "eager, waiting for the watermark");
    assert!(f.request(5, "b", true).is_empty(), "lazy, waiting for the watermark");
    assert!(f.request(5, "b", true).is_empty(), "lazy, requested already");
    assert_eq!(f.shard.env.local.dropped, 0);
    assert_eq!(f.seen_writes(5), vec![read(5, "a", Some("3")), read(5, "b", None)]);
    // Once every reader finished the worker moves heard-all-reads past
    // them, and their versions are collapsed: nothing to serve again.
    f.send(worker(), Message::UpdateSeenAll { timestamp: 5, write: false });
    assert!(f.request(1, "a", true).is_empty());
    assert_eq!(f.shard.env.local.dropped, 1);
}

/// A re-run executor writes again: the same resolution is a no-op (before,
/// it was dropped as a protocol violation), a different one is refused and
/// reported (before, it was only counted among the dropped messages).
#[test]
fn a_repeated_write_is_a_no_op_and_a_different_one_is_reported() {
    let mut f = Fixture::new(&[("a", "0")]);
    f.lock(1, &[], &[], &["a"], &["b"]);
    f.lock(2, &["a", "b"], &[], &[], &[]);
    f.seen_writes(2);
    assert_eq!(f.write(1, "a", Some("x")), vec![read(2, "a", Some("x"))]);
    assert!(f.write(1, "a", Some("x")).is_empty());
    assert_eq!(f.write(1, "b", None), vec![read(2, "b", None)]);
    assert!(f.write(1, "b", None).is_empty());
    assert_eq!(f.shard.env.local.dropped, 0, "the same write again is no error");
    assert!(f.shard.env.local.conflicting_writes.is_empty());
    // Another value, a release of a written key, a write of a released one.
    assert!(f.write(1, "a", Some("y")).is_empty());
    assert!(f.write(1, "a", None).is_empty());
    assert!(f.write(1, "b", Some("z")).is_empty());
    let state = &f.shard.env.local;
    assert_eq!(state.conflicting_writes, vec![(1, b"a".to_vec()), (1, b"a".to_vec()), (1, b"b".to_vec())]);
    assert_eq!(state.dropped, 0);
    assert_eq!(state.latest(), [(b"a".to_vec(), b"x".to_vec())].into(), "the first write stands");
    // Later readers see the first write.
    f.lock(3, &["a"], &[], &[], &[]);
    assert_eq!(f.seen_writes(3), vec![read(3, "a", Some("x"))]);
}

/// Only the executor a lock registered may read or write under it: before,
/// anyone could ask for a lazy read (served to the executor) or write.
#[test]
fn a_read_request_or_write_from_a_stranger_is_dropped_and_changes_nothing() {
    let mut f = Fixture::new(&[("a", "1")]);
    f.lock(1, &["e"], &["a"], &["b"], &[]);
    assert_eq!(f.seen(1), vec![read(1, "e", None)]);
    let request = Message::KvsReadRequest { timestamp: 1, key: b"a".to_vec(), actual: true };
    let release = Message::KvsReadRequest { timestamp: 1, key: b"a".to_vec(), actual: false };
    let again = Message::KvsReadRequest { timestamp: 1, key: b"e".to_vec(), actual: true };
    let write = Message::KvsWrite { timestamp: 1, key: b"b".to_vec(), datum: Some(b"evil".to_vec()) };
    for message in [request, release, again, write] {
        assert!(f.send(stranger(), message.clone()).is_empty(), "{message:?}");
        assert!(f.send(worker(), message.clone()).is_empty(), "{message:?}");
    }
    assert_eq!(f.shard.env.local.dropped, 8);
    assert_eq!(f.shard.env.local.pending_markers(), 2, "the lazy read and the write");
    assert_eq!(f.request(1, "a", true), vec![read(1, "a", Some("1"))]);
    assert!(f.write(1, "b", Some("2")).is_empty());
    assert_eq!(f.shard.env.local.pending_markers(), 0);
    assert_eq!(f.shard.env.local.latest()[&b"b".to_vec()], b"2");
    assert!(f.shard.env.local.conflicting_writes.is_empty());
}

/// A retried `KvsAcquireLock` must not reset the markers: before the fix
/// a second lock arriving after the executor's write (and before the
/// watermark) turned the written value back into a pending write, left
/// pending forever.
#[test]
fn duplicate_lock_keeps_markers_and_is_acknowledged_again() {
    let mut f = Fixture::new(&[("a", "1")]);
    f.lock(1, &[], &[], &["a"], &[]);
    f.write(1, "a", Some("2"));
    // Same keys again: acknowledged, nothing reset.
    assert_eq!(f.lock(1, &[], &[], &["a"], &[]), vec![(worker(), Message::KvsLockAcquired { timestamp: 1 })]);
    assert_eq!(f.shard.env.local.pending_markers(), 0);
    // Other keys for the same timestamp: refused and counted.
    let dropped = f.shard.env.local.dropped;
    assert_eq!(f.lock(1, &["b"], &[], &[], &[]), vec![]);
    assert_eq!(f.shard.env.local.dropped, dropped + 1);
    f.lock(2, &["a"], &[], &[], &[]);
    assert_eq!(f.seen(2), vec![read(2, "a", Some("2"))]);
    assert_eq!(f.shard.env.local.pending_markers(), 0);
}

/// Locks and watermarks count only from the shard's worker: a stranger's
/// `UpdateSeenAll` would make the shard drop the worker's next locks as
/// below the watermark, and a stranger's lock would hold keys no
/// transaction of the worker's declared.
#[test]
fn locks_and_watermarks_from_anyone_but_the_worker_are_dropped() {
    let mut f = Fixture::new(&[("a", "1")]);
    let stranger = EngineId::local("mallory");
    assert!(f.send(stranger.clone(), Message::UpdateSeenAll { timestamp: 100, write: true }).is_empty());
    assert!(f.send(stranger.clone(), Message::UpdateSeenAll { timestamp: 100, write: false }).is_empty());
    assert_eq!(f.shard.env.local.watermarks(), (0, 0));
    let keys = KeySets { eager_read_keys: vec![b"a".to_vec()], ..KeySets::default() };
    let forged = Message::KvsAcquireLock {
        timestamp: 1,
        keys: Box::new(keys.clone()),
        worker: stranger.clone(),
        executor: exec(1),
    };
    assert!(f.send(stranger.clone(), forged).is_empty());
    // Sent by a stranger in the worker's name, or by the worker naming a
    // stranger as the one to acknowledge: both dropped.
    let spoofed =
        Message::KvsAcquireLock { timestamp: 1, keys: Box::new(keys.clone()), worker: worker(), executor: exec(1) };
    assert!(f.send(stranger.clone(), spoofed).is_empty());
    let misdirected =
        Message::KvsAcquireLock { timestamp: 1, keys: Box::new(keys), worker: stranger, executor: exec(1) };
    assert!(f.send(worker(), misdirected).is_empty());
    assert_eq!(f.shard.env.local.dropped, 5);
    assert_eq!(f.shard.env.local.pending_markers(), 0);
    // The worker's own lock and watermark work as ever.
    assert_eq!(f.lock(1, &["a"], &[], &[], &[]), vec![(worker(), Message::KvsLockAcquired { timestamp: 1 })]);
    let served = f.seen(1);
    assert!(
        served.contains(&(exec(1), Message::KvsRead { timestamp: 1, key: b"a".to_vec(), data: Some(b"1".to_vec()) }))
    );
}
