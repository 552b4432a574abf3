//! The executor function as the host sees it: one metered step at a time.
//!
//! [`Program`] is what the executor engine calls. It has two implementations:
//! [`crate::wasm::WasmProgram`] (a sandboxed guest component: gas, memory and
//! time limits enforced by wasmtime) and [`NativeProgram`] (the same
//! [`executor_guest::ExecutorFunction`] linked into the host, for
//! differential tests and benchmarks; it is trusted, unmetered code). Both
//! apply the same output [`Limits`], so a step that is valid on one is valid
//! on the other.
//!
//! This module knows nothing of messages, shards or timers.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use executor_guest::ExecutorFunction;
pub use executor_guest::{Input, Request};
use serde::{Deserialize, Serialize};

use crate::diagnostics::GuestLog;

/// One call into the executor function: the step the engine wants to run.
#[derive(Debug, Clone, Copy)]
pub struct StepCall<'a> {
    /// The transaction's code, handed to every call.
    pub executable: &'a [u8],
    /// The program state after the previous step, or `None` for the first
    /// step, which computes the starting state first.
    pub state: Option<&'a [u8]>,
    /// The value read (`None` for the first step).
    pub input: Option<&'a Input>,
    /// Gas the step may use: what is left of the transaction's budget.
    pub gas_limit: u64,
}

/// What a successful step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutput {
    /// The program state after the step: the next step's `state`.
    pub state: Vec<u8>,
    /// In the order the step emitted them.
    pub requests: Vec<Request>,
    /// Whether `state` is a halted (successfully finished) state.
    pub halted: bool,
}

/// The result of a step and the gas it used, which is charged either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    /// What the step produced, or why it failed.
    pub result: Result<StepOutput, Failure>,
    /// Gas the step used, at most the call's `gas_limit`.
    pub gas_used: u64,
    /// What a debug build logged during the call, failed or not (in a dev
    /// sandbox only; empty otherwise, and then it allocates nothing).
    pub log: GuestLog,
}

/// Runs steps of an executor function. Implementations keep no
/// per-transaction state: everything a step needs is in the [`StepCall`]
/// (a [`Session`] keeps what one round of one transaction shares, and is
/// dropped with the round).
pub trait Program: Send + Sync + fmt::Debug {
    /// Runs one step: the starting state first if `call.state` is `None`,
    /// then the step on `call.input`, then the check for a halted state.
    fn step(&self, call: StepCall<'_>) -> StepReport;

    /// A [`Session`] for steps the executor runs back to back (a round:
    /// values that are due together, whatever order they arrived in), if
    /// this program serves them more cheaply together than one
    /// [`Program::step`] each. The executor calls only the session's
    /// `step` while it lasts, and drops it at the end of the round; which
    /// steps share a session depends only on the transaction and its
    /// snapshot, so a session may carry state from one of its steps to the
    /// next (a warm instance) without making a step's result or gas
    /// depend on delivery order. By default `None`: every step stands
    /// alone.
    fn session(&self) -> Option<Box<dyn Session + '_>> {
        None
    }
}

/// Steps of one round, run one after another ([`Program::session`]).
pub trait Session {
    /// Runs one step, as [`Program::step`] does.
    fn step(&mut self, call: StepCall<'_>) -> StepReport;
}

/// Why a step, and so its transaction, failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Failure {
    /// The executor function returned an error (e.g. `insufficient funds`).
    #[error("guest error: {message}")]
    Guest {
        /// The executor function's error message.
        message: String,
    },
    /// The transaction's gas budget is exhausted.
    #[error("out of gas")]
    OutOfGas,
    /// One guest call ran past the wall-clock bound.
    #[error("guest call exceeded the wall-clock bound of {bound_ms} ms")]
    Timeout {
        /// The bound, in milliseconds ([`Limits::call_time`]).
        bound_ms: u64,
    },
    /// The guest tried to grow its linear memory past the limit.
    #[error("guest memory limit of {limit} bytes exceeded")]
    MemoryLimit {
        /// The limit, in bytes ([`Limits::memory_bytes`]).
        limit: u64,
    },
    /// The guest tried to grow a table past the limit.
    #[error("guest table limit of {limit} elements exceeded")]
    TableLimit {
        /// The limit, in elements ([`Limits::table_elements`]).
        limit: u64,
    },
    /// The guest exhausted the wasm call stack.
    #[error("guest call stack exhausted")]
    StackOverflow,
    /// The guest trapped (a Rust panic is `unreachable`).
    #[error("guest trapped: {trap}")]
    Trap {
        /// Which trap.
        trap: TrapKind,
    },
    /// A step's output broke one of the size [`Limits`].
    #[error("{what} of {size} exceeds the limit of {limit}")]
    TooLarge {
        /// Which output.
        what: Oversize,
        /// Its size: a count of requests, or bytes.
        size: u64,
        /// The limit it exceeds.
        limit: u64,
    },
    /// The transaction did not finish before its deadline.
    #[error("transaction deadline of {bound_ms} ms passed")]
    Deadline {
        /// The deadline, in milliseconds after spawn
        /// ([`ExecutorOptions::deadline`](crate::ExecutorOptions::deadline)).
        bound_ms: u64,
    },
    /// The program neither halted nor asked for a value it has not been
    /// fed: no value can come, so it would wait for ever, holding its
    /// locks (and every later transaction on its keys would wait behind
    /// it). It fails at once instead of at its deadline, so that its
    /// outcome, and theirs, does not depend on time.
    #[error(
        "the program neither halted nor asked for a value it has not been fed (a read skipped in lenient mode is not asked for): it would wait for ever"
    )]
    Stalled,
    /// The program read or wrote a key the transaction did not declare, or
    /// wrote a key twice in streaming mode (where the first write is final
    /// at its shard as soon as it is sent).
    #[error("{}", access_violation(key, *access))]
    AccessViolation {
        /// The key.
        key: Vec<u8>,
        /// What the program did with it.
        access: Access,
    },
    /// The host could not run the guest at all (e.g. the instance pool is
    /// exhausted).
    #[error("could not run the guest: {message}")]
    Host {
        /// What went wrong, as wasmtime describes it (causes included).
        message: String,
    },
}

fn access_violation(key: &[u8], access: Access) -> String {
    let key = String::from_utf8_lossy(key);
    match access {
        Access::Read | Access::Write => format!("undeclared {access} of key {key}"),
        Access::Rewrite => {
            format!("second write of key {key} in streaming mode (its first write is already final at its shard)")
        }
    }
}

/// The longest guest error message kept, in bytes: the message travels in
/// `ExecutorFinished` to the worker and the issuer, so it is bounded like
/// every other output of a guest.
pub const GUEST_MESSAGE_BYTES: usize = 4096;

impl Failure {
    /// A guest's error, its message cut to [`GUEST_MESSAGE_BYTES`] (at a
    /// character boundary, saying how long it was).
    pub fn guest(message: String) -> Self {
        if message.len() <= GUEST_MESSAGE_BYTES {
            return Self::Guest { message };
        }
        let mut end = GUEST_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let total = message.len();
        let mut message = message;
        message.truncate(end);
        message.push_str(&format!("… ({total} bytes in all)"));
        Self::Guest { message }
    }

    /// The failure's kind as it is serialized (`"guest"`, `"out_of_gas"`,
    /// `"deadline"`, ...): a stable name for counting and reporting.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Guest { .. } => "guest",
            Self::OutOfGas => "out_of_gas",
            Self::Timeout { .. } => "timeout",
            Self::MemoryLimit { .. } => "memory_limit",
            Self::TableLimit { .. } => "table_limit",
            Self::StackOverflow => "stack_overflow",
            Self::Trap { .. } => "trap",
            Self::TooLarge { .. } => "too_large",
            Self::Deadline { .. } => "deadline",
            Self::Stalled => "stalled",
            Self::AccessViolation { .. } => "access_violation",
            Self::Host { .. } => "host",
        }
    }
}

/// The kinds of trap a guest can raise, besides those with their own
/// [`Failure`] variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TrapKind {
    /// `unreachable`: a Rust guest's panic or abort.
    Unreachable,
    /// An access outside linear memory (also how a Rust guest's shadow stack
    /// overflow shows up).
    MemoryOutOfBounds,
    /// Integer division by zero or overflow, or a bad float-to-int cast.
    Arithmetic,
    /// A bad indirect call.
    IndirectCall,
    /// The guest handed back a value the canonical ABI cannot read (a
    /// pointer out of bounds, a bad discriminant, invalid UTF-8), as
    /// wasmtime describes it.
    InvalidValue(String),
    /// Anything else, as wasmtime describes it.
    Other(String),
}

impl fmt::Display for TrapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable => f.write_str("unreachable (the guest panicked or aborted)"),
            Self::MemoryOutOfBounds => f.write_str("out-of-bounds memory access"),
            Self::Arithmetic => f.write_str("arithmetic trap"),
            Self::IndirectCall => f.write_str("bad indirect call"),
            Self::InvalidValue(message) => write!(f, "invalid value handed back: {message}"),
            Self::Other(message) => f.write_str(message),
        }
    }
}

/// The kind of access that broke the transaction's declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// A read of a key declared neither lazy nor eager.
    Read,
    /// A write of a key declared neither will-write nor may-write.
    Write,
    /// A second write of one key in streaming mode, where the first was
    /// already final at the shard.
    Rewrite,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Rewrite => "second write",
        })
    }
}

/// Which output of a step was too large.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Oversize {
    /// The requests of one step ([`Limits::requests_per_step`]).
    Requests,
    /// A key read or written ([`Limits::key_bytes`]).
    Key,
    /// A value written ([`Limits::datum_bytes`]).
    Datum,
    /// The program state ([`Limits::state_bytes`]).
    State,
    /// Every key and value a transaction read and wrote, which its report
    /// carries
    /// ([`ExecutorOptions::report_bytes`](crate::ExecutorOptions::report_bytes)).
    Report,
}

impl fmt::Display for Oversize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Requests => "requests in one step",
            Self::Key => "key bytes",
            Self::Datum => "datum bytes",
            Self::State => "state bytes",
            Self::Report => "report bytes (every key and value read and written)",
        })
    }
}

/// Bounds on what one guest call may use and produce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Linear memory per instance, in bytes. By default 16 MiB.
    pub memory_bytes: u64,
    /// Elements per table. By default 10 000.
    pub table_elements: u64,
    /// Wall-clock bound on one guest call (enforced by epoch interruption,
    /// with the granularity of the sandbox's tick). By default 10 s: far
    /// more than the default gas buys on a loaded host (its worst case
    /// measured here is about 13 ns per unit, 1.3 s for 100 M), since a
    /// timeout depends on the machine and gas must decide first.
    pub call_time: Duration,
    /// Requests one step may emit. By default 10 000.
    pub requests_per_step: u64,
    /// Longest key a step may read or write, in bytes. By default 4 KiB.
    pub key_bytes: u64,
    /// Longest value a step may write, in bytes. By default 1 MiB.
    pub datum_bytes: u64,
    /// Longest program state a step may return, in bytes. By default 1 MiB.
    pub state_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 16 << 20,
            table_elements: 10_000,
            call_time: Duration::from_secs(10),
            requests_per_step: 10_000,
            key_bytes: 4 << 10,
            datum_bytes: 1 << 20,
            state_bytes: 1 << 20,
        }
    }
}

/// `TooLarge` if `size` is past `limit`.
fn bound(what: Oversize, size: usize, limit: u64) -> Result<(), Failure> {
    let size = size as u64;
    if size > limit { Err(Failure::TooLarge { what, size, limit }) } else { Ok(()) }
}

impl Limits {
    /// Checks a starting state against the state limit (as a step's).
    pub fn check_state(&self, state: &[u8]) -> Result<(), Failure> {
        bound(Oversize::State, state.len(), self.state_bytes)
    }

    /// Checks a step's output against the size limits.
    pub fn check_output(&self, state: &[u8], requests: &[Request]) -> Result<(), Failure> {
        bound(Oversize::Requests, requests.len(), self.requests_per_step)?;
        self.check_state(state)?;
        for request in requests {
            match request {
                Request::Read(key) => bound(Oversize::Key, key.len(), self.key_bytes)?,
                Request::Write(key, datum) => {
                    bound(Oversize::Key, key.len(), self.key_bytes)?;
                    bound(Oversize::Datum, datum.len(), self.datum_bytes)?;
                }
            }
        }
        Ok(())
    }
}

/// An [`ExecutorFunction`] linked into the host. It runs unmetered (its gas
/// is always 0) and unsandboxed: use it for trusted code, tests and
/// comparison, not for code from users.
pub struct NativeProgram<F> {
    limits: Limits,
    function: PhantomData<fn() -> F>,
}

impl<F> NativeProgram<F> {
    /// A program that runs `F`, with its outputs checked against `limits`
    /// (only the size limits: native code has no memory, table or time
    /// bound).
    pub fn new(limits: Limits) -> Self {
        Self { limits, function: PhantomData }
    }
}

impl<F> fmt::Debug for NativeProgram<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeProgram").field("function", &std::any::type_name::<F>()).finish()
    }
}

impl<F: ExecutorFunction> Program for NativeProgram<F> {
    fn step(&self, call: StepCall<'_>) -> StepReport {
        let result = (|| {
            let starting;
            let state = match call.state {
                Some(state) => state,
                None => {
                    starting = F::starting_state(call.executable).map_err(Failure::guest)?;
                    self.limits.check_state(&starting)?;
                    &starting
                }
            };
            let step = F::execute_step(call.executable, state, call.input.cloned()).map_err(Failure::guest)?;
            self.limits.check_output(&step.state, &step.requests)?;
            let halted = F::halted(&step.state);
            Ok(StepOutput { state: step.state, requests: step.requests, halted })
        })();
        StepReport { result, gas_used: 0, log: GuestLog::default() }
    }
}
