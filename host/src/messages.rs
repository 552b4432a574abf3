//! The protocol: every message the executor, shards and workers exchange.
//!
//! The names and fields are nspec's; the changes are ours and deliberate:
//! `KvsRead::data` is an `Option` (absent keys exist), and
//! `ExecutorFinished` carries every value read and written (each key once),
//! why a failure happened and the gas used (and, only when there are any,
//! a debug build's log lines and the step trace). Keys and datums are byte
//! strings (naturals in nspec).
//!
//! Only data lives here: no behaviour, no I/O.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::diagnostics::Diagnostics;
use crate::engine::EngineId;
use crate::program::Failure;

/// nspec's `TxFingerprint`: a transaction's logical timestamp.
pub type Timestamp = u64;
/// A key of the store: a byte string (a natural in nspec).
pub type Key = Vec<u8>;
/// A value stored at a key: a byte string (a natural in nspec).
pub type Datum = Vec<u8>;

/// The four key sets a transaction declares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeySets {
    /// May read; the executor must ask.
    pub lazy_read_keys: Vec<Key>,
    /// Will read; the shard sends the value unasked.
    pub eager_read_keys: Vec<Key>,
    /// Will write (a lock the shard holds until written or released).
    pub will_write_keys: Vec<Key>,
    /// May write.
    pub may_write_keys: Vec<Key>,
}

impl KeySets {
    /// Sorts and deduplicates each set, so membership is a binary search
    /// and iteration order is deterministic. The stronger declaration wins
    /// where a key is in two sets: eager over lazy, will over may.
    pub fn normalized(mut self) -> Self {
        for set in
            [&mut self.lazy_read_keys, &mut self.eager_read_keys, &mut self.will_write_keys, &mut self.may_write_keys]
        {
            set.sort();
            set.dedup();
        }
        let eager = &self.eager_read_keys;
        self.lazy_read_keys.retain(|k| eager.binary_search(k).is_err());
        let will = &self.will_write_keys;
        self.may_write_keys.retain(|k| will.binary_search(k).is_err());
        self
    }

    /// Every declared key, once, in key order.
    pub fn all_keys(&self) -> Vec<&Key> {
        sorted_once([&self.lazy_read_keys, &self.eager_read_keys, &self.will_write_keys, &self.may_write_keys])
    }

    /// Every declared key, once, in key order ([`KeySets::all_keys`]),
    /// moved out of the sets.
    pub fn into_all_keys(self) -> Vec<Key> {
        sorted_once([self.lazy_read_keys, self.eager_read_keys, self.will_write_keys, self.may_write_keys])
    }
}

/// The items of `sets`, each once, in order.
fn sorted_once<T: Ord>(sets: [impl IntoIterator<Item = T>; 4]) -> Vec<T> {
    let mut items: Vec<T> = sets.into_iter().flatten().collect();
    items.sort();
    items.dedup();
    items
}

/// How an executor's run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorFinished {
    /// The transaction's timestamp.
    pub timestamp: Timestamp,
    /// Whether the program halted; `false` exactly when `failure` is set.
    pub success: bool,
    /// Every value the program was fed, each key once, in key order.
    pub values_read: Vec<(Key, Option<Datum>)>,
    /// Every value written to a shard, each key once (the last value), in
    /// key order. Empty for a failed transaction in atomic mode.
    pub values_written: Vec<(Key, Datum)>,
    /// Why it failed; `None` on success.
    pub failure: Option<Failure>,
    /// Gas the transaction's steps used, the failing one included.
    pub gas_used: u64,
    /// What a debug build of the guest logged, and the step trace, when
    /// there are any. Omitted when empty, so that a message without them
    /// reads and writes as before. (One field for both, and the last: the
    /// NATS wire encodes a struct as a positional array, where only
    /// trailing fields can be left out.)
    #[serde(default, skip_serializing_if = "Diagnostics::is_empty")]
    pub diagnostics: Diagnostics,
}

/// Every message of the protocol.
///
/// The large payloads are behind a pointer: an envelope is moved several
/// times on its way, and the common messages (reads, writes, watermarks)
/// are small. The report is shared, not copied, between the worker and
/// the issuer. Pointers do not change the serialized form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Message {
    /// Executor → shard: read `key` (`actual: true`), or never mind
    /// (`actual: false`: the lock may be released).
    KvsReadRequest {
        /// The reading transaction's timestamp.
        timestamp: Timestamp,
        /// The key to read.
        key: Key,
        /// Whether the value is wanted.
        actual: bool,
    },
    /// Executor → shard: the value written at `timestamp`, or `None` to
    /// release the write lock without writing.
    KvsWrite {
        /// The writing transaction's timestamp.
        timestamp: Timestamp,
        /// The key written.
        key: Key,
        /// The value, or `None` to release the lock unwritten.
        datum: Option<Datum>,
    },
    /// Shard → executor: the value of `key` as of `timestamp` (`None`:
    /// absent).
    KvsRead {
        /// The reading transaction's timestamp.
        timestamp: Timestamp,
        /// The key read.
        key: Key,
        /// The value, or `None` if the key is absent.
        data: Option<Datum>,
    },
    /// Executor → worker and issuer.
    ExecutorFinished(Arc<ExecutorFinished>),
    /// Worker → shard: register a transaction's accesses to this shard's
    /// keys.
    KvsAcquireLock {
        /// The transaction's timestamp.
        timestamp: Timestamp,
        /// The transaction's accesses to keys this shard owns.
        keys: Box<KeySets>,
        /// Who gets `KvsLockAcquired`.
        worker: EngineId,
        /// Who gets the transaction's `KvsRead`s.
        executor: EngineId,
    },
    /// Shard → worker: the locks of `timestamp` are registered.
    KvsLockAcquired {
        /// The transaction whose locks are registered.
        timestamp: Timestamp,
    },
    /// Worker → shard: every lock at or before `timestamp` has been heard
    /// (for writes if `write`, for reads otherwise).
    UpdateSeenAll {
        /// No lock at or before this timestamp is still to come.
        timestamp: Timestamp,
        /// Whether this is about write locks (else read locks).
        write: bool,
    },
    /// Client → worker: run this transaction.
    TransactionRequest {
        /// The transaction's code.
        executable: Vec<u8>,
        /// The keys it declares.
        keys: Box<KeySets>,
        /// The timestamp of an earlier submission this one repeats, if any
        /// (nspec's; the reference worker treats every request as new).
        resubmission: Option<Timestamp>,
        /// A number the issuer chose to tell this request from its others:
        /// the worker answers a tagged request with
        /// [`Message::TransactionOrdered`], so that the issuer learns which
        /// timestamp, and so which report, is this request's. (Last, and
        /// left out when `None`: a request without it reads as before.)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<u64>,
    },
    /// Worker → issuer: the request the issuer tagged `tag` was given
    /// `timestamp`. An issuer that sees one tag ordered twice knows its
    /// request was published again (or forged under its name) and ran
    /// twice.
    TransactionOrdered {
        /// The request's tag.
        tag: u64,
        /// The timestamp the worker gave it.
        timestamp: Timestamp,
    },
}
