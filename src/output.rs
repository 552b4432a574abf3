//! What `run`, `list` and `check` print: for people (tables) or for
//! programs (JSON), and `run`'s progress bar.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use executor_host::{ComponentInfo, Deployed, Program, Session, StepCall, StepReport};
use executor_testkit::scenario::Report;

/// `--output`: for people or for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Tables and sentences.
    Human,
    /// One JSON document.
    Json,
}

impl Output {
    /// The format asked for, or human when stdout is a terminal and JSON
    /// otherwise (a pipe, a file).
    pub fn resolve(asked: Option<Self>) -> Self {
        asked.unwrap_or_else(|| if std::io::stdout().is_terminal() { Self::Human } else { Self::Json })
    }
}

/// `run`'s JSON: the test kit's report, plus the summary computed here.
#[derive(Debug, Serialize)]
pub struct RunOutput<'a> {
    #[serde(flatten)]
    pub report: &'a Report,
    /// Failed transactions by the kind of their failure (`guest`,
    /// `out_of_gas`, ...).
    pub failed_by_reason: BTreeMap<&'static str, usize>,
    /// Wall-clock seconds of the run itself (the guest already loaded).
    pub seconds: f64,
    /// Transactions per second of wall-clock time.
    pub tx_per_second: f64,
}

impl<'a> RunOutput<'a> {
    pub fn new(report: &'a Report, elapsed: Duration) -> Self {
        let mut failed_by_reason = BTreeMap::new();
        for tx in &report.transactions {
            if let Some(failure) = &tx.failure_kind {
                *failed_by_reason.entry(failure.kind()).or_insert(0) += 1;
            } else if !tx.success {
                *failed_by_reason.entry("unknown").or_insert(0) += 1;
            }
        }
        let seconds = elapsed.as_secs_f64();
        let count = report.transactions.len() as f64;
        let tx_per_second = if seconds > 0.0 { count / seconds } else { 0.0 };
        Self { report, failed_by_reason, seconds, tx_per_second }
    }
}

/// What debug builds logged (`run --dev`), then one line per failed
/// transaction, then the summary table (last, so that it stays on screen
/// after a long list). The step trace is in the JSON report only.
impl fmt::Display for RunOutput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = self.report;
        guest_log(f, report)?;
        if report.failed > 0 {
            writeln!(f, "failed transactions (timestamp, reason):")?;
            for tx in report.transactions.iter().filter(|tx| !tx.success) {
                writeln!(f, "{:>10}  {}", tx.timestamp, printable(tx.failure.as_deref().unwrap_or("unknown")))?;
            }
            writeln!(f)?;
        }
        if !report.nondeterministic_writes.is_empty() {
            writeln!(f, "nondeterministic writes (timestamp, key): a re-run transaction wrote differently")?;
            for write in &report.nondeterministic_writes {
                writeln!(f, "{:>10}", printable(&write.to_string()))?;
            }
            writeln!(f)?;
        }
        // Wide enough for the longest reason (`  access_violation`).
        let width = self.failed_by_reason.keys().map(|reason| reason.len() + 4).fold(16, usize::max);
        let row = |f: &mut fmt::Formatter<'_>, label: &str, value: &dyn fmt::Display| {
            writeln!(f, "{label:<width$}{:>14}", value.to_string())
        };
        row(f, "transactions", &report.transactions.len())?;
        row(f, "succeeded", &report.succeeded)?;
        row(f, "failed", &report.failed)?;
        for (reason, count) in &self.failed_by_reason {
            row(f, &format!("  {reason}"), count)?;
        }
        row(f, "gas used", &report.gas_used)?;
        row(f, "wall time", &format!("{:.3} s", self.seconds))?;
        row(f, "throughput", &format!("{:.0} tx/s", self.tx_per_second))
    }
}

/// `text` with its control characters escaped (`\u{1b}`, `\r`): what a
/// guest or a scenario chose must not move the cursor, recolour the
/// terminal or forge a line of the summary. (The JSON report escapes them
/// as JSON does.)
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// Each transaction's log lines, under its timestamp, a line that spans
/// several (a panic message) indented below it.
fn guest_log(f: &mut fmt::Formatter<'_>, report: &Report) -> fmt::Result {
    let logged: Vec<_> = report.transactions.iter().filter(|tx| !tx.log.is_empty()).collect();
    if logged.is_empty() {
        return Ok(());
    }
    writeln!(f, "guest log (timestamp, line):")?;
    for tx in logged {
        for line in &tx.log.lines {
            for (part, text) in line.split('\n').map(printable).enumerate() {
                if part == 0 {
                    writeln!(f, "{:>10}  {text}", tx.timestamp)?;
                } else {
                    writeln!(f, "{:>10}  {text}", "")?;
                }
            }
        }
        if tx.log.dropped > 0 {
            writeln!(
                f,
                "{:>10}  ({} more lines dropped: at most {} per transaction)",
                tx.timestamp,
                tx.log.dropped,
                executor_host::LOG_LINES
            )?;
        }
    }
    writeln!(f)
}

/// One deployed module in `list`'s JSON.
#[derive(Debug, Serialize)]
struct ListItem<'a> {
    name: &'a str,
    hash: &'a str,
    size: u64,
}

/// `list` in either format, each line ended.
pub fn list(deployed: &[Deployed], output: Output) -> serde_json::Result<String> {
    match output {
        Output::Json => {
            let items: Vec<ListItem<'_>> =
                deployed.iter().map(|d| ListItem { name: &d.name, hash: &d.hash, size: d.size }).collect();
            serde_json::to_string_pretty(&items).map(|json| json + "\n")
        }
        Output::Human => {
            let width = deployed.iter().map(|d| d.name.len()).max().unwrap_or(0);
            let mut out = String::new();
            for d in deployed {
                // Writing to a String cannot fail.
                let _ = writeln!(out, "{:width$}  {}  {} bytes", d.name, d.hash, d.size);
            }
            Ok(out)
        }
    }
}

/// An export or import in `check`'s JSON.
#[derive(Debug, Serialize)]
struct Item<'a> {
    name: &'a str,
    kind: &'a str,
}

/// `check`'s JSON.
#[derive(Debug, Serialize)]
struct CheckOutput<'a> {
    file: &'a str,
    /// The file's size in bytes.
    size: usize,
    /// `null` when the bytes could not even be read as a component.
    exports: Option<Vec<Item<'a>>>,
    imports: Option<Vec<Item<'a>>>,
    ok: bool,
    error: Option<String>,
}

/// `check`'s JSON for `file` (`size` bytes): what `info` shows, and
/// whether it loaded.
pub fn check_json(
    file: &str,
    size: usize,
    info: Option<&ComponentInfo>,
    error: Option<String>,
) -> serde_json::Result<String> {
    fn items(list: &[(String, String)]) -> Vec<Item<'_>> {
        list.iter().map(|(name, kind)| Item { name, kind }).collect()
    }
    serde_json::to_string_pretty(&CheckOutput {
        file,
        size: info.map_or(size, |i| i.size),
        exports: info.map(|i| items(&i.exports)),
        imports: info.map(|i| items(&i.imports)),
        ok: error.is_none(),
        error,
    })
}

/// How many transactions a scenario needs for `run` to show a progress bar.
pub const PROGRESS_FROM: usize = 1000;

/// A progress bar on stderr for a run of `transactions`, when stderr is a
/// terminal and the run is long enough; `None` otherwise.
pub fn progress_bar(transactions: usize) -> Option<ProgressBar> {
    if transactions < PROGRESS_FROM || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(transactions as u64);
    let style = ProgressStyle::with_template(
        "{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} transactions ({rate}, about {eta} left)",
    )
    .map(|style| {
        style.with_key("rate", |state: &indicatif::ProgressState, w: &mut dyn fmt::Write| {
            let _ = write!(w, "{:.0} tx/s", state.per_sec());
        })
    })
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(100));
    Some(bar)
}

/// A program that advances a progress bar by one for each transaction that
/// ends in a step: a step that fails or halts. (A transaction that ends
/// otherwise, past its deadline or on an access violation, is not counted;
/// the harness gives no progress callback.) It serves the rounds its
/// program serves ([`Program::session`]): a wrapper that did not would
/// turn them off, and a wasm guest's gas would then depend on whether
/// the bar is shown.
pub struct Counted {
    pub inner: Arc<dyn Program>,
    pub bar: ProgressBar,
}

impl fmt::Debug for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counted").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl Counted {
    fn count(&self, report: StepReport) -> StepReport {
        if report.result.as_ref().map_or(true, |output| output.halted) {
            self.bar.inc(1);
        }
        report
    }
}

impl Program for Counted {
    fn step(&self, call: StepCall<'_>) -> StepReport {
        self.count(self.inner.step(call))
    }

    fn session(&self) -> Option<Box<dyn Session + '_>> {
        let inner = self.inner.session()?;
        Some(Box::new(CountedSession { counted: self, inner }))
    }
}

/// A round of a [`Counted`] program's steps.
struct CountedSession<'a> {
    counted: &'a Counted,
    inner: Box<dyn Session + 'a>,
}

impl Session for CountedSession<'_> {
    fn step(&mut self, call: StepCall<'_>) -> StepReport {
        self.counted.count(self.inner.step(call))
    }
}

/// What `run --record` prints: each transaction's recorded key sets.
pub fn recorded(recorded: &[executor_testkit::record::Recorded], format: Output) -> serde_json::Result<String> {
    use executor_testkit::scenario::{Bytes, KeyText};
    let text = |set: &[Vec<u8>]| set.iter().map(|k| KeyText(k.clone()).to_string()).collect::<Vec<_>>();
    // In JSON, keys as a scenario writes them in a list (a string, or
    // `{"hex": …}`), so that a printed set pastes into one unchanged.
    let json = |set: &[Vec<u8>]| set.iter().map(|k| Bytes(k.clone())).collect::<Vec<_>>();
    let outcome = |r: &executor_testkit::record::Recorded| match &r.outcome {
        Ok(()) => "halted".to_owned(),
        Err(failure) => format!("failed: {failure}"),
    };
    match format {
        Output::Json => {
            let rows: Vec<serde_json::Value> = recorded
                .iter()
                .zip(1u64..)
                .map(|(r, timestamp)| {
                    serde_json::json!({
                        "timestamp": timestamp,
                        "outcome": outcome(r),
                        "eager_read_keys": json(&r.keys.eager_read_keys),
                        "lazy_read_keys": json(&r.keys.lazy_read_keys),
                        "will_write_keys": json(&r.keys.will_write_keys),
                    })
                })
                .collect();
            Ok(serde_json::to_string_pretty(&rows)? + "\n")
        }
        Output::Human => {
            let mut out = String::from("timestamp  eager | lazy | will  (outcome)\n");
            for (r, timestamp) in recorded.iter().zip(1u64..) {
                let line = format!(
                    "{} | {} | {}  ({})",
                    text(&r.keys.eager_read_keys).join(" "),
                    text(&r.keys.lazy_read_keys).join(" "),
                    text(&r.keys.will_write_keys).join(" "),
                    outcome(r)
                );
                let _ = writeln!(out, "{timestamp:>9}  {}", printable(&line));
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use executor_host::{GuestLog, StepOutput};

    /// A program whose steps halt, counting the steps its sessions ran.
    #[derive(Debug, Default)]
    struct Rounds {
        in_sessions: std::sync::atomic::AtomicU32,
    }

    fn halted() -> StepReport {
        StepReport {
            result: Ok(StepOutput { state: Vec::new(), requests: Vec::new(), halted: true }),
            gas_used: 1,
            log: GuestLog::default(),
        }
    }

    impl Program for Rounds {
        fn step(&self, _: StepCall<'_>) -> StepReport {
            halted()
        }

        fn session(&self) -> Option<Box<dyn Session + '_>> {
            Some(Box::new(RoundsSession(self)))
        }
    }

    struct RoundsSession<'a>(&'a Rounds);

    impl Session for RoundsSession<'_> {
        fn step(&mut self, _: StepCall<'_>) -> StepReport {
            self.0.in_sessions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            halted()
        }
    }

    #[test]
    fn a_printed_recording_writes_keys_as_a_scenario_does() {
        let keys = executor_host::KeySets {
            eager_read_keys: vec![b"\xff\xfe".to_vec(), b"hex:61".to_vec(), b"plain".to_vec()],
            ..executor_host::KeySets::default()
        };
        let recorded = [executor_testkit::record::Recorded { keys, outcome: Ok(()) }];
        let printed: serde_json::Value =
            serde_json::from_str(&super::recorded(&recorded, Output::Json).unwrap()).unwrap();
        assert_eq!(printed[0]["eager_read_keys"], serde_json::json!([{"hex": "fffe"}, "hex:61", "plain"]));
    }

    #[test]
    fn the_progress_bar_keeps_its_programs_rounds_and_counts_their_steps() {
        let inner = Arc::new(Rounds::default());
        let counted = Counted { inner: inner.clone(), bar: ProgressBar::hidden() };
        let call = StepCall { executable: b"", state: None, input: None, gas_limit: 10 };
        let mut session = counted.session().expect("the wrapped program serves rounds, so the wrapper must too");
        session.step(call);
        drop(session);
        counted.step(call);
        assert_eq!(inner.in_sessions.load(std::sync::atomic::Ordering::Relaxed), 1, "the round ran in the session");
        assert_eq!(counted.bar.position(), 2, "both halting steps counted");
    }
}
