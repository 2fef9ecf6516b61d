//! Talking to a running cluster: member list, add, remove, promote, health.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    AlarmAction, AlarmOptions, AlarmType, Client, CompactionOptions, ConnectOptions, GetOptions,
    MemberAddOptions,
};

use etcd_aws_core::etcd::ids::{ClusterId, MemberId};
use etcd_aws_core::etcd::status::{Alarm, AlarmKind, MemberStatus};
use etcd_aws_core::membership::member::Member;

use crate::tls::{RenewableCredentials, TlsCredentials};

use super::error::{EtcdError, EtcdErrorKind};

/// etcd's alarm type as the core names it; `None` for etcd's "no alarm".
fn alarm_kind_of(alarm: AlarmType) -> Option<AlarmKind> {
    match alarm {
        AlarmType::Nospace => Some(AlarmKind::NoSpace),
        AlarmType::Corrupt => Some(AlarmKind::Corrupt),
        AlarmType::None => None,
    }
}

fn etcd_alarm_type(kind: AlarmKind) -> AlarmType {
    match kind {
        AlarmKind::NoSpace => AlarmType::Nospace,
        AlarmKind::Corrupt => AlarmType::Corrupt,
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
    /// Shared by every clone: a renewal reaches them all.
    pub tls: Option<Arc<RenewableCredentials>>,
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
            tls: Some(Arc::new(RenewableCredentials::new(credentials))),
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
            options = options.with_tls(tls.current().etcd_options());
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
    pub async fn members(&mut self) -> Result<(ClusterId, Vec<Member>), EtcdError> {
        let response = bounded(
            self.deadline,
            &self.endpoints,
            "MemberList",
            self.client.member_list(),
        )
        .await?;
        let cluster_id = ClusterId(response.header().map_or(0, |h| h.cluster_id()));
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

    /// A serializable read: succeeds when the member asked serves reads from
    /// its own data, whether or not its cluster has quorum.
    pub async fn check_serving(&mut self) -> Result<i64, EtcdError> {
        let response = bounded(
            self.deadline,
            &self.endpoints,
            "serializable read",
            self.client.get(
                "etcd-aws/health",
                Some(GetOptions::new().with_count_only().with_serializable()),
            ),
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
            cluster_id: ClusterId(header.map_or(0, |h| h.cluster_id())),
            member_id: MemberId(header.map_or(0, |h| h.member_id())),
            leader_id: Some(response.leader()).filter(|id| *id != 0).map(MemberId),
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
                alarm_kind_of(a.alarm()).map(|kind| Alarm {
                    member_id: MemberId(a.member_id()),
                    kind,
                })
            })
            .collect())
    }

    /// Clears `alarm`; etcd refuses writes until a NOSPACE alarm is cleared.
    pub async fn disarm(&mut self, alarm: Alarm) -> Result<(), EtcdError> {
        let mut options = AlarmOptions::new();
        options.with_member(alarm.member_id.0);
        bounded(
            self.deadline,
            &self.endpoints,
            "Alarm deactivate",
            self.client.alarm(
                AlarmAction::Deactivate,
                etcd_alarm_type(alarm.kind),
                Some(options),
            ),
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
    pub async fn move_leader(&mut self, target: MemberId) -> Result<(), EtcdError> {
        bounded(
            self.deadline,
            &self.endpoints,
            "MoveLeader",
            self.client.move_leader(target.0),
        )
        .await?;
        Ok(())
    }

    /// Adds a learner at `peer_url`; returns its member id.
    pub async fn add_learner(&mut self, peer_url: &str) -> Result<MemberId, EtcdError> {
        let response = bounded(
            self.deadline,
            &self.endpoints,
            "MemberAdd",
            self.client
                .member_add([peer_url], Some(MemberAddOptions::new().with_is_learner())),
        )
        .await?;
        Ok(MemberId(response.member().map_or(0, |m| m.id())))
    }

    /// Removes a member; a member that is already gone counts as removed.
    pub async fn remove(&mut self, id: MemberId) -> Result<(), EtcdError> {
        let removed = bounded(
            self.deadline,
            &self.endpoints,
            "MemberRemove",
            self.client.member_remove(id.0),
        )
        .await;
        match removed {
            Err(error) if error.kind != EtcdErrorKind::MemberNotFound => Err(error),
            _ => Ok(()),
        }
    }

    /// Promotes a learner; a member that is already voting counts as promoted.
    pub async fn promote(&mut self, id: MemberId) -> Result<(), EtcdError> {
        let promoted = bounded(
            self.deadline,
            &self.endpoints,
            "MemberPromote",
            self.client.member_promote(id.0),
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
        id: MemberId(m.id()),
        name: m.name().to_owned(),
        peer_urls: m.peer_urls().to_vec(),
        client_urls: m.client_urls().to_vec(),
        is_learner: m.is_learner(),
    }
}
