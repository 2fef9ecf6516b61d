//! Where a function (or any non-node client) gets its client certificate,
//! and how a long-running one picks up the certificate the nodes renewed.

use std::time::SystemTime;

use crate::etcd::admin::{EtcdAccess, EtcdTimeouts};
use crate::tls::certificate::CertificateError;
use crate::tls::secret_store::{SecretStore, SecretStoreError};

#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    #[error("cannot read the client certificate: {0}")]
    Secret(#[from] SecretStoreError),
    #[error(transparent)]
    Certificate(#[from] CertificateError),
}

/// The flags every client binary shares; flatten into its `clap` parser.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientTlsArgs {
    /// Secrets Manager secret (name or ARN) holding this client's certificate,
    /// key and the cluster CA; etcd refuses clients without one.
    #[arg(
        long,
        env = etcd_aws_core::contract::names::env::TLS_CLIENT_SECRET,
        required_unless_present = "insecure_plaintext"
    )]
    pub tls_client_secret: Option<String>,
    /// Talk to a cluster running without TLS (`etcd-aws --insecure-plaintext`). Labs only.
    #[arg(
        long,
        env = etcd_aws_core::contract::names::env::INSECURE_PLAINTEXT,
        conflicts_with = "tls_client_secret"
    )]
    pub insecure_plaintext: bool,
}

impl ClientTlsArgs {
    pub fn source(&self) -> ClientTlsSource {
        match &self.tls_client_secret {
            Some(secret) => ClientTlsSource::Secret(secret.clone()),
            None => ClientTlsSource::Plaintext,
        }
    }
}

/// TLS with the certificate kept in a secret, or (for labs) none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientTlsSource {
    /// A Secrets Manager secret (name or ARN) holding a client certificate,
    /// its key and the cluster CA.
    Secret(String),
    /// `--insecure-plaintext`: the cluster runs without TLS.
    Plaintext,
}

impl ClientTlsSource {
    /// Reads and checks the certificate, so that an expired or foreign one
    /// fails here with its reason rather than as a failed handshake.
    pub async fn access(
        &self,
        sdk: &aws_config::SdkConfig,
        timeouts: EtcdTimeouts,
    ) -> Result<EtcdAccess, ClientTlsError> {
        match self {
            Self::Plaintext => Ok(EtcdAccess::plaintext(timeouts)),
            Self::Secret(secret) => {
                let credentials = SecretStore::new(sdk).load_client(secret).await?;
                credentials.check(
                    &format!("the client certificate in secret {secret}"),
                    SystemTime::now(),
                )?;
                Ok(EtcdAccess::tls(timeouts, credentials))
            }
        }
    }

    /// Reads the certificate again and, when it changed (the nodes renewed
    /// it, or a deploy re-issued it), presents the new one from `access`'s
    /// next connection on: a program that outlives a certificate, such as a
    /// Lambda execution environment kept warm for months, calls this before
    /// each piece of work. `Ok(true)` when it changed.
    pub async fn refresh(
        &self,
        sdk: &aws_config::SdkConfig,
        access: &EtcdAccess,
    ) -> Result<bool, ClientTlsError> {
        let (Self::Secret(secret), Some(credentials)) = (self, &access.tls) else {
            return Ok(false);
        };
        let stored = SecretStore::new(sdk).load_client(secret).await?;
        if stored == *credentials.current() {
            return Ok(false);
        }
        stored.check(
            &format!("the client certificate in secret {secret}"),
            SystemTime::now(),
        )?;
        credentials.replace(stored);
        Ok(true)
    }
}
