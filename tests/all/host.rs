//! The embedding API on tokio: spawning, delivering, routing, timers,
//! bad input.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use executor_host::DropReason;
use executor_host::Message;
use executor_host::engine::{EngineId, Envelope};
use executor_host::{Execution, ExecutorHost, HostConfig, Transaction};
use executor_host::{ExecutorFinished, Failure};

use crate::scripted::{Op::*, *};
use crate::support;

type Recorder = support::Recorder<Message>;

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
    tokio::time::sleep(Duration::from_millis(1050)).await;
    host.idle().await.unwrap();
    let sent = recorder.take();
    assert_eq!(sent.len(), 4, "release l (asked for, never answered) and w, two reports: {sent:?}");
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

/// A program whose first step waits at a gate the test opens, so the
/// executor stays busy while mail piles up; it halts after `reads` values.
#[derive(Debug)]
struct Gated {
    gate: Mutex<std::sync::mpsc::Receiver<()>>,
    reads: usize,
}

impl executor_host::Program for Gated {
    fn step(&self, call: executor_host::StepCall<'_>) -> executor_host::StepReport {
        let seen = call.state.map_or(0, |s| s.len()) + 1;
        if seen == 1 {
            let _ = self.gate.lock().unwrap().recv();
        }
        let output =
            executor_host::StepOutput { state: vec![0; seen], requests: Vec::new(), halted: seen == self.reads };
        executor_host::StepReport { result: Ok(output), gas_used: 0, log: Default::default() }
    }
}

async fn finished_reports(
    host: &ExecutorHost,
    recorder: &Recorder,
    count: u64,
) -> Vec<executor_host::ExecutorFinished> {
    for _ in 0..1000 {
        host.idle().await.unwrap();
        if host.metrics().finished() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    recorder
        .take()
        .into_iter()
        .filter(|e| e.target == worker())
        .filter_map(|e| match e.payload {
            Message::ExecutorFinished(f) => Some(ExecutorFinished::clone(&f)),
            _ => None,
        })
        .collect()
}

/// Before the fix a full mailbox dropped a shard's `KvsRead` (the shard
/// never resends it: the transaction stalled until its deadline), and
/// anyone could fill the mailbox with junk while a guest call ran. Junk is
/// now dropped on arrival and an owning shard's read never is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_cannot_crowd_out_a_shards_reads() {
    let recorder = Arc::new(Recorder::default());
    let config = HostConfig {
        execution: Execution::Pool { threads: std::num::NonZeroUsize::new(1) },
        mailbox: std::num::NonZeroUsize::new(2).unwrap(),
        ..HostConfig::default()
    };
    let host = ExecutorHost::start(config, Arc::new(TwoShards::new()), recorder.clone());
    let (open, gate) = std::sync::mpsc::channel();
    let names: Vec<String> = (0..20).map(|i| format!("k{i:02}")).collect();
    let eager: Vec<&str> = names.iter().map(String::as_str).collect();
    let tx = Transaction {
        timestamp: TS,
        executable: Vec::new(),
        keys: keys(&[], &eager, &[], &[]),
        worker: worker(),
        issuer: issuer(),
        program: Arc::new(Gated { gate: Mutex::new(gate), reads: names.len() }),
    };
    let id = host.spawn(tx).await.unwrap();
    // The first read starts the gated step; then junk and the other reads.
    host.deliver(kvs_read(&id, TS, &names[0], "1")).await.unwrap();
    for name in &names[1..] {
        for junk in 0..10 {
            host.deliver(kvs_read(&id, TS + 1 + junk, name, "junk")).await.unwrap();
        }
        host.deliver(kvs_read(&id, TS, name, "1")).await.unwrap();
    }
    open.send(()).unwrap();
    let reports = finished_reports(&host, &recorder, 1).await;
    assert_eq!(reports.len(), 1);
    assert!(reports[0].success, "{:?}", reports[0].failure);
    assert_eq!(reports[0].values_read.len(), names.len());
    assert_eq!(host.metrics().dropped(DropReason::WrongTimestamp), 190);
    assert_eq!(host.runtime_metrics().mailbox_full(), 0);
}

/// A program that panics fails its transaction, with every lock
/// released, and the host goes on serving (before: the pool thread died
/// with the executor, whose locks dangled, and `idle` hung).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_program_fails_its_transaction_not_the_host() {
    #[derive(Debug)]
    struct Panics;
    impl executor_host::Program for Panics {
        fn step(&self, _: executor_host::StepCall<'_>) -> executor_host::StepReport {
            panic!("boom")
        }
    }
    let (host, recorder) = host(Execution::Pool { threads: std::num::NonZeroUsize::new(1) });
    let tx = Transaction { program: Arc::new(Panics), keys: keys(&["l"], &[], &["w"], &[]), ..transfer_tx(1) };
    host.spawn(tx).await.unwrap();
    let reports = finished_reports(&host, &recorder, 1).await;
    assert_eq!(reports.len(), 1);
    let Some(Failure::Host { message }) = &reports[0].failure else { panic!("{:?}", reports[0].failure) };
    assert!(message.contains("panicked: boom"), "{message}");
    // The host serves the next transaction.
    let id = host.spawn(transfer_tx(2)).await.unwrap();
    host.deliver(kvs_read(&id, 2, "alice", "100")).await.unwrap();
    host.deliver(kvs_read(&id, 2, "bob", "0")).await.unwrap();
    let reports = finished_reports(&host, &recorder, 2).await;
    assert!(reports.iter().any(|r| r.timestamp == 2 && r.success), "{reports:?}");
}

/// Spawning an executor whose id is hosted already used to replace it
/// silently: the old one's timers then fired on the newcomer. It is
/// refused and counted; the running executor carries on.
#[tokio::test(start_paused = true)]
async fn a_duplicate_spawn_is_refused_and_the_first_executor_carries_on() {
    let (host, recorder) = host(Execution::Inline);
    let id = host.spawn(transfer_tx(1)).await.unwrap();
    host.deliver(kvs_read(&id, 1, "alice", "100")).await.unwrap();
    assert_eq!(host.spawn(transfer_tx(1)).await.unwrap(), id);
    host.idle().await.unwrap();
    assert_eq!(host.runtime_metrics().duplicate_spawns(), 1);
    host.deliver(kvs_read(&id, 1, "bob", "0")).await.unwrap();
    let reports = finished_reports(&host, &recorder, 1).await;
    assert_eq!(reports.len(), 1);
    assert!(reports[0].success, "{:?}", reports[0].failure);
    assert_eq!(reports[0].values_read.len(), 2, "the first executor kept its first read");
}

/// `try_spawn` on a full inbox says so (before, it said "stopped", and a
/// synchronous spawner took the executor for lost).
#[tokio::test(flavor = "current_thread")]
async fn try_spawn_on_a_full_inbox_says_full() {
    let recorder = Arc::new(Recorder::default());
    let config = HostConfig {
        inbox: executor_host::Inbox::Bounded(std::num::NonZeroUsize::new(1).unwrap()),
        execution: Execution::Inline,
        ..HostConfig::default()
    };
    let host = ExecutorHost::start(config, Arc::new(TwoShards::new()), recorder.clone());
    // The runtime task does not run until this test awaits.
    assert!(host.try_spawn(transfer_tx(1)).is_ok());
    assert_eq!(host.try_spawn(transfer_tx(2)).unwrap_err(), executor_host::Refused::Full);
    host.idle().await.unwrap();
    assert!(host.try_spawn(transfer_tx(2)).is_ok());
}
