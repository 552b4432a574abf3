//! Helpers shared by the tests.

use std::sync::{Mutex, MutexGuard, OnceLock};

use executor_host::engine::Envelope;
use executor_host::{Failure, Input, Program, Request, Router, StepCall, StepOutput};
use executor_host::{Sandbox, SandboxConfig, WasmProgram};

/// A generous per-transaction budget for well-behaved guests.
pub const GAS: u64 = 50_000_000;

/// A router that records every envelope it is handed, in order.
pub struct Recorder<M>(Mutex<Vec<Envelope<M>>>);

impl<M> Default for Recorder<M> {
    fn default() -> Self {
        Self(Mutex::new(Vec::new()))
    }
}

impl<M: Send> Router<M> for Recorder<M> {
    fn route(&self, envelope: Envelope<M>) {
        self.sent().push(envelope);
    }
}

impl<M> Recorder<M> {
    /// What was routed since the last `take`, taken out.
    pub fn take(&self) -> Vec<Envelope<M>> {
        std::mem::take(&mut *self.sent())
    }

    /// What was routed since the last `take`, left in place.
    pub fn sent(&self) -> MutexGuard<'_, Vec<Envelope<M>>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The default sandbox, created once per test binary.
pub fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| Sandbox::new(SandboxConfig::default()).expect("sandbox"))
}

pub fn bytes(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

pub fn load(sandbox: &Sandbox, path: &str) -> WasmProgram {
    sandbox.load(&bytes(path)).expect("load guest")
}

pub fn transfer() -> WasmProgram {
    load(sandbox(), guest_artifacts::TRANSFER)
}

pub fn transfer_exe(from: &str, to: &str, amount: u64) -> Vec<u8> {
    format!(r#"{{"from":"{from}","to":"{to}","amount":{amount}}}"#).into_bytes()
}

pub fn input(key: &str, datum: Option<&str>) -> Input {
    Input { key: key.as_bytes().to_vec(), datum: datum.map(|d| d.as_bytes().to_vec()) }
}

pub fn write(key: &str, datum: &str) -> Request {
    Request::Write(key.as_bytes().to_vec(), datum.as_bytes().to_vec())
}

pub fn read(key: &str) -> Request {
    Request::Read(key.as_bytes().to_vec())
}

/// What a transaction did when driven step by step outside any engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Driven {
    pub steps: Vec<StepOutput>,
    pub result: Result<(), Failure>,
    pub gas_used: u64,
}

/// Runs the start step, then one step per input in order, until a failure,
/// a halt or the inputs run out.
pub fn drive(program: &dyn Program, executable: &[u8], inputs: &[Input], gas: u64) -> Driven {
    let mut driven = Driven { steps: Vec::new(), result: Ok(()), gas_used: 0 };
    let mut state: Option<Vec<u8>> = None;
    for input in std::iter::once(None).chain(inputs.iter().map(Some)) {
        let report =
            program.step(StepCall { executable, state: state.as_deref(), input, gas_limit: gas - driven.gas_used });
        driven.gas_used += report.gas_used;
        match report.result {
            Err(failure) => {
                driven.result = Err(failure);
                break;
            }
            Ok(output) => {
                state = Some(output.state.clone());
                let halted = output.halted;
                driven.steps.push(output);
                if halted {
                    break;
                }
            }
        }
    }
    driven
}

/// Every request of a run, in order.
pub fn requests(driven: &Driven) -> Vec<Request> {
    driven.steps.iter().flat_map(|s| s.requests.clone()).collect()
}

pub fn halted(driven: &Driven) -> bool {
    driven.steps.last().is_some_and(|s| s.halted)
}

/// An executor function that records the order it is fed values in: after
/// three reads it writes them under `seen` as `k=v,k=v,k=v` and halts.
#[derive(Debug)]
pub struct Recording;

impl executor_guest::ExecutorFunction for Recording {
    fn starting_state(_: &[u8]) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }

    fn execute_step(_: &[u8], state: &[u8], input: Option<Input>) -> Result<executor_guest::Step, String> {
        let mut seen = state.to_vec();
        if let Some(input) = input {
            if !seen.is_empty() {
                seen.push(b',');
            }
            seen.extend_from_slice(&input.key);
            seen.push(b'=');
            seen.extend_from_slice(&input.datum.unwrap_or_default());
        }
        let done = seen.iter().filter(|b| **b == b'=').count() == 3;
        let requests = if done { vec![Request::Write(b"seen".to_vec(), seen.clone())] } else { Vec::new() };
        if done {
            seen.insert(0, b'!');
        }
        Ok(executor_guest::Step::new(seen, requests))
    }

    fn halted(state: &[u8]) -> bool {
        state.first() == Some(&b'!')
    }
}
