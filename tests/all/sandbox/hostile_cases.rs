//! Every hostile guest, end to end, in one table: each case runs through
//! the harness (reference shards, the mempool worker, the executor) and must
//! end in its typed failure (or, for the malformed ones, be refused on load)
//! with every lock it declared released; then counter transactions on every
//! key it declared, in the same run and the same sandbox, must succeed on the
//! values it left.
//!
//! The cases assert the failure's kind, not gas or step counts: the kinds are
//! what the sandbox promises, the rest may change with the executor.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use executor_host::{AccessMode, ExecutorOptions, KeySets, Limits, WriteMode};
use executor_host::{Program, Sandbox, SandboxConfig, StepCall, StepReport, WasmProgram};
use executor_testkit::harness::{self, Delivery, TxOutcome, TxSpec, Workload};

use super::wat_guest::Wat;
use crate::support::*;

/// The sandbox a case runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    /// The defaults (`SandboxConfig::default()`).
    Default,
    /// A 50 ms wall-clock bound per guest call.
    FastClock,
    /// 512 MiB of linear memory per instance.
    Roomy,
    /// Instances allocated on demand instead of from the pool.
    OnDemand,
}

const FAST_CLOCK: Duration = Duration::from_millis(50);

impl Room {
    fn sandbox(self) -> &'static Sandbox {
        static FAST: OnceLock<Sandbox> = OnceLock::new();
        static ROOMY: OnceLock<Sandbox> = OnceLock::new();
        static ON_DEMAND: OnceLock<Sandbox> = OnceLock::new();
        let make = |config: SandboxConfig| Sandbox::new(config).expect("sandbox");
        let small_pool = SandboxConfig { pool_slots: Some(4), ..SandboxConfig::default() };
        match self {
            Self::Default => sandbox(),
            Self::FastClock => FAST.get_or_init(|| {
                make(SandboxConfig { limits: Limits { call_time: FAST_CLOCK, ..Limits::default() }, ..small_pool })
            }),
            Self::Roomy => ROOMY.get_or_init(|| {
                make(SandboxConfig { limits: Limits { memory_bytes: 512 << 20, ..Limits::default() }, ..small_pool })
            }),
            Self::OnDemand => ON_DEMAND.get_or_init(|| make(SandboxConfig { pool_slots: None, ..small_pool })),
        }
    }

    /// The counter guest, loaded in this sandbox.
    fn counter(self) -> WasmProgram {
        load(self.sandbox(), guest_artifacts::COUNTER)
    }
}

/// The misbehaving guest of a case.
#[derive(Clone, Copy)]
enum Guest {
    /// The `hostile` guest, with this executable (its mode).
    Hostile(&'static str),
    /// A hand-written component.
    Wat(Wat),
    /// Bytes that are not a loadable executor at all.
    Bytes(fn() -> Vec<u8>),
}

/// How a case must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The transaction fails with a failure of this kind (`Failure::kind`).
    Fails(&'static str),
    /// The transaction succeeds: the attack sits exactly at a limit, or is
    /// skipped (lenient mode) or harmless.
    Succeeds,
    /// `Sandbox::load` refuses the bytes with this kind of `LoadError`.
    Refused(&'static str),
}

use Expect::{Fails, Refused, Succeeds};

struct Case {
    name: &'static str,
    guest: Guest,
    room: Room,
    gas: u64,
    write_mode: WriteMode,
    access_mode: AccessMode,
    expect: Expect,
    /// More checks on the hostile transaction's outcome.
    check: Option<fn(&TxOutcome)>,
}

/// Gas for cases that must stop on gas: enough for any honest step, little
/// enough that a spinning guest stops within milliseconds.
const SPIN_GAS: u64 = 10_000_000;
/// Gas for everything else: so much that only the attacked limit can stop
/// the guest (growing memory may cost gas too).
const AMPLE_GAS: u64 = 10_000_000_000;

fn case(name: &'static str, guest: Guest, expect: Expect) -> Case {
    Case {
        name,
        guest,
        room: Room::Default,
        gas: AMPLE_GAS,
        write_mode: WriteMode::Streaming,
        access_mode: AccessMode::Strict,
        expect,
        check: None,
    }
}

fn hostile(name: &'static str, mode: &'static str, expect: Expect) -> Case {
    case(name, Guest::Hostile(mode), expect)
}

fn wat(name: &'static str, wat: Wat, expect: Expect) -> Case {
    case(name, Guest::Wat(wat), expect)
}

impl Case {
    fn room(self, room: Room) -> Self {
        Self { room, ..self }
    }
    fn gas(self, gas: u64) -> Self {
        Self { gas, ..self }
    }
    fn atomic(self) -> Self {
        Self { write_mode: WriteMode::Atomic, ..self }
    }
    fn lenient(self) -> Self {
        Self { access_mode: AccessMode::Lenient, ..self }
    }
    fn check(self, check: fn(&TxOutcome)) -> Self {
        Self { check: Some(check), ..self }
    }
    /// Spinning stopped by the wall-clock bound: no gas bound in reach.
    fn on_the_clock(self) -> Self {
        self.room(Room::FastClock).gas(u64::MAX)
    }
}

/// The keys every hostile transaction declares, and the value each starts
/// with.
const EAGER: &str = "e";
const LAZY: [&str; 2] = ["l", "l2"];
const WILL: &str = "w";
const MAY: &str = "m";
const INITIAL: u64 = 10;

fn declared() -> [&'static str; 5] {
    [EAGER, LAZY[0], LAZY[1], WILL, MAY]
}

fn b(key: &str) -> Vec<u8> {
    key.as_bytes().to_vec()
}

fn hostile_keys() -> KeySets {
    KeySets {
        eager_read_keys: vec![b(EAGER)],
        lazy_read_keys: LAZY.iter().map(|k| b(k)).collect(),
        will_write_keys: vec![b(WILL)],
        may_write_keys: vec![b(MAY)],
    }
}

/// A counter transaction adding 1 to `key`, declared eager and will-write.
fn counter_tx(key: &str) -> TxSpec {
    TxSpec {
        executable: format!(r#"{{"key":"{key}","amount":1}}"#).into_bytes(),
        keys: KeySets { eager_read_keys: vec![b(key)], will_write_keys: vec![b(key)], ..KeySets::default() },
    }
}

/// One program for a whole run: counter executables go to the counter
/// guest, everything else to the hostile one (both from one sandbox).
#[derive(Debug)]
struct Mixed {
    hostile: Option<WasmProgram>,
    counter: WasmProgram,
}

impl Program for Mixed {
    fn step(&self, call: StepCall<'_>) -> StepReport {
        match &self.hostile {
            Some(hostile) if !call.executable.starts_with(br#"{"key""#) => hostile.step(call),
            _ => self.counter.step(call),
        }
    }
}

/// An error and its causes, on one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let causes: Vec<String> = std::iter::successors(Some(error), |e| e.source()).map(ToString::to_string).collect();
    causes.join(": ")
}

fn load_kind_of(expect: Expect) -> &'static str {
    match expect {
        Refused(kind) => kind,
        _ => "",
    }
}

fn decimal(datum: &[u8]) -> u64 {
    std::str::from_utf8(datum).unwrap().parse().unwrap()
}

/// Runs one case end to end and checks everything; returns what happened,
/// for the summary.
fn run(case: &Case, seed: u64) -> String {
    let name = case.name;
    let sandbox = case.room.sandbox();
    let loaded = match case.guest {
        Guest::Hostile(_) => Ok(load(sandbox, guest_artifacts::HOSTILE)),
        Guest::Wat(wat) => sandbox.load(&wat.component()),
        Guest::Bytes(bytes) => sandbox.load(&bytes()),
    };
    let (hostile, refusal) = match loaded {
        Ok(program) => (Some(program), None),
        Err(error) => {
            assert_eq!(Refused(error.kind()), case.expect, "{name}: refused: {error:#}");
            (None, Some(error))
        }
    };
    let refused = hostile.is_none();
    let executable = match case.guest {
        Guest::Hostile(mode) => mode.as_bytes().to_vec(),
        _ => b"hostile".to_vec(),
    };

    let mut transactions = Vec::new();
    if !refused {
        transactions.push(TxSpec { executable, keys: hostile_keys() });
    }
    transactions.extend(declared().into_iter().map(counter_tx));
    let workload = Workload {
        shards: 3,
        initial: declared().into_iter().map(|k| (b(k), INITIAL.to_string().into_bytes())).collect(),
        transactions,
    };
    let options = ExecutorOptions {
        gas_limit: case.gas,
        write_mode: case.write_mode,
        access_mode: case.access_mode,
        ..ExecutorOptions::default()
    };
    let program = Arc::new(Mixed { hostile, counter: case.room.counter() });
    let outcome = harness::execute(&workload, program, &options, Delivery::Deterministic { seed })
        .unwrap_or_else(|e| panic!("{name} (seed {seed}): the run did not complete: {e}"));
    assert_eq!(outcome.pending_markers, 0, "{name} (seed {seed}): locks left pending");
    assert_eq!(outcome.transactions.len(), workload.transactions.len(), "{name}");

    // What the hostile transaction did.
    let (summary, written) = if refused {
        let refusal = refusal.map(|e| chain(&e).chars().take(160).collect::<String>()).unwrap_or_default();
        (format!("refused: {:<16} {refusal}", load_kind_of(case.expect)), BTreeMap::new())
    } else {
        let tx = &outcome.transactions[0];
        assert_eq!(tx.tx.executable, workload.transactions[0].executable, "{name}: the hostile one is first");
        let finished = &tx.finished;
        let kind = finished.failure.as_ref().map(|f| f.kind());
        assert_eq!(finished.success, kind.is_none(), "{name}");
        match case.expect {
            Fails(expected) => assert_eq!(kind, Some(expected), "{name} (seed {seed}): {:?}", finished.failure),
            Succeeds => assert_eq!(kind, None, "{name} (seed {seed}): {:?}", finished.failure),
            Refused(expected) => panic!("{name}: expected refusal ({expected}), but it loaded"),
        }
        // Only declared keys are ever read or written; an atomic failure
        // writes nothing.
        let readable: BTreeSet<Vec<u8>> = [EAGER, LAZY[0], LAZY[1]].map(b).into();
        assert!(finished.values_read.iter().all(|(k, _)| readable.contains(k)), "{name}: {:?}", finished.values_read);
        let writable: BTreeSet<Vec<u8>> = [WILL, MAY].map(b).into();
        assert!(finished.values_written.iter().all(|(k, _)| writable.contains(k)), "{name}");
        if case.write_mode == WriteMode::Atomic && !finished.success {
            assert_eq!(finished.values_written, vec![], "{name}: an atomic failure writes nothing");
        }
        if let Some(check) = case.check {
            check(tx);
        }
        let summary = match &finished.failure {
            Some(failure) => {
                let text: String = failure.to_string().chars().take(100).collect();
                format!("fails: {:<17} {text}", failure.kind())
            }
            None => "succeeds".to_string(),
        };
        (summary, finished.values_written.iter().cloned().collect::<BTreeMap<_, _>>())
    };

    // The host goes on: every counter after it succeeds, on the value the
    // hostile transaction left (its writes if it wrote, else the initial).
    // A hostile transaction that would wait for ever fails at once
    // (`stalled`), not at its deadline, which the counters waiting for its
    // locks would reach at the same instant (and fail or not by a race).
    let counters = &outcome.transactions[usize::from(!refused)..];
    for (key, tx) in declared().into_iter().zip(counters) {
        let before = written.get(&b(key)).map_or(INITIAL, |d| decimal(d));
        let after = decimal(&outcome.final_state[&b(key)]);
        assert!(tx.finished.success, "{name}: counter on {key} after it: {:?}", tx.finished.failure);
        assert_eq!(after, before + 1, "{name}: {key}");
    }

    // And a new run on the same sandbox is served as if nothing happened.
    let again = Workload { transactions: declared().into_iter().map(counter_tx).collect(), ..workload };
    let program = Arc::new(Mixed { hostile: None, counter: case.room.counter() });
    let outcome = harness::execute(&again, program, &options, Delivery::Deterministic { seed }).expect(name);
    assert!(outcome.transactions.iter().all(|tx| tx.finished.success), "{name}: the next run");
    assert_eq!(outcome.pending_markers, 0, "{name}: the next run");
    summary
}

fn writes_only_the_second_value(tx: &TxOutcome) {
    assert_eq!(tx.finished.values_written, vec![(b(WILL), b"2".to_vec())]);
}

fn reads_l_once(tx: &TxOutcome) {
    assert_eq!(tx.finished.values_read.iter().filter(|(k, _)| *k == b(LAZY[0])).count(), 1);
}

fn writes_nothing(tx: &TxOutcome) {
    assert_eq!(tx.finished.values_written, vec![]);
}

fn keeps_the_streamed_write(tx: &TxOutcome) {
    assert_eq!(tx.finished.values_written, vec![(b(WILL), b"1".to_vec())]);
}

fn fails_with_the_guests_message(tx: &TxOutcome) {
    // Not its length: the host may well cut a 10 MiB message short.
    let failure = tx.finished.failure.as_ref().unwrap();
    assert!(matches!(failure, executor_host::Failure::Guest { message } if message.starts_with("xxxxxxxx")));
}

/// The body that makes a `Wat` case's `execute-step` return its return area
/// at 128 written with `disc`, then `(state ptr, state len, requests ptr,
/// requests len)`.
macro_rules! step_result {
    ($disc:literal, $sp:literal, $sl:literal, $rp:literal, $rl:literal) => {
        concat!(
            "(i32.store8 (i32.const 128) (i32.const ",
            $disc,
            ")) (i32.store (i32.const 132) (i32.const ",
            $sp,
            ")) (i32.store (i32.const 136) (i32.const ",
            $sl,
            ")) (i32.store (i32.const 140) (i32.const ",
            $rp,
            ")) (i32.store (i32.const 144) (i32.const ",
            $rl,
            ")) (return (i32.const 128))"
        )
    };
}

fn cases() -> Vec<Case> {
    const W: Wat = Wat::BENIGN;
    vec![
        // Spinning, in each export, stopped by gas or by the wall clock.
        hostile("execute-step loops (gas)", "loop", Fails("out_of_gas")).gas(SPIN_GAS),
        hostile("execute-step loops (wall clock)", "loop", Fails("timeout")).on_the_clock(),
        hostile("starting-state loops (gas)", "start-loop", Fails("out_of_gas")).gas(SPIN_GAS),
        hostile("starting-state loops (wall clock)", "start-loop", Fails("timeout")).on_the_clock(),
        hostile("halted loops (gas)", "halted-loop", Fails("out_of_gas")).gas(SPIN_GAS),
        hostile("halted loops (wall clock)", "halted-loop", Fails("timeout")).on_the_clock(),
        hostile("loops after a write, atomic", "write-then-loop", Fails("out_of_gas")).gas(SPIN_GAS).atomic(),
        wat(
            "start function loops (gas)",
            Wat { extra: "(func $spin (loop $l (br $l))) (start $spin)", ..W },
            Fails("out_of_gas"),
        )
        .gas(SPIN_GAS),
        wat(
            "start function loops (wall clock)",
            Wat { extra: "(func $spin (loop $l (br $l))) (start $spin)", ..W },
            Fails("timeout"),
        )
        .on_the_clock(),
        // Memory.
        hostile("execute-step allocates without end", "grow", Fails("memory_limit")),
        hostile("starting-state allocates without end", "start-grow", Fails("memory_limit")),
        hostile("halted allocates without end", "halted-grow", Fails("memory_limit")),
        hostile("memory.grow to exactly the limit", "grow-to:256", Succeeds),
        hostile("memory.grow one page past the limit", "grow-to:257", Fails("memory_limit")),
        hostile("memory.grow of 4 GiB at once", "grow-huge", Fails("memory_limit")),
        wat(
            "memory.grow a page at a time until refused",
            Wat { execute_step: "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))", ..W },
            Fails("memory_limit"),
        ),
        wat(
            "starting-state returns a state past the limit",
            Wat {
                memory: "17",
                starting_state: "(i32.store8 (i32.const 64) (i32.const 0)) (i32.store (i32.const 68) (i32.const 0)) \
                                 (i32.store (i32.const 72) (i32.const 1048577)) (return (i32.const 64))",
                ..W
            },
            Fails("too_large"),
        ),
        wat("initial memory past the limit, on demand", Wat { memory: "300", ..W }, Refused("uninstantiable"))
            .room(Room::OnDemand),
        wat("initial memory past the limit, pooled", Wat { memory: "300", ..W }, Refused("uninstantiable")),
        // The stack.
        hostile("execute-step recurses without end", "recurse", Fails("stack_overflow")),
        hostile("starting-state recurses without end", "start-recurse", Fails("stack_overflow")),
        hostile("halted recurses without end", "halted-recurse", Fails("stack_overflow")),
        // Tables.
        wat(
            "table.grow past the limit",
            Wat { execute_step: "(drop (table.grow $t (ref.null func) (i32.const 20000)))", ..W },
            Fails("table_limit"),
        ),
        wat(
            "table.grow to exactly the limit",
            Wat { execute_step: "(drop (table.grow $t (ref.null func) (i32.const 9999)))", ..W },
            Succeeds,
        ),
        wat("initial table past the limit, on demand", Wat { table: "20000", ..W }, Refused("uninstantiable"))
            .room(Room::OnDemand),
        wat("initial table past the limit, pooled", Wat { table: "20000", ..W }, Refused("uninstantiable")),
        // What a component instantiates: at most four core instances, one
        // memory, two tables (a pool slot's share), refused on load, as
        // the sandbox's limits whether pooled or not.
        case("a second memory, pooled", Guest::Bytes(|| benign_with(SECOND_MAIN)), Refused("uninstantiable")),
        case("a second memory, on demand", Guest::Bytes(|| benign_with(SECOND_MAIN)), Refused("uninstantiable"))
            .room(Room::OnDemand),
        case(
            "five core instances, pooled",
            Guest::Bytes(|| benign_with(&empty_instances(4))),
            Refused("uninstantiable"),
        ),
        case(
            "five core instances, on demand",
            Guest::Bytes(|| benign_with(&empty_instances(4))),
            Refused("uninstantiable"),
        )
        .room(Room::OnDemand),
        case("four core instances", Guest::Bytes(|| benign_with(&empty_instances(3))), Succeeds),
        case("four core instances, on demand", Guest::Bytes(|| benign_with(&empty_instances(3))), Succeeds)
            .room(Room::OnDemand),
        // Traps, in each export and at instantiation.
        hostile("execute-step panics", "panic", Fails("trap")),
        hostile("starting-state panics", "start-panic", Fails("trap")),
        hostile("halted panics", "halted-panic", Fails("trap")),
        wat(
            "start function traps",
            Wat { extra: "(func $boom unreachable) (start $boom)", ..W },
            Refused("uninstantiable"),
        ),
        wat(
            "data segment out of bounds",
            Wat { extra: r#"(data (i32.const 65535) "xy")"#, ..W },
            Refused("uninstantiable"),
        ),
        wat(
            "element segment out of bounds",
            Wat { extra: "(elem (i32.const 1) $nop)", ..W },
            Refused("uninstantiable"),
        ),
        wat(
            "integer division by zero",
            Wat { execute_step: "(drop (i32.div_u (i32.const 1) (global.get $zero)))", ..W },
            Fails("trap"),
        ),
        wat(
            "NaN converted to an integer",
            Wat {
                execute_step: "(drop (i32.trunc_f32_s (f32.div (f32.convert_i32_s (global.get $zero)) (f32.const 0))))",
                ..W
            },
            Fails("trap"),
        ),
        wat("load out of bounds", Wat { execute_step: "(drop (i32.load (i32.const -4)))", ..W }, Fails("trap")),
        wat(
            "call_indirect through a null entry",
            Wat { execute_step: "(call_indirect (type $void) (i32.const 0))", ..W },
            Fails("trap"),
        ),
        wat(
            "call_indirect with the wrong signature",
            Wat {
                extra: "(elem (i32.const 0) $nop)",
                execute_step: "(call_indirect (type $takes_i32) (i32.const 0) (i32.const 0))",
                ..W
            },
            Fails("trap"),
        ),
        wat("cabi_realloc traps", Wat { realloc: "unreachable", ..W }, Fails("trap")),
        // Guest errors.
        hostile("execute-step returns an error", "err", Fails("guest")),
        hostile("starting-state returns an error", "start-err", Fails("guest")),
        hostile("an error message of 10 MiB", "err-huge", Fails("guest")).check(fails_with_the_guests_message),
        hostile("fails after a streamed write", "write-then-err", Fails("guest")).check(keeps_the_streamed_write),
        hostile("fails after an atomic write", "write-then-err", Fails("guest")).atomic().check(writes_nothing),
        // Output sizes.
        hostile("a million requests (memory runs out first)", "flood", Fails("memory_limit")).gas(u64::MAX),
        hostile("a million requests (room to build them)", "flood", Fails("too_large")).room(Room::Roomy).gas(u64::MAX),
        hostile("exactly the limit of requests", "requests:10000", Succeeds),
        hostile("one request past the limit", "requests:10001", Fails("too_large")),
        hostile("a 64 KiB key", "huge-key", Fails("too_large")),
        hostile("a 2 MiB datum", "huge-datum", Fails("too_large")),
        hostile("a 2 MiB state", "huge-state", Fails("too_large")),
        hostile("a state at the limit, tiny, then over it", "alternate", Fails("too_large")),
        // Declared access, in both access and write modes.
        hostile("undeclared read, strict", "read:undeclared", Fails("access_violation")),
        hostile("undeclared read, lenient", "read:undeclared", Succeeds).lenient(),
        hostile("undeclared write, strict", "write:undeclared", Fails("access_violation")),
        hostile("undeclared write, strict, atomic", "write:undeclared", Fails("access_violation")).atomic(),
        hostile("undeclared write, lenient", "write:undeclared", Succeeds).lenient().check(writes_nothing),
        hostile("undeclared read after a write, atomic", "write-then-read:undeclared", Fails("access_violation"))
            .atomic(),
        hostile("undeclared read after a write, lenient", "write-then-read:undeclared", Succeeds)
            .lenient()
            .check(keeps_the_streamed_write),
        hostile("a key written twice, streaming", "write-twice", Fails("access_violation")),
        hostile("a key written twice, streaming, lenient", "write-twice", Fails("access_violation")).lenient(),
        hostile("a key written twice, atomic", "write-twice", Succeeds).atomic().check(writes_only_the_second_value),
        hostile("a key asked for twice in one step", "read-twice", Succeeds).check(reads_l_once),
        // Would wait for ever: fail at once.
        hostile("asks again for a key it was fed", "reread", Fails("stalled")),
        hostile("never halts, asks for nothing", "stall", Fails("stalled")),
        // Malformed canonical-ABI values the guest hands back. wasmtime
        // refuses to lift them, with an error that is not a trap: the
        // guest's fault, a `trap` of kind `invalid_value` (it used to be
        // reported as the host's).
        wat(
            "return pointer out of bounds",
            Wat { execute_step: "(return (i32.const 0x7ffffff0))", ..W },
            Fails("trap"),
        ),
        wat("return pointer misaligned", Wat { execute_step: "(return (i32.const 129))", ..W }, Fails("trap")),
        wat(
            "state list out of bounds",
            Wat { execute_step: step_result!("0", "0x7fff0000", "16", "0", "0"), ..W },
            Fails("trap"),
        ),
        wat(
            "requests list of 2^28 elements",
            Wat { execute_step: step_result!("0", "16", "4", "0", "0x10000000"), ..W },
            Fails("trap"),
        ),
        wat("result discriminant 2", Wat { execute_step: step_result!("2", "16", "4", "0", "0"), ..W }, Fails("trap")),
        wat(
            "request discriminant 9",
            Wat {
                execute_step: concat!(
                    "(i32.store8 (i32.const 256) (i32.const 9))",
                    step_result!("0", "16", "4", "256", "1")
                ),
                ..W
            },
            Fails("trap"),
        ),
        wat(
            "error message of invalid UTF-8",
            Wat {
                extra: r#"(data (i32.const 32) "\ff\fe")"#,
                execute_step: step_result!("1", "32", "2", "0", "0"),
                ..W
            },
            Fails("trap"),
        ),
        wat(
            "cabi_realloc returns a pointer out of bounds",
            Wat { realloc: "(return (i32.const 0x7ffffff0))", ..W },
            Fails("trap"),
        ),
        wat("halted returns 7 (any non-zero is true)", Wat { halted: "(return (i32.const 7))", ..W }, Succeeds),
        // Exports of the right names with the wrong types.
        wat("halted returns u32", Wat { wit_edits: &[("-> bool", "-> u32")], ..W }, Refused("wrong_world")),
        wat(
            "starting-state errors with bytes, not a string",
            Wat { wit_edits: &[("result<list<u8>, string>", "result<list<u8>, list<u8>>")], ..W },
            Refused("wrong_world"),
        ),
        wat(
            "input record with a renamed field",
            Wat { wit_edits: &[("datum: option<list<u8>>,", "value: option<list<u8>>,")], ..W },
            Refused("wrong_world"),
        ),
        // Bytes that are no executor.
        case("not wasm", Guest::Bytes(|| b"hello".to_vec()), Refused("not_wasm")),
        case("empty", Guest::Bytes(Vec::new), Refused("not_wasm")),
        case("a core module", Guest::Bytes(|| bytes(guest_artifacts::TRANSFER_CORE)), Refused("core_module")),
        case(
            "a truncated component",
            Guest::Bytes(|| {
                let whole = bytes(guest_artifacts::TRANSFER);
                whole[..whole.len() / 2].to_vec()
            }),
            Refused("invalid"),
        ),
        case(
            "a component with trailing garbage",
            Guest::Bytes(|| [bytes(guest_artifacts::COUNTER), b"\x01garbage".to_vec()].concat()),
            Refused("invalid"),
        ),
        case(
            "a component of an unknown version",
            Guest::Bytes(|| {
                let mut component = bytes(guest_artifacts::COUNTER);
                component[4] = 0x0e;
                component
            }),
            Refused("invalid"),
        ),
        case(
            "a component of the wrong world",
            Guest::Bytes(|| bytes(guest_artifacts::WRONG_WORLD)),
            Refused("wrong_world"),
        ),
        case(
            "a component importing WASI",
            Guest::Bytes(|| bytes(guest_artifacts::WASI_IMPORT)),
            Refused("forbidden_import"),
        ),
    ]
}

/// The benign component with component sections appended (a component's
/// sections may come in any order).
fn benign_with(sections: &[u8]) -> Vec<u8> {
    [Wat::BENIGN.component().as_slice(), sections].concat()
}

/// A core instance section instantiating the component's module (index 0)
/// once more, with its own memory and table.
const SECOND_MAIN: &[u8] = &[0x02, 0x04, 0x01, 0x00, 0x00, 0x00];

/// An empty core module (index 1) and a core instance section
/// instantiating it `count` times.
fn empty_instances(count: u8) -> Vec<u8> {
    let mut sections = vec![0x01, 0x08];
    sections.extend(b"\0asm\x01\0\0\0");
    sections.extend([0x02, 1 + 3 * count, count]);
    for _ in 0..count {
        sections.extend([0x00, 0x01, 0x00]);
    }
    sections
}

#[test]
fn every_hostile_guest_ends_in_its_typed_failure_and_the_host_goes_on() {
    let cases = cases();
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases.len(), "case names are distinct");
    let mut summary = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let seed = 1 + index as u64;
        let started = std::time::Instant::now();
        let outcome = run(case, seed);
        println!("{:>3} {:<52} seed {seed:<3} {:>9.1?}  {outcome}", index + 1, case.name, started.elapsed());
        summary.push(outcome);
    }
    let failing = summary.iter().filter(|s| !s.starts_with("succeeds")).count();
    println!(
        "{} hostile cases: {failing} end in a failure or a refusal, {} succeed at a limit",
        cases.len(),
        cases.len() - failing
    );
    assert!(failing >= 25, "only {failing} failing cases");
}
