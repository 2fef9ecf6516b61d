//! The node's TLS at start: read the cluster CA, issue this node a
//! certificate for its own address, and write it where etcd reads it.
//!
//! Issuing at every start (rather than keeping a certificate on disk) means a
//! replaced node never needs anything copied to it, and a changed IP or DNS
//! name is picked up by a restart.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use etcd_aws_cluster::tls::authority::ValidityPeriod;
use etcd_aws_cluster::tls::credentials::TlsFiles;
use etcd_aws_cluster::tls::{ClusterCa, SecretStore, SecretStoreError, TlsCredentials};

use crate::cli::Cli;
use crate::signals::Signals;

/// What etcd and the agent's own client use.
pub struct NodeTls {
    /// The node's certificate doubles as its client certificate towards peers.
    pub credentials: TlsCredentials,
    pub files: TlsFiles,
}

/// How a wait for the CA ended without one.
pub enum NoCa {
    Signal(i32),
    GaveUp,
}

/// Reads the CA (waiting while the secret still holds the deploy's
/// placeholder), then issues and writes this node's certificate.
pub async fn prepare(
    cli: &Cli,
    ca_secret: &str,
    config: &aws_config::SdkConfig,
    instance_id: &str,
    private_ip: IpAddr,
    signals: &mut Signals,
) -> anyhow::Result<Result<NodeTls, NoCa>> {
    let store = SecretStore::new(config);
    let ca = match wait_for_ca(&store, ca_secret, cli, signals).await? {
        Ok(ca) => ca,
        Err(stopped) => return Ok(Err(stopped)),
    };
    ca.check(
        &format!("the cluster CA in secret {ca_secret}"),
        SystemTime::now(),
    )
    .context("etcd cannot start with this CA")?;
    let mut ips = vec![private_ip];
    ips.extend(cli.tls_extra_ips.iter().filter(|ip| **ip != private_ip));
    let issued = ca
        .issue_peer(
            instance_id,
            &ips,
            &cli.tls_dns_names,
            ValidityPeriod::starting_now(cli.tls_cert_validity),
        )
        .with_context(|| {
            format!("cannot issue this node's certificate from the CA in {ca_secret}")
        })?;
    let credentials = TlsCredentials::issued_by(&ca, issued);
    let info = credentials
        .check("this node's new certificate", SystemTime::now())
        .context("the certificate just issued does not verify against the CA")?;
    let files = credentials.write_to(&cli.tls_dir).with_context(|| {
        format!(
            "cannot write this node's certificate into {} (set --tls-dir to a writable directory)",
            cli.tls_dir.display()
        )
    })?;
    tracing::info!(ca_secret, dir = %cli.tls_dir.display(), ips = ?info.ips, dns_names = ?cli.tls_dns_names,
        valid_until = %humantime::format_rfc3339_seconds(info.not_after),
        "issued this node's certificate from the cluster CA");
    Ok(Ok(NodeTls { credentials, files }))
}

async fn wait_for_ca(
    store: &SecretStore,
    secret: &str,
    cli: &Cli,
    signals: &mut Signals,
) -> anyhow::Result<Result<ClusterCa, NoCa>> {
    let started = tokio::time::Instant::now();
    let mut logged = false;
    loop {
        match store.load_ca(secret).await {
            Ok(ca) => return Ok(Ok(ca)),
            Err(e @ SecretStoreError::NotInitialised { .. }) => {
                if !logged {
                    tracing::info!(reason = %e, "waiting for the cluster CA");
                    logged = true;
                }
            }
            Err(e) => {
                return Err(e).context("cannot read the cluster CA; etcd cannot start without it")
            }
        }
        if cli.wait_timeout.is_some_and(|t| started.elapsed() >= t) {
            tracing::error!(
                secret,
                "gave up waiting for the cluster CA (--wait-timeout)"
            );
            return Ok(Err(NoCa::GaveUp));
        }
        let pause: Duration = cli.poll_interval;
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            signal = signals.recv() => return Ok(Err(NoCa::Signal(signal))),
        }
    }
}

/// Said at start, every start, so nobody runs a plaintext cluster unawares.
pub fn warn_plaintext() {
    tracing::warn!(
        "--insecure-plaintext: etcd serves clients and peers WITHOUT TLS and without authentication; \
         anyone who reaches the client or peer port can read and change every key, or join the cluster. \
         For labs only: drop the flag and pass --tls-ca-secret for anything else"
    );
}
