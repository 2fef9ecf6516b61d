//! When the cluster's certificates expire, read from where they are used: a
//! TLS handshake with each member (what its clients meet, not what a disk
//! holds), and the functions' own client certificate with the CA beside it.
//! The maintenance run publishes them as metrics; the status job reports them.

use std::time::SystemTime;

use etcd_aws_core::certificates::expiry::Expiries;
use etcd_aws_io::etcd::admin::EtcdAccess;
use etcd_aws_io::tls::certificate::not_after;
use etcd_aws_io::tls::served::served_certificate_expiry;

/// What one reading found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenCertificates {
    /// Each endpoint asked, with when its certificate expires (`None`: not
    /// read; the log says why). An expired one is read from the refusal.
    pub served: Vec<(String, Option<SystemTime>)>,
    pub functions: Option<SystemTime>,
    pub ca: Option<SystemTime>,
}

impl SeenCertificates {
    /// What the metrics are computed from.
    pub fn expiries(&self) -> Expiries {
        Expiries {
            nodes: self.served.iter().filter_map(|(_, at)| *at).collect(),
            functions: self.functions,
            ca: self.ca,
        }
    }
}

/// Reads them all; nothing without TLS.
pub async fn read(endpoints: &[String], access: &EtcdAccess) -> SeenCertificates {
    let Some(credentials) = access.tls.as_ref().map(|tls| tls.current()) else {
        return SeenCertificates::default();
    };
    let deadline = access.timeouts.connect + access.timeouts.request;
    let mut served = Vec::new();
    for endpoint in endpoints {
        let at = match served_certificate_expiry(endpoint, &credentials, deadline).await {
            Ok(not_after) => Some(not_after),
            Err(error) => {
                tracing::info!(%endpoint, %error, "cannot read the certificate this member serves");
                None
            }
        };
        served.push((endpoint.clone(), at));
    }
    let read = |what: &str, pem: &str| match not_after(what, pem) {
        Ok(at) => Some(at),
        Err(error) => {
            tracing::warn!(%error, "cannot read when {what} expires");
            None
        }
    };
    SeenCertificates {
        served,
        functions: read("the functions' client certificate", &credentials.cert_pem),
        ca: read("the cluster CA", &credentials.ca_pem),
    }
}
