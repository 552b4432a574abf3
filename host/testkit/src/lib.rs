//! Test executor functions host-side: the other side of the protocol in
//! one process, as CosmWasm authors use `cw-multi-test` and Soroban authors
//! the SDK's test utilities.
//!
//! - [`shard`], [`worker`]: the reference multi-version shard and the
//!   mempool worker, nspec's messages with their internals fixed;
//! - [`harness`]: a whole node in one process (shards, worker, executor
//!   host), deterministic (seeded, virtual time) or concurrent (tokio);
//! - [`scenario`]: the JSON scenario format of `executor-host run`, and
//!   the report it prints;
//! - [`record`]: recording mode: run with access unrestricted and learn
//!   each transaction's key sets;
//! - [`heap`]: a counting allocator for benchmarks (allocations, peak);
//! - [`rng`]: the one seeded, version-stable generator tests, oracle and
//!   benchmarks share.
//!
//! What this crate must not do: be linked by a production embedder (the
//! shard keeps everything in memory and persists nothing), or reach into
//! the executor other than through `executor-host`'s public API and its
//! hidden `__internal` module.

#![warn(missing_docs)]

pub mod harness;
pub mod heap;
pub mod record;
pub mod rng;
pub mod scenario;
pub mod shard;
pub mod worker;

pub use harness::{Delivery, HarnessError, Outcome, TxOutcome, TxSpec, Workload, execute};
pub use rng::Rng;
pub use scenario::{Report, Scenario, ScenarioError};
