//! What `status` shows: the cluster as the backup function sees it from inside
//! the VPC, with the backups and the lifecycle's backlog, and one verdict:
//! healthy or the list of what is not. Judging is pure ([`problems`]);
//! gathering and printing are the command's (`commands::status`).

use etcd_aws_core::certificates::expiry::{days_left, WARNING_DAYS};
use etcd_aws_core::clock;
use etcd_aws_core::contract::cluster_report::{ClusterReport, ReportedCertificates};
use etcd_aws_core::membership::member::Standing;
use serde::Serialize;

use super::function_errors::FunctionErrors;

/// Everything `status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub cluster: ClusterReport,
    pub newest_backup: Option<NewestBackup>,
    pub capture: Capture,
    /// Messages waiting in the lifecycle queue; `None` when not read.
    pub lifecycle_queue_depth: Option<u64>,
    pub dead_letters: Option<u64>,
    /// Each function log group's errors in the window; shown, not judged
    /// (see [`super::function_errors`]).
    pub function_errors: Vec<FunctionErrors>,
    /// How far back `function_errors` looks.
    pub function_errors_window_seconds: i64,
    /// Days left on each certificate ([`certificate_days`]); empty without TLS.
    pub certificates: Vec<CertificateDays>,
    pub problems: Vec<String>,
}

/// One certificate's days left, as the maintenance metrics count them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertificateDays {
    /// `node i-0abc`, `functions` or `CA`.
    pub certificate: String,
    /// Below zero once expired; `None` when it could not be read.
    pub days_left: Option<f64>,
}

/// The days left at `now_unix_seconds` on each certificate the report read.
pub fn certificate_days(
    certificates: &ReportedCertificates,
    now_unix_seconds: i64,
) -> Vec<CertificateDays> {
    let now = clock::from_unix_millis(now_unix_seconds * 1000);
    let days = |not_after: Option<i64>| {
        not_after.map(|at| days_left(now, clock::from_unix_millis(at * 1000)))
    };
    let mut found: Vec<CertificateDays> = certificates
        .nodes
        .iter()
        .map(|node| CertificateDays {
            certificate: format!("node {}", node.instance),
            days_left: days(node.not_after),
        })
        .collect();
    for (certificate, not_after) in [
        ("functions", certificates.functions),
        ("CA", certificates.ca),
    ] {
        if not_after.is_some() {
            found.push(CertificateDays {
                certificate: certificate.to_owned(),
                days_left: days(not_after),
            });
        }
    }
    found
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewestBackup {
    pub key: String,
    pub revision: i64,
    pub age_seconds: i64,
}

/// How far the continuous backup has captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capture {
    /// The last revision a segment holds; `None` with no segment.
    pub captured_until: Option<i64>,
    /// Revisions the cluster has that no backup holds yet.
    pub behind_revisions: Option<i64>,
    /// What a total loss now would lose, in seconds ([`loss_window_seconds`]).
    pub loss_window_seconds: Option<i64>,
}

/// What a total loss now would lose: nothing when a snapshot or a segment
/// holds every revision; otherwise at most the time since the newest held
/// change was received (the changes after it came later).
pub fn loss_window_seconds(
    behind_revisions: Option<i64>,
    newest_held_at_ms: Option<i64>,
    now_ms: i64,
) -> Option<i64> {
    match (behind_revisions?, newest_held_at_ms) {
        (0, _) => Some(0),
        (_, Some(held_at)) => Some((now_ms - held_at).max(0) / 1000),
        (_, None) => None,
    }
}

/// When a backup counts as stale.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub backup_max_age_seconds: i64,
    /// Fullest member's share of the quota that is worth a warning.
    pub quota_warn_percent: i64,
    pub loss_window_max_seconds: i64,
}

/// What is not healthy, one sentence each; empty for a healthy cluster.
pub fn problems(view: &StatusView, limits: &Limits) -> Vec<String> {
    let mut found = Vec::new();
    let cluster = &view.cluster;
    if let Some(error) = &cluster.error {
        found.push(format!("the cluster cannot be read: {error}"));
    }
    for instance in cluster.live_instances() {
        match cluster.member_run_by(&instance.id) {
            None if cluster.error.is_none() => found.push(format!(
                "instance {} is live in the group but is no member",
                instance.id
            )),
            None => {}
            Some(member) if member.status.is_none() => found.push(format!(
                "member {} (instance {}) does not answer",
                member.id, instance.id
            )),
            Some(member) if member.is_learner => found.push(format!(
                "member {} (instance {}) is a learner, still joining",
                member.id, instance.id
            )),
            Some(_) => {}
        }
    }
    for member in &cluster.members {
        if member.standing != Standing::Live {
            found.push(format!(
                "member {} ({}) has no live instance in the group",
                member.id,
                if member.name.is_empty() {
                    "never started"
                } else {
                    member.name.as_str()
                }
            ));
        }
    }
    if cluster.error.is_none() && cluster.leader_id.is_none() {
        found.push("no member knows a leader".to_owned());
    }
    for alarm in &cluster.alarms {
        found.push(format!(
            "alarm {} raised by member {}",
            alarm.kind, alarm.member_id
        ));
    }
    let fullest = cluster
        .members
        .iter()
        .filter_map(|m| m.status.as_ref())
        .map(|s| s.db_size)
        .max();
    if let (Some(size), true) = (fullest, cluster.quota_bytes > 0) {
        let percent = size * 100 / cluster.quota_bytes;
        if percent >= limits.quota_warn_percent {
            found.push(format!(
                "the fullest member's database is {percent}% of the quota ({size} of {} bytes)",
                cluster.quota_bytes
            ));
        }
    }
    match &view.newest_backup {
        None => found.push("there is no backup".to_owned()),
        Some(newest) if newest.age_seconds > limits.backup_max_age_seconds => found.push(format!(
            "the newest snapshot is {} s old (more than {} s)",
            newest.age_seconds, limits.backup_max_age_seconds
        )),
        Some(_) => {}
    }
    if let Some(window) = view
        .capture
        .loss_window_seconds
        .filter(|w| *w > limits.loss_window_max_seconds)
    {
        found.push(format!(
            "a total loss now would lose up to {window} s of changes ({} revisions no backup holds; the capture runs every minute)",
            view.capture.behind_revisions.unwrap_or_default()
        ));
    }
    for certificate in &view.certificates {
        match certificate.days_left {
            Some(days) if days < 0.0 => found.push(format!(
                "the {} certificate has expired ({:.1} days ago): see docs/operations.md, Certificate lifetimes and renewal",
                certificate.certificate, -days
            )),
            Some(days) if days < WARNING_DAYS => found.push(format!(
                "the {} certificate expires in {days:.1} days: its renewal, due at two thirds of its life, has not happened (see the renewal_failed lines in the logs)",
                certificate.certificate
            )),
            _ => {}
        }
    }
    if let Some(dead) = view.dead_letters.filter(|d| *d > 0) {
        found.push(format!(
            "{dead} lifecycle messages are in the dead-letter queue (members of terminated instances may not have been removed)"
        ));
    }
    found
}

/// A healthy three-node cluster's view, for the tests of what judges and
/// shows it.
#[cfg(test)]
pub fn healthy_view() -> StatusView {
    let ids = ["i-1", "i-2", "i-3"];
    StatusView {
        cluster: ClusterReport {
            instances: ids
                .iter()
                .map(
                    |id| etcd_aws_core::contract::cluster_report::ReportedInstance {
                        id: (*id).into(),
                        private_ip: Some("127.0.0.1".into()),
                        lifecycle_state: "InService".into(),
                        live: true,
                        availability_zone: Some("us-east-1a".into()),
                    },
                )
                .collect(),
            members: ids
                .iter()
                .enumerate()
                .map(
                    |(n, id)| etcd_aws_core::contract::cluster_report::ReportedMember {
                        id: etcd_aws_core::etcd::ids::MemberId(n as u64 + 1),
                        name: (*id).into(),
                        instance: Some((*id).into()),
                        standing: Standing::Live,
                        peer_urls: vec![],
                        is_learner: false,
                        status: Some(etcd_aws_core::contract::cluster_report::ReportedStatus {
                            version: "3.5.16".into(),
                            revision: 9,
                            db_size: 100,
                            db_size_in_use: 50,
                            raft_term: 2,
                        }),
                    },
                )
                .collect(),
            cluster_id: Some(etcd_aws_core::etcd::ids::ClusterId(0xc1)),
            leader_id: Some(etcd_aws_core::etcd::ids::MemberId(1)),
            revision: Some(9),
            alarms: vec![],
            quota_bytes: 1000,
            cluster_version: Some("3.5.0".into()),
            certificates: ReportedCertificates::default(),
            error: None,
        },
        newest_backup: Some(NewestBackup {
            key: "k".into(),
            revision: 9,
            age_seconds: 60,
        }),
        capture: Capture {
            captured_until: Some(9),
            behind_revisions: Some(0),
            loss_window_seconds: Some(0),
        },
        lifecycle_queue_depth: Some(0),
        dead_letters: Some(0),
        function_errors: vec![],
        function_errors_window_seconds: 3600,
        certificates: vec![
            CertificateDays {
                certificate: "node i-1".into(),
                days_left: Some(300.0),
            },
            CertificateDays {
                certificate: "functions".into(),
                days_left: Some(600.0),
            },
        ],
        problems: vec![],
    }
}

#[cfg(test)]
mod tests {
    use etcd_aws_core::etcd::ids::MemberId;
    use etcd_aws_core::etcd::status::{Alarm, AlarmKind};

    use super::*;

    const LIMITS: Limits = Limits {
        backup_max_age_seconds: 3600,
        quota_warn_percent: 80,
        loss_window_max_seconds: 60,
    };

    #[test]
    fn a_whole_cluster_with_a_young_backup_is_healthy() {
        assert_eq!(problems(&healthy_view(), &LIMITS), Vec::<String>::new());
    }

    #[test]
    fn each_certificate_read_gets_its_days_left_and_an_unread_node_says_so() {
        const DAY: i64 = 86_400;
        let now = 1_800_000_000;
        let certificates = ReportedCertificates {
            nodes: vec![
                etcd_aws_core::contract::cluster_report::ServedCertificate {
                    instance: "i-1".into(),
                    not_after: Some(now + 100 * DAY),
                },
                etcd_aws_core::contract::cluster_report::ServedCertificate {
                    instance: "i-2".into(),
                    not_after: None,
                },
            ],
            functions: Some(now - DAY / 2),
            ca: Some(now + 3650 * DAY),
        };
        let days: Vec<(String, Option<f64>)> = certificate_days(&certificates, now)
            .into_iter()
            .map(|c| (c.certificate, c.days_left))
            .collect();
        assert_eq!(
            days,
            [
                ("node i-1".to_owned(), Some(100.0)),
                ("node i-2".to_owned(), None),
                ("functions".to_owned(), Some(-0.5)),
                ("CA".to_owned(), Some(3650.0)),
            ]
        );
        assert!(certificate_days(&ReportedCertificates::default(), now).is_empty());
    }

    #[test]
    fn a_certificate_under_a_month_from_expiry_or_past_it_is_a_problem() {
        let cases = [
            // (days left, a problem?)
            (Some(200.0), false),
            (Some(30.0), false),
            (Some(29.9), true),
            (Some(1.0), true),
            (Some(-2.0), true),
            // Not read: the member's silence is judged elsewhere.
            (None, false),
        ];
        for (days_left, problem) in cases {
            let mut view = healthy_view();
            view.certificates = vec![CertificateDays {
                certificate: "node i-2".into(),
                days_left,
            }];
            let found = problems(&view, &LIMITS);
            assert_eq!(!found.is_empty(), problem, "{days_left:?}: {found:?}");
            assert!(found.iter().all(|p| p.contains("node i-2")), "{found:?}");
        }
    }

    #[test]
    fn function_errors_are_no_problem_by_themselves() {
        let mut view = healthy_view();
        view.function_errors = vec![super::super::function_errors::summarize(
            "/aws/lambda/backup",
            vec![super::super::function_errors::ErrorLine {
                event_id: "e1".into(),
                at_ms: 1_765_000_000_000,
                line: r#"{"level":"ERROR","message":"backup failed"}"#.into(),
            }],
            false,
        )];
        assert_eq!(problems(&view, &LIMITS), Vec::<String>::new());
    }

    #[test]
    fn a_member_that_does_not_answer_is_a_problem() {
        let mut view = healthy_view();
        view.cluster.members[1].status = None;
        assert_eq!(
            problems(&view, &LIMITS),
            vec!["member 2 (instance i-2) does not answer"]
        );
    }

    #[test]
    fn a_raised_alarm_is_a_problem() {
        let mut view = healthy_view();
        view.cluster.alarms.push(Alarm {
            member_id: MemberId(1),
            kind: AlarmKind::NoSpace,
        });
        assert_eq!(
            problems(&view, &LIMITS),
            vec!["alarm NOSPACE raised by member 1"]
        );
    }

    #[test]
    fn a_learner_is_a_problem_until_it_votes() {
        let mut view = healthy_view();
        view.cluster.members[0].is_learner = true;
        assert_eq!(
            problems(&view, &LIMITS),
            vec!["member 1 (instance i-1) is a learner, still joining"]
        );
    }

    #[test]
    fn a_live_instance_that_runs_no_member_is_a_problem() {
        let mut view = healthy_view();
        view.cluster.members[1].instance = None;
        view.cluster.members[1].standing = Standing::Departed;
        assert_eq!(
            problems(&view, &LIMITS),
            vec![
                "instance i-2 is live in the group but is no member",
                "member 2 (i-2) has no live instance in the group"
            ]
        );
    }

    #[test]
    fn a_stale_or_missing_backup_is_a_problem() {
        let mut view = healthy_view();
        view.newest_backup = Some(NewestBackup {
            key: "k".into(),
            revision: 1,
            age_seconds: 7200,
        });
        assert_eq!(
            problems(&view, &LIMITS),
            vec!["the newest snapshot is 7200 s old (more than 3600 s)"]
        );
        view.newest_backup = None;
        assert_eq!(problems(&view, &LIMITS), vec!["there is no backup"]);
    }

    #[test]
    fn a_learner_an_extra_member_and_dead_letters_are_problems() {
        let mut view = healthy_view();
        view.cluster.members[2].is_learner = true;
        view.cluster.instances.pop();
        view.cluster.members[2].instance = None;
        view.cluster.members[2].standing = Standing::Departed;
        view.dead_letters = Some(2);
        assert_eq!(
            problems(&view, &LIMITS),
            vec![
                "member 3 (i-3) has no live instance in the group".to_owned(),
                "2 lifecycle messages are in the dead-letter queue (members of terminated instances may not have been removed)".to_owned(),
            ]
        );
    }

    #[test]
    fn a_database_near_its_quota_is_a_problem() {
        let mut view = healthy_view();
        if let Some(status) = view.cluster.members[0].status.as_mut() {
            status.db_size = 850;
        }
        assert_eq!(
            problems(&view, &LIMITS),
            vec!["the fullest member's database is 85% of the quota (850 of 1000 bytes)"]
        );
    }

    #[test]
    fn the_loss_window_is_nothing_when_everything_is_held_and_the_age_of_the_newest_held_change_otherwise(
    ) {
        assert_eq!(loss_window_seconds(Some(0), Some(1_000), 90_000), Some(0));
        assert_eq!(loss_window_seconds(Some(5), Some(1_000), 91_000), Some(90));
        assert_eq!(loss_window_seconds(Some(5), None, 91_000), None);
        assert_eq!(loss_window_seconds(None, Some(1_000), 91_000), None);
    }

    #[test]
    fn a_loss_window_past_its_limit_is_a_problem() {
        let mut view = healthy_view();
        view.capture.behind_revisions = Some(12);
        view.capture.loss_window_seconds = Some(61);
        assert_eq!(
            problems(&view, &LIMITS),
            vec!["a total loss now would lose up to 61 s of changes (12 revisions no backup holds; the capture runs every minute)"]
        );
    }

    #[test]
    fn an_unreadable_cluster_is_a_problem_and_its_reason_is_given() {
        let mut view = healthy_view();
        view.cluster.members.clear();
        view.cluster.leader_id = None;
        view.cluster.error = Some("no member answered".into());
        assert_eq!(
            problems(&view, &LIMITS),
            vec!["the cluster cannot be read: no member answered"]
        );
    }
}
