//! Sandbox costs, wasm against the same function compiled natively.
//!
//! Run: `cargo bench -p executor-host --bench runtime`. Prints one table:
//! median time per operation over several batches, and the wasm/native
//! ratio for a whole transfer. Numbers, not assertions: this machine's
//! clock is noisy, so compare rows of one run.

// A benchmark over fixed inputs it builds itself: a panic is a bug in it.
#![allow(clippy::indexing_slicing, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use executor_host::{Input, Limits, NativeProgram, Program, StepCall};
use executor_host::{Sandbox, SandboxConfig, WasmProgram};
use transfer_guest::TransferFunction;

const GAS: u64 = 10_000_000;
const BATCHES: usize = 15;

/// Median time per iteration of `f` over `BATCHES` batches of `iters`.
fn measure(iters: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..iters.min(1000) {
        f();
    }
    let mut samples: Vec<Duration> = (0..BATCHES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed() / iters
        })
        .collect();
    samples.sort();
    samples[BATCHES / 2]
}

struct Transfer {
    exe: Vec<u8>,
    inputs: [Input; 2],
    states: Vec<Vec<u8>>,
}

impl Transfer {
    fn new(program: &dyn Program) -> Self {
        let exe = br#"{"from":"alice","to":"bob","amount":30}"#.to_vec();
        let inputs = [
            Input { key: b"alice".to_vec(), datum: Some(b"100".to_vec()) },
            Input { key: b"bob".to_vec(), datum: Some(b"5".to_vec()) },
        ];
        let mut states = Vec::new();
        let mut state: Option<Vec<u8>> = None;
        for input in [None, Some(&inputs[0]), Some(&inputs[1])] {
            let call = StepCall { executable: &exe, state: state.as_deref(), input, gas_limit: GAS };
            let output = program.step(call).result.expect("transfer step");
            state = Some(output.state.clone());
            states.push(output.state);
        }
        assert!(
            program
                .step(StepCall { executable: &exe, state: Some(&states[1]), input: Some(&inputs[1]), gas_limit: GAS })
                .result
                .expect("last step")
                .halted
        );
        Self { exe, inputs, states }
    }

    fn calls(&self) -> [StepCall<'_>; 3] {
        let exe = self.exe.as_slice();
        [
            StepCall { executable: exe, state: None, input: None, gas_limit: GAS },
            StepCall { executable: exe, state: Some(&self.states[0]), input: Some(&self.inputs[0]), gas_limit: GAS },
            StepCall { executable: exe, state: Some(&self.states[1]), input: Some(&self.inputs[1]), gas_limit: GAS },
        ]
    }

    /// The whole transaction, one `step` (so one fresh wasm instance) each.
    fn run_per_step(&self, program: &dyn Program) {
        for call in self.calls() {
            black_box(program.step(call));
        }
    }
}

fn main() -> anyhow::Result<()> {
    let bytes = std::fs::read(guest_artifacts::TRANSFER)?;
    let sandbox = Sandbox::new(SandboxConfig::default())?;
    let wasm: WasmProgram = sandbox.load(&bytes)?;
    let native = NativeProgram::<TransferFunction>::new(Limits::default());
    let tx = Transfer::new(&wasm);
    let calls = tx.calls();

    let compile = {
        let start = Instant::now();
        Sandbox::new(SandboxConfig::default())?.load(&bytes)?;
        start.elapsed()
    };
    let instantiate = measure(2_000, || {
        black_box(wasm.step_reusing_instance(&[]));
    });
    let warm_step = {
        let many = vec![calls[1]; 1_000];
        let batch = measure(20, || {
            black_box(wasm.step_reusing_instance(&many));
        });
        batch.saturating_sub(instantiate) / 1_000
    };
    let tx_one_instance = measure(2_000, || {
        black_box(wasm.step_reusing_instance(&calls));
    });
    let tx_per_step = measure(2_000, || tx.run_per_step(&wasm));
    let tx_native = measure(20_000, || tx.run_per_step(&native));

    let us = |d: Duration| format!("{:>9.2} µs", d.as_secs_f64() * 1e6);
    let ratio = |d: Duration| d.as_secs_f64() / tx_native.as_secs_f64();
    println!(
        "transfer guest: {} bytes; compile (debug info off, cranelift): {:.1} ms",
        bytes.len(),
        compile.as_secs_f64() * 1e3
    );
    println!("{:<52} {:>12} {:>12}", "operation", "median", "vs native");
    println!("{:<52} {} {:>12}", "instantiate (pooled, fresh store)", us(instantiate), "");
    println!("{:<52} {} {:>12}", "warm execute-step (reused instance)", us(warm_step), "");
    println!("{:<52} {} {:>11.1}x", "3-step transfer, one fresh instance", us(tx_one_instance), ratio(tx_one_instance));
    println!(
        "{:<52} {} {:>11.1}x",
        "3-step transfer, fresh instance per step (executor)",
        us(tx_per_step),
        ratio(tx_per_step)
    );
    println!("{:<52} {} {:>12}", "3-step transfer, native", us(tx_native), "1.0x");
    Ok(())
}
