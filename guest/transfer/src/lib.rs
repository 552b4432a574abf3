//! `transfer`: move `amount` from one account to another.
//!
//! The executable is JSON `{"from": "<account>", "to": "<account>", "amount": <u64>}`.
//! A balance is a decimal ASCII u64 stored under the account name; an absent
//! balance is 0 (the examples' convention, [`example_decimal`]). Declared
//! eager, the balances arrive unasked and the first step runs on the first
//! of them (as in nspec); declared lazy, the first step runs without input
//! and asks for them. Either way the program asks for whichever balance it
//! has not seen (a request for an eager key costs nothing). Once both have
//! arrived (in either order) the step fails with `insufficient funds` if `from` holds less than `amount`
//! (writing nothing), and otherwise writes both new balances and halts. A
//! transfer to oneself with enough funds succeeds and writes nothing. A
//! credit that would overflow is an error.

use executor_guest::{ExecutorFunction, Input, Request, Step};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Transfer {
    from: String,
    to: String,
    amount: u64,
}

fn parse(executable: &[u8]) -> Result<Transfer, String> {
    serde_json::from_slice(executable).map_err(|e| format!("bad transfer executable: {e}"))
}

/// The program state: where the transaction is and the balances seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    phase: Phase,
    from: Option<u64>,
    to: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start = 0,
    Reading = 1,
    Done = 2,
}

impl State {
    const LEN: usize = 1 + 2 * 9;

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.push(self.phase as u8);
        for balance in [self.from, self.to] {
            out.push(u8::from(balance.is_some()));
            out.extend_from_slice(&balance.unwrap_or(0).to_le_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let bad = || "corrupt transfer state".to_string();
        let (&phase, rest) = bytes.split_first().ok_or_else(bad)?;
        let phase = match phase {
            0 => Phase::Start,
            1 => Phase::Reading,
            2 => Phase::Done,
            _ => return Err(bad()),
        };
        let balance = |chunk: &[u8]| -> Result<Option<u64>, String> {
            let (&flag, value) = chunk.split_first().ok_or_else(bad)?;
            let value = u64::from_le_bytes(value.try_into().map_err(|_| bad())?);
            Ok((flag == 1).then_some(value))
        };
        if rest.len() != 18 {
            return Err(bad());
        }
        let (from, to) = rest.split_at(9);
        Ok(Self { phase, from: balance(from)?, to: balance(to)? })
    }
}

/// The transfer executor function.
#[derive(Debug)]
pub struct TransferFunction;

impl ExecutorFunction for TransferFunction {
    fn starting_state(executable: &[u8]) -> Result<Vec<u8>, String> {
        parse(executable)?;
        Ok(State { phase: Phase::Start, from: None, to: None }.encode())
    }

    fn execute_step(executable: &[u8], state: &[u8], input: Option<Input>) -> Result<Step, String> {
        let tx = parse(executable)?;
        let mut state = State::decode(state)?;
        let started = state.phase == Phase::Start;
        match state.phase {
            Phase::Start => state.phase = Phase::Reading,
            Phase::Reading if input.is_some() => {}
            Phase::Reading => return Err("transfer is not waiting for a start".into()),
            Phase::Done => return Err("transfer already finished".into()),
        }
        if let Some(input) = input {
            let balance = example_decimal::decode(input.datum.as_deref())?;
            let mut matched = false;
            if input.key == tx.from.as_bytes() {
                state.from = Some(balance);
                matched = true;
            }
            if input.key == tx.to.as_bytes() {
                state.to = Some(balance);
                matched = true;
            }
            if !matched {
                return Err(format!("read of unexpected key {:?}", String::from_utf8_lossy(&input.key)));
            }
        }
        let (Some(from_balance), Some(to_balance)) = (state.from, state.to) else {
            // On the first step, ask for what has not arrived.
            let mut reads = Vec::new();
            if started && state.from.is_none() {
                reads.push(Request::Read(tx.from.clone().into_bytes()));
            }
            if started && state.to.is_none() && tx.to != tx.from {
                reads.push(Request::Read(tx.to.clone().into_bytes()));
            }
            return Ok(Step::new(state.encode(), reads));
        };
        if from_balance < tx.amount {
            return Err(format!("insufficient funds: {} holds {from_balance}, needs {}", tx.from, tx.amount));
        }
        state.phase = Phase::Done;
        if tx.from == tx.to {
            return Ok(Step::new(state.encode(), Vec::new()));
        }
        let credited =
            to_balance.checked_add(tx.amount).ok_or_else(|| format!("balance overflow crediting {}", tx.to))?;
        let writes = vec![
            Request::Write(tx.from.into_bytes(), example_decimal::encode(from_balance - tx.amount)),
            Request::Write(tx.to.into_bytes(), example_decimal::encode(credited)),
        ];
        Ok(Step::new(state.encode(), writes))
    }

    fn halted(state: &[u8]) -> bool {
        State::decode(state).is_ok_and(|s| s.phase == Phase::Done)
    }
}

executor_guest::export_executor!(TransferFunction);
