//! A minimal shard-side process that embeds the executor host.
//!
//! It owns every key (one shard, an in-memory map as its store), runs a
//! handful of transfers one after another, and prints every message the
//! executors and the "shard" exchange.
//!
//! ```text
//! cargo run -p executor-host -- build -p transfer-guest -o target/transfer.wasm
//! cargo run -p executor-host --example shard_process -- target/transfer.wasm
//! cargo run -p executor-host --example shard_process            # native transfer, no wasm
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use executor_host::{
    EngineId, Envelope, ExecutorHost, HostConfig, KeySets, Limits, Message, NativeProgram, Program, Router, Sandbox,
    SandboxConfig, ShardMap, Transaction,
};
use tokio::sync::mpsc;

/// Every key lives here.
#[derive(Debug)]
struct OneShard(EngineId);

impl ShardMap for OneShard {
    fn shard_for(&self, _: &[u8]) -> &EngineId {
        &self.0
    }
}

/// Hands what executors send to the process's main loop.
struct Outbox(mpsc::UnboundedSender<Envelope<Message>>);

impl Router<Message> for Outbox {
    fn route(&self, envelope: Envelope<Message>) {
        let _ = self.0.send(envelope);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn show(envelope: &Envelope<Message>) {
    let what = match &envelope.payload {
        Message::KvsRead { key, data, .. } => {
            format!("KvsRead {} = {}", text(key), data.as_deref().map_or("(absent)".into(), text))
        }
        Message::KvsReadRequest { key, actual, .. } => format!("KvsReadRequest {} actual={actual}", text(key)),
        Message::KvsWrite { key, datum, .. } => {
            format!("KvsWrite {} = {}", text(key), datum.as_deref().map_or("(released)".into(), text))
        }
        Message::ExecutorFinished(f) => format!(
            "ExecutorFinished success={} gas={} failure={}",
            f.success,
            f.gas_used,
            f.failure.as_ref().map_or("-".into(), ToString::to_string)
        ),
        other => format!("{other:?}"),
    };
    println!("  {} -> {}: {what}", envelope.sender, envelope.target);
}

#[tokio::main]
async fn main() -> Result<()> {
    let program: Arc<dyn Program> = match std::env::args().nth(1) {
        Some(path) => {
            let bytes = std::fs::read(&path).with_context(|| format!("reading {path}"))?;
            Arc::new(Sandbox::new(SandboxConfig::default())?.load(&bytes)?)
        }
        None => Arc::new(NativeProgram::<transfer_guest::TransferFunction>::new(Limits::default())),
    };
    let (outbox, mut sent) = mpsc::unbounded_channel();
    let host = ExecutorHost::start(
        HostConfig::default(),
        Arc::new(OneShard(EngineId::local("shard"))),
        Arc::new(Outbox(outbox)),
    );
    let shard = EngineId::local("shard");
    let worker = EngineId::local("worker");
    let mut store: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::from([(b"alice".to_vec(), b"100".to_vec())]);

    let transfers = [("alice", "bob", 30), ("bob", "carol", 10), ("carol", "alice", 50), ("alice", "alice", 1)];
    for (timestamp, (from, to, amount)) in (1..).zip(transfers) {
        println!("transaction {timestamp}: {amount} from {from} to {to}");
        let accounts = vec![from.as_bytes().to_vec(), to.as_bytes().to_vec()];
        let keys = KeySets { eager_read_keys: accounts.clone(), will_write_keys: accounts, ..KeySets::default() };
        let executable = format!(r#"{{"from":"{from}","to":"{to}","amount":{amount}}}"#).into_bytes();
        let tx = Transaction {
            timestamp,
            executable,
            keys: keys.clone(),
            worker: worker.clone(),
            issuer: worker.clone(),
            program: program.clone(),
        };
        let executor = host.spawn(tx).await?;
        // The shard sends eager reads unasked.
        for key in keys.normalized().eager_read_keys {
            let data = store.get(&key).cloned();
            let read = Envelope::new(shard.clone(), executor.clone(), Message::KvsRead { timestamp, key, data });
            show(&read);
            host.deliver(read).await?;
        }
        loop {
            let Some(envelope) = sent.recv().await else { bail!("the host stopped") };
            show(&envelope);
            match envelope.payload {
                Message::KvsWrite { key, datum: Some(datum), .. } => {
                    store.insert(key, datum);
                }
                Message::KvsReadRequest { key, actual: true, .. } => {
                    let data = store.get(&key).cloned();
                    let payload = Message::KvsRead { timestamp, key, data };
                    host.deliver(Envelope::new(shard.clone(), executor.clone(), payload)).await?;
                }
                Message::ExecutorFinished(_) => break,
                _ => {}
            }
        }
    }
    println!("final store:");
    for (key, value) in &store {
        println!("  {} = {}", text(key), text(value));
    }
    Ok(())
}
