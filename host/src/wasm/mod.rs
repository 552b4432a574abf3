//! The wasm runtime: a sandbox that loads guest components and runs their
//! steps, metered, bounded and deterministic.
//!
//! One [`Sandbox`] holds one wasmtime `Engine` (shared by every program it
//! loads), the configuration that makes execution deterministic, the pooling
//! allocator, the epoch ticker that bounds each call's wall-clock time, and a
//! cache of compiled components. [`Sandbox::load`] validates a component
//! against the `executor` world and returns a [`WasmProgram`], which runs
//! steps through [`crate::program::Program`].
//!
//! **Instance strategy: a fresh instance for every round.** The program
//! state lives in the host between steps, so an instance is needed only
//! during calls. [`Program::step`] runs a step in a fresh instance; a
//! [`Program::session`] runs the steps of one round (values due together by
//! construction: see the executor) back to back in one fresh instance. A
//! warm instance changes a later step's gas (the guest's allocator, say),
//! so the executor decides which steps share one from the transaction and
//! its snapshot alone, never from arrival order; no instance is shared
//! between transactions, so a guest cannot carry hidden state from one to
//! the next. The pooling allocator with resident memory kept warm, resets
//! of only the dirtied pages and copy-on-write images makes a fresh
//! instance cheap (see the README's benchmark). An executor waiting for a
//! read holds no instance at all.
//!
//! **Dev mode** ([`SandboxConfig::dev`], `executor-host run --dev`) also
//! loads debug builds, components of the `executor-debug` world, and links
//! their one import, `log` (`debug`: bounded and charged as gas); each
//! call's lines come back in [`StepReport::log`]. A production sandbox
//! refuses them ([`LoadError::DebugBuild`]) and links nothing.
//!
//! Loading compiles in the calling process, and compiling is not bounded
//! by a component's size (cranelift's time and memory grow faster for
//! some shapes of function): a host that loads components from strangers
//! compiles each first in a process it can bound, as the CLI does
//! (`src/compile.rs` of the `executor-host` command).
//!
//! What this module must not do: know about messages, transactions or
//! timers beyond one call, or give a guest any import (but `log` in dev
//! mode).
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use executor_host::{Program, StepCall};
//! use executor_host::{Sandbox, SandboxConfig};
//!
//! let sandbox = Sandbox::new(SandboxConfig::default())?;
//! let program = sandbox.load(&std::fs::read("transfer.wasm")?)?;
//! let exe = br#"{"from":"alice","to":"bob","amount":5}"#;
//! let report = program.step(StepCall { executable: exe, state: None, input: None, gas_limit: 1_000_000 });
//! println!("{:?} used {} gas", report.result, report.gas_used);
//! # Ok(()) }
//! ```

mod bindings;
mod cache;
mod debug;
mod inspect;
mod limiter;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

use crate::diagnostics::GuestLog;
use crate::program::{Failure, Limits, Program, Request, Session, StepCall, StepOutput, StepReport, TrapKind};
use bindings::{ExecutorPre, WriteRequest};
pub use cache::ArtifactCache;
pub(crate) use cache::read_bounded;
pub use inspect::{ComponentInfo, LoadError};
use limiter::CallLimiter;

/// How a [`Sandbox`] is set up. Everything here that changes compiled code
/// is part of the compiled-artifact cache key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Per-call limits applied to every program this sandbox loads. By
    /// default [`Limits::default`].
    pub limits: Limits,
    /// Instance slots of the pooling allocator: how many guest calls can run
    /// at once. `None` allocates on demand instead (slower per instance).
    /// By default 64.
    pub pool_slots: Option<u32>,
    /// The period of the epoch ticker; the wall-clock bound is rounded up
    /// to a whole number of ticks. By default 5 ms; from 100 µs to 1 s.
    pub epoch_tick: Duration,
    /// The wasm call stack a guest may use, in bytes. By default 256 KiB.
    pub max_wasm_stack: usize,
    /// The largest component loaded, in bytes. By default 8 MiB (the
    /// example guests are 30–110 KB). Compiling takes time and memory
    /// that grow with a component: these two bounds keep a hostile one
    /// from taking gigabytes of a host that loads it.
    pub max_component_bytes: u64,
    /// The most functions a component's core modules may define, together.
    /// By default 20 000 (the example guests define about 200; compiling
    /// 100 000 small ones took 7 s and 730 MB here).
    pub max_functions: u64,
    /// Dev mode: also load debug builds (components of the
    /// `executor-debug` world, which import `log`) and keep what they log,
    /// within [`GuestLog`]'s bounds, its bytes charged as gas
    /// ([`crate::LOG_GAS_PER_BYTE`]). For `executor-host run --dev` only:
    /// never read from or written to a configuration file, so no operator
    /// setting can let a debug build into a deployment. By default off.
    #[serde(skip)]
    pub dev: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            pool_slots: Some(64),
            epoch_tick: Duration::from_millis(5),
            max_wasm_stack: 256 << 10,
            max_component_bytes: 8 << 20,
            max_functions: 20_000,
            dev: false,
        }
    }
}

/// The sandbox could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// wasmtime refused the configuration, or a limit does not fit this
    /// platform.
    #[error("invalid sandbox configuration: {reason}")]
    Config {
        /// Which setting is wrong, or who refused it.
        reason: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The thread that bounds each call's wall-clock time could not be
    /// spawned.
    #[error("could not start the epoch ticker")]
    Ticker(#[source] std::io::Error),
}

/// Loads guest components and runs them in isolation. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<SandboxInner>,
}

struct SandboxInner {
    engine: Engine,
    linker: Linker<CallLimiter>,
    config: SandboxConfig,
    cache: ArtifactCache,
    slots: Arc<Slots>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Builds the wasmtime engine `config` describes and starts its epoch
    /// ticker, a thread that ends once the sandbox and every program it
    /// loaded are dropped.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        if config.epoch_tick < MIN_EPOCH_TICK {
            return Err(SandboxError::Config {
                reason: format!(
                    "`epoch_tick` must be at least {} µs (a shorter one keeps a core busy ticking)",
                    MIN_EPOCH_TICK.as_micros()
                ),
                source: "epoch tick too short".into(),
            });
        }
        if config.epoch_tick > MAX_EPOCH_TICK {
            return Err(SandboxError::Config {
                reason: format!(
                    "`epoch_tick` must be at most {} s (`limits.call_time` is rounded up to whole ticks)",
                    MAX_EPOCH_TICK.as_secs()
                ),
                source: "epoch tick too long".into(),
            });
        }
        if config.limits.call_time.is_zero() {
            // Clamped to one tick, it would pass or fail a call by how far
            // into a tick it started: a result of the machine, not of the
            // transaction.
            return Err(SandboxError::Config {
                reason: "`limits.call_time` must be longer than zero (no call could be sure to finish)".into(),
                source: "zero call time".into(),
            });
        }
        let settings = EngineSettings::of(&config)?;
        let engine = Engine::new(&settings.wasmtime())
            .map_err(|e| SandboxError::Config { reason: "wasmtime refused it".into(), source: e.into() })?;
        start_ticker(&engine, config.epoch_tick)?;
        let cache = ArtifactCache::new(&engine, &settings, config.dev);
        // The linker defines nothing (in dev mode, `log` only): a guest that
        // imports anything else fails to instantiate. `inspect` rejects
        // such guests earlier, by name.
        let linker = if config.dev { debug::linker(&engine)? } else { Linker::new(&engine) };
        let slots = Arc::new(Slots::new(config.pool_slots));
        Ok(Self { inner: Arc::new(SandboxInner { engine, linker, config, cache, slots }) })
    }

    /// The configuration the sandbox was created with.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Validates `bytes` as an executor component and compiles it (or takes
    /// it from the in-memory cache of this sandbox). A debug build is
    /// refused ([`LoadError::DebugBuild`]) unless the sandbox is in
    /// [`dev`](SandboxConfig::dev) mode.
    pub fn load(&self, bytes: &[u8]) -> Result<WasmProgram, LoadError> {
        self.load_with(bytes, None)
    }

    /// As [`Sandbox::load`], also keeping the compiled artifact in `dir`, so
    /// that a later process loads it without compiling.
    pub fn load_cached(&self, bytes: &[u8], dir: &cap_std::fs::Dir) -> Result<WasmProgram, LoadError> {
        self.load_with(bytes, Some(dir))
    }

    fn load_with(&self, bytes: &[u8], dir: Option<&cap_std::fs::Dir>) -> Result<WasmProgram, LoadError> {
        let inner = &self.inner;
        inspect::check_header(bytes)?;
        inspect::check_size(bytes, &inner.config)?;
        // The world is checked before an artifact is kept: a component of
        // another world never leaves one behind.
        let dev = inner.config.dev;
        let component = inner.cache.get_or_compile(&inner.engine, bytes, dir, |component| {
            inspect::check_world(&inner.engine, component, dev)
        })?;
        // Both fail only on exports of the wrong type (imports are refused
        // above). wasmtime's type-check message is then the reason the
        // world is wrong, as "missing exports" is: kept as text, so that
        // `WrongWorld` holds one kind of thing.
        let pre = inner.linker.instantiate_pre(&component).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let pre = ExecutorPre::new(pre).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let tick = inner.config.epoch_tick.as_nanos().max(1);
        let ticks = inner.config.limits.call_time.as_nanos().div_ceil(tick);
        let program = WasmProgram {
            inner: Arc::new(ProgramInner {
                pre,
                limits: inner.config.limits.clone(),
                epoch_ticks: u64::try_from(ticks).unwrap_or(u64::MAX).clamp(1, MAX_EPOCH_TICKS),
                size: bytes.len(),
                slots: inner.slots.clone(),
                // Only a dev sandbox gets here with a debug build.
                debug_build: dev && inspect::is_debug_build(&inner.engine, &component),
            }),
        };
        program.check_instantiates()?;
        Ok(program)
    }

    /// Describes a component (exports, imports, size) without keeping it.
    /// It does not say whether the component would load (a wrong world, an
    /// import, a debug build are described like any other): that is
    /// [`Sandbox::load`]'s to check. It refuses only what it cannot
    /// describe: not a component, past the size bound, invalid.
    pub fn inspect(&self, bytes: &[u8]) -> Result<ComponentInfo, LoadError> {
        inspect::check_header(bytes)?;
        inspect::check_size(bytes, &self.inner.config)?;
        let component = match self.inner.cache.remembered(bytes) {
            Some(component) => component,
            None => Component::new(&self.inner.engine, bytes).map_err(inspect::compile_error)?,
        };
        Ok(inspect::describe(&self.inner.engine, &component, bytes.len()))
    }
}

/// Every setting the sandbox gives wasmtime's engine, in one value: it
/// configures the engine ([`EngineSettings::wasmtime`]) and is hashed into
/// the compiled-artifact cache key, so no setting can change compiled code
/// without changing the key (wasmtime's own compatibility check ignores
/// some, NaN canonicalization among them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct EngineSettings {
    /// Canonical NaNs: floats give the same bits on every CPU.
    nan_canonicalization: bool,
    /// Relaxed SIMD with one deterministic result per instruction.
    relaxed_simd_deterministic: bool,
    /// Fuel metering: gas.
    consume_fuel: bool,
    /// Epoch interruption: the wall-clock bound on a call.
    epoch_interruption: bool,
    max_wasm_stack: usize,
    /// Backtraces are not captured: traps are classified, not debugged.
    backtraces: bool,
    pool: Option<PoolSettings>,
}

/// The pooling allocator's settings (they shape bounds checks in compiled
/// code, so they are part of the key too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct PoolSettings {
    slots: u32,
    max_memory_size: usize,
    table_elements: usize,
    memory_keep_resident: usize,
    table_keep_resident: usize,
    /// Reset only the pages a call dirtied, where the kernel can tell.
    pagemap_scan: bool,
}

/// Linear memory a freed pool slot keeps resident (warm for the next
/// instance), and the memory a call gets without paying for it.
const KEEP_RESIDENT: usize = 256 << 10;

impl EngineSettings {
    fn of(config: &SandboxConfig) -> Result<Self, SandboxError> {
        let too_large = |setting: &'static str, value: u64| {
            move |e: std::num::TryFromIntError| SandboxError::Config {
                reason: format!("`{setting}` of {value} does not fit in this platform's `usize`"),
                source: e.into(),
            }
        };
        let pool = match config.pool_slots {
            None => None,
            Some(0) => {
                return Err(SandboxError::Config {
                    reason: "`pool_slots` of 0: a pool needs a slot (leave it unset for instances on demand)".into(),
                    source: "no instance could ever run".into(),
                });
            }
            Some(slots) => Some(PoolSettings {
                slots,
                max_memory_size: usize::try_from(config.limits.memory_bytes)
                    .map_err(too_large("limits.memory_bytes", config.limits.memory_bytes))?,
                table_elements: usize::try_from(config.limits.table_elements)
                    .map_err(too_large("limits.table_elements", config.limits.table_elements))?,
                memory_keep_resident: KEEP_RESIDENT,
                table_keep_resident: 16 << 10,
                pagemap_scan: true,
            }),
        };
        Ok(Self {
            nan_canonicalization: true,
            relaxed_simd_deterministic: true,
            consume_fuel: true,
            epoch_interruption: true,
            max_wasm_stack: config.max_wasm_stack,
            backtraces: false,
            pool,
        })
    }

    /// The wasmtime configuration these settings describe, all of them.
    fn wasmtime(&self) -> Config {
        let mut wasm = Config::new();
        // Threads are off because wasmtime is built without `threads`.
        wasm.cranelift_nan_canonicalization(self.nan_canonicalization)
            .relaxed_simd_deterministic(self.relaxed_simd_deterministic)
            .consume_fuel(self.consume_fuel)
            .epoch_interruption(self.epoch_interruption)
            .max_wasm_stack(self.max_wasm_stack)
            .wasm_backtrace_max_frames(if self.backtraces { std::num::NonZeroUsize::new(20) } else { None });
        if let Some(pool) = &self.pool {
            let mut pooling = PoolingAllocationConfig::new();
            // Each slot holds what one component may have (the limiter's
            // counts), and no component may have more: a component that
            // cannot be instantiated is refused when it is compiled, not
            // when the pool runs dry under some other call.
            pooling
                .total_component_instances(pool.slots)
                .total_core_instances(pool.slots.saturating_mul(limiter::CORE_INSTANCES))
                .total_memories(pool.slots.saturating_mul(limiter::MEMORIES))
                .total_tables(pool.slots.saturating_mul(limiter::TABLES))
                .max_core_instances_per_component(limiter::CORE_INSTANCES)
                .max_memories_per_component(limiter::MEMORIES)
                .max_tables_per_component(limiter::TABLES)
                .max_memory_size(pool.max_memory_size)
                .table_elements(pool.table_elements)
                // Keep the first pages of a freed slot resident: a fresh
                // instance then reuses warm pages instead of faulting new ones.
                .linear_memory_keep_resident(pool.memory_keep_resident)
                .table_keep_resident(pool.table_keep_resident)
                // Where the kernel can say which pages a call dirtied
                // (Linux 6.7+), reset only those instead of the whole
                // resident prefix: most of a fresh instance's cost was
                // copying and zeroing 256 KiB a call never touched.
                .pagemap_scan(if pool.pagemap_scan { wasmtime::Enabled::Auto } else { wasmtime::Enabled::No });
            wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        }
        wasm
    }
}

/// Instance slots free in the pooling allocator. A call waits for one
/// instead of failing when every slot is in use: whether a transaction
/// succeeds must not depend on how many others run at the same moment.
#[derive(Debug)]
struct Slots {
    /// `None`: instances are allocated on demand, without a bound.
    free: Option<std::sync::Mutex<u32>>,
    freed: std::sync::Condvar,
}

impl Slots {
    fn new(slots: Option<u32>) -> Self {
        Self { free: slots.map(std::sync::Mutex::new), freed: std::sync::Condvar::new() }
    }

    /// Waits for a free slot; the slot is freed when the permit drops.
    fn acquire(&self) -> SlotPermit<'_> {
        if let Some(free) = &self.free {
            let mut free = free.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            while *free == 0 {
                free = self.freed.wait(free).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            *free -= 1;
        }
        SlotPermit(self)
    }
}

struct SlotPermit<'a>(&'a Slots);

impl Drop for SlotPermit<'_> {
    fn drop(&mut self) {
        if let Some(free) = &self.0.free {
            *free.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
            self.0.freed.notify_one();
        }
    }
}

/// Bumps the engine's epoch every `tick` until the engine is dropped. The
/// thread holds only a weak reference, so it never keeps the engine alive.
fn start_ticker(engine: &Engine, tick: Duration) -> Result<(), SandboxError> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("executor-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .map(drop)
        .map_err(SandboxError::Ticker)
}

/// A loaded guest component, ready to run steps. Cheap to clone and to
/// share between threads.
#[derive(Clone)]
pub struct WasmProgram {
    inner: Arc<ProgramInner>,
}

struct ProgramInner {
    pre: ExecutorPre<CallLimiter>,
    limits: Limits,
    epoch_ticks: u64,
    size: usize,
    slots: Arc<Slots>,
    debug_build: bool,
}

impl fmt::Debug for WasmProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmProgram").field("size", &self.inner.size).finish_non_exhaustive()
    }
}

impl WasmProgram {
    /// Whether the component is a debug build (it imports `log`), which
    /// only a dev sandbox loads.
    pub fn is_debug_build(&self) -> bool {
        self.inner.debug_build
    }

    /// Instantiates once and runs `calls` in that instance, as a session
    /// does a round's steps that succeed (with no calls: the cost of
    /// instantiating alone). Unlike a session it goes on after a failed
    /// step, and instantiating is not part of the first call's metering.
    /// For benchmarks and tests.
    #[doc(hidden)]
    pub fn step_reusing_instance(&self, calls: &[StepCall<'_>]) -> Vec<StepReport> {
        let _slot = self.inner.slots.acquire();
        let mut store = self.store();
        let instance = match self.inner.pre.instantiate(&mut store) {
            Ok(instance) => instance,
            Err(error) => {
                let failure = classify(&store, error, &self.inner.limits);
                return calls
                    .iter()
                    .map(|_| StepReport { result: Err(failure.clone()), gas_used: 0, log: GuestLog::default() })
                    .collect();
            }
        };
        calls
            .iter()
            .map(|call| self.metered(&mut store, *call, |store, call| self.run(store, &instance, call)))
            .collect()
    }

    /// Instantiates once, with a little fuel ([`LOAD_CHECK_FUEL`]), so
    /// that a component that could never be instantiated within the
    /// sandbox's limits (more instances, memories or tables than a guest
    /// may have, a larger initial memory or table) or at all (a data or
    /// element segment out of bounds, a start function that traps) is
    /// refused when loaded, not failed in every transaction. Instantiating
    /// takes no input, so what it does here it does in every transaction:
    /// a trap within this fuel comes at every instantiation (as a trap, or
    /// as running out of gas first). Running out of fuel or time here is
    /// not held against the component: with gas, a start function may
    /// well finish.
    fn check_instantiates(&self) -> Result<(), LoadError> {
        let _slot = self.inner.slots.acquire();
        let mut store = self.store();
        store.set_epoch_deadline(self.inner.epoch_ticks);
        store.epoch_deadline_trap();
        // Fails only where fuel is off, and the engine always meters it.
        let _ = store.set_fuel(LOAD_CHECK_FUEL);
        let Err(error) = self.inner.pre.instantiate(&mut store) else { return Ok(()) };
        let reason = match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::OutOfFuel | wasmtime::Trap::Interrupt) => return Ok(()),
            // wasmtime's words: "bad indirect call", our name for a call's
            // table fault, would mislead about a segment.
            Some(trap) => format!("initializing an instance traps: {trap}"),
            None => match classify(&store, error, &self.inner.limits) {
                Failure::Host { message } => message,
                failure => failure.to_string(),
            },
        };
        Err(LoadError::Uninstantiable(reason))
    }

    fn store(&self) -> Store<CallLimiter> {
        let limits = &self.inner.limits;
        let memory = usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX);
        let table = usize::try_from(limits.table_elements).unwrap_or(usize::MAX);
        let mut store = Store::new(self.inner.pre.engine(), CallLimiter::new(memory, table));
        store.limiter(|limiter| limiter);
        store
    }

    /// Gives the call its gas and time, runs `body`, and charges the gas
    /// used whether or not it succeeded: the fuel it burnt, the memory
    /// its instance grew to during it (an instance that served an earlier
    /// step of its round has paid for what it had), and the bytes its
    /// arguments and results carried across the boundary.
    fn metered(
        &self,
        store: &mut Store<CallLimiter>,
        call: StepCall<'_>,
        body: impl FnOnce(&mut Store<CallLimiter>, StepCall<'_>) -> wasmtime::Result<Result<StepOutput, Failure>>,
    ) -> StepReport {
        // Fuel is enabled in every sandbox engine, so these cannot fail.
        let _ = store.set_fuel(call.gas_limit);
        // What wasmtime may copy out of the guest while lifting one call's
        // results, bounded by what the budget could pay for: a guest whose
        // results alias one buffer many times (a list of requests all
        // pointing at the same bytes) hands back far more than its memory
        // holds, and the copy would cost the host before the charge for it
        // could fail the call.
        let (copy_bound, budget_bound) = copy_bound(call.gas_limit, &self.inner.limits);
        store.set_hostcall_fuel(copy_bound);
        store.set_epoch_deadline(self.inner.epoch_ticks);
        store.epoch_deadline_trap();
        let paid = memory_gas(store.data().memory_peak);
        store.data_mut().copied = 0;
        let mut copy_bound_hit = false;
        let result = match body(store, call) {
            Ok(result) => result,
            Err(error) => {
                copy_bound_hit = is_copy_bound(&error);
                Err(classify(store, error, &self.inner.limits))
            }
        };
        let left = store.get_fuel().unwrap_or(0);
        let memory = memory_gas(store.data().memory_peak).saturating_sub(paid);
        let copied = store.data().copied.div_ceil(BYTES_PER_GAS);
        let gas_used = call.gas_limit.saturating_sub(left).saturating_add(memory).saturating_add(copied);
        // What a debug build logged, kept whether or not the call failed (a
        // panic's message is the point); empty outside dev mode.
        let log = std::mem::take(&mut store.data_mut().log);
        let result = match result {
            // How much fuel an interrupted call burnt depends on the
            // machine: charge what no machine can differ on, the whole
            // budget. (Whether a call times out at all is the host
            // protecting itself, not part of the transaction's semantics.)
            Err(timeout @ Failure::Timeout { .. }) => {
                return StepReport { result: Err(timeout), gas_used: call.gas_limit, log };
            }
            // The results were more than the budget could pay to copy, or
            // more than any call may hand back ([`COPY_BYTES`], or the
            // guest's memory limit if larger): the host
            // stopped copying partway, and the call pays its whole budget
            // (which covers what was copied). Over the budget's bound it is
            // out of gas, as smaller results the budget cannot pay for are;
            // over the fixed bound, the guest handed back too much.
            _ if copy_bound_hit => {
                let result = if budget_bound { Err(Failure::OutOfGas) } else { result };
                return StepReport { result, gas_used: call.gas_limit, log };
            }
            // wasmtime checks fuel at function entries and loop headers, so
            // a call can end slightly past its budget without trapping (fuel
            // left then reads 0), and the bytes its results carry are
            // charged after it returns. Exhausting the budget, exactly or
            // not, fails as out of gas whatever the call returned: a guest
            // error the budget could not pay for is not the outcome.
            _ if left == 0 || gas_used >= call.gas_limit => Err(Failure::OutOfGas),
            other => other,
        };
        StepReport { result, gas_used: gas_used.min(call.gas_limit), log }
    }

    fn run(
        &self,
        store: &mut Store<CallLimiter>,
        instance: &bindings::Executor,
        call: StepCall<'_>,
    ) -> wasmtime::Result<Result<StepOutput, Failure>> {
        let starting;
        let state = match call.state {
            Some(state) => state,
            None => {
                store.data_mut().carried(call.executable.len());
                let started = instance.call_starting_state(&mut *store, call.executable).map_err(guest_fault)?;
                store.data_mut().carried(started.as_ref().map_or_else(String::len, Vec::len));
                match started {
                    Ok(state) => {
                        // Checked before it goes back in, as a step's is.
                        if let Err(failure) = self.inner.limits.check_state(&state) {
                            return Ok(Err(failure));
                        }
                        starting = state;
                        &starting
                    }
                    Err(message) => return Ok(Err(Failure::guest(message))),
                }
            }
        };
        let input = call.input.map(|i| bindings::Input { key: &i.key, datum: i.datum.as_deref() });
        let input_bytes = input.as_ref().map_or(0, |i| i.key.len().saturating_add(i.datum.map_or(0, <[u8]>::len)));
        store.data_mut().carried(call.executable.len().saturating_add(state.len()).saturating_add(input_bytes));
        let step = instance.call_execute_step(&mut *store, call.executable, state, input).map_err(guest_fault)?;
        let output_bytes = match &step {
            Ok(step) => step.requests.iter().fold(step.state.len(), |bytes, request| {
                bytes.saturating_add(match request {
                    bindings::Request::Read(key) => key.len(),
                    bindings::Request::Write(WriteRequest { key, datum }) => key.len().saturating_add(datum.len()),
                })
            }),
            Err(message) => message.len(),
        };
        store.data_mut().carried(output_bytes);
        let step = match step {
            Ok(step) => step,
            Err(message) => return Ok(Err(Failure::guest(message))),
        };
        let requests: Vec<Request> = step
            .requests
            .into_iter()
            .map(|request| match request {
                bindings::Request::Read(key) => Request::Read(key),
                bindings::Request::Write(WriteRequest { key, datum }) => Request::Write(key, datum),
            })
            .collect();
        // Checked before `halted` so an oversized state never goes back in.
        if let Err(failure) = self.inner.limits.check_output(&step.state, &requests) {
            return Ok(Err(failure));
        }
        store.data_mut().carried(step.state.len());
        let halted = instance.call_halted(&mut *store, &step.state).map_err(guest_fault)?;
        Ok(Ok(StepOutput { state: step.state, requests, halted }))
    }
}

impl Program for WasmProgram {
    /// A session of one step: a fresh instance, dropped with it.
    fn step(&self, call: StepCall<'_>) -> StepReport {
        WasmSession { program: self, live: None }.step(call)
    }

    /// One instance for a round's steps: instantiated for the first, kept
    /// for the next while they succeed (a failed step fails its
    /// transaction, and a trapped instance takes no more calls).
    fn session(&self) -> Option<Box<dyn Session + '_>> {
        Some(Box::new(WasmSession { program: self, live: None }))
    }
}

/// A round's instance ([`Program::session`]).
struct WasmSession<'a> {
    program: &'a WasmProgram,
    live: Option<Live<'a>>,
}

struct Live<'a> {
    store: Store<CallLimiter>,
    instance: bindings::Executor,
    /// Last: fields drop in order, and the slot may be handed to a waiter
    /// only once the store has given the pool its instance back.
    _slot: SlotPermit<'a>,
}

impl Session for WasmSession<'_> {
    fn step(&mut self, call: StepCall<'_>) -> StepReport {
        let program = self.program;
        let report = match &mut self.live {
            Some(live) => {
                let instance = &live.instance;
                program.metered(&mut live.store, call, |store, call| program.run(store, instance, call))
            }
            None => {
                let slot = program.inner.slots.acquire();
                let mut store = program.store();
                let mut instance = None;
                let report = program.metered(&mut store, call, |store, call| {
                    let executor = program.inner.pre.instantiate(&mut *store)?;
                    let output = program.run(store, &executor, call);
                    instance = Some(executor);
                    output
                });
                self.live = instance.map(|instance| Live { store, instance, _slot: slot });
                report
            }
        };
        if report.result.is_err() {
            self.live = None;
        }
        report
    }
}

/// The fuel a component's instantiation gets when it is loaded: wasmtime
/// initializes memories and tables in compiled code, metered like the
/// guest's own (a fraction of a millisecond of a start function's work).
const LOAD_CHECK_FUEL: u64 = 1_000_000;

/// Gas per 64 KiB page of linear memory a call has beyond the warm pages
/// a pool slot keeps resident: the host's real cost of memory is faulting
/// pages in and zeroing them for every instance, which fuel does not see.
/// An instance pays for the pages it grows to, in the call that grows it
/// (a round's later calls pay only for growth beyond it). Priced so that
/// the worst case of wall time per unit of gas stays within 10× of pure
/// computation (see the README's "What gas buys").
pub const GAS_PER_MEMORY_PAGE: u64 = 4096;

/// Bytes of a call's arguments and results (executable, state, input,
/// the state and requests it returns, its error message) per unit of gas.
/// The host copies them into and out of the instance, work that fuel does
/// not see and that a step's size would otherwise make free: a large
/// executable or state is carried by every step of its transaction. At
/// 16 bytes a unit, copying costs about what computation does per unit
/// (see the README's "What gas buys").
pub const BYTES_PER_GAS: u64 = 16;

/// The most bytes one guest call may hand back to the host, however large
/// its budget, unless its memory may be larger (wasmtime's own default
/// bound, made explicit): results larger than the guest's memory repeat
/// the same bytes.
const COPY_BYTES: usize = 128 << 20;

/// The bytes a call with `gas_limit` may hand back, and whether the budget
/// (rather than the fixed bound) is what bounds them.
fn copy_bound(gas_limit: u64, limits: &Limits) -> (usize, bool) {
    let payable = usize::try_from(gas_limit.saturating_mul(BYTES_PER_GAS)).unwrap_or(usize::MAX);
    let fixed = COPY_BYTES.max(usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX));
    (payable.min(fixed), payable < fixed)
}

/// Whether `error` is wasmtime stopping a copy out of the guest at the
/// bound [`copy_bound`] set. wasmtime's error type for it is private, so
/// it is known by its message; `tests/all/guests.rs` pins the behaviour,
/// so a wasmtime that words it otherwise fails there, not silently.
fn is_copy_bound(error: &wasmtime::Error) -> bool {
    format!("{error:#}").contains("fuel allocated for hostcalls has been exhausted")
}

/// The shortest epoch tick: the ticker thread wakes once a tick, and a
/// 1 ns tick kept a fifth of a core busy with an idle sandbox.
const MIN_EPOCH_TICK: Duration = Duration::from_micros(100);
/// The longest epoch tick: a call's wall-clock bound is rounded up to a
/// whole number of ticks, so a longer one would stretch every bound.
const MAX_EPOCH_TICK: Duration = Duration::from_secs(1);

/// The most epoch ticks a call may run: wasmtime adds the deadline to the
/// engine's current epoch, which must not overflow. At the default 5 ms
/// tick this is some 174 years, so a longer `call_time` means no bound.
const MAX_EPOCH_TICKS: u64 = 1 << 40;

/// The memory charge of a call whose linear memory peaked at `peak` bytes.
fn memory_gas(peak: usize) -> u64 {
    let pages = peak.saturating_sub(KEEP_RESIDENT).div_ceil(64 << 10);
    (pages as u64).saturating_mul(GAS_PER_MEMORY_PAGE)
}

/// An error of a guest call that is not a trap: wasmtime could not read
/// what the guest handed back. The guest's fault, not the host's.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct GuestFault(String);

/// Marks a call's non-trap error as the guest's fault (traps, and the
/// limiter's errors, pass through to [`classify`] unchanged).
fn guest_fault(error: wasmtime::Error) -> wasmtime::Error {
    if error.downcast_ref::<wasmtime::Trap>().is_some() || error.downcast_ref::<limiter::LimitHit>().is_some() {
        return error;
    }
    wasmtime::Error::new(GuestFault(format!("{error:#}")))
}

/// Names the failure behind a wasmtime error.
fn classify(store: &Store<CallLimiter>, error: wasmtime::Error, limits: &Limits) -> Failure {
    let limiter = store.data();
    if limiter.memory_hit {
        return Failure::MemoryLimit { limit: limits.memory_bytes };
    }
    if limiter.table_hit {
        return Failure::TableLimit { limit: limits.table_elements };
    }
    if let Some(GuestFault(message)) = error.downcast_ref::<GuestFault>() {
        return Failure::Trap { trap: TrapKind::InvalidValue(message.clone()) };
    }
    let Some(trap) = error.downcast_ref::<wasmtime::Trap>() else {
        return Failure::Host { message: format!("{error:#}") };
    };
    use wasmtime::Trap as T;
    match trap {
        T::OutOfFuel => Failure::OutOfGas,
        T::Interrupt => Failure::Timeout { bound_ms: u64::try_from(limits.call_time.as_millis()).unwrap_or(u64::MAX) },
        T::StackOverflow => Failure::StackOverflow,
        T::UnreachableCodeReached => Failure::Trap { trap: TrapKind::Unreachable },
        T::MemoryOutOfBounds | T::HeapMisaligned => Failure::Trap { trap: TrapKind::MemoryOutOfBounds },
        T::IntegerOverflow | T::IntegerDivisionByZero | T::BadConversionToInteger => {
            Failure::Trap { trap: TrapKind::Arithmetic }
        }
        T::IndirectCallToNull | T::BadSignature | T::TableOutOfBounds => Failure::Trap { trap: TrapKind::IndirectCall },
        other => Failure::Trap { trap: TrapKind::Other(other.to_string()) },
    }
}
