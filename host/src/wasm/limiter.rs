//! The per-call store data: resource limits that remember which limit a
//! guest hit, so a failed call can name it, and the lines a debug build
//! logs during the call (dev sandboxes only).

use wasmtime::ResourceLimiter;

use crate::diagnostics::GuestLog;

/// The core instances one guest component may have (a Rust guest: its
/// module, and in a debug build the adapter's shim and fixups). With the
/// memories and tables below, what a pool slot holds: a component can
/// never take another call's share of the pool.
pub(super) const CORE_INSTANCES: u32 = 4;
/// The linear memories one guest component may have.
pub(super) const MEMORIES: u32 = 1;
/// The tables one guest component may have.
pub(super) const TABLES: u32 = 2;

#[derive(Debug)]
pub(super) struct CallLimiter {
    memory_bytes: usize,
    table_elements: usize,
    pub(super) memory_hit: bool,
    pub(super) table_hit: bool,
    /// The largest linear memory the call had (wasmtime also asks for a
    /// memory's initial size, from 0), in bytes: what the call is charged
    /// for beyond its computation.
    pub(super) memory_peak: usize,
    /// Bytes the call's arguments and results carried across the
    /// sandbox's boundary (the host copies them in and out), charged as
    /// gas: see [`super::BYTES_PER_GAS`].
    pub(super) copied: u64,
    /// What a debug build logged during the call (see `super::debug`);
    /// stays empty, allocating nothing, in a production sandbox.
    pub(super) log: GuestLog,
}

/// Raised (as a trap) when a guest grows past a limit.
#[derive(Debug, thiserror::Error)]
#[error("guest grew past its {0} limit")]
pub(super) struct LimitHit(&'static str);

impl CallLimiter {
    /// Counts `bytes` carried across the boundary.
    pub(super) fn carried(&mut self, bytes: usize) {
        self.copied = self.copied.saturating_add(bytes as u64);
    }

    pub(super) fn new(memory_bytes: usize, table_elements: usize) -> Self {
        Self {
            memory_bytes,
            table_elements,
            memory_hit: false,
            table_hit: false,
            memory_peak: 0,
            copied: 0,
            log: GuestLog::default(),
        }
    }
}

impl ResourceLimiter for CallLimiter {
    // Trapping (rather than letting `memory.grow` return -1) stops the guest
    // at the offending growth; a Rust guest would abort anyway, and this way
    // the failure is attributed to the limit rather than to `unreachable`.
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_hit = true;
            return Err(LimitHit("memory").into());
        }
        self.memory_peak = self.memory_peak.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.table_hit = true;
            return Err(LimitHit("table").into());
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        CORE_INSTANCES as usize
    }

    fn memories(&self) -> usize {
        MEMORIES as usize
    }

    fn tables(&self) -> usize {
        TABLES as usize
    }
}
