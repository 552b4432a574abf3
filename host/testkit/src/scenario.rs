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
use std::sync::Arc;

use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap as _, Serializer};
use serde::{Deserialize, Serialize};

use executor_host::{
    ExecutorFinished, ExecutorOptions, Failure, GuestLog, KeySets, SkippedAccess, StepTrace, Timestamp, TracedRequest,
};

use crate::harness::{Outcome, TxSpec, Workload};

/// Bytes as they appear in scenario and report JSON.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => BTreeMap::from([("hex", hex::encode(&self.0))]).serialize(serializer),
        }
    }
}

/// A failure as its own serialization gives it, but with an access
/// violation's key written as [`Bytes`] rather than a list of numbers.
fn failure_kind<S: Serializer>(failure: &Option<Failure>, serializer: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct AccessViolation<'a> {
        kind: &'static str,
        key: Bytes,
        access: &'a executor_host::Access,
    }
    match failure {
        Some(failure @ Failure::AccessViolation { key, access }) => {
            serializer.serialize_some(&AccessViolation { kind: failure.kind(), key: Bytes(key.clone()), access })
        }
        other => other.serialize(serializer),
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

impl fmt::Display for KeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(text) if !text.starts_with("hex:") => f.write_str(text),
            _ => write!(f, "hex:{}", hex::encode(&self.0)),
        }
    }
}

impl Serialize for KeyText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        KeyText::parse(&String::deserialize(deserializer)?).map_err(de::Error::custom)
    }
}

fn parse_hex<E: de::Error>(digits: &str) -> Result<Vec<u8>, E> {
    hex::decode(digits).map_err(|e| E::custom(format!("invalid hex: {e}")))
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
        // The text first: a JSON value holds an integer past 64 bits as a
        // float, and its serialization would then stand for another number.
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        if let Some(number) = inexact_integer(raw.get()) {
            return Err(de::Error::custom(format!(
                "the number {number} does not fit in 64 bits and would be rounded: write it as a string"
            )));
        }
        let within = |error: serde_json::Error| {
            // Its line and column count from the executable's first byte:
            // drop them, and the file's (where the executable ends) follow.
            let text = error.to_string();
            let message = text.rfind(" at line ").and_then(|at| text.get(..at)).unwrap_or(&text);
            de::Error::custom(message)
        };
        // A JSON value keeps the last of a key given twice, silently: a
        // transfer written `"amount": 1, "amount": 500` would move 500.
        let Unique(value) = serde_json::from_str(raw.get()).map_err(within)?;
        bytes_from_value(value, true).map(Executable)
    }
}

/// A JSON value none of whose objects names a key twice.
struct Unique(serde_json::Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> de::Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Unique, E> {
        Ok(Unique(v.into()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Unique, E> {
        Ok(Unique(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Unique, E> {
        Ok(Unique(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Unique, E> {
        Ok(Unique(v.into()))
    }

    fn visit_str<E>(self, v: &str) -> Result<Unique, E> {
        Ok(Unique(v.into()))
    }

    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique(serde_json::Value::Null))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Unique(items.into()))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Unique(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("the key `{key}` is given twice in one object")));
            }
            object.insert(key, value);
        }
        Ok(Unique(object.into()))
    }
}

/// The first integer literal of the JSON text `json`, outside its strings,
/// that neither `i64` nor `u64` holds.
fn inexact_integer(json: &str) -> Option<&str> {
    let mut in_string = false;
    let mut escaped = false;
    let mut number: Option<usize> = None;
    for (at, c) in json.char_indices().chain([(json.len(), ' ')]) {
        if let Some(start) = number {
            if c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-') {
                continue;
            }
            number = None;
            let token = json.get(start..at)?;
            let integer = !token.contains(['.', 'e', 'E']);
            if integer && token.parse::<i64>().is_err() && token.parse::<u64>().is_err() {
                return Some(token);
            }
        }
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c == '-' || c.is_ascii_digit() {
            number = Some(at);
        }
    }
    None
}

/// One transaction of a scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioTx {
    /// The transaction's code, handed to the executor function.
    pub executable: Executable,
    /// Keys it may read, asking first.
    #[serde(default)]
    pub lazy_read_keys: Vec<Bytes>,
    /// Keys it will read; their shards send them unasked.
    #[serde(default)]
    pub eager_read_keys: Vec<Bytes>,
    /// Keys it will write.
    #[serde(default)]
    pub will_write_keys: Vec<Bytes>,
    /// Keys it may write.
    #[serde(default)]
    pub may_write_keys: Vec<Bytes>,
}

/// A scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// How many shards the keys are spread over, 1 to
    /// [`crate::harness::MAX_SHARDS`]. By default 1.
    #[serde(default = "one")]
    pub shards: usize,
    /// The value of each key before the first transaction. A key given
    /// twice is refused. By default empty.
    #[serde(default, deserialize_with = "unique_keys")]
    pub initial_state: BTreeMap<KeyText, Bytes>,
    /// The executor options (gas, deadline, modes). By default the
    /// defaults of [`ExecutorOptions`].
    #[serde(default)]
    pub options: ExecutorOptions,
    /// The transactions, in submission (and so timestamp) order.
    pub transactions: Vec<ScenarioTx>,
}

/// A JSON object into a map, refusing a key that appears twice (serde's
/// maps keep the last silently, which hides a typo in a scenario).
fn unique_keys<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<KeyText, Bytes>, D::Error> {
    struct Unique;
    impl<'de> de::Visitor<'de> for Unique {
        type Value = BTreeMap<KeyText, Bytes>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of keys to values")
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<KeyText>()? {
                let value = map.next_value::<Bytes>()?;
                if out.contains_key(&key) {
                    return Err(de::Error::custom(format!("key \"{key}\" is given twice")));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(Unique)
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
    /// What is wrong with it.
    pub message: String,
}

impl Scenario {
    /// Parses a scenario file, naming the offending field, line and column
    /// of the first problem.
    pub fn from_json(text: &str) -> Result<Self, ScenarioError> {
        // Editors on some systems begin a UTF-8 file with a byte-order mark.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let top = |message: String| ScenarioError { path: "scenario".into(), message };
        if !text.trim_start().starts_with('{') {
            return Err(top("a scenario is a JSON object: {\"transactions\": [...], ...}".into()));
        }
        let mut json = serde_json::Deserializer::from_str(text);
        let scenario: Self = serde_path_to_error::deserialize(&mut json).map_err(|e| ScenarioError {
            path: match e.path().to_string() {
                // The top level, a key serde_path_to_error prints as
                // nothing (`{"": 0}`, found by the fuzzer), or a place it
                // cannot name (`?`: a trailing comma after the last field).
                path if path == "." || path.is_empty() || path == "?" => "scenario".into(),
                path => path,
            },
            message: e.inner().to_string(),
        })?;
        json.end().map_err(|e| top(format!("{e} after the scenario's closing brace")))?;
        let max = crate::harness::MAX_SHARDS;
        if scenario.shards == 0 || scenario.shards > max {
            return Err(ScenarioError {
                path: "shards".into(),
                message: format!("must be from 1 to {max}, not {}", scenario.shards),
            });
        }
        Ok(scenario)
    }

    /// The workload the harness runs, taking the scenario's values instead
    /// of copying them (a large scenario must not be in memory twice).
    pub fn into_workload(self) -> Workload {
        let keys = |set: Vec<Bytes>| set.into_iter().map(|b| b.0).collect();
        Workload {
            shards: self.shards,
            initial: self.initial_state.into_iter().map(|(k, v)| (k.0, v.0)).collect(),
            transactions: self
                .transactions
                .into_iter()
                .map(|tx| TxSpec {
                    executable: tx.executable.0,
                    keys: KeySets {
                        lazy_read_keys: keys(tx.lazy_read_keys),
                        eager_read_keys: keys(tx.eager_read_keys),
                        will_write_keys: keys(tx.will_write_keys),
                        may_write_keys: keys(tx.may_write_keys),
                    },
                })
                .collect(),
        }
    }

    /// The workload the harness runs, leaving the scenario as it is.
    pub fn workload(&self) -> Workload {
        self.clone().into_workload()
    }
}

/// One transaction in the report.
#[derive(Debug, Clone, Serialize)]
pub struct TxReport {
    /// The timestamp the worker gave it.
    pub timestamp: Timestamp,
    /// Its executable.
    pub executable: Bytes,
    /// Whether it halted successfully.
    pub success: bool,
    /// Why it failed, in words; `null` on success.
    pub failure: Option<String>,
    /// Why it failed, structured (`{"kind": "out_of_gas"}`, ...); a key in
    /// it is written as the report writes bytes (text, or `{"hex": ...}`).
    #[serde(serialize_with = "failure_kind")]
    pub failure_kind: Option<Failure>,
    /// The gas its steps used.
    pub gas_used: u64,
    /// Every value fed to the program; `null` for a key read as absent.
    pub values_read: KeyMap<Option<Bytes>>,
    /// Every value written to a shard.
    pub values_written: KeyMap<Bytes>,
    /// What a debug build of the guest logged (`run --dev`): its lines in
    /// order, and how many more were dropped past the bound. Omitted when
    /// nothing was logged.
    #[serde(skip_serializing_if = "GuestLog::is_empty")]
    pub log: GuestLog,
    /// Each step, in order, with the `step_trace` option (`run
    /// --step-trace`). Omitted otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepRow>,
    /// The undeclared accesses skipped in lenient mode, in the order the
    /// program made them: `{"read": key}` or `{"write": key}`. Omitted
    /// when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_accesses: Vec<SkippedRow>,
}

/// An undeclared access skipped in lenient mode, in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedRow(#[serde(serialize_with = "skipped_row")] pub SkippedAccess);

fn skipped_row<S: Serializer>(skipped: &SkippedAccess, serializer: S) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(1))?;
    map.serialize_entry(&skipped.access.to_string(), &Bytes(skipped.key.clone()))?;
    map.end()
}

/// Keys to values, serialized as a JSON object, kept as a list sorted by
/// key: a transaction touches a handful of keys, and a tree each cost a
/// 200k-transaction report most of its memory (a map's node is hundreds
/// of bytes, two pairs are a hundred).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyMap<V>(pub Vec<(KeyText, V)>);

impl<V> KeyMap<V> {
    /// The value of `key`, if listed.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.0.binary_search_by(|(k, _)| k.0.as_slice().cmp(key)).ok().and_then(|i| self.0.get(i)).map(|(_, v)| v)
    }

    /// How many keys are listed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no key is listed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pairs, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&KeyText, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl<V: Serialize> Serialize for KeyMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// One step of a transaction in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRow {
    /// The key of the value the step was fed; `null` for a first step run
    /// without input.
    pub key: Option<Bytes>,
    /// The gas the step used; a transaction's steps add up to its
    /// `gas_used`.
    pub gas_used: u64,
    /// What the step asked for, in order: `{"read": key}` or
    /// `{"write": key, "value": value}`. None for a step that failed.
    pub requests: Vec<RequestRow>,
    /// Whether the step left the program halted.
    pub halted: bool,
}

/// One request of a step in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RequestRow {
    /// `{"read": key}`.
    Read {
        /// The key asked for.
        read: Bytes,
    },
    /// `{"write": key, "value": value}`.
    Write {
        /// The key written.
        write: Bytes,
        /// The value written.
        value: Bytes,
    },
}

impl From<&StepTrace> for StepRow {
    fn from(step: &StepTrace) -> Self {
        let requests = step
            .requests
            .iter()
            .map(|request| match request {
                TracedRequest::Read { key } => RequestRow::Read { read: Bytes(key.clone()) },
                TracedRequest::Write { key, datum } => {
                    RequestRow::Write { write: Bytes(key.clone()), value: Bytes(datum.clone()) }
                }
            })
            .collect();
        Self { key: step.key.clone().map(Bytes), gas_used: step.gas_used, requests, halted: step.halted }
    }
}

/// What `run` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Each transaction, in timestamp order.
    pub transactions: Vec<TxReport>,
    /// The latest value of every key.
    pub final_state: BTreeMap<KeyText, Bytes>,
    /// How many transactions succeeded.
    pub succeeded: usize,
    /// How many failed.
    pub failed: usize,
    /// The gas all transactions used (`u64::MAX` if the sum is larger:
    /// each transaction's limit is a `u64`, so several can add up past it).
    pub gas_used: u64,
    /// Writes a shard refused because they contradicted the write
    /// recorded for the same transaction and key: a transaction run twice
    /// (a re-run executor) wrote differently, so its executor function is
    /// not deterministic. Omitted when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nondeterministic_writes: Vec<NondeterministicWrite>,
}

/// One write a shard refused as contradicting the recorded one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NondeterministicWrite {
    /// The writing transaction.
    pub timestamp: Timestamp,
    /// The key written.
    pub key: KeyText,
}

/// `<timestamp> <key>`, the key as in the report's maps.
impl fmt::Display for NondeterministicWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.timestamp, self.key)
    }
}

/// The report of `outcome`, taking its values instead of copying them: a
/// large run's outcome and its report must not both be in memory.
impl From<Outcome> for Report {
    fn from(outcome: Outcome) -> Self {
        let transactions: Vec<TxReport> = outcome
            .transactions
            .into_iter()
            .map(|tx| {
                // The run is over: the report is no longer shared.
                let f = Arc::try_unwrap(tx.finished).unwrap_or_else(|shared| ExecutorFinished::clone(&shared));
                TxReport {
                    timestamp: tx.timestamp,
                    executable: Bytes(tx.tx.executable),
                    success: f.success,
                    failure: f.failure.as_ref().map(ToString::to_string),
                    failure_kind: f.failure,
                    gas_used: f.gas_used,
                    values_read: KeyMap(f.values_read.into_iter().map(|(k, v)| (KeyText(k), v.map(Bytes))).collect()),
                    values_written: KeyMap(f.values_written.into_iter().map(|(k, v)| (KeyText(k), Bytes(v))).collect()),
                    steps: f.diagnostics.steps.iter().map(StepRow::from).collect(),
                    log: f.diagnostics.log,
                    skipped_accesses: f.diagnostics.skipped.into_iter().map(SkippedRow).collect(),
                }
            })
            .collect();
        let succeeded = transactions.iter().filter(|t| t.success).count();
        Self {
            succeeded,
            failed: transactions.len() - succeeded,
            gas_used: transactions.iter().fold(0, |total, t| total.saturating_add(t.gas_used)),
            transactions,
            final_state: outcome.final_state.into_iter().map(|(k, v)| (KeyText(k), Bytes(v))).collect(),
            nondeterministic_writes: outcome
                .conflicting_writes
                .into_iter()
                .map(|(timestamp, key)| NondeterministicWrite { timestamp, key: KeyText(key) })
                .collect(),
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

/// `workload` as a scenario document (what [`Scenario::from_json`] reads
/// back to the same workload), e.g. for the shards of a deployment to load
/// its initial state from.
pub fn scenario_json(workload: &Workload) -> serde_json::Value {
    let keys = |set: &[Vec<u8>]| set.iter().map(|k| Bytes(k.clone())).collect::<Vec<_>>();
    let transactions: Vec<serde_json::Value> = workload
        .transactions
        .iter()
        .map(|tx| {
            serde_json::json!({
                "executable": Bytes(tx.executable.clone()),
                "lazy_read_keys": keys(&tx.keys.lazy_read_keys),
                "eager_read_keys": keys(&tx.keys.eager_read_keys),
                "will_write_keys": keys(&tx.keys.will_write_keys),
                "may_write_keys": keys(&tx.keys.may_write_keys),
            })
        })
        .collect();
    let initial: BTreeMap<KeyText, Bytes> =
        workload.initial.iter().map(|(k, v)| (KeyText(k.clone()), Bytes(v.clone()))).collect();
    serde_json::json!({ "shards": workload.shards, "initial_state": initial, "transactions": transactions })
}
