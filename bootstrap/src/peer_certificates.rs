//! While quorum is lost: name each peer whose certificate is refused for its
//! dates (expired, or not valid yet), since that, not the quorum, is what to
//! fix.
//!
//! The look runs beside the quorum watch, never in its way. The watch only
//! starts it ([`PeerCertificateLooks::quorum_lost`] is not async and returns
//! at once) and goes on judging: a first version made its TLS handshakes
//! inside the watch's round, one peer after the other, and a partitioned
//! member spent up to 2 s per unreachable peer before it judged, so its
//! recovery decision came late (commit 4027f2f). Here a look asks every peer
//! at once under one short deadline, at most one look is in flight, and the
//! look names what it finds itself.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use etcd_aws_core::contract::events;
use etcd_aws_io::aws::discovery::GroupDiscovery;
use etcd_aws_io::etcd::admin::{EtcdAccess, EtcdAdmin};
use etcd_aws_io::tls::served::{served_certificate_problem, ServedCertificateProblem};
use etcd_aws_io::tls::TlsCredentials;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// How long a look waits for the peers' handshakes, all made at once: a
/// peer that does not answer within it is down or cut off, which says
/// nothing of its certificate.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(2);

/// How long a look may spend finding the peers to ask (the own member, the
/// group's instances) before it gives up until the next one.
const PEERS_DEADLINE: Duration = Duration::from_secs(5);

/// How often a look is made again while one loss lasts. Once per loss is
/// not enough: a loss that starts while the peers are down or cut off finds
/// nothing to name, and when they come back with expired certificates the
/// loss goes on, and only a later look can say why. Every 30 s costs one
/// handshake per peer, and is soon next to how long an operator takes to
/// read the log of a loss that does not heal. A peer is still named once per
/// loss, however many looks find it.
const LOOK_AGAIN_AFTER: Duration = Duration::from_secs(30);

/// Where a look finds the peers to ask, and how it reaches them.
#[derive(Clone)]
pub struct PeerSources {
    pub own_client_url: String,
    /// The members' client port, to reach the group's other instances.
    pub client_port: u16,
    pub discovery: GroupDiscovery,
    pub group: String,
    pub access: EtcdAccess,
}

impl PeerSources {
    /// The peers' client URLs: from the member list this member holds (its
    /// own, not a quorum read, so it answers without quorum), else `known`
    /// (the watch's last view), else the group's other live instances (a
    /// member restarted while its peers refused every connection knows none,
    /// and its etcd may not serve before it has quorum).
    async fn peers(&self, known: Vec<String>) -> Vec<String> {
        let mut peers = self.own_member_list().await;
        if peers.is_empty() {
            peers = known;
        }
        if peers.is_empty() {
            peers = match self.discovery.instances(&self.group).await {
                Ok(instances) => instances
                    .iter()
                    .filter(|i| i.is_live())
                    .filter_map(|i| i.private_ip)
                    .map(|ip| self.access.url(ip, self.client_port))
                    .collect(),
                Err(_) => Vec::new(),
            };
        }
        let unique: BTreeSet<String> = peers
            .into_iter()
            .filter(|url| *url != self.own_client_url)
            .collect();
        unique.into_iter().collect()
    }

    async fn own_member_list(&self) -> Vec<String> {
        let Ok(mut own) =
            EtcdAdmin::connect(std::slice::from_ref(&self.own_client_url), &self.access).await
        else {
            return Vec::new();
        };
        let (Ok(status), Ok((_, members))) = (own.status().await, own.members().await) else {
            return Vec::new();
        };
        members
            .iter()
            .filter(|m| m.id != status.member_id)
            .flat_map(|m| m.client_urls.iter().cloned())
            .collect()
    }
}

/// The looks at the peers' certificates of one quorum watch: at most one in
/// flight, one every [`LOOK_AGAIN_AFTER`] while a loss lasts, each peer
/// named once per loss.
pub struct PeerCertificateLooks {
    sources: PeerSources,
    in_flight: Option<JoinHandle<()>>,
    last_started: Option<Instant>,
    /// The peers named during this loss. A new loss gets a new set: a look
    /// of the last one still finishing cannot keep this one from naming.
    named: Arc<Mutex<BTreeSet<String>>>,
}

impl PeerCertificateLooks {
    pub fn new(sources: PeerSources) -> Self {
        Self {
            sources,
            in_flight: None,
            last_started: None,
            named: Arc::default(),
        }
    }

    /// Quorum is lost: starts a look at the peers' certificates, unless one
    /// is in flight or one started less than [`LOOK_AGAIN_AFTER`] ago.
    /// Returns at once; the look names what it finds by itself.
    pub fn quorum_lost(&mut self, known_peers: &[String]) {
        if self.in_flight() {
            return;
        }
        if self
            .last_started
            .is_some_and(|at| at.elapsed() < LOOK_AGAIN_AFTER)
        {
            return;
        }
        // Without TLS no certificate can be refused.
        let Some(credentials) = self.sources.access.tls.as_ref().map(|tls| tls.current()) else {
            return;
        };
        let sources = self.sources.clone();
        let known = known_peers.to_vec();
        let named = Arc::clone(&self.named);
        self.last_started = Some(Instant::now());
        self.in_flight = Some(tokio::spawn(async move {
            let peers = tokio::time::timeout(PEERS_DEADLINE, sources.peers(known))
                .await
                .unwrap_or_default();
            for (peer, problem) in problems(peers, credentials, HANDSHAKE_DEADLINE).await {
                let first = named
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(peer.clone());
                if first {
                    tracing::error!(
                        event = events::PEER_CERTIFICATE_INVALID,
                        %peer,
                        %problem,
                        "a peer's certificate is refused for its dates: {problem}; that peer's renewals failed \
                         (see its certificate_renewal_failed lines) or the clocks are apart"
                    );
                }
            }
        }));
    }

    /// Quorum is back, or cannot be judged: a look in flight stops, and the
    /// next loss names its peers anew.
    pub fn loss_over(&mut self) {
        if let Some(look) = self.in_flight.take() {
            look.abort();
        }
        if self.last_started.take().is_some() {
            self.named = Arc::default();
        }
    }

    /// Whether a look is under way.
    pub fn in_flight(&self) -> bool {
        self.in_flight
            .as_ref()
            .is_some_and(|look| !look.is_finished())
    }
}

/// The watch ends when etcd exits: its look must not outlive it.
impl Drop for PeerCertificateLooks {
    fn drop(&mut self) {
        if let Some(look) = self.in_flight.take() {
            look.abort();
        }
    }
}

/// The peers whose certificates are refused for their dates, by peer: a
/// handshake with every one of `peers` at once, each given `deadline`, so the
/// whole takes about `deadline` at most however many peers do not answer.
async fn problems(
    peers: Vec<String>,
    credentials: Arc<TlsCredentials>,
    deadline: Duration,
) -> Vec<(String, ServedCertificateProblem)> {
    let mut handshakes = JoinSet::new();
    for peer in peers {
        let credentials = Arc::clone(&credentials);
        handshakes.spawn(async move {
            let problem = served_certificate_problem(&peer, &credentials, deadline).await;
            (peer, problem)
        });
    }
    let mut found = Vec::new();
    while let Some(done) = handshakes.join_next().await {
        if let Ok((peer, Some(problem))) = done {
            found.push((peer, problem));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use etcd_aws_io::etcd::admin::EtcdTimeouts;
    use etcd_aws_io::tls::authority::ValidityPeriod;
    use etcd_aws_io::tls::ClusterCa;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::net::TcpListener;

    const HOUR: Duration = Duration::from_secs(3600);

    pub(crate) fn credentials() -> TlsCredentials {
        let ca = ClusterCa::generate("test", ValidityPeriod::starting_now(HOUR)).unwrap();
        let issued = ca
            .issue_client("agent", ValidityPeriod::starting_now(HOUR))
            .unwrap();
        TlsCredentials::issued_by(&ca, issued)
    }

    /// A port that accepts connections and never says a word: a frozen peer.
    pub(crate) async fn silent_peer() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        (listener, url)
    }

    /// A port nothing listens on: a member whose etcd is down.
    pub(crate) async fn closed_port() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("https://{}", listener.local_addr().unwrap())
    }

    pub(crate) fn discovery() -> GroupDiscovery {
        GroupDiscovery::new(
            &aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .build(),
        )
    }

    fn sources(own_client_url: String) -> PeerSources {
        PeerSources {
            own_client_url,
            client_port: 2379,
            discovery: discovery(),
            group: "never-asked".to_owned(),
            access: EtcdAccess::tls(
                EtcdTimeouts {
                    connect: Duration::from_millis(100),
                    request: Duration::from_millis(100),
                },
                credentials(),
            ),
        }
    }

    #[tokio::test]
    async fn a_look_asks_every_peer_at_once_within_one_deadline() {
        let mut silent = Vec::new();
        for _ in 0..4 {
            silent.push(silent_peer().await);
        }
        let peers = silent.iter().map(|(_, url)| url.clone()).collect();
        let deadline = Duration::from_millis(400);
        let started = Instant::now();
        let found = problems(peers, Arc::new(credentials()), deadline).await;
        // One after the other, four silent peers would take 1.6 s.
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert!(
            found.is_empty(),
            "a silent peer says nothing of its certificate: {found:?}"
        );
    }

    #[tokio::test]
    async fn a_look_in_flight_is_not_joined_by_another() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = format!("https://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        // Accepts and holds every connection without a word.
        let held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        let mut looks = PeerCertificateLooks::new(sources(closed_port().await));
        looks.quorum_lost(std::slice::from_ref(&peer));
        looks.quorum_lost(std::slice::from_ref(&peer));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(looks.in_flight());
        looks.quorum_lost(std::slice::from_ref(&peer));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        held.abort();
    }
}
