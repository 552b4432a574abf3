//! The embedding API on tokio: spawning, delivering, routing, timers,
//! bad input.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use executor_host::DropReason;
use executor_host::Failure;
use executor_host::Message;
use executor_host::Router;
use executor_host::engine::{EngineId, Envelope};
use executor_host::{Execution, ExecutorHost, HostConfig, Transaction};

use crate::scripted::{Op::*, *};
use crate::support;

/// A router that records every envelope.
#[derive(Default)]
struct Recorder(Mutex<Vec<Envelope<Message>>>);

impl Router<Message> for Recorder {
    fn route(&self, envelope: Envelope<Message>) {
        self.0.lock().unwrap().push(envelope);
    }
}

impl Recorder {
    fn take(&self) -> Vec<Envelope<Message>> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn host(execution: Execution) -> (ExecutorHost, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let config = HostConfig { execution, ..HostConfig::default() };
    (ExecutorHost::start(config, Arc::new(TwoShards::new()), recorder.clone()), recorder)
}

fn transfer_tx(timestamp: u64) -> Transaction {
    Transaction {
        timestamp,
        executable: support::transfer_exe("alice", "bob", 30),
        keys: keys(&[], &["alice", "bob"], &["alice", "bob"], &[]),
        worker: worker(),
        issuer: issuer(),
        program: Arc::new(support::transfer()),
    }
}

fn kvs_read(executor: &EngineId, timestamp: u64, key: &str, data: &str) -> Envelope<Message> {
    let data = Some(data.as_bytes().to_vec());
    Envelope::new(shard_of(key), executor.clone(), Message::KvsRead { timestamp, key: key.as_bytes().to_vec(), data })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_runs_wasm_transactions_on_its_pool_and_routes_their_messages() {
    let (host, recorder) = host(Execution::Pool { threads: std::num::NonZeroUsize::new(2) });
    let mut executors = Vec::new();
    for timestamp in 1..=20 {
        executors.push((timestamp, host.spawn(transfer_tx(timestamp)).await.unwrap()));
    }
    for (timestamp, id) in &executors {
        host.deliver(kvs_read(id, *timestamp, "alice", "100")).await.unwrap();
        host.deliver(kvs_read(id, *timestamp, "bob", "0")).await.unwrap();
    }
    // Wait for every transaction's two reports.
    for _ in 0..500 {
        host.idle().await.unwrap();
        if host.metrics().finished() == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(host.metrics().finished(), 20);
    assert_eq!(host.metrics().failed(), 0);
    let sent = recorder.take();
    for (timestamp, id) in &executors {
        let mine: Vec<&Envelope<Message>> = sent.iter().filter(|e| &e.sender == id).collect();
        let payloads: Vec<&Message> = mine.iter().map(|e| &e.payload).collect();
        assert_eq!(payloads.len(), 4, "{payloads:?}");
        assert_eq!(
            payloads[0],
            &Message::KvsWrite { timestamp: *timestamp, key: b"alice".to_vec(), datum: Some(b"70".to_vec()) }
        );
        assert_eq!(
            payloads[1],
            &Message::KvsWrite { timestamp: *timestamp, key: b"bob".to_vec(), datum: Some(b"30".to_vec()) }
        );
        assert!(payloads[2..].iter().all(|m| matches!(m, Message::ExecutorFinished(f) if f.success && f.gas_used > 0)));
    }
    assert!(host.metrics().gas_used() > 0);
}

#[tokio::test(start_paused = true)]
async fn deadline_timer_fails_a_stalled_transaction() {
    let (host, recorder) = host(Execution::Inline);
    let tx = Transaction {
        timestamp: TS,
        executable: script(&[&[Read("l".into())]]),
        keys: keys(&["l"], &[], &["w"], &[]),
        worker: worker(),
        issuer: issuer(),
        program: scripted(),
    };
    let id = host.spawn(tx).await.unwrap();
    host.idle().await.unwrap();
    assert_eq!(recorder.take().len(), 1, "the lazy request");
    tokio::time::sleep(Duration::from_secs(29)).await;
    host.idle().await.unwrap();
    assert!(recorder.take().is_empty());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    host.idle().await.unwrap();
    let sent = recorder.take();
    assert_eq!(sent.len(), 3, "release w, two reports: {sent:?}");
    assert!(sent.iter().all(|e| e.sender == id));
    assert!(sent.iter().any(|e| matches!(&e.payload,
        Message::ExecutorFinished(f) if f.failure == Some(Failure::Deadline { bound_ms: 30_000 }))));
    assert_eq!(host.metrics().failures_by_reason().get("deadline"), Some(&1));

    // After the linger period the executor is gone; a late read is counted
    // as addressed to no one.
    host.deliver(kvs_read(&id, TS, "l", "x")).await.unwrap();
    host.idle().await.unwrap();
    assert_eq!(host.metrics().dropped(DropReason::AfterFinish), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    host.idle().await.unwrap();
    assert_eq!(host.runtime_metrics().engines(), 0);
    host.deliver(kvs_read(&id, TS, "l", "x")).await.unwrap();
    host.idle().await.unwrap();
    assert_eq!(host.runtime_metrics().unknown_target(), 1);
    assert!(recorder.take().is_empty());
}

#[tokio::test(start_paused = true)]
async fn messages_for_unknown_executors_are_dropped_and_counted() {
    let (host, recorder) = host(Execution::Inline);
    host.deliver(kvs_read(&EngineId::local("nobody"), 1, "a", "1")).await.unwrap();
    host.idle().await.unwrap();
    assert_eq!(host.runtime_metrics().unknown_target(), 1);
    assert!(recorder.take().is_empty());
}
