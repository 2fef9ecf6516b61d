//! The maintenance run, on its own schedule (every minute in the stack):
//! publish etcd's health, then reclaim space when it is due.
//!
//! 1. Reads the group's live instances, each member's status, the member
//!    list, the active alarms and the certificates' expiry (the soonest a
//!    member serves, the functions' and the CA's), and prints them as one
//!    metric line ([`health`], the core's `certificates::expiry`); the
//!    certificates' figures are printed even when nothing else answers (an
//!    expired certificate is what makes everything else fail). This happens
//!    first and whatever follows, so the health alarms see a cluster whose
//!    maintenance fails.
//! 2. [`plan`] decides (pure): nothing, wait (a member silent, no stable
//!    leader, a learner joining, a CORRUPT alarm), or maintain.
//! 3. Maintains: a backup first when the newest is older than the backup
//!    schedule (one that deletes nothing: retention is the backup run's, and
//!    the maintenance role may not delete a snapshot); under NOSPACE,
//!    compacts the history to the current revision; defragments one member
//!    at a time, followers first, the leader last
//!    after handing leadership away, waiting for each to answer again; under
//!    NOSPACE, clears the alarm once every member is below the quota, never
//!    before. Each step starts only while the invocation has time left.
//! 4. Prints a metric line of what it did (members defragmented, bytes
//!    reclaimed, NOSPACE recoveries, or 1 for NOSPACE left unrecovered).

pub mod health;
pub mod plan;

use std::time::{Duration, SystemTime};

use etcd_aws_core::clock;
use etcd_aws_core::contract::jobs::MaintenanceAnswer;
use etcd_aws_core::contract::metrics::{self, fields};
use etcd_aws_core::contract::metrics::{Metric, Unit};
use etcd_aws_core::etcd::ids::{joined, MemberId};
use etcd_aws_core::etcd::status::{Alarm, MemberStatus};
use etcd_aws_io::aws::discovery::DiscoveryError;
use etcd_aws_io::backup_store::BackupStore;
use etcd_aws_io::etcd::admin::{EtcdAccess, EtcdAdmin, EtcdTimeouts};
use etcd_aws_io::etcd::error::{EtcdError, EtcdErrorKind};
use etcd_aws_io::logging;
use etcd_aws_io::tls::ClientTlsError;
use tokio::time::Instant;

use crate::certificates;
use crate::config::BackupConfig;
use crate::run::{take_backup, BackupError};
use health::Health;
use plan::{plan, ClusterState, Defragmentation, Maintenance, Plan, Thresholds};

/// A step is started only with at least this much of the invocation left.
const MIN_STEP_TIME: Duration = Duration::from_secs(15);

/// How maintenance runs, besides where the cluster and its backups are.
#[derive(Debug, Clone)]
pub struct MaintenanceSettings {
    /// The backend quota the members run with (`--quota-backend-bytes`).
    pub quota_bytes: i64,
    pub thresholds: Thresholds,
    /// Bound on one member's defragmentation.
    pub defrag_timeout: Duration,
    /// How long a defragmented member may take to answer again.
    pub settle_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error(transparent)]
    ClientTls(#[from] ClientTlsError),
    #[error("cannot read the group's instances: {0}")]
    Discovery(#[from] DiscoveryError),
    #[error("group {0} has no live instance with a private IP; nothing to maintain")]
    NoInstances(String),
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error("the backup before the defragmentation failed, so nothing was defragmented: {0}")]
    Backup(#[from] BackupError),
    #[error("member {member} did not answer within {timeout:?} after its defragmentation; the next members were left alone")]
    DidNotSettle { member: MemberId, timeout: Duration },
    #[error("NOSPACE is not recovered: after compacting and defragmenting, members {} are still at or above the quota of {quota_bytes} bytes; raise --quota-backend-bytes (the stack's EtcdQuotaBackendBytes) or delete data", joined(members))]
    StillAboveQuota {
        members: Vec<MemberId>,
        quota_bytes: i64,
    },
}

/// One maintenance run; `deadline` is when the invocation must have answered.
pub async fn run_maintenance(
    config: &BackupConfig,
    settings: &MaintenanceSettings,
    sdk: &aws_config::SdkConfig,
    deadline: Instant,
) -> Result<MaintenanceAnswer, MaintenanceError> {
    let access = config.tls.access(sdk, config.etcd_timeouts).await?;
    let endpoints = live_endpoints(config, sdk, &access).await?;
    // Read first and published whatever else fails: an expired certificate
    // is what makes every other request fail.
    let expiries = certificates::read(&endpoints, &access)
        .await
        .expiries()
        .metrics(SystemTime::now());
    let seen = match observe(&endpoints, &access).await {
        Ok(seen) => seen,
        Err(error) => {
            logging::print_metrics_with(&config.group_name, &expiries, &[]);
            return Err(error);
        }
    };
    let health = Health::of(
        &seen.members,
        &seen.statuses,
        &seen.alarms,
        settings.quota_bytes,
    );
    let mut published = health.metrics();
    published.extend(expiries);
    logging::print_metrics_with(&config.group_name, &published, &health.properties());
    let backup_age_seconds = newest_backup_age(config, sdk).await;
    let state = ClusterState {
        members: &seen.members,
        statuses: &seen.statuses,
        alarms: &seen.alarms,
        backup_age_seconds,
    };
    let maintenance = match plan(&state, &settings.thresholds) {
        Plan::Nothing => {
            tracing::info!(
                "no member is fragmented enough and no alarm is raised; nothing to maintain"
            );
            return Ok(MaintenanceAnswer::default());
        }
        Plan::Wait(reason) => {
            tracing::warn!(%reason, "maintenance is due but not safe now");
            return Ok(MaintenanceAnswer {
                waited: Some(reason.to_string()),
                ..MaintenanceAnswer::default()
            });
        }
        Plan::Maintain(maintenance) => maintenance,
    };
    let result = maintain(
        config,
        settings,
        sdk,
        &access,
        &endpoints,
        &maintenance,
        deadline,
    )
    .await;
    let (outcome, unrecovered) = match &result {
        Ok(outcome) => (outcome.clone(), false),
        Err(MaintenanceError::StillAboveQuota { .. }) => (MaintenanceAnswer::default(), true),
        Err(_) => (MaintenanceAnswer::default(), false),
    };
    logging::print_metrics_with(
        &config.group_name,
        &[
            Metric::new(
                metrics::DEFRAGMENTED_MEMBERS,
                Unit::Count,
                outcome.defragmented.len(),
            ),
            Metric::new(
                metrics::NOSPACE_RECOVERIES,
                Unit::Count,
                outcome.nospace_recovered,
            ),
            Metric::new(
                metrics::NOSPACE_UNRECOVERED,
                Unit::Count,
                u8::from(unrecovered),
            ),
        ],
        &[(fields::RECLAIMED_BYTES, outcome.reclaimed_bytes.into())],
    );
    result
}

/// What one look at the cluster found.
pub(crate) struct Seen {
    pub members: Vec<etcd_aws_core::membership::member::Member>,
    pub statuses: Vec<MemberStatus>,
    pub alarms: Vec<Alarm>,
}

async fn live_endpoints(
    config: &BackupConfig,
    sdk: &aws_config::SdkConfig,
    access: &EtcdAccess,
) -> Result<Vec<String>, MaintenanceError> {
    let endpoints = crate::endpoints::live_endpoints(config, sdk, access).await?;
    if endpoints.is_empty() {
        return Err(MaintenanceError::NoInstances(config.group_name.clone()));
    }
    Ok(endpoints)
}

pub(crate) async fn observe(
    endpoints: &[String],
    access: &EtcdAccess,
) -> Result<Seen, MaintenanceError> {
    let mut statuses = Vec::new();
    for (endpoint, status) in EtcdAdmin::status_of_each(endpoints, access).await {
        match status {
            Ok(status) => statuses.push(status),
            Err(error) => {
                tracing::info!(%endpoint, %error, "member did not answer a status request")
            }
        }
    }
    // An instance listed twice, or two URLs of one member, answer once each.
    statuses.sort_by_key(|s| s.member_id);
    statuses.dedup_by_key(|s| s.member_id);
    let (_, members) =
        EtcdAdmin::first_answer(endpoints, access, async |admin| admin.members().await).await?;
    let alarms =
        EtcdAdmin::first_answer(endpoints, access, async |admin| admin.alarms().await).await?;
    Ok(Seen {
        members,
        statuses,
        alarms,
    })
}

/// A backup that cannot be read counts as none: the plan then backs up first.
async fn newest_backup_age(config: &BackupConfig, sdk: &aws_config::SdkConfig) -> Option<i64> {
    let store = BackupStore::new(sdk, &config.bucket, &config.prefix);
    match store.pointer().await {
        Ok(pointer) => pointer.map(|newest| clock::now_unix_seconds() - newest.created_at),
        Err(error) => {
            tracing::warn!(%error, "cannot read the newest backup; counting it as missing");
            None
        }
    }
}

async fn maintain(
    config: &BackupConfig,
    settings: &MaintenanceSettings,
    sdk: &aws_config::SdkConfig,
    access: &EtcdAccess,
    endpoints: &[String],
    maintenance: &Maintenance,
    deadline: Instant,
) -> Result<MaintenanceAnswer, MaintenanceError> {
    let mut outcome = MaintenanceAnswer::default();
    if maintenance.backup_first {
        tracing::info!(
            "the newest backup is older than the backup schedule: backing up before defragmenting"
        );
        take_backup(config, sdk).await?;
        outcome.backed_up = true;
    }
    if let Some(revision) = maintenance.compact_to {
        tracing::warn!(
            revision,
            "NOSPACE: compacting the history to the current revision to free space"
        );
        let compacted = EtcdAdmin::first_answer(endpoints, access, async |admin| {
            admin.compact(revision).await
        })
        .await;
        match compacted {
            Ok(()) => {}
            // Compacted already (by auto-compaction, or a run before): fine.
            Err(error) if error.kind == EtcdErrorKind::Compacted => {}
            Err(error) => return Err(error.into()),
        }
        outcome.compacted_to = Some(revision);
    }
    for (index, step) in maintenance.defragment.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < MIN_STEP_TIME {
            outcome.deferred = maintenance.defragment[index..]
                .iter()
                .map(|d| d.member_id)
                .collect();
            tracing::warn!(deferred = ?outcome.deferred, ?left, "not enough time left in this invocation; the next run continues");
            break;
        }
        let reclaimed = defragment(settings, access, step, deadline).await?;
        outcome.defragmented.push(step.member_id);
        outcome.reclaimed_bytes += reclaimed;
    }
    if !maintenance.disarm.is_empty() && outcome.deferred.is_empty() {
        outcome.nospace_recovered =
            disarm(settings, access, endpoints, &maintenance.disarm).await?;
    }
    tracing::info!(?outcome, "maintenance finished");
    Ok(outcome)
}

/// Defragments one member (after handing its leadership away if it leads)
/// and waits for it to answer again; returns the bytes it gave back.
async fn defragment(
    settings: &MaintenanceSettings,
    access: &EtcdAccess,
    step: &Defragmentation,
    deadline: Instant,
) -> Result<i64, MaintenanceError> {
    let member = step.member_id.to_string();
    if let Some(successor) = step.hand_leadership_to {
        tracing::info!(%member, to = %successor, "the member to defragment leads: moving leadership first");
        EtcdAdmin::connect(&step.client_urls, access)
            .await?
            .move_leader(successor)
            .await?;
    }
    let before = status_of(&step.client_urls, access).await?;
    tracing::info!(%member, db_size = before.db_size, free_bytes = before.free_bytes(), "defragmenting");
    let started = Instant::now();
    // Bounded by the invocation too: etcd finishes a defragmentation it
    // started whatever becomes of the caller, but the caller must answer.
    let left = deadline.saturating_duration_since(Instant::now());
    let long = access.with_timeouts(EtcdTimeouts {
        connect: access.timeouts.connect,
        request: settings.defrag_timeout.min(left),
    });
    EtcdAdmin::connect(&step.client_urls, &long)
        .await?
        .defragment()
        .await?;
    let after = settle(settings, access, step, deadline).await?;
    let reclaimed = (before.db_size - after.db_size).max(0);
    tracing::info!(%member, took = ?started.elapsed(), db_size = after.db_size, reclaimed, "defragmented");
    Ok(reclaimed)
}

async fn status_of(urls: &[String], access: &EtcdAccess) -> Result<MemberStatus, EtcdError> {
    EtcdAdmin::connect(urls, access).await?.status().await
}

/// Waits until the defragmented member answers and knows a leader again:
/// the cluster must be whole before the next member goes offline.
async fn settle(
    settings: &MaintenanceSettings,
    access: &EtcdAccess,
    step: &Defragmentation,
    deadline: Instant,
) -> Result<MemberStatus, MaintenanceError> {
    let until = (Instant::now() + settings.settle_timeout).min(deadline);
    loop {
        match status_of(&step.client_urls, access).await {
            Ok(status) if status.leader_id.is_some() => return Ok(status),
            _ if Instant::now() >= until => {
                return Err(MaintenanceError::DidNotSettle {
                    member: step.member_id,
                    timeout: settings.settle_timeout,
                })
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Clears the NOSPACE alarms once every member is below the quota; returns
/// how many were cleared.
async fn disarm(
    settings: &MaintenanceSettings,
    access: &EtcdAccess,
    endpoints: &[String],
    alarms: &[Alarm],
) -> Result<usize, MaintenanceError> {
    let mut above = Vec::new();
    for (_, status) in EtcdAdmin::status_of_each(endpoints, access).await {
        let status = status?;
        if status.db_size >= settings.quota_bytes {
            above.push(status.member_id);
        }
    }
    if !above.is_empty() {
        above.sort_unstable();
        above.dedup();
        let error = MaintenanceError::StillAboveQuota {
            members: above,
            quota_bytes: settings.quota_bytes,
        };
        tracing::error!(%error, "NOSPACE not recovered");
        return Err(error);
    }
    for alarm in alarms {
        EtcdAdmin::first_answer(endpoints, access, async |admin| admin.disarm(*alarm).await)
            .await?;
        tracing::warn!(member = %alarm.member_id, "NOSPACE recovered: every member is below the quota again; alarm cleared, writes are accepted");
    }
    Ok(alarms.len())
}
