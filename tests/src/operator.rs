//! The operator's command (`etcd-aws-cfn status`, `backups list`, `backup`,
//! `restore`) run as a process against a stand-in, as an operator runs it
//! against a stack: its AWS calls go through the stand-in's proxy, its Lambda
//! invocations reach the harness's [`BackupOnDemand`] function.
//!
//! [`BackupOnDemand`]: crate::functions::BackupOnDemand

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::functions::BackupOnDemand;
use crate::paths::built_binary;
use crate::stand_in::StandIn;

/// How one run of the command ended.
#[derive(Debug, Clone)]
pub struct CommandRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CommandRun {
    pub fn succeeded(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout as JSON (the command's `--output json`).
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.stdout).with_context(|| {
            format!(
                "the command's output is not JSON:\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl std::fmt::Display for CommandRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The command, pointed at a stand-in's group, bucket, function and queues.
pub struct OperatorCommand {
    env: Vec<(String, String)>,
    stack: Vec<String>,
}

impl OperatorCommand {
    pub fn new(stand_in: &StandIn) -> Self {
        let stack = [
            ("--bucket", stand_in.bucket()),
            ("--group-name", stand_in.group_name()),
            ("--backup-function", BackupOnDemand::NAME),
            ("--lifecycle-queue-url", stand_in.queue_url()),
            ("--dead-letter-queue-url", stand_in.dead_letter_queue_url()),
            ("--function-log-groups", BackupOnDemand::LOG_GROUP),
        ]
        .iter()
        .flat_map(|(flag, value)| [(*flag).to_owned(), (*value).to_owned()])
        .collect();
        Self {
            env: stand_in.env(),
            stack,
        }
    }

    fn command(&self, args: &[&str]) -> anyhow::Result<Command> {
        let mut command = Command::new(built_binary("etcd-aws-cfn")?);
        command
            .args(args)
            .args(&self.stack)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("ETCD_AWS_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Ok(command)
    }

    /// Runs `etcd-aws-cfn <args> <the stand-in's parts>` to its end, bounded
    /// by `timeout`; one that runs over is killed, and the error holds what it
    /// had written.
    pub async fn run(&self, args: &[&str], timeout: Duration) -> anyhow::Result<CommandRun> {
        let mut child = self
            .command(args)?
            .spawn()
            .context("starting etcd-aws-cfn")?;
        let stdout = read_all(child.stdout.take());
        let stderr = read_all(child.stderr.take());
        let ended = tokio::time::timeout(timeout, child.wait()).await;
        if ended.is_err() {
            let _ = child.kill().await;
        }
        let run = CommandRun {
            code: match &ended {
                Ok(Ok(status)) => status.code(),
                _ => None,
            },
            stdout: stdout.await.unwrap_or_default(),
            stderr: stderr.await.unwrap_or_default(),
        };
        match ended {
            Ok(status) => {
                status.context("waiting for etcd-aws-cfn")?;
                Ok(run)
            }
            Err(_) => anyhow::bail!("etcd-aws-cfn {args:?} did not end within {timeout:?}: {run}"),
        }
    }

    /// Starts it without waiting (to stop it midway); killed when dropped.
    pub fn spawn(&self, args: &[&str]) -> anyhow::Result<Child> {
        self.command(args)?.spawn().context("starting etcd-aws-cfn")
    }
}

/// Everything a pipe gives until it closes.
fn read_all(
    pipe: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>,
) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut text = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut text).await;
        }
        String::from_utf8_lossy(&text).into_owned()
    })
}
