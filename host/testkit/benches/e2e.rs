//! End to end: transfers through shards, the worker and executors, on the
//! concurrent harness (one executor host per thread, guest calls inline,
//! mimalloc as the `executor-host` binary uses it), wasm guest against the
//! native function in one run.
//!
//! Run: `cargo bench -p executor-testkit --bench e2e`. For each
//! contention level (many accounts, few accounts) and each program it
//! prints transactions per second, p50/p99 latency from submission to the
//! client receiving `ExecutorFinished` (every transaction is submitted at
//! once, so latency includes queueing; the worker orders at most
//! [`worker::DEFAULT_WINDOW`] of them not yet finished and queues the
//! rest, as a node's mempool does), CPU time and heap allocations per
//! transaction, and peak heap; then the same transfers in a plain serial
//! loop over a `HashMap` (parse the executable, read both balances, write
//! both back) and the ratios; then the same in a closed loop, 1,000
//! transactions in flight at a time (so the working set fits the caches,
//! as a node that bounds its in-flight transactions has it); then an
//! open-loop run, each program offered half its own measured rate, with p50/p99/p999
//! latency. `E2E_TRANSACTIONS` sets the
//! count (default 50,000).

// A benchmark over inputs it builds itself: a panic is a bug in it.
#![allow(clippy::indexing_slicing, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use executor_host::ExecutorOptions;
use executor_host::{Limits, NativeProgram, Program};
use executor_host::{Sandbox, SandboxConfig};
use executor_testkit::harness::{self, Delivery, Workload};
use executor_testkit::worker;

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

/// One run's measurements.
struct Run {
    rate: f64,
    latencies: Vec<Duration>,
    /// Per transaction.
    cpu: Duration,
    /// Per transaction.
    allocations: f64,
    peak_heap: usize,
}

/// Runs `workload` on `program` under `delivery` and measures it.
fn run(workload: &Workload, program: &Arc<dyn Program>, delivery: Delivery) -> anyhow::Result<Run> {
    let transactions = workload.transactions.len();
    let base = executor_testkit::heap::live();
    executor_testkit::heap::reset_peak();
    let allocations = executor_testkit::heap::allocations();
    let cpu = cpu_time();
    let start = Instant::now();
    let outcome = harness::execute(workload, program.clone(), &ExecutorOptions::default(), delivery)?;
    let elapsed = start.elapsed();
    let cpu = cpu_time().saturating_sub(cpu);
    let allocations = executor_testkit::heap::allocations() - allocations;
    assert_eq!(outcome.transactions.len(), transactions);
    assert_eq!(outcome.pending_markers, 0);
    let mut latencies = outcome.latencies;
    latencies.sort();
    Ok(Run {
        rate: transactions as f64 / elapsed.as_secs_f64(),
        latencies,
        cpu: cpu / u32::try_from(transactions.max(1))?,
        allocations: allocations as f64 / transactions.max(1) as f64,
        peak_heap: executor_testkit::heap::peak().saturating_sub(base),
    })
}

/// Prints a table of native and wasm runs under `delivery`, at both
/// contention levels; returns the low-contention rates, native and wasm.
fn table(
    title: &str,
    transactions: usize,
    native: &Arc<dyn Program>,
    wasm: &Arc<dyn Program>,
    delivery: Delivery,
    with_serial: bool,
) -> anyhow::Result<[f64; 2]> {
    println!("{title}");
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10} {:>12}",
        "contention / program", "tx/s", "p50", "p99", "CPU/tx", "allocs/tx", "peak heap", "ratio"
    );
    let mut low = [0.0; 2];
    for (label, accounts) in [("low (10,000 accounts)", 10_000), ("high (10 accounts)", 10)] {
        let workload = harness::uniform_transfers(transactions, accounts, 2);
        let mut rates = Vec::new();
        for (index, (program_name, program)) in [("native", native), ("wasm", wasm)].into_iter().enumerate() {
            let result = run(&workload, program, delivery)?;
            rates.push(result.rate);
            if accounts == 10_000 {
                low[index] = result.rate;
            }
            let ratio = if rates.len() == 2 { format!("wasm {:.2}x", rates[1] / rates[0]) } else { String::new() };
            println!(
                "{:<26} {:>9.0} {:>7.1}ms {:>7.1}ms {:>8.1}us {:>10.1} {:>8.1}MB {:>12}",
                format!("{label} {program_name}"),
                result.rate,
                percentile(&result.latencies, 0.5).as_secs_f64() * 1e3,
                percentile(&result.latencies, 0.99).as_secs_f64() * 1e3,
                result.cpu.as_secs_f64() * 1e6,
                result.allocations,
                result.peak_heap as f64 / 1e6,
                ratio
            );
        }
        if with_serial {
            let (serial_rate, _) = serial(&workload);
            println!(
                "{:<26} {:>9.0} {:>41} {:>12}",
                format!("{label} serial loop"),
                serial_rate,
                "",
                format!("e2e {:.4}x", rates[0] / serial_rate)
            );
        }
    }
    Ok(low)
}

fn main() -> anyhow::Result<()> {
    let transactions: usize = std::env::var("E2E_TRANSACTIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(50_000);
    let sandbox = Sandbox::new(SandboxConfig::default())?;
    let wasm: Arc<dyn Program> = Arc::new(sandbox.load(&std::fs::read(guest_artifacts::TRANSFER)?)?);
    let native: Arc<dyn Program> = Arc::new(NativeProgram::<transfer_guest::TransferFunction>::new(Limits::default()));
    let low = table(
        &format!(
            "{transactions} transfers, 2 shards, concurrent delivery, 2 threads, all submitted at once \
             (the worker orders {} ahead of the finished)",
            worker::DEFAULT_WINDOW
        ),
        transactions,
        &native,
        &wasm,
        Delivery::Concurrent { threads: 2 },
        true,
    )?;
    // A node bounds what it has in flight (`run` does, with `--in-flight`):
    // the same work with a working set that fits the caches.
    println!();
    table(
        &format!("closed loop: the same {transactions} transfers, {CLOSED_LOOP_IN_FLIGHT} in flight at a time"),
        transactions,
        &native,
        &wasm,
        Delivery::ClosedLoop { threads: 2, in_flight: CLOSED_LOOP_IN_FLIGHT },
        false,
    )?;
    // Open loop: each program offered half its own rate measured above
    // (the load a latency target is stated at).
    let workload = harness::uniform_transfers(transactions, 10_000, 2);
    println!("\nopen loop, low contention, each program offered half its rate above");
    println!("{:<26} {:>9} {:>9} {:>9} {:>9} {:>9}", "program", "offered", "tx/s", "p50", "p99", "p999");
    for (program_name, program, rate) in [("native", &native, low[0]), ("wasm", &wasm, low[1])] {
        let per_second = (rate / 2.0).max(1.0) as u32;
        let result = run(&workload, program, Delivery::OpenLoop { threads: 2, per_second })?;
        let latencies = &result.latencies;
        println!(
            "{:<26} {:>9} {:>9.0} {:>7.2}ms {:>7.2}ms {:>7.2}ms",
            program_name,
            per_second,
            result.rate,
            percentile(latencies, 0.5).as_secs_f64() * 1e3,
            percentile(latencies, 0.99).as_secs_f64() * 1e3,
            percentile(latencies, 0.999).as_secs_f64() * 1e3,
        );
    }
    Ok(())
}

/// Transactions in flight in the closed-loop table.
const CLOSED_LOOP_IN_FLIGHT: usize = 1_000;
