//! The node's certificate renewed in place while etcd runs.
//!
//! etcd reads its certificate and key files at every TLS handshake, client
//! and peer, so a new certificate written over the old one is in use from the
//! next connection on, with no restart. The renewal keeps the node's key: etcd
//! reads the two files one after the other, and with one key whatever
//! certificate it reads matches it. (The key changes with every start, when
//! the node issues itself a new certificate.) The agent's own clients share
//! the credentials through [`RenewableCredentials`] and present the new ones
//! from their next connection.
//!
//! When is the core's rule ([`renewal`]), or at once when a CA rotation
//! moves the issuer; a failed attempt is retried, and the certificate in use
//! serves until it expires.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use etcd_aws_core::certificates::renewal::{self, Lifetime};
use etcd_aws_core::contract::events;
use etcd_aws_core::etcd::launch::TlsFiles;
use etcd_aws_io::tls::authority::ValidityPeriod;
use etcd_aws_io::tls::certificate::bundle_holds;
use etcd_aws_io::tls::{RenewableCredentials, SecretStore, TlsCredentials};
use tokio::sync::Notify;

use crate::ready_endpoint::NodeState;

/// A sleep is cut into pieces no longer than this, so that a wall clock that
/// jumps (a suspended instance, a corrected clock) moves the renewal with it.
const LONGEST_SLEEP: Duration = Duration::from_secs(3600);

/// Everything a renewal needs: where the CA is, what the certificate names,
/// and where the new one goes.
pub struct Renewal {
    pub store: SecretStore,
    pub ca_secret: String,
    /// The certificate's common name: the instance id.
    pub name: String,
    pub ips: Vec<IpAddr>,
    pub dns_names: Vec<String>,
    pub validity: Duration,
    pub files: TlsFiles,
    /// The credentials the agent's clients present.
    pub credentials: Arc<RenewableCredentials>,
    /// Where `GET /ready` reads the certificate's expiry.
    pub node: Arc<NodeState>,
    /// Rings when a renewal is due before its time: a CA rotation moved the
    /// issuer ([`crate::ca_trust_watch`]).
    pub renew_now: Arc<Notify>,
}

impl Renewal {
    /// Renews the certificate described by `lifetime` when it is due, then
    /// each one after it, for as long as the agent runs.
    pub async fn run(self, mut lifetime: Lifetime) {
        let mut due = lifetime.renewal_time(&self.name);
        loop {
            tokio::select! {
                () = sleep_until(due) => {}
                () = self.renew_now.notified() => {}
            }
            match self.renew().await {
                Ok(renewed) => {
                    lifetime = renewed;
                    due = lifetime.renewal_time(&self.name);
                    tracing::info!(
                        event = events::CERTIFICATE_RENEWED,
                        valid_until = %humantime::format_rfc3339_seconds(lifetime.not_after),
                        next_renewal = %humantime::format_rfc3339_seconds(due),
                        "renewed this node's certificate in place; etcd uses it from its next connection, without a restart"
                    );
                }
                Err(error) => {
                    let now = SystemTime::now();
                    let retry = renewal::retry_after_failure(now, lifetime.not_after);
                    due = now + retry;
                    tracing::warn!(
                        event = events::CERTIFICATE_RENEWAL_FAILED,
                        error = format!("{error:#}"),
                        valid_until = %humantime::format_rfc3339_seconds(lifetime.not_after),
                        retry_in_seconds = retry.as_secs(),
                        "cannot renew this node's certificate; the current one serves until it expires, and the renewal is tried again"
                    );
                }
            }
        }
    }

    /// Issues the next certificate for the same key from the issuing CA,
    /// provided this node's etcd trusts it, writes it, and hands it to the
    /// agent's clients.
    async fn renew(&self) -> anyhow::Result<Lifetime> {
        let ca = self.store.load_ca(&self.ca_secret).await.with_context(|| {
            format!("cannot read the cluster CA from secret {}", self.ca_secret)
        })?;
        let current = self.credentials.current();
        if !bundle_holds(&current.ca_pem, ca.cert_pem()) {
            anyhow::bail!(
                "the CA in secret {} is not one this node's etcd trusts (etcd reads its trusted CAs only at start); \
                 replace a CA with `etcd-aws-cfn rotate-ca`, or restart this node's agent to move it to the new CA",
                self.ca_secret
            );
        }
        let issued_at = SystemTime::now();
        let issued = ca.renew_peer(
            &self.name,
            &self.ips,
            &self.dns_names,
            ValidityPeriod::starting_now(self.validity),
            &current.key_pem,
        )?;
        let renewed = TlsCredentials {
            ca_pem: current.ca_pem.clone(),
            ..TlsCredentials::issued_by(&ca, issued)
        };
        let info = renewed
            .check("this node's renewed certificate", issued_at)
            .context("the renewed certificate does not verify against the CA")?;
        renewed.write_certificate(&self.files).with_context(|| {
            format!(
                "cannot write the renewed certificate to {}",
                self.files.cert.display()
            )
        })?;
        self.credentials.replace(renewed);
        self.node.set_certificate_not_after(Some(info.not_after));
        Ok(Lifetime {
            issued_at,
            not_after: info.not_after,
        })
    }
}

async fn sleep_until(due: SystemTime) {
    loop {
        let Ok(left) = due.duration_since(SystemTime::now()) else {
            return;
        };
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(LONGEST_SLEEP)).await;
    }
}
