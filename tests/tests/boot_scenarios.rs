//! Nodes that boot as EC2 boots them, from the stack's own user-data
//! (tests/src/booted_cluster.rs): the script fetches etcd and the agent from
//! the artifact bucket and checks their pins, installs the CloudWatch agent,
//! writes the units and starts them; the agent asks the metadata service who
//! it is, and the readiness unit signals CloudFormation. What differs from
//! EC2 is listed in tests/ec2-differences/README.md.
//!
//! They need Docker and the test node image (`make boot-image`), so they are
//! ignored by a plain `cargo test`: `make test` builds the image and runs the
//! formation scenario, `make boot-check` runs them all.

use std::time::Duration;

use etcd_aws_core::contract::events;
use etcd_aws_template::names::{logical, AGENT_UNIT};
use etcd_aws_tests::agent_log;
use etcd_aws_tests::booted_cluster::{harness_s3, BootedNode, STACK_NAME};
use etcd_aws_tests::functions::LifecycleOnQueue;
use etcd_aws_tests::sim_cluster::{wait_for, SimCluster};
use etcd_aws_tests::stand_in::imds::{ImdsOptions, SlowStart};
use etcd_aws_tests::stand_in::{Caller, ResourceSignal, StandInOptions};
use http::StatusCode;

/// Booting, both downloads, the CloudWatch agent and forming a cluster at the
/// agent's production settings: 30 to 40 s here.
const FORMATION_TIMEOUT: Duration = Duration::from_secs(180);
/// A replacement boots, joins as a learner and is promoted.
const REPLACEMENT_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the CloudWatch agent may take to ship a line once it is written.
const SHIPPING_TIMEOUT: Duration = Duration::from_secs(60);

async fn booted_cluster() -> SimCluster<BootedNode> {
    SimCluster::boot(StandInOptions::default())
        .await
        .expect("the stand-in with a boot node on each instance")
}

/// The SUCCESS signals the stand-in recorded, by instance id.
fn successes(cluster: &SimCluster<BootedNode>) -> Vec<String> {
    let mut ids: Vec<String> = cluster
        .stand_in
        .stack_signals()
        .into_iter()
        .filter(|signal| signal.status == "SUCCESS")
        .map(|signal| signal.unique_id)
        .collect();
    ids.sort();
    ids
}

fn failures(cluster: &SimCluster<BootedNode>) -> Vec<ResourceSignal> {
    cluster
        .stand_in
        .stack_signals()
        .into_iter()
        .filter(|signal| signal.status != "SUCCESS")
        .collect()
}

/// Waits until exactly the instances `ids` have signalled SUCCESS (the
/// readiness unit checks every 10 s), and checks that none signalled FAILURE.
async fn every_node_signals_success_and_none_failure(
    cluster: &SimCluster<BootedNode>,
    ids: &[String],
) {
    wait_for(
        "a SUCCESS signal from every node",
        FORMATION_TIMEOUT,
        || async {
            let signalled = successes(cluster);
            anyhow::ensure!(signalled == ids, "signalled so far: {signalled:?}");
            Ok(())
        },
    )
    .await
    .expect("every node signals SUCCESS");
    assert_eq!(failures(cluster), Vec::new(), "no node signals FAILURE");
}

/// Every signal names the stack and its Auto Scaling group, as the creation
/// and update policies expect them.
fn assert_signals_name_the_group(cluster: &SimCluster<BootedNode>) {
    for signal in cluster.stand_in.stack_signals() {
        assert_eq!(
            (
                signal.stack_name.as_str(),
                signal.logical_resource_id.as_str()
            ),
            (STACK_NAME, logical::AUTO_SCALING_GROUP),
            "{signal:?}"
        );
    }
}

/// The agent's JSON lines as the CloudWatch agent shipped them to the
/// instance's stream of the nodes' log group.
async fn shipped_lines(
    cluster: &SimCluster<BootedNode>,
    instance_id: &str,
) -> anyhow::Result<String> {
    let config = cluster.stand_in.sdk_config_as(Caller::Harness).await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let events = logs
        .get_log_events()
        .log_group_name(&cluster.settings().artifacts().log_group)
        .log_stream_name(instance_id)
        .start_from_head(true)
        .send()
        .await?;
    Ok(events
        .events()
        .iter()
        .filter_map(|event| event.message())
        .collect::<Vec<_>>()
        .join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and the test node image: make test and make boot-check run it"]
async fn a_stack_forms_from_its_user_data_and_a_terminated_node_is_replaced_by_one_booted_alike() {
    let cluster = booted_cluster().await;
    let _lifecycle = LifecycleOnQueue::start(&cluster.stand_in)
        .await
        .expect("the lifecycle function on its queue");

    // Three instances boot from the user-data; each signals SUCCESS once it
    // is a healthy voting member, and no step of any script failed.
    let formed = cluster
        .wait_healthy(3, FORMATION_TIMEOUT)
        .await
        .expect("three booted nodes form a cluster");
    let first = cluster.instance_ids();
    every_node_signals_success_and_none_failure(&cluster, &first).await;

    // The agents ran with no identity flags: each learned its instance id
    // and address from the metadata service, with a token.
    for id in &first {
        cluster
            .with_node(id, |node| {
                let show = node
                    .boot_node()
                    .exec_blocking(&["systemctl", "show", "--property=ExecStart", AGENT_UNIT])
                    .expect("systemctl show");
                assert!(
                    !show.contains("--instance-id") && !show.contains("--private-ip"),
                    "{id}'s agent was given its identity: {show}"
                );
            })
            .expect("the node runs");
    }
    let imds = cluster.settings().imds().requests();
    for path in [
        "/latest/meta-data/instance-id",
        "/latest/meta-data/local-ipv4",
    ] {
        let asked = imds
            .iter()
            .filter(|request| request.path == path && request.with_token)
            .count();
        assert!(
            asked >= 3,
            "{path} was asked {asked} times with a token: {imds:?}"
        );
    }

    // Each node's lines reach the log group, in a stream named for its
    // instance: among them the agent's own, saying it is ready.
    for id in &first {
        wait_for(
            &format!("{id}'s ready line in the log group"),
            SHIPPING_TIMEOUT,
            || async {
                let shipped = shipped_lines(&cluster, id).await?;
                anyhow::ensure!(
                    agent_log::events(&shipped, events::READY)
                        .iter()
                        .any(|line| line["member"] == id.as_str()),
                    "not yet; shipped so far:\n{shipped}"
                );
                Ok(())
            },
        )
        .await
        .expect("the CloudWatch agent ships the node's log file");
    }

    // The group terminates one instance: the lifecycle function removes its
    // member (`wait_healthy` accepts no member of a departed instance), and
    // the instance the group launches boots from the same user-data, joins
    // and signals SUCCESS.
    let victim = first[0].clone();
    cluster
        .stand_in
        .terminate(&victim)
        .await
        .expect("terminating an instance");
    wait_for(
        "the terminated instance to go",
        REPLACEMENT_TIMEOUT,
        || async {
            let ids = cluster.instance_ids();
            anyhow::ensure!(!ids.contains(&victim), "instances: {ids:?}");
            Ok(())
        },
    )
    .await
    .expect("the lifecycle function lets the instance go");
    let after = cluster
        .wait_healthy(3, REPLACEMENT_TIMEOUT)
        .await
        .expect("the replacement boots and joins");
    assert_eq!(after.cluster_id, formed.cluster_id, "the same cluster");
    let now = cluster.instance_ids();
    let newcomer = now
        .iter()
        .find(|id| !first.contains(id))
        .expect("a new instance")
        .clone();
    wait_for(
        "the replacement's SUCCESS signal",
        REPLACEMENT_TIMEOUT,
        || async {
            anyhow::ensure!(successes(&cluster).contains(&newcomer), "not yet");
            Ok(())
        },
    )
    .await
    .expect("the replacement signals SUCCESS");
    assert_eq!(failures(&cluster), Vec::new(), "no node signals FAILURE");
    assert_signals_name_the_group(&cluster);
}

/// `systemctl show --property=NAME --value UNIT` on a node.
fn unit_property(cluster: &SimCluster<BootedNode>, id: &str, property: &str) -> String {
    cluster
        .with_node(id, |node| {
            node.boot_node().exec_blocking(&[
                "systemctl",
                "show",
                &format!("--property={property}"),
                "--value",
                AGENT_UNIT,
            ])
        })
        .and_then(|shown| shown)
        .unwrap_or_else(|error| panic!("reading {property} of {AGENT_UNIT} on {id}: {error:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and the test node image: make boot-check runs it"]
async fn an_agent_killed_by_hand_is_restarted_by_systemd_and_rejoins_as_the_same_member() {
    let cluster = booted_cluster().await;
    let formed = cluster
        .wait_healthy(3, FORMATION_TIMEOUT)
        .await
        .expect("three booted nodes form a cluster");
    let victim = cluster.instance_ids()[0].clone();
    let member = formed
        .members
        .iter()
        .find(|member| member.name == victim)
        .expect("the victim's member")
        .id;
    let pid = unit_property(&cluster, &victim, "MainPID");
    assert_eq!(unit_property(&cluster, &victim, "NRestarts"), "0");

    // Not through systemd: as an out-of-memory kill or a crash would end it.
    cluster
        .with_node(&victim, |node| {
            node.boot_node().exec_blocking(&["kill", "-KILL", &pid])
        })
        .expect("the node runs")
        .expect("kill -KILL the agent");
    wait_for(
        "systemd to restart the agent",
        Duration::from_secs(60),
        || async {
            let restarts = unit_property(&cluster, &victim, "NRestarts");
            anyhow::ensure!(restarts != "0", "NRestarts is {restarts}");
            Ok(())
        },
    )
    .await
    .expect("Restart=always restarts the agent");
    let after = cluster
        .wait_healthy(3, REPLACEMENT_TIMEOUT)
        .await
        .expect("the restarted agent rejoins");
    assert_eq!(after.cluster_id, formed.cluster_id, "the same cluster");
    let rejoined = after
        .members
        .iter()
        .find(|member| member.name == victim)
        .expect("the victim is a member again");
    assert_eq!(
        rejoined.id, member,
        "the same member, from the same data dir"
    );
    assert_ne!(
        unit_property(&cluster, &victim, "MainPID"),
        pid,
        "a new agent process"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and the test node image: make boot-check runs it"]
async fn a_node_whose_agent_does_not_match_its_pin_signals_failure_and_installs_nothing() {
    let cluster = SimCluster::boot(StandInOptions {
        group_size: 1,
        ..StandInOptions::default()
    })
    .await
    .expect("the stand-in with a boot node on its instance");
    cluster
        .wait_healthy(1, FORMATION_TIMEOUT)
        .await
        .expect("the first node forms a cluster");
    let first = cluster.instance_ids();

    // Whoever may write to the artifact bucket replaces the agent.
    let artifacts = cluster.settings().artifacts().clone();
    harness_s3(&cluster.stand_in)
        .await
        .put_object()
        .bucket(&artifacts.bucket)
        .key(&artifacts.agent_key)
        .body(
            b"#!/bin/sh\necho 'not the agent the stack pins'\n"
                .to_vec()
                .into(),
        )
        .send()
        .await
        .expect("replacing the agent in the artifact bucket");
    cluster
        .stand_in
        .set_desired_capacity(2)
        .await
        .expect("the group launches another instance");

    let failed = wait_for(
        "a FAILURE signal from the new instance",
        FORMATION_TIMEOUT,
        || async {
            let failed = failures(&cluster);
            anyhow::ensure!(!failed.is_empty(), "none yet");
            Ok(failed)
        },
    )
    .await
    .expect("the new node signals FAILURE");
    assert_eq!(failed.len(), 1, "{failed:?}");
    let newcomer = failed[0].unique_id.clone();
    assert!(
        !first.contains(&newcomer),
        "the new instance signalled it: {failed:?}"
    );
    assert_signals_name_the_group(&cluster);

    let (output, installed, unit) = cluster
        .with_node(&newcomer, |node| {
            let node = node.boot_node();
            (
                node.exec_blocking(&["cat", "/var/log/cloud-init-output.log"]),
                node.exec_blocking(&["ls", etcd_aws_template::names::INSTALL_DIR]),
                node.exec_blocking(&["systemctl", "cat", AGENT_UNIT]),
            )
        })
        .expect("the new node runs");
    let output = output.expect("the user-data's output");
    let agent_url = format!("s3://{}/{}", artifacts.bucket, artifacts.agent_key);
    assert!(
        output.contains(&agent_url) && output.contains(&artifacts.agent_sha256),
        "the output names the file and the pin it missed:\n{output}"
    );
    assert!(
        installed.as_deref().unwrap_or_default().trim().is_empty(),
        "nothing is installed: {installed:?}"
    );
    assert!(unit.is_err(), "no unit is written: {unit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and the test node image: make boot-check runs it"]
async fn every_node_lost_at_once_is_restored_from_the_backup_by_nodes_booted_from_the_user_data() {
    let cluster = booted_cluster().await;
    cluster
        .wait_healthy(3, FORMATION_TIMEOUT)
        .await
        .expect("three booted nodes form a cluster");
    let mut client = cluster.client().await.expect("a client");
    for index in 0..20 {
        client
            .put(format!("boot/{index:02}"), format!("value {index}"), None)
            .await
            .expect("a write");
    }
    let backup = cluster.backup_now().await.expect("a backup");
    drop(client);

    // Every instance and its disk are lost; the group launches three new
    // ones, which boot from the same user-data and restore the backup.
    let lost = cluster
        .lose_every_instance()
        .await
        .expect("losing every instance");
    cluster
        .wait_healthy(3, FORMATION_TIMEOUT)
        .await
        .expect("the new nodes restore the cluster");
    let now = cluster.instance_ids();
    assert!(
        now.iter().all(|id| !lost.contains(id)),
        "new instances: {now:?}, lost: {lost:?}"
    );
    let mut client = cluster.client().await.expect("a client");
    let read = client
        .get("boot/", Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .expect("reading the restored keys");
    assert_eq!(read.kvs().len(), 20, "every key of the backup");
    assert!(
        read.header().map_or(0, |header| header.revision()) > backup.revision,
        "revisions go on after the backup's {}",
        backup.revision
    );
    assert_eq!(failures(&cluster), Vec::new(), "no node signals FAILURE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and the test node image: make boot-check runs it"]
async fn nodes_boot_and_form_while_the_metadata_service_is_unavailable_at_first() {
    // 503 for 30 s from just before the nodes start: the user-data's first
    // requests (about 5 s into a boot) meet it, and so may the agent's.
    let slow = ImdsOptions {
        slow_start: SlowStart::Unavailable,
        slow_start_for: Duration::from_secs(30),
    };
    let cluster = SimCluster::boot_with(StandInOptions::default(), slow)
        .await
        .expect("the stand-in with a boot node on each instance");
    cluster
        .wait_healthy(3, FORMATION_TIMEOUT)
        .await
        .expect("the nodes form a cluster once the metadata service answers");
    let requests = cluster.settings().imds().requests();
    for id in cluster.instance_ids() {
        let source = cluster
            .with_node(&id, |node| node.boot_node().aws_ip())
            .expect("the node runs");
        let statuses: Vec<StatusCode> = requests
            .iter()
            .filter(|request| request.source == source)
            .map(|request| request.status)
            .collect();
        let first_answer = statuses.iter().position(StatusCode::is_success);
        assert!(
            statuses.first() == Some(&StatusCode::SERVICE_UNAVAILABLE) && first_answer.is_some(),
            "{id} met the slow start and then got answers: {statuses:?}"
        );
    }
    every_node_signals_success_and_none_failure(&cluster, &cluster.instance_ids()).await;
}
