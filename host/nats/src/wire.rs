//! The wire format: how a protocol envelope (or a spawn request) travels in
//! a NATS message.
//!
//! One version byte, then the value in MessagePack (`rmp-serde`: compact,
//! and self-describing, which the protocol's internally tagged enums need).
//! A payload is at most [`MAX_PAYLOAD`] bytes, NATS's own default limit.
//! Decoding never panics: bad bytes, an unknown version or an oversize
//! payload are a [`WireError`], which the receiver counts and drops.
//!
//! This module must not do I/O: it only turns values into bytes and back.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The version of the encoding; a payload starting with another byte is
/// refused, so a future encoding cannot be misread as this one.
pub const VERSION: u8 = 1;

/// The largest payload sent or accepted: NATS's default `max_payload`.
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// The most a transaction's report may carry over NATS
/// ([`ExecutorOptions::report_bytes`](executor_host::ExecutorOptions::report_bytes)),
/// which every executor host of a deployment applies. The encoding takes
/// at most two bytes for each byte of a key or value (MessagePack writes a
/// byte string as a sequence of integers) and less than
/// [`REPORT_ENTRY_BYTES`](executor_host::REPORT_ENTRY_BYTES) for each
/// entry's framing, so a report within it, and each write it sent, fits in
/// [`MAX_PAYLOAD`] with 64 KiB to spare for the envelope, the failure and a
/// debug build's log.
pub const REPORT_BYTES: u64 = ((MAX_PAYLOAD - (64 << 10)) / 2) as u64;

/// Why bytes could not be turned into a value, or a value into bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The payload was empty.
    #[error("an empty payload")]
    Empty,
    /// The payload starts with a version this host does not speak.
    #[error("wire version {0}, expected {VERSION}")]
    Version(u8),
    /// The payload is larger than [`MAX_PAYLOAD`].
    #[error("a payload of {0} bytes, more than the {MAX_PAYLOAD} allowed")]
    Oversize(usize),
    /// The bytes are not a value of the expected type.
    #[error("malformed payload: {0}")]
    Malformed(String),
}

impl WireError {
    /// A short name for the error, for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Version(_) => "version",
            Self::Oversize(_) => "oversize",
            Self::Malformed(_) => "malformed",
        }
    }
}

/// `value` as a payload: the version byte, then MessagePack.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    let mut bytes = vec![VERSION];
    rmp_serde::encode::write(&mut bytes, value).map_err(|e| WireError::Malformed(e.to_string()))?;
    if bytes.len() > MAX_PAYLOAD {
        return Err(WireError::Oversize(bytes.len()));
    }
    Ok(bytes)
}

/// The value a payload holds.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() > MAX_PAYLOAD {
        return Err(WireError::Oversize(bytes.len()));
    }
    let Some((&version, body)) = bytes.split_first() else { return Err(WireError::Empty) };
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    rmp_serde::from_slice(body).map_err(|e| WireError::Malformed(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use executor_host::{
        Diagnostics, EngineId, Envelope, ExecutorFinished, Failure, GuestLog, KeySets, Message, StepTrace,
        TracedRequest,
    };

    use super::*;

    fn samples() -> Vec<Envelope<Message>> {
        let (a, b) = (EngineId::local("shard-0"), EngineId::local("executor/worker/7"));
        let keys = KeySets { eager_read_keys: vec![b"k".to_vec()], ..KeySets::default() };
        [
            Message::KvsRead { timestamp: 7, key: b"k".to_vec(), data: Some(vec![0, 255, 3]) },
            Message::KvsRead { timestamp: 7, key: vec![], data: None },
            Message::KvsReadRequest { timestamp: 7, key: b"k".to_vec(), actual: false },
            Message::KvsWrite { timestamp: u64::MAX, key: b"k".to_vec(), datum: None },
            Message::KvsAcquireLock {
                timestamp: 1,
                keys: Box::new(keys.clone()),
                worker: a.clone(),
                executor: b.clone(),
            },
            Message::KvsLockAcquired { timestamp: 1 },
            Message::UpdateSeenAll { timestamp: 9, write: true },
            Message::TransactionRequest {
                executable: b"{}".to_vec(),
                keys: Box::new(keys.clone()),
                resubmission: Some(3),
                tag: None,
            },
            Message::TransactionRequest {
                executable: b"{}".to_vec(),
                keys: Box::new(keys),
                resubmission: None,
                tag: Some(u64::MAX),
            },
            Message::TransactionOrdered { tag: 0, timestamp: 12 },
            Message::ExecutorFinished(
                ExecutorFinished {
                    timestamp: 7,
                    success: false,
                    values_read: vec![(b"k".to_vec(), None)],
                    values_written: vec![],
                    failure: Some(Failure::Deadline { bound_ms: 10 }),
                    gas_used: 42,
                    diagnostics: Diagnostics::default(),
                }
                .into(),
            ),
            Message::ExecutorFinished(ExecutorFinished { diagnostics: traced(), ..finished() }.into()),
            Message::ExecutorFinished(ExecutorFinished { diagnostics: logged(), ..finished() }.into()),
            Message::ExecutorFinished(ExecutorFinished { diagnostics: skipped(), ..finished() }.into()),
            Message::ExecutorFinished(
                ExecutorFinished {
                    diagnostics: Diagnostics { log: logged().log, steps: traced().steps, skipped: Vec::new() },
                    ..finished()
                }
                .into(),
            ),
        ]
        .into_iter()
        .map(|m| Envelope::new(a.clone(), b.clone(), m))
        .collect()
    }

    fn finished() -> ExecutorFinished {
        ExecutorFinished {
            timestamp: 3,
            success: true,
            values_read: vec![(b"k".to_vec(), Some(b"1".to_vec()))],
            values_written: vec![(b"k".to_vec(), b"2".to_vec())],
            failure: None,
            gas_used: 9,
            diagnostics: Diagnostics::default(),
        }
    }

    /// A step trace and no log: the wire encodes structs as positional
    /// arrays, so a field left out in the middle would shift the next one.
    fn traced() -> Diagnostics {
        let step = StepTrace {
            key: Some(b"k".to_vec()),
            gas_used: 9,
            requests: vec![TracedRequest::Read { key: b"k".to_vec() }],
            halted: true,
        };
        Diagnostics { steps: vec![step], ..Diagnostics::default() }
    }

    /// Only skipped accesses: the two fields before them are left empty.
    fn skipped() -> Diagnostics {
        let skipped = executor_host::SkippedAccess { key: b"x".to_vec(), access: executor_host::Access::Write };
        Diagnostics { skipped: vec![skipped], ..Diagnostics::default() }
    }

    fn logged() -> Diagnostics {
        let mut log = GuestLog::default();
        log.push("hello");
        log.dropped = 2;
        Diagnostics { log, ..Diagnostics::default() }
    }

    /// Without diagnostics an `ExecutorFinished` is encoded exactly as
    /// before they existed, so hosts of either version understand it.
    #[test]
    fn empty_diagnostics_leave_the_encoding_unchanged() -> Result<(), WireError> {
        #[derive(serde::Serialize)]
        struct Before {
            timestamp: u64,
            success: bool,
            values_read: Vec<(Vec<u8>, Option<Vec<u8>>)>,
            values_written: Vec<(Vec<u8>, Vec<u8>)>,
            failure: Option<Failure>,
            gas_used: u64,
        }
        let now = finished();
        let before = Before {
            timestamp: now.timestamp,
            success: now.success,
            values_read: now.values_read.clone(),
            values_written: now.values_written.clone(),
            failure: now.failure.clone(),
            gas_used: now.gas_used,
        };
        assert_eq!(encode(&now)?, encode(&before)?);
        Ok(())
    }

    #[test]
    fn every_message_round_trips() -> Result<(), WireError> {
        for envelope in samples() {
            let bytes = encode(&envelope)?;
            assert_eq!(bytes.first(), Some(&VERSION));
            assert_eq!(decode::<Envelope<Message>>(&bytes)?, envelope);
        }
        Ok(())
    }

    #[test]
    fn bad_payloads_are_errors() -> Result<(), WireError> {
        let good = encode(&samples().remove(0))?;
        assert!(matches!(decode::<Envelope<Message>>(&[]), Err(WireError::Empty)));
        let mut other = good.clone();
        other[0] = 2;
        assert!(matches!(decode::<Envelope<Message>>(&other), Err(WireError::Version(2))));
        assert!(matches!(decode::<Envelope<Message>>(&good[..good.len() - 1]), Err(WireError::Malformed(_))));
        let huge = vec![VERSION; MAX_PAYLOAD + 1];
        assert!(matches!(decode::<Envelope<Message>>(&huge), Err(WireError::Oversize(_))));
        let message = Message::KvsWrite { timestamp: 1, key: vec![], datum: Some(vec![7; MAX_PAYLOAD]) };
        let envelope = Envelope::new(EngineId::local("a"), EngineId::local("b"), message);
        assert!(matches!(encode(&envelope), Err(WireError::Oversize(_))));
        Ok(())
    }

    /// The worst a report within [`REPORT_BYTES`] can be still fits: every
    /// byte of its keys and values one that takes two bytes, as one huge
    /// entry or as the most entries, with the longest failure message and
    /// a full debug log, between long engine ids. So does the largest
    /// write such a transaction sends.
    #[test]
    fn a_report_within_its_bound_fits_in_a_payload_at_its_worst() -> Result<(), WireError> {
        let entry = executor_host::REPORT_ENTRY_BYTES;
        let (key, bound) = (4096u64, REPORT_BYTES);
        let huge = (vec![0xff; key as usize], vec![0xff; (bound - key - entry) as usize]);
        let most = (bound / (1 + entry)) as usize;
        let mut log = GuestLog::default();
        for _ in 0..executor_host::LOG_LINES {
            log.push(&"\u{ff}".repeat(executor_host::LOG_LINE_BYTES));
        }
        let failure = Failure::guest("\u{ff}".repeat(1 << 20));
        let reports = [
            ExecutorFinished { values_written: vec![huge.clone()], ..finished() },
            ExecutorFinished { values_read: vec![(huge.0.clone(), Some(huge.1.clone()))], ..finished() },
            ExecutorFinished { values_read: vec![(vec![0xff], None); most], values_written: vec![], ..finished() },
        ];
        let (from, to) =
            (EngineId::local(format!("executor/{}/{}", "w".repeat(200), u64::MAX)), EngineId::local("c".repeat(200)));
        for report in reports {
            let report = ExecutorFinished {
                success: false,
                failure: Some(failure.clone()),
                gas_used: u64::MAX,
                timestamp: u64::MAX,
                diagnostics: Diagnostics { log: log.clone(), ..Diagnostics::default() },
                ..report
            };
            encode(&Envelope::new(from.clone(), to.clone(), Message::ExecutorFinished(report.into())))?;
        }
        let write = Message::KvsWrite { timestamp: u64::MAX, key: huge.0, datum: Some(huge.1) };
        encode(&Envelope::new(from, to, write))?;
        Ok(())
    }

    /// The worker's spawn request is never larger than the transaction
    /// request it comes from (the request carries a tag and a mailbox the
    /// spawn request does not, its keys are normalized): a request that
    /// arrived within [`MAX_PAYLOAD`] is always handed on.
    #[test]
    fn a_spawn_request_is_never_larger_than_its_transaction_request() -> Result<(), WireError> {
        use executor_testkit::worker::{Ordered, SpawnExecutor};
        let worker = crate::roles::worker_id();
        let issuers =
            [EngineId::local("c"), EngineId { node: Some("n".repeat(300).into()), name: "c".repeat(300).into() }];
        let key = |n: usize| vec![0xff; n];
        let key_sets = [
            KeySets::default(),
            KeySets {
                eager_read_keys: vec![key(1); 1000],
                will_write_keys: vec![key(0), key(4096)],
                ..KeySets::default()
            },
            KeySets {
                lazy_read_keys: vec![key(3)],
                eager_read_keys: vec![key(3)],
                may_write_keys: vec![key(9); 3],
                will_write_keys: vec![key(9)],
            },
        ];
        for (issuer, keys) in issuers.iter().flat_map(|i| key_sets.iter().map(move |k| (i, k))) {
            for executable in [Vec::new(), key(200_000)] {
                let request = Message::TransactionRequest {
                    executable: executable.clone(),
                    keys: Box::new(keys.clone()),
                    resubmission: None,
                    tag: None,
                };
                let request = encode(&Envelope::new(issuer.clone(), worker.clone(), request))?;
                let tx = Ordered { executable, keys: keys.clone().normalized(), issuer: issuer.clone() };
                let spawn = encode(&SpawnExecutor { timestamp: u64::MAX, worker: worker.clone(), tx })?;
                assert!(spawn.len() <= request.len(), "{} > {}", spawn.len(), request.len());
            }
        }
        Ok(())
    }
}
