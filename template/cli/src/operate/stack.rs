//! Where a stack's parts are: its outputs, or flags that name them (for a
//! cluster deployed some other way, or a stand-in without CloudFormation).

use std::collections::HashMap;

use etcd_aws_template::names::outputs::{
    AUTO_SCALING_GROUP_NAME, BACKUP_BUCKET_NAME, BACKUP_FUNCTION_NAME, FUNCTION_LOG_GROUP_NAMES,
    LIFECYCLE_DEAD_LETTER_QUEUE_URL, LIFECYCLE_QUEUE_URL, ORDER_SIGNING_KEY_ARN,
};
use etcd_aws_template::names::BACKUP_PREFIX;

/// The flags every operator command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct StackFlags {
    /// The cluster's stack.
    #[arg(long, env = "ETCD_AWS_STACK_NAME", default_value = "etcd")]
    pub stack_name: String,
    /// The backup bucket, instead of the stack's BackupBucketName output.
    #[arg(long, env = "ETCD_BACKUP_BUCKET")]
    pub bucket: Option<String>,
    /// Key prefix of the backups in the bucket.
    #[arg(long, env = "ETCD_BACKUP_PREFIX", default_value = BACKUP_PREFIX)]
    pub prefix: String,
    /// The nodes' autoscaling group, instead of the AutoScalingGroupName output.
    #[arg(long, env = "ETCD_AWS_GROUP_NAME")]
    pub group_name: Option<String>,
    /// The backup function, instead of the BackupFunctionName output.
    #[arg(long, env = "ETCD_AWS_BACKUP_FUNCTION")]
    pub backup_function: Option<String>,
    /// The lifecycle queue's URL, instead of the LifecycleQueueUrl output.
    #[arg(long, env = "ETCD_AWS_LIFECYCLE_QUEUE_URL")]
    pub lifecycle_queue_url: Option<String>,
    /// The dead-letter queue's URL, instead of the LifecycleDeadLetterQueueUrl output.
    #[arg(long, env = "ETCD_AWS_DEAD_LETTER_QUEUE_URL")]
    pub dead_letter_queue_url: Option<String>,
    /// The functions' log groups (comma-separated), instead of the
    /// FunctionLogGroupNames output.
    #[arg(long, env = "ETCD_AWS_FUNCTION_LOG_GROUPS", value_delimiter = ',')]
    pub function_log_groups: Vec<String>,
    /// The KMS key that signs restore orders and start-empty permits (the
    /// stack's OrderSigningKeyArn output); only the stack's operators may
    /// sign with it.
    #[arg(long, env = etcd_aws_core::contract::names::env::ORDER_SIGNING_KEY)]
    pub order_signing_key: Option<String>,
}

/// The stack's parts the commands use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackParts {
    pub bucket: String,
    pub prefix: String,
    pub group_name: String,
    pub backup_function: String,
    pub lifecycle_queue_url: Option<String>,
    pub dead_letter_queue_url: Option<String>,
    /// Where the functions log; empty when not known (their errors are then
    /// not read).
    pub function_log_groups: Vec<String>,
    pub order_signing_key: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StackError {
    #[error("cannot read stack {stack}'s outputs: {message}; check the stack name (--stack-name) and region, or name the parts with --bucket, --group-name and --backup-function")]
    Describe { stack: String, message: String },
    #[error("stack {stack} has no {output} output (is it deployed by this version?); pass {flag}")]
    MissingOutput {
        stack: String,
        output: &'static str,
        flag: &'static str,
    },
    #[error("stack {stack} has no {ORDER_SIGNING_KEY_ARN} output (deployed by an earlier version? deploy it again), so this command cannot sign its instruction to the nodes; or pass --order-signing-key")]
    NoOrderSigningKey { stack: String },
}

impl StackFlags {
    /// True when the flags name everything required, so the stack need not be read.
    fn complete(&self) -> bool {
        self.bucket.is_some() && self.group_name.is_some() && self.backup_function.is_some()
    }

    /// The parts from the flags first, the outputs for the rest.
    pub fn parts_from(&self, outputs: &HashMap<String, String>) -> Result<StackParts, StackError> {
        let pick = |given: &Option<String>, output: &'static str, flag: &'static str| {
            given
                .clone()
                .or_else(|| outputs.get(output).cloned())
                .ok_or(StackError::MissingOutput {
                    stack: self.stack_name.clone(),
                    output,
                    flag,
                })
        };
        Ok(StackParts {
            bucket: pick(&self.bucket, BACKUP_BUCKET_NAME, "--bucket")?,
            prefix: self.prefix.clone(),
            group_name: pick(&self.group_name, AUTO_SCALING_GROUP_NAME, "--group-name")?,
            backup_function: pick(
                &self.backup_function,
                BACKUP_FUNCTION_NAME,
                "--backup-function",
            )?,
            lifecycle_queue_url: self
                .lifecycle_queue_url
                .clone()
                .or_else(|| outputs.get(LIFECYCLE_QUEUE_URL).cloned()),
            dead_letter_queue_url: self
                .dead_letter_queue_url
                .clone()
                .or_else(|| outputs.get(LIFECYCLE_DEAD_LETTER_QUEUE_URL).cloned()),
            order_signing_key: self
                .order_signing_key
                .clone()
                .or_else(|| outputs.get(ORDER_SIGNING_KEY_ARN).cloned()),
            function_log_groups: if self.function_log_groups.is_empty() {
                outputs
                    .get(FUNCTION_LOG_GROUP_NAMES)
                    .map(|names| {
                        names
                            .split(',')
                            .filter(|n| !n.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                self.function_log_groups.clone()
            },
        })
    }

    /// The key this stack's operators sign their instructions with.
    pub fn order_key(
        &self,
        config: &aws_config::SdkConfig,
        parts: &StackParts,
    ) -> Result<etcd_aws_io::aws::order_key::OrderKey, StackError> {
        let key =
            parts
                .order_signing_key
                .as_deref()
                .ok_or_else(|| StackError::NoOrderSigningKey {
                    stack: self.stack_name.clone(),
                })?;
        Ok(etcd_aws_io::aws::order_key::OrderKey::new(config, key))
    }

    pub async fn resolve(&self, config: &aws_config::SdkConfig) -> Result<StackParts, StackError> {
        if self.complete() {
            return self.parts_from(&HashMap::new());
        }
        let client = aws_sdk_cloudformation::Client::new(config);
        let described = client
            .describe_stacks()
            .stack_name(&self.stack_name)
            .send()
            .await
            .map_err(|e| StackError::Describe {
                stack: self.stack_name.clone(),
                message: etcd_aws_io::aws::error::read(&e).summary,
            })?;
        let outputs: HashMap<String, String> = described
            .stacks()
            .iter()
            .flat_map(|s| s.outputs())
            .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
            .collect();
        self.parts_from(&outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> StackFlags {
        StackFlags {
            stack_name: "prod".into(),
            bucket: None,
            prefix: BACKUP_PREFIX.into(),
            group_name: None,
            backup_function: None,
            lifecycle_queue_url: None,
            dead_letter_queue_url: None,
            function_log_groups: vec![],
            order_signing_key: None,
        }
    }

    fn outputs() -> HashMap<String, String> {
        [
            (BACKUP_BUCKET_NAME, "prod-backups"),
            (AUTO_SCALING_GROUP_NAME, "prod-etcd"),
            (BACKUP_FUNCTION_NAME, "prod-backup"),
            (LIFECYCLE_QUEUE_URL, "https://sqs/q"),
            (ORDER_SIGNING_KEY_ARN, "arn:aws:kms:eu-west-1:1:key/k"),
            (
                FUNCTION_LOG_GROUP_NAMES,
                "prod-LifecycleLogs,prod-BackupLogs",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn the_stacks_outputs_name_the_parts() {
        let parts = flags().parts_from(&outputs()).expect("complete");
        assert_eq!(parts.bucket, "prod-backups");
        assert_eq!(parts.group_name, "prod-etcd");
        assert_eq!(parts.backup_function, "prod-backup");
        assert_eq!(parts.lifecycle_queue_url.as_deref(), Some("https://sqs/q"));
        assert_eq!(parts.dead_letter_queue_url, None);
        assert_eq!(
            parts.order_signing_key.as_deref(),
            Some("arn:aws:kms:eu-west-1:1:key/k")
        );
        assert_eq!(
            parts.function_log_groups,
            vec!["prod-LifecycleLogs", "prod-BackupLogs"]
        );
    }

    #[test]
    fn a_stack_without_an_order_signing_key_says_to_deploy_again() {
        let mut outputs = outputs();
        outputs.remove(ORDER_SIGNING_KEY_ARN);
        let parts = flags().parts_from(&outputs).expect("complete");
        let config = aws_config::SdkConfig::builder().build();
        let error = flags().order_key(&config, &parts).expect_err("no key");
        assert_eq!(
            error,
            StackError::NoOrderSigningKey {
                stack: "prod".into()
            }
        );
    }

    #[test]
    fn named_log_groups_win_over_the_output() {
        let mut flags = flags();
        flags.function_log_groups = vec!["/aws/lambda/etcd-backup".into()];
        assert_eq!(
            flags
                .parts_from(&outputs())
                .expect("complete")
                .function_log_groups,
            vec!["/aws/lambda/etcd-backup"]
        );
    }

    #[test]
    fn a_flag_wins_over_the_output() {
        let mut flags = flags();
        flags.bucket = Some("elsewhere".into());
        assert_eq!(
            flags.parts_from(&outputs()).expect("complete").bucket,
            "elsewhere"
        );
    }

    #[test]
    fn a_missing_output_names_the_flag_that_replaces_it() {
        let mut outputs = outputs();
        outputs.remove(BACKUP_FUNCTION_NAME);
        assert_eq!(
            flags().parts_from(&outputs),
            Err(StackError::MissingOutput {
                stack: "prod".into(),
                output: BACKUP_FUNCTION_NAME,
                flag: "--backup-function",
            })
        );
    }

    #[test]
    fn flags_naming_every_required_part_need_no_stack() {
        let mut flags = flags();
        assert!(!flags.complete());
        flags.bucket = Some("b".into());
        flags.group_name = Some("g".into());
        flags.backup_function = Some("f".into());
        assert!(flags.complete());
    }
}
