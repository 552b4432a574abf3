//! End to end: transfers through shards, the worker and executors, on the
//! concurrent harness, wasm guest against the native function in one run.
//!
//! Run: `cargo bench -p executor-host --bench e2e`. For each contention
//! level (many accounts, few accounts) and each program it prints
//! transactions per second, p50/p99 latency from submission to the
//! client receiving `ExecutorFinished` (every transaction is submitted at
//! once, so latency includes queueing), and peak heap.

// A benchmark over inputs it builds itself: a panic is a bug in it.
#![allow(clippy::indexing_slicing, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use executor_host::ExecutorOptions;
use executor_host::KeySets;
use executor_host::{Limits, NativeProgram, Program};
use executor_host::{Sandbox, SandboxConfig};
use executor_testkit::Rng;
use executor_testkit::harness::{self, Delivery, TxSpec, Workload};

/// Counts live heap bytes and remembers the peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: forwards to the system allocator unchanged, only counting.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn workload(transactions: usize, accounts: usize, shards: usize) -> Workload {
    let name = |i: usize| format!("acct{i}");
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    let mut next = |n: usize| rng.index(n);
    Workload {
        shards,
        initial: (0..accounts).map(|i| (name(i).into_bytes(), b"1000000".to_vec())).collect(),
        transactions: (0..transactions)
            .map(|_| {
                let (from, to) = (name(next(accounts)), name(next(accounts)));
                let keys = vec![from.clone().into_bytes(), to.clone().into_bytes()];
                TxSpec {
                    executable: format!(r#"{{"from":"{from}","to":"{to}","amount":1}}"#).into_bytes(),
                    keys: KeySets { eager_read_keys: keys.clone(), will_write_keys: keys, ..KeySets::default() },
                }
            })
            .collect(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn main() -> anyhow::Result<()> {
    const TRANSACTIONS: usize = 50_000;
    let sandbox = Sandbox::new(SandboxConfig::default())?;
    let wasm: Arc<dyn Program> = Arc::new(sandbox.load(&std::fs::read(guest_artifacts::TRANSFER)?)?);
    let native: Arc<dyn Program> = Arc::new(NativeProgram::<transfer_guest::TransferFunction>::new(Limits::default()));
    println!("{TRANSACTIONS} transfers, 2 shards, concurrent delivery, 2 executor threads");
    println!(
        "{:<28} {:>8} {:>10} {:>10} {:>10} {:>11}",
        "contention / program", "tx/s", "p50", "p99", "peak heap", "wasm/native"
    );
    for (label, accounts) in [("low (10,000 accounts)", 10_000), ("high (10 accounts)", 10)] {
        let workload = workload(TRANSACTIONS, accounts, 2);
        let mut rates = Vec::new();
        for (program_name, program) in [("native", &native), ("wasm", &wasm)] {
            let base = LIVE.load(Ordering::Relaxed);
            PEAK.store(base, Ordering::Relaxed);
            let start = Instant::now();
            let outcome = harness::execute(
                &workload,
                program.clone(),
                &ExecutorOptions::default(),
                Delivery::Concurrent { threads: 2 },
            )?;
            let elapsed = start.elapsed();
            assert_eq!(outcome.transactions.len(), TRANSACTIONS);
            let mut latencies = outcome.latencies.clone();
            latencies.sort();
            let rate = TRANSACTIONS as f64 / elapsed.as_secs_f64();
            rates.push(rate);
            let ratio = if rates.len() == 2 { format!("{:.2}x", rates[1] / rates[0]) } else { String::new() };
            println!(
                "{:<28} {:>8.0} {:>8.1}ms {:>8.1}ms {:>8.1}MB {:>11}",
                format!("{label} {program_name}"),
                rate,
                percentile(&latencies, 0.5).as_secs_f64() * 1e3,
                percentile(&latencies, 0.99).as_secs_f64() * 1e3,
                (PEAK.load(Ordering::Relaxed).saturating_sub(base)) as f64 / 1e6,
                ratio
            );
        }
    }
    Ok(())
}
