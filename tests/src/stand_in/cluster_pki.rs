//! The cluster CA and the functions' client certificate, made the way
//! `etcd-aws-cfn deploy` makes them and kept in the stand-in's Secrets Manager,
//! plus a client certificate for the harness itself (a user of the cluster).

use std::time::Duration;

use anyhow::Context;
use etcd_aws_core::certificates::functions;
use etcd_aws_io::etcd::admin::{EtcdAccess, EtcdTimeouts};
use etcd_aws_io::tls::authority::ValidityPeriod;
use etcd_aws_io::tls::{ClientTlsSource, ClusterCa, NewSecret, SecretStore, TlsCredentials};

const DAY: Duration = Duration::from_secs(86_400);
/// As `etcd-aws-cfn deploy` makes them: `status` judges a certificate with
/// under a month left a problem.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);

#[derive(Debug, Clone)]
pub struct ClusterPki {
    pub ca: ClusterCa,
    /// What nodes get as `--tls-ca-secret`.
    pub ca_secret: String,
    /// What the functions get as `--tls-client-secret`.
    pub functions_secret: String,
    /// The harness's own client certificate, for test clients.
    pub harness: TlsCredentials,
}

impl ClusterPki {
    /// Makes both secrets; the functions' certificate is valid for
    /// `functions_validity`, or as long as a deploy makes it.
    pub async fn provision(
        sdk: &aws_config::SdkConfig,
        group: &str,
        functions_validity: Option<ValidityPeriod>,
    ) -> anyhow::Result<Self> {
        let ca = ClusterCa::generate(group, ValidityPeriod::starting_now(CA_VALIDITY))
            .context("creating the stand-in's cluster CA")?;
        let pki = Self {
            ca_secret: format!("etcd-aws/{group}/cluster-ca"),
            functions_secret: format!("etcd-aws/{group}/functions-client"),
            harness: issue_client(&ca, "harness")?,
            ca,
        };
        let store = SecretStore::new(sdk);
        create_secret(&store, &pki.ca_secret).await?;
        create_secret(&store, &pki.functions_secret).await?;
        store
            .store_ca(&pki.ca_secret, &pki.ca)
            .await
            .context("storing the stand-in's cluster CA")?;
        store
            .store_client(
                &pki.functions_secret,
                &issue_client_for(
                    &pki.ca,
                    "functions",
                    functions_validity
                        .unwrap_or_else(|| ValidityPeriod::starting_now(functions::VALIDITY)),
                )?,
            )
            .await
            .context("storing the functions' client certificate")?;
        Ok(pki)
    }

    /// A client certificate from this cluster's CA, valid for a day.
    pub fn issue_client(&self, name: &str) -> anyhow::Result<TlsCredentials> {
        issue_client(&self.ca, name)
    }
}

/// Creates `name` the way `etcd-aws-cfn deploy` does (holding its placeholder
/// until a value is stored).
pub async fn create_secret(store: &SecretStore, name: &str) -> anyhow::Result<()> {
    store
        .create(&NewSecret {
            name,
            description: "made by the test harness",
            kms_key_arn: None,
            tags: &[],
        })
        .await
        .with_context(|| format!("creating secret {name} in the stand-in"))?;
    Ok(())
}

fn issue_client(ca: &ClusterCa, name: &str) -> anyhow::Result<TlsCredentials> {
    issue_client_for(ca, name, ValidityPeriod::starting_now(DAY))
}

fn issue_client_for(
    ca: &ClusterCa,
    name: &str,
    validity: ValidityPeriod,
) -> anyhow::Result<TlsCredentials> {
    let issued = ca
        .issue_client(name, validity)
        .with_context(|| format!("issuing a client certificate for {name}"))?;
    Ok(TlsCredentials::issued_by(ca, issued))
}

/// How test clients reach a cluster with or without TLS.
pub fn harness_access(pki: Option<&ClusterPki>, timeouts: EtcdTimeouts) -> EtcdAccess {
    match pki {
        Some(pki) => EtcdAccess::tls(timeouts, pki.harness.clone()),
        None => EtcdAccess::plaintext(timeouts),
    }
}

/// How the functions reach the cluster.
pub fn functions_source(pki: Option<&ClusterPki>) -> ClientTlsSource {
    match pki {
        Some(pki) => ClientTlsSource::Secret(pki.functions_secret.clone()),
        None => ClientTlsSource::Plaintext,
    }
}
