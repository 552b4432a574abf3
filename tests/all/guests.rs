//! The example executor functions, run as wasm and natively: same results.

use counter_guest::CounterFunction;
use executor_host::{Failure, Limits, NativeProgram, Program};
use transfer_guest::TransferFunction;

use crate::support::*;

fn both_transfer() -> [Box<dyn Program>; 2] {
    [Box::new(transfer()), Box::new(NativeProgram::<TransferFunction>::new(Limits::default()))]
}

#[test]
fn transfer_moves_funds_and_halts() {
    for program in both_transfer() {
        let run = drive(
            program.as_ref(),
            &transfer_exe("alice", "bob", 30),
            &[input("bob", Some("5")), input("alice", Some("100"))],
            GAS,
        );
        assert_eq!(run.result, Ok(()), "{program:?}");
        assert!(halted(&run));
        assert_eq!(run.steps.len(), 3, "start, then one step per read");
        assert_eq!(requests(&run), vec![read("alice"), read("bob"), write("alice", "70"), write("bob", "35")]);
    }
}

#[test]
fn transfer_with_insufficient_funds_fails_and_writes_nothing() {
    for program in both_transfer() {
        let run = drive(
            program.as_ref(),
            &transfer_exe("alice", "bob", 30),
            &[input("alice", Some("29")), input("bob", Some("0"))],
            GAS,
        );
        let Err(Failure::Guest { message }) = &run.result else { panic!("{:?}", run.result) };
        assert!(message.contains("insufficient funds"), "{message}");
        assert!(!requests(&run).iter().any(|r| matches!(r, executor_host::Request::Write(..))));
    }
}

#[test]
fn transfer_treats_absent_balances_as_zero() {
    for program in both_transfer() {
        let run = drive(program.as_ref(), &transfer_exe("a", "b", 0), &[input("a", None), input("b", None)], GAS);
        assert_eq!(run.result, Ok(()));
        assert_eq!(requests(&run)[2..], [write("a", "0"), write("b", "0")]);
        let broke = drive(program.as_ref(), &transfer_exe("a", "b", 1), &[input("a", None), input("b", None)], GAS);
        assert!(matches!(broke.result, Err(Failure::Guest { .. })));
    }
}

#[test]
fn transfer_to_self_succeeds_without_writing() {
    for program in both_transfer() {
        let run = drive(program.as_ref(), &transfer_exe("a", "a", 3), &[input("a", Some("10"))], GAS);
        assert_eq!(run.result, Ok(()));
        assert!(halted(&run));
        assert_eq!(requests(&run), vec![read("a")], "one read, no write");
    }
}

#[test]
fn transfer_overflow_is_an_error() {
    for program in both_transfer() {
        let max = u64::MAX.to_string();
        let run =
            drive(program.as_ref(), &transfer_exe("a", "b", 1), &[input("a", Some("1")), input("b", Some(&max))], GAS);
        let Err(Failure::Guest { message }) = &run.result else { panic!("{:?}", run.result) };
        assert!(message.contains("overflow"), "{message}");
    }
}

#[test]
fn transfer_rejects_a_malformed_executable_and_balance() {
    for program in both_transfer() {
        let run = drive(program.as_ref(), b"{\"from\":1}", &[], GAS);
        assert!(matches!(run.result, Err(Failure::Guest { .. })), "{:?}", run.result);
        let run = drive(program.as_ref(), &transfer_exe("a", "b", 1), &[input("a", Some("ten"))], GAS);
        assert!(matches!(run.result, Err(Failure::Guest { .. })), "{:?}", run.result);
    }
}

#[test]
fn counter_increments_by_the_amount() {
    let wasm = load(sandbox(), guest_artifacts::COUNTER);
    let native = NativeProgram::<CounterFunction>::new(Limits::default());
    for program in [&wasm as &dyn Program, &native] {
        let exe = br#"{"key":"hits","amount":5}"#;
        let run = drive(program, exe, &[input("hits", Some("37"))], GAS);
        assert_eq!(run.result, Ok(()));
        assert!(halted(&run));
        assert_eq!(requests(&run), vec![read("hits"), write("hits", "42")]);
        let fresh = drive(program, exe, &[input("hits", None)], GAS);
        assert_eq!(requests(&fresh)[1], write("hits", "5"));
        let max = u64::MAX.to_string();
        let overflow = drive(program, exe, &[input("hits", Some(&max))], GAS);
        assert!(matches!(overflow.result, Err(Failure::Guest { .. })));
    }
}

#[test]
fn wasm_gas_is_charged_and_native_gas_is_zero() {
    let [wasm, native] = both_transfer();
    let inputs = [input("alice", Some("100")), input("bob", Some("5"))];
    let exe = transfer_exe("alice", "bob", 30);
    let wasm_run = drive(wasm.as_ref(), &exe, &inputs, GAS);
    assert!(wasm_run.gas_used > 0);
    assert_eq!(drive(native.as_ref(), &exe, &inputs, GAS).gas_used, 0);
    // Exhausting the budget fails the transaction, even exactly (nspec's
    // Nockma treats exactly zero gas left as a successful halt).
    let exact = drive(wasm.as_ref(), &exe, &inputs, wasm_run.gas_used);
    assert_eq!(exact.result, Err(Failure::OutOfGas));
    assert_eq!(drive(wasm.as_ref(), &exe, &inputs, wasm_run.gas_used + 1).result, Ok(()));
    let starved = drive(wasm.as_ref(), &exe, &inputs, wasm_run.gas_used - 1);
    assert_eq!(starved.result, Err(Failure::OutOfGas));
    assert_eq!(starved.gas_used, wasm_run.gas_used - 1, "all of the budget is charged");
}

/// A budget that does not cover a failing call is out of gas, not the
/// guest's error: the bytes the error carries back are charged after the
/// guest returns, and a call they push past its budget could not be paid
/// for (a guest error was reported, at exactly the budget, for the last
/// few units below a failing transfer's cost).
#[test]
fn a_guest_error_the_budget_cannot_pay_for_is_out_of_gas() {
    let [wasm, _] = both_transfer();
    let inputs = [input("alice", Some("10")), input("bob", Some("5"))];
    let exe = transfer_exe("alice", "bob", 300);
    let unlimited = drive(wasm.as_ref(), &exe, &inputs, GAS);
    assert!(matches!(unlimited.result, Err(Failure::Guest { .. })), "{:?}", unlimited.result);
    let cost = unlimited.gas_used;
    assert_eq!(drive(wasm.as_ref(), &exe, &inputs, cost + 1).result, unlimited.result);
    for budget in cost - 64..=cost {
        let run = drive(wasm.as_ref(), &exe, &inputs, budget);
        assert_eq!(run.result, Err(Failure::OutOfGas), "a budget of {budget}, the failing run costs {cost}");
        assert_eq!(run.gas_used, budget);
    }
}

/// One test per guest the artifacts crate builds, named after it: a guest
/// added to `guest/artifacts/build.rs` without a test here fails to
/// compile (`foreach_guest!` names each function).
mod every_guest {
    use executor_host::{LoadError, Sandbox, SandboxConfig};

    macro_rules! has_a_test {
        ($name:ident, $path:expr) => {
            #[allow(unused_imports)]
            use self::$name as _;
        };
    }
    guest_artifacts::foreach_guest!(has_a_test);

    fn sandbox() -> Sandbox {
        Sandbox::new(SandboxConfig::default()).unwrap()
    }

    /// The guest is a valid executor component with no imports.
    fn loads(path: &str) {
        let bytes = std::fs::read(path).unwrap();
        let info = sandbox().inspect(&bytes).unwrap();
        assert!(info.to_string().contains("imports: none"), "{path}: {info}");
        sandbox().load(&bytes).unwrap();
    }

    #[test]
    fn transfer() {
        loads(guest_artifacts::TRANSFER);
    }

    #[test]
    fn counter() {
        loads(guest_artifacts::COUNTER);
    }

    #[test]
    fn hostile() {
        loads(guest_artifacts::HOSTILE);
    }

    #[test]
    fn nockma() {
        loads(guest_artifacts::NOCKMA);
    }

    #[test]
    fn wrong_world() {
        let error = sandbox().load(&std::fs::read(guest_artifacts::WRONG_WORLD).unwrap()).unwrap_err();
        assert!(matches!(error, LoadError::WrongWorld(_)), "{error}");
    }

    /// A debug build: a production sandbox names it as such, a dev
    /// sandbox loads it.
    #[test]
    fn hostile_debug() {
        let bytes = std::fs::read(guest_artifacts::HOSTILE_DEBUG).unwrap();
        assert_eq!(sandbox().load(&bytes).unwrap_err(), LoadError::DebugBuild);
        let dev = Sandbox::new(SandboxConfig { dev: true, ..SandboxConfig::default() }).unwrap();
        assert!(dev.load(&bytes).unwrap().is_debug_build());
    }

    #[test]
    fn wasi_import() {
        let error = sandbox().load(&std::fs::read(guest_artifacts::WASI_IMPORT).unwrap()).unwrap_err();
        assert!(error.to_string().contains("wasi:random/random"), "{error}");
    }
}
