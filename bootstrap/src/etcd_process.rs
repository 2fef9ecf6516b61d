//! Runs etcd as a child: passes its output through, forwards signals, watches
//! readiness and quorum, and reports how it ended.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use etcd_aws_core::contract::events;
use etcd_aws_core::etcd::disk::PrunePolicy;
use etcd_aws_core::etcd::launch::{EtcdLaunch, Upkeep};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::task::JoinHandle;

use crate::ca_trust_watch::TrustWatch;
use crate::order_watch::OrderWatch;
use crate::policy::EtcdExit;
use crate::quorum_watch::QuorumWatch;
use crate::readiness::{Readiness, ReadinessError};
use crate::signals::Signals;

/// How etcd is started, from the agent's flags.
#[derive(Debug, Clone)]
pub struct EtcdSettings {
    /// The etcd binary (a path, or a name looked up on PATH).
    pub binary: PathBuf,
    pub data_dir: PathBuf,
    /// What of the data directories moved aside beside it is kept.
    pub moved_aside: PrunePolicy,
    pub client_port: u16,
    pub peer_port: u16,
    pub metrics_port: u16,
    pub upkeep: Upkeep,
    /// Flags after `--`, passed to etcd unchanged (last, so they win).
    pub extra_args: Vec<String>,
}

/// What etcd says, in its fatal log line, when its initial corruption check
/// finds its data differs from its peers' at the same revision
/// (`InitialCheck` in etcd's `corrupt.go`). etcd exits with status 1 like any
/// other failure, so its words are the only sign; the corruption scenario
/// pins them against the real etcd.
const DIVERGENCE_VERDICT: &str = "found data inconsistency with peers";

/// How many of etcd's last output lines are kept for the report of a failure.
const TAIL_LINES: usize = 20;
/// A kept line is cut to this many characters (etcd's JSON lines can be long).
const TAIL_LINE_CHARS: usize = 500;

/// How etcd ended, and the last lines it wrote (for an operator's report).
#[derive(Debug)]
pub struct Supervised {
    pub exit: EtcdExit,
    pub last_lines: Vec<String>,
}

pub async fn run(
    binary: &std::path::Path,
    launch: &EtcdLaunch,
    readiness: Readiness,
    watch: &QuorumWatch,
    orders: Option<&OrderWatch>,
    trust: Option<&TrustWatch>,
    signals: &mut Signals,
) -> anyhow::Result<Supervised> {
    let args = launch.args();
    tracing::info!(binary = %binary.display(), ?args, "starting etcd");
    let mut command = etcd_command(binary);
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().with_context(|| {
        format!(
            "cannot start etcd binary {}; check --etcd-binary / ETCD_AWS_ETCD_BINARY and PATH",
            binary.display()
        )
    })?;
    let tail = Tail::default();
    let mut copies = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        copies.push(tail.pass_through(stdout, tokio::io::stdout()));
    }
    if let Some(stderr) = child.stderr.take() {
        copies.push(tail.pass_through(stderr, tokio::io::stderr()));
    }
    let pid = child
        .id()
        .context("etcd exited before its pid could be read")?;
    let pid = i32::try_from(pid).context("etcd's pid does not fit a pid_t")?;

    let ready = readiness.wait_until_ready();
    tokio::pin!(ready);
    let recovery = watch.until_forced_recovery_is_due(&readiness.peer_client_urls);
    tokio::pin!(recovery);
    let quarantine = async {
        match orders {
            Some(orders) => orders.until_quarantine().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(quarantine);
    let new_trust = async {
        match trust {
            Some(trust) => trust.until_restart_is_due().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(new_trust);
    let mut was_ready = false;
    let mut readiness_done = false;
    // Why etcd is being stopped, once it is: by whom decides what comes next.
    let mut stopping: Option<EtcdExit> = None;
    let mut forwarded = false;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.context("waiting for etcd failed")?,
            result = &mut ready, if !readiness_done => {
                readiness_done = true;
                match result {
                    Ok(()) => was_ready = true,
                    Err(e) => {
                        tracing::error!(error = %e, "stopping etcd");
                        stopping.get_or_insert(match e {
                            ReadinessError::NeverPromoted(..) => EtcdExit::StrandedLearner,
                            _ => EtcdExit::NeverReady,
                        });
                        forward(pid, libc::SIGTERM);
                    }
                }
            }
            () = &mut recovery, if stopping.is_none() => {
                tracing::warn!(event = events::FORCE_NEW_CLUSTER, "RECOVERING: quorum is lost for good (the lost members' instances are gone from the group) and this member has the newest data; restarting etcd with --force-new-cluster");
                stopping = Some(EtcdExit::ForRecovery);
                forward(pid, libc::SIGTERM);
            }
            order = &mut quarantine, if stopping.is_none() => {
                tracing::warn!(order = %order.id, target = %order.target, "QUARANTINE: an operator's restore order stops this member's etcd, so no client reads or writes the cluster while it is restored");
                stopping = Some(EtcdExit::Quarantined);
                forward(pid, libc::SIGTERM);
            }
            () = &mut new_trust, if stopping.is_none() && was_ready => {
                // The line saying why was the watch's own.
                stopping = Some(EtcdExit::ForNewTrust);
                forward(pid, libc::SIGTERM);
            }
            signal = signals.recv() => {
                forwarded = true;
                forward(pid, signal);
            }
        }
    };
    // The copies end at etcd's end of output; bounded, in case a process etcd
    // started holds the pipes open.
    for copy in copies {
        let _ = tokio::time::timeout(Duration::from_secs(2), copy).await;
    }
    tracing::info!(%status, "etcd exited");
    let exit = match (forwarded, stopping) {
        // The operator's stop wins over the agent's own reasons.
        (true, _) => EtcdExit::Stopped { status },
        (false, Some(stopping)) => stopping,
        (false, None) if !status.success() && tail.saw_divergence() => EtcdExit::Diverged,
        (false, None) => EtcdExit::Ended { status, was_ready },
    };
    Ok(Supervised {
        exit,
        last_lines: tail.lines(),
    })
}

/// The last lines etcd wrote, kept while every line passes through
/// unchanged, and whether any of them was the divergence verdict.
#[derive(Clone, Default)]
struct Tail {
    lines: Arc<Mutex<VecDeque<String>>>,
    diverged: Arc<std::sync::atomic::AtomicBool>,
}

impl Tail {
    fn pass_through(
        &self,
        from: impl AsyncRead + Unpin + Send + 'static,
        mut to: impl AsyncWrite + Unpin + Send + 'static,
    ) -> JoinHandle<()> {
        let tail = self.clone();
        tokio::spawn(async move {
            let mut from = BufReader::new(from);
            let mut line = Vec::new();
            loop {
                line.clear();
                match from.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                // Our own output gone (a closed journal) must not stop etcd
                // from writing: keep reading, stop passing on.
                if to.write_all(&line).await.is_ok() {
                    let _ = to.flush().await;
                }
                tail.keep(&line);
            }
        })
    }

    fn keep(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        if text.contains(DIVERGENCE_VERDICT) {
            self.diverged
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let mut lines = self
            .lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(text.chars().take(TAIL_LINE_CHARS).collect());
    }

    fn lines(&self) -> Vec<String> {
        let lines = self
            .lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        lines.iter().cloned().collect()
    }

    fn saw_divergence(&self) -> bool {
        self.diverged.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// etcd's command, without the agent's own variables: etcd reads ETCD_*
/// variables as flags and dies when one duplicates a flag we pass
/// (ETCD_DATA_DIR); ours are not meant for it.
pub(crate) fn etcd_command(binary: &std::path::Path) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_etcd_aws_variable) {
            command.env_remove(&name);
        }
    }
    command
}

/// Variables etcd-aws reads itself. Other `ETCD_*` variables reach etcd, as
/// an operator who sets, say, ETCD_QUOTA_BACKEND_BYTES expects.
fn is_etcd_aws_variable(name: &str) -> bool {
    name.starts_with("ETCD_AWS_") || name.starts_with("ETCD_BACKUP_") || name == "ETCD_DATA_DIR"
}

pub(crate) fn forward(pid: i32, signal: i32) {
    tracing::info!(signal, "forwarding signal to etcd");
    // SAFETY: kill(2) with a pid we spawned and have not yet reaped.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc != 0 {
        tracing::warn!(signal, error = %std::io::Error::last_os_error(), "could not forward signal to etcd");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_variables_are_kept_from_etcd() {
        for name in [
            "ETCD_DATA_DIR",
            "ETCD_AWS_INSTANCE_ID",
            "ETCD_BACKUP_BUCKET",
        ] {
            assert!(is_etcd_aws_variable(name), "{name}");
        }
    }

    #[test]
    fn other_etcd_variables_pass_through_to_etcd() {
        for name in ["ETCD_QUOTA_BACKEND_BYTES", "ETCD_SNAPSHOT_COUNT", "PATH"] {
            assert!(!is_etcd_aws_variable(name), "{name}");
        }
    }

    #[test]
    fn the_tail_keeps_the_last_lines_without_blank_ones() {
        let tail = Tail::default();
        for n in 0..(TAIL_LINES + 5) {
            tail.keep(format!("line {n}\n").as_bytes());
            tail.keep(b"\n");
        }
        let lines = tail.lines();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines.first().map(String::as_str), Some("line 5"));
        assert_eq!(
            lines.last().map(String::as_str),
            Some(format!("line {}", TAIL_LINES + 4).as_str())
        );
    }

    #[test]
    fn the_tail_notices_etcds_divergence_verdict() {
        let tail = Tail::default();
        tail.keep(br#"{"level":"info","msg":"starting initial corruption check"}"#);
        assert!(!tail.saw_divergence());
        tail.keep(br#"{"level":"fatal","msg":"discovery failed","error":"8211f1d0f64f3269 found data inconsistency with peers"}"#);
        assert!(tail.saw_divergence());
    }

    #[test]
    fn the_tail_cuts_long_lines_and_survives_bytes_that_are_not_utf8() {
        let tail = Tail::default();
        tail.keep(&[b'x'; 2 * TAIL_LINE_CHARS]);
        tail.keep(&[0xff, b'a', b'\n']);
        let lines = tail.lines();
        assert_eq!(lines[0].chars().count(), TAIL_LINE_CHARS);
        assert_eq!(lines[1], "\u{fffd}a");
    }
}
