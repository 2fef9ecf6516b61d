//! After etcd starts: promote this node if it is a learner, then declare it
//! ready once it is a voting member of a cluster with quorum.

use std::path::PathBuf;
use std::time::Duration;

use etcd_aws_cluster::etcd_admin::{EtcdAccess, EtcdAdmin};
use etcd_aws_cluster::member::Member;
use tokio::time::Instant;

pub struct Readiness {
    pub name: String,
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
    Timeout(Duration, String),
    /// The join's learner was never seen as a voter: whatever it holds, the
    /// cluster's voters hold too (or held, if they are gone).
    #[error("this node stayed a learner for {0:?} (last problem: {1}); the cluster it joined may be gone")]
    NeverPromoted(Duration, String),
    #[error("cannot write ready file {path}: {source}")]
    ReadyFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Readiness {
    pub async fn wait_until_ready(&self) -> Result<(), ReadinessError> {
        let deadline = self.promote_timeout.map(|t| Instant::now() + t);
        let mut last_problem = String::from("etcd has not answered yet");
        let mut voter = false;
        loop {
            match self.step(&mut voter).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(problem) => {
                    if problem != last_problem {
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
        tracing::info!(member = %self.name, "ready: this node is a healthy voting member");
        Ok(())
    }

    /// One round: `Ok(true)` when ready, `Ok(false)` after progress (a
    /// promotion), `Err` with the reason it is not ready yet. Sets `voter`
    /// once this node is seen as, or made, a voting member.
    async fn step(&self, voter: &mut bool) -> Result<bool, String> {
        let members = self.members().await?;
        let me = members
            .iter()
            .find(|m| m.name == self.name)
            .ok_or_else(|| "this node is not (yet) listed as a started member".to_string())?;
        if me.is_learner {
            let voters: Vec<String> = members
                .iter()
                .filter(|m| !m.is_learner)
                .flat_map(|m| m.client_urls.iter().cloned())
                .collect();
            let mut admin = EtcdAdmin::connect(&voters, &self.access)
                .await
                .map_err(|e| e.to_string())?;
            admin.promote(me.id).await.map_err(|e| e.to_string())?;
            *voter = true;
            tracing::info!(member_id = %format!("{:x}", me.id), "promoted this node from learner to voting member");
            return Ok(false);
        }
        *voter = true;
        let mut own = EtcdAdmin::connect(std::slice::from_ref(&self.own_client_url), &self.access)
            .await
            .map_err(|e| e.to_string())?;
        own.check_quorum().await.map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// The member list from the first endpoint that answers, others first.
    async fn members(&self) -> Result<Vec<Member>, String> {
        let mut last = String::from("no endpoint to ask");
        for url in self
            .peer_client_urls
            .iter()
            .chain(std::iter::once(&self.own_client_url))
        {
            let attempt = async {
                let mut admin = EtcdAdmin::connect(std::slice::from_ref(url), &self.access).await?;
                admin.members().await
            };
            match attempt.await {
                Ok((_, members)) => return Ok(members),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }
}
