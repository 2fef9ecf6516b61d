//! After etcd starts: promote this node if it is a learner, then declare it
//! ready once it is a voting member of a cluster with quorum.

use std::path::PathBuf;
use std::time::Duration;

use etcd_aws_core::contract::events;
use etcd_aws_core::membership::member::Member;
use etcd_aws_core::membership::observation::Me;
use etcd_aws_io::etcd::admin::{EtcdAccess, EtcdAdmin};
use etcd_aws_io::etcd::error::EtcdError;
use tokio::time::Instant;

pub struct Readiness {
    pub me: Me,
    pub own_client_url: String,
    /// Client URLs of the other members as last seen; a learner cannot serve
    /// cluster calls, so those go through the others.
    pub peer_client_urls: Vec<String>,
    /// Only a joining learner is given up on: a member restarted into a
    /// cluster without quorum must keep running until quorum returns.
    pub promote_timeout: Option<Duration>,
    pub poll_interval: Duration,
    pub ready_file: Option<PathBuf>,
    pub access: EtcdAccess,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadinessError {
    #[error("this node did not become a healthy voting member within {0:?} (last problem: {1}); check that the learner can reach the leader on the peer port")]
    Timeout(Duration, NotReady),
    /// The join's learner was never seen as a voter: whatever it holds, the
    /// cluster's voters hold too (or held, if they are gone).
    #[error("this node stayed a learner for {0:?} (last problem: {1}); the cluster it joined may be gone")]
    NeverPromoted(Duration, NotReady),
    #[error("cannot write ready file {path}: {source}")]
    ReadyFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why the node is not ready yet.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("etcd has not answered yet")]
    NoAnswerYet,
    #[error("this node is not (yet) listed as a started member")]
    NotListed,
    #[error(transparent)]
    Etcd(#[from] EtcdError),
}

/// What one round of checking came to.
enum Round {
    Ready,
    /// This node was promoted from learner; check again.
    Promoted,
    NotReady(NotReady),
}

impl Readiness {
    pub async fn wait_until_ready(&self) -> Result<(), ReadinessError> {
        let deadline = self.promote_timeout.map(|t| Instant::now() + t);
        let mut last_problem = NotReady::NoAnswerYet;
        let mut voter = false;
        loop {
            match self.round(&mut voter).await {
                Round::Ready => break,
                Round::Promoted => {}
                Round::NotReady(problem) => {
                    if problem.to_string() != last_problem.to_string() {
                        tracing::debug!(%problem, "not ready yet");
                    }
                    last_problem = problem;
                }
            }
            if let (Some(deadline), Some(timeout)) = (deadline, self.promote_timeout) {
                if Instant::now() >= deadline {
                    return Err(if voter {
                        ReadinessError::Timeout(timeout, last_problem)
                    } else {
                        ReadinessError::NeverPromoted(timeout, last_problem)
                    });
                }
            }
            tokio::time::sleep(self.poll_interval).await;
        }
        if let Some(path) = &self.ready_file {
            std::fs::write(path, b"ready\n").map_err(|source| ReadinessError::ReadyFile {
                path: path.clone(),
                source,
            })?;
        }
        tracing::info!(event = events::READY, member = %self.me.instance_id, "ready: this node is a healthy voting member");
        Ok(())
    }

    /// One round. Sets `voter` once this node is seen as, or made, a voting member.
    async fn round(&self, voter: &mut bool) -> Round {
        let members = match self.members().await {
            Ok(members) => members,
            Err(error) => return Round::NotReady(error.into()),
        };
        let Some(me) = members.iter().find(|m| m.is_mine(&self.me)) else {
            return Round::NotReady(NotReady::NotListed);
        };
        if me.is_learner {
            return match self.promote(me, &members).await {
                Ok(()) => {
                    *voter = true;
                    tracing::info!(event = events::PROMOTED, member_id = %me.id, "promoted this node from learner to voting member");
                    Round::Promoted
                }
                Err(error) => Round::NotReady(error.into()),
            };
        }
        *voter = true;
        let quorum = async {
            EtcdAdmin::connect(std::slice::from_ref(&self.own_client_url), &self.access)
                .await?
                .check_quorum()
                .await
        };
        match quorum.await {
            Ok(_) => Round::Ready,
            Err(error) => Round::NotReady(error.into()),
        }
    }

    /// Through the voters: a learner cannot change the membership.
    async fn promote(&self, me: &Member, members: &[Member]) -> Result<(), EtcdError> {
        let voters: Vec<String> = members
            .iter()
            .filter(|m| !m.is_learner)
            .flat_map(|m| m.client_urls.iter().cloned())
            .collect();
        EtcdAdmin::connect(&voters, &self.access)
            .await?
            .promote(me.id)
            .await
    }

    /// The member list from the first endpoint that answers, others first.
    async fn members(&self) -> Result<Vec<Member>, EtcdError> {
        let endpoints: Vec<String> = self
            .peer_client_urls
            .iter()
            .chain(std::iter::once(&self.own_client_url))
            .cloned()
            .collect();
        let (_, members) = EtcdAdmin::first_answer(&endpoints, &self.access, async |admin| {
            admin.members().await
        })
        .await?;
        Ok(members)
    }
}
