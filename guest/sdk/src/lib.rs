//! The guest SDK: write an executor function as one Rust trait impl, export
//! it with one macro.
//!
//! An *executor function* is the transaction logic the executor engine runs:
//! nspec's `Runnable` (`starting-state`, `execute-step`, `halted`). The same
//! impl serves two builds:
//!
//! - for `wasm32-unknown-unknown`, [`export_executor!`] exports it as the WIT
//!   world `executor` (`wit/executor.wit`); turned into a component, it has
//!   no imports at all, so the guest has no ambient authority;
//! - natively, the macro expands to nothing and the host links the type
//!   directly, to run the identical function in-process (differential tests,
//!   benchmarks, `--native`).
//!
//! **Debug builds.** When this crate is compiled with debug assertions (the
//! `dev` profile: `executor-host build --dev`, or a plain `cargo build` for
//! wasm32), the same macro exports the world `executor-debug` instead,
//! which imports one function, `log`: [`debug!`] writes a line through it,
//! and a panic's message is logged before the guest traps. Only a host in
//! dev mode (`executor-host run --dev`) runs such a component; a
//! production host refuses it on load. Release builds (the `guest`
//! profile `executor-host build` uses) target `executor` with zero imports,
//! and [`debug!`] compiles to nothing. Natively, [`debug!`] writes to
//! stderr in debug builds.
//!
//! ```
//! use executor_guest::{ExecutorFunction, Input, Request, Step};
//!
//! /// Reads `k` and writes back its length.
//! pub struct Echo;
//!
//! impl ExecutorFunction for Echo {
//!     fn starting_state(_executable: &[u8]) -> Result<Vec<u8>, String> {
//!         Ok(b"start".to_vec())
//!     }
//!     fn execute_step(_exe: &[u8], _state: &[u8], input: Option<Input>) -> Result<Step, String> {
//!         Ok(match input {
//!             None => Step::new(b"wait".to_vec(), vec![Request::Read(b"k".to_vec())]),
//!             Some(read) => {
//!                 let len = read.datum.map_or(0, |d| d.len());
//!                 Step::new(b"done".to_vec(), vec![Request::Write(b"k".to_vec(), len.to_string().into_bytes())])
//!             }
//!         })
//!     }
//!     fn halted(state: &[u8]) -> bool {
//!         state == b"done"
//!     }
//! }
//!
//! executor_guest::export_executor!(Echo);
//! ```
//!
//! This crate must stay free of anything that would make a component import
//! a host interface (WASI, clocks, randomness): on `wasm32-unknown-unknown`
//! std's I/O is inert and a panic is a trap. The one import it may ever
//! add is the debug world's `log`, and only in debug builds.

// The generated bindings name this crate by its absolute path, as user
// crates see it; this makes the same path resolve inside the crate itself.
extern crate self as executor_guest;

#[cfg(target_arch = "wasm32")]
pub mod arena;

/// A value delivered to the program. `datum` is `None` when the key has never
/// been written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub key: Vec<u8>,
    pub datum: Option<Vec<u8>>,
}

/// One output of a step, carried out in the order the step emits them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Ask for the value of a key (it arrives as the input of a later step).
    Read(Vec<u8>),
    /// Write `datum` under `key`.
    Write(Vec<u8>, Vec<u8>),
}

/// What one step returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Step {
    /// The next program state; the host keeps it until the next step.
    pub state: Vec<u8>,
    pub requests: Vec<Request>,
}

impl Step {
    pub fn new(state: Vec<u8>, requests: Vec<Request>) -> Self {
        Self { state, requests }
    }
}

/// An executor function. All functions are associated (no `self`): a guest
/// keeps nothing between calls except the state bytes the host hands back.
pub trait ExecutorFunction {
    /// The state a transaction starts in, given its executable.
    fn starting_state(executable: &[u8]) -> Result<Vec<u8>, String>;

    /// One step. `input` is `None` for the first step of every transaction,
    /// which runs before any read arrives; afterwards it is the value read.
    /// An `Err` fails the transaction with that message.
    fn execute_step(executable: &[u8], state: &[u8], input: Option<Input>) -> Result<Step, String>;

    /// Whether the program has finished successfully in `state`.
    fn halted(state: &[u8]) -> bool;
}

// Generated canonical-ABI glue is `unsafe` by nature; nothing else here is.
// Its lowered functions take one argument per flattened value (ten for
// `execute-step`), which is the ABI, not a design choice.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
#[allow(unsafe_code, clippy::too_many_arguments)]
pub mod __bindings {
    // One world or the other, chosen by this crate's own build: the
    // bindings, the export macro they generate and `debug!` must agree, so
    // the switch lives here and not in the guest crate that expands the
    // macros.
    #[cfg(not(debug_assertions))]
    wit_bindgen::generate!({
        // The package's own copy of the top-level `wit/`, so the crate packages
        // on its own; `tests/wit_copy.rs` keeps the two identical.
        path: "wit",
        world: "executor",
        pub_export_macro: true,
        export_macro_name: "__export_executor_world",
        default_bindings_module: "::executor_guest::__bindings",
        runtime_path: "::executor_guest::__bindings::__rt",
    });

    // A debug build: the same exports, plus the `log` import.
    #[cfg(debug_assertions)]
    wit_bindgen::generate!({
        path: "wit",
        world: "executor-debug",
        pub_export_macro: true,
        export_macro_name: "__export_executor_world",
        default_bindings_module: "::executor_guest::__bindings",
        runtime_path: "::executor_guest::__bindings::__rt",
    });

    /// Sends a panic's message (with its location) through `log` before
    /// the guest traps, which otherwise says only `unreachable`. Installed
    /// at every entry, which every fresh instance needs; the later calls
    /// of a round (one instance) install it again, a debug build's cost.
    #[cfg(debug_assertions)]
    fn log_panics() {
        std::panic::set_hook(Box::new(|info| log(&info.to_string())));
    }

    #[cfg(not(debug_assertions))]
    fn log_panics() {}

    #[doc(hidden)]
    pub use wit_bindgen::rt as __rt;

    use super::ExecutorFunction;

    /// Adapts an [`ExecutorFunction`] to the generated `Guest` trait, so user
    /// code never sees generated types.
    #[derive(Debug)]
    pub struct Adapter<F>(core::marker::PhantomData<F>);

    impl<F: ExecutorFunction> Guest for Adapter<F> {
        fn starting_state(executable: Vec<u8>) -> Result<Vec<u8>, String> {
            log_panics();
            F::starting_state(&executable)
        }

        fn execute_step(executable: Vec<u8>, state: Vec<u8>, input: Option<Input>) -> Result<Step, String> {
            log_panics();
            let input = input.map(|i| super::Input { key: i.key, datum: i.datum });
            let step = F::execute_step(&executable, &state, input)?;
            Ok(Step {
                state: step.state,
                requests: step
                    .requests
                    .into_iter()
                    .map(|r| match r {
                        super::Request::Read(key) => Request::Read(key),
                        super::Request::Write(key, datum) => Request::Write(WriteRequest { key, datum }),
                    })
                    .collect(),
            })
        }

        fn halted(state: Vec<u8>) -> bool {
            log_panics();
            F::halted(&state)
        }
    }

    /// Writes one line through the debug world's `log`.
    #[cfg(debug_assertions)]
    pub fn debug_line(args: core::fmt::Arguments<'_>) {
        log(&args.to_string());
    }
}

/// Whether this is a debug build of the SDK (compiled with debug
/// assertions): a guest then exports the `executor-debug` world, and
/// [`debug!`] writes lines. `false` in release builds, where a component
/// has no imports and [`debug!`] compiles to nothing.
pub const DEBUG: bool = cfg!(debug_assertions);

/// Writes one line of debug output: what [`debug!`] calls, in debug builds
/// only.
#[doc(hidden)]
pub fn __debug_line(args: core::fmt::Arguments<'_>) {
    #[cfg(all(target_arch = "wasm32", debug_assertions))]
    __bindings::debug_line(args);
    // Natively there is no host to log to: a guest's own tests show it.
    #[cfg(all(not(target_arch = "wasm32"), debug_assertions))]
    std::eprintln!("[guest debug] {args}");
    #[cfg(not(debug_assertions))]
    let _ = args;
}

/// Formats a line of debug output, as `format!` does, and sends it to the
/// host: in a debug build (see [`DEBUG`]) a host in dev mode (`executor-host
/// run --dev`) shows it in the transaction's report (a bounded number of
/// lines per transaction, each cut short past a bound, its bytes charged
/// as gas); natively it goes to stderr. In a release build it compiles to
/// nothing: the arguments are type-checked but never evaluated.
///
/// ```
/// let balance = 70;
/// executor_guest::debug!("balance after the transfer: {balance}");
/// ```
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => {
        if $crate::DEBUG {
            $crate::__debug_line(::core::format_args!($($arg)*));
        }
    };
}

/// Exports an [`ExecutorFunction`] as the guest's `executor` world (the
/// `executor-debug` world in a debug build, see [`DEBUG`]).
///
/// Expands to nothing outside `wasm32`, so the crate can also be linked
/// natively by the host. In wasm it also installs the `arena::StepArena`
/// allocator (fast, frees nothing until the step ends); write
/// `export_executor!(MyFunction, own_allocator)` to keep Rust's default or
/// your own `#[global_allocator]` instead.
#[macro_export]
macro_rules! export_executor {
    ($function:ty) => {
        $crate::export_executor!($function, own_allocator);
        #[cfg(target_arch = "wasm32")]
        #[global_allocator]
        static __EXECUTOR_ARENA: $crate::arena::StepArena = $crate::arena::StepArena::new();
    };
    ($function:ty, own_allocator) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            type __ExecutorExport = $crate::__bindings::Adapter<$function>;
            $crate::__bindings::__export_executor_world!(
                __ExecutorExport with_types_in $crate::__bindings
            );
        };
    };
}
