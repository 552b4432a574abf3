//! `nockma`: nspec's own executor function, a Nock 4K interpreter with gas.
//!
//! See `README.md` in this crate for how to write a transaction, the gas
//! table and every departure from nspec's Nockma (`notes/nockma.juvix.md`,
//! `notes/nockma_runnable.juvix.md`). In short:
//!
//! - **Executable**: `jam(formula)` ([`executable`]), or
//!   `jam([%gas budget formula])` to set the gas budget
//!   ([`executable_with_gas`]); otherwise the budget is [`DEFAULT_GAS`].
//! - **Program state**: `jam([gas-left nock-state])`; it starts as
//!   `[budget 0]`.
//! - **A step** evaluates `*[subject formula]` where the subject is
//!   `[nock-state [key value]]` for a step that received a read, and
//!   `[nock-state 0]` for the first step (which receives none). Keys and
//!   values are atoms of the little-endian bytes; an absent key reads as 0,
//!   the same atom as an empty value.
//! - **The product** must be `[new-nock-state requests]`, `requests` a
//!   null-terminated list whose items are `key` (read) or `[key value]`
//!   (write), keys and values atoms.
//! - **Halted** when the nock-state is the atom [`EXIT`] (`0x65786974`).
//! - **Gas**: [`eval::gas`]; running out fails the transaction, and so
//!   does a step that leaves exactly zero gas.

use executor_guest::{ExecutorFunction, Input, Request, Step};
use executor_noun::{Noun, cue, jam};

pub mod eval;

pub use eval::{NockError, gas, nock};

/// The gas budget of a transaction whose executable does not set one
/// (nspec's runnable starts with 1000).
pub const DEFAULT_GAS: u64 = 1000;

/// The nock-state that means "halted": nspec's `1702390132`. (As a
/// little-endian Urbit cord it spells `tixe`; the hex digits spell "exit".)
pub const EXIT: u64 = 0x6578_6974;

/// The cord `%gas` (`0x736167`): an executable `[%gas budget formula]` sets
/// the budget. No formula has this head (it is no opcode), so this cannot
/// be mistaken for one.
pub const GAS_TAG: u64 = 0x73_6167;

/// The executable for `formula`, with the default budget: `jam(formula)`.
pub fn executable(formula: &Noun) -> Vec<u8> {
    jam(formula)
}

/// The executable for `formula` with a gas budget: `jam([%gas gas formula])`.
pub fn executable_with_gas(formula: &Noun, gas: u64) -> Vec<u8> {
    jam(&Noun::tuple([Noun::atom(GAS_TAG), Noun::atom(gas), formula.clone()]))
}

/// The README's worked example: a formula that, on the first step, asks to
/// read `key`; on the step that receives it, writes `key` := value + 1 and
/// halts.
///
/// ```text
/// [6 [3 0 3]                              :: is the input [key value] a cell?
///    [[1 0x65786974] [[0 6] [4 0 7]] [1 0]]  :: yes: [%exit [[key value+1] ~]]
///    [[1 1] [1 key 0]]]                   :: no (first step): [1 [key ~]]
/// ```
pub fn increment_formula(key: &[u8]) -> Noun {
    let key = Noun::from_bytes(key);
    executor_noun::noun!([6 [3 0 3] [[1 (EXIT)] [[0 6] [4 0 7]] [1 0]] [[1 1] [1 key 0]]])
}

/// Decodes an executable into its formula and gas budget.
pub fn parse_executable(executable: &[u8]) -> Result<(Noun, u64), String> {
    let noun = cue(executable).map_err(|e| format!("bad nockma executable: {e}"))?;
    match noun.as_cell() {
        Some((tag, rest)) if tag.is_atom_eq(GAS_TAG) => {
            let (budget, formula) = rest
                .as_cell()
                .ok_or_else(|| "bad nockma executable: [%gas budget formula] has no formula".to_string())?;
            let budget = budget.as_u64().filter(|&b| b > 0).ok_or_else(|| {
                format!(
                    "bad nockma executable: the gas budget must be an atom from 1 to 2^64-1, got {}",
                    budget.to_string_limited(60)
                )
            })?;
            Ok((formula.clone(), budget))
        }
        _ => Ok((noun, DEFAULT_GAS)),
    }
}

/// The program state bytes: `jam([gas-left nock-state])`.
pub fn encode_state(gas_left: u64, nock_state: &Noun) -> Vec<u8> {
    jam(&Noun::cell(Noun::atom(gas_left), nock_state.clone()))
}

/// Decodes program state bytes into `(gas-left, nock-state)`.
pub fn decode_state(state: &[u8]) -> Result<(u64, Noun), String> {
    let noun = cue(state).map_err(|e| format!("corrupt nockma state: {e}"))?;
    let (gas, nock_state) =
        noun.as_cell().ok_or_else(|| "corrupt nockma state: not a cell [gas-left nock-state]".to_string())?;
    let gas = gas.as_u64().ok_or_else(|| "corrupt nockma state: gas-left is not a 64-bit atom".to_string())?;
    Ok((gas, nock_state.clone()))
}

/// The subject of a step: `[nock-state [key value]]`, or `[nock-state 0]`
/// for the first step, which runs without input. An absent value is 0.
pub fn subject(nock_state: &Noun, input: Option<&Input>) -> Noun {
    let input = match input {
        None => Noun::ZERO,
        Some(read) => {
            Noun::cell(Noun::from_bytes(&read.key), read.datum.as_deref().map_or(Noun::ZERO, Noun::from_bytes))
        }
    };
    Noun::cell(nock_state.clone(), input)
}

/// Splits a step's product `[new-state requests]` and decodes the requests.
pub fn parse_product(product: &Noun) -> Result<(Noun, Vec<Request>), String> {
    let (new_state, mut list) = product.as_cell().ok_or_else(|| {
        format!(
            "nockma step product must be a cell [new-state requests], got the atom {}",
            product.to_string_limited(60)
        )
    })?;
    let mut requests = Vec::new();
    loop {
        let Some((item, rest)) = list.as_cell() else {
            if list.is_atom_eq(0) {
                break;
            }
            return Err(format!(
                "nockma step requests must be a list ending in 0; after {} item(s) it ends in {}",
                requests.len(),
                list.to_string_limited(60)
            ));
        };
        let request = match item.as_cell() {
            None => Request::Read(item.atom_bytes().unwrap_or_default()),
            Some((key, value)) => match (key.atom_bytes(), value.atom_bytes()) {
                (Some(key), Some(value)) => Request::Write(key, value),
                _ => {
                    return Err(format!(
                        "nockma request {} must be an atom key (read) or [key value] of atoms \
                         (write), got {}",
                        requests.len(),
                        item.to_string_limited(60)
                    ));
                }
            },
        };
        requests.push(request);
        list = rest;
    }
    Ok((new_state.clone(), requests))
}

/// nspec's Nockma executor function.
#[derive(Debug)]
pub struct NockmaFunction;

impl ExecutorFunction for NockmaFunction {
    fn starting_state(executable: &[u8]) -> Result<Vec<u8>, String> {
        let (_, budget) = parse_executable(executable)?;
        Ok(encode_state(budget, &Noun::ZERO))
    }

    fn execute_step(executable: &[u8], state: &[u8], input: Option<Input>) -> Result<Step, String> {
        let (formula, _) = parse_executable(executable)?;
        let (mut gas, nock_state) = decode_state(state)?;
        let subject = subject(&nock_state, input.as_ref());
        let product = nock(&subject, &formula, &mut gas).map_err(|e| e.to_string())?;
        if gas == 0 {
            return Err("out of gas: the step used the whole remaining budget".to_string());
        }
        let (new_state, requests) = parse_product(&product)?;
        Ok(Step::new(encode_state(gas, &new_state), requests))
    }

    fn halted(state: &[u8]) -> bool {
        decode_state(state).is_ok_and(|(_, nock_state)| nock_state.is_atom_eq(EXIT))
    }
}

// An interpreter allocates and frees all the time: keep Rust's default
// allocator rather than the SDK's bump arena, so memory stays proportional
// to live data.
executor_guest::export_executor!(NockmaFunction, own_allocator);
