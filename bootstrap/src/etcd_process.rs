//! Runs etcd as a child: forwards signals, reports readiness, returns its exit.

use std::path::Path;
use std::process::{ExitStatus, Stdio};

use anyhow::Context;
use etcd_aws_cluster::etcd_launch::EtcdLaunch;
use tokio::process::Command;

use crate::quorum_watch::QuorumWatch;
use crate::readiness::{Readiness, ReadinessError};
use crate::signals::Signals;

/// How the child ended.
#[derive(Debug)]
pub struct EtcdExit {
    pub status: ExitStatus,
    /// Whether the node had become a healthy voting member before it ended.
    pub was_ready: bool,
    /// Whether etcd-aws itself stopped etcd because it never became ready.
    pub stopped_unready: bool,
    /// Of those, whether it never got past being a learner.
    pub stopped_as_learner: bool,
    /// Whether etcd-aws stopped etcd to restart it with `--force-new-cluster`.
    pub stopped_for_recovery: bool,
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

pub async fn run(
    binary: &Path,
    launch: &EtcdLaunch,
    readiness: Readiness,
    watch: &QuorumWatch,
    signals: &mut Signals,
) -> anyhow::Result<EtcdExit> {
    let args = launch.args();
    tracing::info!(binary = %binary.display(), ?args, "starting etcd");
    let mut command = Command::new(binary);
    command.args(&args).stdin(Stdio::null());
    // etcd reads ETCD_* variables as flags and dies when one duplicates a flag
    // we pass (ETCD_DATA_DIR); ours are not meant for it.
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_etcd_aws_variable) {
            command.env_remove(&name);
        }
    }
    let mut child = command.spawn().with_context(|| {
        format!(
            "cannot start etcd binary {}; check --etcd-binary / ETCD_AWS_ETCD_BINARY and PATH",
            binary.display()
        )
    })?;
    let pid = child
        .id()
        .context("etcd exited before its pid could be read")?;
    let pid = i32::try_from(pid).context("etcd's pid does not fit a pid_t")?;

    let ready = readiness.wait_until_ready();
    tokio::pin!(ready);
    let recovery = watch.until_forced_recovery_is_due();
    tokio::pin!(recovery);
    let (mut was_ready, mut readiness_done, mut stopped_unready) = (false, false, false);
    let mut stopped_as_learner = false;
    let mut stopped_for_recovery = false;
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.context("waiting for etcd failed")?;
                tracing::info!(%status, "etcd exited");
                return Ok(EtcdExit { status, was_ready, stopped_unready, stopped_as_learner, stopped_for_recovery });
            }
            result = &mut ready, if !readiness_done => {
                readiness_done = true;
                match result {
                    Ok(()) => was_ready = true,
                    Err(e) => {
                        tracing::error!(error = %e, "stopping etcd");
                        stopped_unready = true;
                        stopped_as_learner = matches!(e, ReadinessError::NeverPromoted(..));
                        forward(pid, libc::SIGTERM);
                    }
                }
            }
            () = &mut recovery, if !stopped_for_recovery => {
                tracing::warn!("RECOVERING: quorum is lost for good (the lost members' instances are gone from the group) and this member has the newest data; restarting etcd with --force-new-cluster");
                stopped_for_recovery = true;
                forward(pid, libc::SIGTERM);
            }
            signal = signals.recv() => forward(pid, signal),
        }
    }
}

/// Variables etcd-aws reads itself. Other `ETCD_*` variables reach etcd, as
/// an operator who sets, say, ETCD_QUOTA_BACKEND_BYTES expects.
fn is_etcd_aws_variable(name: &str) -> bool {
    name.starts_with("ETCD_AWS_") || name.starts_with("ETCD_BACKUP_") || name == "ETCD_DATA_DIR"
}

fn forward(pid: i32, signal: i32) {
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
    fn exit_code_is_etcds_code_or_128_plus_signal() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGTERM)), 128 + 15);
    }
}
