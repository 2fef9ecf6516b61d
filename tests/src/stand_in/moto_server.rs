//! A moto server process of our own on a free loopback port.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const READY_POLL: Duration = Duration::from_millis(100);
const START_ATTEMPTS: usize = 3;

#[derive(Debug)]
pub struct MotoServer {
    // kill_on_drop: dropping the server (also while a test unwinds) kills moto.
    _child: Child,
    port: u16,
}

impl MotoServer {
    /// Starts moto and waits until it accepts connections. `log` receives its output.
    pub async fn start(log: PathBuf) -> anyhow::Result<Self> {
        Self::start_with(log, None).await
    }

    /// Starts moto with its IAM access control on: after the first
    /// `unchecked_actions` requests (enough to make a first user and its key),
    /// every request must be signed by a moto identity whose policies allow
    /// it. moto checks identity policies, not resource policies, and reads a
    /// policy variable such as `${aws:userid}` as plain text.
    pub async fn start_with_access_control(
        log: PathBuf,
        unchecked_actions: u32,
    ) -> anyhow::Result<Self> {
        Self::start_with(log, Some(unchecked_actions)).await
    }

    async fn start_with(log: PathBuf, unchecked_actions: Option<u32>) -> anyhow::Result<Self> {
        let binary = moto_binary();
        let mut last_error = None;
        // Another process may take the free port between our probe and moto's bind;
        // a new port fixes that.
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(&binary, &log, unchecked_actions).await {
                Ok(server) => return Ok(server),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("moto never started")))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn start_once(
        binary: &PathBuf,
        log: &PathBuf,
        unchecked_actions: Option<u32>,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("creating moto log {}", log.display()))?;
        let mut command = Command::new(binary);
        if let Some(count) = unchecked_actions {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", count.to_string());
        }
        let mut child = command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (install it with: python3 -m venv .venv && \
                     .venv/bin/pip install \"moto[server]==5.2.5\")",
                    binary.display()
                )
            })?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "moto exited with {status} before serving; see {}",
                    log.display()
                );
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(Self {
                    _child: child,
                    port,
                });
            }
            if Instant::now() >= deadline {
                bail!(
                    "moto did not listen on port {port} within {READY_TIMEOUT:?}; see {}",
                    log.display()
                );
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }
}

/// MOTO_SERVER if set, else the workspace's .venv, else moto_server on PATH.
fn moto_binary() -> PathBuf {
    if let Some(explicit) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(explicit);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("moto_server")
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}
