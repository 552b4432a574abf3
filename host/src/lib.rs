//! The executor host: runs Anoma's Executor Engine with the executor
//! function supplied as a sandboxed WebAssembly component.
//!
//! - [`program`]: the executor function as the host calls it, one metered
//!   step at a time ([`program::Program`]), with its failures and limits;
//!   wasm and native implementations share it.
//! - [`wasm`]: the sandbox: one wasmtime engine, deterministic
//!   configuration, pooling, gas, limits, validation, compiled-artifact
//!   cache.
//! - [`module_store`]: deployed guest components by name in a directory:
//!   validated, content-addressed, written atomically.
//! - [`engine`]: nspec's engine model (config, environment, triggers,
//!   guards, actions, effects), pure and synchronous.
//! - [`node`]: the engine runtime on tokio: mailboxes, timers, a router,
//!   a thread pool for guest calls.
//! - [`messages`]: the protocol.
//! - [`executor`]: the Executor Engine, nspec's defects fixed.
//! - [`host`]: the embedding API for a shard or worker process.
//! - [`shard`], [`worker`]: the reference shard and mempool worker.
//! - [`harness`]: a whole node in one process, deterministic or concurrent.
//! - [`scenario`]: the JSON scenario format of the `run` command.

pub mod engine;
pub mod executor;
pub mod harness;
pub mod host;
pub mod messages;
pub mod module_store;
pub mod node;
pub mod program;
pub mod scenario;
pub mod shard;
pub mod wasm;
pub mod worker;
