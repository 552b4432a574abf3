//! A large scenario's run costs memory in proportion to the scenario, at a
//! small factor: the `run` command's path (parse, take the workload,
//! execute with a bounded number in flight, report, serialize) peaks below
//! `BOUND` times the scenario's size. Before the workload was taken instead
//! of copied, the report held a tree per transaction and copied the
//! outcome, and every transaction was in flight at once, a
//! 200,000-transaction scenario of 32 MB peaked at 504 MB counted (833 MB
//! resident); now 343 MB (587 MB resident).

// A test over inputs it builds itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::fmt::Write as _;
use std::sync::Arc;

use executor_host::{ExecutorOptions, Limits, NativeProgram, Program};
use executor_testkit::harness::{self, Delivery};
use executor_testkit::scenario::Report;
use executor_testkit::{Rng, Scenario, heap};

#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting(std::alloc::System);

/// Peak heap over the scenario's size, at most. Measured: 12.7 for this
/// scenario (20,000 transfers among 1,000 accounts, 3 MB), with 1,000 in
/// flight.
const BOUND: f64 = 16.0;

fn scenario_text(transactions: usize, accounts: usize) -> String {
    let mut rng = Rng::new(9);
    let mut text = String::from(r#"{"shards": 2, "initial_state": {"#);
    for i in 0..accounts {
        let _ = write!(text, r#"{}"acct{i}": "1000000""#, if i == 0 { "" } else { "," });
    }
    text.push_str(r#"}, "transactions": ["#);
    for i in 0..transactions {
        let (from, to) = (rng.index(accounts), rng.index(accounts));
        let _ = write!(
            text,
            r#"{}{{"executable": {{"from": "acct{from}", "to": "acct{to}", "amount": 1}}, "eager_read_keys": ["acct{from}", "acct{to}"], "will_write_keys": ["acct{from}", "acct{to}"]}}"#,
            if i == 0 { "" } else { "," }
        );
    }
    text.push_str("]}");
    text
}

#[test]
fn a_run_peaks_at_a_small_multiple_of_its_scenario() {
    let text = scenario_text(20_000, 1_000);
    let size = text.len();
    let program: Arc<dyn Program> = Arc::new(NativeProgram::<transfer_guest::TransferFunction>::new(Limits::default()));
    let base = heap::live();
    heap::reset_peak();
    let scenario = Scenario::from_json(&text).unwrap();
    drop(text);
    let workload = scenario.into_workload();
    let delivery = Delivery::ClosedLoop { threads: 2, in_flight: 1_000 };
    let outcome = harness::execute(&workload, program, &ExecutorOptions::default(), delivery).unwrap();
    drop(workload);
    assert_eq!(outcome.transactions.len(), 20_000);
    let report = Report::from(outcome);
    serde_json::to_writer(std::io::sink(), &report).unwrap();
    let factor = heap::peak().saturating_sub(base) as f64 / size as f64;
    eprintln!("peak heap {factor:.1} times the scenario's {size} bytes");
    assert!(factor < BOUND, "peak heap {factor:.1} times the scenario's size (bound {BOUND})");
}
