//! Across processes against in process: the same transfers through a NATS
//! deployment on loopback (`nats-server`, 2 shard processes, the worker, 2
//! executor-host processes, the client in this process) and through the
//! in-process concurrent harness, in one run.
//!
//! Run: `cargo bench --bench cluster`. Prints, for each: transactions per
//! second, p50/p99 latency from submission to the client receiving
//! `ExecutorFinished` (every transaction submitted at once, so latency
//! includes queueing), and the ratio; then the CPU time each process of
//! the deployment used per transaction (what dominates). `CLUSTER_TRANSACTIONS`
//! sets the count (default 20,000).

// A benchmark over inputs it builds itself: a panic is a bug in it.
#![allow(clippy::indexing_slicing, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use executor_host::{ExecutorOptions, Limits, NativeProgram, Program};
use executor_nats::local::{NatsServer, ServeProcess};
use executor_nats::{Link, NatsConfig, Patience};
use executor_testkit::harness::{self, Delivery, Outcome};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

/// CPU time (user + system) process `pid` has used so far, from `/proc`.
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11..13).map_or(0, |f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum());
    Duration::from_millis(ticks * 10)
}

fn line(what: &str, outcome: &Outcome, elapsed: Duration) -> f64 {
    let mut latencies = outcome.latencies.clone();
    latencies.sort();
    let rate = outcome.transactions.len() as f64 / elapsed.as_secs_f64();
    println!(
        "{what:<28} {rate:>10.0} tx/s   p50 {:>9.1?}   p99 {:>9.1?}   failed {}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        outcome.transactions.iter().filter(|t| !t.finished.success).count()
    );
    rate
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let count = std::env::var("CLUSTER_TRANSACTIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let workload = harness::uniform_transfers(count, 10_000, 2);
    println!("{count} transfers over 10,000 accounts, 2 shards, native transfer function\n");

    let program: Arc<dyn Program> = Arc::new(NativeProgram::<transfer_guest::TransferFunction>::new(Limits::default()));
    let started = Instant::now();
    let local = harness::execute(&workload, program, &ExecutorOptions::default(), Delivery::Concurrent { threads: 2 })
        .expect("in-process run");
    let in_process = line("in process (harness)", &local, started.elapsed());

    let server = match NatsServer::start(None) {
        Ok(server) => server,
        Err(error) => {
            println!("across processes: skipped ({error})");
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!("cluster-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("scenario.json");
    std::fs::write(&scenario, executor_testkit::scenario::scenario_json(&workload).to_string()).unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_executor-host"));
    let url = server.url();
    let common = ["--nats", url.as_str(), "--shards", "2"];
    let start = |role: &[&str]| ServeProcess::start(binary, &[role, &common].concat(), &[]).unwrap();
    let scenario = scenario.to_str().unwrap();
    let processes = [
        ("worker", start(&["worker"])),
        ("shard 0", start(&["shard", "--id", "0", "--scenario", scenario])),
        ("shard 1", start(&["shard", "--id", "1", "--scenario", scenario])),
        ("executor host 0", start(&["executor", "--native", "transfer"])),
        ("executor host 1", start(&["executor", "--native", "transfer"])),
    ];
    let mut pids: Vec<(&str, String)> = processes.iter().map(|(n, p)| (*n, p.pid().to_string())).collect();
    pids.push(("nats-server", server.pid().unwrap().to_string()));
    pids.push(("client (this process)", "self".into()));
    let before: Vec<Duration> = pids.iter().map(|(_, pid)| cpu_time(pid)).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let started = Instant::now();
    let remote = runtime.block_on(async {
        let link = Link::connect(&NatsConfig { url: url.clone(), ..NatsConfig::default() }).await.unwrap();
        executor_nats::submit(&link, &workload, Patience::default()).await.expect("run across processes")
    });
    let elapsed = started.elapsed();
    let across = line("across processes (NATS)", &remote, elapsed);
    println!("\nratio across / in process: {:.3}", across / in_process);
    assert_eq!(remote.final_state, local.final_state, "the two runs disagree");

    println!("\nCPU per transaction, by process (wall {:.2} s):", elapsed.as_secs_f64());
    let mut total = Duration::ZERO;
    for ((name, pid), before) in pids.iter().zip(before) {
        let used = cpu_time(pid).saturating_sub(before);
        total += used;
        println!("  {name:<22} {:>8.1} µs", used.as_secs_f64() * 1e6 / count as f64);
    }
    println!("  {:<22} {:>8.1} µs", "all", total.as_secs_f64() * 1e6 / count as f64);
    drop(processes);
    let _ = std::fs::remove_dir_all(&dir);
}
