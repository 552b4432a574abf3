//! Runs one transfer through the wasm sandbox, step by step, and prints what
//! the guest asked for at each step and the gas it used.
//!
//! ```text
//! cargo run -p executor-host -- build -p transfer-guest -o target/transfer.wasm
//! cargo run -p executor-host --example transfer -- target/transfer.wasm
//! ```
//!
//! The sandbox plays the shards' part by answering each read from a small
//! in-memory map: alice holds 100, bob holds nothing yet.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use executor_host::{Input, Program, Request, StepCall};
use executor_host::{Sandbox, SandboxConfig};

fn main() -> Result<()> {
    let path = std::env::args().nth(1).context("usage: transfer <transfer.wasm>")?;
    let bytes = std::fs::read(&path).with_context(|| format!("reading {path}"))?;
    let sandbox = Sandbox::new(SandboxConfig::default())?;
    let program = sandbox.load(&bytes)?;

    let store = BTreeMap::from([(b"alice".to_vec(), b"100".to_vec())]);
    let executable = br#"{"from":"alice","to":"bob","amount":30}"#;
    let mut gas_left = 1_000_000;
    let mut state = None;
    let mut pending = Vec::new();
    let mut input = None;
    loop {
        let report =
            program.step(StepCall { executable, state: state.as_deref(), input: input.as_ref(), gas_limit: gas_left });
        gas_left -= report.gas_used;
        let output = report.result.context("the transfer failed")?;
        println!("step: {} requests, {} gas, halted: {}", output.requests.len(), report.gas_used, output.halted);
        for request in &output.requests {
            match request {
                Request::Read(key) => {
                    println!("  read  {}", String::from_utf8_lossy(key));
                    pending.push(key.clone());
                }
                Request::Write(key, datum) => {
                    println!("  write {} = {}", String::from_utf8_lossy(key), String::from_utf8_lossy(datum));
                }
            }
        }
        if output.halted {
            println!("halted; total gas {}", 1_000_000 - gas_left);
            return Ok(());
        }
        state = Some(output.state);
        let Some(key) = (!pending.is_empty()).then(|| pending.remove(0)) else {
            bail!("the program is waiting but asked for nothing");
        };
        input = Some(Input { datum: store.get(&key).cloned(), key });
    }
}
