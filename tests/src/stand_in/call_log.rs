//! Every AWS call the proxy received, and who made it. Each program under test
//! signs with its own access key id (moto accepts any), so a call names its
//! caller the way an IAM principal would on AWS.

use std::sync::{Arc, Mutex, MutexGuard};

/// Who signs a call: one identity per program, as each has its own IAM role
/// in a deployed stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Caller {
    /// The `etcd-aws` agent on every instance (the node role).
    Node,
    /// The lifecycle function's code (its execution role).
    LifecycleFunction,
    /// Lambda's SQS event source polling the hook's queue for the lifecycle
    /// function, which it does with that function's execution role.
    LifecycleEventSource,
    /// The backup function's code on the backup schedule and for the
    /// operator's commands (its execution role).
    BackupFunction,
    /// The same code as the maintenance function, under that function's role.
    MaintenanceFunction,
    /// The same code as the capture function, under that function's role.
    CaptureFunction,
    /// The tests themselves: setup, checks, planted objects.
    Harness,
}

impl Caller {
    pub const ALL: [Caller; 7] = [
        Caller::Node,
        Caller::LifecycleFunction,
        Caller::LifecycleEventSource,
        Caller::BackupFunction,
        Caller::MaintenanceFunction,
        Caller::CaptureFunction,
        Caller::Harness,
    ];

    pub fn access_key_id(self) -> &'static str {
        match self {
            Caller::Node => "node-agent",
            Caller::LifecycleFunction => "lifecycle-function",
            Caller::LifecycleEventSource => "lifecycle-event-source",
            Caller::BackupFunction => "backup-function",
            Caller::MaintenanceFunction => "maintenance-function",
            Caller::CaptureFunction => "capture-function",
            Caller::Harness => "test",
        }
    }

    /// The caller that signs with `access_key_id`, if it is one of ours.
    pub fn from_access_key_id(access_key_id: &str) -> Option<Caller> {
        Caller::ALL
            .into_iter()
            .find(|caller| caller.access_key_id() == access_key_id)
    }
}

/// One call as the proxy received it (faults and all: the program made it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordedCall {
    /// The signing access key id; `Caller::from_access_key_id` names it.
    pub access_key_id: String,
    /// The SigV4 service: "autoscaling", "ec2", "s3", "secretsmanager", "sqs".
    pub service: String,
    /// The API operation as AWS spells it: "DescribeInstances", "UploadPart".
    pub operation: String,
    /// For S3, the bucket and key the call named ("bucket/key", or "bucket"
    /// for a bucket-level call), which a policy's resources are matched with.
    pub s3_path: Option<String>,
}

impl RecordedCall {
    pub fn caller(&self) -> Option<Caller> {
        Caller::from_access_key_id(&self.access_key_id)
    }
}

/// Shared between the proxy, which appends, and the stand-in, which reads.
#[derive(Debug, Clone, Default)]
pub struct CallLog {
    calls: Arc<Mutex<Vec<RecordedCall>>>,
}

impl CallLog {
    pub fn record(&self, call: RecordedCall) {
        self.lock().push(call);
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<RecordedCall>> {
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_caller_has_its_own_access_key_id() {
        let mut ids: Vec<&str> = Caller::ALL.iter().map(|c| c.access_key_id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), Caller::ALL.len());
        for caller in Caller::ALL {
            assert_eq!(
                Caller::from_access_key_id(caller.access_key_id()),
                Some(caller)
            );
        }
    }

    #[test]
    fn an_unknown_access_key_id_names_no_caller() {
        assert_eq!(Caller::from_access_key_id("AKIAEXAMPLE"), None);
    }
}
