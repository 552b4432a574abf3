//! Pieces every target draws from: keys, values, key sets, junk payloads.

use executor_host::{EngineId, ExecutorFinished, Failure, Key, KeySets, Message};

use super::Rng;

/// The text of a panic's payload.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// The seeds of a corpus file of an engine target: one per line, decimal
/// or `0x` hex, `#` starts a comment.
pub fn corpus_seeds(bytes: &[u8]) -> Vec<u64> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|line| {
            let word = line.split('#').next()?.trim();
            match word.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => word.parse().ok(),
            }
        })
        .collect()
}

/// A longer key than a step may emit (4 KiB), for junk.
pub const HUGE_KEY_LEN: usize = 4097;

/// A universe of keys for one case: short names, and now and then the empty
/// key, binary keys and a huge one.
pub fn universe(rng: &mut Rng, max: usize) -> Vec<Key> {
    let count = 1 + rng.index(max.max(1));
    let mut keys: Vec<Key> = Vec::new();
    for i in 0..count {
        let key = match rng.below(20) {
            0 => Vec::new(),
            1 => {
                let n = 1 + rng.index(6);
                rng.bytes(n)
            }
            2 if rng.chance(20) => vec![b'h'; HUGE_KEY_LEN + rng.index(64)],
            3 => format!("hex:{i}").into_bytes(),
            _ => format!("k{i}").into_bytes(),
        };
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// Random key sets over `universe`: each key in none, one or several sets,
/// now and then listed twice (the executor and shard normalize).
pub fn key_sets(rng: &mut Rng, universe: &[Key], declare_pct: u64) -> KeySets {
    let mut keys = KeySets::default();
    for key in universe {
        if !rng.chance(declare_pct) {
            continue;
        }
        let mask = 1 + rng.below(15);
        let sets = [
            (1, &mut keys.lazy_read_keys),
            (2, &mut keys.eager_read_keys),
            (4, &mut keys.will_write_keys),
            (8, &mut keys.may_write_keys),
        ];
        for (bit, set) in sets {
            if mask & bit != 0 {
                set.push(key.clone());
                if rng.chance(5) {
                    set.push(key.clone());
                }
            }
        }
    }
    keys
}

/// A value: mostly a small decimal (so transfers and counters go on), else
/// absent, empty, binary or long.
pub fn datum(rng: &mut Rng) -> Option<Vec<u8>> {
    match rng.below(20) {
        0..=2 => None,
        3 => Some(Vec::new()),
        4 => Some({
            let n = 1 + rng.index(16);
            rng.bytes(n)
        }),
        5 if rng.chance(10) => Some(vec![b'7'; 1 + rng.index(100_000)]),
        6 => Some(u64::MAX.to_string().into_bytes()),
        _ => Some(rng.below(200).to_string().into_bytes()),
    }
}

/// A timestamp near `around`, or an edge case.
pub fn timestamp_near(rng: &mut Rng, around: u64) -> u64 {
    match rng.below(10) {
        0 => 0,
        1 => u64::MAX,
        2 => u64::MAX - rng.below(3),
        3 => rng.next_u64(),
        _ => around.saturating_add(rng.below(7)).saturating_sub(3),
    }
}

/// A stranger: an engine no protocol role belongs to.
pub fn stranger(rng: &mut Rng) -> EngineId {
    match rng.below(4) {
        0 => EngineId::local("mallory"),
        1 => EngineId { node: Some("elsewhere".into()), name: "worker".into() },
        2 => EngineId::local(""),
        _ => EngineId::local(format!("shard-{}", 100 + rng.below(3))),
    }
}

/// A report as an impostor (or a duplicate) would send it.
pub fn report(rng: &mut Rng, timestamp: u64) -> ExecutorFinished {
    let success = rng.chance(50);
    ExecutorFinished {
        timestamp,
        success,
        values_read: vec![(b"k0".to_vec(), datum(rng))],
        values_written: vec![(b"k1".to_vec(), b"1".to_vec())],
        failure: if success { None } else { Some(Failure::OutOfGas) },
        gas_used: rng.next_u64(),
        diagnostics: Default::default(),
    }
}

/// A message of any kind, with random fields over `universe`.
pub fn any_message(rng: &mut Rng, universe: &[Key], around: u64) -> Message {
    let key = |rng: &mut Rng| rng.pick(universe).cloned().unwrap_or_default();
    let timestamp = timestamp_near(rng, around);
    match rng.below(9) {
        0 => Message::KvsReadRequest { timestamp, key: key(rng), actual: rng.chance(50) },
        1 => Message::KvsWrite { timestamp, key: key(rng), datum: datum(rng) },
        2 => Message::KvsRead { timestamp, key: key(rng), data: datum(rng) },
        3 => Message::ExecutorFinished(report(rng, timestamp).into()),
        4 => Message::KvsAcquireLock {
            timestamp,
            keys: Box::new(key_sets(rng, universe, 50)),
            worker: EngineId::local("worker"),
            executor: stranger(rng),
        },
        5 => Message::KvsLockAcquired { timestamp },
        6 => Message::UpdateSeenAll { timestamp, write: rng.chance(50) },
        7 => Message::TransactionOrdered { tag: rng.next_u64(), timestamp },
        _ => Message::TransactionRequest {
            executable: {
                let n = rng.index(20);
                rng.bytes(n)
            },
            keys: Box::new(key_sets(rng, universe, 50)),
            resubmission: if rng.chance(20) { Some(timestamp) } else { None },
            tag: if rng.chance(50) { Some(rng.next_u64()) } else { None },
        },
    }
}

/// The name of a message's kind.
pub fn kind(message: &Message) -> &'static str {
    match message {
        Message::KvsReadRequest { .. } => "KvsReadRequest",
        Message::KvsWrite { .. } => "KvsWrite",
        Message::KvsRead { .. } => "KvsRead",
        Message::ExecutorFinished(_) => "ExecutorFinished",
        Message::KvsAcquireLock { .. } => "KvsAcquireLock",
        Message::KvsLockAcquired { .. } => "KvsLockAcquired",
        Message::UpdateSeenAll { .. } => "UpdateSeenAll",
        Message::TransactionRequest { .. } => "TransactionRequest",
        Message::TransactionOrdered { .. } => "TransactionOrdered",
    }
}

/// A short printable form of a key for failure messages.
pub fn show(key: &[u8]) -> String {
    if key.len() > 24 {
        format!("{:?}..({} bytes)", String::from_utf8_lossy(&key[..24]), key.len())
    } else {
        format!("{:?}", String::from_utf8_lossy(key))
    }
}
