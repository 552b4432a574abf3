//! A guest in C: the WIT world is the API. `guest/c-counter/counter.c`
//! implements `counter` against the bindings wit-bindgen's C generator
//! writes from `wit/executor.wit`; here it is built as the README's "A
//! guest in C" builds it (bindings, clang for wasm32 against wasi-libc,
//! then the Rust guests' componentizer), checked to import nothing, and run
//! step by step and through the shards and worker beside the Rust counter:
//! same states, requests, errors, values read and written, final state.
//!
//! It needs clang, lld and wasi-libc (`tools/install-test-deps`); without
//! them the tests say so loudly and pass, except under CI (`CI` set), where
//! a missing toolchain fails them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use counter_guest::CounterFunction;
use executor_guest_build::c::{self, Clang};
use executor_guest_build::{Error, componentize_file};
use executor_host::{Failure, Input, Limits, NativeProgram, Program, StepCall, WasmProgram};
use executor_testkit::harness::{self, Delivery};

use crate::support::*;

const WORKSPACE: &str = env!("CARGO_MANIFEST_DIR");

/// The C counter, built.
struct Built {
    core: Vec<u8>,
    component: Vec<u8>,
}

/// Builds the C counter in `dir` as the README does by hand: the bindings,
/// one clang command, componentizing.
fn build(dir: &Path) -> Result<Built, Error> {
    let workspace = Path::new(WORKSPACE);
    c::write_bindings(&workspace.join("wit/executor.wit"), dir)?;
    let core = dir.join("counter.core.wasm");
    let (counter, arena) = (workspace.join("guest/c-counter/counter.c"), workspace.join("guest/c-counter/arena.c"));
    let inputs = [counter.as_path(), &arena, &dir.join(c::BINDINGS_SOURCE), &dir.join(c::BINDINGS_OBJECT)];
    Clang::from_env().compile(&inputs, Some(dir), &core)?;
    let component = componentize_file(&core)?;
    let core = std::fs::read(&core).map_err(|source| Error::Read { path: core, source })?;
    Ok(Built { core, component })
}

/// The C counter, built once per test binary; `None` (after saying why)
/// when the toolchain is missing and this is not CI.
fn c_counter() -> Option<&'static Built> {
    static BUILT: OnceLock<Result<Built, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        match Clang::from_env().probe(&dir.path().join("probe")) {
            Err(Error::NoCToolchain { reason }) if std::env::var_os("CI").is_none() => Err(reason),
            probed => {
                probed.unwrap_or_else(|e| panic!("{} (and CI is set)", chain(&e)));
                Ok(build(dir.path()).unwrap_or_else(|e| panic!("building the C counter: {}", chain(&e))))
            }
        }
    });
    match built {
        Ok(built) => Some(built),
        Err(reason) => {
            eprintln!(
                "\n*** SKIPPED: no C toolchain for wasm32 guests (tools/install-test-deps installs clang, lld, \
                 wasi-libc): {reason} ***\n"
            );
            None
        }
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text += &format!(": {cause}");
        source = cause.source();
    }
    text
}

fn c_program(built: &Built) -> WasmProgram {
    sandbox().load(&built.component).expect("the C counter loads")
}

/// The ids of a core module's sections, in order (a minimal reader: the
/// header, then each section's id and LEB128 size).
fn section_ids(module: &[u8]) -> Vec<u8> {
    let mut ids = Vec::new();
    let mut at = 8;
    while at < module.len() {
        ids.push(module[at]);
        let (mut size, mut shift) = (0usize, 0);
        loop {
            at += 1;
            size |= usize::from(module[at] & 0x7f) << shift;
            shift += 7;
            if module[at] < 0x80 {
                break;
            }
        }
        at += 1 + size;
    }
    assert_eq!(at, module.len(), "sections end where the module does");
    ids
}

/// The same result, or the same failure with the same message, but for
/// one thing: a float the Rust counter's serde_json names in its shortest
/// form (`100.0`), the C counter by its own digits (`1e2`).
fn assert_same(
    rust: &Result<executor_host::StepOutput, Failure>,
    c: &Result<executor_host::StepOutput, Failure>,
    case: &str,
) {
    if let (Err(Failure::Guest { message: r }), Err(Failure::Guest { message: c })) = (rust, c)
        && r.contains("floating point `")
    {
        let around = |m: &str| (m.split('`').next().map(str::to_owned), m.rsplit('`').next().map(str::to_owned));
        assert_eq!(around(r), around(c), "{case}: the Rust counter says {r:?}, the C counter {c:?}");
        return;
    }
    assert_eq!(rust, c, "{case}");
}

#[test]
fn c_counter_is_a_small_deterministic_component_that_imports_nothing() {
    let Some(built) = c_counter() else { return };
    assert_eq!(built.core[..8], *b"\0asm\x01\0\0\0", "a core module");
    assert_eq!(built.component[..8], *b"\0asm\x0d\0\x01\0", "a component");
    // The core module itself imports nothing (no import section, id 2):
    // not WASI, not the C runtime's `env`.
    let sections = section_ids(&built.core);
    assert!(sections.contains(&7) && !sections.contains(&2), "sections {sections:?}");
    // The Rust counter is ~100 KB; the C one is ~16 KB.
    assert!(built.component.len() < 32 * 1024, "{} bytes", built.component.len());
    // Built again from scratch: the same bytes.
    let dir = tempfile::tempdir().unwrap();
    let again = build(dir.path()).unwrap();
    assert!(again.core == built.core && again.component == built.component, "the build is not deterministic");

    let info = sandbox().inspect(&built.component).unwrap();
    assert!(info.to_string().contains("imports: none"), "{info}");
    let file = dir.path().join("c-counter.wasm");
    std::fs::write(&file, &built.component).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_executor-host"))
        .args(["check", file.to_str().unwrap(), "--output", "json"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(check["imports"], serde_json::json!([]), "{check}");
    let exports: Vec<_> = check["exports"].as_array().unwrap().iter().map(|e| e["name"].clone()).collect();
    assert_eq!(exports, ["starting-state", "execute-step", "halted"], "{check}");
    assert_eq!(check["size"], built.component.len(), "{check}");
}

/// Executables both guests must read alike: accepted ones (objects in any
/// order and spacing, serde's array form, escapes, the extremes of u64) and
/// rejected ones (every way a `Counter` can be malformed).
const EXECUTABLES: &[&[u8]] = &[
    br#"{"key":"hits","amount":5}"#,
    b" {\n\t\"amount\" : 5 ,\r\"key\" : \"hits\" } \n",
    br#"["hits",5]"#,
    br#"[ "hits" , 0 ]"#,
    br#"{"k\u0065y":"h\u00e9\ud83d\ude00\n\"\\\/\b\f\r\t\u0000","amount":7}"#,
    "{\"key\":\"caf\u{e9} \u{1f600}\",\"amount\":1}".as_bytes(),
    br#"{"key":"","amount":18446744073709551615}"#,
    br#"{"key":"x","amount":0}"#,
    b"",
    b"  ",
    b"{}",
    b"{ }",
    b"[]",
    br#"["hits"]"#,
    br#"["hits",5,]"#,
    br#"["hits",5,6]"#,
    br#"["hits" 5]"#,
    br#"[5,"hits"]"#,
    br#"["a","b"]"#,
    br#"{"key":"hits"}"#,
    br#"{"amount":5}"#,
    br#"{"key":"hits","amount":5,}"#,
    br#"{"key":"hits","amount":5} x"#,
    br#"{"key":"hits","amount":5}{}"#,
    br#"{"key":"a","key":"b","amount":1}"#,
    br#"{"key":"a","amount":1,"amount":1}"#,
    br#"{"key":"a","amount":1,"by":"me"}"#,
    br#"{"Key":"a","amount":1}"#,
    br#"{"key":1,"amount":1}"#,
    br#"{"key":null,"amount":1}"#,
    br#"{"key":"a","amount":"1"}"#,
    br#"{"key":"a","amount":-1}"#,
    br#"{"key":"a","amount":-0}"#,
    br#"{"key":"a","amount":-9223372036854775808}"#,
    br#"{"key":"a","amount":-9223372036854775809}"#,
    br#"{"key":-5,"amount":1}"#,
    br#"{"key":1.5,"amount":1}"#,
    br#"{"key":{},"amount":1}"#,
    br#"{"key":[1],"amount":1}"#,
    br#"{"key":nul,"amount":1}"#,
    br#"{"key":"a","amount":tru}"#,
    br#"{"key":"a","amount":1.}"#,
    br#"{"key":"a","amount":1.e5}"#,
    br#"{"key":"a","amount":1e}"#,
    br#"{"key":"a","amount":1e+}"#,
    br#"{"key":"a","amount":1e+x}"#,
    br#"{"key":"a","amount":-}"#,
    br#"{"key":"a","amount":-x}"#,
    br#"{"key":"a","amount":1."#,
    br#"{"key":"a","amount":01}"#,
    br#"{"key":"a","amount":00}"#,
    br#"{"key":"a","amount":1.0}"#,
    br#"{"key":"a","amount":1e2}"#,
    br#"{"key":"a","amount":1E2}"#,
    br#"{"key":"a","amount":18446744073709551616}"#,
    br#"{"key":"a","amount":99999999999999999999999}"#,
    br#"{"key":"a","amount":null}"#,
    br#"{"key":"a","amount":true}"#,
    br#"{"key":"a","amount":5x}"#,
    b"{\"key\":\"a\x01\",\"amount\":1}",
    b"{\"key\":\"\xff\",\"amount\":1}",
    b"{\"key\":\"\xc3\",\"amount\":1}",
    b"{\"key\":\"\xed\xa0\x80\",\"amount\":1}",
    br#"{"key":"\ud800","amount":1}"#,
    br#"{"key":"\udc00","amount":1}"#,
    br#"{"key":"\ud800\u0041","amount":1}"#,
    br#"{"key":"\ud800x","amount":1}"#,
    br#"{"key":"\u12","amount":1}"#,
    br#"{"key":"\u12g4","amount":1}"#,
    br#"{"key":"\x","amount":1}"#,
    br#"{"key":"a"#,
    br#"{"key":"a","amount":1"#,
    br#"{"key" "a","amount":1}"#,
    br#"{"key":"a" "amount":1}"#,
    br#"{,}"#,
    br#"{1:2}"#,
    br#""x""#,
    b"5",
    b"null",
    b"\xef\xbb\xbf{\"key\":\"a\",\"amount\":1}",
    br#"{"by" }"#,
    br#"{"key":"a" , "by" : 1}"#,
    br#"{"key":"a" }"#,
    br#"{"key"}"#,
    br#"{"key":"#,
    br#"{"key""#,
    b"{",
    b"[",
    br#"[ ]"#,
    br#"[ "a""#,
    br#"["a","#,
    br#"["a",-5]"#,
    br#"["a", 5 ,]"#,
    br#"["a", 5 x"#,
    br#"[,]"#,
    b"{\n  \"key\": \"a\",\n  \"amount\": 1\n}\n\n x",
    b"\n\n{\"key\":\n\"a\\u00e9\xff\"}",
    b"{\"key\":\"ab\xc3\",\"amount\":1}",
    b"{\"key\":\"a\x7f\x1f\",\"amount\":1}",
    b"nul",
    b"tru",
    b"-",
    b"[\"a\",5]",
];

/// The key an accepted executable names, as bytes.
fn key_of(executable: &[u8]) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Counter {
        key: String,
        #[allow(dead_code)]
        amount: u64,
    }
    serde_json::from_slice::<Counter>(executable).ok().map(|c| c.key.into_bytes())
}

#[test]
fn c_counter_steps_exactly_as_the_rust_counter() {
    let Some(built) = c_counter() else { return };
    let c = c_program(built);
    let rust = load(sandbox(), guest_artifacts::COUNTER);
    let native = NativeProgram::<CounterFunction>::new(Limits::default());
    let datum = |d: &[u8]| Some(d.to_vec());
    let mut accepted = 0;
    for executable in EXECUTABLES {
        // Every state and input for an accepted executable (its key read
        // with good and bad values, another key, a halted or unknown
        // state); a first and a later step for a rejected one.
        let key = key_of(executable);
        let accepted_here = key.is_some();
        accepted += usize::from(accepted_here);
        let key = key.unwrap_or_else(|| b"hits".to_vec());
        let input = |key: &[u8], datum: Option<Vec<u8>>| Some(Input { key: key.to_vec(), datum });
        let mut calls: Vec<(Option<&[u8]>, Option<Input>)> = vec![(None, None)];
        for value in [
            None,
            datum(b"37"),
            datum(b"0"),
            datum(b"007"),
            datum(b"00000000000000000000000042"),
            datum(b"18446744073709551610"),
            datum(b"18446744073709551615"),
            datum(b"18446744073709551616"),
            datum(b""),
            datum(b"ten"),
            datum(b"+1"),
            datum(b"-1"),
            datum(b" 1"),
            datum(b"1.0"),
            datum(b"0x10"),
            datum(b"\xff\"\\\n\0\x7f"),
        ] {
            calls.push((None, input(&key, value.clone())));
            calls.push((Some(b"reading"), input(&key, value)));
        }
        for state in [&b"start"[..], b"reading", b"done", b"", b"junk"] {
            calls.push((Some(state), None));
            calls.push((Some(state), input(&key, datum(b"1"))));
            for other in [
                &b"other"[..],
                b"",
                b"a\"b\\c\n\t\r\0\x01\x1f\x7f",
                b"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                b"\xff\xc3\xe2\x82\xf0\x9f\x98\xed\xa0\x80\xc0\xaf\xf5",
                // Escaped by Rust's `{:?}`: C1 controls, a no-break space,
                // a soft hyphen, a combining accent, zero-width and line
                // separators, private use, a byte order mark, a variation
                // selector, a tag, a noncharacter; not an emoji.
                "\u{85}\u{9f}\u{a0}\u{ad}e\u{301}\u{200b}\u{2028}\u{3000}\u{e000}\u{feff}\u{fe0f}\u{e0041}\u{1fffe}\u{1f600}"
                    .as_bytes(),
            ] {
                calls.push((Some(state), input(other, datum(b"1"))));
            }
        }
        if !accepted_here {
            // Rejected: by `starting-state` (the first step) and by
            // `execute-step` (a later one) alike.
            calls.truncate(3);
        }
        for (state, input) in &calls {
            let call = StepCall { executable, state: *state, input: input.as_ref(), gas_limit: GAS };
            let case = format!(
                "executable {:?}, state {:?}, input {input:?}",
                String::from_utf8_lossy(executable),
                state.map(String::from_utf8_lossy)
            );
            let from_rust = rust.step(call).result;
            assert_eq!(from_rust, native.step(call).result, "{case}: the Rust counter, wasm and native");
            assert_same(&from_rust, &c.step(call).result, &case);
        }
    }
    assert_eq!(accepted, 9, "the accepted executables");
    // `halted` alike, through `drive`'s start-then-read.
    for program in [&rust as &dyn Program, &c] {
        let run = drive(program, br#"{"key":"hits","amount":5}"#, &[input("hits", Some("37"))], GAS);
        assert!(halted(&run));
        assert_eq!(requests(&run), vec![read("hits"), write("hits", "42")]);
    }
}

fn counter_scenario() -> (PathBuf, executor_testkit::Scenario) {
    let path = Path::new(WORKSPACE).join("examples/counter.json");
    let scenario = executor_testkit::Scenario::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, scenario)
}

#[test]
fn c_counter_runs_the_counter_scenario_as_the_rust_counter_does() {
    let Some(built) = c_counter() else { return };
    let (_, scenario) = counter_scenario();
    let workload = scenario.workload();
    let rust: Arc<dyn Program> = Arc::new(load(sandbox(), guest_artifacts::COUNTER));
    let c: Arc<dyn Program> = Arc::new(c_program(built));
    for delivery in
        [Delivery::Deterministic { seed: 1 }, Delivery::Deterministic { seed: 7 }, Delivery::Concurrent { threads: 2 }]
    {
        let run = |program: &Arc<dyn Program>| {
            harness::execute(&workload, program.clone(), &scenario.options, delivery).unwrap()
        };
        let (from_rust, from_c) = (run(&rust), run(&c));
        assert_eq!(from_rust.transactions.len(), from_c.transactions.len());
        for (r, c) in from_rust.transactions.iter().zip(&from_c.transactions) {
            let (r, c) = (&r.finished, &c.finished);
            let what = format!("{delivery:?}, transaction {}", r.timestamp);
            assert_eq!(r.timestamp, c.timestamp, "{what}");
            assert_eq!(r.success, c.success, "{what}");
            assert_eq!(r.values_read, c.values_read, "{what}");
            assert_eq!(r.values_written, c.values_written, "{what}");
            assert_eq!(r.failure, c.failure, "{what}");
            assert!(c.gas_used > 0, "{what}");
        }
        assert_eq!(from_rust.final_state, from_c.final_state, "{delivery:?}");
        assert_eq!(from_c.pending_markers, 0, "{delivery:?}");
        let value = |key: &str| from_c.final_state.get(key.as_bytes()).map(|v| String::from_utf8_lossy(v).into_owned());
        assert_eq!(value("hits").as_deref(), Some("47"), "40 + 2 + 5; the malformed last transaction writes nothing");
        assert_eq!(value("visits").as_deref(), Some("2"), "absent is 0");
        assert_eq!(value("max").as_deref(), Some("18446744073709551615"), "overflow fails");
        let failures: Vec<_> = from_c.transactions.iter().filter_map(|t| t.finished.failure.clone()).collect();
        assert_eq!(failures.len(), 2, "{failures:?}");
    }
}

/// The README's commands, run: the clang command it prints is the one the
/// tests build with, and `executor-host run` on the C component reports
/// what it reports on the Rust one.
#[test]
fn the_readme_builds_and_runs_the_c_counter() {
    let readme = std::fs::read_to_string(Path::new(WORKSPACE).join("README.md")).unwrap();
    let clang = format!(
        "clang {} -I target/c-counter -o target/c-counter/counter.core.wasm guest/c-counter/counter.c \
         guest/c-counter/arena.c target/c-counter/{} target/c-counter/{}",
        c::CLANG_ARGS.join(" "),
        c::BINDINGS_SOURCE,
        c::BINDINGS_OBJECT
    );
    assert!(readme.contains(&clang), "README.md must show the clang command:\n{clang}");
    let Some(built) = c_counter() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c-counter.wasm");
    std::fs::write(&file, &built.component).unwrap();
    let (scenario, _) = counter_scenario();
    let report = |guest: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_executor-host"))
            .args(["run", "--guest", guest, "--scenario", scenario.to_str().unwrap(), "--output", "json"])
            .args(["--seed", "3"])
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        // What depends on the code or the clock, not on the function.
        for t in report["transactions"].as_array_mut().unwrap() {
            t.as_object_mut().unwrap().remove("gas_used");
        }
        let report = report.as_object_mut().unwrap();
        for volatile in ["gas_used", "seconds", "tx_per_second"] {
            report.remove(volatile);
        }
        serde_json::Value::Object(report.clone())
    };
    let from_c = report(file.to_str().unwrap());
    assert_eq!(from_c, report(guest_artifacts::COUNTER));
    assert_eq!(from_c["final_state"]["hits"], "47", "{from_c}");
}
