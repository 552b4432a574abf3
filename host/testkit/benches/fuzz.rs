//! The fuzzers' long-run driver (the targets are in `fuzz/`; the smoke run
//! in the test suite is `tests/fuzz.rs`).
//!
//! ```text
//! cargo test -p executor-testkit --bench fuzz -- --target <name>[,<name>...] [options]
//!   targets: executor shard worker system harness scenario cue load, or
//!            engines (the first four), parsers (scenario, cue), all
//!   --seed S        run seed (default 1); case i has seed case_seed(S, i)
//!   --cases N       at most N cases per target
//!   --messages N    stop an engine target after N messages
//!   --inputs N      stop an input target after N inputs
//!   --seconds T     stop each target after T seconds
//!   --replay S      run the single case with seed S (as a failure prints it)
//!   --corpus        replay the target's corpus first
//!   --save-corpus D save the input (or seed) of each case with a new
//!                   outcome, and of a failure, under D/<target>/
//! ```
//!
//! (`cargo test --bench` builds it in the dev profile, as the tests are;
//! `cargo bench --bench fuzz -- ...` works too, with a release build.) It
//! prints, per target, the cases, messages and inputs, the distinct
//! outcomes, the slowest case, the time and the peak heap, and exits
//! non-zero with the replay command on the first failure.

// A driver over inputs it builds itself: a panic is a bug in it.
#![allow(clippy::indexing_slicing, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../fuzz/mod.rs"]
#[allow(dead_code)]
mod fuzz;

use std::time::Duration;

use fuzz::{Budget, Target};

#[global_allocator]
static ALLOCATOR: executor_testkit::heap::Counting = executor_testkit::heap::Counting(std::alloc::System);

fn usage() -> ! {
    eprintln!(
        "usage: fuzz --target <executor|shard|worker|system|harness|scenario|cue|load|engines|parsers|all>[,...] \
         [--seed S] [--cases N] [--messages N] [--inputs N] [--seconds T] [--replay S] [--corpus] [--save-corpus DIR]"
    );
    std::process::exit(2)
}

fn main() {
    let mut targets: Vec<Target> = Vec::new();
    let mut seed = 1u64;
    let mut cases = u64::MAX;
    let mut messages = None;
    let mut inputs = None;
    let mut seconds = None;
    let mut replay = None;
    let mut corpus = false;
    let mut save: Option<std::path::PathBuf> = None;
    let mut args = std::env::args().skip(1);
    let number = |value: Option<String>| -> u64 {
        value.and_then(|v| v.replace('_', "").parse().ok()).unwrap_or_else(|| usage())
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--target" => {
                for name in args.next().unwrap_or_else(|| usage()).split(',') {
                    match name {
                        "all" => targets.extend(Target::ALL),
                        "engines" => targets.extend([Target::Executor, Target::Shard, Target::Worker, Target::System]),
                        "parsers" => targets.extend([Target::Scenario, Target::Cue]),
                        name => targets.push(Target::parse(name).unwrap_or_else(|| usage())),
                    }
                }
            }
            "--seed" => seed = number(args.next()),
            "--cases" | "--iterations" => cases = number(args.next()),
            "--messages" => messages = Some(number(args.next())),
            "--inputs" => inputs = Some(number(args.next())),
            "--seconds" => seconds = Some(Duration::from_secs(number(args.next()))),
            "--replay" => replay = Some(number(args.next())),
            "--corpus" => corpus = true,
            "--save-corpus" => save = Some(args.next().unwrap_or_else(|| usage()).into()),
            // What `cargo bench` and `cargo test` pass to every bench binary.
            "--bench" | "--nocapture" => {}
            _ => usage(),
        }
    }
    if targets.is_empty() {
        // `cargo test` and `cargo bench` without arguments: nothing to do.
        eprintln!("fuzz: no --target given; nothing to run");
        return;
    }
    let mut failed = false;
    for target in targets {
        executor_testkit::heap::reset_peak();
        if let Some(seed) = replay {
            let mut fuzzer = fuzz::fuzzer(target).unwrap_or_else(|e| panic!("{e}"));
            let mut stats = fuzz::Stats::default();
            match fuzz::run_case(fuzzer.as_mut(), target, seed, &mut stats) {
                Ok(()) => println!("fuzz {}: case {seed} passes\n{stats}", target.name()),
                Err(failure) => {
                    println!("{failure}");
                    failed = true;
                }
            }
            continue;
        }
        if corpus {
            match fuzz::replay_corpus(target) {
                Ok(stats) => println!("fuzz {} corpus: {stats}", target.name()),
                Err(failure) => {
                    println!("{failure}");
                    failed = true;
                    continue;
                }
            }
        }
        let work = if target.is_engine() { messages } else { inputs };
        let budget = Budget { cases, work, time: seconds };
        let name = target.name();
        println!("fuzz {name}: seed {seed}, budget {budget:?}");
        let result = fuzz::run(target, seed, budget, save.as_deref(), |s| {
            println!(
                "  {name}: {} cases, {} messages, {} inputs, {:.0} s",
                s.cases,
                s.messages,
                s.inputs,
                s.elapsed.as_secs_f64()
            );
        });
        match result {
            Ok(stats) => {
                let peak = executor_testkit::heap::peak() as f64 / (1 << 20) as f64;
                println!("fuzz {name}: {stats}  peak heap {peak:.1} MiB");
                println!("  first seed of each outcome:");
                for (outcome, seed) in &stats.first_seed {
                    println!("    {seed:>20}  {outcome}");
                }
                println!();
            }
            Err(failure) => {
                println!("{failure}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
