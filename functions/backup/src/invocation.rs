//! Which job an invocation asks for: a backup (the backup schedule's events,
//! a manual invoke with `{}`), maintenance (the maintenance schedule's
//! constant input `{"job": "maintenance"}`), the continuous backup's
//! capture (`{"job": "capture"}`), or the operator's status report
//! (`{"job": "status"}`).

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Backup,
    Maintenance,
    Capture,
    Status,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown job {0:?}: expected \"backup\", \"maintenance\", \"capture\" or \"status\" (or no \"job\" field, for a backup)"
)]
pub struct UnknownJob(pub String);

pub fn job(payload: &Value) -> Result<Job, UnknownJob> {
    match payload.get("job") {
        None | Some(Value::Null) => Ok(Job::Backup),
        Some(Value::String(job)) if job == "backup" => Ok(Job::Backup),
        Some(Value::String(job)) if job == "maintenance" => Ok(Job::Maintenance),
        Some(Value::String(job)) if job == "capture" => Ok(Job::Capture),
        Some(Value::String(job)) if job == "status" => Ok(Job::Status),
        Some(other) => Err(UnknownJob(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_scheduled_event_or_an_empty_payload_is_a_backup() {
        let scheduled = json!({"source": "aws.events", "detail-type": "Scheduled Event"});
        assert_eq!(job(&scheduled), Ok(Job::Backup));
        assert_eq!(job(&json!({})), Ok(Job::Backup));
        assert_eq!(job(&json!({"job": "backup"})), Ok(Job::Backup));
    }

    #[test]
    fn the_maintenance_schedules_input_is_maintenance() {
        assert_eq!(job(&json!({"job": "maintenance"})), Ok(Job::Maintenance));
        let scheduled: Value =
            serde_json::from_str(etcd_aws_cluster::names::MAINTENANCE_EVENT).expect("JSON");
        assert_eq!(job(&scheduled), Ok(Job::Maintenance));
    }

    #[test]
    fn the_capture_schedules_input_is_a_capture() {
        let scheduled: Value =
            serde_json::from_str(etcd_aws_cluster::names::CAPTURE_EVENT).expect("JSON");
        assert_eq!(job(&scheduled), Ok(Job::Capture));
    }

    #[test]
    fn the_operators_status_command_asks_for_a_status() {
        assert_eq!(job(&json!({"job": "status"})), Ok(Job::Status));
    }

    #[test]
    fn an_unknown_job_is_refused_rather_than_taken_for_a_backup() {
        assert_eq!(
            job(&json!({"job": "defrag"})),
            Err(UnknownJob("\"defrag\"".into()))
        );
    }
}
