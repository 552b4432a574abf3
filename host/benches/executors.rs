//! The executor engine's own costs, with the native transfer function (no
//! wasm): memory per waiting executor with 100k and with 1M in flight, and
//! the per-transaction overhead of the engine and its tokio node.
//!
//! Run: `cargo bench -p executor-host --bench executors`.

// A benchmark over fixed inputs it builds itself: a panic is a bug in it.
#![allow(clippy::indexing_slicing, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use executor_host::Router;
use executor_host::ShardMap;
use executor_host::{EngineId, Envelope};
use executor_host::{ExecutorHost, HostConfig, Transaction};
use executor_host::{KeySets, Message};
use executor_host::{Limits, NativeProgram, Program};
use tokio::sync::Notify;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Debug)]
struct OneShard(EngineId);

impl ShardMap for OneShard {
    fn shard_for(&self, _: &[u8]) -> &EngineId {
        &self.0
    }
}

/// Counts finished transactions.
#[derive(Default)]
struct Finished {
    count: AtomicU64,
    notify: Notify,
}

impl Router<Message> for Finished {
    fn route(&self, envelope: Envelope<Message>) {
        if matches!(envelope.payload, Message::ExecutorFinished(_)) {
            self.count.fetch_add(1, Ordering::Relaxed);
            self.notify.notify_one();
        }
    }
}

fn transfer(program: &Arc<dyn Program>, timestamp: u64) -> Transaction {
    let accounts =
        vec![format!("acct{}", timestamp % 1000).into_bytes(), format!("acct{}", (timestamp + 1) % 1000).into_bytes()];
    let executable =
        format!(r#"{{"from":"acct{}","to":"acct{}","amount":1}}"#, timestamp % 1000, (timestamp + 1) % 1000)
            .into_bytes();
    Transaction {
        timestamp,
        executable,
        keys: KeySets { eager_read_keys: accounts.clone(), will_write_keys: accounts, ..KeySets::default() },
        worker: EngineId::local("worker"),
        issuer: EngineId::local("worker"),
        program: program.clone(),
    }
}

fn read(executor: &EngineId, timestamp: u64, key: Vec<u8>) -> Envelope<Message> {
    Envelope::new(
        EngineId::local("shard"),
        executor.clone(),
        Message::KvsRead { timestamp, key, data: Some(b"1000".to_vec()) },
    )
}

/// Spawns `count` transfers on a fresh host, none of which has its reads
/// yet, and prints what each costs in memory.
async fn waiting(program: &Arc<dyn Program>, count: u64) -> anyhow::Result<()> {
    let router = Arc::new(Finished::default());
    let host = ExecutorHost::start(HostConfig::default(), Arc::new(OneShard(EngineId::local("shard"))), router);
    let txs: Vec<Transaction> = (1..=count).map(|t| transfer(program, t)).collect();
    let tx_bytes: usize =
        txs.iter().map(|t| t.executable.len() + t.keys.eager_read_keys.iter().map(Vec::len).sum::<usize>() * 2).sum();
    host.idle().await?;
    let before = LIVE.load(Ordering::Relaxed);
    let mut ids = Vec::with_capacity(count as usize);
    for tx in txs {
        ids.push(host.spawn(tx).await?);
    }
    host.idle().await?;
    let ids_bytes =
        ids.capacity() * std::mem::size_of::<EngineId>() + ids.iter().map(|id| id.name.len()).sum::<usize>();
    let after = LIVE.load(Ordering::Relaxed);
    let per = after.saturating_sub(before).saturating_sub(ids_bytes) as f64 / count as f64;
    let payload = tx_bytes as f64 / count as f64;
    println!(
        "{count} waiting executors: {per:.0} bytes each, of which {payload:.0} are the transaction's own executable and keys; {:.0} bytes of engine overhead",
        per - payload
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let program: Arc<dyn Program> = Arc::new(NativeProgram::<transfer_guest::TransferFunction>::new(Limits::default()));
    for count in [100_000, 1_000_000] {
        waiting(&program, count).await?;
        // Let the host just dropped finish freeing before the next count.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let router = Arc::new(Finished::default());
    let host = ExecutorHost::start(HostConfig::default(), Arc::new(OneShard(EngineId::local("shard"))), router.clone());

    // 100k executors waiting for their reads, then finished.
    const IN_FLIGHT: u64 = 100_000;
    let mut ids = Vec::with_capacity(IN_FLIGHT as usize);
    for tx in (1..=IN_FLIGHT).map(|t| transfer(&program, t)) {
        ids.push((tx.timestamp, tx.keys.eager_read_keys.clone(), host.spawn(tx).await?));
    }
    host.idle().await?;

    // Finish them: two reads each.
    let start = Instant::now();
    for (timestamp, keys, id) in &ids {
        for key in keys {
            host.deliver(read(id, *timestamp, key.clone())).await?;
        }
    }
    while router.count.load(Ordering::Relaxed) < IN_FLIGHT {
        router.notify.notified().await;
    }
    let elapsed = start.elapsed();
    println!(
        "finishing them: {:.2} µs per transaction ({:.0} tx/s), 2 reads + 2 steps each",
        elapsed.as_secs_f64() * 1e6 / IN_FLIGHT as f64,
        IN_FLIGHT as f64 / elapsed.as_secs_f64()
    );

    // Whole transactions, spawn to finish, in batches of 1000 in flight.
    const TOTAL: u64 = 100_000;
    let base = router.count.load(Ordering::Relaxed);
    let start = Instant::now();
    for batch in 0..TOTAL / 1000 {
        let mut spawned = Vec::with_capacity(1000);
        for n in 0..1000 {
            let tx = transfer(&program, IN_FLIGHT + 1 + batch * 1000 + n);
            let keys = tx.keys.eager_read_keys.clone();
            let ts = tx.timestamp;
            spawned.push((ts, keys, host.spawn(tx).await?));
        }
        for (ts, keys, id) in &spawned {
            for key in keys {
                host.deliver(read(id, *ts, key.clone())).await?;
            }
        }
    }
    while router.count.load(Ordering::Relaxed) < base + TOTAL {
        router.notify.notified().await;
    }
    let elapsed = start.elapsed();
    let native_fn = {
        let t = transfer(&program, 1);
        let start = Instant::now();
        for _ in 0..100_000 {
            let mut state = None;
            // As the executor runs it: the first step on the first read.
            for input in [
                Some(executor_host::Input { key: t.keys.eager_read_keys[0].clone(), datum: Some(b"1000".to_vec()) }),
                Some(executor_host::Input { key: t.keys.eager_read_keys[1].clone(), datum: Some(b"1000".to_vec()) }),
            ] {
                let out = program.step(executor_host::StepCall {
                    executable: &t.executable,
                    state: state.as_deref(),
                    input: input.as_ref(),
                    gas_limit: 0,
                });
                state = out.result.ok().map(|o| o.state);
            }
        }
        start.elapsed().as_secs_f64() * 1e6 / 100_000.0
    };
    let per_tx = elapsed.as_secs_f64() * 1e6 / TOTAL as f64;
    println!(
        "spawn to finish: {per_tx:.2} µs per transaction ({:.0} tx/s); the function itself takes {native_fn:.2} µs, so the engine adds {:.2} µs",
        TOTAL as f64 / elapsed.as_secs_f64(),
        per_tx - native_fn
    );
    Ok(())
}
