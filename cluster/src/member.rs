//! An etcd cluster member, as the cluster API reports it.

use std::net::IpAddr;

/// A member of the etcd cluster. Its `name` is the instance id of the node that
/// runs it; a member that was added but never started has an empty name, so
/// it can only be matched to an instance through the IP in its peer URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

impl Member {
    /// True when the member was added but its etcd has never started.
    pub fn is_unstarted(&self) -> bool {
        self.name.is_empty()
    }

    /// The IP addresses named in the member's peer URLs.
    pub fn peer_ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.peer_urls.iter().filter_map(|url| url_ip(url))
    }

    pub fn has_peer_ip(&self, ip: IpAddr) -> bool {
        self.peer_ips().any(|candidate| candidate == ip)
    }
}

/// Extracts the IP literal of `scheme://ip:port[/path]`; `None` for host names
/// or malformed URLs (those never match an instance, which is the safe side:
/// a member we cannot place is never counted as ours).
pub fn url_ip(url: &str) -> Option<IpAddr> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next()?.parse().ok();
    }
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host);
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_ip_reads_ipv4_with_port_and_path() {
        assert_eq!(url_ip("http://127.0.1.4:2380"), "127.0.1.4".parse().ok());
        assert_eq!(url_ip("https://10.0.0.7:2380/x"), "10.0.0.7".parse().ok());
    }

    #[test]
    fn url_ip_reads_bracketed_ipv6() {
        assert_eq!(url_ip("http://[::1]:2380"), "::1".parse().ok());
    }

    #[test]
    fn url_ip_refuses_host_names_and_garbage() {
        assert_eq!(url_ip("http://etcd-0.example:2380"), None);
        assert_eq!(url_ip(""), None);
        assert_eq!(url_ip("http://:2380"), None);
    }
}
