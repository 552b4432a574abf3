//! The executor engine: one test per correction of nspec (see the README's
//! "Differences from nspec"), asserting the exact messages sent.

use std::sync::Arc;
use std::time::Duration;

use counter_guest::CounterFunction;
use executor_host::__internal::ExecutorTimer;
use executor_host::Message;
use executor_host::engine::EngineId;
use executor_host::{Access, Failure, KeySets, Limits, NativeProgram, Oversize, StepCall};
use executor_host::{AccessMode, DropReason, ExecutorOptions, WriteMode, executor_id};
use executor_host::{Sandbox, SandboxConfig};

use crate::scripted::{Op::*, *};
use crate::support;

fn start(exe: Vec<u8>, keys: executor_host::KeySets) -> (Driver, Vec<(EngineId, Message)>) {
    start_with(exe, keys, ExecutorOptions::default())
}

fn start_with(
    exe: Vec<u8>,
    keys: executor_host::KeySets,
    options: ExecutorOptions,
) -> (Driver, Vec<(EngineId, Message)>) {
    let (driver, out) = Driver::start(scripted(), exe, keys, options);
    let id = driver.id();
    (driver, sent(&id, out))
}

fn w(key: &str) -> String {
    key.to_string()
}

/// Splits off the two `ExecutorFinished` at the end of `messages`.
fn split_finished(
    mut messages: Vec<(EngineId, Message)>,
) -> (Vec<(EngineId, Message)>, executor_host::ExecutorFinished) {
    let report = finished(&messages);
    let tail = messages.split_off(messages.len() - 2);
    assert!(tail.iter().all(|(_, m)| matches!(m, Message::ExecutorFinished(_))), "finished comes last");
    (messages, report)
}

#[test]
fn late_read_after_finish_is_dropped() {
    let (mut d, out) =
        start(script(&[&[Read(w("a"))], &[Write(w("b"), w("1")), Halt]]), keys(&["a"], &["c"], &["b"], &[]));
    // It declares an eager read: it starts on it, as in nspec.
    assert!(out.is_empty());
    assert_eq!(sent(&d.id(), d.read("c", Some("0"))), vec![request("a", true)]);
    let (out, report) = split_finished(sent(&d.id(), d.read("a", Some("x"))));
    assert!(report.success);
    assert_eq!(out, vec![write("b", Some("1"))]);

    // A second copy of each value read: nothing runs.
    assert!(d.read("c", Some("late")).is_empty());
    assert!(d.read("a", Some("again")).is_empty());
    // A timer after the finish (a deadline the host fired late) does
    // nothing either.
    assert!(d.fire(ExecutorTimer::Deadline).is_empty());
    assert!(d.fire(ExecutorTimer::Start).is_empty());
    assert_eq!(d.metrics.dropped(DropReason::AfterFinish), 4);
    assert_eq!(d.metrics.finished(), 1);
    // Its host removes it after the linger timer.
    d.fire(ExecutorTimer::Reap);
    assert!(d.stopped);
}

#[test]
fn cleanup_is_computed_after_the_final_step() {
    let exe = script(&[&[Read(w("l1")), Write(w("m1"), w("v")), Write(w("w"), w("v")), Halt]]);
    let (mut d, out) = start(exe, keys(&["l1", "l2"], &["e"], &["w"], &["m1", "m2"]));
    assert!(out.is_empty());
    let (out, _) = split_finished(sent(&d.id(), d.read("e", Some("5"))));
    assert_eq!(
        out,
        vec![
            write("m1", Some("v")),
            write("w", Some("v")),
            // Released: what the final step did not use. m1 and w were
            // written: not released. l1 was asked for by the step that
            // halted, so it is not sent (no value could be fed, and its
            // shard would answer a request cancelled at once): it is
            // released like l2.
            request("l1", false),
            request("l2", false),
            write("m2", None),
        ]
    );
}

#[test]
fn executor_finished_carries_the_final_step_and_goes_to_worker_and_issuer() {
    let exe = script(&[&[Write(w("w"), w("v")), Write(w("m1"), w("u")), Halt]]);
    let (mut d, _) = start(exe, keys(&[], &["e"], &["w"], &["m1"]));
    let (_, report) = split_finished(sent(&d.id(), d.read("e", None)));
    assert_eq!(report.timestamp, TS);
    assert!(report.success);
    assert_eq!(report.failure, None);
    assert_eq!(report.values_read, vec![(b"e".to_vec(), None)]);
    assert_eq!(report.values_written, vec![kv("m1", "u"), kv("w", "v")], "each key once, in key order");
    assert_eq!(report.gas_used, 0, "native programs are unmetered");
}

#[test]
fn failure_releases_every_declared_lock_including_will_writes() {
    let exe = script(&[&[Write(w("w1"), w("1"))], &[Fail]]);
    let (mut d, out) = start(exe, keys(&["l"], &["e1", "e2"], &["w1", "w2"], &["m"]));
    assert!(out.is_empty());
    assert_eq!(sent(&d.id(), d.read("e1", Some("0"))), vec![write("w1", Some("1"))]);
    let (out, report) = split_finished(sent(&d.id(), d.read("e2", Some("0"))));
    assert_eq!(out, vec![request("l", false), write("m", None), write("w2", None)]);
    assert!(!report.success);
    assert_eq!(report.failure, Some(Failure::Guest { message: "scripted failure".into() }));
    assert_eq!(report.values_read, vec![kv_opt("e1", "0"), kv_opt("e2", "0")]);
    assert_eq!(report.values_written, vec![kv("w1", "1")], "streamed before the failure");
}

fn kv_opt(key: &str, datum: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    (key.as_bytes().to_vec(), Some(datum.as_bytes().to_vec()))
}

#[test]
fn output_order_is_kept() {
    let exe = script(&[&[Write(w("y"), w("1")), Read(w("z")), Write(w("b"), w("2")), Read(w("a"))]]);
    let (_, out) = start(exe, keys(&["a", "z"], &[], &["b", "y"], &[]));
    assert_eq!(out, vec![write("y", Some("1")), request("z", true), write("b", Some("2")), request("a", true)]);
}

#[test]
fn undeclared_read_fails_the_transaction_in_strict_mode() {
    let (mut d, out) = start(script(&[&[Read(w("x"))]]), keys(&[], &["e"], &["w"], &[]));
    assert!(out.is_empty(), "it starts on its eager read");
    let (out, report) = split_finished(sent(&d.id(), d.read("e", Some("0"))));
    assert_eq!(out, vec![write("w", None)], "nothing is sent for x");
    assert_eq!(report.failure, Some(Failure::AccessViolation { key: b"x".to_vec(), access: Access::Read }));
}

#[test]
fn undeclared_write_fails_the_transaction_and_is_not_recorded() {
    let (mut d, out) = start(script(&[&[Write(w("x"), w("1"))]]), keys(&[], &["e"], &["w"], &[]));
    assert!(out.is_empty(), "it starts on its eager read");
    let (out, report) = split_finished(sent(&d.id(), d.read("e", Some("0"))));
    assert_eq!(out, vec![write("w", None)]);
    assert_eq!(report.failure, Some(Failure::AccessViolation { key: b"x".to_vec(), access: Access::Write }));
    assert!(report.values_written.is_empty());
}

/// In lenient mode an undeclared access is skipped, counted, and listed
/// in the report (each key once per kind of access, in the order made),
/// so that one run shows every access a transaction lacks.
#[test]
fn undeclared_access_is_only_reported_in_lenient_mode() {
    let options = ExecutorOptions { access_mode: AccessMode::Lenient, ..ExecutorOptions::default() };
    let exe = script(&[&[Read(w("x")), Write(w("x"), w("1")), Read(w("x")), Write(w("w"), w("2")), Halt]]);
    let (d, out) = start_with(exe, keys(&[], &[], &["w"], &[]), options);
    let (out, report) = split_finished(out);
    assert_eq!(out, vec![write("w", Some("2"))]);
    assert!(report.success);
    assert_eq!(report.values_written, vec![kv("w", "2")]);
    assert_eq!(d.metrics.violations_reported(), 3);
    let skipped = |key: &str, access| executor_host::SkippedAccess { key: key.as_bytes().to_vec(), access };
    assert_eq!(report.diagnostics.skipped, vec![skipped("x", Access::Read), skipped("x", Access::Write)]);
    let strict = start(script(&[&[Write(w("w"), w("2")), Halt]]), keys(&[], &[], &["w"], &[])).1;
    assert!(split_finished(strict).1.diagnostics.is_empty(), "nothing skipped, nothing listed");
}

#[test]
fn only_eager_or_requested_keys_are_fed_once_from_their_shard() {
    let exe = script(&[&[Read(w("m"))], &[Write(w("w"), w("1")), Halt]]);
    let (mut d, out) = start(exe, keys(&["l", "m"], &["e"], &["w"], &[]));
    assert!(out.is_empty());
    assert!(d.read("l", Some("1")).is_empty(), "lazy, never requested");
    let fed = sent(&d.id(), d.read("e", Some("1")));
    assert_eq!(fed, vec![request("m", true)], "fed: the program waits for more");
    assert!(d.read("e", Some("2")).is_empty(), "duplicate");
    assert!(d.read_at(TS + 1, "e", Some("3")).is_empty(), "another transaction's");
    let other_shard = EngineId::local("shard-z");
    let forged = Message::KvsRead { timestamp: TS, key: b"l".to_vec(), data: None };
    assert!(d.message(other_shard, forged).is_empty(), "not from the owning shard");
    assert!(d.message(shard_of("e"), Message::KvsLockAcquired { timestamp: TS }).is_empty());
    for (reason, count) in [
        (DropReason::Unrequested, 1),
        (DropReason::Duplicate, 1),
        (DropReason::WrongTimestamp, 1),
        (DropReason::NotFromOwningShard, 1),
        (DropReason::Unexpected, 1),
    ] {
        assert_eq!(d.metrics.dropped(reason), count, "{reason:?}");
    }
    // The program was fed exactly one value.
    let (out, report) = split_finished(sent(&d.id(), d.fire(ExecutorTimer::Deadline)));
    assert_eq!(report.values_read, vec![kv_opt("e", "1")]);
    assert_eq!(out, vec![request("l", false), request("m", false), write("w", None)], "unfed: released");
}

#[test]
fn atomic_mode_holds_writes_until_a_successful_halt() {
    let options = ExecutorOptions { write_mode: WriteMode::Atomic, ..ExecutorOptions::default() };
    let exe = script(&[&[Write(w("b"), w("1")), Write(w("b"), w("2"))], &[Write(w("a"), w("3")), Halt]]);
    let (mut d, out) = start_with(exe, keys(&[], &["e1", "e2"], &["a", "b"], &[]), options);
    assert!(out.is_empty());
    assert!(d.read("e1", None).is_empty(), "nothing written before the halt");
    let (out, report) = split_finished(sent(&d.id(), d.read("e2", None)));
    assert_eq!(out, vec![write("a", Some("3")), write("b", Some("2"))], "last value per key, once");
    assert_eq!(report.values_written, vec![kv("a", "3"), kv("b", "2")]);
}

#[test]
fn atomic_mode_failure_releases_every_write_lock_unwritten() {
    let options = ExecutorOptions { write_mode: WriteMode::Atomic, ..ExecutorOptions::default() };
    let exe = script(&[&[Write(w("a"), w("1"))], &[Fail]]);
    let (mut d, _) = start_with(exe, keys(&[], &["e1", "e2"], &["a"], &["b"]), options);
    assert!(d.read("e1", None).is_empty(), "nothing written before the halt");
    let (out, report) = split_finished(sent(&d.id(), d.read("e2", None)));
    assert_eq!(out, vec![write("a", None), write("b", None)]);
    assert!(report.values_written.is_empty());
}

#[test]
fn streaming_mode_writes_at_once_and_refuses_a_second_write() {
    let exe = script(&[&[Write(w("a"), w("1"))], &[Write(w("a"), w("2"))]]);
    let (mut d, out) = start(exe, keys(&[], &["e1", "e2"], &["a", "b"], &[]));
    assert!(out.is_empty());
    assert_eq!(sent(&d.id(), d.read("e1", None)), vec![write("a", Some("1"))]);
    let (out, report) = split_finished(sent(&d.id(), d.read("e2", None)));
    assert_eq!(out, vec![write("b", None)]);
    assert_eq!(report.failure, Some(Failure::AccessViolation { key: b"a".to_vec(), access: Access::Rewrite }));
    assert_eq!(report.values_written, vec![kv("a", "1")]);
}

/// nspec's programs assume every step's subject holds a read: a
/// transaction that declares eager reads starts on the first of them in
/// key order, whichever arrives first; only one without eager reads runs
/// its first step at spawn, without input.
#[test]
fn first_step_runs_on_the_first_eager_read_in_key_order() {
    let program = Arc::new(NativeProgram::<support::Recording>::new(Limits::default()));
    let (mut d, out) =
        Driver::start(program, Vec::new(), keys(&[], &["b", "a", "c"], &["seen"], &[]), Default::default());
    assert!(out.is_empty(), "no step before a read");
    // Arrival order c, b, a: nothing runs until a, then a, b, c in order.
    assert!(d.read("c", Some("3")).is_empty());
    assert!(d.read("b", Some("2")).is_empty());
    let (_, report) = split_finished(sent(&d.id(), d.read("a", Some("1"))));
    assert!(report.success, "{:?}", report.failure);
    assert_eq!(report.values_written, vec![kv("seen", "a=1,b=2,c=3")]);
}

/// The order values arrive in never shows: the program sees eager keys in
/// key order and requested keys in request order, so the same transaction
/// on the same values steps, costs and ends the same way in every
/// delivery order. Before the fix the wasm transfer cost different gas
/// when its two balances arrived in the other order.
#[test]
fn arrival_order_changes_neither_steps_nor_gas() {
    let run = |order: [(&str, &str); 2]| {
        let program = Arc::new(support::transfer());
        let exe = support::transfer_exe("bob", "oscar", 80);
        let ks = keys(&[], &["bob", "oscar"], &["bob", "oscar"], &[]);
        let (mut d, _) = Driver::start(program, exe, ks, ExecutorOptions::default());
        let mut out = Vec::new();
        for (key, value) in order {
            out.extend(sent(&d.id(), d.read(key, Some(value))));
        }
        split_finished(out)
    };
    let forward = run([("bob", "100"), ("oscar", "5")]);
    let backward = run([("oscar", "5"), ("bob", "100")]);
    assert!(forward.1.success, "{:?}", forward.1.failure);
    assert_eq!(forward, backward);
}

/// Key sets are normalized by the executor itself (README difference 14):
/// a key both eager and lazy is eager (reading it sends no request), a key
/// both will- and may-written is released once.
#[test]
fn key_sets_are_normalized_by_the_executor() {
    let exe = script(&[&[Read(w("a"))], &[Fail]]);
    let raw = keys(&["a", "l"], &["b", "a", "b"], &["w", "w"], &["w", "m"]);
    let (mut d, out) = start(exe, raw);
    assert!(out.is_empty());
    // a is eager (the smallest eager key): the first step runs on it, and
    // its Read(a) asks for nothing.
    assert!(d.read("a", Some("1")).is_empty());
    let (out, report) = split_finished(sent(&d.id(), d.read("b", Some("2"))));
    assert_eq!(out, vec![request("l", false), write("m", None), write("w", None)]);
    assert_eq!(report.values_read, vec![kv_opt("a", "1"), kv_opt("b", "2")]);
}

#[test]
fn first_step_runs_without_a_read() {
    let (_, out) = start(script(&[&[Write(w("w"), w("1")), Halt]]), keys(&[], &[], &["w"], &[]));
    let (out, report) = split_finished(out);
    assert_eq!(out, vec![write("w", Some("1"))]);
    assert!(report.success);
}

#[test]
fn absent_key_reaches_the_program_as_absent() {
    let program = Arc::new(NativeProgram::<CounterFunction>::new(Limits::default()));
    let exe = br#"{"key":"e","amount":5}"#.to_vec();
    let (mut d, out) = Driver::start(program, exe, keys(&[], &["e"], &["e"], &[]), ExecutorOptions::default());
    assert!(out.is_empty(), "an eager key needs no request");
    let (out, report) = split_finished(sent(&d.id(), d.read("e", None)));
    assert_eq!(out, vec![write("e", Some("5"))]);
    assert_eq!(report.values_read, vec![(b"e".to_vec(), None)]);
}

#[test]
fn exhausting_gas_fails_the_transaction() {
    let options = ExecutorOptions { gas_limit: 1_000, ..ExecutorOptions::default() };
    let exe = support::transfer_exe("a", "b", 1);
    let program = Arc::new(support::transfer());
    let (mut d, out) = Driver::start(program, exe, keys(&[], &["a", "b"], &["a", "b"], &[]), options);
    assert!(out.is_empty(), "it starts on its first eager read");
    assert!(d.read("a", Some("5")).is_empty(), "a wasm guest's round waits for all its values");
    let (out, report) = split_finished(sent(&d.id(), d.read("b", Some("5"))));
    assert_eq!(out, vec![write("a", None), write("b", None)]);
    assert_eq!(report.failure, Some(Failure::OutOfGas));
    assert_eq!(report.gas_used, 1_000);
}

/// At its deadline an executor releases every lock it holds: the lazy
/// key it asked for and never got as well as the one it never asked for
/// (across processes a request may be lost, and the shard then never
/// resolves that read unless released).
#[test]
fn deadline_fails_the_transaction_with_full_cleanup() {
    let (mut d, _) = start(script(&[&[Read(w("l1"))]]), keys(&["l1", "l2"], &["e"], &["w"], &[]));
    assert_eq!(sent(&d.id(), d.read("e", Some("0"))), vec![request("l1", true)]);
    let (out, report) = split_finished(sent(&d.id(), d.fire(ExecutorTimer::Deadline)));
    assert_eq!(out, vec![request("l1", false), request("l2", false), write("w", None)]);
    assert_eq!(report.failure, Some(Failure::Deadline { bound_ms: 30_000 }));
}

/// The deadline timer fires between actions, and one action may feed
/// many values, a call each: the executor also checks the deadline
/// between those calls, so a transaction of many slow steps fed in one
/// action ends near its deadline, not after every step.
#[test]
fn a_deadline_passed_between_the_calls_of_one_action_ends_the_transaction() {
    #[derive(Debug)]
    struct Slow;
    impl executor_host::Program for Slow {
        fn step(&self, _: StepCall<'_>) -> executor_host::StepReport {
            std::thread::sleep(Duration::from_millis(20));
            let output = executor_host::StepOutput { state: b"s".to_vec(), requests: Vec::new(), halted: false };
            executor_host::StepReport { result: Ok(output), gas_used: 1, log: Default::default() }
        }
    }
    let names: Vec<String> = (0..20).map(|i| format!("e{i:02}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let options = ExecutorOptions { deadline: Duration::from_millis(50), ..ExecutorOptions::default() };
    let (mut d, _) = Driver::start(Arc::new(Slow), Vec::new(), keys(&[], &names, &["w"], &[]), options);
    // Held until the first in key order arrives; then all are due at once.
    for name in names.iter().skip(1).rev() {
        assert!(d.read(name, Some("0")).is_empty());
    }
    let (out, report) = split_finished(sent(&d.id(), d.read(names[0], Some("0"))));
    assert_eq!(report.failure, Some(Failure::Deadline { bound_ms: 50 }));
    let fed = report.values_read.len();
    assert!((3..10).contains(&fed), "fed {fed} of 20 values 20 ms apart past a 50 ms deadline");
    assert_eq!(out, vec![write("w", None)], "its lock released");
}

/// A program whose every step halts, using 1 unit of gas, or one more
/// than it was given if it `overspends`.
#[derive(Debug)]
struct Halts {
    overspends: bool,
}

impl executor_host::Program for Halts {
    fn step(&self, call: StepCall<'_>) -> executor_host::StepReport {
        let output = executor_host::StepOutput { state: b"s".to_vec(), requests: Vec::new(), halted: true };
        let gas_used = if self.overspends { call.gas_limit + 1 } else { 1 };
        executor_host::StepReport { result: Ok(output), gas_used, log: Default::default() }
    }
}

/// A value that arrives after the deadline may be handled before the
/// deadline timer (a host handles what came during a long call in one
/// turn, and fires its due timers after): it is not fed, the transaction
/// fails at its deadline all the same, whatever the order.
#[test]
fn a_value_handled_after_the_deadline_is_not_fed() {
    let options = ExecutorOptions { deadline: Duration::from_millis(30), ..ExecutorOptions::default() };
    let (mut d, _) = Driver::start(
        Arc::new(Halts { overspends: false }),
        Vec::new(),
        keys(&[], &["e"], &["w"], &[]),
        options.clone(),
    );
    std::thread::sleep(Duration::from_millis(60));
    let (out, report) = split_finished(sent(&d.id(), d.read("e", Some("0"))));
    assert_eq!(report.failure, Some(Failure::Deadline { bound_ms: 30 }));
    assert!(report.values_read.is_empty(), "{:?}", report.values_read);
    assert_eq!(out, vec![write("w", None)], "its lock released");
    // Before the deadline, the same value is fed.
    let (mut d, _) =
        Driver::start(Arc::new(Halts { overspends: false }), Vec::new(), keys(&[], &["e"], &["w"], &[]), options);
    let (_, report) = split_finished(sent(&d.id(), d.read("e", Some("0"))));
    assert_eq!(report.failure, None);
    assert_eq!(report.values_read.len(), 1);
}

/// A program reports the gas its step used; one that reports more than
/// the step was given (an embedder's own `Program`, miscounting) is out
/// of gas, charged what it was given, and the total never passes the
/// budget.
#[test]
fn a_program_reporting_more_gas_than_it_was_given_is_out_of_gas() {
    let options = ExecutorOptions { gas_limit: 1_000, ..ExecutorOptions::default() };
    let (mut d, _) =
        Driver::start(Arc::new(Halts { overspends: true }), Vec::new(), keys(&[], &["e"], &[], &[]), options);
    let (_, report) = split_finished(sent(&d.id(), d.read("e", Some("0"))));
    assert_eq!((report.failure, report.gas_used), (Some(Failure::OutOfGas), 1_000));
}

/// A program that is not halted and waits for no value (every eager value
/// and every one it asked for was fed) can never go on: it fails at once,
/// not at its deadline, with its locks released and its streamed write
/// kept; and so does one that asks again for a value it was fed.
#[test]
fn a_program_that_waits_for_nothing_fails_at_once() {
    let (_, out) = start(script(&[&[Write(w("w"), w("1"))]]), keys(&["l"], &[], &["w", "v"], &[]));
    let (out, report) = split_finished(out);
    assert_eq!(out, vec![write("w", Some("1")), request("l", false), write("v", None)]);
    assert_eq!(report.failure, Some(Failure::Stalled));
    let (mut d, out) = start(script(&[&[Read(w("l"))], &[Read(w("l"))]]), keys(&["l"], &[], &[], &[]));
    assert_eq!(out, vec![request("l", true)]);
    let (out, report) = split_finished(sent(&d.id(), d.read("l", Some("1"))));
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(report.failure, Some(Failure::Stalled));
    assert_eq!(report.values_read, vec![kv_opt("l", "1")]);
}

/// A program whose `session` panics fails its transaction like one whose
/// step panics: every lock released, one report.
#[test]
fn a_panicking_session_fails_the_transaction() {
    #[derive(Debug)]
    struct PanicsInSession;
    impl executor_host::Program for PanicsInSession {
        fn step(&self, _: StepCall<'_>) -> executor_host::StepReport {
            panic!("a step runs only in a session here")
        }
        fn session(&self) -> Option<Box<dyn executor_host::Session + '_>> {
            panic!("no session today")
        }
    }
    let keys = keys(&[], &["e"], &["w"], &[]);
    let (mut d, out) = Driver::start(Arc::new(PanicsInSession), Vec::new(), keys, ExecutorOptions::default());
    assert!(out.is_empty());
    let (out, report) = split_finished(sent(&d.id(), d.read("e", Some("1"))));
    assert_eq!(out, vec![write("w", None)]);
    assert_eq!(report.failure, Some(Failure::Host { message: "the program panicked: no session today".into() }));
}

/// Many keys, looked up by index rather than by scanning (a host's cost
/// stays linear in them): every lazy key asked for in one step and each
/// fed once, a duplicate dropped; then more writes than are scanned, the
/// last a second write of the first key, refused in streaming mode.
#[test]
fn a_transaction_of_many_keys_is_fed_each_once_and_its_writes_checked() {
    const N: u32 = 3_000;
    #[derive(Debug)]
    struct Many;
    impl executor_host::Program for Many {
        fn step(&self, call: StepCall<'_>) -> executor_host::StepReport {
            let fed = call.state.map_or(0, |s| u32::from_le_bytes(s.try_into().unwrap()));
            let key = |i: u32| format!("k{i:05}").into_bytes();
            let requests = match (call.state, fed) {
                (None, _) => (0..N).map(|i| executor_host::Request::Read(key(i))).collect(),
                (Some(_), f) if f + 1 == N => (0..N)
                    .map(|i| executor_host::Request::Write(key(i), b"1".to_vec()))
                    .chain([executor_host::Request::Write(key(0), b"2".to_vec())])
                    .collect(),
                _ => Vec::new(),
            };
            let state = if call.state.is_none() { 0 } else { fed + 1 };
            let output = executor_host::StepOutput { state: state.to_le_bytes().to_vec(), requests, halted: false };
            executor_host::StepReport { result: Ok(output), gas_used: 1, log: Default::default() }
        }
    }
    let names: Vec<String> = (0..N).map(|i| format!("k{i:05}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let keys = keys(&names, &[], &[], &names);
    let (mut d, out) = Driver::start(Arc::new(Many), Vec::new(), keys, ExecutorOptions::default());
    assert_eq!(out.len(), N as usize, "every lazy key asked for");
    for name in &names[..names.len() - 1] {
        assert!(d.read(name, Some("0")).is_empty());
    }
    assert!(d.read(names[0], Some("0")).is_empty(), "a duplicate");
    assert_eq!(d.metrics.dropped(DropReason::Duplicate), 1);
    let (out, report) = split_finished(sent(&d.id(), d.read(names[names.len() - 1], Some("0"))));
    assert_eq!(report.failure, Some(Failure::AccessViolation { key: b"k00000".to_vec(), access: Access::Rewrite }));
    assert_eq!(report.values_read.len(), N as usize);
    assert_eq!(out.len(), N as usize, "each key written once, none released: {:?}", &out[..3]);
}

/// A deadline of `NO_DEADLINE` or more is none: no timer is set, so a
/// simulated clock does not reach it either (a real one never would).
#[test]
fn a_deadline_of_a_century_is_none() {
    for deadline in [executor_host::NO_DEADLINE, Duration::MAX] {
        let options = ExecutorOptions { deadline, ..ExecutorOptions::default() };
        let (d, out) = start_with(script(&[&[Read(w("l"))]]), keys(&["l"], &[], &[], &[]), options);
        assert_eq!(out, vec![request("l", true)]);
        assert!(!d.instance.env.timers.iter().any(|t| t.handle == ExecutorTimer::Deadline));
    }
    let options =
        ExecutorOptions { deadline: executor_host::NO_DEADLINE - Duration::from_secs(1), ..Default::default() };
    let (d, _) = start_with(script(&[&[Read(w("l"))]]), keys(&["l"], &[], &[], &[]), options);
    assert!(d.instance.env.timers.iter().any(|t| t.handle == ExecutorTimer::Deadline));
}

#[test]
fn guest_call_wall_clock_bound_fails_the_transaction() {
    let limits = Limits { call_time: Duration::from_millis(30), ..Limits::default() };
    let sandbox = Sandbox::new(SandboxConfig { limits, ..SandboxConfig::default() }).unwrap();
    let program = Arc::new(support::load(&sandbox, guest_artifacts::HOSTILE));
    let options = ExecutorOptions { gas_limit: u64::MAX, ..ExecutorOptions::default() };
    let (d, out) = Driver::start(program, b"loop".to_vec(), keys(&[], &[], &["w"], &[]), options);
    let (out, report) = split_finished(sent(&d.id(), out));
    assert_eq!(out, vec![write("w", None)]);
    assert_eq!(report.failure, Some(Failure::Timeout { bound_ms: 30 }));
}

#[test]
fn executor_ids_are_unique_and_are_the_sender() {
    let a = executor_id(&EngineId::local("worker-1"), 1);
    let b = executor_id(&EngineId::local("worker-1"), 2);
    let c = executor_id(&EngineId::local("worker-2"), 1);
    assert!(a != b && a != c && b != c);
    assert!(a.name.contains("worker-1") && a.name.ends_with("/1"));
    // `sent` checks the sender of every message against the id.
    let (d, out) = start(script(&[&[Halt]]), keys(&[], &[], &[], &[]));
    assert_eq!(d.id(), executor_id(&worker(), TS));
    split_finished(out);
}

/// Before the fix, lenient mode skipped a second write of one key in
/// streaming mode and reported success with the first value: the
/// program's last word was lost. It fails in every access mode, named for
/// what it is.
#[test]
fn a_second_streamed_write_fails_even_in_lenient_mode() {
    let options = ExecutorOptions { access_mode: AccessMode::Lenient, ..ExecutorOptions::default() };
    let exe = script(&[&[Write(w("a"), w("1")), Write(w("a"), w("2")), Halt]]);
    let (_, out) = start_with(exe, keys(&[], &[], &["a"], &[]), options);
    let (out, report) = split_finished(out);
    assert_eq!(out, vec![write("a", Some("1"))]);
    let failure = report.failure.unwrap();
    assert_eq!(failure, Failure::AccessViolation { key: b"a".to_vec(), access: Access::Rewrite });
    assert!(failure.to_string().starts_with("second write of key a in streaming mode"), "{failure}");
}

/// Before, a `KvsRead` the network lost (or an executor re-run elsewhere,
/// whose shards had already answered its first incarnation) stalled the
/// transaction until its deadline: nothing ever asked again. With
/// `resend`, the executor asks at spawn and then every period for the
/// values it has neither been fed nor holds, and ends exactly as it would
/// have without the loss: same messages, steps and gas.
#[test]
fn with_resend_lost_eager_reads_are_asked_for_again_and_the_outcome_is_unchanged() {
    let period = Duration::from_secs(1);
    let run = |resend: Option<Duration>| {
        let options = ExecutorOptions { resend, ..ExecutorOptions::default() };
        let exe = support::transfer_exe("bob", "oscar", 80);
        let ks = keys(&[], &["bob", "oscar"], &["bob", "oscar"], &[]);
        Driver::start(Arc::new(support::transfer()), exe, ks, options)
    };
    let is_request = |(_, m): &(EngineId, Message)| matches!(m, Message::KvsReadRequest { actual: true, .. });

    // Without loss, without resend.
    let (mut d, out) = run(None);
    assert!(out.is_empty());
    let mut lossless = sent(&d.id(), d.read("bob", Some("100")));
    lossless.extend(sent(&d.id(), d.read("oscar", Some("5"))));
    let (lossless, expected) = split_finished(lossless);
    assert!(expected.success, "{:?}", expected.failure);
    assert!(expected.gas_used > 0);

    // Both reads lost: asked for at spawn, and again a period later.
    let (mut d, out) = run(Some(period));
    let both = vec![request("bob", true), request("oscar", true)];
    assert_eq!(sent(&d.id(), out), both, "asked at spawn");
    d.now += period;
    assert_eq!(sent(&d.id(), d.fire(ExecutorTimer::Resend)), both, "asked again");
    // bob arrives (oscar is lost again): only oscar is asked for.
    let mut lossy = sent(&d.id(), d.read("bob", Some("100")));
    d.now += period;
    assert_eq!(sent(&d.id(), d.fire(ExecutorTimer::Resend)), vec![request("oscar", true)]);
    lossy.extend(sent(&d.id(), d.read("oscar", Some("5"))));
    // A late answer to a re-ask, after the finish, is dropped.
    assert!(d.read("oscar", Some("5")).is_empty());
    let (lossy, report) = split_finished(lossy);
    assert_eq!(report, expected, "same reads, writes, steps and gas");
    assert_eq!(lossy, lossless);
    assert!(!lossy.iter().any(is_request));
    assert!(
        !d.instance.env.timers.iter().any(|t| t.handle == ExecutorTimer::Resend),
        "the finish cancels the re-asking"
    );
}

/// A requested lazy key is asked for again too, once requested and until
/// fed; a key fed or held is not. Without eager reads the first re-ask is
/// a period after spawn.
#[test]
fn with_resend_requested_lazy_keys_are_asked_for_again_until_fed() {
    let period = Duration::from_millis(250);
    let options = ExecutorOptions { resend: Some(period), ..ExecutorOptions::default() };
    let exe = script(&[&[Read(w("l1")), Read(w("l2"))], &[], &[Write(w("w"), w("1")), Halt]]);
    let (mut d, out) = start_with(exe.clone(), keys(&["l1", "l2", "l3"], &[], &["w"], &[]), options.clone());
    assert_eq!(out, vec![request("l1", true), request("l2", true)], "the start step's requests");
    assert!(
        d.instance.env.timers.iter().any(|t| t.handle == ExecutorTimer::Resend && t.at == period),
        "{:?}",
        d.instance.env.timers
    );
    // l2 arrives before l1: held, not asked for again.
    assert!(d.read("l2", Some("2")).is_empty());
    d.now += period;
    assert_eq!(sent(&d.id(), d.fire(ExecutorTimer::Resend)), vec![request("l1", true)]);
    let (out, report) = split_finished(sent(&d.id(), d.read("l1", Some("1"))));
    assert_eq!(out, vec![write("w", Some("1")), request("l3", false)]);
    assert_eq!(report.values_read, vec![kv_opt("l1", "1"), kv_opt("l2", "2")]);
    assert_eq!(d.metrics.dropped_total(), 0);

    // With an eager key: asked for at spawn, and not once fed.
    let exe = script(&[&[Read(w("l1"))], &[], &[Halt]]);
    let (mut d, out) = start_with(exe, keys(&["l1"], &["e"], &[], &[]), options);
    assert_eq!(out, vec![request("e", true)]);
    assert_eq!(sent(&d.id(), d.read("e", Some("0"))), vec![request("l1", true)]);
    d.now += period;
    assert_eq!(sent(&d.id(), d.fire(ExecutorTimer::Resend)), vec![request("l1", true)]);
}

/// A wasm guest's round (the values due together: every eager read, then
/// each batch of lazy reads the previous round asked for) waits until all
/// its values are here and runs in one instance. Its gas is then that of
/// one session, whichever value arrived first; a value delivered alone
/// runs nothing.
#[test]
fn a_wasm_round_waits_for_its_values_and_runs_in_one_instance_whatever_their_order() {
    let program: Arc<dyn executor_host::Program> = Arc::new(support::transfer());
    let exe = support::transfer_exe("a", "b", 1);
    let gas_of = |declared: KeySets, order: [&str; 2]| {
        let (mut d, out) = Driver::start(program.clone(), exe.clone(), declared, ExecutorOptions::default());
        let asked: Vec<_> = sent(&d.id(), out);
        assert!(d.read(order[0], Some("5")).is_empty(), "{order:?}: half a round runs nothing");
        let (out, report) = split_finished(sent(&d.id(), d.read(order[1], Some("5"))));
        assert_eq!(out, vec![write("a", Some("4")), write("b", Some("6"))]);
        assert!(report.success);
        (asked, report.gas_used)
    };
    // Eager: the first round is both balances; nothing is asked for.
    let eager = keys(&[], &["a", "b"], &["a", "b"], &[]);
    let (asked, gas) = gas_of(eager.clone(), ["a", "b"]);
    assert!(asked.is_empty());
    assert_eq!(gas_of(eager, ["b", "a"]).1, gas);
    // The same two steps in one session, as the executor runs them.
    let input = |key: &str| executor_host::Input { key: key.into(), datum: Some(b"5".to_vec()) };
    let (first, second) = (input("a"), input("b"));
    let mut session = program.session().expect("a wasm program has sessions");
    let call = |state, input| StepCall { executable: &exe, state, input: Some(input), gas_limit: 100_000_000 };
    let one = session.step(call(None, &first));
    let state = one.result.clone().expect("first step").state;
    let two = session.step(call(Some(&state), &second));
    assert_eq!(one.gas_used + two.gas_used, gas);
    // Lazy: the first step runs alone without input and asks for both; the
    // second round is the two answers, in the order asked.
    let lazy = keys(&["a", "b"], &[], &["a", "b"], &[]);
    let (asked, gas) = gas_of(lazy.clone(), ["b", "a"]);
    assert_eq!(asked, vec![request("a", true), request("b", true)]);
    assert_eq!(gas_of(lazy, ["a", "b"]).1, gas);
}

/// A report bound (`ExecutorOptions::report_bytes`, set by transports that
/// cap a message) fails the write that would pass it, before it is sent,
/// even in lenient mode; every other lock is released and the report
/// holds what was sent.
#[test]
fn a_write_past_the_report_bound_fails_unsent_and_releases_the_rest() {
    let options =
        ExecutorOptions { report_bytes: Some(100), access_mode: AccessMode::Lenient, ..ExecutorOptions::default() };
    let long = "x".repeat(40);
    let exe = script(&[&[Write(w("a"), w("0123456789"))], &[Write(w("b"), long), Halt]]);
    let (mut d, out) = start_with(exe, keys(&[], &["e1", "e2"], &["a", "b"], &[]), options);
    assert!(out.is_empty());
    // e1 and its value: 2 + 1 + 16; a and its value: 1 + 10 + 16.
    assert_eq!(sent(&d.id(), d.read("e1", Some("v"))), vec![write("a", Some("0123456789"))]);
    // e2, absent: 2 + 16, so 64; b and 40 bytes: 57 more.
    let (out, report) = split_finished(sent(&d.id(), d.read("e2", None)));
    assert_eq!(out, vec![write("b", None)]);
    assert_eq!(report.failure, Some(Failure::TooLarge { what: Oversize::Report, size: 121, limit: 100 }));
    assert_eq!(report.values_written, vec![kv("a", "0123456789")]);
    assert_eq!(report.values_read, vec![kv_opt("e1", "v"), (b"e2".to_vec(), None)]);
}

/// A value that would take the report past its bound is not fed: the
/// program never sees it and the report does not carry it.
#[test]
fn a_value_past_the_report_bound_fails_the_transaction_before_its_step() {
    let options = ExecutorOptions { report_bytes: Some(50), ..ExecutorOptions::default() };
    let exe = script(&[&[], &[Write(w("a"), w("1")), Halt]]);
    let (mut d, _) = start_with(exe, keys(&[], &["e1", "e2"], &["a"], &[]), options);
    assert!(d.read("e1", Some("v")).is_empty());
    let (out, report) = split_finished(sent(&d.id(), d.read("e2", Some(&"y".repeat(20)))));
    assert_eq!(out, vec![write("a", None)], "the step that writes a never ran");
    assert_eq!(report.failure, Some(Failure::TooLarge { what: Oversize::Report, size: 57, limit: 50 }));
    assert_eq!(report.values_read, vec![kv_opt("e1", "v")]);
}

/// In atomic mode the report carries the last value per key, so a value
/// written again counts once.
#[test]
fn an_atomic_rewrite_counts_once_against_the_report_bound() {
    let options = ExecutorOptions { report_bytes: Some(60), write_mode: WriteMode::Atomic, ..Default::default() };
    let (first, last) = ("1".repeat(20), "2".repeat(20));
    let exe = script(&[&[Write(w("b"), first), Write(w("b"), last.clone()), Halt]]);
    let (mut d, _) = start_with(exe, keys(&[], &["e1"], &["b"], &[]), options);
    // e1: 18; b: 37, twice would be 92.
    let (out, report) = split_finished(sent(&d.id(), d.read("e1", None)));
    assert!(report.success, "{:?}", report.failure);
    assert_eq!(out, vec![write("b", Some(&last))]);
}
