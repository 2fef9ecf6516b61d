//! What the backup function's `{"job": "status"}` sees of the cluster from
//! inside the VPC, for the operator's `status` and `restore` commands, which
//! usually cannot reach the members themselves. The function fills it in,
//! with each member's standing decided by the one rule
//! ([`Member::standing`]); the commands judge it and never pair members with
//! instances again by themselves.

use serde::{Deserialize, Serialize};

use crate::etcd::ids::{ClusterId, MemberId};
use crate::etcd::status::{leader_named_by_most, Alarm, MemberStatus};
use crate::membership::instance::Instance;
use crate::membership::member::{Member, Standing};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterReport {
    /// The group's instances, live or not.
    pub instances: Vec<ReportedInstance>,
    /// The member list, with each member's own answer to a status request.
    pub members: Vec<ReportedMember>,
    /// `None` when no member answered.
    pub cluster_id: Option<ClusterId>,
    /// The leader most answering members name.
    pub leader_id: Option<MemberId>,
    /// The highest revision a member reported.
    pub revision: Option<i64>,
    pub alarms: Vec<Alarm>,
    /// The backend quota the members run with.
    pub quota_bytes: i64,
    /// The version the cluster speaks (`3.5.0`), from a member's `/version`;
    /// it trails the members' releases during a rolling upgrade until every
    /// member runs the new one. `None` when no member said.
    #[serde(default)]
    pub cluster_version: Option<String>,
    /// When the cluster's certificates expire, as the function read them;
    /// empty for a cluster without TLS.
    #[serde(default)]
    pub certificates: ReportedCertificates,
    /// Why the member list could not be read, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// When each certificate expires, in seconds since the epoch; `None` where
/// it could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedCertificates {
    /// The certificate each live instance serves (read from a TLS handshake,
    /// so it is what clients meet), by instance id.
    pub nodes: Vec<ServedCertificate>,
    /// The functions' client certificate.
    pub functions: Option<i64>,
    pub ca: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedCertificate {
    pub instance: String,
    pub not_after: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedInstance {
    pub id: String,
    pub private_ip: Option<String>,
    pub lifecycle_state: String,
    pub live: bool,
    #[serde(default)]
    pub availability_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedMember {
    pub id: MemberId,
    /// The instance id it was named after (empty for a member added but never
    /// started).
    pub name: String,
    /// The instance of the group that runs it ([`Member::runner`]); `None`
    /// when no instance of the group does.
    pub instance: Option<String>,
    /// Where it stands against the group ([`Member::standing`]).
    pub standing: Standing,
    pub peer_urls: Vec<String>,
    pub is_learner: bool,
    /// `None`: the member did not answer.
    pub status: Option<ReportedStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedStatus {
    pub version: String,
    pub revision: i64,
    pub db_size: i64,
    pub db_size_in_use: i64,
    pub raft_term: u64,
}

impl ReportedMember {
    /// A voter that answered: what a whole cluster's every member is.
    pub fn serves_as_voter(&self) -> bool {
        !self.is_learner && self.status.is_some()
    }
}

impl ClusterReport {
    pub fn of(
        instances: &[Instance],
        members: &[Member],
        statuses: &[MemberStatus],
        alarms: &[Alarm],
        quota_bytes: i64,
    ) -> Self {
        Self {
            instances: instances
                .iter()
                .map(|i| ReportedInstance {
                    id: i.id.clone(),
                    private_ip: i.private_ip.map(|ip| ip.to_string()),
                    lifecycle_state: i.lifecycle_state.as_str().to_owned(),
                    live: i.is_live(),
                    availability_zone: i.availability_zone.clone(),
                })
                .collect(),
            members: members
                .iter()
                .map(|m| ReportedMember {
                    id: m.id,
                    name: m.name.clone(),
                    instance: m.runner(instances).map(|i| i.id.clone()),
                    standing: m.standing(instances, None),
                    peer_urls: m.peer_urls.clone(),
                    is_learner: m.is_learner,
                    status: statuses
                        .iter()
                        .find(|s| s.member_id == m.id)
                        .map(|s| ReportedStatus {
                            version: s.version.clone(),
                            revision: s.revision,
                            db_size: s.db_size,
                            db_size_in_use: s.db_size_in_use,
                            raft_term: s.raft_term,
                        }),
                })
                .collect(),
            cluster_id: statuses.first().map(|s| s.cluster_id),
            leader_id: leader_named_by_most(statuses),
            revision: statuses.iter().map(|s| s.revision).max(),
            alarms: alarms.to_vec(),
            quota_bytes,
            cluster_version: None,
            certificates: ReportedCertificates::default(),
            error: None,
        }
    }

    /// The member `instance` runs, by the report's pairing.
    pub fn member_run_by(&self, instance: &str) -> Option<&ReportedMember> {
        self.members
            .iter()
            .find(|m| m.instance.as_deref() == Some(instance))
    }

    /// The instance that runs `member`, by the report's pairing.
    pub fn instance_running(&self, member: &ReportedMember) -> Option<&ReportedInstance> {
        let id = member.instance.as_deref()?;
        self.instances.iter().find(|i| i.id == id)
    }

    /// The instances the group lists as live.
    pub fn live_instances(&self) -> impl Iterator<Item = &ReportedInstance> {
        self.instances.iter().filter(|i| i.live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::status::AlarmKind;
    use crate::test_support::{instance, member, status, unstarted};

    fn statuses() -> Vec<MemberStatus> {
        vec![
            MemberStatus {
                cluster_id: ClusterId(0xc1),
                revision: 11,
                ..status(1, 2)
            },
            MemberStatus {
                cluster_id: ClusterId(0xc1),
                revision: 12,
                ..status(2, 2)
            },
        ]
    }

    #[test]
    fn a_report_names_the_leader_most_members_follow_and_the_silent_members() {
        let instances = [Instance {
            availability_zone: Some("us-east-1a".into()),
            ..instance("i-1", 1, "InService")
        }];
        let members = [
            member(1, "i-1", 1),
            member(2, "i-2", 2),
            member(3, "i-3", 3),
        ];
        let alarm = Alarm {
            member_id: MemberId(1),
            kind: AlarmKind::NoSpace,
        };
        let report = ClusterReport::of(&instances, &members, &statuses(), &[alarm], 1000);
        assert_eq!(report.leader_id, Some(MemberId(2)));
        assert_eq!(report.cluster_id, Some(ClusterId(0xc1)));
        assert_eq!(report.revision, Some(12));
        assert!(
            report.members[2].status.is_none(),
            "member 3 did not answer"
        );
        assert_eq!(report.alarms, [alarm]);
        assert!(report.instances[0].live);
        assert_eq!(
            report.instances[0].availability_zone.as_deref(),
            Some("us-east-1a")
        );
    }

    #[test]
    fn each_member_carries_its_standing_and_the_instance_that_runs_it() {
        let instances = [
            instance("i-1", 1, "InService"),
            instance("i-2", 2, "Terminating:Wait"),
            instance("i-new", 4, "Pending"),
        ];
        let members = [
            member(1, "i-1", 1),
            member(2, "i-2", 2),
            member(3, "i-3", 3),
            unstarted(4, 4),
        ];
        let report = ClusterReport::of(&instances, &members, &[], &[], 0);
        let pairs: Vec<(Option<&str>, Standing)> = report
            .members
            .iter()
            .map(|m| (m.instance.as_deref(), m.standing))
            .collect();
        assert_eq!(
            pairs,
            [
                (Some("i-1"), Standing::Live),
                (Some("i-2"), Standing::Leaving),
                (None, Standing::Departed),
                (Some("i-new"), Standing::Live),
            ]
        );
        assert_eq!(
            report.member_run_by("i-new").map(|m| m.id),
            Some(MemberId(4)),
            "a member added but never started is its joiner's"
        );
    }

    #[test]
    fn ids_and_alarms_travel_as_etcdctl_prints_them() {
        let alarm = Alarm {
            member_id: MemberId(0xab),
            kind: AlarmKind::NoSpace,
        };
        let report = ClusterReport::of(&[], &[], &statuses(), &[alarm], 0);
        let json = serde_json::to_value(&report).unwrap_or_default();
        assert_eq!(json["cluster_id"], "c1");
        assert_eq!(json["leader_id"], "2");
        assert_eq!(
            json["alarms"],
            serde_json::json!([{"member_id": "ab", "kind": "NOSPACE"}])
        );
        let back: Result<ClusterReport, _> = serde_json::from_value(json);
        assert_eq!(back.ok(), Some(report));
    }

    #[test]
    fn a_report_from_a_function_that_predates_zones_and_cluster_versions_still_reads() {
        let older = r#"{"instances":[{"id":"i-1","private_ip":"127.0.0.1","lifecycle_state":"InService","live":true}],
            "members":[],"cluster_id":null,"leader_id":null,"revision":null,"alarms":[],"quota_bytes":0}"#;
        let report: ClusterReport = serde_json::from_str(older).expect("an older report reads");
        assert_eq!(report.cluster_version, None);
        assert_eq!(report.instances[0].availability_zone, None);
    }
}
