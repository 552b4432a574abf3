//! Component loading: the real guest components (`guest_artifacts::ALL`)
//! mutated (bytes set or flipped, mostly in the headers and section sizes,
//! truncated, chunks inserted, deleted or spliced from another component),
//! core modules dressed as components, and random bytes behind every kind
//! of header, into `Sandbox::inspect` and `Sandbox::load`.
//!
//! Invariant: no panic; `load` either refuses with a `LoadError` or gives a
//! program that `inspect` also accepts (with no import), and one metered
//! step of it (then a second, fed a value, if the first neither failed nor
//! halted) returns an output or a typed failure. Loading compiles with
//! cranelift, so this target is slow; the sandbox is rebuilt now and then,
//! since its in-memory artifact cache keeps every component it compiled.

use executor_host::{Input, Program, Sandbox, SandboxConfig, StepCall};

use super::{Fuzzer, Rng, Stats};

pub struct LoadFuzzer {
    sandbox: Sandbox,
    components: Vec<(String, Vec<u8>)>,
    cores: Vec<Vec<u8>>,
    /// Programs compiled by the current sandbox.
    compiled: u32,
    last: Vec<u8>,
}

/// A step's executables: a transfer, a counter, a jammed Nock formula
/// (`[0 1]`, the subject), junk.
const EXECUTABLES: &[&[u8]] =
    &[br#"{"from":"a","to":"b","amount":1}"#, br#"{"key":"a","amount":2}"#, &[0x61, 0x0c], b"", b"\xff\xfe"];

impl LoadFuzzer {
    pub fn new() -> Result<Self, String> {
        let sandbox = Sandbox::new(SandboxConfig::default()).map_err(|e| format!("sandbox: {e}"))?;
        let read = |path: &str| std::fs::read(path).map_err(|e| format!("reading {path}: {e}"));
        let mut components = Vec::new();
        for (name, path) in guest_artifacts::ALL {
            components.push(((*name).to_string(), read(path)?));
        }
        let cores = vec![read(guest_artifacts::TRANSFER_CORE)?, read(guest_artifacts::COUNTER_CORE)?];
        Ok(Self { sandbox, components, cores, compiled: 0, last: Vec::new() })
    }

    fn mutated(&self, rng: &mut Rng) -> Vec<u8> {
        let Some((_, original)) = self.components.get(rng.index(self.components.len())) else { return Vec::new() };
        let mut bytes = original.clone();
        for _ in 0..1 + rng.below(4) {
            let len = bytes.len();
            // Headers and section sizes live near the start.
            let at = if rng.chance(50) { rng.index(len.min(256)) } else { rng.index(len) };
            match rng.below(10) {
                0..=3 => {
                    if let Some(b) = bytes.get_mut(at) {
                        *b ^= 1 << rng.below(8);
                    }
                }
                4..=5 => {
                    if let Some(b) = bytes.get_mut(at) {
                        *b = *rng.pick(&[0x00, 0xff, 0x7f, 0x80, 0x01, 0x0b, 0x41]).unwrap_or(&0);
                    }
                }
                6 => bytes.truncate(at.max(8)),
                7 => {
                    let random = {
                        let n = 1 + rng.index(16);
                        rng.bytes(n)
                    };
                    bytes.splice(at..at, random);
                }
                8 => {
                    let end = (at + 1 + rng.index(64)).min(bytes.len());
                    bytes.drain(at.min(end)..end);
                }
                _ => {
                    let Some((_, other)) = self.components.get(rng.index(self.components.len())) else { continue };
                    let from = rng.index(other.len());
                    bytes.truncate(at.max(8));
                    bytes.extend_from_slice(&other[from..]);
                }
            }
        }
        bytes
    }

    /// The invariant on one input.
    pub fn check(&mut self, bytes: &[u8], rng: &mut Rng, stats: &mut Stats) -> Result<(), String> {
        stats.inputs += 1;
        if self.compiled >= 32 {
            self.sandbox = Sandbox::new(SandboxConfig::default()).map_err(|e| format!("sandbox: {e}"))?;
            self.compiled = 0;
        }
        let inspected = self.sandbox.inspect(bytes);
        let program = match self.sandbox.load(bytes) {
            Ok(program) => program,
            Err(error) => {
                stats.outcome(format!("load:err:{}", error.kind()));
                return Ok(());
            }
        };
        self.compiled += 1;
        match &inspected {
            Ok(info) if info.imports.is_empty() => {}
            Ok(info) => return Err(format!("loaded a component that imports {:?}", info.imports)),
            Err(error) => return Err(format!("loaded a component that inspect refuses: {error}")),
        }
        let executable = rng.pick(EXECUTABLES).copied().unwrap_or(b"");
        let gas_limit = *rng.pick(&[0, 1, 10_000, 1_000_000, 10_000_000]).unwrap_or(&0);
        let call = StepCall { executable, state: None, input: None, gas_limit };
        let report = program.step(call);
        let mut outcome = match &report.result {
            Ok(output) if output.halted => "halted".to_string(),
            Ok(_) => "ok".to_string(),
            Err(failure) => failure.kind().to_string(),
        };
        if report.gas_used > gas_limit {
            outcome.push_str(":gas_over_limit");
        }
        if let Ok(output) = &report.result
            && !output.halted
        {
            let input = Input { key: b"a".to_vec(), datum: Some(b"5".to_vec()) };
            let call = StepCall { executable, state: Some(&output.state), input: Some(&input), gas_limit };
            let second = program.step(call);
            outcome.push_str(match &second.result {
                Ok(output) if output.halted => ",halted",
                Ok(_) => ",ok",
                Err(_) => ",failed",
            });
        }
        stats.outcome(format!("load:loaded:{outcome}"));
        Ok(())
    }
}

impl Fuzzer for LoadFuzzer {
    fn case(&mut self, seed: u64, stats: &mut Stats) -> Result<(), String> {
        let mut rng = Rng::new(seed);
        let bytes = match rng.below(10) {
            0..=5 => self.mutated(&mut rng),
            6 => self.components.get(rng.index(self.components.len())).map(|(_, b)| b.clone()).unwrap_or_default(),
            7 => {
                // A core module with a component's version and layer.
                let mut bytes = self.cores.get(rng.index(self.cores.len())).cloned().unwrap_or_default();
                if let Some(header) = bytes.get_mut(4..8) {
                    header.copy_from_slice(&[0x0d, 0x00, 0x01, 0x00]);
                }
                bytes
            }
            8 => {
                let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
                bytes.extend({
                    let n = rng.index(64);
                    rng.bytes(n)
                });
                bytes
            }
            _ => {
                let mut bytes = match rng.below(4) {
                    0 => b"\0asm".to_vec(),
                    1 => b"\0asm\x01\0\0\0".to_vec(),
                    2 => b"\0asm\xff\xff\x01\0".to_vec(),
                    _ => Vec::new(),
                };
                bytes.extend({
                    let n = rng.index(32);
                    rng.bytes(n)
                });
                bytes
            }
        };
        let result = self.check(&bytes, &mut rng, stats);
        self.last = bytes;
        result
    }

    fn last_input(&self) -> Option<&[u8]> {
        // Mutated components are too large for the corpus: their seeds are.
        Some(&self.last).filter(|b| b.len() <= 4096).map(Vec::as_slice)
    }

    fn corpus_entry(&mut self, bytes: &[u8], stats: &mut Stats) -> Result<(), String> {
        let mut rng = Rng::new(bytes.len() as u64);
        self.check(bytes, &mut rng, stats)
    }
}
