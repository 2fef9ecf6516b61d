//! The backup function, invoked the way Lambda runs it: for a backup now,
//! and for what the cluster looks like from inside the VPC.

use aws_sdk_lambda::primitives::Blob;
use etcd_aws_core::contract::jobs::{BackupAnswer, Job, StatusAnswer};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("cannot invoke function {function}: {message}; check --backup-function (or the stack's BackupFunctionName output) and that your credentials may lambda:InvokeFunction it")]
    Invoke { function: String, message: String },
    #[error("function {function} failed its {job} job: {message}; its CloudWatch Logs say more")]
    Failed {
        function: String,
        job: Job,
        message: String,
    },
    #[error("function {function} answered its {job} job with something this command does not read ({reason}); is the function of this version?")]
    Answer {
        function: String,
        job: Job,
        reason: String,
    },
}

pub struct BackupFunction {
    client: aws_sdk_lambda::Client,
    name: String,
}

impl BackupFunction {
    pub fn new(config: &aws_config::SdkConfig, name: &str) -> Self {
        Self {
            client: aws_sdk_lambda::Client::new(config),
            name: name.to_owned(),
        }
    }

    /// A backup now; the function's answer once it is stored.
    pub async fn backup(&self) -> Result<BackupAnswer, InvokeError> {
        self.job(Job::Backup).await
    }

    /// The cluster as the function sees it.
    pub async fn status(&self) -> Result<StatusAnswer, InvokeError> {
        self.job(Job::Status).await
    }

    async fn job<T: serde::de::DeserializeOwned>(&self, job: Job) -> Result<T, InvokeError> {
        let answer = self
            .client
            .invoke()
            .function_name(&self.name)
            .payload(Blob::new(job.payload().to_string()))
            .send()
            .await
            .map_err(|e| InvokeError::Invoke {
                function: self.name.clone(),
                message: etcd_aws_io::aws::error::read(&e).summary,
            })?;
        let body = answer.payload().map(|b| b.as_ref()).unwrap_or_default();
        if answer.function_error().is_some() {
            return Err(InvokeError::Failed {
                function: self.name.clone(),
                job,
                message: error_message(body),
            });
        }
        serde_json::from_slice(body).map_err(|e| InvokeError::Answer {
            function: self.name.clone(),
            job,
            reason: e.to_string(),
        })
    }
}

/// Lambda's error answer is `{"errorType": ..., "errorMessage": ...}`.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("errorMessage")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_functions_error_answer_gives_its_message() {
        let body = br#"{"errorType":"&str","errorMessage":"Backup failed: no member answered"}"#;
        assert_eq!(error_message(body), "Backup failed: no member answered");
    }

    #[test]
    fn an_error_answer_of_another_shape_is_given_whole() {
        assert_eq!(error_message(b"Task timed out"), "Task timed out");
    }
}
