//! Transactions driven through the `ExecutorFunction` trait, the step
//! encoding, and the README's worked example.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use executor_guest::{ExecutorFunction, Input, Request};
use executor_noun::{Noun, cue, jam, noun};
use nockma_guest::{
    DEFAULT_GAS, EXIT, NockmaFunction as F, decode_state, encode_state, executable, executable_with_gas,
    increment_formula, parse_executable,
};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read(key: &[u8], datum: Option<&[u8]>) -> Option<Input> {
    Some(Input { key: key.to_vec(), datum: datum.map(<[u8]>::to_vec) })
}

/// The worked example's executable, as printed in README.md.
const EXAMPLE_HEX: &str = "61173ad115039f2e0daf5c391966e2c716731c3c2c";

#[test]
fn worked_example_reads_writes_and_halts() {
    let formula = increment_formula(b"a");
    assert_eq!(formula.to_string(), "[6 [3 0 3] [[1 1702390132] [[0 6] 4 0 7] 1 0] [1 1] 1 97 0]");
    let exe = executable(&formula);
    println!("worked example executable: {}", hex(&exe));
    assert_eq!(cue(&exe).unwrap(), formula);

    let s0 = F::starting_state(&exe).unwrap();
    assert_eq!(decode_state(&s0).unwrap(), (DEFAULT_GAS, Noun::ZERO));
    assert!(!F::halted(&s0));

    // First step, no input: subject [0 0]; asks to read 'a'. 12 gas.
    let step1 = F::execute_step(&exe, &s0, None).unwrap();
    assert_eq!(step1.requests, vec![Request::Read(b"a".to_vec())]);
    assert_eq!(decode_state(&step1.state).unwrap(), (DEFAULT_GAS - 12, Noun::atom(1)));
    assert!(!F::halted(&step1.state));

    // Second step, 'a' = 41 (one byte): writes 42 and halts. 21 gas.
    let step2 = F::execute_step(&exe, &step1.state, read(b"a", Some(&[41]))).unwrap();
    assert_eq!(step2.requests, vec![Request::Write(b"a".to_vec(), vec![42])]);
    assert_eq!(decode_state(&step2.state).unwrap(), (DEFAULT_GAS - 33, Noun::atom(EXIT)));
    assert!(F::halted(&step2.state));

    // Values are little-endian atoms: 0xff + 1 is [0x00 0x01].
    let step2 = F::execute_step(&exe, &step1.state, read(b"a", Some(&[0xff]))).unwrap();
    assert_eq!(step2.requests, vec![Request::Write(b"a".to_vec(), vec![0, 1])]);
}

#[test]
fn readme_shows_the_example_hex() {
    let readme = include_str!("../README.md");
    let exe = hex(&executable(&increment_formula(b"a")));
    assert_eq!(exe, EXAMPLE_HEX);
    assert!(readme.contains(&exe), "README.md must show the example executable {exe}");
    // The same formula with a budget of 10000 gas.
    let exe = hex(&executable_with_gas(&increment_formula(b"a"), 10_000));
    println!("with 10000 gas: {exe}");
    assert!(readme.contains(&exe), "README.md must show the example executable {exe}");
}

#[test]
fn absent_and_empty_values_are_zero() {
    let exe = executable(&increment_formula(b"a"));
    let s0 = F::starting_state(&exe).unwrap();
    let s1 = F::execute_step(&exe, &s0, None).unwrap().state;
    for datum in [None, Some(&[][..]), Some(&[0, 0][..])] {
        let step = F::execute_step(&exe, &s1, read(b"a", datum)).unwrap();
        assert_eq!(step.requests, vec![Request::Write(b"a".to_vec(), vec![1])]);
    }
}

#[test]
fn subject_of_each_step() {
    // The formula [[0 1] 0] returns the subject as the new state, with no
    // requests, so the state shows the subject.
    let exe = executable(&noun!([[0 1] 1 0]));
    let s0 = F::starting_state(&exe).unwrap();
    let s1 = F::execute_step(&exe, &s0, None).unwrap().state;
    assert_eq!(decode_state(&s1).unwrap().1, noun!([0 0]));
    let s2 = F::execute_step(&exe, &s1, read(b"k", Some(b"v"))).unwrap().state;
    assert_eq!(decode_state(&s2).unwrap().1, noun!([[0 0] [107 118]]));
}

#[test]
fn gas_budget_is_carried_and_exhaustion_fails() {
    let formula = increment_formula(b"a");
    // 33 gas in all: 12 then 21. A step must leave at least one unit.
    let run = |budget: u64| -> Result<(), String> {
        let exe = executable_with_gas(&formula, budget);
        let s0 = F::starting_state(&exe)?;
        let s1 = F::execute_step(&exe, &s0, None)?;
        let s2 = F::execute_step(&exe, &s1.state, read(b"a", None))?;
        assert!(F::halted(&s2.state));
        assert_eq!(decode_state(&s2.state).unwrap().0, budget - 33);
        Ok(())
    };
    assert!(run(34).is_ok());
    assert_eq!(run(33).unwrap_err(), "out of gas: the step used the whole remaining budget");
    assert!(run(13).unwrap_err().starts_with("out of gas: a reduction costs"));
    assert_eq!(run(12).unwrap_err(), "out of gas: the step used the whole remaining budget");
    assert!(run(5).unwrap_err().starts_with("out of gas"));
    assert!(F::starting_state(&executable_with_gas(&formula, 0)).unwrap_err().contains("gas budget"));
    assert_eq!(parse_executable(&executable_with_gas(&formula, 77)).unwrap(), (formula.clone(), 77));
    assert_eq!(parse_executable(&executable(&formula)).unwrap(), (formula, DEFAULT_GAS));
}

#[test]
fn infinite_loop_fails_out_of_gas() {
    // [2 [0 1] [0 1]] needs itself as subject: [8 [1 <it>] <it>].
    let it = noun!([2 [0 1] [0 1]]);
    let exe = executable_with_gas(&noun!([7 [1 (&it)] it]), 1_000_000);
    let s0 = F::starting_state(&exe).unwrap();
    let err = F::execute_step(&exe, &s0, None).unwrap_err();
    assert!(err.starts_with("out of gas"), "{err}");
}

#[test]
fn requests_in_order_reads_and_writes() {
    // [1 [~ [97 [98 5] [99 0] 100 0]]]: read a, write b=5, write c=0 (empty), read d.
    let exe = executable(&noun!([1 [0 [97 [98 5] [99 0] 100 0]]]));
    let s0 = F::starting_state(&exe).unwrap();
    let step = F::execute_step(&exe, &s0, None).unwrap();
    assert_eq!(
        step.requests,
        vec![
            Request::Read(b"a".to_vec()),
            Request::Write(b"b".to_vec(), vec![5]),
            Request::Write(b"c".to_vec(), vec![]),
            Request::Read(b"d".to_vec()),
        ]
    );
    // A state need not be an atom.
    let exe = executable(&noun!([1 [[1 2] 0]]));
    let step = F::execute_step(&exe, &F::starting_state(&exe).unwrap(), None).unwrap();
    assert_eq!(decode_state(&step.state).unwrap().1, noun!([1 2]));
    assert!(step.requests.is_empty());
}

#[test]
fn malformed_products_are_step_errors() {
    let cases = [
        (noun!([1 5]), "must be a cell [new-state requests], got the atom 5"),
        (noun!([1 [0 7]]), "must be a list ending in 0; after 0 item(s) it ends in 7"),
        (noun!([1 [0 [97 98 3]]]), "after 2 item(s) it ends in 3"),
        (noun!([1 [0 [[1 2] 3] 0]]), "request 0 must be an atom key (read) or [key value] of atoms"),
        (noun!([1 [0 97 [1 [2 3]] 0]]), "request 1 must be"),
        (noun!([0 0]), "axis 0"),
        (noun!([12 [1 0] [1 0] 0 1]), "scry (opcode 12) failed"),
    ];
    for (formula, expected) in cases {
        let exe = executable(&formula);
        let s0 = F::starting_state(&exe).unwrap();
        let err = F::execute_step(&exe, &s0, None).unwrap_err();
        assert!(err.contains(expected), "{formula}: {err}");
    }
}

#[test]
fn bad_executables_and_states() {
    assert!(F::starting_state(&[]).unwrap_err().starts_with("bad nockma executable"));
    assert!(F::starting_state(&[0b11]).unwrap_err().starts_with("bad nockma executable"));
    let exe = executable(&noun!([0 1]));
    assert!(F::execute_step(&exe, &[0x02], None).unwrap_err().contains("corrupt nockma state"));
    assert!(F::execute_step(&exe, &[], None).unwrap_err().contains("corrupt nockma state"));
    let big_gas = jam(&noun!([(Noun::from_bytes(&[1; 9])) 0]));
    assert!(F::execute_step(&exe, &big_gas, None).unwrap_err().contains("gas-left"));
    assert!(!F::halted(&[]));
    assert!(!F::halted(&[0xff, 0x13]));
    assert!(F::halted(&encode_state(1, &Noun::atom(EXIT))));
    assert!(!F::halted(&encode_state(1, &Noun::cord("exit"))));
    // Random bytes never panic anywhere.
    let mut rng = executor_testkit::Rng::new(0x1234_5678_9abc_def1);
    for _ in 0..20_000 {
        let x = rng.next_u64();
        let len = (x % 12) as usize;
        let bytes: Vec<u8> = (0..len).map(|i| (x >> (i * 5)) as u8).collect();
        let _ = F::starting_state(&bytes);
        let _ = F::halted(&bytes);
        if let Ok(s0) = F::starting_state(&bytes) {
            let _ = F::execute_step(&bytes, &s0, None);
            let _ = F::execute_step(&bytes, &s0, read(b"a", Some(b"b")));
        }
    }
}
