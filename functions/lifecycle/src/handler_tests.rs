//! Handler tests: every branch of a message's and a reconcile's way through the
//! function, against in-memory seams. The decision itself is table-tested in
//! `plan_tests.rs`; these check that the handler asks, acts and reports right.

use etcd_aws_core::etcd::ids::MemberId;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use etcd_aws_core::membership::member::Member;
use etcd_aws_core::test_support::{instance, ip, member};
use etcd_aws_io::aws::discovery::Ec2Instance;
use etcd_aws_io::etcd::error::EtcdErrorKind;
use serde_json::json;

use super::*;

const GROUP: &str = "etcd";
const HOOK: &str = "etcd-member-removal";
const LEAVING: &str = "i-leaving";

/// Everything the fakes know and everything they were asked to do.
#[derive(Debug, Default)]
struct World {
    group: Vec<Instance>,
    ec2: HashMap<String, Ec2Instance>,
    members: Vec<Member>,
    leader: Option<MemberId>,
    healthy: Vec<MemberId>,
    /// Tokens of actions waiting in Terminating:Wait.
    active_tokens: HashSet<String>,
    /// etcd answers the next removals with this error.
    remove_failures: Vec<String>,
    complete_failures: usize,
    observe_delay: Duration,
    // What was done:
    calls: Vec<String>,
    heartbeats: usize,
}

#[derive(Clone, Default)]
struct Fakes(Arc<Mutex<World>>);

impl Fakes {
    fn world(&self) -> MutexGuard<'_, World> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Three InService-or-leaving instances a, b and the leaving one, each
    /// with its healthy member; a leads; the leaving one's action is waiting.
    fn three() -> Self {
        let fakes = Fakes::default();
        {
            let mut w = fakes.world();
            w.group = vec![
                instance("i-a", 1, "InService"),
                instance("i-b", 2, "InService"),
                instance(LEAVING, 3, "Terminating:Wait"),
            ];
            w.members = vec![
                member(1, "i-a", 1),
                member(2, "i-b", 2),
                member(3, LEAVING, 3),
            ];
            w.leader = Some(MemberId(1));
            w.healthy = ids(&[1, 2, 3]);
            w.active_tokens.insert(token(LEAVING));
        }
        fakes
    }

    fn calls(&self) -> Vec<String> {
        self.world().calls.clone()
    }

    fn member_ids(&self) -> Vec<u64> {
        self.world().members.iter().map(|m| m.id.0).collect()
    }
}

fn etcd_error(operation: &'static str, message: &str) -> EtcdError {
    EtcdError {
        operation,
        endpoints: "fake".to_owned(),
        kind: EtcdErrorKind::Other,
        message: message.to_owned(),
    }
}

#[async_trait]
impl Aws for Fakes {
    async fn group_instances(&self, group: &str) -> Result<Vec<Instance>, DiscoveryError> {
        if group != GROUP {
            return Err(DiscoveryError::NoSuchGroup(group.to_owned()));
        }
        Ok(self.world().group.clone())
    }

    async fn ec2_instance(&self, id: &str) -> Result<Option<Ec2Instance>, DiscoveryError> {
        Ok(self.world().ec2.get(id).cloned())
    }

    async fn complete(&self, action: &TerminatingAction) -> Result<Completion, AwsError> {
        let mut w = self.world();
        if w.complete_failures > 0 {
            w.complete_failures -= 1;
            return Err(AwsError {
                operation: "CompleteLifecycleAction",
                message: "ServiceUnavailable".to_owned(),
            });
        }
        w.calls.push(format!("complete {}", action.instance_id));
        Ok(if w.active_tokens.remove(&action.token) {
            Completion::Completed
        } else {
            Completion::AlreadyCompleted
        })
    }

    async fn heartbeat(&self, action: &TerminatingAction) -> Result<bool, AwsError> {
        let mut w = self.world();
        w.heartbeats += 1;
        Ok(w.active_tokens.contains(&action.token))
    }
}

#[async_trait]
impl Etcd for Fakes {
    fn client_url(&self, ip: IpAddr, port: u16) -> String {
        format!("http://{}", std::net::SocketAddr::new(ip, port))
    }

    async fn observe(&self, _endpoints: &[String]) -> Result<EtcdObservation, EtcdError> {
        let delay = self.world().observe_delay;
        tokio::time::sleep(delay).await;
        let w = self.world();
        Ok(EtcdObservation {
            members: w.members.clone(),
            leader: w.leader,
            healthy: w.healthy.clone(),
        })
    }

    async fn move_leader(&self, leader: &Member, target: MemberId) -> Result<(), EtcdError> {
        let mut w = self.world();
        w.calls
            .push(format!("move leader {} -> {target}", leader.id));
        w.leader = Some(target);
        Ok(())
    }

    async fn remove(&self, _endpoints: &[String], id: MemberId) -> Result<(), EtcdError> {
        let mut w = self.world();
        if !w.remove_failures.is_empty() {
            let message = w.remove_failures.remove(0);
            return Err(etcd_error("MemberRemove", &message));
        }
        w.calls.push(format!("remove {id}"));
        w.members.retain(|m| m.id != id);
        w.healthy.retain(|h| *h != id);
        Ok(())
    }
}

fn token(instance_id: &str) -> String {
    format!("token-{instance_id}")
}

fn terminating_body(instance_id: &str, group: &str) -> String {
    json!({
        "Origin": "AutoScalingGroup", "Destination": "EC2", "Service": "AWS Auto Scaling",
        "Time": "2016-10-06T20:26:09.386Z", "AccountId": "123456789012",
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
        "RequestId": "r-1", "LifecycleActionToken": token(instance_id),
        "EC2InstanceId": instance_id, "LifecycleHookName": HOOK,
        "AutoScalingGroupName": group,
    })
    .to_string()
}

const TEST_BODY: &str = r#"{"AccountId":"123456789012","RequestId":"r","AutoScalingGroupARN":"arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:x:autoScalingGroupName/etcd","AutoScalingGroupName":"etcd","Service":"AWS Auto Scaling","Event":"autoscaling:TEST_NOTIFICATION","Time":"2016-10-06T20:26:09.386Z"}"#;

fn message(id: &str, body: &str) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(id.to_owned());
    message.receipt_handle = Some(format!("receipt-{id}"));
    message.body = Some(body.to_owned());
    message.event_source = Some("aws:sqs".to_owned());
    message
}

fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages;
    event
}

fn quick() -> Settings {
    Settings {
        group_name: Some(GROUP.to_owned()),
        heartbeat_interval: Duration::from_secs(30),
        retry_for: Duration::from_secs(2),
        retry_pause: Duration::from_millis(20),
        ..Settings::default()
    }
}

fn function(fakes: &Fakes, settings: Settings) -> Lifecycle<Fakes, Fakes> {
    Lifecycle::new(fakes.clone(), fakes.clone(), settings)
}

fn later() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

async fn handle_one(
    fakes: &Fakes,
    settings: Settings,
    body: &str,
) -> Result<Handled, MessageError> {
    function(fakes, settings)
        .process_message(&message("m-1", body), later())
        .await
}

#[tokio::test]
async fn the_hook_test_notification_is_acknowledged_and_touches_nothing() {
    let fakes = Fakes::three();
    let handled = handle_one(&fakes, quick(), TEST_BODY).await;
    assert!(
        matches!(handled, Ok(Handled::TestNotification)),
        "{handled:?}"
    );
    assert!(fakes.calls().is_empty());
}

#[tokio::test]
async fn a_terminating_followers_member_is_removed_then_its_action_completed() {
    let fakes = Fakes::three();
    let handled = handle_one(&fakes, quick(), &terminating_body(LEAVING, GROUP)).await;
    assert!(
        matches!(&handled, Ok(Handled::Removed { members, completion: Completion::Completed, .. }) if members == &[MemberId(3)]),
        "{handled:?}"
    );
    assert_eq!(fakes.calls(), ["remove 3", "complete i-leaving"]);
}

#[tokio::test]
async fn a_terminating_leader_hands_over_leadership_before_it_is_removed() {
    let fakes = Fakes::three();
    fakes.world().leader = Some(MemberId(3));
    let handled = handle_one(&fakes, quick(), &terminating_body(LEAVING, GROUP)).await;
    assert!(handled.is_ok(), "{handled:?}");
    assert_eq!(
        fakes.calls(),
        ["move leader 3 -> 1", "remove 3", "complete i-leaving"]
    );
}

#[tokio::test]
async fn an_instance_without_a_member_only_has_its_action_completed() {
    let fakes = Fakes::three();
    fakes.world().members.retain(|m| m.id != MemberId(3));
    let handled = handle_one(&fakes, quick(), &terminating_body(LEAVING, GROUP)).await;
    assert!(
        matches!(
            handled,
            Ok(Handled::AlreadyGone {
                completion: Completion::Completed,
                ..
            })
        ),
        "{handled:?}"
    );
    assert_eq!(fakes.calls(), ["complete i-leaving"]);
}

#[tokio::test]
async fn the_same_message_twice_removes_once_and_succeeds_twice() {
    let fakes = Fakes::three();
    let body = terminating_body(LEAVING, GROUP);
    let first = handle_one(&fakes, quick(), &body).await;
    let second = handle_one(&fakes, quick(), &body).await;
    assert!(matches!(first, Ok(Handled::Removed { .. })), "{first:?}");
    assert!(
        matches!(
            second,
            Ok(Handled::AlreadyGone {
                completion: Completion::AlreadyCompleted,
                ..
            })
        ),
        "{second:?}"
    );
    assert_eq!(
        fakes.calls(),
        ["remove 3", "complete i-leaving", "complete i-leaving"]
    );
}

#[tokio::test]
async fn a_late_message_for_an_instance_gone_from_the_group_is_checked_with_ec2() {
    let fakes = Fakes::three();
    {
        let mut w = fakes.world();
        w.group.retain(|i| i.id != LEAVING);
        w.ec2.insert(
            LEAVING.to_owned(),
            Ec2Instance {
                private_ip: Some(ip(3)),
            },
        );
    }
    let handled = handle_one(&fakes, quick(), &terminating_body(LEAVING, GROUP)).await;
    assert!(
        matches!(handled, Ok(Handled::Removed { .. })),
        "{handled:?}"
    );
    assert_eq!(fakes.member_ids(), [1, 2]);
}

#[tokio::test]
async fn an_unknown_instance_fails_for_good_and_nothing_is_removed() {
    let fakes = Fakes::three();
    let handled = handle_one(&fakes, quick(), &terminating_body("i-unknown", GROUP)).await;
    let error = handled.err();
    assert!(
        matches!(&error, Some(e @ MessageError::UnknownInstance(_)) if !e.is_retryable()),
        "{error:?}"
    );
    assert!(fakes.calls().is_empty());
}

#[tokio::test]
async fn a_message_for_another_group_is_acknowledged_without_action() {
    let fakes = Fakes::three();
    let handled = handle_one(&fakes, quick(), &terminating_body(LEAVING, "other")).await;
    assert_eq!(
        handled.ok(),
        Some(Handled::ForeignGroup {
            group_name: "other".to_owned()
        })
    );
    assert!(
        fakes.calls().is_empty(),
        "nothing removed, nothing completed"
    );
}

#[tokio::test]
async fn notices_for_another_group_are_counted_and_kept_out_of_the_dead_letter_queue() {
    let fakes = Fakes::three();
    let event = batch(vec![
        message("m-1", &terminating_body(LEAVING, "other")),
        message("m-2", &terminating_body(LEAVING, "another")),
        message("m-3", "not json"),
    ]);
    let reports = function(&fakes, quick())
        .process_batch(&event, later())
        .await;
    assert_eq!(foreign_notices(&reports), 2);
    let failed: Vec<String> = batch_response(&reports)
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect();
    assert_eq!(failed, ["m-3"]);
}

#[tokio::test]
async fn without_a_configured_group_the_messages_group_is_used() {
    let fakes = Fakes::three();
    let settings = Settings {
        group_name: None,
        ..quick()
    };
    let handled = handle_one(&fakes, settings, &terminating_body(LEAVING, GROUP)).await;
    assert!(
        matches!(handled, Ok(Handled::Removed { .. })),
        "{handled:?}"
    );
}

#[tokio::test]
async fn a_group_that_does_not_exist_fails_for_good() {
    let fakes = Fakes::three();
    let settings = Settings {
        group_name: None,
        ..quick()
    };
    let handled = handle_one(&fakes, settings, &terminating_body(LEAVING, "gone")).await;
    let error = handled.err();
    assert!(
        matches!(&error, Some(e @ MessageError::Discovery(DiscoveryError::NoSuchGroup(_))) if !e.is_retryable()),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_garbage_message_fails_for_good() {
    let fakes = Fakes::three();
    let handled = handle_one(&fakes, quick(), "{not json").await;
    let error = handled.err();
    assert!(
        matches!(&error, Some(e @ MessageError::Parse(ParseError::NotJson { .. })) if !e.is_retryable()),
        "{error:?}"
    );
}

#[tokio::test]
async fn etcds_unhealthy_cluster_refusal_is_retried_within_the_invocation() {
    let fakes = Fakes::three();
    fakes.world().remove_failures = vec![
        "etcdserver: unhealthy cluster".to_owned(),
        "etcdserver: unhealthy cluster".to_owned(),
    ];
    let handled = handle_one(&fakes, quick(), &terminating_body(LEAVING, GROUP)).await;
    assert!(
        matches!(handled, Ok(Handled::Removed { .. })),
        "{handled:?}"
    );
    assert_eq!(fakes.calls(), ["remove 3", "complete i-leaving"]);
}

#[tokio::test]
async fn a_refusal_that_outlasts_the_retry_window_fails_the_message_for_a_later_retry() {
    let fakes = Fakes::three();
    fakes.world().remove_failures = vec!["etcdserver: unhealthy cluster".to_owned(); 1000];
    let settings = Settings {
        retry_for: Duration::from_millis(200),
        ..quick()
    };
    let handled = handle_one(&fakes, settings, &terminating_body(LEAVING, GROUP)).await;
    let error = handled.err();
    assert!(
        matches!(&error, Some(e @ MessageError::Etcd(_)) if e.is_retryable()),
        "{error:?}"
    );
    assert!(fakes.calls().is_empty(), "the action must stay waiting");
}

#[tokio::test]
async fn removal_that_would_lose_quorum_is_not_attempted() {
    let fakes = Fakes::three();
    fakes.world().healthy = ids(&[1, 3]);
    let settings = Settings {
        retry_for: Duration::from_millis(100),
        ..quick()
    };
    let handled = handle_one(&fakes, settings, &terminating_body(LEAVING, GROUP)).await;
    let error = handled.err();
    assert!(
        matches!(&error, Some(e @ MessageError::Refused(Refusal::WouldLoseQuorum { .. })) if e.is_retryable()),
        "{error:?}"
    );
    assert!(fakes.calls().is_empty());
}

#[tokio::test]
async fn a_group_without_live_instances_fails_the_message_for_a_retry() {
    let fakes = Fakes::three();
    fakes.world().group = vec![instance(LEAVING, 3, "Terminating:Wait")];
    let handled = handle_one(&fakes, quick(), &terminating_body(LEAVING, GROUP)).await;
    let error = handled.err();
    assert!(
        matches!(&error, Some(e @ MessageError::NoEndpoints(_)) if e.is_retryable()),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_failed_completion_fails_the_message_after_the_removal() {
    let fakes = Fakes::three();
    fakes.world().complete_failures = 1;
    let handled = handle_one(&fakes, quick(), &terminating_body(LEAVING, GROUP)).await;
    let error = handled.err();
    assert!(
        matches!(&error, Some(e @ MessageError::Aws(_)) if e.is_retryable()),
        "{error:?}"
    );
    assert_eq!(
        fakes.member_ids(),
        [1, 2],
        "the removal stands; the retry only completes"
    );
}

#[tokio::test]
async fn slow_work_records_lifecycle_heartbeats() {
    let fakes = Fakes::three();
    fakes.world().observe_delay = Duration::from_millis(130);
    let settings = Settings {
        heartbeat_interval: Duration::from_millis(50),
        ..quick()
    };
    let handled = handle_one(&fakes, settings, &terminating_body(LEAVING, GROUP)).await;
    assert!(handled.is_ok(), "{handled:?}");
    let heartbeats = fakes.world().heartbeats;
    assert!(heartbeats >= 2, "{heartbeats} heartbeats");
}

#[tokio::test]
async fn quick_work_records_no_heartbeat() {
    let fakes = Fakes::three();
    let handled = handle_one(&fakes, quick(), &terminating_body(LEAVING, GROUP)).await;
    assert!(handled.is_ok(), "{handled:?}");
    assert_eq!(fakes.world().heartbeats, 0);
}

#[tokio::test]
async fn one_bad_message_fails_only_itself_in_the_batch_response() {
    let fakes = Fakes::three();
    let event = batch(vec![
        message("valid", &terminating_body(LEAVING, GROUP)),
        message("garbage", "\u{1}\u{2} definitely not json"),
        message("test", TEST_BODY),
        message("unknown", &terminating_body("i-unknown", GROUP)),
    ]);
    let reports = function(&fakes, quick())
        .process_batch(&event, later())
        .await;
    let outcomes: Vec<(&str, bool)> = reports
        .iter()
        .map(|r| (r.message_id.as_str(), r.result.is_ok()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("valid", true),
            ("garbage", false),
            ("test", true),
            ("unknown", false)
        ]
    );
    let failed: Vec<String> = batch_response(&reports)
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect();
    assert_eq!(failed, ["garbage", "unknown"]);
}

#[tokio::test]
async fn messages_left_when_the_deadline_comes_are_handed_back_unattempted() {
    let fakes = Fakes::three();
    let event = batch(vec![message("late", &terminating_body(LEAVING, GROUP))]);
    let reports = function(&fakes, quick())
        .process_batch(&event, Instant::now())
        .await;
    assert!(matches!(reports[0].result, Err(MessageError::OutOfTime)));
    assert!(fakes.calls().is_empty());
}

#[tokio::test]
async fn the_invocation_answers_with_the_partial_batch_response_json() {
    let fakes = Fakes::three();
    let payload = json!({"Records": [
        {"messageId": "ok", "receiptHandle": "r1", "body": TEST_BODY, "eventSource": "aws:sqs"},
        {"messageId": "bad", "receiptHandle": "r2", "body": "[]", "eventSource": "aws:sqs"},
    ]});
    let answer = function(&fakes, quick()).invoke(payload, later()).await;
    assert_eq!(
        answer.ok(),
        Some(json!({"batchItemFailures": [{"itemIdentifier": "bad"}]}))
    );
}

#[tokio::test]
async fn reconcile_removes_the_member_of_an_instance_that_vanished() {
    let fakes = Fakes::three();
    fakes.world().group.retain(|i| i.id != LEAVING);
    let report = function(&fakes, quick()).reconcile(later()).await;
    assert_eq!(
        report
            .ok()
            .map(|r| r.removed.into_iter().map(|m| m.name).collect::<Vec<_>>()),
        Some(vec![LEAVING.to_owned()])
    );
    assert_eq!(fakes.calls(), ["remove 3"]);
}

#[tokio::test]
async fn reconcile_of_a_healthy_cluster_removes_nothing() {
    let fakes = Fakes::three();
    fakes.world().group[2] = instance(LEAVING, 3, "InService");
    let report = function(&fakes, quick()).reconcile(later()).await;
    assert_eq!(report.ok(), Some(ReconcileReport::default()));
    assert!(fakes.calls().is_empty());
}

#[tokio::test]
async fn reconcile_needs_a_configured_group() {
    let fakes = Fakes::three();
    let settings = Settings {
        group_name: None,
        ..quick()
    };
    let result = function(&fakes, settings).reconcile(later()).await;
    assert!(matches!(result, Err(ReconcileError::NoGroup)), "{result:?}");
}

#[tokio::test]
async fn reconcile_that_must_leave_a_departed_member_reports_failure() {
    let fakes = Fakes::three();
    {
        let mut w = fakes.world();
        w.group.retain(|i| i.id != LEAVING);
        w.healthy = ids(&[1]);
    }
    let result = function(&fakes, quick()).reconcile(later()).await;
    assert!(
        matches!(&result, Err(ReconcileError::Incomplete(report)) if report.removed.is_empty() && report.refused.len() == 1),
        "{result:?}"
    );
    assert!(fakes.calls().is_empty());
}

/// Member ids from their numbers.
fn ids(numbers: &[u64]) -> Vec<MemberId> {
    numbers.iter().copied().map(MemberId).collect()
}
