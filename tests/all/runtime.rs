//! The engine runtime on tokio with a small engine of its own: what
//! happens to an engine that stops or panics (inline and on the pool), to
//! its timers and to mail for it afterwards, and mail that waits while an
//! engine is busy.

use std::sync::Arc;
use std::time::Duration;

use executor_host::Execution;
use executor_host::engine::{
    Behaviour, Effect, EngineId, Envelope, Environment, GuardStrategy, Instance, Timer, TimerOp, Trigger,
};
use executor_host::runtime::{self, RuntimeConfig, RuntimeHandle};

/// A command to the test engine.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cmd {
    /// Answer with `Reply(n)`, `n` counting what the engine handled.
    Ping,
    /// Answer like `Ping`, after sleeping (offloaded with a pool).
    Slow,
    /// Set the timer to elapse after this many milliseconds.
    Arm(u64),
    /// Panic in the action.
    Panic,
    /// Stop the engine.
    Stop,
    /// The engine's answer.
    Reply(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Act {
    Answer,
    Sleep,
    Arm(u64),
    Panic,
    Stop,
    Fire,
}

/// Counts what it handled; answers pings and its timer to `watcher`.
struct Tally;

impl Behaviour for Tally {
    type Config = EngineId;
    type Local = u64;
    type Msg = Cmd;
    type Timer = ();
    type Action = Act;
    type Spawn = ();
    const STRATEGY: GuardStrategy = GuardStrategy::FirstMatch;

    fn guards() -> &'static [executor_host::engine::Guard<Self>] {
        &[|trigger, _, _| {
            Some(match trigger {
                Trigger::Elapsed { .. } => Act::Fire,
                Trigger::Message { envelope, .. } => match envelope.payload {
                    Cmd::Ping => Act::Answer,
                    Cmd::Slow => Act::Sleep,
                    Cmd::Arm(ms) => Act::Arm(ms),
                    Cmd::Panic => Act::Panic,
                    Cmd::Stop => Act::Stop,
                    Cmd::Reply(_) => return None,
                },
            })
        }]
    }

    fn offload(action: &Act) -> bool {
        matches!(action, Act::Sleep | Act::Panic)
    }

    fn act(
        action: Act,
        trigger: &mut Trigger<Cmd, ()>,
        id: &EngineId,
        watcher: &EngineId,
        env: &mut Environment<Self>,
    ) -> Effect<Self> {
        env.local += 1;
        let now = match trigger {
            Trigger::Message { at, .. } | Trigger::Elapsed { at, .. } => *at,
        };
        let reply = Envelope::new(id.clone(), watcher.clone(), Cmd::Reply(env.local));
        let mut effect = Effect::default();
        match action {
            Act::Sleep => {
                std::thread::sleep(Duration::from_millis(50));
                effect.send.push(reply);
            }
            Act::Answer | Act::Fire => effect.send.push(reply),
            Act::Arm(ms) => {
                let at = now.saturating_add(Duration::from_millis(ms));
                effect.timers.push(TimerOp::Set(Timer { handle: (), at }));
            }
            Act::Panic => panic!("the test engine panics on purpose"),
            Act::Stop => effect.stop = true,
        }
        effect
    }
}

type Recorder = crate::support::Recorder<Cmd>;

/// The replies the engine `from` sent, in order.
fn replies(recorder: &Recorder, from: &str) -> Vec<u64> {
    let sent = recorder.sent();
    sent.iter()
        .filter(|e| &*e.sender.name == from)
        .filter_map(|e| match e.payload {
            Cmd::Reply(n) => Some(n),
            _ => None,
        })
        .collect()
}

fn watcher() -> EngineId {
    EngineId::local("watcher")
}

async fn start(execution: Execution, names: &[&str]) -> (RuntimeHandle<Tally>, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let config = RuntimeConfig { execution, ..RuntimeConfig::default() };
    let handle = runtime::start::<Tally>(config, recorder.clone(), None);
    for name in names {
        let instance = Instance { id: EngineId::local(*name), config: Arc::new(watcher()), env: Environment::new(0) };
        handle.spawn(instance, Vec::new()).await.unwrap();
    }
    (handle, recorder)
}

async fn send(handle: &RuntimeHandle<Tally>, to: &str, cmd: Cmd) {
    handle.deliver(Envelope::new(watcher(), EngineId::local(to), cmd)).await.unwrap();
}

/// Waits until the runtime has nothing running, then a little more for
/// timers (real time: pool threads are invisible to paused time).
async fn settle(handle: &RuntimeHandle<Tally>, wait: Duration) {
    handle.idle().await.unwrap();
    tokio::time::sleep(wait).await;
    handle.idle().await.unwrap();
}

/// An engine whose action panics is removed with its timers and counted;
/// mail for it afterwards is unknown, and its neighbour carries on. On
/// the runtime's own task and on the pool alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_engine_goes_with_its_timers_and_the_others_carry_on() {
    for execution in [Execution::Inline, Execution::Pool { threads: std::num::NonZeroUsize::new(1) }] {
        let (handle, recorder) = start(execution, &["doomed", "steady"]).await;
        send(&handle, "doomed", Cmd::Arm(30)).await;
        send(&handle, "doomed", Cmd::Panic).await;
        // Queued behind the panic when it runs on the pool; handled by no one.
        send(&handle, "doomed", Cmd::Ping).await;
        send(&handle, "steady", Cmd::Arm(30)).await;
        settle(&handle, Duration::from_millis(100)).await;
        let metrics = handle.metrics();
        assert_eq!(metrics.panicked(), 1);
        assert_eq!(metrics.engines(), 1);
        assert!(replies(&recorder, "doomed").is_empty(), "the removed engine's timer never fired: {execution:?}");
        assert_eq!(replies(&recorder, "steady"), vec![2], "the neighbour's timer fired");
        send(&handle, "doomed", Cmd::Ping).await;
        send(&handle, "steady", Cmd::Ping).await;
        settle(&handle, Duration::ZERO).await;
        assert_eq!(replies(&recorder, "steady"), vec![2, 3]);
        assert!(replies(&recorder, "doomed").is_empty());
        assert!(metrics.unknown_target() >= 1, "{execution:?}");
    }
}

/// A stopped engine is removed with its pending timer; later mail for it
/// is unknown, and its id can be hosted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_engine_goes_with_its_timers_and_its_id_is_free_again() {
    let (handle, recorder) = start(Execution::Inline, &["once"]).await;
    send(&handle, "once", Cmd::Arm(30)).await;
    send(&handle, "once", Cmd::Stop).await;
    settle(&handle, Duration::from_millis(100)).await;
    assert_eq!(handle.metrics().engines(), 0);
    assert!(replies(&recorder, "once").is_empty(), "the stopped engine's timer never fired");
    send(&handle, "once", Cmd::Ping).await;
    settle(&handle, Duration::ZERO).await;
    assert_eq!(handle.metrics().unknown_target(), 1);
    let again = Instance { id: EngineId::local("once"), config: Arc::new(watcher()), env: Environment::new(0) };
    handle.spawn(again, Vec::new()).await.unwrap();
    send(&handle, "once", Cmd::Ping).await;
    settle(&handle, Duration::ZERO).await;
    assert_eq!(replies(&recorder, "once"), vec![1]);
    assert_eq!(handle.metrics().duplicate_spawns(), 0);
}

/// Mail that arrives while an engine's action runs on the pool waits, and
/// is handled once the engine is back, none of it lost; so is a timer
/// that came due meanwhile. Other engines are not held up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_for_a_busy_engine_waits_and_none_is_lost() {
    let (handle, recorder) =
        start(Execution::Pool { threads: std::num::NonZeroUsize::new(1) }, &["busy", "free"]).await;
    send(&handle, "busy", Cmd::Arm(10)).await;
    send(&handle, "busy", Cmd::Slow).await;
    for _ in 0..3 {
        send(&handle, "busy", Cmd::Ping).await;
    }
    send(&handle, "free", Cmd::Ping).await;
    settle(&handle, Duration::from_millis(100)).await;
    // Arm is 1 and Slow 2; the three pings and the timer that came due
    // during the sleep follow it.
    assert_eq!(replies(&recorder, "busy"), vec![2, 3, 4, 5, 6]);
    assert_eq!(replies(&recorder, "free"), vec![1]);
    assert_eq!(handle.metrics().panicked(), 0);
    assert_eq!(handle.metrics().engines(), 2);
}
