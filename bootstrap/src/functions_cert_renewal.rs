//! The functions' client certificate, renewed by the nodes.
//!
//! The functions hold a client certificate only, never the CA: whoever reads
//! the CA can make members, so only the nodes may. A node already holds the
//! CA, so renewing the functions' certificate gives it no power it lacked (it
//! could issue itself any client certificate); it only needs to write that one
//! secret. Every node runs this loop; each reads the secret when its own turn
//! comes (the core's [`renewal`] rule, spread by instance id), so the first
//! one renews and the others find a new certificate and wait for its turn.
//! The functions read the secret at every invocation (the lifecycle function
//! through [`etcd_aws_io::tls::ClientTlsSource::refresh`]), so they present a
//! renewed certificate without a cold start.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use etcd_aws_core::certificates::functions::CLIENT_NAME;
use etcd_aws_core::certificates::renewal::{self, Lifetime};
use etcd_aws_core::contract::events;
use etcd_aws_io::tls::authority::ValidityPeriod;
use etcd_aws_io::tls::certificate::{bundle_holds, check_certificate};
use etcd_aws_io::tls::{RenewableCredentials, SecretStore, SecretStoreError, TlsCredentials};

use crate::node_tls::FunctionsCertificate;

/// The longest this loop sleeps between two readings of the secret: a
/// certificate replaced by hand (`etcd-aws-cfn deploy
/// --reissue-functions-certificate`) is seen within it, at three reads an hour
/// for a stack.
const LONGEST_SLEEP: Duration = Duration::from_secs(3600);

/// Keeps the functions' certificate renewed, for as long as the agent runs.
pub struct FunctionsRenewal {
    pub store: SecretStore,
    pub ca_secret: String,
    pub certificate: FunctionsCertificate,
    /// This node's instance id: where in the spread its turn comes.
    pub node: String,
    /// The CAs this node's etcd trusts (as the agent's clients present them):
    /// the functions' certificate is issued only from one of them, never from
    /// a CA the members do not trust yet.
    pub trust: Arc<RenewableCredentials>,
}

/// What one look at the secret found.
enum Look {
    /// The certificate is good until this node's turn.
    NotDue(SystemTime),
    /// This node renewed it; the new one is good until the next turn.
    Renewed(Lifetime),
}

impl FunctionsRenewal {
    pub async fn run(self) {
        loop {
            let now = SystemTime::now();
            let wake = match self.look(now).await {
                Ok(Look::NotDue(due)) => due,
                Ok(Look::Renewed(lifetime)) => {
                    let next = lifetime.renewal_time(&self.node);
                    tracing::info!(
                        event = events::FUNCTIONS_CERTIFICATE_RENEWED,
                        secret = %self.certificate.secret,
                        valid_until = %humantime::format_rfc3339_seconds(lifetime.not_after),
                        "renewed the functions' client certificate; they present it from their next connection"
                    );
                    next
                }
                Err(error) => {
                    let retry = renewal::retry_after_failure(now, now + self.certificate.validity);
                    tracing::warn!(
                        event = events::FUNCTIONS_CERTIFICATE_RENEWAL_FAILED,
                        secret = %self.certificate.secret,
                        error = format!("{error:#}"),
                        retry_in_seconds = retry.as_secs(),
                        "cannot renew the functions' client certificate; the one in the secret serves until it expires, and the renewal is tried again"
                    );
                    now + retry
                }
            };
            let sleep = wake
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .min(LONGEST_SLEEP);
            tokio::time::sleep(sleep).await;
        }
    }

    /// Reads the secret and renews the certificate in it when this node's turn
    /// has come, or at once when the functions cannot use it (expired,
    /// damaged).
    async fn look(&self, now: SystemTime) -> anyhow::Result<Look> {
        let secret = &self.certificate.secret;
        match self.store.load_client(secret).await {
            Ok(current) => match current.check("the functions' certificate", now) {
                Ok(info)
                    if check_certificate(
                        "the functions' certificate",
                        &current.cert_pem,
                        &self.trust.current().ca_pem,
                        now,
                    )
                    .is_err() =>
                {
                    // Issued from a CA this node's etcd does not trust: a
                    // rotation or a CA change is under way, and nodes of two
                    // CAs must not take turns replacing it. It is left alone
                    // until it nears its end.
                    let due = info.lifetime().renewal_time(&self.node);
                    if due > now {
                        tracing::info!(secret = %secret, "the functions' certificate is from a CA this node's etcd does not trust; leaving it");
                        return Ok(Look::NotDue(due));
                    }
                }
                Ok(info) => {
                    let due = info.lifetime().renewal_time(&self.node);
                    if due > now {
                        return Ok(Look::NotDue(due));
                    }
                }
                // Expired or unreadable: the functions cannot use it.
                Err(_) => {}
            },
            // Damaged: nothing to keep, and the functions cannot use it.
            Err(SecretStoreError::Malformed { .. }) => {}
            // The deploy has not written it yet: it will, with a new one.
            Err(error @ SecretStoreError::NotInitialised { .. }) => return Err(error.into()),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read secret {secret}"));
            }
        }
        self.renew().await.map(Look::Renewed)
    }

    async fn renew(&self) -> anyhow::Result<Lifetime> {
        let secret = &self.certificate.secret;
        let state = self
            .store
            .load_ca_state(&self.ca_secret)
            .await
            .with_context(|| {
                format!("cannot read the cluster CA from secret {}", self.ca_secret)
            })?;
        if let Some(rotation) = &state.rotation {
            anyhow::bail!(
                "CA rotation {} is under way (stage {}): `etcd-aws-cfn rotate-ca` issues the functions' certificate until it ends",
                rotation.id,
                rotation.stage
            );
        }
        let ca = state.issuer;
        if !bundle_holds(&self.trust.current().ca_pem, ca.cert_pem()) {
            anyhow::bail!(
                "the CA in secret {} is not one this node's etcd trusts; a node started since will renew it",
                self.ca_secret
            );
        }
        let issued = ca.issue_client(
            CLIENT_NAME,
            ValidityPeriod::starting_now(self.certificate.validity),
        )?;
        let renewed = TlsCredentials::issued_by(&ca, issued);
        let info = renewed
            .check("the functions' renewed certificate", SystemTime::now())
            .context("the renewed certificate does not verify against the CA")?;
        self.store
            .store_client(secret, &renewed)
            .await
            .with_context(|| format!("cannot write the renewed certificate to secret {secret}"))?;
        Ok(info.lifetime())
    }
}
