//! Probing a peer's client port: serving (with or without quorum), refused, or silent.

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;

use crate::etcd::admin::{EtcdAccess, EtcdAdmin};
use crate::etcd::error::{EtcdError, EtcdErrorKind};
use etcd_aws_core::contract::events;
use etcd_aws_core::membership::observation::PeerState;

/// Probes `ip:client_port` with short timeouts. Only a refused connection is
/// proof that no etcd runs there; anything unclear is `Silent`, including an
/// etcd whose certificate is not from our CA (another cluster, or an impostor).
pub async fn probe_peer(ip: IpAddr, client_port: u16, access: &EtcdAccess) -> PeerState {
    let address = SocketAddr::new(ip, client_port);
    match tokio::time::timeout(access.timeouts.connect, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => drop(stream),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return PeerState::Refused
        }
        Ok(Err(e)) => {
            tracing::debug!(%address, error = %e, "peer probe: connect failed");
            return PeerState::Silent;
        }
        Err(_) => {
            tracing::debug!(%address, "peer probe: connect timed out");
            return PeerState::Silent;
        }
    }
    let endpoint = access.url(ip, client_port);
    let mut admin = match EtcdAdmin::connect(std::slice::from_ref(&endpoint), access).await {
        Ok(admin) => admin,
        Err(e) => {
            log_silent(address, &e, "no etcd client connection");
            return PeerState::Silent;
        }
    };
    let (cluster_id, members) = match admin.members().await {
        Ok(found) => found,
        Err(e) => {
            log_silent(address, &e, "member list failed");
            return PeerState::Silent;
        }
    };
    let has_quorum = admin.check_quorum().await.is_ok();
    let version = admin.status().await.ok().map(|status| status.version);
    PeerState::Serving {
        cluster_id,
        members,
        has_quorum,
        version,
    }
}

/// A refused certificate is worth an operator's eye (another cluster's node,
/// or a CA mix-up); any other silence is routine while peers start.
fn log_silent(address: SocketAddr, error: &EtcdError, what: &str) {
    if error.kind == EtcdErrorKind::TlsRefused {
        tracing::warn!(event = events::PEER_TLS_REFUSED, %address, %error, "peer probe: TLS handshake refused; counting the peer as silent");
    } else {
        tracing::debug!(%address, %error, "peer probe: {what}");
    }
}
