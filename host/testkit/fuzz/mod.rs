//! Randomized fuzzing on stable Rust: an `arbitrary`-style driver over the
//! test kit's seeded [`Rng`], shared by the smoke test
//! (`host/testkit/tests/fuzz.rs`) and the long-run binary
//! (`host/testkit/benches/fuzz.rs`).
//!
//! Targets (`Target`):
//!
//! - `executor`: one executor engine, fed honest reads interleaved with
//!   junk (wrong timestamps, wrong senders, duplicates, undeclared and huge
//!   keys, messages of every other kind, random timer firings, time going
//!   backwards), checked against the executor's invariants after every
//!   trigger and at the end ([`exec_log`]).
//! - `shard`: the reference shard, fed random lock, read-request, write and
//!   watermark traffic with junk, checked message for message against a
//!   model of the protocol, then driven to completion (no pending marker).
//! - `worker`: the mempool worker, checked message for message against a
//!   model.
//! - `system`: shards, the worker and executors in one simulation with
//!   duplicated messages, junk from strangers and random timer firings;
//!   at quiescence every transaction finished exactly once, no marker is
//!   pending, reads and the final state are serializable.
//! - `harness`: random workloads through `harness::execute`
//!   (deterministic delivery), checked the same way at the end.
//! - `scenario`: random and mutated scenario JSON into
//!   `Scenario::from_json`.
//! - `cue`: random and mutated jams into `cue`, and `cue(jam(n)) == n`.
//! - `load`: mutated guest components and random bytes into
//!   `Sandbox::inspect`/`load`, one metered step of what loads.
//!
//! Every case is a function of its seed alone: a failure prints the seed,
//! and `FUZZ_REPLAY=<target>:<seed>` (test) or `--replay <seed>` (binary)
//! runs that one case again.

pub mod common;
pub mod cue;
pub mod exec_log;
pub mod executor;
pub mod harness;
pub mod load;
pub mod scenario;
pub mod script;
pub mod shard;
pub mod system;
pub mod worker;

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use executor_testkit::Rng;

/// The fuzz targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Executor,
    Shard,
    Worker,
    System,
    Harness,
    Scenario,
    Cue,
    Load,
}

impl Target {
    pub const ALL: [Target; 8] = [
        Target::Executor,
        Target::Shard,
        Target::Worker,
        Target::System,
        Target::Harness,
        Target::Scenario,
        Target::Cue,
        Target::Load,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Executor => "executor",
            Target::Shard => "shard",
            Target::Worker => "worker",
            Target::System => "system",
            Target::Harness => "harness",
            Target::Scenario => "scenario",
            Target::Cue => "cue",
            Target::Load => "load",
        }
    }

    pub fn parse(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether the target's cases are message sequences into engines (its
    /// `messages` count is the figure of merit) rather than parser inputs.
    pub fn is_engine(self) -> bool {
        matches!(self, Target::Executor | Target::Shard | Target::Worker | Target::System)
    }
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Cases run (a case is a message sequence, a workload, or one input).
    pub cases: u64,
    /// Triggers handled by engines (messages and timer firings), for the
    /// engine targets.
    pub messages: u64,
    /// Inputs handed to the parser or loader, for the input targets;
    /// transactions run, for `harness`.
    pub inputs: u64,
    /// Outcomes by kind (e.g. `executor:success`, `scenario:err:transactions`).
    pub outcomes: BTreeMap<String, u64>,
    /// The first case seed that produced each outcome.
    pub first_seed: BTreeMap<String, u64>,
    /// The slowest case and its seed.
    pub slowest: (Duration, u64),
    /// Wall time.
    pub elapsed: Duration,
    /// The seed of the case running.
    pub current: u64,
}

impl Stats {
    pub fn outcome(&mut self, kind: impl Into<String>) {
        let kind = kind.into();
        if !self.outcomes.contains_key(&kind) {
            self.first_seed.insert(kind.clone(), self.current);
        }
        *self.outcomes.entry(kind).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Stats) {
        self.cases += other.cases;
        self.messages += other.messages;
        self.inputs += other.inputs;
        for (k, v) in &other.outcomes {
            *self.outcomes.entry(k.clone()).or_default() += v;
        }
        if other.slowest.0 > self.slowest.0 {
            self.slowest = other.slowest;
        }
        self.elapsed += other.elapsed;
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cases {}, messages {}, inputs {}, {:.1} s, slowest case {:?} (seed {})",
            self.cases,
            self.messages,
            self.inputs,
            self.elapsed.as_secs_f64(),
            self.slowest.0,
            self.slowest.1
        )?;
        writeln!(f, "{} distinct outcomes:", self.outcomes.len())?;
        for (kind, count) in &self.outcomes {
            writeln!(f, "  {count:>12}  {kind}")?;
        }
        Ok(())
    }
}

/// A failed case: the target, the seed that replays it, what broke.
#[derive(Debug, Clone)]
pub struct Failure {
    pub target: Target,
    /// The case seed (`None` for a corpus file).
    pub seed: Option<u64>,
    /// The corpus file, if the case came from one.
    pub file: Option<PathBuf>,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = self.target.name();
        match (&self.seed, &self.file) {
            (Some(seed), _) => write!(
                f,
                "fuzz target `{target}` failed at case seed {seed}: {}\n  replay: FUZZ_REPLAY={target}:{seed} \
                 cargo test -p executor-testkit --test fuzz fuzz_replay -- --nocapture\n  or: cargo test -p \
                 executor-testkit --bench fuzz -- --target {target} --replay {seed}",
                self.message
            ),
            (None, Some(file)) => {
                write!(f, "fuzz target `{target}` failed on corpus file {}: {}", file.display(), self.message)
            }
            (None, None) => write!(f, "fuzz target `{target}` failed: {}", self.message),
        }
    }
}

/// One target's state across cases (a loaded sandbox, seed inputs).
pub trait Fuzzer {
    /// Runs the case determined by `seed`.
    fn case(&mut self, seed: u64, stats: &mut Stats) -> Result<(), String>;

    /// The input of the last case, for the parser targets (to save as a
    /// corpus file).
    fn last_input(&self) -> Option<&[u8]> {
        None
    }

    /// Runs a corpus file that is an input (parser targets); files named
    /// `*.seeds` are case seeds instead, for every target.
    fn corpus_entry(&mut self, bytes: &[u8], stats: &mut Stats) -> Result<(), String> {
        let _ = (bytes, stats);
        Err("this target takes only `*.seeds` corpus files".into())
    }
}

/// The fuzzer of `target`.
pub fn fuzzer(target: Target) -> Result<Box<dyn Fuzzer>, String> {
    Ok(match target {
        Target::Executor => Box::new(executor::ExecutorFuzzer),
        Target::Shard => Box::new(shard::ShardFuzzer),
        Target::Worker => Box::new(worker::WorkerFuzzer),
        Target::System => Box::new(system::SystemFuzzer),
        Target::Harness => Box::new(harness::HarnessFuzzer),
        Target::Scenario => Box::new(scenario::ScenarioFuzzer::new()?),
        Target::Cue => Box::new(cue::CueFuzzer::default()),
        Target::Load => Box::new(load::LoadFuzzer::new()?),
    })
}

/// The seed of case `index` of a run seeded `seed`.
pub fn case_seed(seed: u64, index: u64) -> u64 {
    Rng::new(seed ^ index.wrapping_mul(0xd134_2543_de82_ef95)).next_u64()
}

/// Runs one case, turning a panic into a failure.
pub fn run_case(fuzzer: &mut dyn Fuzzer, target: Target, seed: u64, stats: &mut Stats) -> Result<(), Failure> {
    quiet_scripted_panics();
    stats.current = seed;
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| fuzzer.case(seed, stats)));
    let took = started.elapsed();
    if took > stats.slowest.0 {
        stats.slowest = (took, seed);
    }
    stats.cases += 1;
    let message = match result {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(message)) => message,
        Err(panic) => format!("panicked: {}", common::panic_message(&*panic)),
    };
    Err(Failure { target, seed: Some(seed), file: None, message })
}

/// How long a run goes on.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// At most this many cases.
    pub cases: u64,
    /// Stop once the engine targets handled this many messages (or the
    /// input targets this many inputs).
    pub work: Option<u64>,
    /// Stop after this long.
    pub time: Option<Duration>,
}

/// Runs cases `0..` of a run seeded `seed` within `budget`; `progress` is
/// called every few seconds with the stats so far.
/// With `save`, the input (or seed) of every case with a new outcome, and of
/// a failure, is saved under `save/<target>/`.
pub fn run(
    target: Target,
    seed: u64,
    budget: Budget,
    save: Option<&Path>,
    mut progress: impl FnMut(&Stats),
) -> Result<Stats, Failure> {
    let mut fuzzer = fuzzer(target).map_err(|message| Failure { target, seed: None, file: None, message })?;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut stats = Stats::default();
    for index in 0..budget.cases {
        let known = stats.outcomes.len();
        let result = run_case(fuzzer.as_mut(), target, case_seed(seed, index), &mut stats);
        if let Some(dir) = save
            && (stats.outcomes.len() > known || result.is_err())
        {
            save_input(dir, target, fuzzer.as_ref(), &stats);
        }
        result?;
        let work = if target.is_engine() { stats.messages } else { stats.inputs };
        if budget.work.is_some_and(|w| work >= w) || budget.time.is_some_and(|t| started.elapsed() >= t) {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            stats.elapsed = started.elapsed();
            progress(&stats);
            last_report = Instant::now();
        }
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// Saves the last case's input (parser targets, at most 64 KiB) or seed
/// (every target) under `dir/<target>/`, named after its newest outcome.
fn save_input(dir: &Path, target: Target, fuzzer: &dyn Fuzzer, stats: &Stats) {
    let dir = dir.join(target.name());
    let _ = std::fs::create_dir_all(&dir);
    let outcome = stats.first_seed.iter().find(|(_, s)| **s == stats.current).map_or("failure", |(o, _)| o.as_str());
    let name: String = outcome.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(60).collect();
    match fuzzer.last_input() {
        Some(bytes) if bytes.len() <= 64 << 10 => {
            let _ = std::fs::write(dir.join(format!("{name}.{:016x}.in", stats.current)), bytes);
        }
        _ => {
            let line = format!("{}  # {outcome}\n", stats.current);
            let path = dir.join("found.seeds");
            let mut text = std::fs::read_to_string(&path).unwrap_or_default();
            text.push_str(&line);
            let _ = std::fs::write(path, text);
        }
    }
}

/// The corpus directory of `target`.
pub fn corpus_dir(target: Target) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("corpus").join(target.name())
}

/// Replays every file of the target's corpus directory (missing: nothing).
pub fn replay_corpus(target: Target) -> Result<Stats, Failure> {
    let fail = |file: Option<PathBuf>, message: String| Failure { target, seed: None, file, message };
    let mut fuzzer = fuzzer(target).map_err(|m| fail(None, m))?;
    let mut stats = Stats::default();
    let started = Instant::now();
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    quiet_scripted_panics();
    for file in files {
        let bytes = std::fs::read(&file).map_err(|e| fail(Some(file.clone()), e.to_string()))?;
        let seeds = file.extension().is_some_and(|e| e == "seeds");
        let result = catch_unwind(AssertUnwindSafe(|| {
            if seeds {
                common::corpus_seeds(&bytes)
                    .into_iter()
                    .try_for_each(|seed| fuzzer.case(seed, &mut stats).map_err(|e| format!("seed {seed}: {e}")))
            } else {
                fuzzer.corpus_entry(&bytes, &mut stats)
            }
        }));
        stats.cases += 1;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Err(fail(Some(file), message)),
            Err(panic) => return Err(fail(Some(file), format!("panicked: {}", common::panic_message(&*panic)))),
        }
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// The scripted program panics on purpose now and then (the executor must
/// turn that into a failure); keep those out of the output, and every
/// other panic in it.
pub fn quiet_scripted_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !common::panic_message(info.payload()).starts_with(script::PANIC) {
                previous(info);
            }
        }));
    });
}
