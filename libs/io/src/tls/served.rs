//! The certificate a member serves, read from a TLS handshake with its client
//! port: how the maintenance run learns when each node's certificate expires
//! without reading any node's disk, and how a starting node learns whether
//! its peers' certificates carry the peer name. The handshake presents the caller's client
//! certificate (etcd asks every client for one) and sends nothing after it.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::tls::certificate::{dns_names_of_der, not_after_of_der};
use crate::tls::TlsCredentials;

/// When the certificate a member serves expires. A certificate that has
/// expired fails the handshake; its expiry is then the one rustls reports.
pub async fn served_certificate_expiry(
    endpoint: &str,
    credentials: &TlsCredentials,
    deadline: Duration,
) -> Result<SystemTime, String> {
    match served_leaf(endpoint, credentials, deadline).await {
        Ok(leaf) => not_after_of_der(&leaf)
            .ok_or_else(|| format!("{endpoint} served no readable certificate")),
        Err(Refused::Expired(at)) => Ok(at),
        Err(Refused::NotYetValid(from)) => Err(format!(
            "{endpoint} serves a certificate valid only from {}",
            humantime::format_rfc3339_seconds(from)
        )),
        Err(Refused::Other(reason)) => Err(reason),
    }
}

/// The DNS names of the certificate a member serves (the same one it
/// presents to its peers): whether it carries the peer name.
pub async fn served_certificate_names(
    endpoint: &str,
    credentials: &TlsCredentials,
    deadline: Duration,
) -> Result<Vec<String>, String> {
    match served_leaf(endpoint, credentials, deadline).await {
        Ok(leaf) => dns_names_of_der(&leaf)
            .ok_or_else(|| format!("{endpoint} served no readable certificate")),
        Err(Refused::Expired(_)) => Err(format!("{endpoint} serves an expired certificate")),
        Err(Refused::NotYetValid(_)) => {
            Err(format!("{endpoint} serves a certificate not valid yet"))
        }
        Err(Refused::Other(reason)) => Err(reason),
    }
}

/// What is wrong with the certificate a member serves, as this machine's
/// clock sees it: what a peer meets when it connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServedCertificateProblem {
    /// It expired at this time.
    Expired(SystemTime),
    /// It is valid only from this time (a clock apart from this one's).
    NotYetValid(SystemTime),
}

impl std::fmt::Display for ServedCertificateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Expired(at) => write!(
                f,
                "its certificate expired at {}",
                humantime::format_rfc3339_seconds(*at)
            ),
            Self::NotYetValid(from) => write!(
                f,
                "its certificate is not valid before {} (its clock or this one is off)",
                humantime::format_rfc3339_seconds(*from)
            ),
        }
    }
}

/// What is wrong with the certificate a member serves; `None` when it is
/// valid or could not be read at all (a member down says nothing of it).
pub async fn served_certificate_problem(
    endpoint: &str,
    credentials: &TlsCredentials,
    deadline: Duration,
) -> Option<ServedCertificateProblem> {
    match served_leaf(endpoint, credentials, deadline).await {
        Err(Refused::Expired(at)) => Some(ServedCertificateProblem::Expired(at)),
        Err(Refused::NotYetValid(from)) => Some(ServedCertificateProblem::NotYetValid(from)),
        _ => None,
    }
}

/// Why no certificate came back.
enum Refused {
    /// The member's certificate expired at this time.
    Expired(SystemTime),
    /// The member's certificate is valid only from this time.
    NotYetValid(SystemTime),
    Other(String),
}

/// The leaf certificate (DER) a member serves on `endpoint`.
async fn served_leaf(
    endpoint: &str,
    credentials: &TlsCredentials,
    deadline: Duration,
) -> Result<Vec<u8>, Refused> {
    match tokio::time::timeout(deadline, handshake(endpoint, credentials)).await {
        Ok(answer) => answer,
        Err(_) => Err(Refused::Other(format!(
            "no TLS handshake with {endpoint} within {deadline:?}"
        ))),
    }
}

async fn handshake(endpoint: &str, credentials: &TlsCredentials) -> Result<Vec<u8>, Refused> {
    let address: SocketAddr = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .trim_end_matches('/')
        .parse()
        .map_err(|_| Refused::Other(format!("{endpoint} is not an https://ip:port client URL")))?;
    let config = credentials.rustls_client_config().map_err(Refused::Other)?;
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| Refused::Other(format!("cannot connect to {endpoint}: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    match connector
        .connect(ServerName::IpAddress(address.ip().into()), tcp)
        .await
    {
        Ok(tls) => {
            let (_, session) = tls.get_ref();
            session
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| leaf.as_ref().to_vec())
                .ok_or_else(|| Refused::Other(format!("{endpoint} served no certificate")))
        }
        Err(error) => Err(outside_validity(&error).unwrap_or_else(|| {
            Refused::Other(format!("TLS handshake with {endpoint} failed: {error}"))
        })),
    }
}

/// When a served certificate the handshake refused for its dates is valid:
/// until a time past, or from a time to come.
fn outside_validity(error: &std::io::Error) -> Option<Refused> {
    let rustls_error = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    let at = |time: rustls::pki_types::UnixTime| UNIX_EPOCH + Duration::from_secs(time.as_secs());
    match rustls_error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext {
            not_after,
            ..
        }) => Some(Refused::Expired(at(*not_after))),
        rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidYetContext {
            not_before,
            ..
        }) => Some(Refused::NotYetValid(at(*not_before))),
        _ => None,
    }
}
