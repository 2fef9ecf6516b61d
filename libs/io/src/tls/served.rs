//! The certificate a member serves, read from a TLS handshake with its client
//! port: how the maintenance run learns when each node's certificate expires
//! without reading any node's disk. The handshake presents the caller's client
//! certificate (etcd asks every client for one) and sends nothing after it.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::tls::certificate::not_after_of_der;
use crate::tls::TlsCredentials;

/// When the certificate a member serves expires. A certificate that has
/// expired fails the handshake; its expiry is then the one rustls reports.
pub async fn served_certificate_expiry(
    endpoint: &str,
    credentials: &TlsCredentials,
    deadline: Duration,
) -> Result<SystemTime, String> {
    match tokio::time::timeout(deadline, handshake(endpoint, credentials)).await {
        Ok(answer) => answer,
        Err(_) => Err(format!(
            "no TLS handshake with {endpoint} within {deadline:?}"
        )),
    }
}

async fn handshake(endpoint: &str, credentials: &TlsCredentials) -> Result<SystemTime, String> {
    let address: SocketAddr = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .trim_end_matches('/')
        .parse()
        .map_err(|_| format!("{endpoint} is not an https://ip:port client URL"))?;
    let config = credentials.rustls_client_config()?;
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
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
                .and_then(|leaf| not_after_of_der(leaf.as_ref()))
                .ok_or_else(|| format!("{endpoint} served no readable certificate"))
        }
        Err(error) => expired_at(&error)
            .ok_or_else(|| format!("TLS handshake with {endpoint} failed: {error}")),
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
