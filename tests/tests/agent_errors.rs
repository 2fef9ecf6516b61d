//! `etcd-aws` given bad input or a broken environment: a clear one-line error
//! and a non-zero exit, never a panic.

use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::Duration;

use etcd_aws_tests::paths;
use etcd_aws_tests::stand_in::{FaultRule, StandIn, StandInOptions};
use tokio::process::Command;

const DEADLINE: Duration = Duration::from_secs(60);

fn agent() -> anyhow::Result<Command> {
    let mut command = Command::new(paths::etcd_aws_binary()?);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .kill_on_drop(true);
    Ok(command)
}

async fn run(mut command: Command) -> anyhow::Result<Output> {
    Ok(tokio::time::timeout(DEADLINE, command.output()).await??)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_clean_failure(output: &Output, code: i32, needle: &str) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(code), "{text}");
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    assert!(!text.contains("panicked"), "{text}");
}

/// Waits for the agent's ready file, then sends it SIGTERM.
async fn stop_once_ready(child: &tokio::process::Child, dir: &tempfile::TempDir) {
    let ready = dir.path().join("ready");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !ready.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node never became ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .expect("agent pid");
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
}

/// A stand-in group of one whose only instance the agent plays.
async fn single_instance() -> anyhow::Result<(StandIn, String, String, tempfile::TempDir)> {
    let stand_in = StandIn::start(StandInOptions {
        group_size: 1,
        lifecycle_hook: None,
        ..StandInOptions::default()
    })
    .await?;
    let instance = stand_in
        .instances()
        .await?
        .into_iter()
        .next()
        .expect("one instance");
    Ok((
        stand_in,
        instance.id,
        instance.private_ip.to_string(),
        tempfile::tempdir()?,
    ))
}

fn as_instance(
    command: &mut Command,
    stand_in: &StandIn,
    id: &str,
    ip: &str,
    dir: &tempfile::TempDir,
) {
    command
        .envs(stand_in.env())
        .env("ETCD_AWS_INSTANCE_ID", id)
        .env("ETCD_AWS_PRIVATE_IP", ip)
        .env("ETCD_DATA_DIR", dir.path().join("etcd"))
        .env("ETCD_AWS_READY_FILE", dir.path().join("ready"))
        .envs(stand_in.node_tls_env())
        .env("ETCD_AWS_TLS_DIR", dir.path().join("tls"));
}

#[tokio::test]
async fn invalid_flag_value_is_a_usage_error() -> anyhow::Result<()> {
    let mut command = agent()?;
    command.args(["--private-ip", "not-an-ip"]);
    assert_clean_failure(&run(command).await?, 2, "invalid value 'not-an-ip'");
    Ok(())
}

#[tokio::test]
async fn help_explains_the_flags_and_their_environment_variables() -> anyhow::Result<()> {
    let mut command = agent()?;
    command.arg("--help");
    let output = run(command).await?;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    for needle in [
        "--data-dir",
        "ETCD_DATA_DIR",
        "--instance-id",
        "ETCD_AWS_INSTANCE_ID",
        "ETCD_FLAGS",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}:\n{text}");
    }
    Ok(())
}

#[tokio::test]
async fn tls_is_required_unless_plaintext_is_asked_for() -> anyhow::Result<()> {
    let command = agent()?;
    assert_clean_failure(&run(command).await?, 2, "--tls-ca-secret");
    Ok(())
}

#[tokio::test]
async fn a_damaged_ca_secret_stops_the_node_and_says_to_restore_it() -> anyhow::Result<()> {
    let (stand_in, id, ip, dir) = single_instance().await?;
    let secret = format!("etcd-aws/{}/damaged-ca", stand_in.group_name());
    aws_sdk_secretsmanager::Client::new(&stand_in.sdk_config().await)
        .create_secret()
        .name(&secret)
        .secret_string(
            r#"{"kind":"etcd-aws-cluster-ca","ca_cert":"not a certificate","ca_key":"nor a key"}"#,
        )
        .send()
        .await?;
    let mut command = agent()?;
    as_instance(&mut command, &stand_in, &id, &ip, &dir);
    command.env("ETCD_AWS_TLS_CA_SECRET", &secret);
    assert_clean_failure(&run(command).await?, 1, "restore its previous version");
    Ok(())
}

#[tokio::test]
async fn off_ec2_without_identity_flags_says_which_flags_to_pass() -> anyhow::Result<()> {
    let mut command = agent()?;
    // Nothing listens on port 9: the metadata service is unreachable.
    command
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
        .env("ETCD_AWS_INSECURE_PLAINTEXT", "true");
    assert_clean_failure(
        &run(command).await?,
        1,
        "pass --instance-id and --private-ip",
    );
    Ok(())
}

#[tokio::test]
async fn unreachable_aws_endpoint_names_the_failed_call() -> anyhow::Result<()> {
    let mut command = agent()?;
    command
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("ETCD_AWS_INSECURE_PLAINTEXT", "true")
        .env("ETCD_AWS_INSTANCE_ID", "i-0123")
        .env("ETCD_AWS_PRIVATE_IP", "127.0.0.9")
        .env("ETCD_AWS_GROUP_NAME", "etcd");
    assert_clean_failure(
        &run(command).await?,
        1,
        "AWS DescribeAutoScalingGroups failed",
    );
    Ok(())
}

#[tokio::test]
async fn aws_error_answer_is_reported_with_its_code() -> anyhow::Result<()> {
    let (stand_in, id, ip, dir) = single_instance().await?;
    stand_in.faults().inject(
        FaultRule::error(
            "autoscaling",
            "DescribeAutoScalingGroups",
            403,
            "AccessDenied",
            "not allowed",
        )
        .times(10),
    );
    let mut command = agent()?;
    as_instance(&mut command, &stand_in, &id, &ip, &dir);
    command.env("ETCD_AWS_GROUP_NAME", stand_in.group_name());
    assert_clean_failure(&run(command).await?, 1, "AccessDenied");
    Ok(())
}

#[tokio::test]
async fn instance_outside_any_group_is_told_to_pass_the_group() -> anyhow::Result<()> {
    let (stand_in, _, ip, dir) = single_instance().await?;
    let mut command = agent()?;
    as_instance(&mut command, &stand_in, "i-00000000000000000", &ip, &dir);
    assert_clean_failure(&run(command).await?, 1, "belongs to no autoscaling group");
    Ok(())
}

#[tokio::test]
async fn missing_etcd_binary_fails_clearly() -> anyhow::Result<()> {
    let (stand_in, id, ip, dir) = single_instance().await?;
    let mut command = agent()?;
    as_instance(&mut command, &stand_in, &id, &ip, &dir);
    command.env("ETCD_AWS_ETCD_BINARY", "/nonexistent/etcd");
    assert_clean_failure(
        &run(command).await?,
        1,
        "cannot start etcd binary /nonexistent/etcd",
    );
    Ok(())
}

#[tokio::test]
async fn etcd_exit_status_becomes_the_agents() -> anyhow::Result<()> {
    let (stand_in, id, ip, dir) = single_instance().await?;
    let fake_etcd = dir.path().join("etcd-exits-7");
    std::fs::write(&fake_etcd, "#!/bin/sh\nexit 7\n")?;
    std::fs::set_permissions(&fake_etcd, std::fs::Permissions::from_mode(0o755))?;
    let mut command = agent()?;
    as_instance(&mut command, &stand_in, &id, &ip, &dir);
    command.env("ETCD_AWS_ETCD_BINARY", &fake_etcd);
    let output = run(command).await?;
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    Ok(())
}

#[tokio::test]
async fn sigterm_is_forwarded_to_etcd_and_its_exit_becomes_the_agents() -> anyhow::Result<()> {
    let (stand_in, id, ip, dir) = single_instance().await?;
    let mut command = agent()?;
    as_instance(&mut command, &stand_in, &id, &ip, &dir);
    command
        .env("ETCD_AWS_ETCD_BINARY", paths::etcd_tool("etcd")?)
        .arg("--")
        .arg("--log-level=warn");
    command.stderr(std::process::Stdio::piped());
    let mut child = command.spawn()?;
    stop_once_ready(&child, &dir).await;
    let status = tokio::time::timeout(DEADLINE, child.wait()).await??;
    // etcd shuts down cleanly, then re-raises SIGTERM on itself (Go's
    // convention); the agent reports that as 128 + 15, like a shell would.
    assert_eq!(
        status.code(),
        Some(128 + libc::SIGTERM),
        "etcd's exit should be the agent's"
    );
    let refused = tokio::net::TcpStream::connect((ip.as_str(), 2379)).await;
    assert!(
        refused.is_err(),
        "etcd still listens after the agent stopped"
    );
    Ok(())
}

#[tokio::test]
async fn backup_bucket_that_cannot_be_read_stops_the_seed_instead_of_forming_an_empty_cluster(
) -> anyhow::Result<()> {
    let (stand_in, id, ip, dir) = single_instance().await?;
    stand_in.faults().inject(
        FaultRule::error("s3", "ListObjectsV2", 403, "AccessDenied", "Access Denied").times(10),
    );
    let mut command = agent()?;
    as_instance(&mut command, &stand_in, &id, &ip, &dir);
    command
        .env("ETCD_BACKUP_BUCKET", stand_in.bucket())
        .env("ETCD_AWS_ETCD_BINARY", paths::etcd_tool("etcd")?);
    let output = run(command).await?;
    assert_clean_failure(&output, 1, "refusing to form an empty cluster");
    assert!(
        stderr(&output).contains("access denied"),
        "{}",
        stderr(&output)
    );
    assert!(
        !dir.path().join("etcd").exists(),
        "etcd must not have started"
    );
    Ok(())
}

#[tokio::test]
async fn backup_bucket_that_does_not_exist_forms_a_new_cluster_and_says_so() -> anyhow::Result<()> {
    let (stand_in, id, ip, dir) = single_instance().await?;
    let mut command = agent()?;
    as_instance(&mut command, &stand_in, &id, &ip, &dir);
    command
        .env("ETCD_BACKUP_BUCKET", "no-such-bucket-for-etcd-aws")
        .env("ETCD_AWS_ETCD_BINARY", paths::etcd_tool("etcd")?)
        .arg("--")
        .arg("--log-level=warn");
    command.stderr(std::process::Stdio::piped());
    let child = command.spawn()?;
    stop_once_ready(&child, &dir).await;
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output()).await??;
    assert!(
        stderr(&output).contains("backup bucket does not exist"),
        "{}",
        stderr(&output)
    );
    Ok(())
}
