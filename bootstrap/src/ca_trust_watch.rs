//! While etcd runs: follow a CA rotation (`etcd-aws-cfn rotate-ca`) in the CA
//! secret. When the stage changes what this member trusts, restart its etcd
//! when its turn comes (the core's [`turn`]: followers first, the leader
//! last, only while every member is healthy); when it moves the issuer, have
//! the certificate renewed in place; and once this member serves what the
//! stage asks, acknowledge it in the bucket, where `rotate-ca` and the other
//! nodes read it.
//!
//! What etcd trusts is the CA file as it was when etcd started: etcd reads
//! it only then. This watch writes the file just before it has etcd
//! restarted, so the next start reads the new trust.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use etcd_aws_core::certificates::ca_rotation::{turn, MemberTurnView, Stage, Turn};
use etcd_aws_core::contract::events;
use etcd_aws_core::etcd::launch::TlsFiles;
use etcd_aws_io::backup_store::BackupStore;
use etcd_aws_io::etcd::admin::{EtcdAccess, EtcdAdmin};
use etcd_aws_io::etcd::error::EtcdError;
use etcd_aws_io::tls::certificate::{bundle_holds, check_certificate};
use etcd_aws_io::tls::{CaState, RenewableCredentials, SecretStore, TlsCredentials};
use tokio::sync::Notify;

pub struct TrustWatch {
    pub store: SecretStore,
    pub ca_secret: String,
    /// Where etcd reads its trusted CAs (and the rest of its TLS files).
    pub files: TlsFiles,
    /// What the agent's own clients trust and present.
    pub credentials: Arc<RenewableCredentials>,
    /// Rings the certificate renewal when the issuer moved.
    pub renew_now: Arc<Notify>,
    /// Where the stages are acknowledged.
    pub backups: BackupStore,
    /// This node's instance id: its member's name.
    pub instance_id: String,
    /// The name its acknowledgements carry
    /// ([`etcd_aws_core::contract::ca_rotation_acks::ack_name`]).
    pub ack_name: String,
    pub own_client_url: String,
    pub access: EtcdAccess,
    /// How often the CA secret is read.
    pub interval: Duration,
}

impl TrustWatch {
    /// Returns once this member's etcd should restart to trust what the CA
    /// secret's rotation says (the CA file already rewritten for it); runs
    /// for as long as etcd does otherwise.
    pub async fn until_restart_is_due(&self) {
        // What the etcd that runs now read at its start.
        let started_with = std::fs::read_to_string(&self.files.ca).unwrap_or_default();
        let mut acknowledged: BTreeSet<(String, Stage)> = BTreeSet::new();
        let mut last_said = String::new();
        loop {
            tokio::time::sleep(self.interval).await;
            let state = match self.store.load_ca_state(&self.ca_secret).await {
                Ok(state) => state,
                Err(error) => {
                    self.say_once(
                        &mut last_said,
                        &format!("cannot read the CA secret: {error}"),
                    );
                    continue;
                }
            };
            let Some(rotation) = &state.rotation else {
                continue;
            };
            let wanted = state.trusted_pem();
            if !same_cas(&wanted, &started_with) {
                match self.turn(&rotation.id, rotation.stage).await {
                    Ok((Turn::Now, leader)) => match self.take_trust(&wanted) {
                        Ok(()) => {
                            tracing::warn!(
                                event = events::CA_TRUST_RESTART,
                                rotation = %rotation.id,
                                stage = %rotation.stage,
                                leader,
                                "CA ROTATION: restarting this member's etcd to trust {}, its turn (every member healthy, those before it done)",
                                trust_description(rotation.stage)
                            );
                            return;
                        }
                        Err(error) => self.say_once(
                            &mut last_said,
                            &format!("cannot write the new trusted CAs into {}: {error}", self.files.ca.display()),
                        ),
                    },
                    Ok((wait, _)) => self.say_once(&mut last_said, &format!("waiting for this member's turn to restart for CA rotation {} ({}): {wait:?}", rotation.id, rotation.stage)),
                    Err(error) => self.say_once(&mut last_said, &format!("cannot see whose turn it is to restart for CA rotation {}: {error}", rotation.id)),
                }
                continue;
            }
            if !self.presents_issuers_certificate(&state) {
                // Every member trusts the new issuer by this stage: renew now.
                self.renew_now.notify_one();
                continue;
            }
            let key = (rotation.id.clone(), rotation.stage);
            if acknowledged.contains(&key) || !self.serving().await {
                continue;
            }
            match self
                .backups
                .acknowledge_ca_rotation(&rotation.id, rotation.stage, &self.ack_name)
                .await
            {
                Ok(()) => {
                    tracing::info!(
                        event = events::CA_ROTATION_STAGE_REACHED,
                        rotation = %rotation.id,
                        stage = %rotation.stage,
                        "this member serves what CA rotation's stage asks; acknowledged in the bucket"
                    );
                    acknowledged.insert(key);
                }
                Err(error) => self.say_once(
                    &mut last_said,
                    &format!(
                        "cannot acknowledge CA rotation {} ({}) in the bucket: {error}",
                        rotation.id, rotation.stage
                    ),
                ),
            }
        }
    }

    /// Writes the CAs etcd is to trust from its next start, and has the
    /// agent's clients trust them from their next connection.
    fn take_trust(&self, wanted: &str) -> std::io::Result<()> {
        let current = self.credentials.current();
        let credentials = TlsCredentials {
            ca_pem: wanted.to_owned(),
            ..(*current).clone()
        };
        credentials.write_trust(&self.files)?;
        self.credentials.replace(credentials);
        Ok(())
    }

    fn presents_issuers_certificate(&self, state: &CaState) -> bool {
        let current = self.credentials.current();
        check_certificate(
            "this node's certificate",
            &current.cert_pem,
            state.issuer.cert_pem(),
            std::time::SystemTime::now(),
        )
        .is_ok()
    }

    /// This member runs as a started voting member that knows its leader.
    async fn serving(&self) -> bool {
        match EtcdAdmin::connect(std::slice::from_ref(&self.own_client_url), &self.access).await {
            Ok(mut own) => {
                matches!(own.status().await, Ok(s) if !s.is_learner && s.leader_id.is_some())
            }
            Err(_) => false,
        }
    }

    /// Whose turn it is, from this member's view of the cluster and the
    /// stage's acknowledgements; and whether this member leads.
    async fn turn(&self, rotation: &str, stage: Stage) -> Result<(Turn, bool), TurnError> {
        let mut own =
            EtcdAdmin::connect(std::slice::from_ref(&self.own_client_url), &self.access).await?;
        let status = own.status().await?;
        let (_, members) = own.members().await?;
        let done = self.backups.ca_rotation_acks(rotation, stage).await?;
        let urls: Vec<String> = members.iter().flat_map(|m| m.client_urls.clone()).collect();
        let answers = EtcdAdmin::status_of_each(&urls, &self.access).await;
        let views: Vec<MemberTurnView> = members
            .iter()
            .map(|member| MemberTurnView {
                name: member.name.clone(),
                is_leader: status.leader_id == Some(member.id),
                healthy: answers.iter().any(|(url, answer)| {
                    member.client_urls.contains(url)
                        && matches!(answer, Ok(s) if s.member_id == member.id && !s.is_learner && s.leader_id.is_some())
                }),
                done: done.contains(&member.name),
            })
            .collect();
        let leads = views
            .iter()
            .any(|v| v.is_leader && v.name == self.instance_id);
        Ok((turn(&self.instance_id, &views), leads))
    }

    fn say_once(&self, last: &mut String, what: &str) {
        if last != what {
            tracing::info!(event = events::CA_ROTATION_WAITING, reason = %what, "CA rotation: not moving yet");
            *last = what.to_owned();
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum TurnError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error("cannot read the stage's acknowledgements: {0}")]
    Acks(#[from] etcd_aws_io::backup_store::BackupStoreError),
}

/// Whether two PEM bundles hold the same CAs, in whatever order.
fn same_cas(a: &str, b: &str) -> bool {
    !a.trim().is_empty() && bundle_holds(a, b) && bundle_holds(b, a)
}

fn trust_description(stage: Stage) -> &'static str {
    match stage.trusted().len() {
        2 => "the old CA and the new",
        _ => "the new CA only",
    }
}
