//! `serve` and `submit`: the processes of a deployment over NATS, and its
//! client. The machinery is the `executor-nats` crate's; this module turns
//! flags and the `[nats]` configuration into its calls.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use executor_host::{HostConfig, Program};
use executor_nats::{ExecutorsConfig, Link, NatsConfig, Patience, Served};
use executor_testkit::harness::MAX_SHARDS;
use executor_testkit::scenario::Scenario;

use crate::config::Config;
use crate::{GuestArgs, OutputArg, emit};

/// Where the deployment is: flags over the `[nats]` configuration.
#[derive(clap::Args)]
pub struct NatsArgs {
    /// The NATS server (default: `nats.url` of the configuration).
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// The user of this process's role (default: `nats.user`). The
    /// password is read from `EXECUTOR_HOST_NATS_PASSWORD`.
    #[arg(long, value_name = "USER")]
    nats_user: Option<String>,
    /// The deployment's namespace (default: `nats.namespace`).
    #[arg(long, value_name = "NAME")]
    namespace: Option<String>,
}

impl NatsArgs {
    fn resolve(self, config: &Config, role: &str, wait_for_server: bool) -> NatsConfig {
        NatsConfig {
            wait_for_server,
            url: self.nats.unwrap_or_else(|| config.nats.url.clone()),
            user: self.nats_user.or_else(|| config.nats.user.clone()),
            password: std::env::var("EXECUTOR_HOST_NATS_PASSWORD").ok(),
            namespace: self.namespace.unwrap_or_else(|| config.nats.namespace.clone()),
            name: format!("executor-host {role}"),
        }
    }
}

/// What every `serve` takes.
#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// How many shards the deployment has (1 to 1024): every process must
    /// agree.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_SHARDS as u64))]
    shards: usize,
    /// Serve `/metrics` (Prometheus) and `/health` on this address.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
}

/// The processes of a deployment.
#[derive(clap::Subcommand)]
pub enum Role {
    /// A reference shard (in memory), optionally with executors in the
    /// same process.
    Shard {
        /// Which shard (from 0).
        #[arg(long)]
        id: usize,
        /// Load the shard's keys of this scenario's `initial` state.
        #[arg(long, value_name = "FILE")]
        scenario: Option<PathBuf>,
        /// Also host executors here (co-located with the shard), taking
        /// spawn requests like any executor host; name their `--guest` or
        /// `--native` function.
        #[arg(long)]
        with_executors: bool,
        #[command(flatten)]
        guest: GuestArgs,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// The mempool worker: orders transactions and queues their spawns.
    Worker {
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// An executor host: runs the transactions it takes from the spawn
    /// queue with one guest. Start several to share the load.
    Executor {
        #[command(flatten)]
        guest: GuestArgs,
        #[command(flatten)]
        serve: ServeArgs,
    },
}

/// `submit`'s arguments.
#[derive(clap::Args)]
pub struct SubmitArgs {
    /// The scenario whose transactions to submit (its `initial` state is
    /// the shards' to load: `serve shard --scenario`).
    #[arg(long)]
    scenario: PathBuf,
    #[command(flatten)]
    nats: NatsArgs,
    /// Give up when no transaction finished for this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    stall: u64,
    /// Exit with status 1 when any transaction failed.
    #[arg(long)]
    fail_on_failure: bool,
    #[command(flatten)]
    output: OutputArg,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the tokio runtime")
}

fn read_scenario(path: &std::path::Path) -> Result<(Scenario, String)> {
    let text = crate::read_scenario_text(path)?;
    let scenario = Scenario::from_json(&text).with_context(|| format!("{} is not a valid scenario", path.display()))?;
    Ok((scenario, text))
}

/// Runs one process of the deployment until it is interrupted.
pub fn serve(role: Role, config: &Config) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let served = match role {
            Role::Shard { id, scenario, with_executors, guest, serve } => {
                if !with_executors && (guest.guest.is_some() || guest.native.is_some()) {
                    bail!(
                        "--guest and --native name the function of executors co-located with the shard: add \
                         --with-executors, or leave them out"
                    );
                }
                // What the arguments name is read before the server is
                // waited for: a mistyped path is said at once.
                let (initial, shards) = match scenario {
                    Some(path) => {
                        let (scenario, _) = read_scenario(&path)?;
                        if scenario.shards != serve.shards {
                            bail!(
                                "{} is for {} shards, and --shards says {}: every process must agree",
                                path.display(),
                                scenario.shards,
                                serve.shards
                            );
                        }
                        (scenario.into_workload().initial, serve.shards)
                    }
                    None => (Default::default(), serve.shards),
                };
                let executors = if with_executors { Some(executors_config(&guest, config)?) } else { None };
                let link = connect(serve.nats, config, &format!("shard {id}"), true).await?;
                let served = executor_nats::serve_shard(&link, id, shards, initial, executors).await?;
                announce(&format!("shard {id} of {shards}"), served, serve.metrics)?
            }
            Role::Worker { serve } => {
                let link = connect(serve.nats, config, "worker", true).await?;
                let served = executor_nats::serve_worker(&link, serve.shards).await?;
                let shards = match serve.shards {
                    1 => "1 shard".to_owned(),
                    n => format!("{n} shards"),
                };
                announce(&format!("worker of {shards}"), served, serve.metrics)?
            }
            Role::Executor { guest, serve } => {
                let executors = executors_config(&guest, config)?;
                let link = connect(serve.nats, config, "executor", true).await?;
                let served = executor_nats::serve_executors(&link, serve.shards, executors).await?;
                announce("executor host", served, serve.metrics)?
            }
        };
        tokio::select! {
            () = served.wait() => bail!("a task of the process ended (the log above says why)"),
            () = interrupted() => Ok(ExitCode::SUCCESS),
        }
    })
}

/// Connects as `role`. A `serve` waits for a server not up yet (the
/// processes of a deployment start in any order); `submit` has a user
/// waiting, who should hear at once that no server answers there.
async fn connect(args: NatsArgs, config: &Config, role: &str, wait_for_server: bool) -> Result<Arc<Link>> {
    let nats = args.resolve(config, role, wait_for_server);
    tracing::info!(url = nats.url, namespace = nats.namespace, role, "connecting");
    Link::connect(&nats).await.with_context(|| format!("connecting to {}", nats.url))
}

/// Starts the metrics endpoint if asked, and says on stdout that the
/// process is ready (scripts and tests wait for that line).
fn announce(what: &str, served: Served, metrics: Option<SocketAddr>) -> Result<Served> {
    let endpoint = match metrics {
        Some(addr) => {
            let bound =
                served.metrics.clone().serve_http(addr).with_context(|| format!("serving metrics on {addr}"))?;
            format!(" (metrics on http://{bound}/metrics)")
        }
        None => String::new(),
    };
    emit(&format!("ready: {what}{endpoint}\n"))?;
    Ok(served)
}

/// Ctrl-C, or SIGTERM on Unix.
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn executors_config(guest: &GuestArgs, config: &Config) -> Result<ExecutorsConfig> {
    // A production host: `serve` has no `--dev`, so a debug build is refused.
    let program: Arc<dyn Program> = crate::program(guest, config, false)?;
    Ok(ExecutorsConfig {
        program,
        host: HostConfig { executor: config.executor.clone(), ..HostConfig::default() },
        ack_wait: config.nats.ack_wait,
    })
}

/// Submits a scenario's transactions and prints the report `run` prints.
pub fn submit(args: SubmitArgs, config: &Config) -> Result<ExitCode> {
    let (scenario, text) = read_scenario(&args.scenario)?;
    if let Ok(serde_json::Value::Object(file)) = serde_json::from_str::<serde_json::Value>(&text)
        && let Some(serde_json::Value::Object(options)) = file.get("options")
        && !options.is_empty()
    {
        let keys: Vec<&str> = options.keys().map(String::as_str).collect();
        tracing::warn!(
            "the scenario's options ({}) are not applied: a deployment's executor hosts take theirs from their own \
             configuration (`[executor]` of their --config)",
            keys.join(", ")
        );
    }
    let workload = scenario.into_workload();
    let bar = crate::output::progress_bar(workload.transactions.len());
    let progress = bar
        .clone()
        .map(|bar| Arc::new(move |done: usize| bar.set_position(done as u64)) as Arc<dyn Fn(usize) + Send + Sync>);
    let patience = Patience { stall: Duration::from_secs(args.stall), progress, ..Patience::default() };
    let started = Instant::now();
    let outcome = runtime()?.block_on(async {
        let link = connect(args.nats, config, "submit", false).await?;
        executor_nats::submit(&link, &workload, patience).await.context("submitting the scenario")
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let outcome = outcome?;
    crate::print_outcome(outcome, started.elapsed(), args.output.resolve(), args.fail_on_failure)
}
