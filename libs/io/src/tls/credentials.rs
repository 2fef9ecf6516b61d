//! What a TLS client or server holds: the cluster CA's certificate to trust,
//! and its own certificate and key.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use etcd_client::{Certificate, Identity, TlsOptions};

use etcd_aws_core::etcd::launch::TlsFiles;

use crate::tls::authority::{ClusterCa, IssuedCertificate};
use crate::tls::certificate::{check_certificate, CertificateError, CertificateInfo};

#[derive(Clone, PartialEq, Eq)]
pub struct TlsCredentials {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for TlsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCredentials")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl TlsCredentials {
    pub fn issued_by(ca: &ClusterCa, issued: IssuedCertificate) -> Self {
        Self {
            ca_pem: ca.cert_pem().to_owned(),
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
        }
    }

    /// Refuses a certificate that is expired, not yet valid or not from the
    /// CA, naming it `what` in the error.
    pub fn check(&self, what: &str, now: SystemTime) -> Result<CertificateInfo, CertificateError> {
        check_certificate(what, &self.cert_pem, &self.ca_pem, now)
    }

    /// The etcd client's TLS settings: trust only the cluster CA, present this certificate.
    pub fn etcd_options(&self) -> TlsOptions {
        TlsOptions::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
    }

    /// The same for a raw rustls client: trust only the cluster CA, present
    /// this certificate. `Err` says which part cannot be used.
    pub fn rustls_client_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            format!("the client certificate's {what} cannot be used: {e}")
        };
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            let ca = ca.map_err(|e| bad("CA", &e))?;
            roots.add(ca).map_err(|e| bad("CA", &e))?;
        }
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("certificate", &e))?;
        let key =
            PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| bad("key", &e))?;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("protocol versions", &e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| bad("key pair", &e))?;
        Ok(Arc::new(config))
    }

    /// Writes the three files into `dir` (created if missing); the key is
    /// readable by its owner only.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<TlsFiles> {
        std::fs::create_dir_all(dir)?;
        let files = TlsFiles::in_dir(dir);
        write_file(&files.ca, &self.ca_pem, 0o644)?;
        write_file(&files.cert, &self.cert_pem, 0o644)?;
        write_file(&files.key, &self.key_pem, 0o600)?;
        Ok(files)
    }

    /// Replaces the trusted CAs' file only, which etcd reads at its next
    /// start (a CA rotation's stage).
    pub fn write_trust(&self, files: &TlsFiles) -> std::io::Result<()> {
        write_file(&files.ca, &self.ca_pem, 0o644)
    }

    /// Replaces the certificate file only: a renewal keeps the key, so etcd,
    /// reading certificate and key at each handshake, always reads a pair.
    pub fn write_certificate(&self, files: &TlsFiles) -> std::io::Result<()> {
        write_file(&files.cert, &self.cert_pem, 0o644)
    }
}

/// Credentials a running program replaces when it renews its certificate:
/// every connection made afterwards presents the new ones, and the clones of
/// an [`crate::etcd::admin::EtcdAccess`] share them.
#[derive(Debug)]
pub struct RenewableCredentials(RwLock<Arc<TlsCredentials>>);

impl RenewableCredentials {
    pub fn new(credentials: TlsCredentials) -> Self {
        Self(RwLock::new(Arc::new(credentials)))
    }

    /// The credentials to present now.
    pub fn current(&self) -> Arc<TlsCredentials> {
        // A writer that panicked left a whole value behind (it only swaps an
        // Arc), so a poisoned lock still holds usable credentials.
        Arc::clone(
            &self
                .0
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    pub fn replace(&self, credentials: TlsCredentials) {
        *self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(credentials);
    }
}

/// Writes to a temporary name and renames, so a reader (etcd reloads its
/// certificate on every handshake) never sees half a file.
fn write_file(path: &Path, contents: &str, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("pem.tmp");
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use super::*;
    use crate::tls::authority::ValidityPeriod;

    #[test]
    fn the_private_key_is_written_for_its_owner_only() {
        let ca = ClusterCa::generate("t", ValidityPeriod::starting_now(Duration::from_secs(600)))
            .expect("CA");
        let issued = ca
            .issue_client("c", ValidityPeriod::starting_now(Duration::from_secs(600)))
            .expect("issue");
        let dir = tempfile::tempdir().expect("tempdir");
        let files = TlsCredentials::issued_by(&ca, issued.clone())
            .write_to(&dir.path().join("tls"))
            .expect("write");
        let mode = std::fs::metadata(&files.key)
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&files.cert).expect("cert"),
            issued.cert_pem
        );
        assert_eq!(
            std::fs::read_to_string(&files.ca).expect("ca"),
            ca.cert_pem()
        );
    }
}
