//! Across processes over a real `nats-server` on a loopback port: shard,
//! worker and executor-host processes of the `executor-host` binary, a
//! client submitting random transfers; the outcome checked against serial
//! execution (the oracle's checker). Then the same with an executor host
//! killed and the server restarted mid-run, and the example server
//! configuration's permissions.
//!
//! The tests start `nats-server` themselves (installed by the README's test
//! command); without it they say so loudly and pass, except under CI
//! (`CI` set), where a missing server fails them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use executor_host::Message;
use executor_nats::local::{LocalError, NatsServer, ServeProcess};
use executor_nats::{Link, NatsConfig, Patience};
use executor_testkit::harness::{Outcome, Workload};

use crate::oracle;

/// Starts a server, or `None` (after saying why) if `nats-server` is not
/// installed and this is not CI.
fn server(config: Option<&Path>) -> Option<NatsServer> {
    let mut server = reserved_server(config)?;
    server.restart().unwrap();
    Some(server)
}

/// As [`server`], not started yet.
fn reserved_server(config: Option<&Path>) -> Option<NatsServer> {
    match NatsServer::reserve(config) {
        Err(LocalError::NoServer) if std::env::var_os("CI").is_none() => {
            eprintln!("\n*** SKIPPED: nats-server is not installed (apt-get install nats-server) ***\n");
            None
        }
        started => Some(started.unwrap()),
    }
}

/// A `serve` process of the binary, ready.
fn serve(args: &[&str], env: &[(&str, &str)]) -> ServeProcess {
    ServeProcess::start(Path::new(env!("CARGO_BIN_EXE_executor-host")), args, env).unwrap()
}

/// The scenario file of `workload`, for the shards' initial state.
fn scenario_file(workload: &Workload, dir: &Path) -> PathBuf {
    let path = dir.join("scenario.json");
    std::fs::write(&path, executor_testkit::scenario::scenario_json(workload).to_string()).unwrap();
    path
}

/// A deployment: the server, shard processes, a worker, executor hosts.
struct Deployment {
    server: NatsServer,
    shards: Vec<ServeProcess>,
    worker: ServeProcess,
    executors: Vec<ServeProcess>,
    metrics: Vec<String>,
    /// Every process's `--nats`, `--shards` and `--config`.
    common: Vec<String>,
    scenario: PathBuf,
    _dir: tempfile::TempDir,
}

impl Deployment {
    fn worker(common: &[String]) -> ServeProcess {
        let common: Vec<&str> = common.iter().map(String::as_str).collect();
        serve(&[&["worker"][..], &common].concat(), &[])
    }

    fn shard(common: &[String], scenario: &Path, id: usize) -> ServeProcess {
        let common: Vec<&str> = common.iter().map(String::as_str).collect();
        let id = id.to_string();
        serve(&[&["shard", "--id", &id, "--scenario", scenario.to_str().unwrap()][..], &common].concat(), &[])
    }

    fn executor(common: &[String], metrics: &str) -> ServeProcess {
        let common: Vec<&str> = common.iter().map(String::as_str).collect();
        serve(&[&["executor", "--native", "transfer", "--metrics", metrics][..], &common].concat(), &[])
    }
}

/// How long a spawn request may stay unacknowledged before another host
/// gets it: short, so that a killed host's transactions move on quickly.
const ACK_WAIT: &str = "[nats]\nack_wait = { secs = 2, nanos = 0 }\n";

fn deploy(workload: &Workload, executors: usize) -> Option<Deployment> {
    let server = server(None)?;
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(workload, dir.path());
    let config = dir.path().join("config.toml");
    std::fs::write(&config, ACK_WAIT).unwrap();
    let (url, shards, config) = (server.url(), workload.shards.to_string(), config.to_str().unwrap().to_owned());
    let common: Vec<String> =
        ["--nats", &url, "--shards", &shards, "--config", &config].into_iter().map(String::from).collect();
    let worker = Deployment::worker(&common);
    let shard_processes = (0..workload.shards).map(|i| Deployment::shard(&common, &scenario, i)).collect();
    let mut metrics = Vec::new();
    let executor_processes = (0..executors)
        .map(|_| {
            let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().port();
            let addr = format!("127.0.0.1:{port}");
            metrics.push(format!("http://{addr}/metrics"));
            Deployment::executor(&common, &addr)
        })
        .collect();
    Some(Deployment {
        server,
        shards: shard_processes,
        worker,
        executors: executor_processes,
        metrics,
        common,
        scenario,
        _dir: dir,
    })
}

/// A metric's value on a process's endpoint (plain HTTP/1.0 over a socket:
/// no client library needed for one line).
fn metric(url: &str, name: &str) -> u64 {
    use std::io::{Read as _, Write as _};
    let addr = url.trim_start_matches("http://").trim_end_matches("/metrics");
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return 0 };
    let _ = stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0)
}

async fn client(url: &str) -> Arc<Link> {
    Link::connect(&NatsConfig { url: url.into(), name: "test client".into(), ..NatsConfig::default() }).await.unwrap()
}

fn transfers(seed: u64, count: usize, accounts: u64, shards: usize) -> Workload {
    let mut workload = oracle::transfer_workload(seed, count, accounts);
    workload.shards = shards;
    workload
}

fn assert_serial(workload: &Workload, outcome: &Outcome) {
    if let Err(difference) = oracle::check(workload, outcome) {
        panic!("not serializable across processes: {difference}");
    }
    assert!(outcome.conflicting_writes.is_empty(), "{:?}", outcome.conflicting_writes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_transfers_across_processes_equal_serial_execution() {
    let workload = transfers(11, 10_000, 500, 2);
    let Some(deployment) = deploy(&workload, 2) else { return };
    let link = client(&deployment.server.url()).await;
    // Junk on the wire: garbage, a wrong version, a message for no engine.
    let junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 64],
        vec![9, 1, 2, 3],
        executor_nats::wire::encode(&executor_host::Envelope::new(
            executor_host::EngineId::local("x"),
            executor_host::EngineId::local("no-such-engine"),
            Message::KvsLockAcquired { timestamp: 1 },
        ))
        .unwrap(),
    ];
    for payload in &junk {
        for subject in ["exec.direct.shard-0", "exec.executor.worker.1", "exec.spawn"] {
            link.client().publish(subject, payload.clone().into()).await.unwrap();
        }
    }
    let outcome = executor_nats::submit(&link, &workload, Patience::default()).await.unwrap();
    assert_serial(&workload, &outcome);
    let finished: u64 = deployment.metrics.iter().map(|m| metric(m, "executor_host_transactions_finished_total")).sum();
    assert!(finished >= 10_000, "{finished}");
    for m in &deployment.metrics {
        // Both hosts took a share of the work.
        assert!(metric(m, "executor_host_transactions_finished_total") > 100, "{m}");
    }
    drop(deployment);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_executor_host_and_a_server_restart_lose_no_transaction() {
    let workload = transfers(12, 10_000, 500, 2);
    let Some(mut deployment) = deploy(&workload, 2) else { return };
    let link = client(&deployment.server.url()).await;
    let submitted = tokio::spawn({
        let (link, workload) = (link.clone(), workload.clone());
        async move { executor_nats::submit(&link, &workload, Patience::default()).await }
    });
    let finished = |m: &str| metric(m, "executor_host_transactions_finished_total");
    let wait_until = |m: String, at_least: u64| async move {
        let started = Instant::now();
        while finished(&m) < at_least && started.elapsed() < Duration::from_secs(120) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // Mid-run: the first host has finished some transactions and holds
    // others; SIGKILL it.
    wait_until(deployment.metrics[0].clone(), 500).await;
    deployment.executors[0].kill();
    // Later, the server dies and comes back on the same port and store.
    let survivor = deployment.metrics[1].clone();
    let before = finished(&survivor);
    wait_until(survivor.clone(), before + 500).await;
    deployment.server.restart().unwrap();
    let outcome = submitted.await.unwrap().unwrap();
    assert_serial(&workload, &outcome);
    assert!(metric(&survivor, "executor_host_nats_redeliveries_total") > 0, "the dead host's requests moved");
    drop(deployment);
}

/// The worker and the shards restarted while an executor host runs on: a
/// new worker numbers its transactions from 1 again, so that host must
/// not take them for the old ones of the same timestamps (acknowledge
/// them as done, or let an old executor's report and writes stand for a
/// new transaction's). It stops; a host started with the deployment runs
/// the new transactions, as serial execution would.
/// A deployment with one executor host that has run `workload` once, as
/// serial execution would, and the client link that submitted it.
async fn deployed_and_run_once(workload: &Workload) -> Option<(Deployment, Arc<Link>)> {
    let deployment = deploy(workload, 1)?;
    let link = client(&deployment.server.url()).await;
    assert_serial(workload, &executor_nats::submit(&link, workload, Patience::default()).await.unwrap());
    Some((deployment, link))
}

/// Runs `serve <args>` with `env` added, which must refuse to start:
/// returns its stderr.
async fn refused_serve(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_executor-host"))
        .arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let waited = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if waited.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("`serve {args:?}` started instead of refusing");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    stderr
}

/// A shard or the worker keeps its state in memory, so one restarted
/// alone has lost it. A shard restarted alone reloaded its initial state
/// and served it to the next transactions, and `submit` printed a wrong
/// outcome with exit status 0 (an outside chaos pass); a worker restarted
/// alone numbered transactions from 1 again, which the shards dropped as
/// below their watermarks, and the run stalled. Each now refuses to start,
/// saying to restart the deployment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_or_worker_restarted_alone_refuses_to_start() {
    let workload = transfers(6, 200, 40, 2);
    let Some((mut deployment, _)) = deployed_and_run_once(&workload).await else { return };
    let common: Vec<&str> = deployment.common.iter().map(String::as_str).collect();
    let scenario = deployment.scenario.to_str().unwrap().to_owned();

    deployment.shards[1].kill();
    let shard = refused_serve(&[&["shard", "--id", "1", "--scenario", &scenario][..], &common].concat(), &[]).await;
    assert!(shard.contains("the worker has ordered 200 transactions already"), "{shard}");
    assert!(shard.contains("restart the deployment"), "{shard}");

    deployment.worker.kill();
    let worker = refused_serve(&[&["worker"][..], &common].concat(), &[]).await;
    assert!(worker.contains("has served the transactions of another worker"), "{worker}");
    drop(deployment);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_host_stops_when_the_worker_is_replaced() {
    let workload = transfers(5, 300, 40, 2);
    let Some((mut deployment, link)) = deployed_and_run_once(&workload).await else { return };

    deployment.worker.kill();
    deployment.shards.iter_mut().for_each(ServeProcess::kill);
    deployment.worker = Deployment::worker(&deployment.common);
    deployment.shards =
        (0..workload.shards).map(|i| Deployment::shard(&deployment.common, &deployment.scenario, i)).collect();
    let again = tokio::spawn({
        let (link, workload) = (link.clone(), workload.clone());
        async move { executor_nats::submit(&link, &workload, Patience::default()).await }
    });
    let started = Instant::now();
    let stale = &mut deployment.executors[0];
    while stale.exited().is_none() && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stale.exited().is_some_and(|status| !status.success()), "the old host stopped");
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().port();
    deployment.executors.push(Deployment::executor(&deployment.common, &format!("127.0.0.1:{port}")));
    assert_serial(&workload, &again.await.unwrap().unwrap());
    drop(deployment);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_permissions_let_each_role_do_its_job_and_a_client_nothing_else() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nats/server.conf");
    let Some(server) = server(Some(&conf)) else { return };
    let url = server.url();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/transfers.json");
    let scenario = scenario.to_str().unwrap();
    let role = |user: &str, args: &[&str]| {
        let password = format!("{user}-secret");
        let common = ["--nats", &url, "--nats-user", user, "--shards", "3"];
        serve(&[args, &common].concat(), &[("EXECUTOR_HOST_NATS_PASSWORD", password.as_str())])
    };
    // Credentials the server refuses end a `serve` at once, naming why
    // (it waited for ever, logging "authorization violation").
    for (user, password) in [("worker", "wrong"), ("nobody", "worker-secret")] {
        let args = ["worker", "--nats", &url, "--nats-user", user, "--shards", "3"];
        let stderr = refused_serve(&args, &[("EXECUTOR_HOST_NATS_PASSWORD", password)]).await;
        assert!(stderr.contains("refused this process's credentials"), "{stderr}");
    }
    let _worker = role("worker", &["worker"]);
    let _shards: Vec<ServeProcess> =
        (0..3).map(|i| role("shard", &["shard", "--id", &i.to_string(), "--scenario", scenario])).collect();
    let _executor = role("executor", &["executor", "--native", "transfer"]);

    // The CLI's `submit`, as the submit user: the same report as `run`.
    let submit = Command::new(env!("CARGO_BIN_EXE_executor-host"))
        .args(["submit", "--scenario", scenario, "--nats", &url, "--nats-user", "submit", "--output", "json"])
        .env("EXECUTOR_HOST_NATS_PASSWORD", "submit-secret")
        .output()
        .unwrap();
    assert!(submit.status.success(), "{}", String::from_utf8_lossy(&submit.stderr));
    let run = Command::new(env!("CARGO_BIN_EXE_executor-host"))
        .args(["run", "--native", "transfer", "--scenario", scenario, "--output", "json"])
        .output()
        .unwrap();
    let report = |out: &[u8]| {
        let mut value: serde_json::Value = serde_json::from_slice(out).unwrap();
        // Times differ; everything else must not.
        for field in ["seconds", "tx_per_second"] {
            value.as_object_mut().unwrap().remove(field);
        }
        value
    };
    assert_eq!(report(&submit.stdout), report(&run.stdout));

    // The submit user may publish to the worker, and not to a shard, an
    // executor or the spawn queue: the server refuses and says so.
    let (errors_tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    let submitter = async_nats::ConnectOptions::with_user_and_password("submit".into(), "submit-secret".into())
        .event_callback(move |event| {
            let errors_tx = errors_tx.clone();
            async move {
                if let async_nats::Event::ServerError(error) = event {
                    let _ = errors_tx.send(error.to_string());
                }
            }
        })
        .connect(&url)
        .await
        .unwrap();
    let observer = async_nats::ConnectOptions::with_user_and_password("shard".into(), "shard-secret".into())
        .connect(&url)
        .await
        .unwrap();
    use futures_util::StreamExt as _;
    let mut seen = observer.subscribe("exec.>").await.unwrap();
    observer.flush().await.unwrap();
    for subject in
        ["exec.shard-0", "exec.direct.shard-0", "exec.executor.worker.1", "exec.spawn", "exec.service.worker"]
    {
        submitter.publish(subject, "forged".into()).await.unwrap();
        submitter.flush().await.unwrap();
        let refused = tokio::time::timeout(Duration::from_secs(5), errors.recv()).await.unwrap().unwrap();
        assert!(refused.to_lowercase().contains("permissions violation"), "{subject}: {refused}");
    }
    submitter.publish("exec.worker", "allowed".into()).await.unwrap();
    submitter.flush().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), seen.next()).await.unwrap().unwrap();
    assert_eq!(first.subject.as_str(), "exec.worker", "only the allowed publish arrives");

    // A query is answered on the asker's inbox only: with a reply subject
    // of its choosing, a client could have a shard or the worker publish
    // there with their permissions (the worker's service subject, the
    // spawn queue, JetStream's API).
    let mut inboxes = observer.subscribe("_INBOX.>").await.unwrap();
    observer.flush().await.unwrap();
    for (query, reply) in [("exec.query.shard-0", "exec.service.worker"), ("exec.query.worker", "exec.spawn")] {
        submitter.publish_with_reply(query, reply, "".into()).await.unwrap();
    }
    // Answered in order: once the shard's answer to a real request is out,
    // an answer to the ones before would have been too.
    let answer = submitter.request("exec.query.shard-0", "".into()).await.unwrap();
    let answer = String::from_utf8_lossy(&answer.payload).into_owned();
    assert!(answer.starts_with("3 "), "a shard answers with its shard count and watermark: {answer}");
    tokio::time::timeout(Duration::from_secs(5), inboxes.next()).await.unwrap().unwrap();
    submitter.publish("exec.worker", "allowed".into()).await.unwrap();
    submitter.flush().await.unwrap();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), seen.next()).await.unwrap().unwrap();
        match next.subject.as_str() {
            "exec.worker" => break,
            "exec.query.shard-0" | "exec.query.worker" => {}
            other => panic!("an answer went to {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executors_embedded_in_a_shard_process_run_the_whole_scenario() {
    let Some(server) = server(None) else { return };
    let url = server.url();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/transfers.json");
    let scenario = scenario.to_str().unwrap();
    let common = ["--nats", url.as_str(), "--shards", "3"];
    let _worker = serve(&[&["worker"][..], &common].concat(), &[]);
    // No executor host: shard 1's process hosts every executor.
    let _shards: Vec<ServeProcess> = (0..3)
        .map(|i| {
            let id = i.to_string();
            let mut args = vec!["shard", "--id", id.as_str(), "--scenario", scenario];
            if i == 1 {
                args.extend(["--with-executors", "--native", "transfer"]);
            }
            serve(&[&args[..], &common].concat(), &[])
        })
        .collect();
    let link = client(&url).await;
    let text = std::fs::read_to_string(scenario).unwrap();
    let workload = executor_testkit::scenario::Scenario::from_json(&text).unwrap().workload();
    let across = executor_nats::submit(&link, &workload, Patience::default()).await.unwrap();
    let program: Arc<dyn executor_host::Program> = Arc::new(executor_host::NativeProgram::<
        transfer_guest::TransferFunction,
    >::new(executor_host::Limits::default()));
    let options = executor_host::ExecutorOptions::default();
    let local = tokio::task::spawn_blocking(move || {
        executor_testkit::harness::execute(
            &workload,
            program,
            &options,
            executor_testkit::harness::Delivery::Deterministic { seed: 1 },
        )
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(across.final_state, local.final_state);
    let reports = |o: &Outcome| o.transactions.iter().map(|t| (t.timestamp, t.finished.clone())).collect::<Vec<_>>();
    assert!(reports(&across) == reports(&local), "a transaction differs across processes");
    assert!(across.transactions == local.transactions, "a transaction was recorded differently");
    assert_eq!(across.pending_markers, 0);
}

/// On its first value, writes as many bytes as its executable says (in
/// decimal) under `k`, and halts.
#[derive(Debug)]
struct Fill;

impl executor_guest::ExecutorFunction for Fill {
    fn starting_state(_: &[u8]) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }

    fn execute_step(exe: &[u8], _: &[u8], _: Option<executor_guest::Input>) -> Result<executor_guest::Step, String> {
        let n: usize = std::str::from_utf8(exe).ok().and_then(|n| n.parse().ok()).ok_or("not a length")?;
        Ok(executor_guest::Step::new(b"!".to_vec(), vec![executor_guest::Request::Write(b"k".to_vec(), vec![0xff; n])]))
    }

    fn halted(state: &[u8]) -> bool {
        state == b"!"
    }
}

/// A worker and one shard that hosts executors of `F`, in this process,
/// the shard loaded with `workload`'s initial state.
async fn in_process<F: executor_guest::ExecutorFunction + 'static>(
    url: &str,
    workload: &Workload,
    options: executor_host::ExecutorOptions,
) -> [executor_nats::Served; 2] {
    let executors = executor_nats::ExecutorsConfig {
        program: Arc::new(executor_host::NativeProgram::<F>::new(executor_host::Limits::default())),
        host: executor_host::HostConfig { executor: options, ..executor_host::HostConfig::default() },
        ack_wait: Duration::from_secs(2),
    };
    let worker = executor_nats::serve_worker(&client(url).await, 1).await.unwrap();
    let initial = workload.initial.clone();
    let shard = executor_nats::serve_shard(&client(url).await, 0, 1, initial, Some(executors)).await.unwrap();
    [worker, shard]
}

/// Transactions of `Fill` on key `k`, one per length.
fn fills(initial: std::collections::BTreeMap<Vec<u8>, Vec<u8>>, lengths: &[&str]) -> Workload {
    let k = b"k".to_vec();
    let keys = executor_host::KeySets {
        eager_read_keys: vec![k.clone()],
        will_write_keys: vec![k],
        ..executor_host::KeySets::default()
    };
    let transactions = lengths
        .iter()
        .map(|n| executor_testkit::harness::TxSpec { executable: n.as_bytes().to_vec(), keys: keys.clone() });
    Workload { shards: 1, initial, transactions: transactions.collect() }
}

/// A message over NATS holds at most 1 MiB. A transaction whose write, or
/// whose report, could not travel fails instead of leaving its lock held
/// for ever: the next transactions on its key run, one of them reading a
/// value of 400,000 bytes. A report that only its step trace makes too
/// large travels without the trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_too_large_for_a_message_fails_and_frees_its_keys() {
    use executor_host::{ExecutorOptions, Failure, Oversize};
    let Some(server) = server(None) else { return };
    let url = server.url();
    let k = b"k".to_vec();
    let workload = fills([(k.clone(), b"0".to_vec())].into(), &["800000", "400000", "10"]);
    let options = ExecutorOptions { step_trace: true, ..ExecutorOptions::default() };
    let _deployment = in_process::<Fill>(&url, &workload, options).await;
    let patience = Patience { stall: Duration::from_secs(30), ..Patience::default() };
    let outcome = executor_nats::submit(&client(&url).await, &workload, patience).await.unwrap();

    let [first, second, third] = &outcome.transactions[..] else { panic!("{} reports", outcome.transactions.len()) };
    let size = (1 + 1 + 16) + (1 + 800_000 + 16);
    let too_large = Failure::TooLarge { what: Oversize::Report, size, limit: executor_nats::wire::REPORT_BYTES };
    assert_eq!(first.finished.failure, Some(too_large));
    assert!(first.finished.values_written.is_empty());
    assert!(second.finished.success && third.finished.success, "{:?} {:?}", second.finished, third.finished.failure);
    assert_eq!(second.finished.values_read, vec![(k.clone(), Some(b"0".to_vec()))], "the first wrote nothing");
    assert_eq!(third.finished.values_read, vec![(k.clone(), Some(vec![0xff; 400_000]))]);
    assert_eq!(outcome.final_state.get(&k), Some(&vec![0xff; 10]));
    assert_eq!(outcome.pending_markers, 0);
    // The second's trace repeats its 400,000-byte write: past the limit,
    // so it came without; the third's fits.
    assert!(second.finished.diagnostics.is_empty());
    assert_eq!(third.finished.diagnostics.steps.len(), 1);
}

/// A scenario for another shard count than the deployment's is refused
/// before anything is sent (the report would miss shards, or wait for
/// one that does not exist); the right count runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_for_another_shard_count_is_refused() {
    let Some(server) = server(None) else { return };
    let url = server.url();
    let workload = transfers(4, 20, 5, 1);
    let _deployment = in_process::<transfer_guest::TransferFunction>(&url, &workload, Default::default()).await;
    let link = client(&url).await;
    let quick = || Patience { stall: Duration::from_secs(2), ..Patience::default() };
    let more = executor_nats::submit(&link, &Workload { shards: 2, ..workload.clone() }, quick()).await.unwrap_err();
    assert_eq!(
        more.to_string(),
        "the scenario is for 2 shards, and the deployment has 1: every process and the scenario must agree"
    );
    let mut worker_stream = link.jetstream().get_stream("exec_worker").await.unwrap();
    assert_eq!(worker_stream.info().await.unwrap().state.messages, 0, "nothing was sent");
    assert_serial(&workload, &executor_nats::submit(&link, &workload, quick()).await.unwrap());
    // A shard for another shard count than the worker's is refused: it
    // would keep another part of the initial state than it owns.
    let extra = executor_nats::serve_shard(&client(&url).await, 1, 2, [], None).await.err().map(|e| e.to_string());
    assert_eq!(
        extra.as_deref(),
        Some("this process is for 2 shards, and the worker serves 1: every process must agree (--shards)")
    );
    // Executors for another shard count than the worker's are refused.
    let executors = executor_nats::ExecutorsConfig {
        program: Arc::new(executor_host::NativeProgram::<transfer_guest::TransferFunction>::new(Default::default())),
        host: executor_host::HostConfig::default(),
        ack_wait: Duration::from_secs(2),
    };
    let wrong = executor_nats::serve_executors(&client(&url).await, 2, executors).await.err().map(|e| e.to_string());
    assert_eq!(
        wrong.as_deref(),
        Some("this process is for 2 shards, and the worker serves 1: every process must agree (--shards)")
    );
    // One process per shard: a second would empty the first's stream.
    let twice = executor_nats::serve_shard(&client(&url).await, 0, 1, [], None).await.err().map(|e| e.to_string());
    assert_eq!(
        twice.as_deref(),
        Some("`shard-0` already serves namespace `exec`: one process per shard (stop it first)")
    );
    // One worker per namespace: a second would empty the first's queues.
    let second = executor_nats::serve_worker(&client(&url).await, 1).await.err().map(|e| e.to_string());
    assert_eq!(
        second.as_deref(),
        Some("a worker already serves namespace `exec`: one per namespace (stop it first, or use another --namespace)")
    );
}

/// Processes started before the worker are checked when it comes: a
/// worker refuses a running shard for another count, and an executor host
/// for another count stops at the worker's first request, unacknowledged,
/// so that a host for the right count runs every transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_started_before_the_worker_are_checked_when_it_comes() {
    let Some(server) = server(None) else { return };
    let url = server.url();
    let workload = transfers(6, 40, 5, 1);
    let in_namespace = |namespace: &'static str| {
        let url = url.clone();
        async move {
            Link::connect(&NatsConfig { url, namespace: namespace.into(), ..NatsConfig::default() }).await.unwrap()
        }
    };
    // A shard of a two-shard deployment, then a worker for one shard.
    let _shard = executor_nats::serve_shard(&in_namespace("lone").await, 0, 2, [], None).await.unwrap();
    let worker = executor_nats::serve_worker(&in_namespace("lone").await, 1).await.err().map(|e| e.to_string());
    assert_eq!(
        worker.as_deref(),
        Some("shard `shard-0` serves 2 shards, and this worker 1: every process must agree (--shards)")
    );
    let executors = |shards: usize| {
        let config = executor_nats::ExecutorsConfig {
            program: Arc::new(
                executor_host::NativeProgram::<transfer_guest::TransferFunction>::new(Default::default()),
            ),
            host: executor_host::HostConfig::default(),
            ack_wait: Duration::from_secs(2),
        };
        let url = url.clone();
        async move { executor_nats::serve_executors(&client(&url).await, shards, config).await.unwrap() }
    };
    let wrong = executors(2).await;
    let _worker = executor_nats::serve_worker(&client(&url).await, 1).await.unwrap();
    let _shard = executor_nats::serve_shard(&client(&url).await, 0, 1, workload.initial.clone(), None).await.unwrap();
    let link = client(&url).await;
    let submitted = {
        let workload = workload.clone();
        tokio::spawn(async move { executor_nats::submit(&link, &workload, Patience::default()).await })
    };
    tokio::time::timeout(Duration::from_secs(30), wrong.wait())
        .await
        .expect("the host for two shards stops at its first request");
    let _right = executors(1).await;
    assert_serial(&workload, &submitted.await.unwrap().unwrap());
}

/// A client may publish to the worker's subject, but the worker takes only
/// requests from there: a report a client forges, as the executor of a
/// transaction ordered and not yet run, is dropped, and the executor's own
/// report is the one that counts (the deployment's processes send theirs
/// on the worker's service subject, which a client's permissions leave
/// out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_forged_by_a_client_is_not_taken() {
    use executor_host::{ExecutorFinished, executor_id};
    let Some(server) = server(None) else { return };
    let url = server.url();
    let workload = transfers(8, 1, 3, 1);
    let worker_link = client(&url).await;
    let _worker = executor_nats::serve_worker(&worker_link, 1).await.unwrap();
    let _shard = executor_nats::serve_shard(&client(&url).await, 0, 1, workload.initial.clone(), None).await.unwrap();
    let link = client(&url).await;
    let submitted = {
        let (link, workload) = (link.clone(), workload.clone());
        tokio::spawn(async move { executor_nats::submit(&link, &workload, Patience::default()).await })
    };
    // Transaction 1 is ordered once its spawn request is queued.
    let mut spawn = link.jetstream().get_stream("exec_spawn").await.unwrap();
    let waited = Instant::now();
    while spawn.info().await.unwrap().state.messages == 0 {
        assert!(waited.elapsed() < Duration::from_secs(20), "transaction 1 was not ordered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let worker = executor_nats::roles::worker_id();
    let report = ExecutorFinished {
        timestamp: 1,
        success: true,
        values_read: vec![],
        values_written: vec![(b"forged".to_vec(), b"1".to_vec())],
        failure: None,
        gas_used: 0,
        diagnostics: Default::default(),
    };
    let forged = executor_host::Envelope::new(
        executor_id(&worker, 1),
        worker.clone(),
        Message::ExecutorFinished(Arc::new(report)),
    );
    let bytes = executor_nats::wire::encode(&forged).unwrap();
    link.jetstream().publish("exec.worker", bytes.into()).await.unwrap().await.unwrap();
    let refused = || worker_link.counters().refused_from_clients.load(std::sync::atomic::Ordering::Relaxed);
    let waited = Instant::now();
    while refused() == 0 {
        assert!(waited.elapsed() < Duration::from_secs(20), "the forged report was not refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let executors = executor_nats::ExecutorsConfig {
        program: Arc::new(executor_host::NativeProgram::<transfer_guest::TransferFunction>::new(Default::default())),
        host: executor_host::HostConfig::default(),
        ack_wait: Duration::from_secs(2),
    };
    let _executors = executor_nats::serve_executors(&client(&url).await, 1, executors).await.unwrap();
    let outcome = submitted.await.unwrap().unwrap();
    assert_serial(&workload, &outcome);
    assert_eq!(refused(), 1);
}

/// A workload with a transaction too large for a message is refused
/// before any of it is sent: no transaction runs without its report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_with_a_transaction_too_large_to_send_sends_none() {
    let Some(server) = server(None) else { return };
    let url = server.url();
    let mut workload = transfers(3, 3, 5, 1);
    let _deployment = in_process::<transfer_guest::TransferFunction>(&url, &workload, Default::default()).await;
    workload.transactions[1].executable = vec![b'x'; 1 << 20];
    let link = client(&url).await;
    let error = executor_nats::submit(&link, &workload, Patience::default()).await.unwrap_err();
    assert!(matches!(error, executor_nats::NatsError::Unsendable { index: 1, .. }), "{error}");
    let mut worker_stream = link.jetstream().get_stream("exec_worker").await.unwrap();
    assert_eq!(worker_stream.info().await.unwrap().state.messages, 0, "nothing was sent");
}

/// A shard whose state does not fit in one message answers a client's
/// query in parts that add up to one snapshot: here 60,000 keys, about
/// 2.5 MB of keys and values as the wire encodes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reads_a_shard_state_larger_than_a_message() {
    let Some(server) = server(None) else { return };
    let url = server.url();
    let mut initial: std::collections::BTreeMap<Vec<u8>, Vec<u8>> =
        (0..60_000).map(|i| (format!("acct{i:05}").into_bytes(), vec![0xff; 16])).collect();
    initial.insert(b"k".to_vec(), b"0".to_vec());
    let workload = fills(initial.clone(), &["3", "5"]);
    let _deployment = in_process::<Fill>(&url, &workload, executor_host::ExecutorOptions::default()).await;
    let outcome = executor_nats::submit(&client(&url).await, &workload, Patience::default()).await.unwrap();
    assert!(outcome.transactions.iter().all(|t| t.finished.success));
    initial.insert(b"k".to_vec(), vec![0xff; 5]);
    assert!(outcome.final_state == initial, "{} keys, not {}", outcome.final_state.len(), initial.len());
    assert_eq!(outcome.pending_markers, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_started_before_the_server_wait_for_it() {
    // Each process asks at start whether another worker or shard runs; a
    // question asked before the server answers must not read as "yes".
    let Some(mut server) = reserved_server(None) else { return };
    let workload = transfers(12, 60, 8, 1);
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(&workload, dir.path());
    let common: Vec<String> = ["--nats", &server.url(), "--shards", "1"].into_iter().map(String::from).collect();
    let starting = std::thread::spawn({
        let common = common.clone();
        move || {
            let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().port();
            (
                Deployment::worker(&common),
                Deployment::shard(&common, &scenario, 0),
                Deployment::executor(&common, &format!("127.0.0.1:{port}")),
            )
        }
    });
    // Long enough for the worker to have asked, had it not waited.
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.restart().unwrap();
    let _processes = starting.join().unwrap();
    let link = client(&server.url()).await;
    assert_serial(&workload, &executor_nats::submit(&link, &workload, Patience::default()).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_subscribed_to_everything_changes_nothing() {
    // An operator watching the traffic (`nats sub '>'`) gets every query
    // the processes and `submit` ask at start, and answers none.
    let Some(server) = server(None) else { return };
    let monitor = async_nats::connect(server.url()).await.unwrap();
    let mut everything = monitor.subscribe(">").await.unwrap();
    let watched = tokio::spawn(async move {
        let mut seen = 0_u64;
        while futures_util::StreamExt::next(&mut everything).await.is_some() {
            seen += 1;
        }
        seen
    });
    let workload = transfers(13, 80, 8, 2);
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(&workload, dir.path());
    let common: Vec<String> = ["--nats", &server.url(), "--shards", "2"].into_iter().map(String::from).collect();
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().port();
    let _worker = Deployment::worker(&common);
    let _shards: Vec<ServeProcess> = (0..2).map(|i| Deployment::shard(&common, &scenario, i)).collect();
    let _executor = Deployment::executor(&common, &format!("127.0.0.1:{port}"));
    let link = client(&server.url()).await;
    assert_serial(&workload, &executor_nats::submit(&link, &workload, Patience::default()).await.unwrap());
    drop(monitor);
    watched.abort();
}

/// Starts submitting `workload` (to a worker and shard in this process;
/// its executors start only once `meddle` has returned), and, as soon as
/// the first request is in the worker's stream, calls `meddle` with a
/// link and that request as it was published. Returns what the
/// submission returned.
async fn submit_and_meddle<M, F>(workload: &Workload, meddle: M) -> Option<Result<Outcome, executor_nats::NatsError>>
where
    M: FnOnce(Arc<Link>, Vec<u8>) -> F,
    F: std::future::Future<Output = ()>,
{
    let server = server(None)?;
    let url = server.url();
    let _worker = executor_nats::serve_worker(&client(&url).await, 1).await.unwrap();
    let _shard = executor_nats::serve_shard(&client(&url).await, 0, 1, workload.initial.clone(), None).await.unwrap();
    let link = client(&url).await;
    let submitted = {
        let (link, workload) = (link.clone(), workload.clone());
        tokio::spawn(async move { executor_nats::submit(&link, &workload, Patience::default()).await })
    };
    let stream = link.jetstream().get_stream("exec_worker").await.unwrap();
    let waited = Instant::now();
    let first = loop {
        if let Ok(message) = stream.get_raw_message(1).await {
            break message.payload.to_vec();
        }
        assert!(waited.elapsed() < Duration::from_secs(20), "no request reached the worker");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    meddle(link.clone(), first).await;
    let executors = executor_nats::ExecutorsConfig {
        program: Arc::new(executor_host::NativeProgram::<transfer_guest::TransferFunction>::new(Default::default())),
        host: executor_host::HostConfig::default(),
        ack_wait: Duration::from_secs(2),
    };
    let _executors = executor_nats::serve_executors(&client(&url).await, 1, executors).await.unwrap();
    Some(submitted.await.unwrap())
}

/// A request of a client's published again without its message id (a
/// replay the server cannot recognize) runs as a second transaction. The
/// client sees its request ordered twice and says so, instead of giving
/// an outcome that is not its workload's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_published_again_ran_twice_and_the_client_says_so() {
    let workload = transfers(21, 300, 50, 1);
    let result = submit_and_meddle(&workload, |link, request| async move {
        link.jetstream().publish("exec.worker", request.into()).await.unwrap().await.unwrap();
    })
    .await;
    let Some(result) = result else { return };
    match result {
        Err(executor_nats::NatsError::RanTwice { index: 0, timestamps, others: 0 }) => {
            assert_eq!(timestamps.len(), 2);
            assert_eq!(timestamps[0], 1, "{timestamps:?}");
        }
        other => panic!("expected transaction 0 to be reported as run twice, got {other:?}"),
    }
}

/// A request forged under a client's id, in the middle of the client's
/// own, is ordered and run, but its report is not taken for one of the
/// client's: every report is matched to its request by the timestamp
/// the worker told the client, not by arrival order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_forged_under_a_clients_id_does_not_shift_its_reports() {
    let workload = transfers(22, 2_000, 100, 1);
    let result = submit_and_meddle(&workload, |link, request| async move {
        let genuine: executor_host::Envelope<Message> = executor_nats::wire::decode(&request).unwrap();
        // A transfer out of an account that does not exist: it fails and
        // writes nothing, so the final state stays the workload's.
        let keys = vec![b"forged-from".to_vec(), b"forged-to".to_vec()];
        let forged = Message::TransactionRequest {
            executable: br#"{"from":"forged-from","to":"forged-to","amount":5}"#.to_vec(),
            keys: Box::new(executor_host::KeySets {
                eager_read_keys: keys.clone(),
                will_write_keys: keys,
                ..executor_host::KeySets::default()
            }),
            resubmission: None,
            tag: None,
        };
        let forged = executor_host::Envelope::new(genuine.sender, genuine.target, forged);
        let bytes = executor_nats::wire::encode(&forged).unwrap();
        link.jetstream().publish("exec.worker", bytes.into()).await.unwrap().await.unwrap();
    })
    .await;
    let Some(result) = result else { return };
    let outcome = result.unwrap();
    assert_eq!(outcome.transactions.len(), workload.transactions.len());
    assert_serial(&workload, &outcome);
    let forged_at = (1..=2_001).find(|t| !outcome.transactions.iter().any(|tx| tx.timestamp == *t));
    assert!(
        forged_at.is_some_and(|t| t < 2_001),
        "the forged request was ordered after the client's ({forged_at:?}): the test proved nothing"
    );
}

/// A run that stalls because a shard died says which transactions were
/// not reported and which process does not answer, not only that nothing
/// moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_names_the_transactions_missing_and_the_process_that_does_not_answer() {
    let Some(server) = server(None) else { return };
    let url = server.url();
    let workload = transfers(23, 50, 20, 2);
    let _worker = executor_nats::serve_worker(&client(&url).await, 2).await.unwrap();
    let _shard0 = executor_nats::serve_shard(&client(&url).await, 0, 2, workload.initial.clone(), None).await.unwrap();
    let shard1 = executor_nats::serve_shard(&client(&url).await, 1, 2, workload.initial.clone(), None).await.unwrap();
    let link = client(&url).await;
    let submitted = {
        let (link, workload) = (link.clone(), workload.clone());
        let patience = Patience { stall: Duration::from_secs(3), settle: Duration::from_secs(1), progress: None };
        tokio::spawn(async move { executor_nats::submit(&link, &workload, patience).await })
    };
    // Once the requests are in, shard 1 dies: no executor runs yet, so
    // no transaction on its keys can finish.
    let stream = link.jetstream().get_stream("exec_worker").await.unwrap();
    let waited = Instant::now();
    while stream.get_raw_message(1).await.is_err() {
        assert!(waited.elapsed() < Duration::from_secs(20), "no request reached the worker");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(shard1);
    let executors = executor_nats::ExecutorsConfig {
        program: Arc::new(executor_host::NativeProgram::<transfer_guest::TransferFunction>::new(Default::default())),
        host: executor_host::HostConfig::default(),
        ack_wait: Duration::from_secs(2),
    };
    let _executors = executor_nats::serve_executors(&client(&url).await, 2, executors).await.unwrap();
    let error = submitted.await.unwrap().unwrap_err().to_string();
    assert!(error.contains("none for 3 s; not reported (counted from 0 in the scenario's order): "), "{error}");
    assert!(error.contains("not answering: shard-1 ("), "{error}");
    assert!(!error.contains("worker,") && !error.contains("shard-0"), "{error}");
}
