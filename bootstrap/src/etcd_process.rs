//! Runs etcd as a child: forwards signals, reports readiness, returns its exit.

use std::path::Path;
use std::process::{ExitStatus, Stdio};

use anyhow::Context;
use etcd_aws_cluster::etcd_launch::EtcdLaunch;
use tokio::process::Command;

use crate::readiness::Readiness;
use crate::signals::Signals;

/// How the child ended.
#[derive(Debug)]
pub struct EtcdExit {
    pub status: ExitStatus,
    /// Whether the node had become a healthy voting member before it ended.
    pub was_ready: bool,
    /// Whether etcd-aws itself stopped etcd because it never became ready.
    pub stopped_unready: bool,
}

/// Exit code for our own process: etcd's code, or 128 + the signal that ended it.
pub fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        (None, None) => 1,
    }
}

pub async fn run(binary: &Path, launch: &EtcdLaunch, readiness: Readiness, signals: &mut Signals) -> anyhow::Result<EtcdExit> {
    let args = launch.args();
    tracing::info!(binary = %binary.display(), ?args, "starting etcd");
    let mut child = Command::new(binary)
        .args(&args)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start etcd binary {}; check --etcd-binary / ETCD_AWS_ETCD_BINARY and PATH", binary.display()))?;
    let pid = child.id().context("etcd exited before its pid could be read")?;
    let pid = i32::try_from(pid).context("etcd's pid does not fit a pid_t")?;

    let ready = readiness.wait_until_ready();
    tokio::pin!(ready);
    let (mut was_ready, mut readiness_done, mut stopped_unready) = (false, false, false);
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.context("waiting for etcd failed")?;
                tracing::info!(%status, "etcd exited");
                return Ok(EtcdExit { status, was_ready, stopped_unready });
            }
            result = &mut ready, if !readiness_done => {
                readiness_done = true;
                match result {
                    Ok(()) => was_ready = true,
                    Err(e) => {
                        tracing::error!(error = %e, "stopping etcd");
                        stopped_unready = true;
                        forward(pid, libc::SIGTERM);
                    }
                }
            }
            signal = signals.recv() => forward(pid, signal),
        }
    }
}

fn forward(pid: i32, signal: i32) {
    tracing::info!(signal, "forwarding signal to etcd");
    // SAFETY: kill(2) with a pid we spawned and have not yet reaped.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc != 0 {
        tracing::warn!(signal, error = %std::io::Error::last_os_error(), "could not forward signal to etcd");
    }
}
