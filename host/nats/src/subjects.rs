//! Where each engine is reached: NATS subjects and JetStream stream names,
//! all under one namespace (so several deployments can share a server).
//!
//! An engine's name maps to a subject by turning `/` into `.`: the worker
//! `worker` is `<ns>.worker`, shard `shard-0` is `<ns>.shard-0`, the
//! executor `executor/worker/7` is `<ns>.executor.worker.7`, and a client
//! `client/<id>` is `<ns>.client.<id>`. Names are restricted to letters,
//! digits, `-`, `_` and `/`, so no name can contain a wildcard or reach
//! another engine's subject.
//!
//! An engine's own subject is where clients reach it (only the worker
//! takes anything from a client: its transaction requests); the processes
//! of the deployment send it their persistent messages (over JetStream:
//! those whose loss would leave a lock pending) on `<ns>.service.<name>`,
//! which a client's permissions leave out, so that a client cannot pass
//! for an executor or a shard. Besides those: `<ns>.direct.<name>`
//! (plain NATS, for retried read requests), `<ns>.query.<name>` (read-only
//! state queries), and `<ns>.spawn` (the work queue of spawn requests).
//!
//! This module must not do I/O.

use executor_host::EngineId;

/// The subjects and stream names of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    ns: String,
}

/// A name that cannot be mapped to a subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} cannot name a NATS subject: use letters, digits, '-', '_' (and '/' inside engine names)")]
pub struct BadName(pub String);

fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

impl Subjects {
    /// The subjects under namespace `ns` (letters, digits, `-`, `_`).
    pub fn new(ns: &str) -> Result<Self, BadName> {
        if ns.is_empty() || !ns.chars().all(token_char) {
            return Err(BadName(ns.to_owned()));
        }
        Ok(Self { ns: ns.to_owned() })
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// The dotted form of an engine's name, or why it has none. Engines on
    /// a named node are not reachable over NATS (every engine here is
    /// addressed by name alone).
    fn tokens(id: &EngineId) -> Result<String, BadName> {
        let name = &*id.name;
        let valid = id.node.is_none()
            && !name.is_empty()
            && name.split('/').all(|token| !token.is_empty() && token.chars().all(token_char));
        if valid { Ok(name.replace('/', ".")) } else { Err(BadName(id.to_string())) }
    }

    /// The engine's own subject.
    pub fn engine(&self, id: &EngineId) -> Result<String, BadName> {
        Ok(format!("{}.{}", self.ns, Self::tokens(id)?))
    }

    /// The engine's subject for persistent messages from the deployment's
    /// own processes (shards, the worker, executors), not clients.
    pub fn service(&self, id: &EngineId) -> Result<String, BadName> {
        Ok(format!("{}.service.{}", self.ns, Self::tokens(id)?))
    }

    /// The engine's subject for messages whose loss is repaired by a retry.
    pub fn direct(&self, id: &EngineId) -> Result<String, BadName> {
        Ok(format!("{}.direct.{}", self.ns, Self::tokens(id)?))
    }

    /// The engine's subject for state queries.
    pub fn query(&self, id: &EngineId) -> Result<String, BadName> {
        Ok(format!("{}.query.{}", self.ns, Self::tokens(id)?))
    }

    /// The stream that keeps the engine's messages (`<NS>_<name>`).
    pub fn stream(&self, id: &EngineId) -> Result<String, BadName> {
        Ok(format!("{}_{}", self.ns, Self::tokens(id)?.replace('.', "_")))
    }

    /// The work queue of spawn requests.
    pub fn spawn(&self) -> String {
        format!("{}.spawn", self.ns)
    }

    /// The stream of spawn requests.
    pub fn spawn_stream(&self) -> String {
        format!("{}_spawn", self.ns)
    }

    /// Every client's subject (`client/<id>` engines).
    pub fn clients(&self) -> String {
        format!("{}.client.>", self.ns)
    }

    /// The one stream all clients' reports go to.
    pub fn clients_stream(&self) -> String {
        format!("{}_clients", self.ns)
    }

    /// Whether `id` is an executor (reached by plain NATS on a
    /// per-executor subscription, not through a stream).
    pub fn is_executor(id: &EngineId) -> bool {
        id.name.starts_with("executor/")
    }

    /// Whether `id` is a client (its reports go to the shared clients
    /// stream).
    pub fn is_client(id: &EngineId) -> bool {
        id.name.starts_with("client/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_subjects_and_wildcards_cannot() -> Result<(), BadName> {
        let s = Subjects::new("exec")?;
        assert_eq!(s.engine(&EngineId::local("executor/worker/7"))?, "exec.executor.worker.7");
        assert_eq!(s.direct(&EngineId::local("shard-0"))?, "exec.direct.shard-0");
        assert_eq!(s.stream(&EngineId::local("client/ab"))?, "exec_client_ab");
        for bad in ["", "a.b", "*", ">", "a b", "a//b", "/a", "é"] {
            assert!(s.engine(&EngineId::local(bad)).is_err(), "{bad:?}");
        }
        let remote = EngineId { node: Some("n".into()), name: "worker".into() };
        assert!(s.engine(&remote).is_err());
        assert!(Subjects::new("a.b").is_err());
        Ok(())
    }
}
