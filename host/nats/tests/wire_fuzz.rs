//! The wire format against a million random and mutated payloads: decoding
//! never panics, and whatever decodes encodes back to bytes that decode to
//! the same value (so a relayed message cannot change on the way).
//! `WIRE_FUZZ_CASES=<n>` runs more.

// Tests: an out-of-range index is a bug in the test.
#![allow(clippy::indexing_slicing)]

use executor_host::{EngineId, Envelope, ExecutorFinished, Failure, KeySets, Message};
use executor_nats::wire::{self, WireError};
use executor_testkit::Rng;
use executor_testkit::worker::{Ordered, SpawnExecutor};

fn bytes(rng: &mut Rng, max: u64) -> Vec<u8> {
    (0..rng.below(max + 1)).map(|_| rng.below(256) as u8).collect()
}

fn id(rng: &mut Rng) -> EngineId {
    let names = ["worker", "shard-0", "shard-1", "executor/worker/3", "client/x", ""];
    EngineId::local(names[rng.below(names.len() as u64) as usize])
}

fn keys(rng: &mut Rng) -> KeySets {
    fn set(rng: &mut Rng) -> Vec<Vec<u8>> {
        (0..rng.below(3)).map(|_| bytes(rng, 6)).collect()
    }
    KeySets { lazy_read_keys: set(rng), eager_read_keys: set(rng), will_write_keys: set(rng), may_write_keys: set(rng) }
}

/// A valid envelope of every kind the protocol has.
fn envelope(rng: &mut Rng) -> Envelope<Message> {
    let ts = rng.next_u64();
    let message = match rng.below(8) {
        0 => Message::KvsReadRequest { timestamp: ts, key: bytes(rng, 8), actual: rng.chance(50) },
        1 => Message::KvsWrite { timestamp: ts, key: bytes(rng, 8), datum: rng.chance(50).then(|| bytes(rng, 16)) },
        2 => Message::KvsRead { timestamp: ts, key: bytes(rng, 8), data: rng.chance(50).then(|| bytes(rng, 16)) },
        3 => Message::ExecutorFinished(
            ExecutorFinished {
                timestamp: ts,
                success: rng.chance(50),
                values_read: vec![(bytes(rng, 4), rng.chance(50).then(|| bytes(rng, 4)))],
                values_written: vec![(bytes(rng, 4), bytes(rng, 4))],
                failure: rng.chance(50).then(|| Failure::Deadline { bound_ms: rng.next_u64() }),
                gas_used: rng.next_u64(),
                diagnostics: Default::default(),
            }
            .into(),
        ),
        4 => Message::KvsAcquireLock { timestamp: ts, keys: Box::new(keys(rng)), worker: id(rng), executor: id(rng) },
        5 => Message::KvsLockAcquired { timestamp: ts },
        6 => Message::UpdateSeenAll { timestamp: ts, write: rng.chance(50) },
        _ => Message::TransactionRequest {
            executable: bytes(rng, 32),
            keys: Box::new(keys(rng)),
            resubmission: None,
            tag: None,
        },
    };
    Envelope::new(id(rng), id(rng), message)
}

fn mutate(rng: &mut Rng, mut payload: Vec<u8>) -> Vec<u8> {
    for _ in 0..=rng.below(4) {
        let len = payload.len() as u64;
        match rng.below(5) {
            0 if len > 0 => {
                let i = rng.below(len) as usize;
                payload[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => payload.truncate(rng.below(len) as usize),
            2 => {
                let i = rng.below(len + 1) as usize;
                payload.insert(i, rng.below(256) as u8);
            }
            3 if len > 0 => {
                let i = rng.below(len) as usize;
                payload[i] = [0x00, 0x7f, 0x80, 0xc0, 0xc1, 0xdc, 0xdd, 0xde, 0xdf, 0xff][rng.below(10) as usize];
            }
            _ => payload.extend(bytes(rng, 8)),
        }
    }
    payload
}

/// Decodes as a `T`; if that works, the value must survive a second trip.
fn check<T>(payload: &[u8]) -> Result<bool, String>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    match wire::decode::<T>(payload) {
        Ok(value) => {
            let again = wire::encode(&value).map_err(|e| e.to_string())?;
            let back: T = wire::decode(&again).map_err(|e| format!("{e}: {payload:?}"))?;
            if back != value {
                return Err(format!("{value:?} changed to {back:?}"));
            }
            Ok(true)
        }
        Err(WireError::Empty | WireError::Version(_) | WireError::Oversize(_) | WireError::Malformed(_)) => Ok(false),
        Err(other) => Err(other.to_string()),
    }
}

#[test]
fn a_million_random_and_mutated_payloads_never_panic() -> Result<(), String> {
    let cases: u64 = std::env::var("WIRE_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let mut rng = Rng::new(0x5eed);
    let (mut decoded, mut refused) = (0u64, 0u64);
    for case in 0..cases {
        let payload = match case % 4 {
            // Random bytes after the right version byte (else nearly all
            // would stop at the version check).
            0 => [&[wire::VERSION][..], &bytes(&mut rng, 64)].concat(),
            1 => bytes(&mut rng, 64),
            2 => {
                let valid = wire::encode(&envelope(&mut rng)).map_err(|e| e.to_string())?;
                mutate(&mut rng, valid)
            }
            _ => {
                let spawn = SpawnExecutor {
                    timestamp: rng.next_u64(),
                    worker: id(&mut rng),
                    tx: Ordered { executable: bytes(&mut rng, 16), keys: keys(&mut rng), issuer: id(&mut rng) },
                };
                let valid = wire::encode(&spawn).map_err(|e| e.to_string())?;
                mutate(&mut rng, valid)
            }
        };
        let envelope = check::<Envelope<Message>>(&payload).map_err(|e| format!("case {case}: {e}"))?;
        let spawn = check::<SpawnExecutor>(&payload).map_err(|e| format!("case {case}: {e}"))?;
        if envelope || spawn { decoded += 1 } else { refused += 1 }
    }
    // Both outcomes must be common, or the mutations test nothing.
    assert!(decoded > cases / 20 && refused > cases / 4, "decoded {decoded}, refused {refused}");
    Ok(())
}

#[test]
fn every_valid_envelope_round_trips() -> Result<(), WireError> {
    let mut rng = Rng::new(1);
    for _ in 0..10_000 {
        let envelope = envelope(&mut rng);
        assert_eq!(wire::decode::<Envelope<Message>>(&wire::encode(&envelope)?)?, envelope);
    }
    Ok(())
}
