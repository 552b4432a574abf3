//! Paths of the guest components built by this crate's build script.
//!
//! The build script compiles the guest crates of this workspace for
//! `wasm32-unknown-unknown` with the `guest` profile, in a target directory
//! of its own (so it never fights the outer build for its lock; one per
//! outer profile directory, [`TARGET_DIR`], which tests that build a guest
//! again reuse), and turns
//! each core module into a component, all with `executor-guest-build` (the
//! mechanism behind `executor-host build`). Tests, benchmarks and examples
//! read the files at these paths; nothing here is for production use.
//!
//! Guests marked as debug builds in the table (`HOSTILE_DEBUG`) are built
//! with the SDK's debug assertions on, so they export the `executor-debug`
//! world and import `log`: only a dev sandbox loads them. Every other
//! component imports nothing.
//!
//! One table in `build.rs` lists the guests. For each it generates
//! `NAME` (the component's path) and `NAME_CORE` (the core module's path,
//! for tests that hosts reject core modules); [`ALL`] lists the components;
//! and [`foreach_guest!`] invokes a macro of yours once per guest as
//! `$mac!(name, guest_artifacts::NAME)`, `name` the guest's snake case name
//! (`transfer`, `wrong_world`) and the second argument an expression, the
//! component's path.
//!
//! # Every guest has a test
//!
//! A test module names one test per guest after the guest and invokes
//! `foreach_guest!` with a macro that refers to the function of that name:
//! adding a guest to the table without adding its test is then a compile
//! error (``unresolved import `self::wasi_import` ``), not a guest silently
//! left untested. In a test binary the functions are `#[test]`s:
//!
//! ```
//! mod guests {
//!     macro_rules! assert_test_exists {
//!         ($name:ident, $path:expr) => {
//!             #[allow(unused_imports)]
//!             use self::$name as _;
//!         };
//!     }
//!     guest_artifacts::foreach_guest!(assert_test_exists);
//!
//!     fn transfer() {}
//!     fn counter() {}
//!     fn hostile() {}
//!     fn nockma() {}
//!     fn wrong_world() {}
//!     fn wasi_import() {}
//!     fn hostile_debug() {}
//! }
//! ```
//!
//! Leaving one out does not compile:
//!
//! ```compile_fail
//! mod guests {
//!     macro_rules! assert_test_exists {
//!         ($name:ident, $path:expr) => {
//!             #[allow(unused_imports)]
//!             use self::$name as _;
//!         };
//!     }
//!     guest_artifacts::foreach_guest!(assert_test_exists);
//!
//!     fn transfer() {}
//! }
//! ```
//!
//! The same macro can generate a check per guest from its path:
//!
//! ```
//! macro_rules! exists {
//!     ($name:ident, $path:expr) => {
//!         assert!(std::path::Path::new($path).is_file(), "{}: {}", stringify!($name), $path);
//!     };
//! }
//! guest_artifacts::foreach_guest!(exists);
//! ```

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
