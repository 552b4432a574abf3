//! The Nockma guest (nspec's own executor function) as a wasm component,
//! against its native build.

use executor_host::{Failure, Limits, NativeProgram, Program, Request};
use executor_noun::{Noun, cue};
use nockma_guest::NockmaFunction;

use crate::support::*;

#[test]
fn nock_transaction_reads_writes_and_halts_in_wasm_as_natively() {
    let wasm = load(sandbox(), guest_artifacts::NOCKMA);
    let native = NativeProgram::<NockmaFunction>::new(Limits::default());
    let exe = nockma_guest::executable(&nockma_guest::increment_formula(b"a"));
    for program in [&wasm as &dyn Program, &native] {
        let value = executor_host::Input { key: b"a".to_vec(), datum: Some(vec![41]) };
        let run = drive(program, &exe, &[value], GAS);
        assert_eq!(run.result, Ok(()), "{program:?}");
        assert!(halted(&run));
        assert_eq!(requests(&run), vec![Request::Read(b"a".to_vec()), Request::Write(b"a".to_vec(), vec![42])]);
    }
}

#[test]
fn nock_out_of_nock_gas_is_a_failure_not_a_trap() {
    let wasm = load(sandbox(), guest_artifacts::NOCKMA);
    // F = [2 [0 1] [0 1]] evaluates its subject as a formula; [2 [1 F] [1 F]]
    // applies F to itself, which never ends.
    let quote = |f: Noun| Noun::cell(Noun::atom(1), f);
    let f = Noun::cell(
        Noun::atom(2),
        Noun::cell(Noun::cell(Noun::atom(0), Noun::atom(1)), Noun::cell(Noun::atom(0), Noun::atom(1))),
    );
    let subject_loop = Noun::cell(Noun::atom(2), Noun::cell(quote(f.clone()), quote(f)));
    let exe = nockma_guest::executable_with_gas(&subject_loop, 5_000);
    let run = drive(&wasm, &exe, &[], GAS);
    let Err(Failure::Guest { message }) = &run.result else { panic!("{:?}", run.result) };
    assert!(message.contains("gas"), "{message}");
    assert!(cue(&exe).is_ok());
}
