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
            Message::TransactionRequest { executable: b"{}".to_vec(), keys: Box::new(keys), resubmission: Some(3) },
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
            Message::ExecutorFinished(
                ExecutorFinished {
                    diagnostics: Diagnostics { log: logged().log, steps: traced().steps },
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
}
