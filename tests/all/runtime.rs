//! The engine runtime on tokio with a small engine of its own: what
//! happens to an engine that stops or panics (inline and on the pool), to
//! its timers and to mail for it afterwards, and mail that waits while an
//! engine is busy; and random runs of commands against a model of what
//! each engine must answer.

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
    /// Set the timer as `Arm` does, and stop in the same action: a timer
    /// due at once is handled before the engine goes.
    ArmThenStop(u64),
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
    ArmThenStop(u64),
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
                    Cmd::ArmThenStop(ms) => Act::ArmThenStop(ms),
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
            Act::Arm(ms) | Act::ArmThenStop(ms) => {
                let at = now.saturating_add(Duration::from_millis(ms));
                effect.timers.push(TimerOp::Set(Timer { handle: (), at }));
                effect.stop = matches!(action, Act::ArmThenStop(_));
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

/// A fresh engine named `name`, answering to the watcher.
fn tally(name: &str) -> Instance<Tally> {
    Instance { id: EngineId::local(name), config: Arc::new(watcher()), env: Environment::new(0) }
}

async fn start(execution: Execution, names: &[&str]) -> (RuntimeHandle<Tally>, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let config = RuntimeConfig { execution, ..RuntimeConfig::default() };
    let handle = runtime::start::<Tally>(config, recorder.clone(), None);
    for name in names {
        handle.spawn(tally(name), Vec::new()).await.unwrap();
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
    handle.spawn(tally("once"), Vec::new()).await.unwrap();
    send(&handle, "once", Cmd::Ping).await;
    settle(&handle, Duration::ZERO).await;
    assert_eq!(replies(&recorder, "once"), vec![1]);
    assert_eq!(handle.metrics().duplicate_spawns(), 0);
}

/// Mail that arrives while an engine's action runs on the pool waits, and
/// is handled once the engine is back, none of it lost; so is a timer
/// that came due meanwhile. Other engines are not held up. A stop that
/// waited ends the engine there: what waited behind it is not handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_for_a_busy_engine_waits_and_none_is_lost() {
    let (handle, recorder) =
        start(Execution::Pool { threads: std::num::NonZeroUsize::new(2) }, &["busy", "free", "quits"]).await;
    send(&handle, "busy", Cmd::Arm(10)).await;
    send(&handle, "busy", Cmd::Slow).await;
    for _ in 0..3 {
        send(&handle, "busy", Cmd::Ping).await;
    }
    send(&handle, "free", Cmd::Ping).await;
    send(&handle, "quits", Cmd::Slow).await;
    send(&handle, "quits", Cmd::Stop).await;
    send(&handle, "quits", Cmd::Ping).await;
    settle(&handle, Duration::from_millis(100)).await;
    // Arm is 1 and Slow 2; the three pings and the timer that came due
    // during the sleep follow it.
    assert_eq!(replies(&recorder, "busy"), vec![2, 3, 4, 5, 6]);
    assert_eq!(replies(&recorder, "free"), vec![1]);
    assert_eq!(replies(&recorder, "quits"), vec![1], "nothing after the stop");
    assert_eq!(handle.metrics().panicked(), 0);
    assert_eq!(handle.metrics().engines(), 2);
}

/// One step of a random run: a command to one of the engines, or a spawn
/// of it (again), with its timer due at once.
#[derive(Debug, Clone)]
enum Op {
    To(usize, Cmd),
    Spawn(usize),
}

const ENGINES: usize = 4;
/// Far beyond the run: such a timer fires only when the test moves the
/// clock past it at the end.
const FAR_MS: u64 = 3_600_000;

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let cmd = prop_oneof![
        4 => Just(Cmd::Ping),
        2 => Just(Cmd::Arm(0)),
        2 => Just(Cmd::Arm(FAR_MS)),
        1 => Just(Cmd::ArmThenStop(0)),
        1 => Just(Cmd::ArmThenStop(FAR_MS)),
        1 => Just(Cmd::Stop),
        1 => Just(Cmd::Panic),
    ];
    prop_oneof![
        6 => (0..ENGINES, cmd).prop_map(|(engine, cmd)| Op::To(engine, cmd)),
        1 => (0..ENGINES).prop_map(Op::Spawn),
    ]
}

/// What the runtime must do with a run, worked out one engine at a time.
#[derive(Debug, Default, PartialEq, Eq)]
struct Expected {
    replies: Vec<Vec<u64>>,
    live: u64,
    panicked: u64,
    unknown: u64,
    duplicates: u64,
}

#[derive(Clone, Copy, Default)]
struct Model {
    live: bool,
    handled: u64,
    far_timer: bool,
}

impl Model {
    /// Handles one trigger: counts it, and answers if `answer`.
    fn handle(&mut self, answer: bool, replies: &mut Vec<u64>) {
        self.handled += 1;
        if answer {
            replies.push(self.handled);
        }
    }
}

fn expected(ops: &[Op]) -> Expected {
    let mut engines = [Model { live: true, ..Model::default() }; ENGINES];
    let mut out = Expected { replies: vec![Vec::new(); ENGINES], ..Expected::default() };
    for op in ops {
        let (engine, replies) = match op {
            Op::To(i, _) | Op::Spawn(i) => (&mut engines[*i], &mut out.replies[*i]),
        };
        match op {
            Op::Spawn(_) if engine.live => out.duplicates += 1,
            Op::Spawn(_) => {
                *engine = Model { live: true, ..Model::default() };
                // Its timer is due at once.
                engine.handle(true, replies);
            }
            Op::To(..) if !engine.live => out.unknown += 1,
            Op::To(_, cmd) => match cmd {
                Cmd::Ping => engine.handle(true, replies),
                Cmd::Arm(ms) | Cmd::ArmThenStop(ms) => {
                    engine.handle(false, replies);
                    // Setting the one timer replaces the one set before.
                    engine.far_timer = *ms == FAR_MS;
                    if *ms == 0 {
                        engine.handle(true, replies);
                    }
                    engine.live = !matches!(cmd, Cmd::ArmThenStop(_));
                }
                Cmd::Stop => engine.live = false,
                Cmd::Panic => {
                    engine.live = false;
                    out.panicked += 1;
                }
                Cmd::Slow | Cmd::Reply(_) => unreachable!("not generated"),
            },
        }
    }
    // At the end the clock passes the far timers of the engines still here.
    for (engine, replies) in engines.iter_mut().zip(&mut out.replies) {
        if engine.live && engine.far_timer {
            engine.handle(true, replies);
        }
    }
    out.live = engines.iter().filter(|e| e.live).count() as u64;
    out
}

/// Runs `ops` on a runtime (inline, on tokio's paused clock) and reports
/// what it did, in the model's terms.
fn actual(ops: &[Op]) -> Expected {
    let clock = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    clock.block_on(async {
        let names: Vec<String> = (0..ENGINES).map(|i| format!("e{i}")).collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (handle, recorder) = start(Execution::Inline, &name_refs).await;
        for op in ops {
            match op {
                Op::To(i, cmd) => send(&handle, &names[*i], cmd.clone()).await,
                Op::Spawn(i) => {
                    let now = TimerOp::Set(Timer { handle: (), at: Duration::ZERO });
                    handle.spawn(tally(&names[*i]), vec![now]).await.unwrap();
                }
            }
        }
        handle.idle().await.unwrap();
        // Paused, the clock jumps to each timer as the runtime waits for it.
        tokio::time::sleep(Duration::from_millis(2 * FAR_MS)).await;
        handle.idle().await.unwrap();
        let metrics = handle.metrics();
        Expected {
            replies: names.iter().map(|name| replies(&recorder, name)).collect(),
            live: metrics.engines(),
            panicked: metrics.panicked(),
            unknown: metrics.unknown_target(),
            duplicates: metrics.duplicate_spawns(),
        }
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    /// Every trigger reaches its engine exactly once and in order while it
    /// is hosted, none after it stopped or panicked (its timers go with
    /// it), and the counts say so.
    #[test]
    fn random_runs_do_what_a_model_of_each_engine_says(ops in proptest::collection::vec(op(), 1..60)) {
        proptest::prop_assert_eq!(actual(&ops), expected(&ops));
    }
}
