//! A deployment on one machine, as child processes: `nats-server` with
//! JetStream on a free loopback port ([`NatsServer`]) and `serve`
//! processes of the `executor-host` binary ([`ServeProcess`]). For tests,
//! benchmarks and trying a deployment out; every child is killed when its
//! handle is dropped.
//!
//! This module must not be used by a production process: it starts
//! servers with no authorization on temporary storage.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a local child could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// `nats-server` is not on the `PATH`.
    #[error("nats-server is not installed (apt-get install nats-server)")]
    NoServer,
    /// A child could not be started, or did not get ready in time.
    #[error("{0}")]
    Start(String),
}

/// A free loopback port (bound and released: another process may take it
/// in between, which the caller's start then reports).
pub fn free_port() -> Result<u16, LocalError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| LocalError::Start(format!("no free port: {e}")))
}

/// Whether `nats-server` can be run.
pub fn server_installed() -> bool {
    Command::new(server_program()).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// `nats-server` on the `PATH`, else where Debian's package puts it
/// (`/usr/sbin`, which is not on a user's `PATH` there).
fn server_program() -> &'static str {
    const DEBIAN: &str = "/usr/sbin/nats-server";
    let on_path = Command::new("nats-server").arg("--version").output().is_ok_and(|o| o.status.success());
    if !on_path && Path::new(DEBIAN).is_file() { DEBIAN } else { "nats-server" }
}

/// A `nats-server` child with JetStream, on a loopback port, its store in
/// a temporary directory that lives as long as the handle.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
    config: Option<PathBuf>,
}

impl NatsServer {
    /// Starts one, with the configuration file `config` if given (its
    /// `listen` and store directory are overridden).
    pub fn start(config: Option<&Path>) -> Result<Self, LocalError> {
        let mut server = Self::reserve(config)?;
        server.restart()?;
        Ok(server)
    }

    /// One not started yet: its port and URL are chosen, and
    /// [`NatsServer::restart`] starts it (to start processes before their
    /// server, as a deployment may).
    pub fn reserve(config: Option<&Path>) -> Result<Self, LocalError> {
        if !server_installed() {
            return Err(LocalError::NoServer);
        }
        let port = free_port()?;
        let store = std::env::temp_dir().join(format!("executor-nats-{}-{port}", std::process::id()));
        Ok(Self { child: None, port, store, config: config.map(Into::into) })
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL), if it runs, and starts it again on the
    /// same port and store: streams and consumers survive, connections do
    /// not.
    pub fn restart(&mut self) -> Result<(), LocalError> {
        self.kill();
        let mut command = Command::new(server_program());
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        command
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(command.spawn().map_err(|e| LocalError::Start(format!("nats-server: {e}")))?);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                return Err(LocalError::Start("nats-server did not start listening in 20 s".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// A `serve` process of the `executor-host` binary at `binary`, started
/// and waited for until it prints its `ready:` line.
#[derive(Debug)]
pub struct ServeProcess {
    child: Child,
}

impl ServeProcess {
    /// Runs `binary serve <args>` with `env` added to its environment.
    pub fn start(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Self, LocalError> {
        let mut child = Command::new(binary)
            .arg("serve")
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| LocalError::Start(format!("{}: {e}", binary.display())))?;
        let stdout = child.stdout.take().ok_or_else(|| LocalError::Start("no stdout".into()))?;
        let (ready, said) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("ready:") {
                    let _ = ready.send(line);
                }
            }
        });
        let mut process = Self { child };
        if said.recv_timeout(Duration::from_secs(60)).is_err() {
            process.kill();
            return Err(LocalError::Start(format!("`serve {}` did not get ready in 60 s", args.join(" "))));
        }
        Ok(process)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the process ended, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL: the process dies with whatever it holds.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
