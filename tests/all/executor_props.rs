//! Random executor functions over random declared key sets, delivered in
//! random order with junk mixed in, against the executor's invariants:
//! exactly one `ExecutorFinished` per recipient, every declared lazy key
//! and write key resolved exactly once, nothing sent for undeclared keys,
//! nothing sent after the finish.
//!
//! proptest prints the smallest failing case and records it in
//! `proptest-regressions/` for replay.

use std::collections::{BTreeMap, BTreeSet};

use executor_host::__internal::ExecutorTimer;
use executor_host::engine::EngineId;
use executor_host::{AccessMode, ExecutorOptions, WriteMode};
use executor_host::{KeySets, Message};
use proptest::prelude::*;

use crate::scripted::*;

const UNIVERSE: [&str; 7] = ["a", "b", "c", "p", "q", "r", "z"];

fn op() -> impl Strategy<Value = Op> {
    let key = proptest::sample::select(UNIVERSE.to_vec()).prop_map(str::to_string);
    prop_oneof![
        6 => key.clone().prop_map(Op::Read),
        6 => (key, 0..100u32).prop_map(|(k, v)| Op::Write(k, v.to_string())),
        1 => Just(Op::Halt),
        1 => Just(Op::Fail),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    script: Vec<Vec<Op>>,
    /// Per key of the universe but `z` (never declared): a bit each for
    /// lazy, eager, will, may.
    masks: Vec<u8>,
    write_mode: WriteMode,
    access_mode: AccessMode,
    /// Drives the delivery order and the junk.
    choices: Vec<u8>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(proptest::collection::vec(op(), 0..4), 1..6),
        proptest::collection::vec(0u8..16, UNIVERSE.len() - 1),
        prop_oneof![Just(WriteMode::Streaming), Just(WriteMode::Atomic)],
        prop_oneof![Just(AccessMode::Strict), Just(AccessMode::Lenient)],
        proptest::collection::vec(any::<u8>(), 32),
    )
        .prop_map(|(script, masks, write_mode, access_mode, choices)| Case {
            script,
            masks,
            write_mode,
            access_mode,
            choices,
        })
}

fn key_sets(masks: &[u8]) -> KeySets {
    let pick =
        |bit: u8| -> Vec<&str> { UNIVERSE.iter().zip(masks).filter(|(_, m)| *m & bit != 0).map(|(k, _)| *k).collect() };
    keys(&pick(1), &pick(2), &pick(4), &pick(8))
}

fn check(case: Case) -> Result<(), TestCaseError> {
    let sets = key_sets(&case.masks);
    let options = ExecutorOptions { write_mode: case.write_mode, access_mode: case.access_mode, ..Default::default() };
    let (mut d, first) = Driver::start(scripted(), serde_json::to_vec(&case.script).unwrap(), sets.clone(), options);
    let id = d.id();
    let mut log: Vec<(EngineId, Message)> = sent(&id, first);
    let mut finished_at = log.iter().position(|(_, m)| matches!(m, Message::ExecutorFinished(_)));
    let mut delivered: Vec<String> = Vec::new();
    let mut choices = case.choices.iter().copied().cycle();
    for _ in 0..40 {
        // What a shard would send now: eager keys, and lazy keys requested.
        let requested: Vec<String> = log
            .iter()
            .filter_map(|(_, m)| match m {
                Message::KvsReadRequest { key, actual: true, .. } => Some(String::from_utf8(key.clone()).unwrap()),
                _ => None,
            })
            .collect();
        let mut due: Vec<String> = sets
            .eager_read_keys
            .iter()
            .map(|k| String::from_utf8(k.clone()).unwrap())
            .chain(requested)
            .filter(|k| !delivered.contains(k))
            .collect();
        due.dedup();
        let choice = choices.next().unwrap_or(0);
        let out = if due.is_empty() || choice % 7 == 0 {
            // Junk: a duplicate, another transaction's read, an unrequested key.
            let key = UNIVERSE[usize::from(choice) % UNIVERSE.len()];
            let timestamp = if choice % 2 == 0 { TS } else { TS + 1 };
            if due.is_empty() && finished_at.is_none() && choice % 3 == 0 {
                break;
            }
            d.read_at(timestamp, key, Some("j"))
        } else {
            let key = due[usize::from(choice) % due.len()].clone();
            delivered.push(key.clone());
            d.read(&key, if choice % 5 == 0 { None } else { Some("1") })
        };
        let out = sent(&id, out);
        if finished_at.is_some() {
            prop_assert!(out.is_empty(), "sent after finishing: {out:?}");
        }
        log.extend(out);
        finished_at = finished_at.or_else(|| log.iter().position(|(_, m)| matches!(m, Message::ExecutorFinished(_))));
    }
    if finished_at.is_none() {
        log.extend(sent(&id, d.fire(ExecutorTimer::Deadline)));
    }

    // Exactly one ExecutorFinished per recipient.
    let reports: Vec<&EngineId> =
        log.iter().filter(|(_, m)| matches!(m, Message::ExecutorFinished(_))).map(|(to, _)| to).collect();
    prop_assert_eq!(reports.len(), 2);
    prop_assert!(reports.contains(&&worker()) && reports.contains(&&issuer()));

    // The executor normalizes what it was given: judge against that.
    let sets = sets.normalized();
    let report = log
        .iter()
        .find_map(|(_, m)| match m {
            Message::ExecutorFinished(report) => Some(report.clone()),
            _ => None,
        })
        .unwrap();
    let written: BTreeMap<Vec<u8>, Vec<u8>> = report.values_written.iter().cloned().collect();
    let read: Vec<&Vec<u8>> = report.values_read.iter().map(|(k, _)| k).collect();
    if case.write_mode == WriteMode::Atomic && !report.success {
        prop_assert!(written.is_empty(), "a failed atomic transaction writes nothing");
    }

    // Every lazy key and write key resolved exactly once; nothing else.
    // Released: each lazy key not fed, asked for or not (a request may be
    // lost across processes), once.
    let mut releases: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let mut asked: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut writes: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for (to, message) in &log {
        match message {
            Message::KvsReadRequest { key, timestamp, actual } => {
                prop_assert_eq!(*timestamp, TS);
                prop_assert_eq!(to, &shard_of(std::str::from_utf8(key).unwrap()));
                // A release never names a key the program was fed.
                prop_assert!(*actual || !read.contains(&key), "released a key it read: {key:?}");
                if *actual {
                    prop_assert!(asked.insert(key.clone()), "asked twice for {:?}", key);
                } else {
                    *releases.entry(key.clone()).or_default() += 1;
                }
            }
            Message::KvsWrite { key, timestamp, datum } => {
                prop_assert_eq!(*timestamp, TS);
                prop_assert_eq!(to, &shard_of(std::str::from_utf8(key).unwrap()));
                // What reached the shard is what the report says was written,
                // and a key not written is released.
                prop_assert_eq!(datum.as_ref(), written.get(key), "write of {:?}", key);
                *writes.entry(key.clone()).or_default() += 1;
            }
            Message::ExecutorFinished(_) => {}
            other => prop_assert!(false, "unexpected message {other:?}"),
        }
    }
    // Lazy keys fed to the program were requested (actual: true).
    for key in &read {
        if sets.lazy_read_keys.contains(key) {
            let requested =
                log.iter().any(|(_, m)| matches!(m, Message::KvsReadRequest { key: k, actual: true, .. } if k == *key));
            prop_assert!(requested, "fed lazy key {:?} was never requested", key);
        }
    }
    let expected_releases: BTreeMap<Vec<u8>, usize> =
        sets.lazy_read_keys.iter().filter(|k| !read.contains(k)).map(|k| (k.clone(), 1)).collect();
    prop_assert_eq!(releases, expected_releases);
    let expected_writes: BTreeMap<Vec<u8>, usize> =
        sets.will_write_keys.iter().chain(&sets.may_write_keys).map(|k| (k.clone(), 1)).collect();
    prop_assert_eq!(writes, expected_writes);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_declared_key_is_resolved_once_and_nothing_follows_the_finish(case in case()) {
        check(case)?;
    }
}
