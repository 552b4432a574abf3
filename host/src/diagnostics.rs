//! What a step and a transaction report besides their outcome, for people
//! debugging a guest: the guest's debug output ([`GuestLog`], from a debug
//! build in a dev sandbox) and, when asked for, a trace of every step
//! ([`StepTrace`], with [`ExecutorOptions::step_trace`](crate::ExecutorOptions::step_trace)),
//! both carried by `ExecutorFinished` as its [`Diagnostics`].
//!
//! Everything here is bounded where a guest controls its size: the log by
//! [`LOG_LINES`] per transaction and [`LOG_LINE_BYTES`] per line; a trace
//! by the step limits a step already obeys ([`crate::Limits`]).
//!
//! What this module must not do: change a transaction's outcome, or cost
//! anything when nothing is logged or traced (the engine's hot path calls
//! [`GuestLog::append`] on every step; an empty log never allocates).

use serde::{Deserialize, Serialize};

use crate::program::{Input, Request, StepReport};

/// The most lines of debug output kept per transaction (and per guest
/// call); later lines are counted in [`GuestLog::dropped`].
pub const LOG_LINES: usize = 64;

/// The longest line of debug output kept, in bytes; a longer line is cut
/// at a character boundary and says how long it was.
pub const LOG_LINE_BYTES: usize = 512;

/// Gas charged for each call of the debug world's `log`, kept or dropped,
/// besides [`LOG_GAS_PER_BYTE`]: what a host call costs the host.
pub const LOG_GAS_PER_LINE: u64 = 1_000;

/// Gas charged per byte a guest hands to `log` (all of its bytes, not only
/// those kept): the host reads and validates them all.
pub const LOG_GAS_PER_BYTE: u64 = 1;

/// The debug output of a guest's debug build, as a dev sandbox collects it
/// for one call ([`StepReport::log`]) and the executor for one transaction
/// ([`Diagnostics::log`]): at most [`LOG_LINES`] lines, each at
/// most [`LOG_LINE_BYTES`] (plus a note of its length when cut).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GuestLog {
    /// The lines kept, in the order logged.
    pub lines: Vec<String>,
    /// How many lines were logged past [`LOG_LINES`] and dropped.
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped: u64,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

impl GuestLog {
    /// Nothing was logged.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.dropped == 0
    }

    /// Keeps `message` as a line, cut to [`LOG_LINE_BYTES`], unless
    /// [`LOG_LINES`] are kept already: then it is only counted.
    pub fn push(&mut self, message: &str) {
        if self.lines.len() < LOG_LINES {
            self.lines.push(cut(message));
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    /// As [`GuestLog::push`], for a line already [`cut`] (the sandbox cuts
    /// it while the guest's memory is borrowed, then pushes it).
    pub(crate) fn push_line(&mut self, line: String) {
        if self.lines.len() < LOG_LINES {
            self.lines.push(line);
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    /// Adds `later`'s lines after these, within the same bound, and its
    /// dropped count. Allocates nothing when `later` is empty.
    pub fn append(&mut self, later: GuestLog) {
        if later.is_empty() {
            return;
        }
        let room = LOG_LINES.saturating_sub(self.lines.len());
        let over = later.lines.len().saturating_sub(room);
        self.lines.extend(later.lines.into_iter().take(room));
        self.dropped = self.dropped.saturating_add(later.dropped).saturating_add(over as u64);
    }
}

/// `message` cut to [`LOG_LINE_BYTES`] at a character boundary, saying how
/// long it was.
pub(crate) fn cut(message: &str) -> String {
    if message.len() <= LOG_LINE_BYTES {
        return message.to_owned();
    }
    let mut end = LOG_LINE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let kept = message.get(..end).unwrap_or_default();
    format!("{kept}… ({} bytes in all)", message.len())
}

/// What [`crate::ExecutorFinished`] carries for people debugging a guest,
/// when there is any: the guest's log and the step trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Diagnostics {
    /// What a debug build logged over all the transaction's steps (a dev
    /// sandbox's only).
    pub log: GuestLog,
    /// Every step, in order, with
    /// [`ExecutorOptions::step_trace`](crate::ExecutorOptions::step_trace)
    /// only.
    pub steps: Vec<StepTrace>,
    /// The undeclared accesses a transaction in
    /// [`AccessMode::Lenient`](crate::AccessMode::Lenient) skipped, in the
    /// order the program made them: the first [`SKIPPED_ACCESSES`], each
    /// key once per kind of access. (Last: the wire encodes a struct as a
    /// positional array.)
    pub skipped: Vec<SkippedAccess>,
}

impl Diagnostics {
    /// Nothing logged, nothing traced, nothing skipped.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty() && self.steps.is_empty() && self.skipped.is_empty()
    }
}

/// The most skipped accesses a report lists (a program may ask for any
/// number of undeclared keys; the count of all of them is in the
/// executors' metrics).
pub const SKIPPED_ACCESSES: usize = 256;

/// An undeclared access skipped in lenient mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedAccess {
    /// The key.
    pub key: Vec<u8>,
    /// A read or a write.
    pub access: crate::Access,
}

/// One step of a transaction, as the executor records it with
/// [`ExecutorOptions::step_trace`](crate::ExecutorOptions::step_trace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTrace {
    /// The key of the value the step was fed; `None` for a first step run
    /// without input (a transaction without eager reads).
    pub key: Option<Vec<u8>>,
    /// The gas the step used (the steps of a transaction add up to its
    /// `gas_used`).
    pub gas_used: u64,
    /// The requests the step returned, in order, whether or not the
    /// executor carried them out (an undeclared one is not); none for a
    /// step that failed.
    pub requests: Vec<TracedRequest>,
    /// Whether the step left the program halted.
    pub halted: bool,
}

/// A request in a [`StepTrace`] (a [`Request`] that serializes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TracedRequest {
    /// A read of the key.
    Read {
        /// The key.
        key: Vec<u8>,
    },
    /// A write of `datum` under the key.
    Write {
        /// The key.
        key: Vec<u8>,
        /// The value.
        datum: Vec<u8>,
    },
}

impl StepTrace {
    /// The trace of the step that was fed `input` and reported `report`.
    pub fn of(input: Option<&Input>, report: &StepReport) -> Self {
        let (requests, halted) = match &report.result {
            Ok(output) => (output.requests.iter().map(TracedRequest::from).collect(), output.halted),
            Err(_) => (Vec::new(), false),
        };
        Self { key: input.map(|input| input.key.clone()), gas_used: report.gas_used, requests, halted }
    }
}

impl From<&Request> for TracedRequest {
    fn from(request: &Request) -> Self {
        match request {
            Request::Read(key) => Self::Read { key: key.clone() },
            Request::Write(key, datum) => Self::Write { key: key.clone(), datum: datum.clone() },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn a_long_line_is_cut_at_a_char_boundary_and_says_its_length() {
        // 'é' is two bytes: the bound falls in the middle of one.
        let message = format!("a{}", "é".repeat(LOG_LINE_BYTES));
        let mut log = GuestLog::default();
        log.push(&message);
        let line = &log.lines[0];
        assert!(line.starts_with('a') && line.ends_with(&format!("… ({} bytes in all)", message.len())), "{line}");
        assert_eq!(line.find('…'), Some(LOG_LINE_BYTES - 1));
    }

    #[test]
    fn lines_past_the_bound_are_counted_not_kept() {
        let mut log = GuestLog::default();
        for line in 0..LOG_LINES + 3 {
            log.push(&line.to_string());
        }
        assert_eq!((log.lines.len(), log.dropped), (LOG_LINES, 3));
        let mut later = GuestLog::default();
        later.push("x");
        let mut first = GuestLog::default();
        for _ in 0..LOG_LINES - 1 {
            first.push("y");
        }
        first.append(log);
        assert_eq!((first.lines.len(), first.dropped), (LOG_LINES, LOG_LINES as u64 - 1 + 3));
        first.append(later);
        assert_eq!(first.dropped, LOG_LINES as u64 + 3);
    }
}
