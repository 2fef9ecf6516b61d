//! The rules of a CA rotation: which CAs a member trusts and issues from at
//! each stage, and when a member takes its turn to restart.
//!
//! etcd reads its trusted CAs (`--trusted-ca-file`, `--peer-trusted-ca-file`)
//! only at start, but its certificate at every handshake. So a new CA comes
//! in three stages, and no member ever trusts what a peer does not present
//! or presents what a peer does not trust:
//!
//! 1. [`Stage::TrustBoth`]: every member restarts, one at a time, trusting
//!    the old CA and the new; certificates still come from the old.
//! 2. [`Stage::IssueFromNew`]: every member renews its certificate in place
//!    from the new CA (no restart: all trust it by now).
//! 3. [`Stage::DropOld`]: every member restarts, one at a time, trusting the
//!    new CA only (nobody presents an old certificate any more).
//!
//! A stage moves on only once every node has acknowledged it, so a member
//! at stage `n + 1` never meets one behind stage `n`. Restarts go one member
//! at a time, the leader last (one leader election per pass, not one per
//! member), and only while every member is healthy: a restart never costs
//! the quorum.

use std::fmt;

/// One stage of a rotation, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    TrustBoth,
    IssueFromNew,
    DropOld,
}

/// Which of the two CAs of a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    Old,
    New,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::TrustBoth, Stage::IssueFromNew, Stage::DropOld];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::TrustBoth => "trust-both",
            Stage::IssueFromNew => "issue-from-new",
            Stage::DropOld => "drop-old",
        }
    }

    pub fn parse(text: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The stage after this one; `None` after the last.
    pub fn next(self) -> Option<Stage> {
        match self {
            Stage::TrustBoth => Some(Stage::IssueFromNew),
            Stage::IssueFromNew => Some(Stage::DropOld),
            Stage::DropOld => None,
        }
    }

    /// The CA a member's certificate comes from at this stage.
    pub fn issuer(self) -> Generation {
        match self {
            Stage::TrustBoth => Generation::Old,
            Stage::IssueFromNew | Stage::DropOld => Generation::New,
        }
    }

    /// The CAs a member trusts at this stage, the issuer first.
    pub fn trusted(self) -> &'static [Generation] {
        match self {
            Stage::TrustBoth => &[Generation::Old, Generation::New],
            Stage::IssueFromNew => &[Generation::New, Generation::Old],
            Stage::DropOld => &[Generation::New],
        }
    }

    /// Whether reaching this stage changes what a member trusts, which etcd
    /// takes in only by restarting.
    pub fn restarts_members(self) -> bool {
        match self {
            Stage::TrustBoth | Stage::DropOld => true,
            Stage::IssueFromNew => false,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member as a node sees it when deciding whose turn it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberTurnView {
    /// The member's name: its instance id.
    pub name: String,
    pub is_leader: bool,
    /// It answers as a started voting member.
    pub healthy: bool,
    /// It has acknowledged the stage.
    pub done: bool,
}

/// Whether the member named `me` restarts now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn {
    Now,
    /// It acknowledged the stage already.
    Done,
    /// Not every member is healthy: a restart now could cost the quorum.
    WaitForHealth {
        unhealthy: Vec<String>,
    },
    /// Members ordered before it have not restarted yet.
    WaitForTurn {
        before: Vec<String>,
    },
    /// It is not in the member list (yet): nothing to judge.
    NotAMember,
}

impl Turn {
    pub fn kind(&self) -> &'static str {
        match self {
            Turn::Now => "now",
            Turn::Done => "done",
            Turn::WaitForHealth { .. } => "wait_for_health",
            Turn::WaitForTurn { .. } => "wait_for_turn",
            Turn::NotAMember => "not_a_member",
        }
    }
}

/// The order the members restart in: followers by name, the leader last.
pub fn restart_order(members: &[MemberTurnView]) -> Vec<&MemberTurnView> {
    let mut ordered: Vec<&MemberTurnView> = members.iter().collect();
    ordered.sort_by(|a, b| (a.is_leader, &a.name).cmp(&(b.is_leader, &b.name)));
    ordered
}

/// Whose turn it is, as the member `me` judges from `members` (itself
/// included). Two members that see the same cluster never both get
/// [`Turn::Now`]: only the first member not done in [`restart_order`] does,
/// and only while all are healthy.
pub fn turn(me: &str, members: &[MemberTurnView]) -> Turn {
    let Some(mine) = members.iter().find(|m| m.name == me) else {
        return Turn::NotAMember;
    };
    if mine.done {
        return Turn::Done;
    }
    let unhealthy: Vec<String> = members
        .iter()
        .filter(|m| !m.healthy)
        .map(|m| m.name.clone())
        .collect();
    if !unhealthy.is_empty() {
        return Turn::WaitForHealth { unhealthy };
    }
    let before: Vec<String> = restart_order(members)
        .into_iter()
        .take_while(|m| m.name != me)
        .filter(|m| !m.done)
        .map(|m| m.name.clone())
        .collect();
    if before.is_empty() {
        Turn::Now
    } else {
        Turn::WaitForTurn { before }
    }
}

/// Who has not acknowledged a stage yet: the nodes `expected` whose names
/// are not among `acknowledged`.
pub fn outstanding<'a>(expected: &'a [String], acknowledged: &[String]) -> Vec<&'a str> {
    expected
        .iter()
        .filter(|node| !acknowledged.contains(node))
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, is_leader: bool, healthy: bool, done: bool) -> MemberTurnView {
        MemberTurnView {
            name: name.into(),
            is_leader,
            healthy,
            done,
        }
    }

    #[test]
    fn stages_run_trust_both_then_issue_from_new_then_drop_old() {
        assert_eq!(Stage::TrustBoth.next(), Some(Stage::IssueFromNew));
        assert_eq!(Stage::IssueFromNew.next(), Some(Stage::DropOld));
        assert_eq!(Stage::DropOld.next(), None);
    }

    #[test]
    fn a_member_always_trusts_the_ca_it_issues_from() {
        for stage in Stage::ALL {
            assert_eq!(stage.trusted()[0], stage.issuer(), "{stage}");
        }
    }

    #[test]
    fn each_stage_trusts_what_the_stages_beside_it_present() {
        // A member one stage ahead or behind its peer meets certificates of
        // the peer's issuer, and must trust them.
        for stage in Stage::ALL {
            if let Some(next) = stage.next() {
                assert!(
                    next.trusted().contains(&stage.issuer()),
                    "{next} trusts {stage}'s issuer"
                );
                assert!(
                    stage.trusted().contains(&next.issuer()),
                    "{stage} trusts {next}'s issuer"
                );
            }
        }
    }

    #[test]
    fn only_the_stages_that_change_trust_restart_members() {
        let mut before = vec![Generation::Old];
        for stage in Stage::ALL {
            let after = stage.trusted();
            let changed = before.len() != after.len() || before.iter().any(|g| !after.contains(g));
            assert_eq!(stage.restarts_members(), changed, "{stage}");
            before = after.to_vec();
        }
    }

    #[test]
    fn a_stage_reads_back_from_its_name() {
        for stage in Stage::ALL {
            assert_eq!(Stage::parse(stage.as_str()), Some(stage));
        }
        assert_eq!(Stage::parse("trust-all"), None);
    }

    #[test]
    fn followers_restart_by_name_and_the_leader_last() {
        let members = [
            member("i-c", false, true, false),
            member("i-a", true, true, false),
            member("i-b", false, true, false),
        ];
        let order: Vec<&str> = restart_order(&members)
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(order, ["i-b", "i-c", "i-a"]);
    }

    #[test]
    fn turns() {
        let cases: &[(&str, &str, Vec<MemberTurnView>, Turn)] = &[
            (
                "the first follower goes first",
                "i-b",
                vec![
                    member("i-a", true, true, false),
                    member("i-b", false, true, false),
                    member("i-c", false, true, false),
                ],
                Turn::Now,
            ),
            (
                "the second follower waits for the first",
                "i-c",
                vec![
                    member("i-a", true, true, false),
                    member("i-b", false, true, false),
                    member("i-c", false, true, false),
                ],
                Turn::WaitForTurn {
                    before: vec!["i-b".into()],
                },
            ),
            (
                "the leader waits for every follower",
                "i-a",
                vec![
                    member("i-a", true, true, false),
                    member("i-b", false, true, true),
                    member("i-c", false, true, false),
                ],
                Turn::WaitForTurn {
                    before: vec!["i-c".into()],
                },
            ),
            (
                "the leader goes once every follower is done",
                "i-a",
                vec![
                    member("i-a", true, true, false),
                    member("i-b", false, true, true),
                    member("i-c", false, true, true),
                ],
                Turn::Now,
            ),
            (
                "nobody goes while a member is unhealthy",
                "i-c",
                vec![
                    member("i-a", true, true, false),
                    member("i-b", false, false, true),
                    member("i-c", false, true, false),
                ],
                Turn::WaitForHealth {
                    unhealthy: vec!["i-b".into()],
                },
            ),
            (
                "a member that is done stays done, whatever the others",
                "i-b",
                vec![
                    member("i-a", true, false, false),
                    member("i-b", false, true, true),
                ],
                Turn::Done,
            ),
            (
                "a node missing from the member list does not judge",
                "i-d",
                vec![member("i-a", true, true, false)],
                Turn::NotAMember,
            ),
            (
                "a member replaced during the rotation is simply done",
                "i-c",
                vec![
                    member("i-a", true, true, false),
                    member("i-b", false, true, false),
                    member("i-c", false, true, true),
                ],
                Turn::Done,
            ),
        ];
        for (what, me, members, expected) in cases {
            assert_eq!(&turn(me, members), expected, "{what}");
        }
    }

    #[test]
    fn two_members_seeing_the_same_cluster_never_both_go() {
        let members = vec![
            member("i-a", true, true, false),
            member("i-b", false, true, false),
            member("i-c", false, true, true),
        ];
        let going: Vec<&str> = ["i-a", "i-b", "i-c"]
            .into_iter()
            .filter(|me| turn(me, &members) == Turn::Now)
            .collect();
        assert_eq!(going, ["i-b"]);
    }

    #[test]
    fn outstanding_nodes_are_those_expected_and_not_acknowledged() {
        let expected = ["i-a".to_string(), "i-b".into(), "i-c".into()];
        let acknowledged = ["i-b".to_string(), "i-z".into()];
        assert_eq!(outstanding(&expected, &acknowledged), ["i-a", "i-c"]);
    }
}
