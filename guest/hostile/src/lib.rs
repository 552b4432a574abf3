//! A guest that misbehaves in the way its executable names, for the host's
//! sandbox tests. Each mode is one attack the host must survive with a typed
//! failure:
//!
//! | executable | behaviour |
//! |---|---|
//! | `loop` | spins forever (gas or the wall-clock bound stops it) |
//! | `grow` | allocates without end (memory limit) |
//! | `recurse` | recurses without end (stack exhaustion) |
//! | `panic` | panics (a trap) |
//! | `flood` | returns a million requests in one step |
//! | `huge-key`, `huge-datum`, `huge-state` | returns oversized values |
//! | `read:<key>` / `write:<key>` | reads or writes the named key (undeclared access) |
//! | `nan` | writes the bits of a computed NaN (determinism) |
//! | `err` | returns an error |
//!
//! The first step (no input) misbehaves; every mode is otherwise a no-op.
#![allow(clippy::panic)]

use executor_guest::{ExecutorFunction, Input, Request, Step};

const MIB: usize = 1 << 20;

/// The misbehaving executor function.
#[derive(Debug)]
pub struct Hostile;

/// Recursion with no base case the guest ever reaches. `black_box` keeps
/// the compiler from turning it into a loop.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if core::hint::black_box(depth) == u64::MAX {
        return depth;
    }
    recurse(depth + 1).wrapping_mul(core::hint::black_box(3))
}

impl ExecutorFunction for Hostile {
    fn starting_state(_executable: &[u8]) -> Result<Vec<u8>, String> {
        Ok(b"start".to_vec())
    }

    fn execute_step(executable: &[u8], _state: &[u8], input: Option<Input>) -> Result<Step, String> {
        if input.is_some() {
            return Ok(Step::new(b"done".to_vec(), Vec::new()));
        }
        let done = |requests| Ok(Step::new(b"done".to_vec(), requests));
        match executable {
            b"loop" => loop {
                core::hint::black_box(());
            },
            b"grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; MIB]);
                    core::hint::black_box(&mut hoard);
                }
            }
            b"recurse" => {
                let depth = recurse(0);
                done(vec![Request::Write(b"depth".to_vec(), depth.to_le_bytes().to_vec())])
            }
            b"panic" => panic!("hostile guest panics on purpose"),
            b"err" => Err("hostile guest fails on purpose".into()),
            b"flood" => done((0..1_000_000).map(|_| Request::Read(Vec::new())).collect()),
            b"huge-key" => done(vec![Request::Read(vec![7; 64 * 1024])]),
            b"huge-datum" => done(vec![Request::Write(b"k".to_vec(), vec![7; 2 * MIB])]),
            b"huge-state" => Ok(Step::new(vec![7; 2 * MIB], Vec::new())),
            b"nan" => {
                let zero = core::hint::black_box(0.0f64);
                // 0/0 on purpose: the NaN whose bits the host must canonicalize.
                #[allow(clippy::eq_op)]
                let nan = core::hint::black_box(zero / zero);
                let float = core::hint::black_box(nan * 2.0);
                done(vec![Request::Write(b"nan".to_vec(), float.to_bits().to_le_bytes().to_vec())])
            }
            other => match other.split_at_checked(5) {
                Some((b"read:", key)) => done(vec![Request::Read(key.to_vec())]),
                Some((b"write", key)) if key.first() == Some(&b':') => {
                    let key = key.get(1..).unwrap_or_default().to_vec();
                    done(vec![Request::Write(key, b"1".to_vec())])
                }
                _ => Err(format!("unknown hostile mode {:?}", String::from_utf8_lossy(other))),
            },
        }
    }

    fn halted(state: &[u8]) -> bool {
        state == b"done"
    }
}

executor_guest::export_executor!(Hostile);
