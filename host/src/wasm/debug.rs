//! The one import a dev sandbox links: `log`, of the `executor-debug`
//! world, through which a guest's debug build sends its `debug!` lines and
//! panic messages.
//!
//! Every call is paid for before anything is kept: [`LOG_GAS_PER_LINE`]
//! plus [`LOG_GAS_PER_BYTE`] for each byte the guest hands over (all of
//! them, kept or not), taken from the call's fuel; a call that cannot pay
//! fails the step `OutOfGas`. The string is validated where it lies in the
//! guest's memory, never copied whole: a line keeps at most
//! [`LOG_LINE_BYTES`](crate::LOG_LINE_BYTES), and a call keeps at most
//! [`LOG_LINES`](crate::LOG_LINES) lines ([`GuestLog`]'s bounds). So a
//! guest that logs in a loop runs out of gas (or into the wall-clock
//! bound) with a bounded log, like any other loop.
//!
//! What this module must not do: be linked into a production sandbox (a
//! production sandbox's linker defines nothing), give the guest anything
//! back (`log` returns nothing, so output cannot change a transaction), or
//! keep more than the bounds.

use wasmtime::component::{Linker, WasmStr};
use wasmtime::{Engine, StoreContextMut};

use super::SandboxError;
use super::limiter::CallLimiter;
use crate::diagnostics::{LOG_GAS_PER_BYTE, LOG_GAS_PER_LINE, cut};

/// The import's name in the `executor-debug` world.
pub(super) const LOG: &str = "log";

/// A linker that defines `log` and nothing else.
pub(super) fn linker(engine: &Engine) -> Result<Linker<CallLimiter>, SandboxError> {
    let mut linker = Linker::new(engine);
    linker
        .root()
        .func_wrap(LOG, log)
        .map_err(|e| SandboxError::Config { reason: "linking the debug world's `log`".into(), source: e.into() })?;
    Ok(linker)
}

/// `log(message)`: charges the call, then keeps the line (cut short) if
/// the call's log has room, else counts it.
fn log(mut store: StoreContextMut<'_, CallLimiter>, (message,): (WasmStr,)) -> wasmtime::Result<()> {
    // Validated in place (invalid UTF-8 is the guest's fault, reported as
    // an invalid value); only the part kept is copied.
    let (bytes, line) = {
        let text = message.to_str(&store)?;
        (text.len(), cut(&text))
    };
    let cost = LOG_GAS_PER_LINE.saturating_add((bytes as u64).saturating_mul(LOG_GAS_PER_BYTE));
    let left = store.get_fuel()?;
    // Exhausting the budget exactly fails, as it does for computation.
    if left <= cost {
        store.set_fuel(0)?;
        return Err(wasmtime::Trap::OutOfFuel.into());
    }
    store.set_fuel(left - cost)?;
    store.data_mut().log.push_line(line);
    Ok(())
}
