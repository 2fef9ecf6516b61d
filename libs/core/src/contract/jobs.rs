//! The jobs the backup function runs and what each answers: the one
//! definition the function, its schedules (the template), the operator's
//! commands and the tests share.
//!
//! A job is asked for by the invocation's payload: `{"job": "backup"}`,
//! `"maintenance"`, `"capture"` or `"status"`. A payload without a `job`
//! field is a backup, so the backup schedule's plain EventBridge event (and a
//! manual invoke with `{}`) takes one. The lifecycle function's scheduled
//! input is [`RECONCILE_PAYLOAD`].

use crate::etcd::ids::{ClusterId, MemberId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contract::cluster_report::ClusterReport;

/// What an invocation of the backup function asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    /// A snapshot now, unless the revision is backed up already and young
    /// ([`BackupAnswer`]).
    Backup,
    /// etcd's health metrics, defragmentation, NOSPACE recovery
    /// ([`MaintenanceAnswer`]).
    Maintenance,
    /// The continuous backup: watch and flush every change for a while
    /// ([`CaptureAnswer`]).
    Capture,
    /// What the function sees of the cluster, for the operator ([`ClusterReport`]).
    Status,
}

/// The payload's `job` field names no job this release runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown job {0}: expected \"backup\", \"maintenance\", \"capture\" or \"status\" (or no \"job\" field, for a backup)"
)]
pub struct UnknownJob(pub String);

#[derive(Serialize)]
struct Request {
    job: Job,
}

impl Job {
    pub const ALL: [Job; 4] = [Job::Backup, Job::Maintenance, Job::Capture, Job::Status];

    /// The payload that asks for this job.
    pub fn payload(self) -> Value {
        serde_json::to_value(Request { job: self }).unwrap_or(Value::Null)
    }

    /// The job `payload` asks for. A payload without a `job` field (or with a
    /// null one) is a backup; an unknown job is refused rather than taken for one.
    pub fn of_payload(payload: &Value) -> Result<Job, UnknownJob> {
        match payload.get("job") {
            None | Some(Value::Null) => Ok(Job::Backup),
            Some(job) => {
                serde_json::from_value(job.clone()).map_err(|_| UnknownJob(job.to_string()))
            }
        }
    }

    /// The job's name in the payload.
    pub fn as_str(self) -> &'static str {
        match self {
            Job::Backup => "backup",
            Job::Maintenance => "maintenance",
            Job::Capture => "capture",
            Job::Status => "status",
        }
    }
}

impl std::fmt::Display for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The lifecycle function's scheduled input: reconcile the members against
/// the group instead of handling a queue message.
pub const RECONCILE_PAYLOAD: &str = r#"{"reconcile": true}"#;

/// What a backup job answers once the backup is stored (or found current).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupAnswer {
    /// False when the revision was backed up already and that backup is young.
    pub uploaded: bool,
    /// The snapshot's object key.
    pub key: String,
    pub revision: i64,
    pub stored_bytes: u64,
    /// The client URL of the member the snapshot was read from.
    pub member: String,
    /// Snapshots retention deleted in the same run, oldest first.
    #[serde(default)]
    pub deleted: Vec<String>,
}

/// What a capture run answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureAnswer {
    /// The cluster whose changes were captured.
    pub cluster_id: ClusterId,
    /// The last revision stored when the run started, and when it ended.
    pub after: i64,
    pub until: i64,
    pub segments: usize,
    pub revisions: usize,
    /// History compacted before it was stored, each closed by a snapshot.
    pub gaps: usize,
    /// Keys of the snapshots the run took or found current.
    pub snapshots: Vec<String>,
    /// The longest a captured change waited for its flush: what a total loss
    /// during the run would have lost.
    pub loss_window_seconds: f64,
}

/// What a maintenance run answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceAnswer {
    /// Why nothing was done although something was due.
    pub waited: Option<String>,
    pub backed_up: bool,
    pub compacted_to: Option<i64>,
    /// The members defragmented, in order.
    pub defragmented: Vec<MemberId>,
    pub reclaimed_bytes: i64,
    /// Members left for the next run because the invocation ran out of time.
    pub deferred: Vec<MemberId>,
    pub nospace_recovered: usize,
}

/// A status job answers with the cluster as the function sees it.
pub type StatusAnswer = ClusterReport;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_job_reads_back_from_its_own_payload() {
        for job in Job::ALL {
            assert_eq!(Job::of_payload(&job.payload()), Ok(job), "{job}");
            assert_eq!(job.payload(), json!({ "job": job.as_str() }));
        }
    }

    #[test]
    fn a_scheduled_event_or_an_empty_payload_is_a_backup() {
        let scheduled = json!({"source": "aws.events", "detail-type": "Scheduled Event"});
        assert_eq!(Job::of_payload(&scheduled), Ok(Job::Backup));
        assert_eq!(Job::of_payload(&json!({})), Ok(Job::Backup));
        assert_eq!(Job::of_payload(&json!({"job": null})), Ok(Job::Backup));
    }

    #[test]
    fn an_unknown_job_is_refused_rather_than_taken_for_a_backup() {
        assert_eq!(
            Job::of_payload(&json!({"job": "defrag"})),
            Err(UnknownJob("\"defrag\"".into()))
        );
        assert_eq!(
            Job::of_payload(&json!({"job": 3})),
            Err(UnknownJob("3".into()))
        );
    }

    #[test]
    fn the_reconcile_payload_is_json() {
        let payload: Value = serde_json::from_str(RECONCILE_PAYLOAD).unwrap_or(Value::Null);
        assert_eq!(payload, json!({"reconcile": true}));
    }

    #[test]
    fn a_backup_answer_of_a_function_without_the_deleted_list_still_reads() {
        let older = json!({"uploaded": true, "key": "k", "revision": 4, "stored_bytes": 10, "member": "https://10.0.0.1:2379"});
        let answer: BackupAnswer = serde_json::from_value(older).expect("reads");
        assert!(answer.deleted.is_empty());
    }
}
