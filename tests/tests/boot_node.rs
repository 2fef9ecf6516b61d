//! Nodes that boot as EC2 instances boot (tests/src/boot_node.rs): systemd as
//! PID 1, cloud-init running the user-data from its seed, the metadata
//! service at 169.254.169.254 through IMDSv2. They need Docker and the test
//! node image, so they are ignored by `make test`; `make boot-check` builds
//! the image and runs them.

use std::time::Duration;

use etcd_aws_tests::boot_node::{BootNetwork, BootNode, BootOutcome, BootSpec, BOOT_TIMEOUT};
use etcd_aws_tests::stand_in::imds::{ImdsOptions, TOKEN_PATH};
use http::Method;

const EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// The shape of the project's user-data: a bash script that writes files and
/// a systemd unit, then enables and starts it.
const USER_DATA_WITH_A_UNIT: &str = r#"#!/bin/bash
set -euo pipefail
install -d -m 0755 /opt/boot-check
echo "written by the user-data" > /opt/boot-check/marker
cat > /etc/systemd/system/boot-check.service <<'UNIT'
[Unit]
Description=A unit the user-data wrote
After=network-online.target

[Service]
ExecStart=/bin/sh -c 'echo started > /run/boot-check.started; exec sleep infinity'
Restart=always
RuntimeDirectory=boot-check

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now boot-check.service
"#;

const USER_DATA_NOTHING: &str = "#!/bin/bash\ntrue\n";

async fn boot(network: &BootNetwork, host: u8, user_data: &str) -> (BootNode, BootOutcome) {
    let spec = BootSpec {
        instance_id: format!("i-0b00{:012x}", rand_suffix(host)),
        private_ip: network.private_ip(host),
        role: None,
        user_data: user_data.to_owned(),
    };
    let node = BootNode::start(network.host(), &spec).expect("starting a boot node");
    let outcome = node
        .wait_booted(BOOT_TIMEOUT)
        .await
        .expect("the node boots");
    assert_eq!(
        (outcome.system.as_str(), outcome.cloud_init.as_str()),
        ("running", "status: done"),
        "{} booted with failed units [{}]; the user-data's output:\n{}",
        node.name(),
        outcome.failed_units.trim(),
        node.cloud_init_output().await
    );
    println!("{} booted in {:?}", node.name(), outcome.took);
    (node, outcome)
}

/// Instance ids differ between runs and tests, so containers never collide.
fn rand_suffix(host: u8) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    ((nanos ^ std::process::id() as u64) & 0xffff_ffff_ff00) | host as u64
}

async fn run(node: &BootNode, command: &[&str]) -> String {
    let run = node.run(command, EXEC_TIMEOUT).await.expect("docker exec");
    assert!(
        run.success,
        "`{}` failed on {}: {}",
        command.join(" "),
        node.name(),
        run.stderr
    );
    run.stdout.trim().to_owned()
}

#[tokio::test]
#[ignore = "needs Docker and the test node image: make boot-check"]
async fn a_node_boots_systemd_and_runs_user_data_that_starts_the_unit_it_wrote() {
    let network = BootNetwork::create(ImdsOptions::default())
        .await
        .expect("the boot network");
    let (node, _) = boot(&network, 10, USER_DATA_WITH_A_UNIT).await;

    assert_eq!(run(&node, &["cat", "/proc/1/comm"]).await, "systemd");
    assert_eq!(
        run(&node, &["cat", "/opt/boot-check/marker"]).await,
        "written by the user-data"
    );
    assert_eq!(
        run(&node, &["systemctl", "is-active", "boot-check.service"]).await,
        "active"
    );
    assert_eq!(
        run(&node, &["systemctl", "is-enabled", "boot-check.service"]).await,
        "enabled"
    );
    assert_eq!(
        run(&node, &["cat", "/run/boot-check.started"]).await,
        "started"
    );
}

#[tokio::test]
#[ignore = "needs Docker and the test node image: make boot-check"]
async fn curl_on_a_node_reads_its_instance_id_with_an_imdsv2_token_and_is_refused_without() {
    let network = BootNetwork::create(ImdsOptions::default())
        .await
        .expect("the boot network");
    let (node, _) = boot(&network, 11, USER_DATA_NOTHING).await;

    // As the project's user-data asks: a token first, then the metadata with it.
    let token = run(
        &node,
        &[
            "curl",
            "-sSf",
            "-X",
            "PUT",
            "-H",
            "X-aws-ec2-metadata-token-ttl-seconds: 300",
            "http://169.254.169.254/latest/api/token",
        ],
    )
    .await;
    let instance_id = run(
        &node,
        &[
            "curl",
            "-sSf",
            "-H",
            &format!("X-aws-ec2-metadata-token: {token}"),
            "http://169.254.169.254/latest/meta-data/instance-id",
        ],
    )
    .await;
    let expected = network
        .imds()
        .requests()
        .iter()
        .find(|request| request.method == Method::PUT && request.path == TOKEN_PATH)
        .map(|request| request.source)
        .expect("the stand-in saw the token request");
    assert_eq!(expected, node.aws_ip(), "the request came from the node");
    assert!(
        instance_id.starts_with("i-0b00") && node.name().ends_with(&instance_id),
        "{} read instance id {instance_id:?}",
        node.name()
    );

    let without_token = run(
        &node,
        &[
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://169.254.169.254/latest/meta-data/instance-id",
        ],
    )
    .await;
    assert_eq!(without_token, "401", "metadata without a token");
}
