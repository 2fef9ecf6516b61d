//! A failed call to etcd, and what kind of failure it is: classified once,
//! from the gRPC code and etcd's exact error description, so every caller
//! decides by kind and none by wording.

use crate::error_chain::error_chain;

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
