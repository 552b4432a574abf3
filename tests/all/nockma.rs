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

/// nspec's programs assume every step's subject is `[state [key value]]`.
/// One that reads its value on its first step (`[4 0 7]`: the value plus
/// one) runs unchanged when its key is declared eager: its first step runs
/// on that read, as in nspec. (Before, the first step ran without input
/// and crashed with "axis 7 is not in the subject".)
#[test]
fn an_nspec_program_runs_unchanged_on_its_eager_read() {
    use std::sync::Arc;

    use executor_host::KeySets;
    use executor_testkit::harness::{self, Delivery, TxSpec, Workload};

    // [[1 %exit] [[[0 6] [4 0 7]] [1 0]]]: halt, writing [key value+1].
    let atom = Noun::atom;
    let cell = Noun::cell;
    let exit = cell(atom(1), atom(0x6578_6974));
    let write = cell(cell(cell(atom(0), atom(6)), cell(atom(4), cell(atom(0), atom(7)))), cell(atom(1), atom(0)));
    let exe = nockma_guest::executable(&cell(exit, write));
    let key = b"a".to_vec();
    let workload = Workload {
        shards: 2,
        initial: [(key.clone(), vec![41])].into(),
        transactions: vec![TxSpec {
            executable: exe,
            keys: KeySets {
                eager_read_keys: vec![key.clone()],
                will_write_keys: vec![key.clone()],
                ..KeySets::default()
            },
        }],
    };
    let wasm: Arc<dyn Program> = Arc::new(load(sandbox(), guest_artifacts::NOCKMA));
    let native: Arc<dyn Program> = Arc::new(NativeProgram::<NockmaFunction>::new(Limits::default()));
    for program in [wasm, native] {
        let outcome =
            harness::execute(&workload, program.clone(), &Default::default(), Delivery::Deterministic { seed: 5 })
                .unwrap();
        let report = &outcome.transactions[0].finished;
        assert!(report.success, "{program:?}: {:?}", report.failure);
        assert_eq!(outcome.final_state[&key], vec![42], "{program:?}");
        assert_eq!(outcome.pending_markers, 0);
    }
}
