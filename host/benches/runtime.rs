//! Sandbox costs, wasm against the same function compiled natively.
//!
//! Run: `cargo bench -p executor-host --bench runtime`. Prints one table:
//! median time per operation over several batches, and the wasm/native
//! ratio for a whole transfer. Numbers, not assertions: this machine's
//! clock is noisy, so compare rows of one run.
//!
//! The transfer is the one the end-to-end benchmark runs: both balances
//! declared eager, so the executor feeds it one round of two steps (the
//! first computes the starting state), in one instance; then the same
//! round in a pool slot a larger instance used before (its pages stay
//! resident and are reset on every later use). For comparison, the same
//! two steps in a fresh instance each (the strategy before rounds), and
//! natively.

// A benchmark over fixed inputs it builds itself: a panic is a bug in it.
#![allow(clippy::indexing_slicing, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use executor_host::{Input, Limits, NativeProgram, Program, StepCall};
use executor_host::{Sandbox, SandboxConfig, WasmProgram};
use transfer_guest::TransferFunction;

const GAS: u64 = 10_000_000;
const BATCHES: usize = 15;

/// The allocator the `executor-host` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// An eager transfer's two steps, with the state the first hands the
/// second.
struct Transfer {
    exe: Vec<u8>,
    inputs: [Input; 2],
    after_first: Vec<u8>,
}

impl Transfer {
    fn new(program: &dyn Program) -> Self {
        let exe = br#"{"from":"alice","to":"bob","amount":30}"#.to_vec();
        let inputs = [
            Input { key: b"alice".to_vec(), datum: Some(b"100".to_vec()) },
            Input { key: b"bob".to_vec(), datum: Some(b"5".to_vec()) },
        ];
        let first = StepCall { executable: &exe, state: None, input: Some(&inputs[0]), gas_limit: GAS };
        let after_first = program.step(first).result.expect("first step").state;
        let transfer = Self { exe, inputs, after_first };
        let last = program.step(transfer.calls()[1]).result.expect("last step");
        assert!(last.halted && last.requests.len() == 2, "{last:?}");
        transfer
    }

    fn calls(&self) -> [StepCall<'_>; 2] {
        let exe = self.exe.as_slice();
        [
            StepCall { executable: exe, state: None, input: Some(&self.inputs[0]), gas_limit: GAS },
            StepCall { executable: exe, state: Some(&self.after_first), input: Some(&self.inputs[1]), gas_limit: GAS },
        ]
    }

    /// The round as the executor runs it: one session.
    fn run_round(&self, program: &dyn Program) {
        let calls = self.calls();
        match program.session() {
            Some(mut session) => {
                for call in calls {
                    black_box(session.step(call));
                }
            }
            None => self.run_per_step(program),
        }
    }

    /// Each step on its own (a fresh instance each, for wasm).
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
    // The rounds first, in pool slots only transfers have used, as in the
    // end-to-end benchmark: the warm-step batch below grows its instance's
    // memory, and pages a slot once had stay resident (to be reset on
    // every later use) up to the pool's keep-resident size.
    let tx_round = measure(2_000, || tx.run_round(&wasm));
    let tx_per_step = measure(2_000, || tx.run_per_step(&wasm));
    let warm_step = {
        let many = vec![calls[1]; 1_000];
        let batch = measure(20, || {
            black_box(wasm.step_reusing_instance(&many));
        });
        batch.saturating_sub(instantiate) / 1_000
    };
    let tx_round_after_growth = measure(2_000, || tx.run_round(&wasm));
    let tx_native = measure(20_000, || tx.run_round(&native));

    let us = |d: Duration| format!("{:>9.2} µs", d.as_secs_f64() * 1e6);
    let ratio = |d: Duration| d.as_secs_f64() / tx_native.as_secs_f64();
    println!(
        "transfer guest: {} bytes; compile (debug info off, cranelift): {:.1} ms",
        bytes.len(),
        compile.as_secs_f64() * 1e3
    );
    println!("{:<56} {:>12} {:>12}", "operation", "median", "vs native");
    println!("{:<56} {} {:>12}", "instantiate (pooled, fresh store)", us(instantiate), "");
    println!("{:<56} {} {:>12}", "warm execute-step (reused instance)", us(warm_step), "");
    println!(
        "{:<56} {} {:>11.1}x",
        "eager transfer, one round in one instance (executor)",
        us(tx_round),
        ratio(tx_round)
    );
    println!(
        "{:<56} {} {:>11.1}x",
        "  the same, in a slot a larger instance used before",
        us(tx_round_after_growth),
        ratio(tx_round_after_growth)
    );
    println!(
        "{:<56} {} {:>11.1}x",
        "eager transfer, a fresh instance per step (before)",
        us(tx_per_step),
        ratio(tx_per_step)
    );
    println!("{:<56} {} {:>12}", "eager transfer, native", us(tx_native), "1.0x");
    Ok(())
}
