//! How the deploy command reads a stack operation's events and status.

use std::collections::HashSet;

use etcd_aws_cfn::deploy::stack_events::{
    failure_reasons, needs_create, outcome, unseen, updatable, Event, Outcome,
};

fn event(id: &str, logical_id: &str, status: &str, reason: Option<&str>) -> Event {
    Event {
        id: id.to_string(),
        timestamp: format!("t{id}"),
        logical_id: logical_id.to_string(),
        resource_type: if logical_id == "etcd" {
            "AWS::CloudFormation::Stack"
        } else {
            "AWS::Lambda::Function"
        }
        .to_string(),
        status: status.to_string(),
        reason: reason.map(str::to_string),
    }
}

#[test]
fn in_progress_statuses_keep_the_watch_going() {
    for status in [
        "CREATE_IN_PROGRESS",
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
    ] {
        assert_eq!(outcome(status), Outcome::InProgress, "{status}");
    }
}

#[test]
fn completed_creates_and_updates_succeed() {
    assert_eq!(outcome("CREATE_COMPLETE"), Outcome::Succeeded);
    assert_eq!(outcome("UPDATE_COMPLETE"), Outcome::Succeeded);
}

#[test]
fn completed_rollbacks_are_failures() {
    for status in [
        "ROLLBACK_COMPLETE",
        "UPDATE_ROLLBACK_COMPLETE",
        "CREATE_FAILED",
        "UPDATE_ROLLBACK_FAILED",
    ] {
        assert_eq!(outcome(status), Outcome::Failed, "{status}");
    }
}

#[test]
fn a_rolled_back_creation_must_be_deleted_before_deploying_again() {
    let refusal = updatable("ROLLBACK_COMPLETE").expect_err("cannot update");
    assert!(refusal.contains("delete it"), "{refusal}");
}

#[test]
fn a_busy_stack_is_not_updated() {
    assert!(updatable("UPDATE_IN_PROGRESS").is_err());
    assert!(updatable("UPDATE_COMPLETE").is_ok());
    assert!(updatable("UPDATE_ROLLBACK_COMPLETE").is_ok());
}

#[test]
fn a_stack_left_in_review_is_created_not_updated() {
    assert!(needs_create("REVIEW_IN_PROGRESS"));
    assert!(!needs_create("CREATE_COMPLETE"));
}

#[test]
fn events_are_reported_once_and_oldest_first() {
    let mut seen = HashSet::new();
    let first = unseen(
        vec![
            event("2", "A", "CREATE_COMPLETE", None),
            event("1", "A", "CREATE_IN_PROGRESS", None),
        ],
        &mut seen,
    );
    assert_eq!(
        first.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["1", "2"]
    );
    let second = unseen(
        vec![
            event("3", "B", "CREATE_IN_PROGRESS", None),
            event("2", "A", "CREATE_COMPLETE", None),
        ],
        &mut seen,
    );
    assert_eq!(
        second.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["3"]
    );
}

#[test]
fn failure_names_each_failed_resource_with_its_reason() {
    let events = vec![
        event("1", "etcd", "CREATE_IN_PROGRESS", Some("User Initiated")),
        event(
            "2",
            "BackupFunction",
            "CREATE_FAILED",
            Some("Error occurred while GetObject. S3 Error Code: NoSuchKey"),
        ),
        event(
            "3",
            "LifecycleFunction",
            "CREATE_FAILED",
            Some("Resource creation cancelled"),
        ),
        event(
            "4",
            "etcd",
            "ROLLBACK_IN_PROGRESS",
            Some("The following resource(s) failed to create: [BackupFunction]"),
        ),
        event("5", "etcd", "ROLLBACK_COMPLETE", None),
    ];
    let reasons = failure_reasons(&events, "etcd");
    assert_eq!(reasons.len(), 2);
    assert!(reasons[0].starts_with(
        "BackupFunction (AWS::Lambda::Function) CREATE_FAILED: Error occurred while GetObject"
    ));
    assert!(reasons[1].contains("Resource creation cancelled"));
}

#[test]
fn a_rollback_without_failed_resources_still_says_why() {
    let events = vec![event(
        "1",
        "etcd",
        "UPDATE_ROLLBACK_IN_PROGRESS",
        Some("User cancelled the update"),
    )];
    assert_eq!(
        failure_reasons(&events, "etcd"),
        ["etcd UPDATE_ROLLBACK_IN_PROGRESS: User cancelled the update"]
    );
}
