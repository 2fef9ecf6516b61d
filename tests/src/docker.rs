//! The Docker CLI, for the harness's containers and networks. Every call is
//! bounded in time: a wedged daemon fails the test instead of hanging it.

use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

/// Long enough for `docker create` or `docker rm -f` on a loaded machine.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `docker version` may take to say whether an engine answers.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `docker <args>` and returns its trimmed stdout, or an error carrying
/// its stderr.
pub async fn docker(args: &[&str]) -> anyhow::Result<String> {
    let child = tokio::process::Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run the docker CLI (is Docker installed?)")?;
    let output = tokio::time::timeout(CALL_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("docker {} took over {CALL_TIMEOUT:?}", args.join(" ")))?
        .context("waiting for the docker CLI")?;
    checked(args, output)
}

/// `docker` for places that cannot await (Drop, and the node controls the
/// scenarios call while holding the fleet's lock). The CLI is killed if it
/// outlives the timeout.
pub fn docker_blocking(args: &[&str]) -> anyhow::Result<String> {
    let mut child = std::process::Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run the docker CLI (is Docker installed?)")?;
    let deadline = std::time::Instant::now() + CALL_TIMEOUT;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("docker {} took over {CALL_TIMEOUT:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child
        .wait_with_output()
        .context("reading the docker CLI's output")?;
    checked(args, output)
}

/// Whether a Docker engine answers here.
pub async fn engine_answers() -> bool {
    let probe = tokio::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, probe).await,
        Ok(Ok(status)) if status.success()
    )
}

fn checked(args: &[&str], output: Output) -> anyhow::Result<String> {
    if !output.status.success() {
        bail!(
            "docker {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
