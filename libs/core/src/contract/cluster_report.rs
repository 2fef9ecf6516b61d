//! What the backup function's `{"job": "status"}` sees of the cluster from
//! inside the VPC, for the operator's `status` and `restore` commands, which
//! usually cannot reach the members themselves. Plain data: the function
//! fills it in, the commands judge it.

use serde::{Deserialize, Serialize};

use crate::etcd::status::{Alarm, AlarmKind, MemberStatus};
use crate::membership::instance::Instance;
use crate::membership::member::Member;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterReport {
    /// The group's instances, live or not.
    pub instances: Vec<ReportedInstance>,
    /// The member list, with each member's own answer to a status request.
    pub members: Vec<ReportedMember>,
    /// Hex, as etcdctl prints it; `None` when no member answered.
    pub cluster_id: Option<String>,
    /// The leader most answering members name.
    pub leader_id: Option<String>,
    /// The highest revision a member reported.
    pub revision: Option<i64>,
    pub alarms: Vec<ReportedAlarm>,
    /// The backend quota the members run with.
    pub quota_bytes: i64,
    /// The version the cluster speaks (`3.5.0`), from a member's `/version`;
    /// it trails the members' releases during a rolling upgrade until every
    /// member runs the new one. `None` when no member said.
    #[serde(default)]
    pub cluster_version: Option<String>,
    /// Why the member list could not be read, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
    pub id: String,
    /// The instance id (empty for a member added but never started).
    pub name: String,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedAlarm {
    pub member_id: String,
    /// `NOSPACE` or `CORRUPT`, as etcdctl names them.
    pub kind: String,
}

/// etcd's member and cluster ids as etcdctl prints them.
pub fn hex_id(id: u64) -> String {
    format!("{id:x}")
}

impl ClusterReport {
    pub fn of(
        instances: &[Instance],
        members: &[Member],
        statuses: &[MemberStatus],
        alarms: &[Alarm],
        quota_bytes: i64,
    ) -> Self {
        let mut leaders: Vec<u64> = statuses
            .iter()
            .map(|s| s.leader_id)
            .filter(|id| *id != 0)
            .collect();
        leaders.sort_unstable();
        // The most named leader; ties to the lower id, so the answer is stable.
        let leader_id = leaders
            .chunk_by(|a, b| a == b)
            .max_by_key(|run| (run.len(), std::cmp::Reverse(run[0])))
            .map(|run| hex_id(run[0]));
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
                    id: hex_id(m.id),
                    name: m.name.clone(),
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
            cluster_id: statuses.first().map(|s| hex_id(s.cluster_id)),
            leader_id,
            revision: statuses.iter().map(|s| s.revision).max(),
            alarms: alarms
                .iter()
                .map(|a| ReportedAlarm {
                    member_id: hex_id(a.member_id),
                    kind: match a.kind {
                        AlarmKind::NoSpace => "NOSPACE",
                        AlarmKind::Corrupt => "CORRUPT",
                    }
                    .to_owned(),
                })
                .collect(),
            quota_bytes,
            cluster_version: None,
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::instance::LifecycleState;

    fn status(member_id: u64, leader_id: u64) -> MemberStatus {
        MemberStatus {
            cluster_id: 0xc1,
            member_id,
            leader_id,
            is_learner: false,
            revision: 10 + member_id as i64,
            raft_applied_index: 1,
            raft_term: 2,
            db_size: 100,
            db_size_in_use: 60,
            version: "3.5.16".into(),
        }
    }

    fn member(id: u64, name: &str) -> Member {
        Member {
            id,
            name: name.into(),
            peer_urls: vec![format!("https://127.0.0.{id}:2380")],
            client_urls: vec![],
            is_learner: false,
        }
    }

    #[test]
    fn a_report_names_the_leader_most_members_follow_and_the_silent_members() {
        let instances = [Instance {
            id: "i-1".into(),
            private_ip: "127.0.0.1".parse().ok(),
            lifecycle_state: LifecycleState::parse("InService"),
            launch_time: None,
            availability_zone: Some("us-east-1a".into()),
        }];
        let members = [member(1, "i-1"), member(2, "i-2"), member(3, "i-3")];
        let report = ClusterReport::of(
            &instances,
            &members,
            &[status(1, 2), status(2, 2)],
            &[Alarm {
                member_id: 1,
                kind: AlarmKind::NoSpace,
            }],
            1000,
        );
        assert_eq!(report.leader_id.as_deref(), Some("2"));
        assert_eq!(report.cluster_id.as_deref(), Some("c1"));
        assert_eq!(report.revision, Some(12));
        assert!(
            report.members[2].status.is_none(),
            "member 3 did not answer"
        );
        assert_eq!(report.alarms[0].kind, "NOSPACE");
        assert!(report.instances[0].live);
        assert_eq!(
            report.instances[0].availability_zone.as_deref(),
            Some("us-east-1a")
        );
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
