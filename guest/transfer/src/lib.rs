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
struct Transfer<'a> {
    #[serde(borrow)]
    from: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    to: std::borrow::Cow<'a, str>,
    amount: u64,
}

fn parse(executable: &[u8]) -> Result<Transfer<'_>, String> {
    serde_json::from_slice(executable).map_err(|e| format!("bad transfer executable: {e}"))
}

/// The program state: where the transaction is, the balances seen so far,
/// and the transfer itself, parsed once by `starting_state` (every step
/// gets the executable too, but parsing JSON on each would cost more than
/// the rest of the step).
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    phase: Phase,
    from: Option<u64>,
    to: Option<u64>,
    amount: u64,
    from_account: Vec<u8>,
    to_account: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start = 0,
    Reading = 1,
    Done = 2,
}

impl State {
    /// Phase, two optional balances, the amount, the length of `from`.
    const HEAD: usize = 1 + 2 * 9 + 8 + 4;

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::HEAD + self.from_account.len() + self.to_account.len());
        out.push(self.phase as u8);
        for balance in [self.from, self.to] {
            out.push(u8::from(balance.is_some()));
            out.extend_from_slice(&balance.unwrap_or(0).to_le_bytes());
        }
        out.extend_from_slice(&self.amount.to_le_bytes());
        out.extend_from_slice(&u32::try_from(self.from_account.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&self.from_account);
        out.extend_from_slice(&self.to_account);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let bad = || "corrupt transfer state".to_string();
        let (head, accounts) = bytes.split_at_checked(Self::HEAD).ok_or_else(bad)?;
        let (&phase, rest) = head.split_first().ok_or_else(bad)?;
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
        let (from, rest) = rest.split_at_checked(9).ok_or_else(bad)?;
        let (to, rest) = rest.split_at_checked(9).ok_or_else(bad)?;
        let (amount, length) = rest.split_at_checked(8).ok_or_else(bad)?;
        let amount = u64::from_le_bytes(amount.try_into().map_err(|_| bad())?);
        let length = u32::from_le_bytes(length.try_into().map_err(|_| bad())?);
        let (from_account, to_account) =
            accounts.split_at_checked(usize::try_from(length).map_err(|_| bad())?).ok_or_else(bad)?;
        Ok(Self {
            phase,
            from: balance(from)?,
            to: balance(to)?,
            amount,
            from_account: from_account.to_vec(),
            to_account: to_account.to_vec(),
        })
    }
}

/// The transfer executor function.
#[derive(Debug)]
pub struct TransferFunction;

impl ExecutorFunction for TransferFunction {
    fn starting_state(executable: &[u8]) -> Result<Vec<u8>, String> {
        let tx = parse(executable)?;
        let state = State {
            phase: Phase::Start,
            from: None,
            to: None,
            amount: tx.amount,
            from_account: tx.from.as_bytes().to_vec(),
            to_account: tx.to.as_bytes().to_vec(),
        };
        Ok(state.encode())
    }

    fn execute_step(_executable: &[u8], state: &[u8], input: Option<Input>) -> Result<Step, String> {
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
            if input.key == state.from_account {
                state.from = Some(balance);
                matched = true;
            }
            if input.key == state.to_account {
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
                reads.push(Request::Read(state.from_account.clone()));
            }
            if started && state.to.is_none() && state.to_account != state.from_account {
                reads.push(Request::Read(state.to_account.clone()));
            }
            return Ok(Step::new(state.encode(), reads));
        };
        let amount = state.amount;
        if from_balance < amount {
            let from = String::from_utf8_lossy(&state.from_account);
            return Err(format!("insufficient funds: {from} holds {from_balance}, needs {amount}"));
        }
        state.phase = Phase::Done;
        if state.from_account == state.to_account {
            return Ok(Step::new(state.encode(), Vec::new()));
        }
        let credited = to_balance
            .checked_add(amount)
            .ok_or_else(|| format!("balance overflow crediting {}", String::from_utf8_lossy(&state.to_account)))?;
        let writes = vec![
            Request::Write(state.from_account.clone(), example_decimal::encode(from_balance - amount)),
            Request::Write(state.to_account.clone(), example_decimal::encode(credited)),
        ];
        Ok(Step::new(state.encode(), writes))
    }

    fn halted(state: &[u8]) -> bool {
        // The phase is the first byte: asked after every step, so it reads
        // no further (the state is this function's own encoding, which the
        // host hands back unchanged).
        state.len() >= State::HEAD && state.first() == Some(&(Phase::Done as u8))
    }
}

executor_guest::export_executor!(TransferFunction);
