//! Talking to a running cluster: member list, add, remove, promote, health.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    AlarmAction, AlarmOptions, AlarmType, Client, CompactionOptions, ConnectOptions, GetOptions,
    MemberAddOptions,
};

use crate::discovery::error_chain;
use crate::member::Member;
use crate::tls::TlsCredentials;

/// A failed call to etcd: which call, through which endpoints, what kind of
/// failure (classified once, when the error is made; see [`EtcdErrorKind`]),
/// and the whole message for the operator.
#[derive(Debug, thiserror::Error)]
#[error("etcd {operation} via {endpoints} failed: {message}")]
pub struct EtcdError {
    pub operation: &'static str,
    pub endpoints: String,
    pub kind: EtcdErrorKind,
    pub message: String,
}

/// What went wrong, as far as a caller's next step depends on it.
///
/// etcd answers with a gRPC status whose code is coarse (three different
/// refusals share `FailedPrecondition`) and whose description is one of etcd's
/// fixed error strings (`rpctypes` in etcd's source); etcd's own Go client tells
/// them apart by that exact string, and so do we: by code, then by the whole
/// description, never by a fragment of a longer message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdErrorKind {
    /// The member id is not in the cluster (already removed).
    MemberNotFound,
    /// A promotion was refused because the learner has not caught up yet.
    LearnerNotInSync,
    /// A promotion was refused because the member already votes.
    NotALearner,
    /// etcd allows one learner at a time; another node is joining.
    TooManyLearners,
    /// A membership change would leave too few started members.
    NotEnoughStartedMembers,
    /// A membership change was refused to protect quorum: some members are
    /// down or only just connected (etcd waits 5 s after a peer connects).
    UnhealthyCluster,
    LeaderChanged,
    NoLeader,
    /// etcd accepted the request but did not finish it in time (no quorum).
    RequestTimedOut,
    /// A learner cannot serve this call (a linearizable read, say).
    NotSupportedForLearner,
    /// The backend quota is exhausted: the NOSPACE alarm is raised.
    NoSpace,
    /// The cluster raised its CORRUPT alarm.
    Corrupt,
    /// The revision asked for has been compacted away.
    Compacted,
    /// A lease with the id asked for is granted already.
    LeaseExists,
    /// The lease asked about does not exist (expired, revoked, never granted).
    LeaseNotFound,
    /// The TLS handshake failed: the peer's certificate is not from our CA,
    /// or it refused ours.
    TlsRefused,
    /// Nothing answered in time, or the connection failed.
    Unreachable,
    /// Anything else; the message says what.
    Other,
}

impl EtcdErrorKind {
    /// Refusals that clear by themselves: observe again and retry later.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::TooManyLearners
                | Self::LearnerNotInSync
                | Self::NotEnoughStartedMembers
                | Self::UnhealthyCluster
                | Self::LeaderChanged
                | Self::NoLeader
                | Self::RequestTimedOut
                // The member we asked just went away (terminated mid-join).
                | Self::Unreachable
        )
    }

    /// Classifies what the etcd client returned.
    pub fn of(error: &etcd_client::Error) -> Self {
        match error {
            etcd_client::Error::GRpcStatus(status) => {
                if refused_tls(status) {
                    Self::TlsRefused
                } else {
                    Self::of_status(status.code(), status.message())
                }
            }
            etcd_client::Error::TransportError(transport) if refused_tls(transport) => {
                Self::TlsRefused
            }
            etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => {
                Self::Unreachable
            }
            _ => Self::Other,
        }
    }

    /// A gRPC status: by code, then by etcd's exact error description.
    pub fn of_status(code: tonic::Code, description: &str) -> Self {
        use tonic::Code;
        match (code, description) {
            (Code::NotFound, "etcdserver: member not found") => Self::MemberNotFound,
            (
                Code::FailedPrecondition,
                "etcdserver: can only promote a learner member which is in sync with leader",
            ) => Self::LearnerNotInSync,
            (Code::FailedPrecondition, "etcdserver: can only promote a learner member") => {
                Self::NotALearner
            }
            (Code::FailedPrecondition, "etcdserver: too many learner members in cluster") => {
                Self::TooManyLearners
            }
            (
                Code::FailedPrecondition,
                "etcdserver: re-configuration failed due to not enough started members",
            ) => Self::NotEnoughStartedMembers,
            (Code::Unavailable, "etcdserver: unhealthy cluster") => Self::UnhealthyCluster,
            (Code::Unavailable, "etcdserver: leader changed") => Self::LeaderChanged,
            (Code::Unavailable, "etcdserver: no leader") => Self::NoLeader,
            (
                Code::Unavailable,
                "etcdserver: request timed out"
                | "etcdserver: request timed out, possibly due to previous leader failure"
                | "etcdserver: request timed out, possibly due to connection lost"
                | "etcdserver: request timed out, waiting for the applied index took too long",
            ) => Self::RequestTimedOut,
            (Code::Unavailable, "etcdserver: rpc not supported for learner") => {
                Self::NotSupportedForLearner
            }
            (Code::ResourceExhausted, "etcdserver: mvcc: database space exceeded") => Self::NoSpace,
            (Code::DataLoss, "etcdserver: corrupt cluster") => Self::Corrupt,
            (Code::OutOfRange, "etcdserver: mvcc: required revision has been compacted") => {
                Self::Compacted
            }
            (Code::FailedPrecondition, "etcdserver: lease already exists") => Self::LeaseExists,
            (Code::NotFound, "etcdserver: requested lease not found") => Self::LeaseNotFound,
            // Any other Unavailable is the transport's (no connection, the
            // member shutting down); a deadline is ours or the server's.
            (Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled, _) => Self::Unreachable,
            _ => Self::Other,
        }
    }
}

/// Whether a rustls error is somewhere in the chain: a certificate we or the
/// peer refused. rustls sits several layers down (tonic, hyper, an
/// `io::Error`), and `io::Error::source` skips the error it wraps, so both
/// links are looked through.
fn refused_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return true;
            }
        }
        next = error.source();
    }
    false
}

impl EtcdError {
    pub(crate) fn new(
        operation: &'static str,
        endpoints: &str,
        error: &etcd_client::Error,
    ) -> Self {
        Self {
            operation,
            endpoints: endpoints.to_owned(),
            kind: EtcdErrorKind::of(error),
            message: client_error_chain(error),
        }
    }

    /// Refusals that clear by themselves: observe again and retry later.
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }
}

/// The etcd client's error with its causes. Its own type reports no source,
/// so the gRPC status or transport error inside is walked for them: the cause
/// (a refused certificate, a connection refused) is what an operator needs.
fn client_error_chain(error: &etcd_client::Error) -> String {
    match error {
        etcd_client::Error::GRpcStatus(status) => match std::error::Error::source(status) {
            Some(source) => format!("{}: {}", status.message(), error_chain(source)),
            None => format!("{} ({:?})", status.message(), status.code()),
        },
        etcd_client::Error::TransportError(transport) => error_chain(transport),
        other => error_chain(other),
    }
}

/// One member's own report, from the maintenance Status call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    pub cluster_id: u64,
    pub member_id: u64,
    /// 0 when the member knows no leader.
    pub leader_id: u64,
    pub is_learner: bool,
    /// The revision this member has applied (not a linearizable read).
    pub revision: i64,
    pub raft_applied_index: u64,
    /// Rises by one with every leader election.
    pub raft_term: u64,
    /// The size of the backend file.
    pub db_size: i64,
    /// What of the file holds data; the rest is free pages a defragmentation returns.
    pub db_size_in_use: i64,
    pub version: String,
}

impl MemberStatus {
    /// The bytes a defragmentation would give back.
    pub fn free_bytes(&self) -> i64 {
        (self.db_size - self.db_size_in_use).max(0)
    }
}

/// An alarm a member has raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alarm {
    pub member_id: u64,
    pub kind: AlarmKind,
}

/// The alarms etcd raises (its `AlarmType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmKind {
    /// The backend quota is exhausted: the cluster refuses writes.
    NoSpace,
    /// A member's data differs from its peers' at the same revision.
    Corrupt,
}

impl AlarmKind {
    fn of(alarm: AlarmType) -> Option<Self> {
        match alarm {
            AlarmType::Nospace => Some(Self::NoSpace),
            AlarmType::Corrupt => Some(Self::Corrupt),
            AlarmType::None => None,
        }
    }

    fn etcd(self) -> AlarmType {
        match self {
            Self::NoSpace => AlarmType::Nospace,
            Self::Corrupt => AlarmType::Corrupt,
        }
    }
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
            Err(e) => Err(EtcdError::new("Snapshot", &self.endpoints, &e)),
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
    pub(crate) client: Client,
    pub(crate) endpoints: String,
    /// Bound on any one call, connection included; see [`bounded`].
    pub(crate) deadline: Duration,
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
            .map_err(|e| EtcdError::new("connect", &joined, &e))?;
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
            kind: EtcdErrorKind::Unreachable,
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

    /// This member's own report (see [`MemberStatus`]).
    pub async fn status(&mut self) -> Result<MemberStatus, EtcdError> {
        let response = bounded(
            self.deadline,
            &self.endpoints,
            "Status",
            self.client.status(),
        )
        .await?;
        let header = response.header();
        Ok(MemberStatus {
            cluster_id: header.map_or(0, |h| h.cluster_id()),
            member_id: header.map_or(0, |h| h.member_id()),
            leader_id: response.leader(),
            is_learner: response.is_learner(),
            revision: header.map_or(0, |h| h.revision()),
            raft_applied_index: response.raft_applied_index(),
            raft_term: response.raft_term(),
            db_size: response.db_size(),
            db_size_in_use: response.raft_used_db_size(),
            version: response.version().to_owned(),
        })
    }

    /// The alarms active in the cluster.
    pub async fn alarms(&mut self) -> Result<Vec<Alarm>, EtcdError> {
        let response = bounded(
            self.deadline,
            &self.endpoints,
            "Alarm",
            self.client.alarm(AlarmAction::Get, AlarmType::None, None),
        )
        .await?;
        Ok(response
            .alarms()
            .iter()
            .filter_map(|a| {
                AlarmKind::of(a.alarm()).map(|kind| Alarm {
                    member_id: a.member_id(),
                    kind,
                })
            })
            .collect())
    }

    /// Clears `alarm`; etcd refuses writes until a NOSPACE alarm is cleared.
    pub async fn disarm(&mut self, alarm: Alarm) -> Result<(), EtcdError> {
        let mut options = AlarmOptions::new();
        options.with_member(alarm.member_id);
        bounded(
            self.deadline,
            &self.endpoints,
            "Alarm deactivate",
            self.client
                .alarm(AlarmAction::Deactivate, alarm.kind.etcd(), Some(options)),
        )
        .await?;
        Ok(())
    }

    /// Drops the history before `revision` and waits until every member has
    /// applied it (physical), so the free pages exist before a defragmentation.
    pub async fn compact(&mut self, revision: i64) -> Result<(), EtcdError> {
        bounded(
            self.deadline,
            &self.endpoints,
            "Compact",
            self.client
                .compact(revision, Some(CompactionOptions::new().with_physical())),
        )
        .await?;
        Ok(())
    }

    /// Rewrites this member's backend file without its free pages. The member
    /// answers nothing else meanwhile: connect to it alone, with a request
    /// timeout long enough for its database.
    pub async fn defragment(&mut self) -> Result<(), EtcdError> {
        bounded(
            self.deadline,
            &self.endpoints,
            "Defragment",
            self.client.defragment(),
        )
        .await?;
        Ok(())
    }

    /// Each endpoint's own status, asked of each on its own and all at once:
    /// through a balanced client one answer says nothing about which member
    /// gave it, and a frozen member must cost one timeout, not one each.
    /// Answers come back in the order of `endpoints`.
    pub async fn status_of_each(
        endpoints: &[String],
        access: &EtcdAccess,
    ) -> Vec<(String, Result<MemberStatus, EtcdError>)> {
        let mut tasks = tokio::task::JoinSet::new();
        for (index, endpoint) in endpoints.iter().enumerate() {
            let (endpoint, access) = (endpoint.clone(), access.clone());
            tasks.spawn(async move {
                let status = match Self::connect(std::slice::from_ref(&endpoint), &access).await {
                    Ok(mut admin) => admin.status().await,
                    Err(error) => Err(error),
                };
                (index, endpoint, status)
            });
        }
        let mut answers = Vec::with_capacity(endpoints.len());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(answer) => answers.push(answer),
                // Only a panic in the task gets here; that endpoint just has no answer.
                Err(error) => tracing::warn!(%error, "a status request task failed"),
            }
        }
        answers.sort_by_key(|(index, _, _)| *index);
        answers
            .into_iter()
            .map(|(_, endpoint, status)| (endpoint, status))
            .collect()
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

    /// Adds a learner at `peer_url`; returns its member id.
    pub async fn add_learner(&mut self, peer_url: &str) -> Result<u64, EtcdError> {
        let response = bounded(
            self.deadline,
            &self.endpoints,
            "MemberAdd",
            self.client
                .member_add([peer_url], Some(MemberAddOptions::new().with_is_learner())),
        )
        .await?;
        Ok(response.member().map_or(0, |m| m.id()))
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
            Err(error) if error.kind != EtcdErrorKind::MemberNotFound => Err(error),
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
            Err(error) if error.kind != EtcdErrorKind::NotALearner => Err(error),
            _ => Ok(()),
        }
    }
}

/// tonic's timeouts bound the TCP connect and each request, but not a TLS
/// handshake with a peer that accepted the connection and then froze (a
/// paused process, a half-dead instance): bound every call as a whole.
pub(crate) async fn bounded<T>(
    deadline: Duration,
    endpoints: &str,
    operation: &'static str,
    call: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, EtcdError> {
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(EtcdError::new(operation, endpoints, &e)),
        Err(_) => Err(EtcdError {
            operation,
            endpoints: endpoints.to_owned(),
            kind: EtcdErrorKind::Unreachable,
            message: format!("timed out after {deadline:?}"),
        }),
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
