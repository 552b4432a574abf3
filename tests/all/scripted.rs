//! A native executor function that follows a script, and a synchronous
//! driver for one executor: the tools of the executor tests.

use std::sync::Arc;
use std::time::Duration;

use executor_guest::{ExecutorFunction, Input, Request, Step};
use executor_host::__internal::{Clock, Executor, ExecutorConfig, ExecutorTimer, Shared};
use executor_host::engine::{EngineId, Envelope, Instance, TimerOp, Trigger};
use executor_host::{ExecutorFinished, KeySets, Message};
use executor_host::{ExecutorMetrics, ExecutorOptions, ShardMap, Transaction};
use executor_host::{Limits, NativeProgram, Program};
use serde::{Deserialize, Serialize};

/// One request of a scripted step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Read(String),
    Write(String, String),
    Halt,
    Fail,
}

/// Step `i` (0 is the start step) performs `script[i]`, whatever it reads;
/// past the end of the script it waits.
#[derive(Debug)]
pub struct Scripted;

impl ExecutorFunction for Scripted {
    fn starting_state(_: &[u8]) -> Result<Vec<u8>, String> {
        Ok(0u32.to_le_bytes().to_vec())
    }

    fn execute_step(executable: &[u8], state: &[u8], _: Option<Input>) -> Result<Step, String> {
        let script: Vec<Vec<Op>> = serde_json::from_slice(executable).map_err(|e| e.to_string())?;
        let index = u32::from_le_bytes(state.try_into().map_err(|_| "bad state")?);
        let mut next = (index + 1).to_le_bytes().to_vec();
        let mut requests = Vec::new();
        for op in script.get(index as usize).cloned().unwrap_or_default() {
            match op {
                Op::Read(k) => requests.push(Request::Read(k.into_bytes())),
                Op::Write(k, v) => requests.push(Request::Write(k.into_bytes(), v.into_bytes())),
                Op::Halt => next = b"halt".to_vec(),
                Op::Fail => return Err("scripted failure".into()),
            }
        }
        Ok(Step::new(next, requests))
    }

    fn halted(state: &[u8]) -> bool {
        state == b"halt"
    }
}

pub fn scripted() -> Arc<dyn Program> {
    Arc::new(NativeProgram::<Scripted>::new(Limits::default()))
}

/// Keys starting with a letter before `n` live on shard `a`, the rest on `b`.
#[derive(Debug)]
pub struct TwoShards {
    a: EngineId,
    b: EngineId,
}

impl TwoShards {
    pub fn new() -> Self {
        Self { a: EngineId::local("shard-a"), b: EngineId::local("shard-b") }
    }
}

impl ShardMap for TwoShards {
    fn shard_for(&self, key: &[u8]) -> &EngineId {
        if key.first().is_some_and(|b| *b < b'n') { &self.a } else { &self.b }
    }
}

pub fn shard_of(key: &str) -> EngineId {
    TwoShards::new().shard_for(key.as_bytes()).clone()
}

pub fn worker() -> EngineId {
    EngineId::local("worker")
}

pub fn issuer() -> EngineId {
    EngineId::local("client")
}

pub fn keys(lazy: &[&str], eager: &[&str], will: &[&str], may: &[&str]) -> KeySets {
    let set = |keys: &[&str]| keys.iter().map(|k| k.as_bytes().to_vec()).collect();
    KeySets {
        lazy_read_keys: set(lazy),
        eager_read_keys: set(eager),
        will_write_keys: set(will),
        may_write_keys: set(may),
    }
}

pub fn script(steps: &[&[Op]]) -> Vec<u8> {
    serde_json::to_vec(&steps.iter().map(|s| s.to_vec()).collect::<Vec<_>>()).unwrap()
}

/// One executor driven by hand, on a virtual clock.
pub struct Driver {
    pub instance: Instance<Executor>,
    pub metrics: Arc<ExecutorMetrics>,
    pub now: Duration,
    pub stopped: bool,
}

pub const TS: u64 = 7;

impl Driver {
    /// Spawns the executor and runs its start timer; returns what it sent.
    pub fn start(
        program: Arc<dyn Program>,
        executable: Vec<u8>,
        keys: KeySets,
        options: ExecutorOptions,
    ) -> (Self, Vec<Envelope<Message>>) {
        let metrics = Arc::new(ExecutorMetrics::default());
        let shards = Arc::new(TwoShards::new());
        let shared = Arc::new(Shared { options, shards, metrics: metrics.clone(), clock: Clock::Real });
        let config = ExecutorConfig::new(
            Transaction { timestamp: TS, executable, keys, worker: worker(), issuer: issuer(), program },
            shared,
        );
        let (instance, timers) = Executor::spawn(config, Duration::ZERO);
        let mut driver = Self { instance, metrics, now: Duration::ZERO, stopped: false };
        // As a host does: fire the timers due at once, together (the first
        // step of a transaction without eager reads, the first re-ask of
        // one with them).
        let due: Vec<ExecutorTimer> = timers
            .iter()
            .filter_map(|op| match op {
                TimerOp::Set(t) if t.at <= driver.now => Some(t.handle),
                _ => None,
            })
            .collect();
        let sent =
            if due.is_empty() { Vec::new() } else { driver.trigger(Trigger::Elapsed { timers: due, at: driver.now }) };
        (driver, sent)
    }

    pub fn id(&self) -> EngineId {
        self.instance.id.clone()
    }

    pub fn trigger(&mut self, trigger: Trigger<Message, ExecutorTimer>) -> Vec<Envelope<Message>> {
        let effect = self.instance.handle(trigger);
        self.stopped |= effect.stop;
        effect.send
    }

    pub fn fire(&mut self, timer: ExecutorTimer) -> Vec<Envelope<Message>> {
        self.trigger(Trigger::Elapsed { timers: vec![timer], at: self.now })
    }

    pub fn message(&mut self, sender: EngineId, payload: Message) -> Vec<Envelope<Message>> {
        let envelope = Envelope::new(sender, self.id(), payload);
        self.trigger(Trigger::Message { envelope, at: self.now })
    }

    /// The owning shard sends `key`'s value.
    pub fn read(&mut self, key: &str, data: Option<&str>) -> Vec<Envelope<Message>> {
        self.read_at(TS, key, data)
    }

    pub fn read_at(&mut self, timestamp: u64, key: &str, data: Option<&str>) -> Vec<Envelope<Message>> {
        let payload =
            Message::KvsRead { timestamp, key: key.as_bytes().to_vec(), data: data.map(|d| d.as_bytes().to_vec()) };
        self.message(shard_of(key), payload)
    }
}

// Expected messages, from the executor's point of view.

pub fn request(key: &str, actual: bool) -> (EngineId, Message) {
    (shard_of(key), Message::KvsReadRequest { timestamp: TS, key: key.as_bytes().to_vec(), actual })
}

pub fn write(key: &str, datum: Option<&str>) -> (EngineId, Message) {
    (
        shard_of(key),
        Message::KvsWrite { timestamp: TS, key: key.as_bytes().to_vec(), datum: datum.map(|d| d.as_bytes().to_vec()) },
    )
}

/// Targets and payloads, after checking every envelope is from `sender`
/// on mailbox 0.
pub fn sent(sender: &EngineId, envelopes: Vec<Envelope<Message>>) -> Vec<(EngineId, Message)> {
    envelopes
        .into_iter()
        .map(|e| {
            assert_eq!(&e.sender, sender, "an executor sends from the id it is addressed by");
            assert_eq!(e.mailbox, 0);
            (e.target, e.payload)
        })
        .collect()
}

/// The `ExecutorFinished` messages among `messages`, checked to be one for
/// the worker and one for the issuer, identical.
pub fn finished(messages: &[(EngineId, Message)]) -> ExecutorFinished {
    let reports: Vec<(&EngineId, &ExecutorFinished)> = messages
        .iter()
        .filter_map(|(to, m)| match m {
            Message::ExecutorFinished(f) => Some((to, &**f)),
            _ => None,
        })
        .collect();
    assert_eq!(reports.len(), 2, "one for the worker, one for the issuer: {messages:?}");
    let targets: Vec<&EngineId> = reports.iter().map(|(to, _)| *to).collect();
    assert!(targets.contains(&&worker()) && targets.contains(&&issuer()));
    assert_eq!(reports[0].1, reports[1].1);
    reports[0].1.clone()
}

pub fn kv(key: &str, datum: &str) -> (Vec<u8>, Vec<u8>) {
    (key.as_bytes().to_vec(), datum.as_bytes().to_vec())
}
