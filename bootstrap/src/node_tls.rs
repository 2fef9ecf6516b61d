//! The node's TLS at start: read the cluster CA, issue this node a
//! certificate for its own address, and write it where etcd reads it, with
//! the CAs etcd is to trust (two during a CA rotation).
//!
//! Issuing at every start (rather than keeping a certificate on disk) means a
//! replaced node never needs anything copied to it, and a changed IP or DNS
//! name is picked up by a restart. While the node runs, `cert_renewal`
//! renews the certificate in place.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use etcd_aws_core::certificates::renewal::Lifetime;
use etcd_aws_core::contract::events;
use etcd_aws_core::etcd::launch::TlsFiles;
use etcd_aws_core::membership::observation::Me;
use etcd_aws_io::tls::authority::ValidityPeriod;
use etcd_aws_io::tls::{CaState, SecretStore, SecretStoreError, TlsCredentials};

use crate::signals::Signals;
use crate::wait::{Wait, WaitEnd};

/// The node's TLS settings, from `--tls-*`.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The Secrets Manager secret (name or ARN) holding the cluster CA.
    pub ca_secret: String,
    pub dns_names: Vec<String>,
    /// Addresses besides the private IP, which is always in the certificate.
    pub extra_ips: Vec<IpAddr>,
    /// Where the certificate, key and CA certificate are written for etcd.
    pub dir: PathBuf,
    pub cert_validity: Duration,
    /// The functions' certificate this node keeps renewed, if any.
    pub functions: Option<FunctionsCertificate>,
}

/// The functions' client certificate, as the nodes renew it.
#[derive(Debug, Clone)]
pub struct FunctionsCertificate {
    /// The Secrets Manager secret (name or ARN) holding it.
    pub secret: String,
    /// How long each one the node issues lives.
    pub validity: Duration,
}

/// What etcd and the agent's own client use.
pub struct NodeTls {
    /// The node's certificate doubles as its client certificate towards peers.
    pub credentials: TlsCredentials,
    pub files: TlsFiles,
    /// The addresses the certificate names (private IP first): a renewal
    /// names the same.
    pub ips: Vec<IpAddr>,
    /// From when it was issued until it expires.
    pub lifetime: Lifetime,
}

/// Reads the CA (waiting while the secret still holds the deploy's
/// placeholder), then issues and writes this node's certificate. `Ok(Err)`
/// when the wait for the CA ended without one.
pub async fn prepare(
    settings: &TlsSettings,
    config: &aws_config::SdkConfig,
    me: &Me,
    wait: &mut Wait,
    signals: &mut Signals,
) -> anyhow::Result<Result<NodeTls, WaitEnd>> {
    let ca_secret = settings.ca_secret.as_str();
    let store = SecretStore::new(config);
    let state = match wait_for_ca(&store, ca_secret, wait, signals).await? {
        Ok(state) => state,
        Err(end) => return Ok(Err(end)),
    };
    let ca = &state.issuer;
    ca.check(
        &format!("the cluster CA in secret {ca_secret}"),
        SystemTime::now(),
    )
    .context("etcd cannot start with this CA")?;
    let issued_at = SystemTime::now();
    let mut ips = vec![me.private_ip];
    ips.extend(settings.extra_ips.iter().filter(|ip| **ip != me.private_ip));
    let issued = ca
        .issue_peer(
            &me.instance_id,
            &ips,
            &settings.dns_names,
            ValidityPeriod::starting_now(settings.cert_validity),
        )
        .with_context(|| {
            format!("cannot issue this node's certificate from the CA in {ca_secret}")
        })?;
    // During a CA rotation etcd trusts both CAs from its start.
    let credentials = TlsCredentials {
        ca_pem: state.trusted_pem(),
        ..TlsCredentials::issued_by(ca, issued)
    };
    let info = credentials
        .check("this node's new certificate", issued_at)
        .context("the certificate just issued does not verify against the CA")?;
    let files = credentials.write_to(&settings.dir).with_context(|| {
        format!(
            "cannot write this node's certificate into {} (set --tls-dir to a writable directory)",
            settings.dir.display()
        )
    })?;
    tracing::info!(ca_secret, dir = %settings.dir.display(), ips = ?info.ips, dns_names = ?settings.dns_names,
        valid_until = %humantime::format_rfc3339_seconds(info.not_after),
        ca_rotation = state.rotation.as_ref().map(|r| format!("{} {}", r.id, r.stage)),
        "issued this node's certificate from the cluster CA");
    Ok(Ok(NodeTls {
        credentials,
        files,
        ips,
        lifetime: Lifetime {
            issued_at,
            not_after: info.not_after,
        },
    }))
}

async fn wait_for_ca(
    store: &SecretStore,
    secret: &str,
    wait: &mut Wait,
    signals: &mut Signals,
) -> anyhow::Result<Result<CaState, WaitEnd>> {
    loop {
        match store.load_ca_state(secret).await {
            Ok(state) => return Ok(Ok(state)),
            Err(e @ SecretStoreError::NotInitialised { .. }) => {
                if let Err(end) = wait.pause(&e, "cluster_ca_not_initialised", signals).await {
                    return Ok(Err(end));
                }
            }
            Err(e) => {
                return Err(e).context("cannot read the cluster CA; etcd cannot start without it")
            }
        }
    }
}

/// Said at start, every start, so nobody runs a plaintext cluster unawares.
pub fn warn_plaintext() {
    tracing::warn!(
        event = events::INSECURE_PLAINTEXT,
        "--insecure-plaintext: etcd serves clients and peers WITHOUT TLS and without authentication; \
         anyone who reaches the client or peer port can read and change every key, or join the cluster. \
         For labs only: drop the flag and pass --tls-ca-secret for anything else"
    );
}
