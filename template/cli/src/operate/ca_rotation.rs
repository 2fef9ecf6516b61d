//! `rotate-ca`, the operator's side of a CA rotation
//! ([`etcd_aws_core::certificates::ca_rotation`]): put a new CA beside the
//! old in the CA secret, move the stages on as every node acknowledges each
//! in the bucket, keep the functions' certificate on the CAs the members
//! trust, and end with the new CA alone. It stops before that last stage
//! unless told to go on (`--drop-old`): clients must hold certificates of
//! the new CA before the members refuse the old.
//!
//! Everything it knows lives in the CA secret and the bucket, so a run that
//! was killed carries on where it stopped when run again: the secret says
//! the stage, the bucket who reached it.

use std::time::Duration;

use etcd_aws_core::certificates::ca_rotation::{outstanding, Stage};
use etcd_aws_core::certificates::functions;
use etcd_aws_core::clock;
use etcd_aws_io::aws::discovery::{DiscoveryError, GroupDiscovery};
use etcd_aws_io::backup_store::{BackupStore, BackupStoreError};
use etcd_aws_io::tls::authority::{AuthorityError, ValidityPeriod};
use etcd_aws_io::tls::secret_store::bundle;
use etcd_aws_io::tls::{
    CaRotation, CaState, ClusterCa, SecretStore, SecretStoreError, TlsCredentials,
};

/// What a rotation needs besides the stack's bucket.
#[derive(Debug, Clone)]
pub struct RotationSettings {
    pub stack: String,
    pub group: String,
    pub ca_secret: String,
    pub functions_secret: String,
    /// How long the new CA is valid.
    pub ca_validity: Duration,
    /// How long one stage may wait for every node.
    pub stage_timeout: Duration,
    /// How often the acknowledgements are read.
    pub poll_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Secret(#[from] SecretStoreError),
    #[error(transparent)]
    Bucket(#[from] BackupStoreError),
    #[error("cannot list the group's instances: {0}")]
    Group(#[from] DiscoveryError),
    #[error("cannot make the new CA: {0}")]
    Authority(#[from] AuthorityError),
    #[error("the CA secret's rotation {rotation} is at stage {stage} but holds no key for the new CA; restore the secret's previous version (aws secretsmanager list-secret-version-ids) and run rotate-ca again")]
    NoNewKey { rotation: String, stage: Stage },
    #[error("stage {stage} of CA rotation {rotation} still waits, after {waited:?}, on {waiting}: read their agents' ca_rotation_waiting lines, then run rotate-ca again to carry on")]
    StageTimedOut {
        rotation: String,
        stage: Stage,
        waited: Duration,
        waiting: String,
    },
}

/// Where a run of `rotate-ca` left the rotation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rotated {
    pub rotation: String,
    /// `true`: the old CA is gone; `false`: both are trusted and the new one
    /// issues, until a run with `drop_old` ends the rotation.
    pub done: bool,
    /// The new CA's certificate: what clients must trust.
    pub ca_cert_pem: String,
}

/// Runs a rotation to its end: a new one when none is under way, the one in
/// the secret otherwise.
/// Stops before dropping the old CA unless `drop_old`, so that clients can
/// move to certificates of the new one first.
pub async fn rotate(
    config: &aws_config::SdkConfig,
    store: &BackupStore,
    settings: &RotationSettings,
    drop_old: bool,
) -> Result<Rotated, RotationError> {
    let secrets = SecretStore::new(config);
    let discovery = GroupDiscovery::new(config);
    let mut state = secrets.load_ca_state(&settings.ca_secret).await?;
    let mut rotation = match &state.rotation {
        Some(rotation) => {
            tracing::info!(rotation = %rotation.id, stage = %rotation.stage,
                "carrying on with the CA rotation under way in {}", settings.ca_secret);
            rotation.clone()
        }
        None => {
            let id = clock::utc_stamp(clock::now_unix_seconds());
            let new = ClusterCa::generate(
                &format!("{} {id}", settings.stack),
                ValidityPeriod::starting_now(settings.ca_validity),
            )?;
            let rotation = CaRotation {
                id,
                stage: Stage::TrustBoth,
                other_cert_pem: new.cert_pem().to_owned(),
                other_key_pem: Some(new.key_pem().to_owned()),
            };
            state.rotation = Some(rotation.clone());
            secrets.store_ca_state(&settings.ca_secret, &state).await?;
            tracing::info!(rotation = %rotation.id, stage = %rotation.stage,
                "put a new CA beside the old in {}: every member restarts, one at a time and the leader last, to trust both",
                settings.ca_secret);
            rotation
        }
    };
    loop {
        wait_for_every_node(store, &discovery, settings, &rotation).await?;
        tracing::info!(rotation = %rotation.id, stage = %rotation.stage, "every node reached stage {}", rotation.stage);
        if rotation.stage.next() == Some(Stage::DropOld) && !drop_old {
            tracing::info!(rotation = %rotation.id,
                "the new CA issues every node's certificate and both CAs are trusted; move the clients to certificates of the new CA, then run rotate-ca --drop-old");
            return Ok(Rotated {
                rotation: rotation.id,
                done: false,
                ca_cert_pem: state.issuer.cert_pem().to_owned(),
            });
        }
        state = next_state(&state, &rotation)?;
        // The functions' certificate first: the stage it prepares for must
        // find it in place.
        if let Some(functions) = functions_certificate_for(&state)? {
            secrets
                .store_client(&settings.functions_secret, &functions)
                .await?;
            tracing::info!(secret = %settings.functions_secret,
                "the functions' certificate: issued from the new CA, trusting {}",
                if state.rotation.is_some() { "both CAs" } else { "the new CA only" });
        }
        secrets.store_ca_state(&settings.ca_secret, &state).await?;
        match &state.rotation {
            Some(next) => {
                tracing::info!(rotation = %next.id, stage = %next.stage, "{}", stage_says(next.stage));
                rotation = next.clone();
            }
            None => {
                tracing::info!(rotation = %rotation.id, "CA rotation done: the new CA alone is trusted and issues every node's certificate");
                return Ok(Rotated {
                    rotation: rotation.id,
                    done: true,
                    ca_cert_pem: state.issuer.cert_pem().to_owned(),
                });
            }
        }
    }
}

/// The CA secret once every node reached `rotation`'s stage.
fn next_state(state: &CaState, rotation: &CaRotation) -> Result<CaState, RotationError> {
    Ok(match rotation.stage.next() {
        Some(Stage::IssueFromNew) => {
            let key = rotation
                .other_key_pem
                .as_deref()
                .ok_or_else(|| RotationError::NoNewKey {
                    rotation: rotation.id.clone(),
                    stage: rotation.stage,
                })?;
            CaState {
                issuer: ClusterCa::from_pem(&rotation.other_cert_pem, key)?,
                rotation: Some(CaRotation {
                    id: rotation.id.clone(),
                    stage: Stage::IssueFromNew,
                    // Nothing issues from the old CA again: its key goes.
                    other_cert_pem: state.issuer.cert_pem().to_owned(),
                    other_key_pem: None,
                }),
            }
        }
        Some(stage) => CaState {
            issuer: state.issuer.clone(),
            rotation: Some(CaRotation {
                stage,
                ..rotation.clone()
            }),
        },
        None => CaState {
            issuer: state.issuer.clone(),
            rotation: None,
        },
    })
}

/// The functions' certificate for the secret `state` is about to be: from
/// the new CA once it issues, trusting what the members present then.
/// `None` while the old CA still issues.
fn functions_certificate_for(state: &CaState) -> Result<Option<TlsCredentials>, RotationError> {
    let trusted = match &state.rotation {
        Some(rotation) if rotation.stage == Stage::IssueFromNew => {
            bundle(&[state.issuer.cert_pem(), &rotation.other_cert_pem])
        }
        // The members present certificates of the new CA only from here on.
        Some(rotation) if rotation.stage == Stage::DropOld => state.issuer.cert_pem().to_owned(),
        Some(_) => return Ok(None),
        None => state.issuer.cert_pem().to_owned(),
    };
    let issued = state.issuer.issue_client(
        functions::CLIENT_NAME,
        ValidityPeriod::starting_now(functions::VALIDITY),
    )?;
    Ok(Some(TlsCredentials {
        ca_pem: trusted,
        ..TlsCredentials::issued_by(&state.issuer, issued)
    }))
}

/// Waits until every live instance of the group acknowledged the stage.
async fn wait_for_every_node(
    store: &BackupStore,
    discovery: &GroupDiscovery,
    settings: &RotationSettings,
    rotation: &CaRotation,
) -> Result<(), RotationError> {
    let started = tokio::time::Instant::now();
    let mut last_waiting = String::new();
    loop {
        let expected: Vec<String> = discovery
            .instances(&settings.group)
            .await?
            .into_iter()
            .filter(|i| i.is_live())
            .map(|i| i.id)
            .collect();
        let acknowledged = store.ca_rotation_acks(&rotation.id, rotation.stage).await?;
        let waiting = outstanding(&expected, &acknowledged).join(", ");
        if waiting.is_empty() && !expected.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= settings.stage_timeout {
            return Err(RotationError::StageTimedOut {
                rotation: rotation.id.clone(),
                stage: rotation.stage,
                waited: settings.stage_timeout,
                waiting,
            });
        }
        if waiting != last_waiting {
            tracing::info!(rotation = %rotation.id, stage = %rotation.stage, %waiting, "waiting for the nodes to reach stage {}", rotation.stage);
            last_waiting = waiting;
        }
        tokio::time::sleep(settings.poll_interval).await;
    }
}

fn stage_says(stage: Stage) -> &'static str {
    match stage {
        Stage::TrustBoth => {
            "every member restarts, one at a time and the leader last, to trust both CAs"
        }
        Stage::IssueFromNew => {
            "every member renews its certificate from the new CA, in place (no restart)"
        }
        Stage::DropOld => {
            "every member restarts, one at a time and the leader last, to trust the new CA only"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(name: &str) -> ClusterCa {
        ClusterCa::generate(
            name,
            ValidityPeriod::starting_now(Duration::from_secs(86_400)),
        )
        .expect("CA")
    }

    fn at(stage: Stage, old: &ClusterCa, new: &ClusterCa) -> (CaState, CaRotation) {
        let (issuer, other, other_key) = match stage {
            Stage::TrustBoth => (old, new, Some(new.key_pem().to_owned())),
            _ => (new, old, None),
        };
        let rotation = CaRotation {
            id: "r1".into(),
            stage,
            other_cert_pem: other.cert_pem().to_owned(),
            other_key_pem: other_key,
        };
        (
            CaState {
                issuer: issuer.clone(),
                rotation: Some(rotation.clone()),
            },
            rotation,
        )
    }

    #[test]
    fn after_trust_both_the_new_ca_issues_and_the_old_ones_key_is_dropped() {
        let (old, new) = (ca("old"), ca("new"));
        let (state, rotation) = at(Stage::TrustBoth, &old, &new);
        let next = next_state(&state, &rotation).expect("next");
        assert_eq!(next.issuer.cert_pem(), new.cert_pem());
        let next_rotation = next.rotation.expect("still rotating");
        assert_eq!(next_rotation.stage, Stage::IssueFromNew);
        assert_eq!(next_rotation.other_cert_pem, old.cert_pem());
        assert_eq!(next_rotation.other_key_pem, None);
    }

    #[test]
    fn each_stage_trusts_what_the_one_before_did_plus_what_it_needs() {
        let (old, new) = (ca("old"), ca("new"));
        let (state, rotation) = at(Stage::IssueFromNew, &old, &new);
        let next = next_state(&state, &rotation).expect("next");
        assert_eq!(
            next.rotation.as_ref().map(|r| r.stage),
            Some(Stage::DropOld)
        );
        assert_eq!(next.trusted_pem().trim(), new.cert_pem().trim());
        let (state, rotation) = at(Stage::DropOld, &old, &new);
        let done = next_state(&state, &rotation).expect("next");
        assert!(done.rotation.is_none());
        assert_eq!(done.issuer.cert_pem(), new.cert_pem());
    }

    #[test]
    fn a_rotation_without_the_new_cas_key_is_refused_not_guessed() {
        let (old, new) = (ca("old"), ca("new"));
        let (state, mut rotation) = at(Stage::TrustBoth, &old, &new);
        rotation.other_key_pem = None;
        assert!(matches!(
            next_state(&state, &rotation),
            Err(RotationError::NoNewKey { .. })
        ));
    }

    #[test]
    fn the_functions_certificate_comes_from_the_new_ca_and_trusts_what_members_present() {
        let (old, new) = (ca("old"), ca("new"));
        let now = std::time::SystemTime::now();
        let (state, _) = at(Stage::TrustBoth, &old, &new);
        assert!(functions_certificate_for(&state).expect("issue").is_none());
        let (state, _) = at(Stage::IssueFromNew, &old, &new);
        let both = functions_certificate_for(&state)
            .expect("issue")
            .expect("issued");
        both.check("functions", now).expect("from the new CA");
        assert!(etcd_aws_io::tls::certificate::bundle_holds(
            &both.ca_pem,
            old.cert_pem()
        ));
        let (state, _) = at(Stage::DropOld, &old, &new);
        let only_new = functions_certificate_for(&state)
            .expect("issue")
            .expect("issued");
        assert!(!etcd_aws_io::tls::certificate::bundle_holds(
            &only_new.ca_pem,
            old.cert_pem()
        ));
        assert!(etcd_aws_io::tls::certificate::bundle_holds(
            &only_new.ca_pem,
            new.cert_pem()
        ));
    }
}
