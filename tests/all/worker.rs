//! The mempool worker, message by message.

use std::sync::Arc;

use executor_host::engine::{Instance, Trigger};
use executor_host::{EngineId, Envelope, ExecutorFinished, KeySets, Message, ShardMap, executor_id};
use executor_testkit::harness::HashShards;
use executor_testkit::worker::{Worker, WorkerConfig};

fn worker(shards: usize) -> (Instance<Worker>, HashShards) {
    let map = HashShards::new(shards);
    let config = WorkerConfig { shards: Arc::new(map.clone()), all_shards: map.all().to_vec() };
    (Worker::instance(EngineId::local("worker"), config), map)
}

fn send(worker: &mut Instance<Worker>, sender: EngineId, payload: Message) -> (usize, Vec<Envelope<Message>>) {
    let envelope = Envelope::new(sender, worker.id.clone(), payload);
    let effect = worker.handle(Trigger::Message { envelope, at: std::time::Duration::ZERO });
    (effect.spawn.len(), effect.send)
}

/// Before the fix the worker counted acknowledgements: a shard that
/// acknowledged twice (a retry) made it spawn the executor while another
/// shard's locks were not yet held.
#[test]
fn executor_is_spawned_only_when_every_shard_acknowledged_once() {
    let (mut w, map) = worker(2);
    // Two keys on different shards.
    let keys: Vec<Vec<u8>> = (0..50u8).map(|i| vec![b'k', i]).collect();
    let a = keys.iter().find(|k| map.shard_for_index(k) == 0).unwrap().clone();
    let b = keys.iter().find(|k| map.shard_for_index(k) == 1).unwrap().clone();
    let declared = KeySets { eager_read_keys: vec![a, b], ..KeySets::default() };
    let request =
        Message::TransactionRequest { executable: vec![], keys: Box::new(declared), resubmission: None, tag: None };
    let (spawned, sent) = send(&mut w, EngineId::local("client"), request);
    assert_eq!((spawned, sent.len()), (0, 2));
    let acquired = Message::KvsLockAcquired { timestamp: 1 };
    let [shard0, shard1] = [map.all()[0].clone(), map.all()[1].clone()];
    assert_eq!(send(&mut w, shard0.clone(), acquired.clone()).0, 0);
    assert_eq!(send(&mut w, shard0, acquired.clone()).0, 0, "a duplicate acknowledgement must not count");
    assert_eq!(send(&mut w, EngineId::local("impostor"), acquired.clone()).0, 0, "nor one from a stranger");
    assert_eq!(send(&mut w, shard1, acquired).0, 1);
}

fn finished(timestamp: u64) -> Message {
    Message::ExecutorFinished(
        ExecutorFinished {
            timestamp,
            success: true,
            values_read: Vec::new(),
            values_written: Vec::new(),
            failure: None,
            gas_used: 0,
            diagnostics: Default::default(),
        }
        .into(),
    )
}

/// The watermarks sent, as `(timestamp, write)`, checked to go to every
/// shard alike.
fn watermarks(sent: &[Envelope<Message>], shards: &[EngineId]) -> Vec<(u64, bool)> {
    let per_shard: Vec<Vec<(u64, bool)>> = shards
        .iter()
        .map(|shard| {
            sent.iter()
                .filter(|e| &e.target == shard)
                .filter_map(|e| match e.payload {
                    Message::UpdateSeenAll { timestamp, write } => Some((timestamp, write)),
                    _ => None,
                })
                .collect()
        })
        .collect();
    assert!(per_shard.windows(2).all(|w| w[0] == w[1]), "{per_shard:?}");
    per_shard.into_iter().next().unwrap_or_default()
}

/// A shard collapses the versions below heard-all-reads: before, the worker
/// moved it with the locks, so a re-run executor (or one re-asking for a
/// lost read) could find its version gone. Heard-all-reads now waits for
/// every transaction up to it to finish; heard-all-writes still follows
/// the locks.
#[test]
fn the_read_watermark_does_not_pass_an_unfinished_transaction() {
    let (mut w, map) = worker(2);
    let shards = map.all().to_vec();
    let client = EngineId::local("client");
    let keys = KeySets { eager_read_keys: vec![b"k".to_vec()], ..KeySets::default() };
    let owner = map.shard_for(b"k").clone();
    for _ in 0..3 {
        let request = Message::TransactionRequest {
            executable: vec![],
            keys: Box::new(keys.clone()),
            resubmission: None,
            tag: None,
        };
        send(&mut w, client.clone(), request);
    }
    let exec = |ts| executor_id(&EngineId::local("worker"), ts);
    let (_, sent) = send(&mut w, owner.clone(), Message::KvsLockAcquired { timestamp: 2 });
    assert_eq!(watermarks(&sent, &shards), vec![]);
    let (_, sent) = send(&mut w, owner.clone(), Message::KvsLockAcquired { timestamp: 1 });
    assert_eq!(watermarks(&sent, &shards), vec![(2, true)], "nothing finished: no read watermark");
    let (_, sent) = send(&mut w, exec(2), finished(2));
    assert_eq!(watermarks(&sent, &shards), vec![], "1 is not finished");
    let (_, sent) = send(&mut w, exec(1), finished(1));
    assert_eq!(watermarks(&sent, &shards), vec![(2, false)], "1 and 2 finished");
    let (_, sent) = send(&mut w, exec(3), finished(3));
    assert_eq!(watermarks(&sent, &shards), vec![], "3 finished, but its locks are not all heard");
    let (_, sent) = send(&mut w, owner, Message::KvsLockAcquired { timestamp: 3 });
    assert_eq!(watermarks(&sent, &shards), vec![(3, true), (3, false)]);
    assert_eq!(w.env.local.watermark, 3);
    assert_eq!(w.env.local.read_watermark, 3);
}

/// The worker sets no timer; one elapsing anyway (a host bug, or a
/// misrouted trigger) is dropped and counted, as the shard counts its own.
/// It used to vanish uncounted.
#[test]
fn a_timer_the_worker_never_set_is_dropped_and_counted() {
    let (mut w, _) = worker(1);
    let effect = w.handle(Trigger::Elapsed { timers: vec![()], at: std::time::Duration::ZERO });
    assert!(effect.send.is_empty() && effect.spawn.is_empty());
    assert_eq!(w.env.local.dropped, 1);
}

/// A windowed worker orders at most its window of transactions not yet
/// finished: later requests wait without a timestamp, and each report
/// that frees the window orders the next one waiting, in arrival order,
/// after telling the shards the read watermark the report moved.
#[test]
fn a_windowed_worker_orders_requests_as_reports_free_the_window() {
    let map = HashShards::new(1);
    let config = WorkerConfig { shards: Arc::new(map.clone()), all_shards: map.all().to_vec() };
    let window = std::num::NonZeroU64::new(2).unwrap();
    let mut w = Worker::windowed(EngineId::local("worker"), config, window);
    let shard = map.all()[0].clone();
    let executor = |timestamp| executor_id(&EngineId::local("worker"), timestamp);
    let request = |n: u8| Message::TransactionRequest {
        executable: vec![n],
        keys: Box::new(KeySets { will_write_keys: vec![vec![b'k', n]], ..KeySets::default() }),
        resubmission: None,
        tag: None,
    };
    let locks = |sent: &[Envelope<Message>]| -> Vec<u64> {
        sent.iter()
            .filter_map(|e| match e.payload {
                Message::KvsAcquireLock { timestamp, .. } => Some(timestamp),
                _ => None,
            })
            .collect()
    };
    for n in 1..=5 {
        let (_, sent) = send(&mut w, EngineId::local(format!("client{n}")), request(n));
        assert_eq!(locks(&sent), if n <= 2 { vec![u64::from(n)] } else { vec![] }, "request {n}");
    }
    assert_eq!((w.env.local.next_timestamp(), w.env.local.queued()), (3, 3));
    for timestamp in 1..=2 {
        assert_eq!(send(&mut w, shard.clone(), Message::KvsLockAcquired { timestamp }).0, 1);
    }
    // A report for a timestamp not given yet is not one: nothing moves.
    let (_, sent) = send(&mut w, executor(3), finished(3));
    assert!(sent.is_empty() && w.env.local.queued() == 3, "{sent:?}");

    // Transaction 2 finishes first: the read watermark stays (1 has not
    // finished), and the third request gets timestamp 3.
    let (_, sent) = send(&mut w, executor(2), finished(2));
    assert_eq!(locks(&sent), vec![3]);
    assert!(watermarks(&sent, map.all()).is_empty(), "{sent:?}");
    let ordered = |w: &Instance<Worker>, ts: u64| w.env.local.transactions.get(&ts).map(|tx| tx.executable.clone());
    assert_eq!(ordered(&w, 3), Some(vec![3]));

    // Then 1: the read watermark moves to 2 first, then request 4 is
    // ordered; request 5 waits for the next report.
    let (_, sent) = send(&mut w, executor(1), finished(1));
    assert_eq!(watermarks(&sent, map.all()), vec![(2, false)]);
    let first_lock = sent.iter().position(|e| matches!(e.payload, Message::KvsAcquireLock { .. }));
    let last_watermark = sent.iter().rposition(|e| matches!(e.payload, Message::UpdateSeenAll { .. }));
    assert!(last_watermark < first_lock, "{sent:?}");
    assert_eq!(locks(&sent), vec![4]);
    assert_eq!((ordered(&w, 4), w.env.local.queued()), (Some(vec![4]), 1));
    let issuer = w.env.local.transactions.get(&4).map(|tx| tx.issuer.clone());
    assert_eq!(issuer, Some(EngineId::local("client4")));

    let (_, sent) = send(&mut w, executor(3), finished(3));
    assert_eq!((locks(&sent), w.env.local.queued()), (vec![5], 0));
}
