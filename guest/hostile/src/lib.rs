//! A guest that misbehaves in the way its executable names, for the host's
//! sandbox tests. Each mode is one attack the host must survive with a typed
//! failure (or, for the modes at a limit, without one):
//!
//! | executable | behaviour |
//! |---|---|
//! | `loop` | spins forever (gas or the wall-clock bound stops it) |
//! | `grow` | allocates without end (memory limit) |
//! | `grow-to:<pages>` | grows linear memory to exactly `<pages>` pages of 64 KiB, then halts |
//! | `grow-huge` | asks for 4 GiB of linear memory in one `memory.grow` |
//! | `recurse` | recurses without end (stack exhaustion) |
//! | `panic` | panics (a trap) |
//! | `flood` | returns a million requests in one step |
//! | `requests:<n>` | returns `n` reads of the key `e`, then halts |
//! | `huge-key`, `huge-datum`, `huge-state` | returns oversized values |
//! | `alternate` | a state of exactly the limit, then a tiny one, then one byte over the limit (reading `l` and `l2` in between) |
//! | `read:<key>` / `write:<key>` | reads or writes the named key (undeclared access) |
//! | `write-twice` | writes `w` twice in one step (`1`, then `2`), then halts |
//! | `read-twice` | asks for `l` twice in one step, halts once it arrives |
//! | `reread` | asks for `l`, and once it arrives asks for it again, forever |
//! | `stall` | never halts and asks for nothing |
//! | `write-then-err`, `write-then-loop`, `write-then-read:<key>` | writes `w` and asks for `l`; once `l` arrives, fails, spins, or reads `<key>` |
//! | `start-loop`, `start-panic`, `start-err`, `start-grow`, `start-recurse` | misbehaves in `starting-state` |
//! | `halted-loop`, `halted-panic`, `halted-grow`, `halted-recurse` | misbehaves in `halted` |
//! | `err-huge` | returns an error message of 10 MiB |
//! | `nan` | writes the bits of a computed NaN (determinism) |
//! | `err` | returns an error |
//!
//! And for the debug build (see `executor_guest::debug!`; in a release build
//! `debug!` does nothing, so these only halt, panic or spin):
//!
//! | executable | behaviour |
//! |---|---|
//! | `log` | logs a line in `starting-state`, one in the first step (asking for `l`) and one with the value of `l`, then halts |
//! | `log-panic` | logs a line, then panics (the panic message is logged too) |
//! | `log-lines:<n>` | logs `n` numbered lines in one step, then halts |
//! | `log-huge` | logs one line of 1 MiB, then halts |
//! | `log-loop` | logs a line of 1 KiB forever |
//!
//! The first step (the one that gets the starting state, with or without an
//! input) misbehaves; after it every mode but the multi-step ones above is a
//! no-op that halts.
#![allow(clippy::panic)]

use executor_guest::{ExecutorFunction, Input, Request, Step, debug};

const MIB: usize = 1 << 20;

/// The starting state of every mode but the `start-*` ones.
const START: &[u8] = b"start";
const DONE: &[u8] = b"done";

/// The host's default limit on a program state (`Limits::state_bytes`).
const STATE_LIMIT: usize = MIB;

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

fn spin() -> ! {
    loop {
        core::hint::black_box(());
    }
}

fn hoard() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1; MIB]);
        core::hint::black_box(&mut hoard);
    }
}

/// Grows linear memory to `pages` pages in all, with `memory.grow` itself.
#[cfg(target_arch = "wasm32")]
fn grow_to(pages: usize) -> Result<(), String> {
    let have = core::arch::wasm32::memory_size(0);
    if pages > have && core::arch::wasm32::memory_grow(0, pages - have) == usize::MAX {
        return Err(format!("memory.grow to {pages} pages failed"));
    }
    Ok(())
}

#[cfg(not(target_arch = "wasm32"))]
fn grow_to(_pages: usize) -> Result<(), String> {
    Err("memory.grow exists in wasm only".into())
}

fn done(requests: Vec<Request>) -> Result<Step, String> {
    Ok(Step::new(DONE.to_vec(), requests))
}

fn write_w(datum: &[u8]) -> Request {
    Request::Write(b"w".to_vec(), datum.to_vec())
}

fn read(key: &[u8]) -> Request {
    Request::Read(key.to_vec())
}

/// The first step: the attack.
fn first_step(executable: &[u8]) -> Result<Step, String> {
    match executable {
        b"loop" => spin(),
        b"grow" => hoard(),
        b"touch-15m" => {
            // Memory's worst case for the host: nearly all of the 16 MiB
            // allowed, every page touched, on every step.
            let mut pages = vec![0u8; 15 * MIB];
            for page in pages.chunks_mut(4096) {
                if let Some(byte) = page.first_mut() {
                    *byte = 1;
                }
            }
            core::hint::black_box(&mut pages);
            done(Vec::new())
        }
        b"grow-huge" => {
            // 65536 pages: the whole 32-bit address space at once.
            grow_to(1 << 16)?;
            done(Vec::new())
        }
        b"recurse" => {
            let depth = recurse(0);
            done(vec![Request::Write(b"depth".to_vec(), depth.to_le_bytes().to_vec())])
        }
        b"panic" => panic!("hostile guest panics on purpose"),
        b"log" => {
            debug!("first step: asking for l");
            Ok(Step::new(b"logging".to_vec(), vec![read(b"l")]))
        }
        b"log-panic" => {
            debug!("about to panic");
            panic!("hostile guest panics after logging")
        }
        b"log-huge" => {
            let line = "y".repeat(MIB);
            debug!("{line}");
            done(Vec::new())
        }
        b"log-loop" => {
            let line = "z".repeat(1024);
            loop {
                debug!("{line}");
                core::hint::black_box(&line);
            }
        }
        b"err" => Err("hostile guest fails on purpose".into()),
        b"err-huge" => Err("x".repeat(10 * MIB)),
        b"flood" => done((0..1_000_000).map(|_| Request::Read(Vec::new())).collect()),
        b"huge-key" => done(vec![Request::Read(vec![7; 64 * 1024])]),
        b"huge-datum" => done(vec![Request::Write(b"k".to_vec(), vec![7; 2 * MIB])]),
        b"huge-state" => Ok(Step::new(vec![7; 2 * MIB], Vec::new())),
        b"alternate" => Ok(Step::new(vec![7; STATE_LIMIT], vec![read(b"l")])),
        b"write-twice" => done(vec![write_w(b"1"), write_w(b"2")]),
        b"read-twice" => Ok(Step::new(b"reading".to_vec(), vec![read(b"l"), read(b"l")])),
        b"reread" | b"write-then-err" | b"write-then-loop" => {
            let mut requests = vec![read(b"l")];
            if executable != b"reread" {
                requests.insert(0, write_w(b"1"));
            }
            Ok(Step::new(b"waiting".to_vec(), requests))
        }
        b"stall" => Ok(Step::new(b"stalled".to_vec(), Vec::new())),
        b"halted-loop" | b"halted-panic" | b"halted-grow" | b"halted-recurse" => {
            // `halted` gets this state.
            Ok(Step::new(executable.to_vec(), Vec::new()))
        }
        b"nan" => {
            let zero = core::hint::black_box(0.0f64);
            // 0/0 on purpose: the NaN whose bits the host must canonicalize.
            #[allow(clippy::eq_op)]
            let nan = core::hint::black_box(zero / zero);
            let float = core::hint::black_box(nan * 2.0);
            done(vec![Request::Write(b"nan".to_vec(), float.to_bits().to_le_bytes().to_vec())])
        }
        other => {
            if let Some(key) = other.strip_prefix(b"read:") {
                done(vec![read(key)])
            } else if let Some(key) = other.strip_prefix(b"write:") {
                done(vec![Request::Write(key.to_vec(), b"1".to_vec())])
            } else if other.starts_with(b"write-then-read:") {
                Ok(Step::new(b"waiting".to_vec(), vec![write_w(b"1"), read(b"l")]))
            } else if let Some(n) = other.strip_prefix(b"log-lines:") {
                for line in 0..number(n)? {
                    debug!("line {line}");
                }
                done(Vec::new())
            } else if let Some(n) = other.strip_prefix(b"requests:") {
                done((0..number(n)?).map(|_| read(b"e")).collect())
            } else if let Some(pages) = other.strip_prefix(b"grow-to:") {
                grow_to(number(pages)?)?;
                done(Vec::new())
            } else {
                Err(format!("unknown hostile mode {:?}", String::from_utf8_lossy(other)))
            }
        }
    }
}

/// Every later step: the multi-step modes go on, every other mode halts.
fn later_step(executable: &[u8], state: &[u8], input: Option<Input>) -> Result<Step, String> {
    let got_l = input.as_ref().is_some_and(|input| input.key == b"l");
    match executable {
        b"alternate" => match state.len() {
            STATE_LIMIT => Ok(Step::new(b"a".to_vec(), vec![read(b"l2")])),
            1 => Ok(Step::new(vec![7; STATE_LIMIT + 1], Vec::new())),
            _ => Ok(Step::new(state.to_vec(), Vec::new())),
        },
        b"read-twice" if got_l => done(Vec::new()),
        b"log" if got_l => {
            let datum = input.and_then(|input| input.datum).unwrap_or_default();
            debug!("l is {:?}; halting", String::from_utf8_lossy(&datum));
            done(Vec::new())
        }
        b"reread" if got_l => Ok(Step::new(b"waiting".to_vec(), vec![read(b"l")])),
        b"write-then-err" if got_l => Err("hostile guest fails after writing".into()),
        b"write-then-loop" if got_l => spin(),
        other if got_l && other.starts_with(b"write-then-read:") => {
            let key = other.get(b"write-then-read:".len()..).unwrap_or_default();
            done(vec![read(key)])
        }
        b"read-twice" | b"reread" | b"stall" | b"write-then-err" | b"write-then-loop" | b"log" => {
            Ok(Step::new(state.to_vec(), Vec::new()))
        }
        other if other.starts_with(b"write-then-read:") => Ok(Step::new(state.to_vec(), Vec::new())),
        _ => done(Vec::new()),
    }
}

fn number(digits: &[u8]) -> Result<usize, String> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| format!("not a number: {:?}", String::from_utf8_lossy(digits)))
}

impl ExecutorFunction for Hostile {
    fn starting_state(executable: &[u8]) -> Result<Vec<u8>, String> {
        match executable {
            b"start-loop" => spin(),
            b"start-panic" => panic!("hostile guest panics in starting-state"),
            b"start-err" => Err("hostile guest fails in starting-state".into()),
            b"start-grow" => hoard(),
            b"start-recurse" => Ok(recurse(0).to_le_bytes().to_vec()),
            b"log" => {
                debug!("starting state for {:?}", String::from_utf8_lossy(executable));
                Ok(START.to_vec())
            }
            _ => Ok(START.to_vec()),
        }
    }

    fn execute_step(executable: &[u8], state: &[u8], input: Option<Input>) -> Result<Step, String> {
        if state == START { first_step(executable) } else { later_step(executable, state, input) }
    }

    fn halted(state: &[u8]) -> bool {
        match state {
            b"halted-loop" => spin(),
            b"halted-panic" => panic!("hostile guest panics in halted"),
            b"halted-grow" => hoard(),
            b"halted-recurse" => recurse(0) == 7,
            _ => state == DONE,
        }
    }
}

executor_guest::export_executor!(Hostile);
