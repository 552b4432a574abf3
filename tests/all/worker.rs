//! The mempool worker, message by message.

use std::sync::Arc;

use executor_host::engine::{Instance, Trigger};
use executor_host::{EngineId, Envelope, KeySets, Message};
use executor_testkit::harness::HashShards;
use executor_testkit::worker::{Worker, WorkerConfig};

fn worker(shards: usize) -> (Instance<Worker>, HashShards) {
    let map = HashShards::new(shards);
    let config = WorkerConfig { shards: Arc::new(map.clone()), all_shards: map.all().to_vec() };
    (Worker::instance(EngineId::local("worker"), config), map)
}

fn send(worker: &mut Instance<Worker>, sender: EngineId, payload: Message) -> (usize, Vec<Envelope<Message>>) {
    let envelope = Envelope::new(sender, worker.id.clone(), payload);
    let effect = worker.handle(&Trigger::Message { envelope, at: std::time::Duration::ZERO });
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
    let request = Message::TransactionRequest { executable: vec![], keys: declared, resubmission: None };
    let (spawned, sent) = send(&mut w, EngineId::local("client"), request);
    assert_eq!((spawned, sent.len()), (0, 2));
    let acquired = Message::KvsLockAcquired { timestamp: 1 };
    let [shard0, shard1] = [map.all()[0].clone(), map.all()[1].clone()];
    assert_eq!(send(&mut w, shard0.clone(), acquired.clone()).0, 0);
    assert_eq!(send(&mut w, shard0, acquired.clone()).0, 0, "a duplicate acknowledgement must not count");
    assert_eq!(send(&mut w, EngineId::local("impostor"), acquired.clone()).0, 0, "nor one from a stranger");
    assert_eq!(send(&mut w, shard1, acquired).0, 1);
}
