//! The fuzzers' smoke run: each target replays its corpus
//! (`host/testkit/fuzz/corpus/<target>/`) and runs a few thousand random
//! messages or inputs from a fixed seed (`FUZZ_SEED` to vary it).
//!
//! - `FUZZ_REPLAY=<target>:<seed> cargo test -p executor-testkit --test fuzz fuzz_replay -- --nocapture`
//!   reruns the one case a failure names.
//! - `cargo test -p executor-testkit --test fuzz -- --ignored fuzz_long --nocapture` is the long run
//!   (10M messages over the engine targets, 1M inputs per parser, 5 minutes
//!   of component loading; `FUZZ_LONG_SCALE=<percent>` scales it). The
//!   `fuzz` bench binary runs any one target as long as asked:
//!   `cargo test -p executor-testkit --bench fuzz -- --target cue --inputs 1000000`.

// A failure is a panic naming the seed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../fuzz/mod.rs"]
#[allow(dead_code)]
mod fuzz;

use std::time::Duration;

use fuzz::{Budget, Target};

fn seed() -> u64 {
    std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_f022)
}

/// The corpus, then `cases` random cases.
fn smoke(target: Target, cases: u64) {
    let corpus = fuzz::replay_corpus(target).unwrap_or_else(|failure| panic!("{failure}"));
    let budget = Budget { cases, work: None, time: None };
    let stats = fuzz::run(target, seed(), budget, None, |_| {}).unwrap_or_else(|failure| panic!("{failure}"));
    eprintln!(
        "fuzz {}: corpus {} files ({} messages, {} inputs); random {} cases, {} messages, {} inputs, {} outcomes, {:.2} s",
        target.name(),
        corpus.cases,
        corpus.messages,
        corpus.inputs,
        stats.cases,
        stats.messages,
        stats.inputs,
        stats.outcomes.len(),
        (corpus.elapsed + stats.elapsed).as_secs_f64()
    );
}

#[test]
fn fuzz_executor() {
    smoke(Target::Executor, 2_000);
}

#[test]
fn fuzz_shard() {
    smoke(Target::Shard, 500);
}

#[test]
fn fuzz_worker() {
    smoke(Target::Worker, 500);
}

#[test]
fn fuzz_system() {
    smoke(Target::System, 300);
}

#[test]
fn fuzz_harness() {
    smoke(Target::Harness, 100);
}

#[test]
fn fuzz_scenario() {
    smoke(Target::Scenario, 3_000);
}

#[test]
fn fuzz_cue() {
    smoke(Target::Cue, 3_000);
}

#[test]
fn fuzz_load() {
    smoke(Target::Load, 25);
}

/// Reruns one case: `FUZZ_REPLAY=<target>:<seed>`.
#[test]
fn fuzz_replay() {
    let Ok(spec) = std::env::var("FUZZ_REPLAY") else { return };
    let (name, seed) = spec.split_once(':').expect("FUZZ_REPLAY=<target>:<seed>");
    let target = Target::parse(name).unwrap_or_else(|| panic!("no fuzz target {name}"));
    let seed: u64 = seed.parse().expect("a decimal seed");
    let mut fuzzer = fuzz::fuzzer(target).unwrap();
    let mut stats = fuzz::Stats::default();
    fuzz::run_case(fuzzer.as_mut(), target, seed, &mut stats).unwrap_or_else(|failure| panic!("{failure}"));
    eprintln!("{stats}");
}

/// The long run: 10M messages over the engine targets, 1M inputs per
/// parser target, and component loading for five minutes.
#[test]
#[ignore]
fn fuzz_long() {
    let scale: u64 = std::env::var("FUZZ_LONG_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    let work = |n: u64| Some(n * scale / 100);
    let plan = [
        (Target::Executor, work(4_000_000), None),
        (Target::Shard, work(2_500_000), None),
        (Target::Worker, work(1_500_000), None),
        (Target::System, work(2_000_000), None),
        (Target::Harness, work(100_000), None),
        (Target::Scenario, work(1_000_000), None),
        (Target::Cue, work(1_000_000), None),
        (Target::Load, None, Some(Duration::from_secs(3 * scale))),
    ];
    for (target, work, time) in plan {
        let budget = Budget { cases: u64::MAX, work, time };
        let stats = fuzz::run(target, seed(), budget, None, |s| {
            eprintln!("fuzz {} ... {} cases, {} messages, {} inputs", target.name(), s.cases, s.messages, s.inputs);
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
        eprintln!("fuzz {}: {stats}", target.name());
    }
}
