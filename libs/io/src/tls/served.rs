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
        Err(Refused::Other(reason)) => Err(reason),
    }
}

/// Why no certificate came back.
enum Refused {
    /// The member's certificate expired at this time.
    Expired(SystemTime),
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
        Err(error) => Err(match expired_at(&error) {
            Some(at) => Refused::Expired(at),
            None => Refused::Other(format!("TLS handshake with {endpoint} failed: {error}")),
        }),
    }
}

/// The expiry of a served certificate the handshake refused as expired.
fn expired_at(error: &std::io::Error) -> Option<SystemTime> {
    let rustls_error = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    match rustls_error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext {
            not_after,
            ..
        }) => Some(UNIX_EPOCH + Duration::from_secs(not_after.as_secs())),
        _ => None,
    }
}
