//! The scenario file of `executor-host run`, and the report it prints.
//!
//! A scenario is JSON:
//!
//! ```json
//! {
//!   "shards": 2,
//!   "initial_state": { "alice": "100" },
//!   "options": { "write_mode": "atomic" },
//!   "transactions": [
//!     { "executable": { "from": "alice", "to": "bob", "amount": 30 },
//!       "eager_read_keys": ["alice", "bob"],
//!       "will_write_keys": ["alice", "bob"] }
//!   ]
//! }
//! ```
//!
//! Keys, values and executables are byte strings. In JSON each is a string
//! (its UTF-8 bytes) or `{"hex": "0a1b..."}` for arbitrary bytes; an
//! executable may also be any other JSON value, which stands for its
//! compact serialization (so a transfer is written as the object it is).
//! Where a key is a JSON object key (`initial_state`, and the report's
//! maps) it is its text, or `"hex:0a1b..."` for arbitrary bytes. The report
//! writes bytes back the same way: text when they are UTF-8, hex otherwise. `options` are [`ExecutorOptions`] (all
//! optional). A malformed file is refused with the path of the offending
//! field and its line and column.
//!
//! This module only converts; running is [`crate::harness`]'s.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::executor::ExecutorOptions;
use crate::harness::{Outcome, TxSpec, Workload};
use crate::messages::{KeySets, Timestamp};
use crate::program::Failure;

/// Bytes as they appear in scenario and report JSON.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub Vec<u8>);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => BTreeMap::from([("hex", hex(&self.0))]).serialize(serializer),
        }
    }
}

/// Bytes as a JSON object key: the text when UTF-8, else `hex:` and the
/// hex digits (JSON keys can only be strings).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyText(pub Vec<u8>);

impl KeyText {
    fn parse(text: &str) -> Result<Self, String> {
        match text.strip_prefix("hex:") {
            Some(digits) => parse_hex::<serde_json::Error>(digits).map(KeyText).map_err(|e| e.to_string()),
            None => Ok(KeyText(text.as_bytes().to_vec())),
        }
    }
}

impl Serialize for KeyText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) if !text.starts_with("hex:") => serializer.serialize_str(text),
            _ => serializer.serialize_str(&format!("hex:{}", hex(&self.0))),
        }
    }
}

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        KeyText::parse(&String::deserialize(deserializer)?).map_err(de::Error::custom)
    }
}

fn parse_hex<E: de::Error>(hex: &str) -> Result<Vec<u8>, E> {
    if !hex.len().is_multiple_of(2) {
        return Err(E::custom("hex has an odd number of digits"));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| E::custom(format!("invalid hex digits at offset {i}")))
        })
        .collect()
}

/// Accepts a string or `{"hex": ...}`; with `any_json`, also any other
/// JSON value, as its compact serialization.
fn bytes_from_value<E: de::Error>(value: serde_json::Value, any_json: bool) -> Result<Vec<u8>, E> {
    match value {
        serde_json::Value::String(text) => Ok(text.into_bytes()),
        serde_json::Value::Object(map) if map.len() == 1 && map.contains_key("hex") => match map.get("hex") {
            Some(serde_json::Value::String(hex)) => parse_hex(hex),
            _ => Err(E::custom("\"hex\" must be a string of hex digits")),
        },
        other if any_json => serde_json::to_vec(&other).map_err(E::custom),
        _ => Err(E::custom("expected a string or {\"hex\": \"...\"}")),
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        bytes_from_value(serde_json::Value::deserialize(deserializer)?, false).map(Bytes)
    }
}

/// An executable: bytes, or any JSON value standing for its serialization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executable(pub Vec<u8>);

impl<'de> Deserialize<'de> for Executable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        bytes_from_value(serde_json::Value::deserialize(deserializer)?, true).map(Executable)
    }
}

/// One transaction of a scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioTx {
    pub executable: Executable,
    #[serde(default)]
    pub lazy_read_keys: Vec<Bytes>,
    #[serde(default)]
    pub eager_read_keys: Vec<Bytes>,
    #[serde(default)]
    pub will_write_keys: Vec<Bytes>,
    #[serde(default)]
    pub may_write_keys: Vec<Bytes>,
}

/// A scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default = "one")]
    pub shards: usize,
    #[serde(default)]
    pub initial_state: BTreeMap<KeyText, Bytes>,
    #[serde(default)]
    pub options: ExecutorOptions,
    pub transactions: Vec<ScenarioTx>,
}

fn one() -> usize {
    1
}

/// A scenario file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ScenarioError {
    /// The offending field, e.g. `transactions[3].eager_read_keys[0]`.
    pub path: String,
    pub message: String,
}

impl Scenario {
    pub fn from_json(text: &str) -> Result<Self, ScenarioError> {
        let mut json = serde_json::Deserializer::from_str(text);
        let scenario: Self = serde_path_to_error::deserialize(&mut json).map_err(|e| ScenarioError {
            path: match e.path().to_string() {
                path if path == "." => "scenario".into(),
                path => path,
            },
            message: e.inner().to_string(),
        })?;
        if scenario.shards == 0 {
            return Err(ScenarioError { path: "shards".into(), message: "must be at least 1".into() });
        }
        Ok(scenario)
    }

    pub fn workload(&self) -> Workload {
        let keys = |set: &[Bytes]| set.iter().map(|b| b.0.clone()).collect();
        Workload {
            shards: self.shards,
            initial: self.initial_state.iter().map(|(k, v)| (k.0.clone(), v.0.clone())).collect(),
            transactions: self
                .transactions
                .iter()
                .map(|tx| TxSpec {
                    executable: tx.executable.0.clone(),
                    keys: KeySets {
                        lazy_read_keys: keys(&tx.lazy_read_keys),
                        eager_read_keys: keys(&tx.eager_read_keys),
                        will_write_keys: keys(&tx.will_write_keys),
                        may_write_keys: keys(&tx.may_write_keys),
                    },
                })
                .collect(),
        }
    }
}

/// One transaction in the report.
#[derive(Debug, Clone, Serialize)]
pub struct TxReport {
    pub timestamp: Timestamp,
    pub executable: Bytes,
    pub success: bool,
    pub failure: Option<String>,
    pub failure_kind: Option<Failure>,
    pub gas_used: u64,
    /// `null` for a key read as absent.
    pub values_read: BTreeMap<KeyText, Option<Bytes>>,
    pub values_written: BTreeMap<KeyText, Bytes>,
}

/// What `run` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub transactions: Vec<TxReport>,
    pub final_state: BTreeMap<KeyText, Bytes>,
    pub succeeded: usize,
    pub failed: usize,
    pub gas_used: u64,
}

impl From<&Outcome> for Report {
    fn from(outcome: &Outcome) -> Self {
        let transactions: Vec<TxReport> = outcome
            .transactions
            .iter()
            .map(|tx| {
                let f = &tx.finished;
                TxReport {
                    timestamp: tx.timestamp,
                    executable: Bytes(tx.tx.executable.clone()),
                    success: f.success,
                    failure: f.failure.as_ref().map(ToString::to_string),
                    failure_kind: f.failure.clone(),
                    gas_used: f.gas_used,
                    values_read: f
                        .values_read
                        .iter()
                        .map(|(k, v)| (KeyText(k.clone()), v.clone().map(Bytes)))
                        .collect(),
                    values_written: f
                        .values_written
                        .iter()
                        .map(|(k, v)| (KeyText(k.clone()), Bytes(v.clone())))
                        .collect(),
                }
            })
            .collect();
        let succeeded = transactions.iter().filter(|t| t.success).count();
        Self {
            succeeded,
            failed: transactions.len() - succeeded,
            gas_used: transactions.iter().map(|t| t.gas_used).sum(),
            transactions,
            final_state: outcome.final_state.iter().map(|(k, v)| (KeyText(k.clone()), Bytes(v.clone()))).collect(),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string_pretty(self) {
            Ok(json) => f.write_str(&json),
            Err(_) => Err(fmt::Error),
        }
    }
}
