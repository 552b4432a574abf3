//! `cue` on random and mutated byte strings, and `jam`/`cue` round trips.
//!
//! Random nouns (small and big atoms, shared and structurally repeated
//! subnouns, deep spines) must round-trip: `cue(jam(n)) == n`, and `jam`
//! is canonical (`jam(cue(jam(n))) == jam(n)`). Mutated jams (bit flips,
//! truncation, insertions, deletions, splices of two jams, length-prefix
//! bombs) and random bytes, at most 4 KiB, must decode to an error or a
//! noun without a panic, in bounded time; a noun decoded from junk must
//! itself round-trip.

use std::time::{Duration, Instant};

use executor_noun::{Noun, cue, jam};

use super::{Fuzzer, Rng, Stats};

/// The largest input handed to `cue`.
pub const MAX_INPUT: usize = 4096;

/// One input may take at most this long (dev profile, shared machine).
const SLOW: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub struct CueFuzzer {
    last: Vec<u8>,
}

impl Fuzzer for CueFuzzer {
    fn case(&mut self, seed: u64, stats: &mut Stats) -> Result<(), String> {
        let mut rng = Rng::new(seed);
        let (bytes, noun) = match rng.below(10) {
            0..=2 => {
                let noun = random_noun(&mut rng);
                (jam(&noun), Some(noun))
            }
            3..=8 => {
                let mut bytes = jam(&random_noun(&mut rng));
                if rng.chance(20) {
                    // A splice of two jams.
                    let other = jam(&random_noun(&mut rng));
                    let cut = rng.index(bytes.len() + 1);
                    bytes.truncate(cut);
                    let from = rng.index(other.len() + 1);
                    bytes.extend_from_slice(&other[from..]);
                }
                for _ in 0..1 + rng.below(6) {
                    mutate(&mut rng, &mut bytes);
                }
                bytes.truncate(MAX_INPUT);
                (bytes, None)
            }
            _ => {
                let bytes = match rng.below(4) {
                    0 => {
                        let n = rng.index(64);
                        rng.bytes(n)
                    }
                    1 => {
                        let n = rng.index(MAX_INPUT);
                        rng.bytes(n)
                    }
                    2 => {
                        // A length prefix of many zero bits: a huge claimed
                        // length, then whatever follows.
                        let mut bytes = vec![0u8; rng.index(MAX_INPUT - 16)];
                        bytes.push(1 << rng.below(8));
                        let n = rng.index(16);
                        bytes.extend(rng.bytes(n));
                        bytes
                    }
                    _ => {
                        // Back-references to back-references: 0b11 tags.
                        let mut bytes = vec![0xffu8; 1 + rng.index(64)];
                        let n = rng.index(8);
                        bytes.extend(rng.bytes(n));
                        bytes
                    }
                };
                (bytes, None)
            }
        };
        let result = match &noun {
            Some(noun) => round_trip(noun, stats),
            None => check(&bytes, stats),
        };
        self.last = bytes;
        result
    }

    fn last_input(&self) -> Option<&[u8]> {
        Some(&self.last)
    }

    fn corpus_entry(&mut self, bytes: &[u8], stats: &mut Stats) -> Result<(), String> {
        check(bytes, stats)
    }
}

fn round_trip(noun: &Noun, stats: &mut Stats) -> Result<(), String> {
    stats.inputs += 1;
    let bytes = jam(noun);
    let back = cue(&bytes).map_err(|e| format!("cue of a jam failed: {e} (noun {})", noun.to_string_limited(200)))?;
    if &back != noun {
        return Err(format!("cue(jam(n)) != n for {}", noun.to_string_limited(200)));
    }
    if jam(&back) != bytes {
        return Err(format!("jam is not canonical for {}", noun.to_string_limited(200)));
    }
    stats.outcome("cue:round-trip");
    Ok(())
}

/// The invariant on one input.
pub fn check(bytes: &[u8], stats: &mut Stats) -> Result<(), String> {
    let bytes = &bytes[..bytes.len().min(MAX_INPUT)];
    stats.inputs += 1;
    let started = Instant::now();
    let result = cue(bytes);
    let took = started.elapsed();
    if took > SLOW {
        return Err(format!("cue took {took:?} on {} bytes: {}", bytes.len(), hex(bytes)));
    }
    match result {
        Ok(noun) => {
            // A noun from junk round-trips too.
            let again = jam(&noun);
            let back = cue(&again).map_err(|e| format!("cue of the jam of a decoded noun failed: {e}"))?;
            if back != noun || jam(&back) != again {
                return Err(format!("a decoded noun does not round-trip: input {}", hex(bytes)));
            }
            stats.outcome(if noun.is_cell() { "cue:ok:cell" } else { "cue:ok:atom" });
        }
        Err(error) => {
            let shape: String = error.split(" at bit").next().unwrap_or("").chars().take(40).collect();
            let shape: String = shape.chars().filter(|c| !c.is_ascii_digit()).collect();
            stats.outcome(format!("cue:err:{shape}"));
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    let shown: String = bytes.iter().take(64).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > 64 { format!("{shown}..") } else { shown }
}

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    let len = bytes.len();
    let at = rng.index(len + 1);
    match rng.below(7) {
        0 | 1 if len > 0 => {
            if let Some(b) = bytes.get_mut(at.min(len - 1)) {
                *b ^= 1 << rng.below(8);
            }
        }
        2 => bytes.truncate(at),
        3 => {
            let random = {
                let n = 1 + rng.index(8);
                rng.bytes(n)
            };
            bytes.splice(at..at, random);
        }
        4 => {
            let end = (at + 1 + rng.index(8)).min(len);
            bytes.drain(at.min(end)..end);
        }
        5 if len > 0 => {
            if let Some(b) = bytes.get_mut(at.min(len - 1)) {
                *b = *rng.pick(&[0x00, 0xff, 0x01, 0x80]).unwrap_or(&0);
            }
        }
        _ => {
            let zeros = vec![0u8; rng.index(16)];
            if rng.chance(50) {
                bytes.extend(zeros);
            } else {
                bytes.splice(0..0, zeros);
            }
        }
    }
}

fn random_atom(rng: &mut Rng) -> Noun {
    match rng.below(6) {
        0 => Noun::atom(rng.below(4)),
        1 => Noun::atom(rng.next_u64() >> rng.below(64)),
        2 => Noun::atom(u64::MAX - rng.below(3)),
        3 => Noun::from_bytes(&{
            let n = rng.index(80);
            rng.bytes(n)
        }),
        4 => {
            // 2^64 and neighbours: the small/big boundary.
            let mut bytes = vec![0u8; 8];
            bytes.push(1);
            if rng.chance(50) {
                bytes[0] = 1;
            }
            Noun::from_bytes(&bytes)
        }
        _ => Noun::atom(rng.below(1 << 20)),
    }
}

/// A random noun with shared and structurally repeated subnouns, and now
/// and then a deep spine.
pub fn random_noun(rng: &mut Rng) -> Noun {
    let cap = if rng.chance(10) { 400 } else { 40 };
    let size = 1 + rng.index(cap);
    let mut pool: Vec<Noun> = Vec::new();
    for _ in 0..size {
        let noun = match rng.below(8) {
            0 | 1 => random_atom(rng),
            _ if pool.is_empty() => random_atom(rng),
            2 => {
                // An equal copy, shared with nothing.
                let original = rng.pick(&pool).cloned().unwrap_or_default();
                cue(&jam(&original)).unwrap_or(original)
            }
            3 if rng.chance(10) => {
                let depth = 1 + rng.index(3_000);
                let leaf = rng.pick(&pool).cloned().unwrap_or_default();
                let mut spine = leaf.clone();
                for _ in 0..depth {
                    spine =
                        if rng.chance(50) { Noun::cell(spine, leaf.clone()) } else { Noun::cell(leaf.clone(), spine) };
                }
                spine
            }
            _ => {
                let head = rng.pick(&pool).cloned().unwrap_or_default();
                let tail = rng.pick(&pool).cloned().unwrap_or_default();
                Noun::cell(head, tail)
            }
        };
        pool.push(noun);
    }
    pool.pop().unwrap_or_default()
}
