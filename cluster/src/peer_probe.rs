//! Probing a peer's client port: serving (with or without quorum), refused, or silent.

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;

use crate::etcd_admin::{EtcdAdmin, EtcdTimeouts};
use crate::observation::PeerState;

/// Probes `ip:client_port` with short timeouts. Only a refused connection is
/// proof that no etcd runs there; anything unclear is `Silent`.
pub async fn probe_peer(ip: IpAddr, client_port: u16, timeouts: EtcdTimeouts) -> PeerState {
    let address = SocketAddr::new(ip, client_port);
    match tokio::time::timeout(timeouts.connect, TcpStream::connect(address)).await {
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
    let endpoint = client_url(ip, client_port);
    let mut admin = match EtcdAdmin::connect(std::slice::from_ref(&endpoint), timeouts).await {
        Ok(admin) => admin,
        Err(e) => {
            tracing::debug!(%address, error = %e, "peer probe: no etcd client connection");
            return PeerState::Silent;
        }
    };
    let (cluster_id, members) = match admin.members().await {
        Ok(found) => found,
        Err(e) => {
            tracing::debug!(%address, error = %e, "peer probe: member list failed");
            return PeerState::Silent;
        }
    };
    let has_quorum = admin.check_quorum().await.is_ok();
    PeerState::Serving {
        cluster_id,
        members,
        has_quorum,
    }
}

/// `http://ip:port`, with brackets for IPv6.
pub fn client_url(ip: IpAddr, port: u16) -> String {
    format!("http://{}", SocketAddr::new(ip, port))
}
