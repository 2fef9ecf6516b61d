//! `etcd-aws` given bad input or a broken environment: a clear one-line error
//! and a non-zero exit, never a panic.

use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::Duration;

use etcd_aws_core::contract::events;
use etcd_aws_io::etcd::admin::EtcdAdmin;
use etcd_aws_tests::node::{Node, NodeSpec};
use etcd_aws_tests::paths::{self, EtcdRelease};
use etcd_aws_tests::sim_cluster::{snapshot_via, wait_for, HARNESS_TIMEOUTS};
use etcd_aws_tests::stand_in::{Caller, FaultRule, StandIn, StandInOptions};
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

/// The agent's JSON log line whose `event` field is `event`.
fn json_event(output: &Output, event: &str) -> serde_json::Value {
    let text = stderr(output);
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line[events::FIELD] == event)
        .unwrap_or_else(|| panic!("no JSON line with event {event:?} in:\n{text}"))
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

/// A stand-in for etcd that names its release when asked and otherwise runs `body`.
fn fake_etcd_script(release: &str, body: &str) -> String {
    format!(
        "#!/bin/sh\ncase \"$1\" in\n  --version) echo 'etcd Version: {release}'; exit 0;;\n  --help) exit 0;;\nesac\n{body}\n"
    )
}

fn as_instance(
    command: &mut Command,
    stand_in: &StandIn,
    id: &str,
    ip: &str,
    dir: &tempfile::TempDir,
) {
    command
        .envs(stand_in.env_as(Caller::Node))
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
    // Nothing listens on port 9: the metadata service is unreachable. The
    // agent asks again for --imds-patience (a minute by default) first.
    command
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
        .env("ETCD_AWS_IMDS_PATIENCE", "2s")
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
        .env("ETCD_AWS_GROUP_NAME", "etcd")
        .env("ETCD_AWS_ETCD_BINARY", paths::etcd_tool("etcd")?);
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
    command
        .env("ETCD_AWS_GROUP_NAME", stand_in.group_name())
        .env("ETCD_AWS_ETCD_BINARY", paths::etcd_tool("etcd")?);
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
    std::fs::write(&fake_etcd, fake_etcd_script("3.5.16", "exit 7"))?;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_the_cluster_keeps_refusing_gives_up_at_the_wait_timeout() -> anyhow::Result<()> {
    // Given a group of three whose earliest instance runs a one-member cluster,
    let stand_in = StandIn::start(StandInOptions {
        group_size: 3,
        lifecycle_hook: None,
        ..StandInOptions::default()
    })
    .await?;
    let mut instances = stand_in.instances().await?;
    instances.sort_by(|a, b| (a.launch_time, &a.id).cmp(&(b.launch_time, &b.id)));
    let (seed, joiner, silent) = (&instances[0], &instances[1], &instances[2]);
    let root = tempfile::tempdir()?;
    let seed_node = Node::start(NodeSpec {
        instance_id: seed.id.clone(),
        private_ip: seed.private_ip,
        group_name: stand_in.group_name().to_owned(),
        aws_env: stand_in.env_as(Caller::Node),
        root: root.path().join(&seed.id),
        agent_args: Vec::new(),
        extra_args: Vec::new(),
        backup_bucket: None,
        tls_ca_secret: stand_in.pki().map(|pki| pki.ca_secret.clone()),
        tls_functions_secret: None,
        etcd: EtcdRelease::default(),
    })?;
    let seed_url = seed_node.spec().client_url();
    let access = stand_in.etcd_access(HARNESS_TIMEOUTS);
    wait_for("the seed to serve", DEADLINE, || async {
        snapshot_via(&seed_url, &access).await.map(|_| ())
    })
    .await?;
    // and whose one learner slot is taken by the third instance's pending join,
    let mut admin = EtcdAdmin::connect(std::slice::from_ref(&seed_url), &access).await?;
    admin
        .add_learner(&format!("https://{}:2380", silent.private_ip))
        .await?;

    // a node whose join is refused ("too many learners") for longer than
    // --wait-timeout gives up with EX_TEMPFAIL instead of waiting forever,
    let dir = tempfile::tempdir()?;
    let mut command = agent()?;
    let ip = joiner.private_ip.to_string();
    as_instance(&mut command, &stand_in, &joiner.id, &ip, &dir);
    command
        .env("ETCD_AWS_ETCD_BINARY", paths::etcd_tool("etcd")?)
        .env("ETCD_AWS_GROUP_NAME", stand_in.group_name())
        .env("ETCD_AWS_POLL_INTERVAL", "200ms")
        .env("ETCD_AWS_WAIT_TIMEOUT", "3s")
        .env("ETCD_AWS_LOG_FORMAT", "json");
    let output = run(command).await?;
    assert_clean_failure(&output, 75, "gave up waiting to start etcd");
    // (as the event the stack's metric filter counts),
    assert_eq!(
        json_event(&output, events::GAVE_UP_WAITING)["level"],
        "ERROR"
    );
    // saying why it waited, and without having started etcd.
    assert!(
        stderr(&output).contains("too many learner members"),
        "{}",
        stderr(&output)
    );
    assert!(!dir.path().join("etcd").exists(), "etcd was started");
    Ok(())
}

#[tokio::test]
async fn etcd_that_fails_is_reported_with_its_last_lines_and_what_to_check() -> anyhow::Result<()> {
    let (stand_in, id, ip, dir) = single_instance().await?;
    let fake_etcd = dir.path().join("etcd-fails");
    std::fs::write(
        &fake_etcd,
        fake_etcd_script(
            "3.5.16",
            "echo 'opening the backend' >&2\necho 'mvcc: database is locked' >&2\nexit 1",
        ),
    )?;
    std::fs::set_permissions(&fake_etcd, std::fs::Permissions::from_mode(0o755))?;
    let mut command = agent()?;
    as_instance(&mut command, &stand_in, &id, &ip, &dir);
    command.env("ETCD_AWS_ETCD_BINARY", &fake_etcd);
    let output = run(command).await?;
    assert_clean_failure(&output, 1, "etcd exited with a failure");
    let text = stderr(&output);
    let report = text
        .lines()
        .find(|line| line.contains("etcd exited with a failure"))
        .unwrap_or_default();
    assert!(report.contains("ERROR"), "{report}");
    assert!(report.contains("mvcc: database is locked"), "{report}");
    assert!(report.contains("data directory"), "{report}");
    Ok(())
}

#[tokio::test]
async fn in_json_logs_a_failing_etcd_is_the_event_the_stack_counts() -> anyhow::Result<()> {
    let (stand_in, id, ip, dir) = single_instance().await?;
    let fake_etcd = dir.path().join("etcd-fails");
    std::fs::write(&fake_etcd, fake_etcd_script("3.5.16", "exit 1"))?;
    std::fs::set_permissions(&fake_etcd, std::fs::Permissions::from_mode(0o755))?;
    let mut command = agent()?;
    as_instance(&mut command, &stand_in, &id, &ip, &dir);
    command
        .env("ETCD_AWS_ETCD_BINARY", &fake_etcd)
        .env("ETCD_AWS_LOG_FORMAT", "json");
    let output = run(command).await?;
    let line = json_event(&output, events::ETCD_EXITED);
    assert_eq!(line["level"], "ERROR", "{line}");
    assert!(
        line["message"]
            .as_str()
            .is_some_and(|m| m.contains("etcd exited with a failure")),
        "{line}"
    );
    Ok(())
}

#[tokio::test]
async fn an_endpoint_that_is_not_a_url_is_one_line_naming_the_variable() -> anyhow::Result<()> {
    let mut command = agent()?;
    command
        .env("AWS_ENDPOINT_URL", "not a url")
        .env("ETCD_AWS_INSECURE_PLAINTEXT", "true")
        .env("ETCD_AWS_INSTANCE_ID", "i-0123")
        .env("ETCD_AWS_PRIVATE_IP", "127.0.0.9");
    let output = run(command).await?;
    assert_clean_failure(&output, 1, r#"AWS_ENDPOINT_URL="not a url" is not a URL"#);
    let text = stderr(&output);
    let error = text
        .lines()
        .find(|line| line.contains("is not a URL"))
        .unwrap_or_default();
    assert!(error.len() < 400, "{} characters: {error}", error.len());
    Ok(())
}

#[tokio::test]
async fn text_logs_into_a_pipe_carry_no_colour_codes() -> anyhow::Result<()> {
    let mut command = agent()?;
    command
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("ETCD_AWS_INSECURE_PLAINTEXT", "true")
        .env("ETCD_AWS_INSTANCE_ID", "i-0123")
        .env("ETCD_AWS_PRIVATE_IP", "127.0.0.9")
        .env("ETCD_AWS_GROUP_NAME", "etcd")
        .env("ETCD_AWS_LOG_FORMAT", "text");
    let output = run(command).await?;
    let text = stderr(&output);
    assert!(text.contains("WARN"), "{text}");
    assert!(!text.contains('\u{1b}'), "escape codes in: {text:?}");
    Ok(())
}

#[tokio::test]
async fn an_etcd_release_withdrawn_for_corruption_is_refused_with_what_to_install(
) -> anyhow::Result<()> {
    let (stand_in, id, ip, dir) = single_instance().await?;
    let fake_etcd = dir.path().join("etcd-3.5.1");
    std::fs::write(&fake_etcd, fake_etcd_script("3.5.1", "exit 0"))?;
    std::fs::set_permissions(&fake_etcd, std::fs::Permissions::from_mode(0o755))?;
    let mut command = agent()?;
    as_instance(&mut command, &stand_in, &id, &ip, &dir);
    command.env("ETCD_AWS_ETCD_BINARY", &fake_etcd);
    let output = run(command).await?;
    assert_clean_failure(&output, 1, "etcd 3.5.1 is not for production");
    assert!(
        stderr(&output).contains("install 3.5.30"),
        "{}",
        stderr(&output)
    );
    Ok(())
}
