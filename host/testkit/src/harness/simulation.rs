//! The deterministic run: one thread, a virtual clock, and every message in
//! flight delivered in an order drawn from a seeded [`Rng`]; the same seed
//! gives the same run, message for message.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use executor_host::__internal::{Clock, Executor, ExecutorConfig, ExecutorTimer, Shared};
use executor_host::engine::{Effect, EngineTimers, Instance, Time, TimerOp, TimerQueue, Trigger};
use executor_host::{EngineId, Envelope, ExecutorMetrics, ExecutorOptions, Message, Program};

use super::{
    HarnessError, HashShards, Outcome, ShardSummary, Workload, assemble_outcome, client_id, finished_transactions,
    requests, shard_initial, transaction, worker_id,
};
use crate::rng::Rng;
use crate::shard::Shard;
use crate::worker::{SpawnExecutor, Worker, WorkerConfig};

/// An executor with its timers.
struct Hosted {
    instance: Instance<Executor>,
    timers: EngineTimers<ExecutorTimer>,
}

pub(super) struct Simulation {
    now: Time,
    rng: Rng,
    shards: HashMap<EngineId, Instance<Shard>>,
    worker: Instance<Worker>,
    executors: HashMap<EngineId, Hosted>,
    timers: TimerQueue<ExecutorTimer>,
    in_flight: Vec<Envelope<Message>>,
    program: Arc<dyn Program>,
    shared: Arc<Shared>,
    /// The client's id, built once: every report to it is checked against it.
    client: EngineId,
    unknown: u64,
}

impl Simulation {
    pub(super) fn new(workload: &Workload, program: Arc<dyn Program>, options: &ExecutorOptions, seed: u64) -> Self {
        let shard_map = Arc::new(HashShards::new(workload.shards));
        let mut initial = shard_initial(&shard_map, &workload.initial);
        // One worker id for every engine that names it, as in the
        // concurrent run.
        let worker_id = worker_id();
        let shards = shard_map
            .all()
            .iter()
            .map(|id| {
                (id.clone(), Shard::serving(id.clone(), worker_id.clone(), initial.remove(id).unwrap_or_default()))
            })
            .collect();
        let worker = Worker::instance(
            worker_id,
            WorkerConfig { shards: shard_map.clone(), all_shards: shard_map.all().to_vec() },
        );
        let shared = Arc::new(Shared {
            options: options.clone(),
            shards: shard_map.clone(),
            metrics: Arc::new(ExecutorMetrics::default()),
            clock: Clock::Virtual,
        });
        Self {
            now: Duration::ZERO,
            rng: Rng::new(seed),
            shards,
            worker,
            executors: HashMap::new(),
            timers: TimerQueue::default(),
            in_flight: Vec::new(),
            program,
            shared,
            client: client_id(),
            unknown: 0,
        }
    }

    /// Submits the workload and delivers messages and timers until none
    /// is left.
    pub(super) fn settle(mut self, workload: &Workload) -> Result<Outcome, HarnessError> {
        // The client submits in order, so timestamps follow the workload's
        // order; everything after that is delivered in random order.
        let (client, worker) = (self.client.clone(), self.worker.id.clone());
        for request in requests(workload, &client, &worker) {
            self.deliver(request);
        }
        // Generous: a transaction exchanges a few dozen messages per key.
        let declared: u64 = workload.transactions.iter().map(|tx| tx.keys.all_keys().len() as u64).sum();
        let limit = 1_000u64
            .saturating_add(200u64.saturating_mul(workload.transactions.len() as u64))
            .saturating_add(50u64.saturating_mul(declared))
            .saturating_mul(1 + workload.shards as u64);
        // With `resend`, a waiting executor re-asks every period until its
        // deadline: a few messages per declared key each time.
        let options = &self.shared.options;
        let rounds = options.resend.map_or(0, |period| {
            u64::try_from(options.deadline.as_millis() / period.as_millis().max(1)).unwrap_or(u64::MAX)
        });
        let limit = limit.saturating_add(
            rounds.saturating_mul(declared.saturating_mul(2).saturating_add(workload.transactions.len() as u64)),
        );
        let mut steps = 0u64;
        loop {
            steps += 1;
            if steps > limit {
                return Err(HarnessError::Stuck(format!(
                    "{} messages in flight after {limit} steps",
                    self.in_flight.len()
                )));
            }
            if !self.in_flight.is_empty() {
                let index = self.rng.index(self.in_flight.len());
                let envelope = self.in_flight.swap_remove(index);
                self.deliver(envelope);
            } else if let Some(at) = self.timers.next_due() {
                self.now = self.now.max(at);
                self.fire_due();
            } else {
                break;
            }
        }
        let worker = &self.worker.env.local;
        let dropped = self.unknown + worker.dropped + self.shared.metrics.dropped_total();
        let shards = self.shards.values().map(|shard| ShardSummary::of(&shard.env.local)).collect();
        assemble_outcome(
            workload.transactions.len(),
            finished_transactions(worker, &workload.transactions),
            shards,
            dropped,
            Vec::new(),
        )
    }

    fn deliver(&mut self, envelope: Envelope<Message>) {
        let now = self.now;
        let target = envelope.target.clone();
        if let Some(shard) = self.shards.get_mut(&target) {
            let effect = shard.handle(Trigger::Message { envelope, at: now });
            self.in_flight.extend(effect.send);
        } else if target == self.worker.id {
            let effect = self.worker.handle(Trigger::Message { envelope, at: now });
            for spawn in effect.spawn {
                self.spawn(spawn);
            }
            self.in_flight.extend(effect.send);
        } else if let Some(hosted) = self.executors.get_mut(&target) {
            let effect = hosted.instance.handle(Trigger::Message { envelope, at: now });
            self.apply(&target, effect);
        } else if target != self.client {
            self.unknown += 1;
        }
    }

    fn spawn(&mut self, spawn: SpawnExecutor) {
        let config = ExecutorConfig::new(transaction(spawn, &self.program), self.shared.clone());
        let (instance, timers) = Executor::spawn(config, self.now);
        let id = instance.id.clone();
        self.executors.insert(id.clone(), Hosted { instance, timers: EngineTimers::default() });
        self.schedule(&id, timers);
    }

    fn apply(&mut self, id: &EngineId, effect: Effect<Executor>) {
        self.in_flight.extend(effect.send);
        self.schedule(id, effect.timers);
        if effect.stop
            && let Some(hosted) = self.executors.remove(id)
        {
            self.timers.remove(hosted.timers);
        }
    }

    fn schedule(&mut self, id: &EngineId, ops: Vec<TimerOp<ExecutorTimer>>) {
        let Some(hosted) = self.executors.get_mut(id) else { return };
        let due_now = self.timers.apply(id, &mut hosted.timers, ops, self.now);
        if !due_now.is_empty() {
            self.elapse(id, due_now);
        }
    }

    fn elapse(&mut self, id: &EngineId, timers: Vec<ExecutorTimer>) {
        let Some(hosted) = self.executors.get_mut(id) else { return };
        let effect = hosted.instance.handle(Trigger::Elapsed { timers, at: self.now });
        self.apply(id, effect);
    }

    /// Fires every timer due now, one trigger per engine.
    fn fire_due(&mut self) {
        let executors = &mut self.executors;
        let due = self.timers.take_due(self.now, |id, key| {
            if let Some(hosted) = executors.get_mut(id) {
                hosted.timers.forget(key);
            }
        });
        for (id, timers) in due {
            self.elapse(&id, timers);
        }
    }
}
