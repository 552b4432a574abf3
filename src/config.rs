//! The configuration file (`--config <file.toml>`): sandbox limits, executor
//! options and the CLI's own host settings, and how it is merged with a
//! scenario's options and the command line.
//!
//! Precedence, lowest first: the library's defaults, the file, a scenario's
//! `options` (for `run`), command-line flags.

use std::fmt::Write as _;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};

use executor_host::{ExecutorOptions, SandboxConfig};

/// The module store used when neither `--store` nor `host.store` is given.
pub const DEFAULT_STORE: &str = "executor-store";

/// Everything `--config` can set. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The wasm sandbox every guest runs in.
    pub sandbox: SandboxConfig,
    /// The options of every transaction (`run`), below a scenario's own.
    pub executor: ExecutorOptions,
    /// How this command runs.
    pub host: HostSettings,
    /// How `serve` and `submit` reach the deployment.
    pub nats: NatsSettings,
}

/// How `serve` and `submit` reach a deployment over NATS. The password is
/// never in this file: it is read from the environment variable
/// `EXECUTOR_HOST_NATS_PASSWORD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSettings {
    /// The server.
    pub url: String,
    /// The user of this process's role (`shard`, `worker`, `executor`,
    /// `submit` in the example server configuration). Omitted: none.
    pub user: Option<String>,
    /// Every subject and stream of the deployment starts with this.
    pub namespace: String,
    /// How long an executor host may hold a spawn request without news
    /// before another host gets it.
    pub ack_wait: std::time::Duration,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            user: None,
            namespace: "exec".into(),
            ack_wait: std::time::Duration::from_secs(30),
        }
    }
}

/// The CLI's own settings: how `run` delivers messages and where deployed
/// guests live. (Not the library's `HostConfig`: the harness `run` uses
/// builds its host itself, with an unbounded inbox, and takes only a
/// thread count and a window of transactions in flight.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostSettings {
    /// The module store directory, relative to the current directory.
    pub store: PathBuf,
    /// Threads of a concurrent run (the harness's `Delivery::ClosedLoop`).
    /// Omitted: one per core.
    pub threads: Option<NonZeroUsize>,
    /// Deliver messages on one thread in an order drawn from this seed.
    /// Omitted: concurrent delivery.
    pub seed: Option<u64>,
    /// Transactions a concurrent run keeps submitted and not finished, at
    /// most: what is in flight (executors, the shards' pending versions)
    /// follows this; the reports, one per transaction, are kept to the
    /// end. By default 10,000.
    pub in_flight: NonZeroUsize,
    /// The longest a guest may take to compile (in a child process, before
    /// this one compiles it: see `src/compile.rs`). By default 60 s.
    pub compile_time: std::time::Duration,
    /// The most resident memory compiling a guest may take, in bytes. By
    /// default 4 GiB.
    pub compile_memory_bytes: u64,
}

/// The default of [`HostSettings::in_flight`].
pub const IN_FLIGHT: NonZeroUsize = match NonZeroUsize::new(10_000) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

impl Default for HostSettings {
    fn default() -> Self {
        Self {
            store: PathBuf::from(DEFAULT_STORE),
            threads: None,
            seed: None,
            in_flight: IN_FLIGHT,
            compile_time: std::time::Duration::from_secs(60),
            compile_memory_bytes: 4 << 30,
        }
    }
}

impl Config {
    /// Reads and parses `path`; every error is one line naming the file
    /// and, for a bad key or value, its path in the file.
    pub fn load(path: &Path) -> Result<Self> {
        // Far beyond any configuration; a device or pipe without end is
        // refused instead of read until memory runs out.
        let text = crate::read_text(path, 1 << 20, "the configuration file ")?;
        Self::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
    }

    /// Parses a configuration, refusing unknown keys and values of the
    /// wrong type with the key's path (`sandbox.limits.memory_bytes: ...`)
    /// and its line and column.
    pub fn parse(text: &str) -> Result<Self, String> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| describe(text, &e))?;
        let config: Self = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let mut message = describe(text, e.inner());
            if message.contains("struct Duration") {
                message.push_str(" (write a duration as { secs = 30, nanos = 0 })");
            }
            match e.path().to_string() {
                path if path == "." => message,
                path => format!("{path}: {message}"),
            }
        })?;
        if config.nats.ack_wait.is_zero() {
            // JetStream takes 0 for "its default" (30 s), while the host
            // would report progress as if it had none.
            return Err("nats.ack_wait: must be longer than zero".into());
        }
        Ok(config)
    }

    /// The configuration as a commented TOML document, which
    /// [`Config::parse`] reads back to the same value.
    pub fn to_toml(&self) -> Result<String> {
        let table = toml::Table::try_from(self).context("serializing the configuration")?;
        let mut out = String::from(HEADER);
        for (key, value) in &table {
            let toml::Value::Table(section) = value else {
                return Err(anyhow!("configuration section {key} is not a table"));
            };
            out.push('\n');
            render_section(key, section, &mut out)?;
        }
        Ok(out)
    }
}

/// A TOML error in one line: its message, and where it is when known.
fn describe(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().split_whitespace().collect::<Vec<_>>().join(" ");
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("{message} at line {line} column {column}")
        }
        None => message,
    }
}

const HEADER: &str = "\
# executor-host configuration, for `executor-host --config <file.toml>`.
# Every key is optional: an omitted key keeps the default shown here.
# Precedence: defaults < this file < a scenario's \"options\" < command-line flags.
# Durations are written { secs = <seconds>, nanos = <nanoseconds> }.
";

/// The comment line above each section.
fn comment(path: &str) -> Option<&'static str> {
    Some(match path {
        "sandbox" => {
            "# [sandbox]: the wasm sandbox (SandboxConfig): instance pool slots, epoch tick, wasm stack in bytes, \
             the largest component loaded (bytes, functions)."
        }
        "sandbox.limits" => {
            "# [sandbox.limits]: per guest call (Limits): memory, sizes in bytes; call_time bounds its wall clock."
        }
        "executor" => {
            "# [executor]: every transaction (ExecutorOptions): write_mode = \"streaming\" | \"atomic\", \
             access_mode = \"strict\" | \"lenient\"; step_trace = true records every step (`run` prints it)."
        }
        "host" => {
            "# [host]: how `run` delivers messages, the module store (relative to the current directory), and the \
             bounds on compiling a guest."
        }
        "nats" => {
            "# [nats]: how `serve` and `submit` reach the deployment; the password comes from EXECUTOR_HOST_NATS_PASSWORD."
        }
        _ => return None,
    })
}

/// Optional keys of a section, shown commented out when unset.
fn unset_hints(path: &str) -> &'static [(&'static str, &'static str)] {
    match path {
        "host" => &[
            ("threads", "# threads = 2    # threads of a concurrent run (omitted: one per core)"),
            ("seed", "# seed = 1       # deterministic delivery drawn from this seed (omitted: concurrent)"),
        ],
        "executor" => &[
            (
                "resend",
                "# resend = { secs = 0, nanos = 500000000 }   # re-ask shards for missing values (omitted: never; serve: 500 ms)",
            ),
            (
                "report_bytes",
                "# report_bytes = 491520   # most bytes of keys and values a transaction's report carries (omitted: no bound; serve: at most 491520)",
            ),
        ],
        "nats" => {
            &[("user", "# user = \"worker\"    # this process's role in the server's authorization (omitted: none)")]
        }
        _ => &[],
    }
}

/// Whether a table is written as a `[section]` of its own rather than
/// inline (`{ secs = 1, nanos = 0 }`): when it holds a table itself.
fn is_section(value: &toml::Value) -> bool {
    matches!(value, toml::Value::Table(t) if t.values().any(|v| matches!(v, toml::Value::Table(_))))
}

fn render_section(path: &str, table: &toml::Table, out: &mut String) -> Result<()> {
    if let Some(comment) = comment(path) {
        writeln!(out, "{comment}")?;
    }
    writeln!(out, "[{path}]")?;
    for (key, value) in table.iter().filter(|(_, v)| !is_section(v)) {
        writeln!(out, "{key} = {value}")?;
    }
    for (key, hint) in unset_hints(path) {
        if !table.contains_key(*key) {
            writeln!(out, "{hint}")?;
        }
    }
    for (key, value) in table.iter().filter(|(_, v)| is_section(v)) {
        if let toml::Value::Table(sub) = value {
            out.push('\n');
            render_section(&format!("{path}.{key}"), sub, out)?;
        }
    }
    Ok(())
}

/// The executor options of a run: the file's, then each option the
/// scenario's `options` object names (the scenario file is already
/// validated, so its options parse), then `--gas-limit`.
pub fn executor_options(file: &ExecutorOptions, scenario: &str, gas_limit: Option<u64>) -> Result<ExecutorOptions> {
    /// Only the scenario's `options`: the transactions are skipped, not
    /// built into a tree (a large scenario would be in memory again).
    #[derive(serde::Deserialize)]
    struct OptionsOnly {
        #[serde(default)]
        options: Option<serde_json::Value>,
    }
    let mut merged = serde_json::to_value(file).context("serializing the executor options")?;
    // The scenario parsed, so a byte-order mark before it was skipped there.
    let scenario = scenario.strip_prefix('\u{feff}').unwrap_or(scenario);
    let scenario: OptionsOnly = serde_json::from_str(scenario).context("reading the scenario's options")?;
    if let (Some(merged), Some(serde_json::Value::Object(options))) = (merged.as_object_mut(), scenario.options) {
        merged.extend(options);
    }
    let mut options: ExecutorOptions = serde_json::from_value(merged).context("the scenario's options")?;
    if let Some(gas_limit) = gas_limit {
        options.gas_limit = gas_limit;
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_document_reads_back_to_the_defaults() {
        let text = Config::default().to_toml().unwrap();
        assert_eq!(Config::parse(&text).unwrap(), Config::default(), "{text}");
        assert!(text.contains("deadline = { secs = 30, nanos = 0 }"), "{text}");
        // Each hint is a setting that reads back, with the value `serve` uses.
        for (key, hint) in unset_hints("executor") {
            let line = hint.trim_start_matches("# ").split("   #").next().unwrap_or_default();
            let options: ExecutorOptions = toml::from_str(line).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_ne!(options, ExecutorOptions::default(), "{key}");
        }
        let bound = executor_nats::wire::REPORT_BYTES;
        assert!(text.contains(&format!("# report_bytes = {bound} ")), "{text}");
        assert!(text.contains(&format!("serve: at most {bound})")), "{text}");
    }

    #[test]
    fn errors_name_the_key_and_where_it_is() {
        let err = Config::parse("[sandbox.limits]\nmemory_bytes = \"x\"\n").unwrap_err();
        assert_eq!(err, "sandbox.limits.memory_bytes: invalid type: string \"x\", expected u64 at line 2 column 16");
        let err = Config::parse("[executor]\ngas = 3\n").unwrap_err();
        assert!(err.starts_with("executor.gas: unknown field `gas`"), "{err}");
        let err = Config::parse("[nope]\n").unwrap_err();
        assert!(err.starts_with("nope: unknown field `nope`"), "{err}");
        let err = Config::parse("[nats]\nack_wait = { secs = 0, nanos = 0 }\n").unwrap_err();
        assert_eq!(err, "nats.ack_wait: must be longer than zero");
    }

    #[test]
    fn scenario_options_beat_the_file_and_the_flag_beats_both() {
        let file = ExecutorOptions { gas_limit: 5, linger: std::time::Duration::from_secs(9), ..Default::default() };
        let scenario = r#"{"options": {"gas_limit": 7, "write_mode": "atomic"}, "transactions": []}"#;
        let merged = executor_options(&file, scenario, None).unwrap();
        assert_eq!(merged.gas_limit, 7);
        assert_eq!(merged.linger, std::time::Duration::from_secs(9));
        assert_eq!(merged.write_mode, executor_host::WriteMode::Atomic);
        assert_eq!(executor_options(&file, scenario, Some(11)).unwrap().gas_limit, 11);
    }
}
