//! The executor host: runs Anoma's Executor Engine with the executor
//! function supplied as a sandboxed WebAssembly component.
//!
//! This crate is for **embedding**: a shard or worker process links it,
//! starts an [`ExecutorHost`] on its tokio runtime with its own [`Router`]
//! (where outgoing messages go) and [`ShardMap`] (which shard owns a key),
//! loads guests once with a [`Sandbox`] (or from a [`ModuleStore`]), then
//! spawns one executor per [`Transaction`] and delivers every [`Message`]
//! addressed to one. Everything an embedder needs is re-exported here.
//! Testing a guest against a reference shard and worker is the
//! `executor-testkit` crate's job; the command-line tool is the
//! `executor-host-cli` package.
//!
//! Inside, one module per concept:
//!
//! - [`engine`]: nspec's engine model (config, environment, triggers,
//!   guards, actions, effects, timers), pure and synchronous;
//! - [`runtime`]: hosts engines of one behaviour on tokio: mailboxes,
//!   timers, a router, a thread pool for guest calls;
//! - `messages`: the protocol; `program`: the executor function as the
//!   host calls it, one metered step ([`Program`], [`Failure`]);
//! - `diagnostics`: a debug build's log lines ([`GuestLog`]) and the step
//!   trace ([`StepTrace`]), for people debugging a guest;
//! - `wasm`: the sandbox ([`Sandbox`], [`WasmProgram`]);
//! - `executor`: the Executor Engine with nspec's defects fixed;
//! - `embed`: the embedding API ([`ExecutorHost`]);
//! - `module_store`: deployed components by name ([`ModuleStore`]).
//!
//! What this crate must not do: depend on a CLI, an example guest or a
//! componentizer (an embedder compiles only what it runs), or take a path
//! where a [`cap_std::fs::Dir`] will do.

#![warn(missing_docs)]

mod diagnostics;
mod embed;
pub mod engine;
mod executor;
mod messages;
mod module_store;
mod program;
pub mod runtime;
mod wasm;

pub use diagnostics::{
    Diagnostics, GuestLog, LOG_GAS_PER_BYTE, LOG_GAS_PER_LINE, LOG_LINE_BYTES, LOG_LINES, SKIPPED_ACCESSES,
    SkippedAccess, StepTrace, TracedRequest,
};
pub use embed::{ExecutorHost, HostConfig};
pub use engine::{EngineId, Envelope, Time};
pub use executor::{
    AccessMode, DropReason, ExecutorMetrics, ExecutorOptions, NO_DEADLINE, REPORT_ENTRY_BYTES, ShardMap, Transaction,
    WriteMode, executor_id, executor_timestamp, is_executor_id, report_entry_bytes,
};
pub use messages::{Datum, ExecutorFinished, Key, KeySets, Message, Timestamp};
pub use module_store::{Deployed, ModuleStore, StoreError, validate_name};
pub use program::{
    Access, Failure, GUEST_MESSAGE_BYTES, Input, Limits, NativeProgram, Oversize, Program, Request, Session, StepCall,
    StepOutput, StepReport, TrapKind,
};
pub use runtime::{Execution, Inbox, Refused, Router, RuntimeMetrics, Spawner, Stopped};
pub use wasm::{
    BYTES_PER_GAS, ComponentInfo, GAS_PER_MEMORY_PAGE, LoadError, Sandbox, SandboxConfig, SandboxError, WasmProgram,
};

/// Internals that the test kit and the integration tests drive directly:
/// the executor as an engine, for hosts other than [`ExecutorHost`] (the
/// test kit's deterministic simulation). Not a stable API.
#[doc(hidden)]
pub mod __internal {
    pub use crate::executor::{Clock, Executor, ExecutorAction, ExecutorConfig, ExecutorState, ExecutorTimer, Shared};
}
