//! Host-side integration tests: one binary, one module per area.
//!
//! - `support`: shared helpers (loading guests, driving a transaction).
//! - `guests`: the example executor functions, wasm against native.
//! - `c_guest`: the counter written in C against wit-bindgen's C bindings,
//!   built with clang at test time: imports nothing, and runs as the Rust
//!   counter does (skipped without the C toolchain, except under CI).
//! - `sandbox`: loading and validation, hostile guests, limits, gas.
//! - `debug_world`: debug builds (`executor-debug`, importing `log`):
//!   refused in production, bounded and paid for in a dev sandbox, their
//!   lines in `ExecutorFinished`.
//! - `step_trace`: the per-step trace option.
//! - `determinism`: same inputs give the same outputs and gas everywhere.
//! - `cli`: the `executor-host` binary.
//! - `cli_options`: the binary as operators and CI use it: configuration
//!   file, output formats, exit statuses, logs, completions, man page,
//!   `build`'s compact default.
//! - `scripted`: a native function driven by a script, and a driver for one
//!   executor on a virtual clock.
//! - `executor`: one test per correction of nspec in the executor engine.
//! - `host`: the embedding API on tokio.
//! - `runtime`: the engine runtime with an engine of its own: stops,
//!   panics, timers and mail of a busy engine, and random runs against a
//!   model of each engine.
//! - `executor_props`: random scripts and key sets against the invariants.
//! - `nockma`: nspec's Nock executor function, wasm against native.
//! - `harness`: the harness and scenario format against extreme input.
//! - `oracle`: serializability of whole runs through shards and worker.
//! - `shard`: the reference shard, message by message.
//! - `worker`: the mempool worker, message by message.
//! - `nats`: shards, worker and executor hosts as processes over a real
//!   NATS server: serializable, surviving a killed host and a server
//!   restart, and the example permissions.
//! - `module_store`: deploying, listing, loading and removing guests by
//!   name, safely and atomically, and the `deploy`/`list`/`remove` CLI.

// Tests and their helpers: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod c_guest;
mod cli;
mod cli_options;
mod debug_world;
mod determinism;
mod executor;
mod executor_props;
mod guests;
mod harness;
mod host;
mod module_store;
mod nats;
mod nockma;
mod oracle;
mod runtime;
mod sandbox;
mod scripted;
mod shard;
mod step_trace;
mod support;
mod worker;
