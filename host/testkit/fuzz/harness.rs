//! Random workloads through the real harness (`harness::execute`,
//! deterministic delivery): transfers, counters and random scripts with
//! random declarations, both write and access modes. Every transaction
//! must finish, no marker may stay pending, and every value read and the
//! final state must equal running the transactions one after another in
//! timestamp order (with what each reported).

use std::collections::BTreeMap;

use executor_host::{AccessMode, ExecutorOptions, KeySets, WriteMode};
use executor_testkit::harness::{self, Delivery, TxSpec, Workload};

use super::common::{self, show};
use super::script;
use super::{Fuzzer, Rng, Stats};

#[derive(Debug)]
pub struct HarnessFuzzer;

impl Fuzzer for HarnessFuzzer {
    fn case(&mut self, seed: u64, stats: &mut Stats) -> Result<(), String> {
        let mut rng = Rng::new(seed);
        let universe: Vec<Vec<u8>> = (0..1 + rng.below(10)).map(|i| format!("k{i}").into_bytes()).collect();
        let mut initial: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for key in &universe {
            if rng.chance(60) {
                initial.insert(key.clone(), rng.below(100).to_string().into_bytes());
            }
        }
        let transactions = (0..1 + rng.below(40))
            .map(|_| {
                let executable = match rng.below(10) {
                    0..=3 => script::transfer(&mut rng, &universe),
                    4..=5 => script::counter(&mut rng, &universe),
                    _ => {
                        let mut names = universe.clone();
                        names.push(b"undeclared".to_vec());
                        script::executable(rng.next_u64(), &names)
                    }
                };
                let keys: KeySets = common::key_sets(&mut rng, &universe, 50);
                TxSpec { executable, keys }
            })
            .collect::<Vec<_>>();
        let workload = Workload { shards: 1 + rng.index(4), initial: initial.clone(), transactions };
        let options = ExecutorOptions {
            write_mode: if rng.chance(50) { WriteMode::Streaming } else { WriteMode::Atomic },
            access_mode: if rng.chance(50) { AccessMode::Strict } else { AccessMode::Lenient },
            ..ExecutorOptions::default()
        };
        let outcome = harness::execute(&workload, script::program(), &options, Delivery::Deterministic { seed })
            .map_err(|e| format!("harness: {e}"))?;
        stats.inputs += workload.transactions.len() as u64;
        if outcome.pending_markers != 0 {
            return Err(format!("{} markers pending at the end", outcome.pending_markers));
        }
        let mut serial = initial;
        for tx in &outcome.transactions {
            let report = &tx.finished;
            for (key, value) in &report.values_read {
                if serial.get(key) != value.as_ref() {
                    return Err(format!(
                        "transaction {} read {} = {value:?}; serially {:?}",
                        tx.timestamp,
                        show(key),
                        serial.get(key)
                    ));
                }
            }
            for (key, value) in &report.values_written {
                serial.insert(key.clone(), value.clone());
            }
            stats.outcome(format!("harness:{}", report.failure.as_ref().map_or("success", |f| f.kind())));
        }
        if outcome.final_state != serial {
            return Err(format!("final state {:?}; serially {serial:?}", outcome.final_state));
        }
        Ok(())
    }
}
