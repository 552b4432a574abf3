//! The executor host: runs Anoma's Executor Engine with the executor
//! function supplied as a sandboxed WebAssembly component.
//!
//! - [`program`]: the executor function as the host calls it, one metered
//!   step at a time ([`program::Program`]), with its failures and limits;
//!   wasm and native implementations share it.
//! - [`wasm`]: the sandbox: one wasmtime engine, deterministic
//!   configuration, pooling, gas, limits, validation, compiled-artifact
//!   cache.

pub mod engine;
pub mod executor;
pub mod host;
pub mod messages;
pub mod node;
pub mod program;
pub mod wasm;
