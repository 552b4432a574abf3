//! `counter`: read one key, write it back incremented, halt.
//!
//! The executable is JSON `{"key": "<key>", "amount": <u64>}`; the value is a
//! decimal ASCII u64, absent is 0 (the examples' convention, [`example_decimal`]).
//! Declared eager, the first step runs on the value; declared lazy, it runs
//! without input and asks for it. Overflow is an error.

use executor_guest::{ExecutorFunction, Input, Request, Step};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Counter {
    key: String,
    amount: u64,
}

fn parse(executable: &[u8]) -> Result<Counter, String> {
    serde_json::from_slice(executable).map_err(|e| format!("bad counter executable: {e}"))
}

const START: &[u8] = b"start";
const READING: &[u8] = b"reading";
const DONE: &[u8] = b"done";

/// The counter executor function.
#[derive(Debug)]
pub struct CounterFunction;

impl ExecutorFunction for CounterFunction {
    fn starting_state(executable: &[u8]) -> Result<Vec<u8>, String> {
        parse(executable)?;
        Ok(START.to_vec())
    }

    fn execute_step(executable: &[u8], state: &[u8], input: Option<Input>) -> Result<Step, String> {
        let counter = parse(executable)?;
        match (state, input) {
            (START, None) => Ok(Step::new(READING.to_vec(), vec![Request::Read(counter.key.into_bytes())])),
            // Declared eager, the value is the first step's input.
            (START | READING, Some(input)) if input.key == counter.key.as_bytes() => {
                let value = example_decimal::decode(input.datum.as_deref())?
                    .checked_add(counter.amount)
                    .ok_or_else(|| format!("counter {} overflows", counter.key))?;
                let write = Request::Write(counter.key.into_bytes(), example_decimal::encode(value));
                Ok(Step::new(DONE.to_vec(), vec![write]))
            }
            (_, Some(input)) => Err(format!("unexpected read of {:?}", String::from_utf8_lossy(&input.key))),
            (_, None) => Err("counter already started".into()),
        }
    }

    fn halted(state: &[u8]) -> bool {
        state == DONE
    }
}

executor_guest::export_executor!(CounterFunction);
