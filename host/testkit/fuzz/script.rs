//! A random executor function: each step's requests are drawn from a
//! generator seeded by the executable, the step and the input, so it is
//! deterministic yet reads, writes, halts, fails, panics and oversteps its
//! declaration in every order. One native program runs it, the transfer
//! function and the counter function, chosen by the executable.

use std::sync::Arc;

use counter_guest::CounterFunction;
use executor_guest::{ExecutorFunction, Input, Request, Step};
use executor_host::{Key, Limits, NativeProgram, Program};
use transfer_guest::TransferFunction;

use super::Rng;
use super::common::HUGE_KEY_LEN;

/// Every panic the script raises starts with this (the fuzzers keep them
/// out of the output).
pub const PANIC: &str = "fuzz-script: scripted panic";

const MAGIC: &[u8] = b"fzs1";
const HALT: &[u8] = b"halt";

/// A script's executable: its seed and the keys it may name.
pub fn executable(seed: u64, keys: &[Key]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&seed.to_le_bytes());
    out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
    for key in keys {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
    }
    out
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if bytes.len() < n {
        return Err("fuzz-script: truncated executable".into());
    }
    let (head, tail) = bytes.split_at(n);
    *bytes = tail;
    Ok(head)
}

fn u32_of(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(word)
}

fn parse(executable: &[u8]) -> Result<(u64, Vec<&[u8]>), String> {
    let mut rest = executable;
    if take(&mut rest, MAGIC.len())? != MAGIC {
        return Err("fuzz-script: not a script".into());
    }
    let mut seed = [0u8; 8];
    seed.copy_from_slice(take(&mut rest, 8)?);
    let count = u32_of(take(&mut rest, 4)?);
    let mut keys = Vec::new();
    for _ in 0..count {
        let len = u32_of(take(&mut rest, 4)?) as usize;
        keys.push(take(&mut rest, len)?);
    }
    Ok((u64::from_le_bytes(seed), keys))
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The random executor function.
#[derive(Debug)]
pub struct ScriptFunction;

impl ExecutorFunction for ScriptFunction {
    fn starting_state(executable: &[u8]) -> Result<Vec<u8>, String> {
        let (seed, _) = parse(executable)?;
        if seed % 61 == 0 {
            return Err("fuzz-script: refuses to start".into());
        }
        Ok(0u32.to_le_bytes().to_vec())
    }

    fn execute_step(executable: &[u8], state: &[u8], input: Option<Input>) -> Result<Step, String> {
        let (seed, keys) = parse(executable)?;
        if state.len() != 4 {
            return Err("fuzz-script: bad state".into());
        }
        let step = u32_of(state);
        let mut mix = seed ^ u64::from(step).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        if let Some(input) = &input {
            mix ^= fnv(&input.key).rotate_left(17) ^ input.datum.as_deref().map_or(7, fnv).rotate_left(31);
        }
        let mut rng = Rng::new(mix);
        if rng.chance(2) {
            return Err("fuzz-script: scripted failure".into());
        }
        if rng.below(1000) == 0 {
            panic!("{PANIC} at step {step}");
        }
        let key = |rng: &mut Rng| rng.pick(&keys).map_or_else(Vec::new, |k| k.to_vec());
        let mut requests = Vec::new();
        for _ in 0..rng.below(5) {
            match rng.below(100) {
                0..=44 => requests.push(Request::Read(key(&mut rng))),
                45..=89 => {
                    let value = {
                        let n = rng.index(8);
                        rng.bytes(n)
                    };
                    requests.push(Request::Write(key(&mut rng), value));
                }
                90 => requests.push(Request::Read(vec![b'x'; HUGE_KEY_LEN])),
                91 if rng.chance(5) => requests.extend((0..10_001).map(|_| Request::Read(Vec::new()))),
                92 => requests.push(Request::Read(rng.bytes(3))),
                _ => {}
            }
        }
        let halt = rng.chance(10 + 10 * u64::from(step.min(9)));
        let next = if halt { HALT.to_vec() } else { (step + 1).to_le_bytes().to_vec() };
        Ok(Step::new(next, requests))
    }

    fn halted(state: &[u8]) -> bool {
        state == HALT
    }
}

/// Transfers (`{"from"...`), counters (`{"key"...`) and scripts in one
/// function.
#[derive(Debug)]
pub struct Mixed;

fn pick(executable: &[u8]) -> u8 {
    if executable.starts_with(b"{\"from\"") {
        0
    } else if executable.starts_with(b"{\"key\"") {
        1
    } else {
        2
    }
}

impl ExecutorFunction for Mixed {
    fn starting_state(executable: &[u8]) -> Result<Vec<u8>, String> {
        match pick(executable) {
            0 => TransferFunction::starting_state(executable),
            1 => CounterFunction::starting_state(executable),
            _ => ScriptFunction::starting_state(executable),
        }
    }

    fn execute_step(executable: &[u8], state: &[u8], input: Option<Input>) -> Result<Step, String> {
        match pick(executable) {
            0 => TransferFunction::execute_step(executable, state, input),
            1 => CounterFunction::execute_step(executable, state, input),
            _ => ScriptFunction::execute_step(executable, state, input),
        }
    }

    fn halted(state: &[u8]) -> bool {
        // Each function's halted state is distinct from every state of the
        // others that is not halted.
        TransferFunction::halted(state) || CounterFunction::halted(state) || ScriptFunction::halted(state)
    }
}

/// The native program of [`Mixed`].
pub fn program() -> Arc<dyn Program> {
    Arc::new(NativeProgram::<Mixed>::new(Limits::default()))
}

/// A transfer between two of `keys`.
pub fn transfer(rng: &mut Rng, keys: &[Key]) -> Vec<u8> {
    let name = |rng: &mut Rng| String::from_utf8_lossy(rng.pick(keys).map_or(&[][..], |k| k)).into_owned();
    let (from, to) = (name(rng), name(rng));
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    format!(r#"{{"from":{},"to":{},"amount":{}}}"#, quote(&from), quote(&to), rng.below(120)).into_bytes()
}

/// A counter on one of `keys`.
pub fn counter(rng: &mut Rng, keys: &[Key]) -> Vec<u8> {
    let key = String::from_utf8_lossy(rng.pick(keys).map_or(&[][..], |k| k)).into_owned();
    format!(r#"{{"key":{},"amount":{}}}"#, serde_json::Value::from(key), rng.below(10)).into_bytes()
}
