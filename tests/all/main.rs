//! Host-side integration tests: one binary, one module per area.
//!
//! - `support`: shared helpers (loading guests, driving a transaction).
//! - `guests`: the example executor functions, wasm against native.
//! - `sandbox`: loading and validation, hostile guests, limits, gas.
//! - `determinism`: same inputs give the same outputs and gas everywhere.
//! - `cli`: the `executor-host` binary.
//! - `scripted`: a native function driven by a script, and a driver for one
//!   executor on a virtual clock.
//! - `executor`: one test per correction of nspec in the executor engine.

mod cli;
mod determinism;
mod guests;
mod sandbox;
mod support;
mod executor;
mod scripted;
