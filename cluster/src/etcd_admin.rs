//! Talking to a running cluster: member list, add, remove, promote, health.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions, MemberAddOptions};

use crate::discovery::error_chain;
use crate::member::Member;
use crate::tls::TlsCredentials;

#[derive(Debug, thiserror::Error)]
#[error("etcd {operation} via {endpoints} failed: {message}")]
pub struct EtcdError {
    pub operation: &'static str,
    pub endpoints: String,
    pub message: String,
}

impl EtcdError {
    fn has(&self, needle: &str) -> bool {
        self.message.contains(needle)
    }

    /// etcd allows one learner at a time; another node is joining.
    pub fn is_too_many_learners(&self) -> bool {
        self.has("too many learner members")
    }

    /// The learner has not caught up with the leader yet.
    pub fn is_learner_not_ready(&self) -> bool {
        self.has("in sync with leader")
    }

    /// The member is already a voting member (a promotion that already happened).
    pub fn is_not_a_learner(&self) -> bool {
        self.has("can only promote a learner member") && !self.is_learner_not_ready()
    }

    pub fn is_member_not_found(&self) -> bool {
        self.has("member not found")
    }

    /// Transient refusals that clear by themselves: retry later.
    pub fn is_transient(&self) -> bool {
        self.is_too_many_learners()
            || self.is_learner_not_ready()
            || self.has("not enough started members")
            || self.has("unhealthy cluster")
            || self.has("leader changed")
            || self.has("timed out")
            || self.has("Timeout expired")
            || self.has("deadline")
            // The member we asked just went away (e.g. terminated mid-join).
            || self.has("currently unavailable")
    }
}

/// One member's own view, from the maintenance Status call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberStatus {
    pub member_id: u64,
    pub leader_id: u64,
    pub is_learner: bool,
}

/// A member's fuller report, for choosing which member to back up from and
/// describing the backup: the revision it has applied, its size and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    pub cluster_id: u64,
    pub member_id: u64,
    /// 0 when the member knows no leader.
    pub leader_id: u64,
    pub is_learner: bool,
    /// The revision this member has applied (not a linearizable read).
    pub revision: i64,
    pub raft_applied_index: u64,
    pub db_size: i64,
    pub version: String,
}

/// The chunks of a snapshot as etcd streams them: the database, then the
/// 32-byte SHA-256 of the database that `etcdutl snapshot restore` verifies.
pub struct SnapshotStream {
    stream: etcd_client::SnapshotStreaming,
    endpoints: String,
}

impl SnapshotStream {
    /// The next chunk; `None` once etcd has sent everything.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, EtcdError> {
        match self.stream.message().await {
            Ok(Some(message)) => Ok(Some(message.blob().to_vec())),
            Ok(None) => Ok(None),
            Err(e) => Err(EtcdError {
                operation: "Snapshot",
                endpoints: self.endpoints.clone(),
                message: error_chain(&e),
            }),
        }
    }
}

/// Timeouts for talking to etcd. Probes must be short: a silent peer must not
/// stall the decision for long.
#[derive(Debug, Clone, Copy)]
pub struct EtcdTimeouts {
    pub connect: Duration,
    pub request: Duration,
}

impl Default for EtcdTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(1),
            request: Duration::from_secs(3),
        }
    }
}

/// How to reach etcd: the timeouts, and the client certificate when the
/// cluster runs TLS (the default; plaintext only with `--insecure-plaintext`).
#[derive(Debug, Clone)]
pub struct EtcdAccess {
    pub timeouts: EtcdTimeouts,
    pub tls: Option<Arc<TlsCredentials>>,
}

impl EtcdAccess {
    pub fn plaintext(timeouts: EtcdTimeouts) -> Self {
        Self {
            timeouts,
            tls: None,
        }
    }

    pub fn tls(timeouts: EtcdTimeouts, credentials: TlsCredentials) -> Self {
        Self {
            timeouts,
            tls: Some(Arc::new(credentials)),
        }
    }

    /// The same credentials with other timeouts.
    pub fn with_timeouts(&self, timeouts: EtcdTimeouts) -> Self {
        Self {
            timeouts,
            tls: self.tls.clone(),
        }
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// `https://ip:port` (or `http://`), with brackets for IPv6.
    pub fn url(&self, ip: IpAddr, port: u16) -> String {
        format!("{}://{}", self.scheme(), SocketAddr::new(ip, port))
    }
}

/// A client for cluster administration through the given client URLs.
pub struct EtcdAdmin {
    client: Client,
    endpoints: String,
    /// Bound on any one call, connection included; see [`bounded`].
    deadline: Duration,
}

impl EtcdAdmin {
    pub async fn connect(endpoints: &[String], access: &EtcdAccess) -> Result<Self, EtcdError> {
        let joined = endpoints.join(",");
        let mut options = ConnectOptions::new()
            .with_connect_timeout(access.timeouts.connect)
            .with_timeout(access.timeouts.request);
        if let Some(tls) = &access.tls {
            options = options.with_tls(tls.etcd_options());
        }
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| EtcdError {
                operation: "connect",
                endpoints: joined.clone(),
                // The cause (a refused certificate, say) is in the source chain.
                message: error_chain(&e),
            })?;
        Ok(Self {
            client,
            endpoints: joined,
            deadline: access.timeouts.connect + access.timeouts.request,
        })
    }

    /// Runs `call` through each endpoint in turn until one answers, and
    /// returns the last error when none does. A balanced client may hand a
    /// call to an instance whose etcd is not running yet (a replacement still
    /// booting) and fail it although other members would have answered.
    pub async fn first_answer<T>(
        endpoints: &[String],
        access: &EtcdAccess,
        mut call: impl AsyncFnMut(&mut EtcdAdmin) -> Result<T, EtcdError>,
    ) -> Result<T, EtcdError> {
        let mut last_error = EtcdError {
            operation: "connect",
            endpoints: String::new(),
            message: "no endpoint to ask".to_owned(),
        };
        for endpoint in endpoints {
            let answer = match Self::connect(std::slice::from_ref(endpoint), access).await {
                Ok(mut admin) => call(&mut admin).await,
                Err(error) => Err(error),
            };
            match answer {
                Ok(value) => return Ok(value),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// The cluster id and its members.
    pub async fn members(&mut self) -> Result<(u64, Vec<Member>), EtcdError> {
        let response = bounded(
            self.deadline,
            &self.endpoints,
            "MemberList",
            self.client.member_list(),
        )
        .await?;
        let cluster_id = response.header().map_or(0, |h| h.cluster_id());
        Ok((
            cluster_id,
            response.members().iter().map(to_member).collect(),
        ))
    }

    /// A linearizable read: succeeds only when the cluster has quorum.
    pub async fn check_quorum(&mut self) -> Result<i64, EtcdError> {
        let response = bounded(
            self.deadline,
            &self.endpoints,
            "linearizable read",
            self.client
                .get("etcd-aws/health", Some(GetOptions::new().with_count_only())),
        )
        .await?;
        Ok(response.header().map_or(0, |h| h.revision()))
    }

    /// Which member answered and which member it believes leads (0: none).
    pub async fn status(&mut self) -> Result<MemberStatus, EtcdError> {
        let response = bounded(
            self.deadline,
            &self.endpoints,
            "Status",
            self.client.status(),
        )
        .await?;
        Ok(MemberStatus {
            member_id: response.header().map_or(0, |h| h.member_id()),
            leader_id: response.leader(),
            is_learner: response.is_learner(),
        })
    }

    /// This member's fuller status (see [`ServerStatus`]).
    pub async fn server_status(&mut self) -> Result<ServerStatus, EtcdError> {
        let response = bounded(
            self.deadline,
            &self.endpoints,
            "Status",
            self.client.status(),
        )
        .await?;
        let header = response.header();
        Ok(ServerStatus {
            cluster_id: header.map_or(0, |h| h.cluster_id()),
            member_id: header.map_or(0, |h| h.member_id()),
            leader_id: response.leader(),
            is_learner: response.is_learner(),
            revision: header.map_or(0, |h| h.revision()),
            raft_applied_index: response.raft_applied_index(),
            db_size: response.db_size(),
            version: response.version().to_owned(),
        })
    }

    /// Starts a consistent snapshot of this member's database. The request
    /// timeout given at connect bounds the whole stream (etcd enforces the
    /// gRPC deadline), so connect with one long enough for the database.
    pub async fn snapshot(&mut self) -> Result<SnapshotStream, EtcdError> {
        let stream = bounded(
            self.deadline,
            &self.endpoints,
            "Snapshot",
            self.client.snapshot(),
        )
        .await?;
        Ok(SnapshotStream {
            stream,
            endpoints: self.endpoints.clone(),
        })
    }

    /// Hands leadership to `target`. etcd only accepts this on the current
    /// leader, so connect this admin to the leader's client URLs alone.
    pub async fn move_leader(&mut self, target: u64) -> Result<(), EtcdError> {
        bounded(
            self.deadline,
            &self.endpoints,
            "MoveLeader",
            self.client.move_leader(target),
        )
        .await?;
        Ok(())
    }

    /// Adds a learner at `peer_url`; returns its id and the member list after the add.
    pub async fn add_learner(&mut self, peer_url: &str) -> Result<(u64, Vec<Member>), EtcdError> {
        let response = bounded(
            self.deadline,
            &self.endpoints,
            "MemberAdd",
            self.client
                .member_add([peer_url], Some(MemberAddOptions::new().with_is_learner())),
        )
        .await?;
        let id = response.member().map_or(0, |m| m.id());
        Ok((id, response.member_list().iter().map(to_member).collect()))
    }

    /// Removes a member; a member that is already gone counts as removed.
    pub async fn remove(&mut self, id: u64) -> Result<(), EtcdError> {
        let removed = bounded(
            self.deadline,
            &self.endpoints,
            "MemberRemove",
            self.client.member_remove(id),
        )
        .await;
        match removed {
            Err(error) if !error.is_member_not_found() => Err(error),
            _ => Ok(()),
        }
    }

    /// Promotes a learner; a member that is already voting counts as promoted.
    pub async fn promote(&mut self, id: u64) -> Result<(), EtcdError> {
        let promoted = bounded(
            self.deadline,
            &self.endpoints,
            "MemberPromote",
            self.client.member_promote(id),
        )
        .await;
        match promoted {
            Err(error) if !error.is_not_a_learner() => Err(error),
            _ => Ok(()),
        }
    }
}

/// tonic's timeouts bound the TCP connect and each request, but not a TLS
/// handshake with a peer that accepted the connection and then froze (a
/// paused process, a half-dead instance): bound every call as a whole.
async fn bounded<T>(
    deadline: Duration,
    endpoints: &str,
    operation: &'static str,
    call: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, EtcdError> {
    let error = |message: String| EtcdError {
        operation,
        endpoints: endpoints.to_owned(),
        message,
    };
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(error(error_chain(&e))),
        Err(_) => Err(error(format!("timed out after {deadline:?}"))),
    }
}

fn to_member(m: &etcd_client::Member) -> Member {
    Member {
        id: m.id(),
        name: m.name().to_owned(),
        peer_urls: m.peer_urls().to_vec(),
        client_urls: m.client_urls().to_vec(),
        is_learner: m.is_learner(),
    }
}
