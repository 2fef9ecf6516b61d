//! `GET /ready` on the node's ready port: whether this node should be given
//! clients. The load balancer's target group asks it, so it never sends a
//! client to a node that would refuse or mislead it.
//!
//! Ready means: etcd runs, no restore order holds it out, its certificate is
//! valid, and its member is a voting member that serves reads. Not ready: a
//! learner (clients get "rpc not supported for learner"), a joiner still
//! publishing itself (it answers nothing for seconds), a node in quarantine,
//! an expired certificate. The judgement is local on purpose: a quorum loss
//! makes no node unready, since the target group's health also decides when
//! autoscaling replaces a node, and replacing the survivors would throw away
//! the data a recovery needs. [`judge`] is the rule, pure; the server gathers
//! its facts on every request, so the answer is never stale.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use etcd_aws_io::etcd::admin::{EtcdAccess, EtcdAdmin, EtcdTimeouts};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The path the target group's health check asks.
pub const PATH: &str = "/ready";

/// How long the member may take to answer for the check: well inside the
/// load balancer's own timeout.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// What the agent knows about its node, kept current by the agent's loop.
#[derive(Debug, Default)]
pub struct NodeState {
    etcd_running: AtomicBool,
    held_by_restore: AtomicBool,
    certificate_not_after: Mutex<Option<SystemTime>>,
}

impl NodeState {
    pub fn set_etcd_running(&self, running: bool) {
        self.etcd_running.store(running, Ordering::SeqCst);
    }

    /// A restore order holds this node out (quarantine, or held until the
    /// restore phase).
    pub fn set_held_by_restore(&self, held: bool) {
        self.held_by_restore.store(held, Ordering::SeqCst);
    }

    pub fn set_certificate_not_after(&self, not_after: Option<SystemTime>) {
        if let Ok(mut slot) = self.certificate_not_after.lock() {
            *slot = not_after;
        }
    }

    /// When this node's certificate expires (`None` without TLS).
    pub fn certificate_not_after(&self) -> Option<SystemTime> {
        self.certificate_not_after
            .lock()
            .ok()
            .and_then(|slot| *slot)
    }
}

/// What the member itself answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberAnswer {
    /// Nothing in time: etcd is starting, publishing itself, or hung.
    Silent,
    Learner,
    /// A voting member; `serves_reads` is whether a serializable read
    /// through it succeeded.
    Voter {
        serves_reads: bool,
    },
}

/// Everything [`judge`] looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub etcd_running: bool,
    pub held_by_restore: bool,
    pub certificate_expired: bool,
    /// `None` when the member was not asked (a fact above settled it).
    pub member: Option<MemberAnswer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotReady(&'static str),
}

/// The rule: the first reason a node should get no clients, or ready.
pub fn judge(facts: &Facts) -> Readiness {
    if facts.held_by_restore {
        return Readiness::NotReady("a restore order holds this node out");
    }
    if !facts.etcd_running {
        return Readiness::NotReady("etcd is not running");
    }
    if facts.certificate_expired {
        return Readiness::NotReady("this node's certificate has expired");
    }
    match facts.member {
        None | Some(MemberAnswer::Silent) => {
            Readiness::NotReady("the member does not answer (starting or publishing itself)")
        }
        Some(MemberAnswer::Learner) => {
            Readiness::NotReady("the member is a learner, still catching up")
        }
        Some(MemberAnswer::Voter {
            serves_reads: false,
        }) => Readiness::NotReady("the member does not serve reads"),
        Some(MemberAnswer::Voter { serves_reads: true }) => Readiness::Ready,
    }
}

/// The endpoint: the node's state and how to ask its member.
#[derive(Clone)]
pub struct ReadyEndpoint {
    pub state: Arc<NodeState>,
    pub own_client_url: String,
    pub access: EtcdAccess,
}

impl ReadyEndpoint {
    /// Gathers the facts now and judges them.
    pub async fn readiness(&self) -> Readiness {
        let mut facts = Facts {
            etcd_running: self.state.etcd_running.load(Ordering::SeqCst),
            held_by_restore: self.state.held_by_restore.load(Ordering::SeqCst),
            certificate_expired: self
                .state
                .certificate_not_after()
                .is_some_and(|not_after| not_after <= SystemTime::now()),
            member: None,
        };
        if facts.etcd_running {
            facts.member = Some(self.ask_member().await);
        }
        judge(&facts)
    }

    async fn ask_member(&self) -> MemberAnswer {
        let access = self.access.with_timeouts(EtcdTimeouts {
            connect: ANSWER_TIMEOUT,
            request: ANSWER_TIMEOUT,
        });
        let Ok(mut own) =
            EtcdAdmin::connect(std::slice::from_ref(&self.own_client_url), &access).await
        else {
            return MemberAnswer::Silent;
        };
        match own.status().await {
            Ok(status) if status.is_learner => MemberAnswer::Learner,
            Ok(_) => MemberAnswer::Voter {
                serves_reads: own.check_serving().await.is_ok(),
            },
            Err(_) => MemberAnswer::Silent,
        }
    }

    /// Serves `GET /ready` on `address` until the agent ends.
    pub async fn serve(self, address: SocketAddr) -> std::io::Result<()> {
        let listener = TcpListener::bind(address).await?;
        tracing::info!(%address, path = PATH, "serving this node's readiness for the load balancer");
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a readiness request");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let endpoint = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let endpoint = endpoint.clone();
                    async move { Ok::<_, Infallible>(endpoint.answer(&request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if request.uri().path() != PATH {
            return text(StatusCode::NOT_FOUND, format!("no such path; ask {PATH}\n"));
        }
        match self.readiness().await {
            Readiness::Ready => text(StatusCode::OK, "ready\n".to_owned()),
            Readiness::NotReady(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            ),
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVING: Facts = Facts {
        etcd_running: true,
        held_by_restore: false,
        certificate_expired: false,
        member: Some(MemberAnswer::Voter { serves_reads: true }),
    };

    #[test]
    fn a_voting_member_that_serves_reads_is_ready() {
        assert_eq!(judge(&SERVING), Readiness::Ready);
    }

    #[test]
    fn a_learner_is_not_ready() {
        let learner = Facts {
            member: Some(MemberAnswer::Learner),
            ..SERVING
        };
        assert!(matches!(judge(&learner), Readiness::NotReady(r) if r.contains("learner")));
    }

    #[test]
    fn a_member_that_does_not_answer_yet_is_not_ready() {
        let publishing = Facts {
            member: Some(MemberAnswer::Silent),
            ..SERVING
        };
        assert!(matches!(judge(&publishing), Readiness::NotReady(r) if r.contains("publishing")));
    }

    #[test]
    fn a_voter_that_serves_no_read_is_not_ready() {
        let stuck = Facts {
            member: Some(MemberAnswer::Voter {
                serves_reads: false,
            }),
            ..SERVING
        };
        assert!(matches!(judge(&stuck), Readiness::NotReady(_)));
    }

    #[test]
    fn a_node_held_by_a_restore_order_is_not_ready_whatever_its_member_says() {
        let held = Facts {
            held_by_restore: true,
            ..SERVING
        };
        assert!(matches!(judge(&held), Readiness::NotReady(r) if r.contains("restore")));
    }

    #[test]
    fn a_node_whose_certificate_expired_is_not_ready() {
        let expired = Facts {
            certificate_expired: true,
            ..SERVING
        };
        assert!(matches!(judge(&expired), Readiness::NotReady(r) if r.contains("certificate")));
    }

    #[test]
    fn a_node_without_etcd_running_is_not_ready() {
        let stopped = Facts {
            etcd_running: false,
            member: None,
            ..SERVING
        };
        assert!(matches!(judge(&stopped), Readiness::NotReady(r) if r.contains("not running")));
    }
}
