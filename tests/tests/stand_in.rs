//! The local AWS stand-in against real moto, used through the Rust AWS SDK as the
//! programs under test use it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_autoscaling::config::retry::RetryConfig;
use aws_sdk_autoscaling::error::ProvideErrorMetadata;
use etcd_aws_tests::stand_in::{
    ActionOutcome, FaultRule, HookOptions, HookResult, InstanceEvent, StandIn, StandInOptions,
};
use tokio::sync::broadcast;

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

async fn stand_in() -> anyhow::Result<StandIn> {
    StandIn::start(StandInOptions::default()).await
}

async fn stand_in_with_hook(
    heartbeat_timeout: Duration,
    default_result: HookResult,
) -> anyhow::Result<StandIn> {
    StandIn::start(StandInOptions {
        lifecycle_hook: Some(HookOptions {
            heartbeat_timeout,
            default_result,
        }),
        ..StandInOptions::default()
    })
    .await
}

async fn autoscaling(stand_in: &StandIn) -> aws_sdk_autoscaling::Client {
    aws_sdk_autoscaling::Client::new(&stand_in.sdk_config().await)
}

/// Without SDK retries, so every injected fault reaches the test.
async fn autoscaling_without_retries(stand_in: &StandIn) -> aws_sdk_autoscaling::Client {
    let config = aws_sdk_autoscaling::config::Builder::from(&stand_in.sdk_config().await)
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_autoscaling::Client::from_conf(config)
}

async fn sqs(stand_in: &StandIn) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&stand_in.sdk_config().await)
}

async fn sqs_without_retries(stand_in: &StandIn) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::config::Builder::from(&stand_in.sdk_config().await)
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

async fn first_instance(stand_in: &StandIn) -> anyhow::Result<String> {
    let instances = stand_in.instances().await?;
    Ok(instances
        .first()
        .context("the group has no instances")?
        .id
        .clone())
}

async fn next_event(
    events: &mut broadcast::Receiver<InstanceEvent>,
) -> anyhow::Result<InstanceEvent> {
    Ok(tokio::time::timeout(EVENT_TIMEOUT, events.recv())
        .await
        .context("no instance event in time")??)
}

/// Lifecycle messages (not TEST_NOTIFICATIONs) on the hook's queue, deleting what it
/// reads; gives up after `polls` one-second long polls.
async fn lifecycle_messages(
    stand_in: &StandIn,
    polls: usize,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let sqs = sqs(stand_in).await;
    let mut found = Vec::new();
    for _ in 0..polls {
        let answer = sqs
            .receive_message()
            .queue_url(stand_in.queue_url())
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await?;
        let messages = answer.messages();
        if messages.is_empty() && !found.is_empty() {
            break;
        }
        for message in messages {
            if let Some(handle) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(stand_in.queue_url())
                    .receipt_handle(handle)
                    .send()
                    .await?;
            }
            let body: serde_json::Value = serde_json::from_str(message.body().unwrap_or_default())?;
            if body.get("Event").is_none() {
                found.push(body);
            }
        }
    }
    Ok(found)
}

async fn lifecycle_state_via_sdk(stand_in: &StandIn, instance_id: &str) -> anyhow::Result<String> {
    let answer = autoscaling(stand_in)
        .await
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(stand_in.group_name())
        .send()
        .await?;
    let state = answer
        .auto_scaling_groups()
        .iter()
        .flat_map(|group| group.instances())
        .find(|instance| instance.instance_id() == Some(instance_id))
        .and_then(|instance| instance.lifecycle_state())
        .map(|state| state.as_str().to_owned());
    state.with_context(|| format!("{instance_id} is not in the group"))
}

async fn complete_by_instance(
    stand_in: &StandIn,
    instance_id: &str,
) -> Result<(), aws_sdk_autoscaling::Error> {
    autoscaling_without_retries(stand_in)
        .await
        .complete_lifecycle_action()
        .auto_scaling_group_name(stand_in.group_name())
        .lifecycle_hook_name(stand_in.lifecycle_hook_name())
        .instance_id(instance_id)
        .lifecycle_action_result("CONTINUE")
        .send()
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_group_of_three_gets_three_loopback_ips_in_its_subnet() -> anyhow::Result<()> {
    let stand_in = stand_in().await?;
    let instances = stand_in.instances().await?;
    let ips: BTreeSet<_> = instances.iter().map(|i| i.private_ip).collect();
    assert_eq!(ips.len(), 3, "{instances:?}");
    for ip in &ips {
        assert!(ip.is_loopback());
        assert!(
            ip.to_string()
                .starts_with(&format!("{}.", stand_in.subnet_prefix())),
            "{ip}"
        );
    }
    assert!(instances.iter().all(|i| i.lifecycle_state == "InService"));
    Ok(())
}

#[tokio::test]
async fn two_stand_ins_at_once_get_different_subnets() -> anyhow::Result<()> {
    let (first, second) = tokio::try_join!(stand_in(), stand_in())?;
    assert_ne!(first.subnet_prefix(), second.subnet_prefix());
    assert_ne!(first.group_name(), second.group_name());
    assert_ne!(first.bucket(), second.bucket());
    Ok(())
}

#[tokio::test]
async fn a_terminated_instance_waits_in_terminating_wait() -> anyhow::Result<()> {
    let stand_in = stand_in().await?;
    let victim = first_instance(&stand_in).await?;
    stand_in.terminate(&victim).await?;
    assert_eq!(
        lifecycle_state_via_sdk(&stand_in, &victim).await?,
        "Terminating:Wait"
    );
    let listed = stand_in.instances().await?;
    assert!(listed
        .iter()
        .any(|i| i.id == victim && i.lifecycle_state == "Terminating:Wait"));
    Ok(())
}

#[tokio::test]
async fn the_hook_queue_receives_the_aws_notification_for_a_terminating_instance(
) -> anyhow::Result<()> {
    let stand_in = stand_in().await?;
    let victim = first_instance(&stand_in).await?;
    stand_in.terminate(&victim).await?;
    let messages = lifecycle_messages(&stand_in, 5).await?;
    let [message] = messages.as_slice() else {
        bail!("expected one lifecycle message, got {messages:?}");
    };
    let keys: BTreeSet<&str> = message
        .as_object()
        .context("the message is not a JSON object")?
        .keys()
        .map(String::as_str)
        .collect();
    let expected_keys = BTreeSet::from([
        "Origin",
        "Destination",
        "Service",
        "Time",
        "AccountId",
        "LifecycleTransition",
        "RequestId",
        "LifecycleActionToken",
        "EC2InstanceId",
        "LifecycleHookName",
        "AutoScalingGroupName",
    ]);
    assert_eq!(keys, expected_keys);
    assert_eq!(message["Origin"], "AutoScalingGroup");
    assert_eq!(message["Destination"], "EC2");
    assert_eq!(message["Service"], "AWS Auto Scaling");
    assert_eq!(message["AccountId"], "123456789012");
    assert_eq!(
        message["LifecycleTransition"],
        "autoscaling:EC2_INSTANCE_TERMINATING"
    );
    assert_eq!(message["EC2InstanceId"], victim.as_str());
    assert_eq!(message["LifecycleHookName"], stand_in.lifecycle_hook_name());
    assert_eq!(message["AutoScalingGroupName"], stand_in.group_name());
    let records = stand_in.lifecycle_actions();
    assert_eq!(message["LifecycleActionToken"], records[0].token.as_str());
    let time = message["Time"].as_str().unwrap_or_default();
    assert_eq!(time.len(), "2016-10-06T20:26:09.386Z".len(), "{time}");
    Ok(())
}

#[tokio::test]
async fn putting_the_hook_sends_a_test_notification_first() -> anyhow::Result<()> {
    let stand_in = stand_in().await?;
    let answer = sqs(&stand_in)
        .await
        .receive_message()
        .queue_url(stand_in.queue_url())
        .wait_time_seconds(1)
        .send()
        .await?;
    let body = answer
        .messages()
        .first()
        .and_then(|m| m.body())
        .context("no message")?;
    let message: serde_json::Value = serde_json::from_str(body)?;
    assert_eq!(message["Event"], "autoscaling:TEST_NOTIFICATION");
    assert_eq!(message["AutoScalingGroupName"], stand_in.group_name());
    assert!(message["AutoScalingGroupARN"]
        .as_str()
        .is_some_and(|arn| arn.starts_with("arn:aws:autoscaling:us-east-1:123456789012:")));
    Ok(())
}

#[tokio::test]
async fn completing_the_action_terminates_the_instance_and_launches_a_replacement(
) -> anyhow::Result<()> {
    let stand_in = stand_in().await?;
    let mut events = stand_in.subscribe();
    let before = stand_in.instances().await?;
    let victim = before.first().context("no instances")?.clone();
    stand_in.terminate(&victim.id).await?;
    complete_by_instance(&stand_in, &victim.id).await?;
    assert_eq!(
        next_event(&mut events).await?,
        InstanceEvent::Terminated {
            id: victim.id.clone()
        }
    );
    let InstanceEvent::Launched { id, private_ip } = next_event(&mut events).await? else {
        bail!("expected a replacement to launch");
    };
    assert!(before
        .iter()
        .all(|i| i.id != id && i.private_ip != private_ip));
    assert!(private_ip
        .to_string()
        .starts_with(&format!("{}.", stand_in.subnet_prefix())));
    let outcomes: Vec<_> = stand_in
        .lifecycle_actions()
        .iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(outcomes, [Some(ActionOutcome::Continue)]);
    Ok(())
}

#[tokio::test]
async fn an_action_can_be_completed_with_the_token_from_its_notification() -> anyhow::Result<()> {
    let stand_in = stand_in().await?;
    let mut events = stand_in.subscribe();
    let victim = first_instance(&stand_in).await?;
    stand_in.terminate(&victim).await?;
    let messages = lifecycle_messages(&stand_in, 5).await?;
    let token = messages
        .first()
        .and_then(|m| m["LifecycleActionToken"].as_str())
        .context("no token")?;
    autoscaling(&stand_in)
        .await
        .complete_lifecycle_action()
        .auto_scaling_group_name(stand_in.group_name())
        .lifecycle_hook_name(stand_in.lifecycle_hook_name())
        .lifecycle_action_token(token)
        .lifecycle_action_result("ABANDON")
        .send()
        .await?;
    assert_eq!(
        next_event(&mut events).await?,
        InstanceEvent::Terminated { id: victim }
    );
    Ok(())
}

#[tokio::test]
async fn completing_an_action_twice_is_a_validation_error() -> anyhow::Result<()> {
    let stand_in = stand_in().await?;
    let victim = first_instance(&stand_in).await?;
    stand_in.terminate(&victim).await?;
    complete_by_instance(&stand_in, &victim).await?;
    let Err(error) = complete_by_instance(&stand_in, &victim).await else {
        bail!("the second completion succeeded");
    };
    assert_eq!(error.code(), Some("ValidationError"));
    assert_eq!(
        error.message(),
        Some(format!("No active Lifecycle Action found with instance ID {victim}").as_str())
    );
    Ok(())
}

#[tokio::test]
async fn an_action_nobody_completes_times_out_with_the_default_result() -> anyhow::Result<()> {
    let stand_in = stand_in_with_hook(Duration::from_secs(1), HookResult::Abandon).await?;
    let mut events = stand_in.subscribe();
    let victim = first_instance(&stand_in).await?;
    stand_in.terminate(&victim).await?;
    assert_eq!(
        next_event(&mut events).await?,
        InstanceEvent::Terminated { id: victim }
    );
    let outcomes: Vec<_> = stand_in
        .lifecycle_actions()
        .iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(
        outcomes,
        [Some(ActionOutcome::Timeout(HookResult::Abandon))]
    );
    Ok(())
}

#[tokio::test]
async fn a_heartbeat_keeps_the_instance_waiting_past_the_timeout() -> anyhow::Result<()> {
    let timeout = Duration::from_secs(3);
    let stand_in = stand_in_with_hook(timeout, HookResult::Continue).await?;
    let victim = first_instance(&stand_in).await?;
    let held_at = Instant::now();
    stand_in.terminate(&victim).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    autoscaling(&stand_in)
        .await
        .record_lifecycle_action_heartbeat()
        .auto_scaling_group_name(stand_in.group_name())
        .lifecycle_hook_name(stand_in.lifecycle_hook_name())
        .instance_id(&victim)
        .send()
        .await?;
    tokio::time::sleep(
        (held_at + timeout + Duration::from_secs(1)).saturating_duration_since(Instant::now()),
    )
    .await;
    assert_eq!(
        lifecycle_state_via_sdk(&stand_in, &victim).await?,
        "Terminating:Wait"
    );
    assert_eq!(stand_in.lifecycle_actions()[0].heartbeats, 1);
    Ok(())
}

#[tokio::test]
async fn vanish_terminates_and_replaces_without_any_notification() -> anyhow::Result<()> {
    let stand_in = stand_in().await?;
    let mut events = stand_in.subscribe();
    let victim = first_instance(&stand_in).await?;
    stand_in.vanish(&victim).await?;
    assert_eq!(
        next_event(&mut events).await?,
        InstanceEvent::Terminated { id: victim }
    );
    assert!(matches!(
        next_event(&mut events).await?,
        InstanceEvent::Launched { .. }
    ));
    assert_eq!(
        lifecycle_messages(&stand_in, 2).await?,
        Vec::<serde_json::Value>::new()
    );
    assert!(stand_in.lifecycle_actions().is_empty());
    Ok(())
}

#[tokio::test]
async fn two_instances_vanishing_at_once_are_replaced_by_exactly_two() -> anyhow::Result<()> {
    let stand_in = StandIn::start(StandInOptions {
        group_size: 5,
        ..StandInOptions::default()
    })
    .await?;
    let ids: Vec<String> = stand_in
        .instances()
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect();
    let (a, b) = tokio::join!(stand_in.vanish(&ids[0]), stand_in.vanish(&ids[1]));
    a?;
    b?;
    // moto launches replacements within the termination call: count now.
    let after = stand_in.instances().await?;
    assert_eq!(after.len(), 5, "{after:?}");
    assert!(after.iter().all(|i| i.id != ids[0] && i.id != ids[1]));
    Ok(())
}

#[tokio::test]
async fn without_a_hook_terminate_replaces_the_instance_at_once() -> anyhow::Result<()> {
    let stand_in = StandIn::start(StandInOptions {
        lifecycle_hook: None,
        ..StandInOptions::default()
    })
    .await?;
    let mut events = stand_in.subscribe();
    let victim = first_instance(&stand_in).await?;
    stand_in.terminate(&victim).await?;
    assert_eq!(
        next_event(&mut events).await?,
        InstanceEvent::Terminated { id: victim }
    );
    assert!(matches!(
        next_event(&mut events).await?,
        InstanceEvent::Launched { .. }
    ));
    Ok(())
}

#[tokio::test]
async fn scale_in_with_the_hook_holds_the_newest_instance_until_completed() -> anyhow::Result<()> {
    let stand_in = stand_in().await?;
    let mut events = stand_in.subscribe();
    stand_in.set_desired_capacity(2).await?;
    let waiting: Vec<_> = stand_in
        .instances()
        .await?
        .into_iter()
        .filter(|i| i.lifecycle_state == "Terminating:Wait")
        .collect();
    let [victim] = waiting.as_slice() else {
        bail!("expected one waiting instance, got {waiting:?}");
    };
    complete_by_instance(&stand_in, &victim.id).await?;
    assert_eq!(
        next_event(&mut events).await?,
        InstanceEvent::Terminated {
            id: victim.id.clone()
        }
    );
    assert_eq!(stand_in.instances().await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn scale_out_launches_new_instances() -> anyhow::Result<()> {
    let stand_in = stand_in().await?;
    let mut events = stand_in.subscribe();
    stand_in.set_desired_capacity(4).await?;
    assert!(matches!(
        next_event(&mut events).await?,
        InstanceEvent::Launched { .. }
    ));
    assert_eq!(stand_in.instances().await?.len(), 4);
    Ok(())
}

#[tokio::test]
async fn an_injected_error_is_returned_exactly_count_times_then_calls_pass() -> anyhow::Result<()> {
    let stand_in = stand_in().await?;
    stand_in.faults().inject(
        FaultRule::error(
            "autoscaling",
            "DescribeAutoScalingGroups",
            400,
            "Throttling",
            "Rate exceeded",
        )
        .times(2),
    );
    let client = autoscaling_without_retries(&stand_in).await;
    for attempt in 0..2 {
        let Err(error) = client.describe_auto_scaling_groups().send().await else {
            bail!("call {attempt} passed despite the fault");
        };
        let error = error.into_service_error();
        assert_eq!(error.code(), Some("Throttling"));
        assert_eq!(error.message(), Some("Rate exceeded"));
    }
    client.describe_auto_scaling_groups().send().await?;
    Ok(())
}

#[tokio::test]
async fn an_injected_sqs_error_reaches_the_sdk_with_its_code() -> anyhow::Result<()> {
    let stand_in = stand_in().await?;
    stand_in.faults().inject(FaultRule::error(
        "sqs",
        "ReceiveMessage",
        400,
        "OverLimit",
        "too many",
    ));
    let result = sqs_without_retries(&stand_in)
        .await
        .receive_message()
        .queue_url(stand_in.queue_url())
        .send()
        .await;
    let Err(error) = result else {
        bail!("the call passed despite the fault");
    };
    let error = error.into_service_error();
    assert_eq!(error.code(), Some("OverLimit"));
    assert_eq!(error.message(), Some("too many"));
    Ok(())
}

#[tokio::test]
async fn a_dropped_response_fails_the_call_though_moto_acted_on_it() -> anyhow::Result<()> {
    let stand_in = stand_in().await?;
    stand_in
        .faults()
        .inject(FaultRule::drop_response("sqs", "CreateQueue"));
    let sqs = sqs_without_retries(&stand_in).await;
    let created = sqs.create_queue().queue_name("dropped-answer").send().await;
    assert!(created.is_err(), "{created:?}");
    sqs.get_queue_url()
        .queue_name("dropped-answer")
        .send()
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_delay_fault_holds_the_call_back_then_forwards_it() -> anyhow::Result<()> {
    let stand_in = stand_in().await?;
    let delay = Duration::from_millis(700);
    stand_in.faults().inject(FaultRule::delay(
        "autoscaling",
        "DescribeAutoScalingGroups",
        delay,
    ));
    let started = Instant::now();
    autoscaling(&stand_in)
        .await
        .describe_auto_scaling_groups()
        .send()
        .await?;
    assert!(started.elapsed() >= delay);
    Ok(())
}

#[tokio::test]
async fn describe_lifecycle_hooks_shows_the_hook_as_it_was_put() -> anyhow::Result<()> {
    let stand_in = stand_in_with_hook(Duration::from_secs(45), HookResult::Abandon).await?;
    let answer = autoscaling(&stand_in)
        .await
        .describe_lifecycle_hooks()
        .auto_scaling_group_name(stand_in.group_name())
        .send()
        .await?;
    let hook = answer.lifecycle_hooks().first().context("no hook")?;
    assert_eq!(hook.heartbeat_timeout(), Some(45));
    assert_eq!(hook.default_result(), Some("ABANDON"));
    assert!(hook.notification_target_arn().is_some_and(|arn| stand_in
        .queue_url()
        .ends_with(arn.rsplit(':').next().unwrap_or("-"))));
    Ok(())
}

#[tokio::test]
async fn dropping_the_stand_in_stops_its_endpoint() -> anyhow::Result<()> {
    let stand_in = stand_in().await?;
    let address = stand_in
        .endpoint_url()
        .trim_start_matches("http://")
        .to_owned();
    drop(stand_in);
    // The listener closes once the runtime drops the aborted accept task.
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(&address).await.is_err() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("{address} still accepts connections");
}

#[tokio::test]
async fn terminating_through_the_api_holds_the_instance_and_answers_with_an_activity(
) -> anyhow::Result<()> {
    let stand_in = stand_in().await?;
    let victim = first_instance(&stand_in).await?;
    let answer = autoscaling(&stand_in)
        .await
        .terminate_instance_in_auto_scaling_group()
        .instance_id(&victim)
        .should_decrement_desired_capacity(false)
        .send()
        .await?;
    let activity = answer.activity().context("no activity")?;
    assert_eq!(
        activity.description(),
        Some(format!("Terminating EC2 instance: {victim}").as_str())
    );
    assert_eq!(
        lifecycle_state_via_sdk(&stand_in, &victim).await?,
        "Terminating:Wait"
    );
    Ok(())
}

#[tokio::test]
async fn terminating_a_waiting_instance_again_is_a_validation_error() -> anyhow::Result<()> {
    let stand_in = stand_in().await?;
    let victim = first_instance(&stand_in).await?;
    stand_in.terminate(&victim).await?;
    let again = autoscaling_without_retries(&stand_in)
        .await
        .terminate_instance_in_auto_scaling_group()
        .instance_id(&victim)
        .should_decrement_desired_capacity(false)
        .send()
        .await;
    let Err(error) = again else {
        bail!("the second termination succeeded");
    };
    assert_eq!(error.into_service_error().code(), Some("ValidationError"));
    assert_eq!(stand_in.lifecycle_actions().len(), 1);
    Ok(())
}

/// A raw S3 call through the proxy, signed in form only: moto checks no signature.
async fn s3_call(
    stand_in: &StandIn,
    method: http::Method,
    path_and_query: &str,
    body: &'static str,
) -> anyhow::Result<(http::StatusCode, String)> {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let request = http::Request::builder()
        .method(method)
        .uri(format!("{}{path_and_query}", stand_in.endpoint_url()))
        .header(
            http::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .body(Full::new(bytes::Bytes::from_static(body.as_bytes())))?;
    let response = client.request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test]
async fn objects_put_in_the_backup_bucket_can_be_read_back() -> anyhow::Result<()> {
    let stand_in = stand_in().await?;
    let key = format!("/{}/snapshots/1.db", stand_in.bucket());
    let (status, _) = s3_call(&stand_in, http::Method::PUT, &key, "snapshot").await?;
    assert!(status.is_success(), "{status}");
    let (status, body) = s3_call(&stand_in, http::Method::GET, &key, "").await?;
    assert!(status.is_success(), "{status}");
    assert_eq!(body, "snapshot");
    Ok(())
}

#[tokio::test]
async fn an_injected_upload_part_error_has_the_s3_error_shape() -> anyhow::Result<()> {
    let stand_in = stand_in().await?;
    stand_in.faults().inject(FaultRule::error(
        "s3",
        "UploadPart",
        500,
        "InternalError",
        "We encountered an internal error. Please try again.",
    ));
    let path = format!(
        "/{}/snapshots/1.db?partNumber=1&uploadId=abc",
        stand_in.bucket()
    );
    let (status, body) = s3_call(&stand_in, http::Method::PUT, &path, "part").await?;
    assert_eq!(status, http::StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("<Error><Code>InternalError</Code>"), "{body}");
    Ok(())
}
