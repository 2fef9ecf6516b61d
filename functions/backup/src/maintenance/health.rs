//! etcd's own health as CloudWatch metrics: database size against its quota,
//! leader, term, members and learners, active alarms. Pure: the run gathers
//! the answers, this turns them into figures.

use etcd_aws_core::contract::metrics::{self, fields};
use etcd_aws_core::contract::metrics::{Metric, Property, Unit};
use etcd_aws_core::etcd::ids::MemberId;
use etcd_aws_core::etcd::status::{leader_named_by_most, Alarm, AlarmKind, MemberStatus};
use etcd_aws_core::membership::member::Member;

/// The cluster's health at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub voting_members: usize,
    pub learners: usize,
    /// Members that answered a status request.
    pub answering: usize,
    /// The leader most answering members name; `None` when none knows one.
    pub leader_id: Option<MemberId>,
    /// The highest raft term seen: it rises by one with every election, so
    /// its increase over a period is the number of leader changes.
    pub raft_term: u64,
    /// The largest backend file of any member (the quota applies per member).
    pub db_size_bytes: i64,
    pub db_size_in_use_bytes: i64,
    pub quota_bytes: i64,
    pub nospace_alarms: usize,
    pub corrupt_alarms: usize,
}

impl Health {
    pub fn of(
        members: &[Member],
        statuses: &[MemberStatus],
        alarms: &[Alarm],
        quota_bytes: i64,
    ) -> Self {
        let leader_id = leader_named_by_most(statuses);
        let count = |kind: AlarmKind| alarms.iter().filter(|a| a.kind == kind).count();
        Self {
            voting_members: members.iter().filter(|m| !m.is_learner).count(),
            learners: members.iter().filter(|m| m.is_learner).count(),
            answering: statuses.len(),
            leader_id,
            raft_term: statuses.iter().map(|s| s.raft_term).max().unwrap_or(0),
            db_size_bytes: statuses.iter().map(|s| s.db_size).max().unwrap_or(0),
            db_size_in_use_bytes: statuses.iter().map(|s| s.db_size_in_use).max().unwrap_or(0),
            quota_bytes,
            nospace_alarms: count(AlarmKind::NoSpace),
            corrupt_alarms: count(AlarmKind::Corrupt),
        }
    }

    /// How full the fullest member is, in percent of the quota.
    pub fn quota_used_percent(&self) -> f64 {
        if self.quota_bytes <= 0 {
            return 0.0;
        }
        self.db_size_bytes as f64 * 100.0 / self.quota_bytes as f64
    }

    /// What the line carries beside the metrics: the leader's member id, in
    /// hex as etcdctl prints it (an identifier, not a quantity: a metric would
    /// round it; `RaftTerm`'s increase counts the leader changes).
    pub fn properties(&self) -> Vec<Property> {
        vec![(
            fields::LEADER_ID,
            self.leader_id
                .map_or(serde_json::Value::Null, |id| id.to_string().into()),
        )]
    }

    /// The figures the alarms and the dashboard read.
    pub fn metrics(&self) -> Vec<Metric> {
        vec![
            Metric::new(metrics::DB_SIZE, Unit::Bytes, self.db_size_bytes),
            Metric::new(
                metrics::DB_SIZE_IN_USE,
                Unit::Bytes,
                self.db_size_in_use_bytes,
            ),
            Metric::new(metrics::DB_QUOTA, Unit::Bytes, self.quota_bytes),
            Metric::new(
                metrics::DB_QUOTA_USED,
                Unit::Percent,
                self.quota_used_percent(),
            ),
            Metric::new(
                metrics::HAS_LEADER,
                Unit::Count,
                u8::from(self.leader_id.is_some()),
            ),
            Metric::new(metrics::RAFT_TERM, Unit::Count, self.raft_term),
            Metric::new(metrics::VOTING_MEMBERS, Unit::Count, self.voting_members),
            Metric::new(metrics::LEARNERS, Unit::Count, self.learners),
            Metric::new(metrics::MEMBERS_ANSWERING, Unit::Count, self.answering),
            Metric::new(metrics::NOSPACE_ALARMS, Unit::Count, self.nospace_alarms),
            Metric::new(metrics::CORRUPT_ALARMS, Unit::Count, self.corrupt_alarms),
        ]
    }
}

#[cfg(test)]
mod tests {
    use etcd_aws_core::test_support::{learner, member, status};
    use serde_json::json;

    use super::*;

    fn three() -> Vec<Member> {
        vec![
            member(1, "i-a", 1),
            member(2, "i-b", 2),
            member(3, "i-c", 3),
        ]
    }

    fn value(health: &Health, name: &str) -> serde_json::Value {
        health
            .metrics()
            .into_iter()
            .find(|m| m.name == name)
            .map_or(serde_json::Value::Null, |m| m.value)
    }

    #[test]
    fn the_fullest_member_and_the_quota_give_the_percentage() {
        let statuses = [
            MemberStatus {
                db_size: 400,
                db_size_in_use: 300,
                ..status(1, 1)
            },
            MemberStatus {
                db_size: 820,
                db_size_in_use: 500,
                ..status(2, 1)
            },
        ];
        let health = Health::of(&three(), &statuses, &[], 1000);
        assert_eq!(health.db_size_bytes, 820);
        assert_eq!(health.db_size_in_use_bytes, 500);
        assert_eq!(value(&health, "DbQuotaUsedPercent"), json!(82.0));
    }

    #[test]
    fn the_leader_is_the_one_most_members_name() {
        let statuses = [status(1, 1), status(2, 1), status(3, 3)];
        let health = Health::of(&three(), &statuses, &[], 1000);
        assert_eq!(health.leader_id, Some(MemberId(1)));
        assert_eq!(value(&health, "HasLeader"), json!(1));
    }

    #[test]
    fn the_leader_id_travels_as_a_hex_property() {
        let statuses = [status(1, 26), status(2, 26), status(3, 26)];
        let health = Health::of(&three(), &statuses, &[], 1000);
        assert_eq!(health.properties(), vec![(fields::LEADER_ID, json!("1a"))]);
    }

    #[test]
    fn no_member_knowing_a_leader_is_no_leader() {
        let statuses = [status(1, 0), status(2, 0)];
        let health = Health::of(&three(), &statuses, &[], 1000);
        assert_eq!(health.leader_id, None);
        assert_eq!(value(&health, "HasLeader"), json!(0));
    }

    #[test]
    fn voters_learners_and_answers_are_counted_apart() {
        let mut members = three();
        members.push(learner(4, "i-d", 4));
        let health = Health::of(&members, &[status(1, 1), status(2, 1)], &[], 1000);
        assert_eq!(
            (health.voting_members, health.learners, health.answering),
            (3, 1, 2)
        );
    }

    #[test]
    fn alarms_are_counted_by_kind() {
        let alarms = [
            Alarm {
                member_id: MemberId(1),
                kind: AlarmKind::NoSpace,
            },
            Alarm {
                member_id: MemberId(2),
                kind: AlarmKind::NoSpace,
            },
            Alarm {
                member_id: MemberId(3),
                kind: AlarmKind::Corrupt,
            },
        ];
        let health = Health::of(&three(), &[status(1, 1)], &alarms, 1000);
        assert_eq!(value(&health, "NospaceAlarms"), json!(2));
        assert_eq!(value(&health, "CorruptAlarms"), json!(1));
    }

    #[test]
    fn the_term_is_the_highest_seen() {
        let statuses = [
            MemberStatus {
                raft_term: 7,
                ..status(1, 1)
            },
            MemberStatus {
                raft_term: 9,
                ..status(2, 1)
            },
        ];
        assert_eq!(Health::of(&three(), &statuses, &[], 1).raft_term, 9);
    }
}
