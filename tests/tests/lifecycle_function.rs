//! Scenarios: the lifecycle function, run through the Lambda Runtime API against
//! the stand-in and real etcd, removes the members of terminating instances.
//!
//! Needs `cargo build -p etcd-aws -p etcd-aws-lifecycle` first (the harness runs
//! the built binaries).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use etcd_aws_core::membership::member::Member;
use etcd_aws_io::etcd::admin::{EtcdAdmin, EtcdTimeouts};
use etcd_aws_tests::event_source::{EventSourceOptions, Invoke, SqsEventSource};
use etcd_aws_tests::lambda::{FunctionSpec, LambdaFunction};
use etcd_aws_tests::node::{Node, NodeSpec};
use etcd_aws_tests::paths::EtcdRelease;
use etcd_aws_tests::sim_cluster::{
    client_options, snapshot_via, wait_for, SimCluster, HARNESS_TIMEOUTS,
};
use etcd_aws_tests::stand_in::{ActionOutcome, Caller, StandIn, StandInOptions};
use etcd_client::Client;
use serde_json::{json, Value};
use tokio::time::Instant;

const SETTLE: Duration = Duration::from_secs(90);
/// Well under the stand-in hook's 60 s heartbeat timeout: an action that
/// completes in this time was completed by the function, not by the timeout.
const REMOVAL: Duration = Duration::from_secs(45);
/// Bounds the write loop by count as well as by time.
const MAX_WRITES: usize = 2_000;

async fn start_function(
    stand_in: &StandIn,
    log_dir: &std::path::Path,
) -> anyhow::Result<LambdaFunction> {
    let mut env = stand_in.env();
    env.extend(stand_in.functions_tls_env());
    env.extend(
        [
            ("ETCD_AWS_GROUP_NAME", stand_in.group_name()),
            ("ETCD_AWS_RETRY_FOR", "20s"),
            ("ETCD_AWS_ETCD_TIMEOUT", "500ms"),
            ("ETCD_AWS_HEARTBEAT_INTERVAL", "5s"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    LambdaFunction::start(FunctionSpec {
        binary: "etcd-aws-lifecycle".to_owned(),
        function_name: "etcd-lifecycle".to_owned(),
        timeout: Duration::from_secs(60),
        env,
        log_file: log_dir.join("lifecycle-function.log"),
    })
    .await
}

/// The function's JSON log records whose message is `message`.
fn logged(function: &LambdaFunction, message: &str) -> Vec<Value> {
    function
        .log_records()
        .into_iter()
        .filter(|r| r.get("message").and_then(Value::as_str) == Some(message))
        .collect()
}

fn logged_for(function: &LambdaFunction, message: &str, member_name: &str) -> usize {
    logged(function, message)
        .iter()
        .filter(|r| r.get("member_name").and_then(Value::as_str) == Some(member_name))
        .count()
}

/// The instance whose member leads, and one whose member follows.
async fn leader_and_follower(cluster: &SimCluster) -> anyhow::Result<(String, String)> {
    let snapshot = cluster.snapshot().await?;
    let mut admin = EtcdAdmin::connect(
        &cluster.client_urls(),
        &cluster.stand_in.etcd_access(EtcdTimeouts::default()),
    )
    .await?;
    let leader_id = admin
        .status()
        .await?
        .leader_id
        .ok_or_else(|| anyhow::anyhow!("the member asked knows no leader"))?;
    let name = |m: &Member| m.name.clone();
    let leader = snapshot
        .members
        .iter()
        .find(|m| m.id == leader_id)
        .map(name);
    let follower = snapshot
        .members
        .iter()
        .find(|m| m.id != leader_id)
        .map(name);
    match (leader, follower) {
        (Some(leader), Some(follower)) => Ok((leader, follower)),
        _ => anyhow::bail!("no leader {leader_id} among {:?}", snapshot.members),
    }
}

async fn action_outcome(stand_in: &StandIn, instance_id: &str) -> Option<ActionOutcome> {
    stand_in
        .lifecycle_actions()
        .into_iter()
        .find(|a| a.instance_id == instance_id)
        .and_then(|a| a.outcome)
}

/// Writes keys through the cluster until `done` holds, and records how long
/// the cluster went without acknowledging a write.
struct Writes {
    acknowledged: Vec<String>,
    failed_attempts: usize,
    longest_gap: Duration,
}

async fn write_until<F, Fut>(
    cluster: &SimCluster,
    prefix: &str,
    timeout: Duration,
    mut done: F,
) -> anyhow::Result<Writes>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let options = client_options(
        &cluster.etcd_access(),
        Duration::from_millis(500),
        Duration::from_secs(2),
    );
    let mut writes = Writes {
        acknowledged: Vec::new(),
        failed_attempts: 0,
        longest_gap: Duration::ZERO,
    };
    let (start, mut last_ack) = (Instant::now(), Instant::now());
    for i in 0..MAX_WRITES {
        if done().await {
            return Ok(writes);
        }
        anyhow::ensure!(start.elapsed() < timeout, "timed out after {timeout:?}");
        let key = format!("{prefix}/{i}");
        let written = async {
            let mut client = Client::connect(cluster.client_urls(), Some(options.clone())).await?;
            client.put(key.clone(), "v", None).await
        };
        match written.await {
            Ok(_) => {
                writes.longest_gap = writes.longest_gap.max(last_ack.elapsed());
                last_ack = Instant::now();
                writes.acknowledged.push(key);
            }
            Err(_) => writes.failed_attempts += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("gave up after {MAX_WRITES} writes")
}

async fn assert_present(cluster: &SimCluster, keys: &[String]) -> anyhow::Result<()> {
    let mut client = Client::connect(cluster.client_urls(), Some(cluster.client_options())).await?;
    for key in keys {
        let found = client.get(key.as_str(), None).await?.kvs().len();
        assert_eq!(found, 1, "acknowledged key {key} is lost");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_a_follower_then_the_leader_removes_each_member_and_the_cluster_keeps_serving(
) -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    let before = cluster.wait_healthy(3, SETTLE).await?;
    let logs = tempfile::tempdir()?;
    let function = Arc::new(start_function(&cluster.stand_in, logs.path()).await?);
    let source =
        Arc::new(SqsEventSource::new(&cluster.stand_in, EventSourceOptions::default()).await?);
    let _polling = source.run(Arc::clone(&function) as Arc<dyn Invoke>);

    // Scale-in picks a follower: the hook holds it and the function is invoked.
    let (_, follower) = leader_and_follower(&cluster).await?;
    let started = Instant::now();
    cluster.stand_in.terminate(&follower).await?;
    let follower_writes = write_until(&cluster, "during-follower", REMOVAL, || async {
        action_outcome(&cluster.stand_in, &follower).await.is_some()
    })
    .await?;
    println!(
        "follower: action completed {:?} after the termination began",
        started.elapsed()
    );
    assert_eq!(
        action_outcome(&cluster.stand_in, &follower).await,
        Some(ActionOutcome::Continue),
        "function log:\n{}",
        function.log()
    );
    assert_eq!(logged_for(&function, "removed member", &follower), 1);

    // The replacement joins through the bootstrap; the removed member is gone.
    let after_follower = cluster.wait_healthy(3, SETTLE).await?;
    assert!(after_follower.members.iter().all(|m| m.name != follower));

    // Now the leader: leadership moves before its member is removed.
    let (leader, _) = leader_and_follower(&cluster).await?;
    let started = Instant::now();
    cluster.stand_in.terminate(&leader).await?;
    let leader_writes = write_until(&cluster, "during-leader", REMOVAL, || async {
        action_outcome(&cluster.stand_in, &leader).await.is_some()
    })
    .await?;
    println!(
        "leader: action completed {:?} after the termination began",
        started.elapsed()
    );
    assert_eq!(
        action_outcome(&cluster.stand_in, &leader).await,
        Some(ActionOutcome::Continue),
        "function log:\n{}",
        function.log()
    );
    assert_eq!(
        logged_for(
            &function,
            "member to remove leads the cluster; moving leadership first",
            &leader
        ),
        1,
        "function log:\n{}",
        function.log()
    );
    assert_eq!(logged_for(&function, "removed member", &leader), 1);

    let after = cluster.wait_healthy(3, SETTLE).await?;
    assert_eq!(after.cluster_id, before.cluster_id);
    assert!(after
        .members
        .iter()
        .all(|m| m.name != leader && m.name != follower));

    // Writes went on throughout, and every acknowledged one is there.
    for (phase, writes) in [("follower", &follower_writes), ("leader", &leader_writes)] {
        println!(
            "{phase} removal: {} writes acknowledged, {} failed attempts, longest gap {:?}",
            writes.acknowledged.len(),
            writes.failed_attempts,
            writes.longest_gap
        );
        assert!(
            !writes.acknowledged.is_empty(),
            "no write succeeded during the {phase} removal"
        );
        assert!(
            writes.longest_gap < Duration::from_secs(10),
            "writes stalled for {:?} during the {phase} removal",
            writes.longest_gap
        );
        assert_present(&cluster, &writes.acknowledged).await?;
    }
    // Every message the source delivered (the hook's test notification too) succeeded.
    for delivery in source.deliveries() {
        for message in &delivery.messages {
            assert!(delivery.succeeded(&message.message_id), "{delivery:?}");
        }
    }
    Ok(())
}

/// Takes the terminating notification for `instance_id` (and any test
/// notification) off the queue, as records the event source would deliver.
async fn take_messages(
    source: &SqsEventSource,
    instance_id: &str,
) -> anyhow::Result<(Value, Option<Value>)> {
    let test_notification = std::sync::Mutex::new(None);
    let record = wait_for(
        "the terminating notification",
        Duration::from_secs(20),
        || async {
            for message in source.receive().await? {
                let body = message.body().unwrap_or_default();
                if body.contains("autoscaling:TEST_NOTIFICATION") {
                    if let Ok(mut slot) = test_notification.lock() {
                        *slot = Some(source.record(&message));
                    }
                } else if body.contains(instance_id) {
                    return Ok(source.record(&message));
                }
            }
            anyhow::bail!("not on the queue yet")
        },
    )
    .await?;
    let test_notification = test_notification.into_inner().unwrap_or_default();
    Ok((record, test_notification))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_message_delivered_twice_removes_the_member_once_and_succeeds_both_times(
) -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let logs = tempfile::tempdir()?;
    let function = start_function(&cluster.stand_in, logs.path()).await?;
    let source = SqsEventSource::new(&cluster.stand_in, EventSourceOptions::default()).await?;
    let (_, victim) = leader_and_follower(&cluster).await?;
    cluster.stand_in.terminate(&victim).await?;
    let (record, _) = take_messages(&source, &victim).await?;
    let event = json!({ "Records": [record] });

    // SQS delivers at least once: the same message arrives again after the first
    // invocation removed the member, completed the action and the instance went.
    let first = function.invoke(&event).await?;
    wait_for("the instance to be terminated", SETTLE, || async {
        let gone = !cluster
            .stand_in
            .instances()
            .await?
            .iter()
            .any(|i| i.id == victim);
        anyhow::ensure!(gone, "still in the group");
        Ok(())
    })
    .await?;
    let second = function.invoke(&event).await?;

    assert_eq!(first, json!({"batchItemFailures": []}));
    assert_eq!(second, json!({"batchItemFailures": []}));
    assert_eq!(logged_for(&function, "removed member", &victim), 1);
    let handled: Vec<String> = logged(&function, "message handled")
        .iter()
        .filter_map(|r| r.get("outcome").and_then(Value::as_str).map(str::to_owned))
        .collect();
    assert_eq!(handled.len(), 2, "{handled:?}");
    assert!(
        handled[0].starts_with("Removed") && handled[0].contains("completion: Completed"),
        "{handled:?}"
    );
    assert!(
        handled[1].starts_with("AlreadyGone") && handled[1].contains("AlreadyCompleted"),
        "{handled:?}"
    );
    assert_eq!(
        action_outcome(&cluster.stand_in, &victim).await,
        Some(ActionOutcome::Continue)
    );
    cluster.wait_healthy(3, SETTLE).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_batch_fails_exactly_the_garbage_and_the_unknown_instance() -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let logs = tempfile::tempdir()?;
    let function = start_function(&cluster.stand_in, logs.path()).await?;
    let source = SqsEventSource::new(&cluster.stand_in, EventSourceOptions::default()).await?;
    let (_, victim) = leader_and_follower(&cluster).await?;
    cluster.stand_in.terminate(&victim).await?;
    let (valid, test_notification) = take_messages(&source, &victim).await?;
    let test_notification = test_notification
        .context("the stand-in posts the hook's test notification when the hook is created")?;

    // Garbage, and a well-formed notification for an instance nobody knows.
    let mut garbage = valid.clone();
    garbage["messageId"] = json!("garbage-1");
    garbage["body"] = json!("this is not a lifecycle notification");
    let mut unknown = valid.clone();
    unknown["messageId"] = json!("unknown-1");
    let unknown_body = valid["body"]
        .as_str()
        .unwrap_or_default()
        .replace(&victim, "i-0123456789abcdef0");
    unknown["body"] = json!(unknown_body);
    let valid_id = valid["messageId"].clone();
    let test_id = test_notification["messageId"].clone();

    let answer = function
        .invoke(&json!({ "Records": [valid, garbage, test_notification, unknown] }))
        .await?;

    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "garbage-1"}, {"itemIdentifier": "unknown-1"}]}),
        "function log:\n{}",
        function.log()
    );
    assert_ne!(valid_id, test_id);
    assert_eq!(logged_for(&function, "removed member", &victim), 1);
    assert_eq!(
        action_outcome(&cluster.stand_in, &victim).await,
        Some(ActionOutcome::Continue)
    );
    let log = function.log();
    assert!(log.contains("hook test notification acknowledged"), "{log}");
    assert!(
        log.contains("is known neither to its group nor to EC2"),
        "{log}"
    );
    assert!(log.contains("the message body is not JSON"), "{log}");
    Ok(())
}

/// Nodes for the group's current instances only: an instance launched later
/// gets none, like one that is still booting.
async fn start_nodes(stand_in: &StandIn, root: &std::path::Path) -> anyhow::Result<Vec<Node>> {
    let mut nodes = Vec::new();
    for instance in stand_in.instances().await? {
        nodes.push(Node::start(NodeSpec {
            instance_id: instance.id.clone(),
            private_ip: instance.private_ip,
            group_name: stand_in.group_name().to_owned(),
            aws_env: stand_in.env_as(Caller::Node),
            root: root.join(&instance.id),
            agent_args: Vec::new(),
            extra_args: Vec::new(),
            backup_bucket: None,
            tls_ca_secret: stand_in.pki().map(|pki| pki.ca_secret.clone()),
            tls_functions_secret: None,
            etcd: EtcdRelease::default(),
        })?);
    }
    Ok(nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_removes_the_member_of_an_instance_that_vanished_without_a_message(
) -> anyhow::Result<()> {
    let stand_in = StandIn::start(StandInOptions::default()).await?;
    let root = tempfile::tempdir()?;
    let mut nodes = start_nodes(&stand_in, root.path()).await?;
    let urls: Vec<String> = nodes.iter().map(|n| n.spec().client_url()).collect();
    let access = stand_in.etcd_access(HARNESS_TIMEOUTS);
    wait_for("three voting members", SETTLE, || async {
        let snapshot = snapshot_via(&urls[0], &access).await?;
        let voters = snapshot
            .members
            .iter()
            .filter(|m| !m.is_learner && !m.is_unstarted())
            .count();
        anyhow::ensure!(voters == 3, "{} voters", voters);
        Ok(())
    })
    .await?;

    // An instance dies and leaves the group; its lifecycle message is lost.
    let victim = nodes.remove(0);
    let victim_id = victim.instance_id().to_owned();
    drop(victim);
    stand_in.vanish(&victim_id).await?;

    // The schedule fires.
    let function = start_function(&stand_in, root.path()).await?;
    let report = function.invoke(&json!({"reconcile": true})).await?;

    let removed: Vec<&str> = report["removed"]
        .as_array()
        .map(|r| r.iter().filter_map(|m| m["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        removed,
        [victim_id.as_str()],
        "{report}\n{}",
        function.log()
    );
    assert_eq!(report["refused"], json!([]));
    let members = snapshot_via(&urls[1], &access).await?.members;
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(members.iter().all(|m| m.name != victim_id));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrecognised_event_comes_back_as_a_function_error_through_the_runtime_api(
) -> anyhow::Result<()> {
    let logs = tempfile::tempdir()?;
    let function = LambdaFunction::start(FunctionSpec {
        binary: "etcd-aws-lifecycle".to_owned(),
        function_name: "etcd-lifecycle".to_owned(),
        timeout: Duration::from_secs(10),
        env: vec![
            ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
            // No cluster behind it: only the event's shape is under test.
            ("ETCD_AWS_INSECURE_PLAINTEXT".to_owned(), "true".to_owned()),
        ],
        log_file: logs.path().join("function.log"),
    })
    .await?;

    let answer = function.invoke(&json!({"hello": "world"})).await;

    let error = answer.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("unrecognised event"), "{error}");
    // The runtime keeps serving after a failed invocation.
    let again = function.invoke(&json!({"reconcile": false})).await;
    assert!(again.is_err());
    assert_eq!(function.runtime_api().invocations().len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_failing_ends_in_the_dead_letter_queue() -> anyhow::Result<()> {
    let stand_in = StandIn::start(StandInOptions::default()).await?;
    let logs = tempfile::tempdir()?;
    let function = start_function(&stand_in, logs.path()).await?;
    let options = EventSourceOptions {
        visibility_timeout: Duration::from_secs(1),
        ..EventSourceOptions::default()
    };
    let source = SqsEventSource::new(&stand_in, options.clone()).await?;
    let sqs = aws_sdk_sqs::Client::new(&stand_in.sdk_config().await);
    let sent = sqs
        .send_message()
        .queue_url(stand_in.queue_url())
        .message_body("poison")
        .send()
        .await?;
    let poison = sent.message_id().unwrap_or_default().to_owned();

    // Every delivery fails it; after maxReceiveCount receives SQS moves it.
    let dead_letters =
        SqsEventSource::for_queue(&stand_in, stand_in.dead_letter_queue_url(), options).await?;
    let dead = wait_for(
        "the poison message in the dead-letter queue",
        Duration::from_secs(30),
        || async {
            source.poll_once(&function).await?;
            let moved = dead_letters.receive().await?;
            anyhow::ensure!(!moved.is_empty(), "not moved yet");
            Ok(moved)
        },
    )
    .await?;

    assert_eq!(
        dead.iter()
            .filter_map(|m| m.message_id())
            .collect::<Vec<_>>(),
        [poison.as_str()]
    );
    let poison_deliveries: Vec<_> = source
        .deliveries()
        .into_iter()
        .filter(|d| d.messages.iter().any(|m| m.message_id == poison))
        .collect();
    assert!(poison_deliveries.len() >= 2, "{poison_deliveries:?}");
    assert!(poison_deliveries.iter().all(|d| !d.succeeded(&poison)));
    Ok(())
}
