//! Paths of the guest components built by this crate's build script.
//!
//! The build script compiles the guest crates of this workspace for
//! `wasm32-unknown-unknown` with the `guest` profile, in a target directory
//! of its own (so it never fights the outer build for its lock), and turns
//! each core module into a component with `wit-component`. Tests, benchmarks
//! and examples read the files at these paths; nothing here is for
//! production use.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
