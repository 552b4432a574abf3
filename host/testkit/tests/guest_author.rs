//! How a guest author tests an executor function host-side: the README's
//! "Testing a guest" example, kept compiling and passing here.

use std::sync::Arc;

use executor_host::{KeySets, Sandbox, SandboxConfig};
use executor_testkit::harness::{self, Delivery, TxSpec, Workload};

/// A transfer through the reference shards and worker, deterministic
/// (seeded) delivery: the wasm guest moves the balance and the report says
/// what it read and wrote.
#[test]
fn transfer_guest_moves_a_balance() -> anyhow::Result<()> {
    let sandbox = Sandbox::new(SandboxConfig::default())?;
    let guest = sandbox.load(&std::fs::read(guest_artifacts::TRANSFER)?)?;
    let keys = vec![b"alice".to_vec(), b"bob".to_vec()];
    let workload = Workload {
        shards: 2,
        initial: [(b"alice".to_vec(), b"10".to_vec())].into(),
        transactions: vec![TxSpec {
            executable: br#"{"from":"alice","to":"bob","amount":3}"#.to_vec(),
            keys: KeySets { eager_read_keys: keys.clone(), will_write_keys: keys, ..KeySets::default() },
        }],
    };
    let outcome =
        harness::execute(&workload, Arc::new(guest), &Default::default(), Delivery::Deterministic { seed: 1 })?;
    let report = &outcome.transactions[0].finished;
    assert!(report.success, "{:?}", report.failure);
    assert_eq!(outcome.final_state[&b"alice".to_vec()], b"7");
    assert_eq!(outcome.final_state[&b"bob".to_vec()], b"3");
    assert_eq!(outcome.pending_markers, 0);
    Ok(())
}
