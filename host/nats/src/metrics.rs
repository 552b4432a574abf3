//! What a `serve` process shows on its local HTTP port: `/metrics` in the
//! Prometheus text format (the runtimes' and executors' counters, and what
//! crossed the NATS connection) and `/health` (200 while connected to
//! NATS, 503 otherwise).
//!
//! This module must not change anything it reports on: it only reads
//! counters.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use executor_host::{DropReason, ExecutorHost, RuntimeMetrics};

use crate::NatsError;
use crate::link::Link;

/// The counters one process reports.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    link: Option<Arc<Link>>,
    runtimes: Vec<(&'static str, Arc<RuntimeMetrics>)>,
    executors: Option<ExecutorHost>,
}

impl Metrics {
    pub(crate) fn new(link: Arc<Link>) -> Self {
        Self { link: Some(link), ..Self::default() }
    }

    pub(crate) fn runtime(&mut self, role: &'static str, metrics: Arc<RuntimeMetrics>) {
        self.runtimes.push((role, metrics));
    }

    pub(crate) fn executors(&mut self, host: ExecutorHost) {
        self.runtimes.push(("executors", host.runtime().metrics().clone()));
        self.executors = Some(host);
    }

    pub(crate) fn merge(&mut self, other: Metrics) {
        self.runtimes.extend(other.runtimes);
        self.executors = self.executors.take().or(other.executors);
        self.link = self.link.take().or(other.link);
    }

    /// Whether the process is connected to NATS.
    pub fn healthy(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.connected())
    }

    /// The counters in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, help: &str, kind: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP executor_host_{name} {help}\n# TYPE executor_host_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "executor_host_{name}{labels} {value}");
            }
        };
        if let Some(link) = &self.link {
            let c = link.counters();
            let counters = [
                ("nats_received_total", "Messages received from NATS.", &c.received),
                ("nats_sent_total", "Messages sent to NATS.", &c.sent),
                ("nats_malformed_total", "Received payloads that were not a valid message.", &c.malformed),
                ("nats_wrong_target_total", "Received messages for an engine not hosted here.", &c.wrong_target),
                (
                    "nats_refused_from_clients_total",
                    "Messages on a client subject that were not a transaction request.",
                    &c.refused_from_clients,
                ),
                ("nats_unsendable_total", "Messages that could not be sent.", &c.unsendable),
                ("nats_retries_total", "Persistent publishes tried again.", &c.retries),
                ("nats_redeliveries_total", "Spawn requests delivered more than once.", &c.redeliveries),
                ("nats_reconnects_total", "Stream consumers re-created after an error.", &c.reconnects),
            ];
            for (name, help, counter) in counters {
                metric(name, help, "counter", &[(String::new(), counter.load(Ordering::Relaxed))]);
            }
            metric(
                "nats_connected",
                "1 while connected to NATS.",
                "gauge",
                &[(String::new(), u64::from(link.connected()))],
            );
        }
        type Read = fn(&RuntimeMetrics) -> u64;
        let runtime: [(&str, &str, &str, Read); 7] = [
            ("engines", "Engines hosted.", "gauge", RuntimeMetrics::engines),
            ("handled_total", "Triggers handled.", "counter", RuntimeMetrics::handled),
            ("unknown_target_total", "Envelopes for no hosted engine.", "counter", RuntimeMetrics::unknown_target),
            ("mailbox_full_total", "Envelopes dropped on a full mailbox.", "counter", RuntimeMetrics::mailbox_full),
            ("screened_total", "Envelopes dropped on arrival.", "counter", RuntimeMetrics::screened),
            (
                "duplicate_spawns_total",
                "Spawns of an engine already hosted.",
                "counter",
                RuntimeMetrics::duplicate_spawns,
            ),
            ("panicked_total", "Engines removed after a panic.", "counter", RuntimeMetrics::panicked),
        ];
        for (name, help, kind, read) in runtime {
            let samples: Vec<(String, u64)> =
                self.runtimes.iter().map(|(role, m)| (format!("{{role=\"{role}\"}}"), read(m))).collect();
            metric(name, help, kind, &samples);
        }
        if let Some(host) = &self.executors {
            let m = host.metrics();
            metric(
                "transactions_finished_total",
                "Transactions finished.",
                "counter",
                &[(String::new(), m.finished())],
            );
            metric("transactions_failed_total", "Transactions failed.", "counter", &[(String::new(), m.failed())]);
            metric("gas_used_total", "Gas used by finished transactions.", "counter", &[(String::new(), m.gas_used())]);
            let drops: Vec<(String, u64)> = DropReason::ALL
                .iter()
                .map(|r| (format!("{{reason=\"{}\"}}", format!("{r:?}").to_lowercase()), m.dropped(*r)))
                .collect();
            metric("executor_dropped_total", "Triggers executors dropped, by reason.", "counter", &drops);
        }
        out
    }

    /// Serves `/metrics` and `/health` on `addr` from a thread of its own.
    /// Returns the address bound (port 0 picks a free one).
    pub fn serve_http(self, addr: SocketAddr) -> Result<SocketAddr, NatsError> {
        let server = tiny_http::Server::http(addr).map_err(|e| NatsError::Metrics(e.to_string()))?;
        let bound = server.server_addr().to_ip().ok_or_else(|| NatsError::Metrics("not an IP address".into()))?;
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for request in server.incoming_requests() {
                    let (status, body) = match request.url() {
                        "/metrics" => (200, self.render()),
                        "/health" if self.healthy() => (200, "ok\n".to_owned()),
                        "/health" => (503, "not connected to NATS\n".to_owned()),
                        _ => (404, "not found: try /metrics or /health\n".to_owned()),
                    };
                    let response = tiny_http::Response::from_string(body).with_status_code(status);
                    let _ = request.respond(response);
                }
            })
            .map_err(|e| NatsError::Metrics(e.to_string()))?;
        Ok(bound)
    }
}
