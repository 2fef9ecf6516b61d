//! The etcd command line for each way of starting a member. Pure.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::etcd::ids::MemberId;
use crate::etcd::release::EtcdBinary;
use crate::membership::member::Member;

/// What keeps a member healthy for months: its history compacted, its
/// backend bounded, its data checked against its peers'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upkeep {
    /// etcd's `--quota-backend-bytes`: past it the cluster raises NOSPACE.
    pub quota_backend_bytes: u64,
    pub auto_compaction: AutoCompaction,
}

/// etcd's auto-compaction: `periodic` keeps a window of time (a duration such
/// as `1h`), `revision` a number of revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoCompaction {
    pub mode: CompactionMode,
    pub retention: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionMode {
    Periodic,
    Revision,
}

impl CompactionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Periodic => "periodic",
            Self::Revision => "revision",
        }
    }
}

impl Upkeep {
    /// The flags for the etcd that will run them: the corruption checks are
    /// feature gates from 3.6 and experimental flags before, and the compact
    /// hash check exists only in later 3.5 releases.
    pub fn args(&self, etcd: &EtcdBinary) -> Vec<String> {
        let mut args = vec![
            format!("--quota-backend-bytes={}", self.quota_backend_bytes),
            format!(
                "--auto-compaction-mode={}",
                self.auto_compaction.mode.as_str()
            ),
            format!(
                "--auto-compaction-retention={}",
                self.auto_compaction.retention
            ),
        ];
        if etcd.knows("--feature-gates") {
            args.push("--feature-gates=InitialCorruptCheck=true,CompactHashCheck=true".to_owned());
            return args;
        }
        if etcd.knows("--experimental-initial-corrupt-check") {
            args.push("--experimental-initial-corrupt-check=true".to_owned());
        }
        if etcd.knows("--experimental-compact-hash-check-enabled") {
            args.push("--experimental-compact-hash-check-enabled=true".to_owned());
        }
        args
    }
}

/// Whether the member starts a new cluster or joins one that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    New,
    Existing,
}

/// The `--initial-cluster*` settings; only read by etcd on a fresh data dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialCluster {
    /// `(name, peer URL)` for every member, this one included.
    pub members: Vec<(String, String)>,
    pub state: ClusterState,
    pub token: String,
}

/// The node's certificate, key and the cluster CA it trusts, as files for
/// etcd's flags (the I/O crate's TLS credentials write them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// The conventional names inside `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdLaunch {
    pub name: String,
    pub data_dir: PathBuf,
    pub ip: IpAddr,
    pub client_port: u16,
    pub peer_port: u16,
    /// Plain-HTTP `/health` and `/metrics` for load-balancer health checks,
    /// which cannot present a client certificate.
    pub metrics_port: u16,
    /// The node's certificate, key and the cluster CA; `None` runs plaintext
    /// (`--insecure-plaintext`).
    pub tls: Option<TlsFiles>,
    /// With TLS: the name a peer's certificate must carry on the peer port
    /// (`--peer-cert-allowed-hostname`), so that a client certificate from the
    /// same CA is refused there ([`crate::certificates::peer_name`]); `None`
    /// accepts any certificate of the cluster's CA.
    pub peer_allowed_hostname: Option<String>,
    /// `None` when restarting on existing data, where etcd ignores it anyway.
    pub initial_cluster: Option<InitialCluster>,
    /// The agent's own choices for the etcd it runs ([`Upkeep::args`]).
    pub upkeep_args: Vec<String>,
    /// Flags the operator passed after `--`; they come last so they win.
    pub extra_args: Vec<String>,
}

impl EtcdLaunch {
    pub fn client_url(&self) -> String {
        format!(
            "{}://{}",
            self.scheme(),
            SocketAddr::new(self.ip, self.client_port)
        )
    }

    pub fn peer_url(&self) -> String {
        format!(
            "{}://{}",
            self.scheme(),
            SocketAddr::new(self.ip, self.peer_port)
        )
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--name={}", self.name),
            format!("--data-dir={}", self.data_dir.display()),
            format!("--listen-client-urls={}", self.client_url()),
            format!("--advertise-client-urls={}", self.client_url()),
            format!("--listen-peer-urls={}", self.peer_url()),
            format!("--initial-advertise-peer-urls={}", self.peer_url()),
            format!(
                "--listen-metrics-urls=http://{}",
                SocketAddr::new(self.ip, self.metrics_port)
            ),
        ];
        if let Some(tls) = &self.tls {
            let (ca, cert, key) = (tls.ca.display(), tls.cert.display(), tls.key.display());
            // Clients and peers alike must present a certificate from the
            // cluster CA: a node of another cluster cannot join, a client
            // without a certificate cannot read.
            args.extend([
                format!("--cert-file={cert}"),
                format!("--key-file={key}"),
                format!("--trusted-ca-file={ca}"),
                "--client-cert-auth=true".to_owned(),
                format!("--peer-cert-file={cert}"),
                format!("--peer-key-file={key}"),
                format!("--peer-trusted-ca-file={ca}"),
                "--peer-client-cert-auth=true".to_owned(),
            ]);
            if let Some(hostname) = &self.peer_allowed_hostname {
                args.push(format!("--peer-cert-allowed-hostname={hostname}"));
            }
        }
        if let Some(initial) = &self.initial_cluster {
            let members: Vec<String> = initial
                .members
                .iter()
                .map(|(name, url)| format!("{name}={url}"))
                .collect();
            args.push(format!("--initial-cluster={}", members.join(",")));
            args.push(format!(
                "--initial-cluster-state={}",
                match initial.state {
                    ClusterState::New => "new",
                    ClusterState::Existing => "existing",
                }
            ));
            args.push(format!("--initial-cluster-token={}", initial.token));
        }
        args.extend(self.upkeep_args.iter().cloned());
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// The `--initial-cluster` members for joining: every current member, since
/// etcd refuses to start when the count differs from the cluster's ("member
/// count is unequal"). Members that never started have no name yet; any
/// unique name will do for them, because etcd matches members by peer URL.
pub fn initial_members_for_join(
    members: &[Member],
    my_id: MemberId,
    my_name: &str,
) -> Vec<(String, String)> {
    members
        .iter()
        .flat_map(|m| {
            let name = if m.id == my_id {
                my_name.to_owned()
            } else if m.name.is_empty() {
                format!("unstarted-{}", m.id)
            } else {
                m.name.clone()
            };
            m.peer_urls
                .iter()
                .map(move |url| (name.clone(), url.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(initial_cluster: Option<InitialCluster>) -> EtcdLaunch {
        EtcdLaunch {
            name: "i-1".into(),
            data_dir: "/var/lib/etcd".into(),
            ip: IpAddr::from([127, 0, 1, 4]),
            client_port: 2379,
            peer_port: 2380,
            metrics_port: 2381,
            tls: None,
            peer_allowed_hostname: None,
            initial_cluster,
            upkeep_args: vec!["--quota-backend-bytes=1".into()],
            extra_args: vec!["--snapshot-count=1000".into()],
        }
    }

    fn etcd(release: &str, flags: &[&str]) -> EtcdBinary {
        EtcdBinary {
            release: crate::etcd::release::EtcdRelease::parse(release).unwrap_or(
                crate::etcd::release::EtcdRelease {
                    major: 0,
                    minor: 0,
                    patch: 0,
                },
            ),
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    fn upkeep() -> Upkeep {
        Upkeep {
            quota_backend_bytes: 2 << 30,
            auto_compaction: AutoCompaction {
                mode: CompactionMode::Periodic,
                retention: "1h".into(),
            },
        }
    }

    #[test]
    fn every_etcd_gets_its_history_compacted_and_its_quota_set() {
        let args = upkeep().args(&etcd("3.4.23", &[]));
        assert_eq!(
            args,
            [
                "--quota-backend-bytes=2147483648",
                "--auto-compaction-mode=periodic",
                "--auto-compaction-retention=1h"
            ]
        );
    }

    #[test]
    fn etcd_3_4_checks_its_data_at_start() {
        let args = upkeep().args(&etcd("3.4.23", &["--experimental-initial-corrupt-check"]));
        assert!(args.contains(&"--experimental-initial-corrupt-check=true".to_owned()));
        assert!(!args.iter().any(|a| a.contains("compact-hash")), "{args:?}");
    }

    #[test]
    fn a_later_etcd_3_5_also_checks_hashes_after_each_compaction() {
        let args = upkeep().args(&etcd(
            "3.5.16",
            &[
                "--experimental-initial-corrupt-check",
                "--experimental-compact-hash-check-enabled",
            ],
        ));
        assert!(args.contains(&"--experimental-initial-corrupt-check=true".to_owned()));
        assert!(args.contains(&"--experimental-compact-hash-check-enabled=true".to_owned()));
    }

    #[test]
    fn etcd_3_6_gets_feature_gates_instead_of_experimental_flags() {
        let args = upkeep().args(&etcd("3.6.1", &["--feature-gates"]));
        assert!(args.contains(
            &"--feature-gates=InitialCorruptCheck=true,CompactHashCheck=true".to_owned()
        ));
        assert!(
            !args.iter().any(|a| a.starts_with("--experimental")),
            "{args:?}"
        );
    }

    /// etcd 3.7 decommissions the `--experimental-*` flags that 3.6 kept as
    /// aliases: the agent, reading the flags from the binary's own help,
    /// passes none of them to it.
    #[test]
    fn etcd_3_7_gets_no_experimental_flag_at_all() {
        let help = "Usage:\n  etcd [flags]\n\nMember:\n  --name 'default'\n  --data-dir '${name}.etcd'\n  --quota-backend-bytes '0'\n  --auto-compaction-mode 'periodic'\n  --auto-compaction-retention '0'\n\nFeature gates:\n  --feature-gates ''\n      InitialCorruptCheck=true|false (BETA - default=false)\n      CompactHashCheck=true|false (BETA - default=false)\n";
        let etcd = EtcdBinary {
            release: crate::etcd::release::EtcdRelease::parse("3.7.0").unwrap_or(
                crate::etcd::release::EtcdRelease {
                    major: 0,
                    minor: 0,
                    patch: 0,
                },
            ),
            flags: crate::etcd::release::listed_flags(help),
        };
        let upkeep = upkeep().args(&etcd);
        let launch = EtcdLaunch {
            upkeep_args: upkeep.clone(),
            extra_args: vec![],
            ..launch(None)
        }
        .args();
        assert!(
            launch.iter().all(|a| !a.starts_with("--experimental")),
            "{launch:?}"
        );
        assert!(upkeep.contains(
            &"--feature-gates=InitialCorruptCheck=true,CompactHashCheck=true".to_owned()
        ));
    }

    #[test]
    fn the_agents_choices_come_before_the_operators_so_the_operator_wins() {
        let args = launch(None).args();
        let agent = args.iter().position(|a| a == "--quota-backend-bytes=1");
        let operator = args.iter().position(|a| a == "--snapshot-count=1000");
        assert!(agent < operator, "{args:?}");
    }

    #[test]
    fn restart_passes_no_initial_cluster_flags() {
        let args = launch(None).args();
        assert!(
            args.iter().all(|a| !a.starts_with("--initial-cluster")),
            "{args:?}"
        );
        assert!(args.contains(&"--listen-client-urls=http://127.0.1.4:2379".to_string()));
        assert!(args.contains(&"--initial-advertise-peer-urls=http://127.0.1.4:2380".to_string()));
    }

    #[test]
    fn new_cluster_names_itself_and_its_token() {
        let initial = InitialCluster {
            members: vec![("i-1".into(), "http://127.0.1.4:2380".into())],
            state: ClusterState::New,
            token: "my-group".into(),
        };
        let args = launch(Some(initial)).args();
        assert!(args.contains(&"--initial-cluster=i-1=http://127.0.1.4:2380".to_string()));
        assert!(args.contains(&"--initial-cluster-state=new".to_string()));
        assert!(args.contains(&"--initial-cluster-token=my-group".to_string()));
    }

    #[test]
    fn tls_requires_certificates_of_clients_and_peers() {
        let tls = TlsFiles::in_dir(std::path::Path::new("/var/lib/etcd-aws/tls"));
        let args = EtcdLaunch {
            tls: Some(tls),
            ..launch(None)
        }
        .args();
        for expected in [
            "--listen-client-urls=https://127.0.1.4:2379",
            "--initial-advertise-peer-urls=https://127.0.1.4:2380",
            "--cert-file=/var/lib/etcd-aws/tls/cert.pem",
            "--trusted-ca-file=/var/lib/etcd-aws/tls/ca.pem",
            "--client-cert-auth=true",
            "--peer-key-file=/var/lib/etcd-aws/tls/key.pem",
            "--peer-client-cert-auth=true",
        ] {
            assert!(
                args.contains(&expected.to_string()),
                "{expected} missing from {args:?}"
            );
        }
    }

    #[test]
    fn the_peer_port_requires_the_node_name_only_when_asked_and_only_with_tls() {
        let flag = |launch: EtcdLaunch| {
            launch
                .args()
                .into_iter()
                .filter(|a| a.starts_with("--peer-cert-allowed-hostname"))
                .collect::<Vec<_>>()
        };
        let tls = TlsFiles::in_dir(std::path::Path::new("/var/lib/etcd-aws/tls"));
        let name = Some("peer.example".to_string());
        let cases = [
            (
                Some(tls.clone()),
                name.clone(),
                vec!["--peer-cert-allowed-hostname=peer.example"],
            ),
            (Some(tls), None, vec![]),
            (None, name, vec![]),
        ];
        for (tls, peer_allowed_hostname, expected) in cases {
            let launch = EtcdLaunch {
                tls,
                peer_allowed_hostname,
                ..launch(None)
            };
            assert_eq!(flag(launch), expected);
        }
    }

    #[test]
    fn health_is_served_over_plain_http_for_load_balancer_checks() {
        let args = launch(None).args();
        assert!(args.contains(&"--listen-metrics-urls=http://127.0.1.4:2381".to_string()));
    }

    #[test]
    fn operator_flags_come_last_so_they_override() {
        let args = launch(None).args();
        assert_eq!(
            args.last().map(String::as_str),
            Some("--snapshot-count=1000")
        );
    }

    #[test]
    fn join_lists_every_member_and_names_unstarted_ones() {
        let member = |id, name: &str, ip: &str| Member {
            id: MemberId(id),
            name: name.into(),
            peer_urls: vec![format!("http://{ip}:2380")],
            client_urls: vec![],
            is_learner: false,
        };
        let members = [
            member(1, "i-a", "127.0.1.4"),
            member(2, "", "127.0.1.5"),
            member(3, "", "127.0.1.6"),
        ];
        assert_eq!(
            initial_members_for_join(&members, MemberId(3), "i-me"),
            vec![
                ("i-a".to_string(), "http://127.0.1.4:2380".to_string()),
                (
                    "unstarted-2".to_string(),
                    "http://127.0.1.5:2380".to_string()
                ),
                ("i-me".to_string(), "http://127.0.1.6:2380".to_string()),
            ]
        );
    }
}
