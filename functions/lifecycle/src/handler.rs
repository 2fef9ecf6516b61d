//! The function's work: one SQS batch of lifecycle notifications, or one
//! reconcile run. Parsing and deciding are delegated to [`crate::notification`]
//! and [`crate::plan`]; this module does the I/O in the right order and reports.

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use etcd_aws_core::contract::names::ports;
use etcd_aws_core::etcd::ids::MemberId;
use etcd_aws_core::membership::instance::Instance;
use etcd_aws_io::aws::discovery::DiscoveryError;
use etcd_aws_io::etcd::error::EtcdError;
use serde::Serialize;
use tokio::time::Instant;

use crate::aws::{Aws, AwsError, Completion};
use crate::etcd::{Etcd, EtcdObservation};
use crate::notification::{self, Notification, ParseError, TerminatingAction};
use crate::plan::{
    plan_reconcile, plan_termination, ClusterView, Refusal, Removal, TerminationPlan,
};

#[derive(Debug, Clone)]
pub struct Settings {
    /// The group this function serves; `None` trusts each message's group.
    pub group_name: Option<String>,
    pub client_port: u16,
    /// Heartbeat the lifecycle action this often while its work runs.
    pub heartbeat_interval: Duration,
    /// How long one message (or one reconcile) retries refusals that clear by
    /// themselves before it is handed back to the queue.
    pub retry_for: Duration,
    pub retry_pause: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            group_name: None,
            client_port: ports::CLIENT,
            heartbeat_interval: Duration::from_secs(30),
            retry_for: Duration::from_secs(25),
            retry_pause: Duration::from_secs(1),
        }
    }
}

/// What became of a message that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The instance's members were removed and its action completed.
    Removed {
        instance_id: String,
        members: Vec<MemberId>,
        completion: Completion,
    },
    /// The instance had no member any more; its action was completed.
    AlreadyGone {
        instance_id: String,
        completion: Completion,
    },
    /// The hook's TEST_NOTIFICATION: acknowledged, nothing to do.
    TestNotification,
    /// A notice for another autoscaling group than the one this function
    /// serves: acknowledged without action, since no retry would change it
    /// and the dead-letter alarm must not page for it. Counted in a metric.
    ForeignGroup { group_name: String },
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("instance {0} is known neither to its group nor to EC2; nothing is removed for it")]
    UnknownInstance(String),
    #[error(transparent)]
    Refused(Refusal),
    #[error("group {0} has no live instance to reach etcd through")]
    NoEndpoints(String),
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("not attempted: the invocation is about to time out")]
    OutOfTime,
}

impl MessageError {
    /// Whether retrying the same message later can succeed. Every failure goes
    /// back to the queue either way (a permanent one ends in the dead-letter
    /// queue); this only decides how loudly it is logged and whether it is
    /// retried within the invocation.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Parse(_) | Self::UnknownInstance(_))
            && !matches!(self, Self::Discovery(DiscoveryError::NoSuchGroup(_)))
    }

    /// Refusals and etcd's "not now" answers ("unhealthy cluster" for a few
    /// seconds after peers connect, a leader change, a member restarting)
    /// clear within seconds: worth waiting for inside the invocation. Every
    /// etcd error counts, because none is final for a removal and the wait is
    /// bounded by `retry_for`.
    fn clears_soon(&self) -> bool {
        matches!(self, Self::Refused(_) | Self::Etcd(_))
    }
}

/// The outcome of one message of a batch.
#[derive(Debug)]
pub struct MessageReport {
    pub message_id: String,
    pub result: Result<Handled, MessageError>,
}

/// What a reconcile run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub removed: Vec<RemovedMember>,
    /// Departed members left in place, with the reason.
    pub refused: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovedMember {
    pub id: String,
    pub name: String,
    pub peer_urls: Vec<String>,
}

impl From<&Removal> for RemovedMember {
    fn from(removal: &Removal) -> Self {
        Self {
            id: removal.member.id.to_string(),
            name: removal.member.name.clone(),
            peer_urls: removal.member.peer_urls.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reconcile needs the group's name: set ETCD_AWS_GROUP_NAME")]
    NoGroup,
    #[error("reconcile removed {} member(s) but left {}: {}", .0.removed.len(), .0.refused.len(), .0.refused.join("; "))]
    Incomplete(ReconcileReport),
    #[error(transparent)]
    Failed(MessageError),
}

/// The function, generic over its seams so unit tests can drive every branch.
pub struct Lifecycle<A, E> {
    aws: A,
    etcd: E,
    settings: Settings,
}

/// A group, its instances, and etcd as seen through the live ones.
struct Observed {
    group: Vec<Instance>,
    endpoints: Vec<String>,
    etcd: EtcdObservation,
}

impl Observed {
    fn view(&self) -> ClusterView<'_> {
        ClusterView {
            members: &self.etcd.members,
            leader: self.etcd.leader,
            healthy: &self.etcd.healthy,
            group: &self.group,
        }
    }
}

impl<A: Aws, E: Etcd> Lifecycle<A, E> {
    pub fn new(aws: A, etcd: E, settings: Settings) -> Self {
        Self {
            aws,
            etcd,
            settings,
        }
    }

    /// Processes the messages one by one, in order: each removal is decided on
    /// the cluster the previous one left. A message never fails another.
    pub async fn process_batch(&self, event: &SqsEvent, deadline: Instant) -> Vec<MessageReport> {
        let mut reports = Vec::with_capacity(event.records.len());
        for message in &event.records {
            let message_id = message.message_id.clone().unwrap_or_default();
            let result = if Instant::now() >= deadline {
                Err(MessageError::OutOfTime)
            } else {
                self.process_message(message, deadline).await
            };
            log_outcome(&message_id, &result);
            reports.push(MessageReport { message_id, result });
        }
        let foreign = foreign_notices(&reports);
        if foreign > 0 {
            tracing::warn!(
                foreign_notices = foreign,
                group = self.settings.group_name.as_deref().unwrap_or_default(),
                "lifecycle notices for another autoscaling group were acknowledged without action: is another stack's hook pointed at this queue?"
            );
        }
        reports
    }

    pub async fn process_message(
        &self,
        message: &SqsMessage,
        deadline: Instant,
    ) -> Result<Handled, MessageError> {
        match notification::parse(message.body.as_deref())? {
            Notification::Test { group_name } => {
                tracing::info!(
                    group = group_name.as_deref().unwrap_or(""),
                    "hook test notification acknowledged"
                );
                Ok(Handled::TestNotification)
            }
            Notification::Terminating(action) => self.terminating(&action, deadline).await,
        }
    }

    async fn terminating(
        &self,
        action: &TerminatingAction,
        deadline: Instant,
    ) -> Result<Handled, MessageError> {
        if let Some(configured) = &self.settings.group_name {
            if configured != &action.group_name {
                tracing::warn!(message_group = %action.group_name, configured_group = %configured, instance_id = %action.instance_id,
                    "a lifecycle notice for another autoscaling group; acknowledged without action (is another stack's hook sending to this queue?)");
                return Ok(Handled::ForeignGroup {
                    group_name: action.group_name.clone(),
                });
            }
        }
        let deadline = deadline.min(Instant::now() + self.settings.retry_for);
        let removed = self
            .with_heartbeats(
                action,
                self.retrying(deadline, || self.remove_members_of(action)),
            )
            .await?;
        let completion = self.aws.complete(action).await?;
        let instance_id = action.instance_id.clone();
        Ok(match removed {
            Some(members) => Handled::Removed {
                instance_id,
                members,
                completion,
            },
            None => Handled::AlreadyGone {
                instance_id,
                completion,
            },
        })
    }

    /// `None` when the instance had no member left.
    async fn remove_members_of(
        &self,
        action: &TerminatingAction,
    ) -> Result<Option<Vec<MemberId>>, MessageError> {
        let observed = self.observe(&action.group_name).await?;
        let id = action.instance_id.as_str();
        let outside_group = if observed.group.iter().any(|i| i.id == id) {
            None
        } else {
            self.aws.ec2_instance(id).await?
        };
        match plan_termination(&observed.view(), id, outside_group.as_ref()) {
            TerminationPlan::UnknownInstance => Err(MessageError::UnknownInstance(id.to_owned())),
            TerminationPlan::AlreadyGone => Ok(None),
            TerminationPlan::Refuse(refusal) => Err(MessageError::Refused(refusal)),
            TerminationPlan::Remove(removals) => {
                for removal in &removals {
                    self.execute(&observed, removal).await?;
                }
                Ok(Some(removals.iter().map(|r| r.member.id).collect()))
            }
        }
    }

    /// The scheduled run: removes members whose instances are not live in the group.
    pub async fn reconcile(&self, deadline: Instant) -> Result<ReconcileReport, ReconcileError> {
        let group = self
            .settings
            .group_name
            .clone()
            .ok_or(ReconcileError::NoGroup)?;
        let deadline = deadline.min(Instant::now() + self.settings.retry_for);
        let report = self
            .retrying(deadline, || self.reconcile_once(&group))
            .await
            .map_err(ReconcileError::Failed)?;
        tracing::info!(group = %group, removed = ?report.removed, refused = ?report.refused, "reconcile finished");
        if report.refused.is_empty() {
            Ok(report)
        } else {
            Err(ReconcileError::Incomplete(report))
        }
    }

    async fn reconcile_once(&self, group: &str) -> Result<ReconcileReport, MessageError> {
        let observed = self.observe(group).await?;
        let mut report = ReconcileReport::default();
        for step in plan_reconcile(&observed.view()) {
            match step {
                Ok(removal) => {
                    self.execute(&observed, &removal).await?;
                    report.removed.push(RemovedMember::from(&removal));
                }
                Err(refusal) => {
                    tracing::warn!(%refusal, "reconcile leaves a departed member in place");
                    report.refused.push(refusal.to_string());
                }
            }
        }
        Ok(report)
    }

    /// Reads the group, etcd through the group's live instances, then the group
    /// again: a member can only be matched against instances read after it, or
    /// an instance launched in between would make its fresh member look departed.
    async fn observe(&self, group: &str) -> Result<Observed, MessageError> {
        let before = self.aws.group_instances(group).await?;
        let endpoints: Vec<String> = before
            .iter()
            .filter(|i| i.is_live())
            .filter_map(|i| i.private_ip)
            .map(|ip| self.etcd.client_url(ip, self.settings.client_port))
            .collect();
        if endpoints.is_empty() {
            return Err(MessageError::NoEndpoints(group.to_owned()));
        }
        let etcd = self.etcd.observe(&endpoints).await?;
        let group = self.aws.group_instances(group).await?;
        Ok(Observed {
            group,
            endpoints,
            etcd,
        })
    }

    async fn execute(&self, observed: &Observed, removal: &Removal) -> Result<(), MessageError> {
        let member = &removal.member;
        if let Some(target) = removal.transfer_leadership_to {
            tracing::info!(member_id = %member.id, member_name = %member.name, to = %target,
                "member to remove leads the cluster; moving leadership first");
            self.etcd.move_leader(member, target).await?;
        }
        self.etcd.remove(&observed.endpoints, member.id).await?;
        tracing::info!(member_id = %member.id, member_name = %member.name, peer_urls = ?member.peer_urls,
            learner = member.is_learner, "removed member");
        Ok(())
    }

    /// Runs `attempt` until it succeeds, fails for good, or `deadline` comes.
    async fn retrying<T, F, Fut>(
        &self,
        deadline: Instant,
        mut attempt: F,
    ) -> Result<T, MessageError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, MessageError>>,
    {
        let mut attempts = 1u32;
        loop {
            match attempt().await {
                Err(error)
                    if error.clears_soon()
                        && Instant::now() + self.settings.retry_pause < deadline =>
                {
                    tracing::info!(%error, attempts, "not yet possible; trying again");
                    tokio::time::sleep(self.settings.retry_pause).await;
                    attempts += 1;
                }
                other => return other,
            }
        }
    }

    /// Keeps the lifecycle action alive while `work` runs, so a slow removal is
    /// not overtaken by the hook's timeout.
    async fn with_heartbeats<T>(
        &self,
        action: &TerminatingAction,
        work: impl Future<Output = T>,
    ) -> T {
        let interval = self.settings.heartbeat_interval;
        let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return done,
                _ = ticks.tick() => match self.aws.heartbeat(action).await {
                    Ok(true) => tracing::info!(instance_id = %action.instance_id, "recorded a lifecycle action heartbeat"),
                    Ok(false) => tracing::warn!(instance_id = %action.instance_id,
                        "the lifecycle action is no longer active (completed or timed out); finishing the removal anyway"),
                    Err(error) => tracing::warn!(instance_id = %action.instance_id, %error, "lifecycle action heartbeat failed"),
                },
            }
        }
    }
}

/// How many messages of a batch were notices for another group.
pub fn foreign_notices(reports: &[MessageReport]) -> usize {
    reports
        .iter()
        .filter(|r| matches!(r.result, Ok(Handled::ForeignGroup { .. })))
        .count()
}

/// The partial batch response: the ids of the failed messages, which SQS
/// makes visible again (and moves to the dead-letter queue after the
/// queue's maxReceiveCount).
pub fn batch_response(reports: &[MessageReport]) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for report in reports.iter().filter(|r| r.result.is_err()) {
        response.add_failure(report.message_id.clone());
    }
    response
}

fn log_outcome(message_id: &str, result: &Result<Handled, MessageError>) {
    match result {
        Ok(handled) => tracing::info!(%message_id, outcome = ?handled, "message handled"),
        Err(error) if error.is_retryable() => {
            tracing::warn!(%message_id, %error, retryable = true, "message failed; it returns to the queue for a retry")
        }
        Err(error) => tracing::error!(%message_id, %error, retryable = false,
            "message cannot be handled; it returns to the queue and ends in the dead-letter queue"),
    }
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
