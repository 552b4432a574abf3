//! End to end: transfers through shards, the worker and executors, on the
//! concurrent harness (one executor host per thread, guest calls inline,
//! mimalloc as the `executor-host` binary uses it), wasm guest against the
//! native function in one run.
//!
//! Run: `cargo bench -p executor-testkit --bench e2e`. For each
//! contention level (many accounts, few accounts) and each program it
//! prints transactions per second, p50/p99 latency from submission to the
//! client receiving `ExecutorFinished` (every transaction is submitted at
//! once, so latency includes queueing), CPU time and heap allocations per
//! transaction, and peak heap; then the same transfers in a plain serial
//! loop over a `HashMap` (parse the executable, read both balances, write
//! both back) and the ratios; then an open-loop run at half the measured
//! native rate with p50/p99/p999 latency. `E2E_TRANSACTIONS` sets the
//! count (default 50,000).

// A benchmark over inputs it builds itself: a panic is a bug in it.
#![allow(clippy::indexing_slicing, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use executor_host::ExecutorOptions;
use executor_host::{Limits, NativeProgram, Program};
use executor_host::{Sandbox, SandboxConfig};
use executor_testkit::harness::{self, Delivery, Workload};

#[global_allocator]
// The allocator the `executor-host` binary uses (see src/main.rs), counted.
static ALLOCATOR: executor_testkit::heap::Counting<mimalloc::MiMalloc> =
    executor_testkit::heap::Counting(mimalloc::MiMalloc);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

/// CPU time (user + system) this process has used, from `/proc`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and
    // stime are the 12th and 13th, in clock ticks (100 per second here).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // After the name: state is field 0, utime 11, stime 12.
    let ticks = field(11) + field(12);
    Duration::from_millis(ticks * 10)
}

#[derive(serde::Deserialize)]
struct Transfer {
    from: String,
    to: String,
    amount: u64,
}

/// The same transfers with none of the engine: parse, read both balances
/// from a map, write both back. The floor the engine path is compared to.
fn serial(workload: &Workload) -> (f64, usize) {
    let mut state: std::collections::HashMap<Vec<u8>, Vec<u8>> =
        workload.initial.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let start = Instant::now();
    let mut succeeded = 0;
    for tx in &workload.transactions {
        let Ok(t) = serde_json::from_slice::<Transfer>(&tx.executable) else { continue };
        let balance = |state: &std::collections::HashMap<Vec<u8>, Vec<u8>>, key: &str| {
            example_decimal::decode(state.get(key.as_bytes()).map(Vec::as_slice)).unwrap_or(0)
        };
        let (from, to) = (balance(&state, &t.from), balance(&state, &t.to));
        if from < t.amount || t.from == t.to {
            continue;
        }
        state.insert(t.from.into_bytes(), example_decimal::encode(from - t.amount));
        state.insert(t.to.into_bytes(), example_decimal::encode(to + t.amount));
        succeeded += 1;
    }
    (workload.transactions.len() as f64 / start.elapsed().as_secs_f64(), succeeded)
}

fn main() -> anyhow::Result<()> {
    let transactions: usize = std::env::var("E2E_TRANSACTIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(50_000);
    let sandbox = Sandbox::new(SandboxConfig::default())?;
    let wasm: Arc<dyn Program> = Arc::new(sandbox.load(&std::fs::read(guest_artifacts::TRANSFER)?)?);
    let native: Arc<dyn Program> = Arc::new(NativeProgram::<transfer_guest::TransferFunction>::new(Limits::default()));
    println!("{transactions} transfers, 2 shards, concurrent delivery, 2 threads, all submitted at once");
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10} {:>12}",
        "contention / program", "tx/s", "p50", "p99", "CPU/tx", "allocs/tx", "peak heap", "ratio"
    );
    let mut native_rate = 0.0;
    for (label, accounts) in [("low (10,000 accounts)", 10_000), ("high (10 accounts)", 10)] {
        let workload = harness::uniform_transfers(transactions, accounts, 2);
        let mut rates = Vec::new();
        for (program_name, program) in [("native", &native), ("wasm", &wasm)] {
            let base = executor_testkit::heap::live();
            executor_testkit::heap::reset_peak();
            let allocations = executor_testkit::heap::allocations();
            let cpu = cpu_time();
            let start = Instant::now();
            let outcome = harness::execute(
                &workload,
                program.clone(),
                &ExecutorOptions::default(),
                Delivery::Concurrent { threads: 2 },
            )?;
            let elapsed = start.elapsed();
            let cpu = cpu_time().saturating_sub(cpu);
            let allocations = executor_testkit::heap::allocations() - allocations;
            assert_eq!(outcome.transactions.len(), transactions);
            assert_eq!(outcome.pending_markers, 0);
            let mut latencies = outcome.latencies.clone();
            latencies.sort();
            let rate = transactions as f64 / elapsed.as_secs_f64();
            rates.push(rate);
            if accounts == 10_000 && program_name == "native" {
                native_rate = rate;
            }
            let ratio = if rates.len() == 2 { format!("wasm {:.2}x", rates[1] / rates[0]) } else { String::new() };
            println!(
                "{:<26} {:>9.0} {:>7.1}ms {:>7.1}ms {:>8.1}us {:>10.1} {:>8.1}MB {:>12}",
                format!("{label} {program_name}"),
                rate,
                percentile(&latencies, 0.5).as_secs_f64() * 1e3,
                percentile(&latencies, 0.99).as_secs_f64() * 1e3,
                cpu.as_secs_f64() * 1e6 / transactions as f64,
                allocations as f64 / transactions as f64,
                (executor_testkit::heap::peak().saturating_sub(base)) as f64 / 1e6,
                ratio
            );
        }
        let (serial_rate, _) = serial(&workload);
        println!(
            "{:<26} {:>9.0} {:>41} {:>12}",
            format!("{label} serial loop"),
            serial_rate,
            "",
            format!("e2e {:.4}x", rates[0] / serial_rate)
        );
    }
    // Open loop at half the native rate measured above.
    let workload = harness::uniform_transfers(transactions, 10_000, 2);
    let per_second = (native_rate / 2.0).max(1.0) as u32;
    println!("\nopen loop, low contention, {per_second} tx/s offered (half the native rate above)");
    println!("{:<26} {:>9} {:>9} {:>9} {:>9}", "program", "tx/s", "p50", "p99", "p999");
    for (program_name, program) in [("native", &native), ("wasm", &wasm)] {
        let start = Instant::now();
        let outcome = harness::execute(
            &workload,
            program.clone(),
            &ExecutorOptions::default(),
            Delivery::OpenLoop { threads: 2, per_second },
        )?;
        let rate = transactions as f64 / start.elapsed().as_secs_f64();
        let mut latencies = outcome.latencies.clone();
        latencies.sort();
        println!(
            "{:<26} {:>9.0} {:>7.2}ms {:>7.2}ms {:>7.2}ms",
            program_name,
            rate,
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            percentile(&latencies, 0.999).as_secs_f64() * 1e3,
        );
    }
    Ok(())
}
