//! What the agent does next after each outcome of its loop: the after-exit
//! half of the agent's logic, as [`decision`] is the first half.
//!
//! Pure: plain data in, a [`Next`] out, every row a table test below. The
//! rules that keep data safe are visible here: a stranded learner's data is
//! moved aside, never deleted; a join whose etcd failed is retried only a few
//! times, since etcd exits when a concurrent join changed the member list
//! under it; an operator's stop is always honoured.
//!
//! [`decision`]: etcd_aws_core::membership::decision

use std::process::ExitStatus;

use crate::exit_status;
use crate::wait::WaitEnd;

/// A join whose etcd exits before it is ready is tried this many times.
pub const JOIN_ATTEMPTS: u32 = 3;

/// How one run of etcd ended, as the supervisor saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdExit {
    /// etcd ended by itself. `was_ready`: the node had become a healthy voting member.
    Ended { status: ExitStatus, was_ready: bool },
    /// etcd ended after the agent forwarded it a signal.
    Stopped { status: ExitStatus },
    /// The agent stopped it: the node never became a healthy voting member
    /// within `--promote-timeout`, although it had been promoted.
    NeverReady,
    /// The agent stopped it: the node stayed a learner for all of
    /// `--promote-timeout`; the cluster it joined may be gone.
    StrandedLearner,
    /// The agent stopped it to restart it with `--force-new-cluster`: quorum is
    /// lost for good and this member has the newest data.
    ForRecovery,
    /// etcd refused to start: its corruption check found this member's data
    /// differs from its peers' at the same revision.
    Diverged,
    /// The agent stopped it because an operator's restore order quarantines
    /// the cluster ([`etcd_aws_core::contract::restore_order`]).
    Quarantined,
    /// The agent stopped it to restart it trusting what a CA rotation's
    /// stage asks ([`crate::ca_trust_watch`]).
    ForNewTrust,
}

/// How etcd was started, as far as what comes after depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Joining an existing cluster as a new learner, after `failed_before`
    /// earlier attempts whose etcd exited before it was ready.
    Join { failed_before: u32 },
    /// Restarting on its data, forming, or recovering.
    Other,
}

/// What one round of the agent's loop came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing safe to do yet (the decision was to wait, or the cluster
    /// refused the join for now), and the agent waited one poll interval.
    NotYet,
    /// A wait ended without etcd starting.
    WaitEnded(WaitEnd),
    /// etcd ran and ended.
    EtcdEnded { exit: EtcdExit, start: Start },
}

/// What the agent does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Observe the group and decide afresh.
    Observe,
    /// Observe and decide afresh, counting one more failed join.
    RetryJoin,
    /// Move the data directory aside (never delete it), then observe afresh.
    MoveDataAsideAndObserve,
    /// The data diverged: set it aside once a healthy quorum holds the
    /// cluster's data (waiting until then), then observe afresh and rejoin.
    SetAsideDivergedData,
    /// Start etcd again on its data with `--force-new-cluster`.
    RestartForcingNewCluster,
    /// Stop with this exit status.
    Exit(u8),
    /// Stop with an error, exit status 1.
    Fail(Failure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("etcd was stopped because this node never became a healthy voting member (see the error above)")]
    NeverReady,
}

pub fn next(outcome: &Outcome) -> Next {
    match outcome {
        Outcome::NotYet => Next::Observe,
        Outcome::WaitEnded(end) => Next::Exit(after_wait(end)),
        Outcome::EtcdEnded { exit, start } => after_etcd(exit, *start),
    }
}

/// A wait that ended without etcd starting always stops the agent; this is
/// its exit status (also for the wait for the CA, before the loop starts).
pub fn after_wait(end: &WaitEnd) -> u8 {
    match end {
        WaitEnd::Signal(signal) => exit_status::for_signal(*signal),
        WaitEnd::TimedOut => exit_status::GAVE_UP_WAITING,
    }
}

fn after_etcd(exit: &EtcdExit, start: Start) -> Next {
    match exit {
        EtcdExit::Stopped { status } => Next::Exit(exit_status::of_etcd(*status)),
        EtcdExit::ForRecovery => Next::RestartForcingNewCluster,
        // The next observation reads the order again and quarantines the node.
        EtcdExit::Quarantined => Next::Observe,
        // It restarts on its data, as any member whose peers serve: the next
        // start reads the new trusted CAs.
        EtcdExit::ForNewTrust => Next::Observe,
        // Its peers would wait on it forever, and it would restart as that
        // learner forever: start over without its data, kept aside.
        EtcdExit::StrandedLearner => Next::MoveDataAsideAndObserve,
        EtcdExit::NeverReady => Next::Fail(Failure::NeverReady),
        // Restarting on that data would fail the same check forever.
        EtcdExit::Diverged => Next::SetAsideDivergedData,
        EtcdExit::Ended { status, was_ready } => match start {
            Start::Join { failed_before }
                if !was_ready && !status.success() && failed_before + 1 < JOIN_ATTEMPTS =>
            {
                Next::RetryJoin
            }
            _ => Next::Exit(exit_status::of_etcd(*status)),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    fn code(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    fn ended(status: i32, was_ready: bool, start: Start) -> Outcome {
        Outcome::EtcdEnded {
            exit: EtcdExit::Ended {
                status: code(status),
                was_ready,
            },
            start,
        }
    }

    fn join(failed_before: u32) -> Start {
        Start::Join { failed_before }
    }

    #[test]
    fn nothing_to_do_yet_means_observe_again() {
        assert_eq!(next(&Outcome::NotYet), Next::Observe);
    }

    #[test]
    fn a_signal_while_waiting_stops_with_128_plus_the_signal() {
        assert_eq!(
            next(&Outcome::WaitEnded(WaitEnd::Signal(libc::SIGTERM))),
            Next::Exit(143)
        );
    }

    #[test]
    fn a_wait_that_ran_out_stops_with_tempfail() {
        assert_eq!(next(&Outcome::WaitEnded(WaitEnd::TimedOut)), Next::Exit(75));
    }

    #[test]
    fn etcds_own_exit_becomes_the_agents() {
        assert_eq!(next(&ended(0, true, Start::Other)), Next::Exit(0));
        assert_eq!(next(&ended(1, false, Start::Other)), Next::Exit(1));
        assert_eq!(next(&ended(2, true, join(0))), Next::Exit(2));
    }

    #[test]
    fn a_join_whose_etcd_failed_before_it_was_ready_is_retried() {
        assert_eq!(next(&ended(1, false, join(0))), Next::RetryJoin);
        assert_eq!(next(&ended(1, false, join(1))), Next::RetryJoin);
    }

    #[test]
    fn a_join_is_given_up_after_three_attempts() {
        assert_eq!(next(&ended(1, false, join(2))), Next::Exit(1));
    }

    #[test]
    fn a_join_whose_etcd_ended_cleanly_is_not_retried() {
        assert_eq!(next(&ended(0, false, join(0))), Next::Exit(0));
    }

    #[test]
    fn a_stop_the_operator_asked_for_is_honoured_even_while_joining() {
        let outcome = Outcome::EtcdEnded {
            exit: EtcdExit::Stopped {
                status: ExitStatus::from_raw(libc::SIGTERM),
            },
            start: join(0),
        };
        assert_eq!(next(&outcome), Next::Exit(143));
    }

    #[test]
    fn a_stranded_learner_moves_its_data_aside_and_starts_over() {
        let outcome = Outcome::EtcdEnded {
            exit: EtcdExit::StrandedLearner,
            start: join(0),
        };
        assert_eq!(next(&outcome), Next::MoveDataAsideAndObserve);
    }

    #[test]
    fn a_voter_that_never_became_ready_fails() {
        let outcome = Outcome::EtcdEnded {
            exit: EtcdExit::NeverReady,
            start: join(0),
        };
        assert_eq!(next(&outcome), Next::Fail(Failure::NeverReady));
    }

    #[test]
    fn data_that_diverged_from_the_peers_is_set_aside_rather_than_restarted_on() {
        let outcome = Outcome::EtcdEnded {
            exit: EtcdExit::Diverged,
            start: Start::Other,
        };
        assert_eq!(next(&outcome), Next::SetAsideDivergedData);
    }

    #[test]
    fn a_lost_quorum_recovery_restarts_etcd_forcing_a_new_cluster() {
        let outcome = Outcome::EtcdEnded {
            exit: EtcdExit::ForRecovery,
            start: Start::Other,
        };
        assert_eq!(next(&outcome), Next::RestartForcingNewCluster);
    }

    #[test]
    fn a_quarantine_for_a_restore_observes_again_whether_joining_or_not() {
        for start in [Start::Other, join(0)] {
            let outcome = Outcome::EtcdEnded {
                exit: EtcdExit::Quarantined,
                start,
            };
            assert_eq!(next(&outcome), Next::Observe, "{start:?}");
        }
    }

    #[test]
    fn a_restart_for_a_ca_rotation_observes_again_and_so_restarts_on_its_data() {
        let outcome = Outcome::EtcdEnded {
            exit: EtcdExit::ForNewTrust,
            start: Start::Other,
        };
        assert_eq!(next(&outcome), Next::Observe);
    }
}
