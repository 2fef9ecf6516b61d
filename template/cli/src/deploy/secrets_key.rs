//! Which KMS key encrypts a stack's secrets when the deploy is not told one:
//! a key of the stack's own, `alias/etcd-aws/<stack>/secrets`, made before the
//! secrets as they are made before the stack, whose key policy
//! ([`secrets_key_policy`]) lets only the stack's roles and the operators use
//! it. Secrets that exist already keep the key they have: re-encrypting them
//! is an operator's decision (`aws secretsmanager update-secret --kms-key-id`).

use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::Client as Kms;
use etcd_aws_io::aws::error::{self as aws_error, AwsErrorKind};
use etcd_aws_template::options::SecretsKey;
use etcd_aws_template::tls_secrets::{secrets_key_policy, KeyHome};

#[derive(Debug, thiserror::Error)]
pub enum SecretsKeyError {
    #[error(
        "access denied to the stack's secrets key {alias} ({operation}); the deploying identity \
         needs kms:CreateKey, kms:CreateAlias, kms:DescribeKey, kms:PutKeyPolicy and \
         kms:TagResource, or pass --kms-key-id with a key of your own"
    )]
    AccessDenied {
        alias: String,
        operation: &'static str,
    },
    #[error("KMS {operation} on {alias} failed: {message}")]
    Api {
        operation: &'static str,
        alias: String,
        message: String,
    },
    #[error("cannot tell which account the deploy runs in (STS GetCallerIdentity): {0}")]
    Identity(String),
}

/// The alias of a stack's own secrets key.
pub fn alias(stack: &str) -> String {
    format!("alias/etcd-aws/{stack}/secrets")
}

/// Why the deploy uses the key it uses, for its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chosen {
    /// The stack's own key, made now or by an earlier deploy.
    StackKey(String),
    /// No operators named: a key only they could use would lock out the
    /// deploy itself, so the AWS managed key.
    NoOperators,
}

/// The stack's own key: found by its alias (its policy put again, so the
/// operators named now are the ones who may use it), or made with it.
pub async fn ensure(
    config: &aws_config::SdkConfig,
    stack: &str,
    operators: &[String],
) -> Result<(SecretsKey, Chosen), SecretsKeyError> {
    if operators.is_empty() {
        tracing::warn!(
            "no --operator-role-arns: the secrets use the AWS managed key aws/secretsmanager, \
             which every role of the account may use through Secrets Manager; deploy with \
             --operator-role-arns for a key of the stack's own"
        );
        return Ok((SecretsKey::AwsManaged, Chosen::NoOperators));
    }
    let alias = alias(stack);
    let home = home(config).await?;
    let policy = secrets_key_policy(&home, stack, operators).to_string();
    let kms = Kms::new(config);
    let arn = match kms.describe_key().key_id(&alias).send().await {
        Ok(described) => {
            let arn = described
                .key_metadata()
                .and_then(|m| m.arn())
                .unwrap_or_default()
                .to_owned();
            kms.put_key_policy()
                .key_id(&arn)
                .policy_name("default")
                .policy(&policy)
                .send()
                .await
                .map_err(|e| classify("PutKeyPolicy", &alias, &e))?;
            tracing::info!(key = %arn, %alias, "the stack's secrets key is {alias}; its policy names the operators given now");
            arn
        }
        Err(error) if aws_error::read(&error).kind == AwsErrorKind::NotFound => {
            let created = kms
                .create_key()
                .description(format!(
                    "etcd-aws {stack}: encrypts the cluster CA and the functions' certificate; only the stack's roles and its operators may use it"
                ))
                .policy(&policy)
                .tags(
                    aws_sdk_kms::types::Tag::builder()
                        .tag_key(etcd_aws_template::names::secrets::STACK_TAG)
                        .tag_value(stack)
                        .build()
                        .map_err(|e| SecretsKeyError::Api {
                            operation: "CreateKey",
                            alias: alias.clone(),
                            message: e.to_string(),
                        })?,
                )
                .send()
                .await
                .map_err(|e| classify("CreateKey", &alias, &e))?;
            let arn = created
                .key_metadata()
                .and_then(|m| m.arn())
                .unwrap_or_default()
                .to_owned();
            kms.create_alias()
                .alias_name(&alias)
                .target_key_id(&arn)
                .send()
                .await
                .map_err(|e| classify("CreateAlias", &alias, &e))?;
            tracing::info!(key = %arn, %alias, "created the stack's secrets key {alias}");
            arn
        }
        Err(error) => return Err(classify("DescribeKey", &alias, &error)),
    };
    Ok((SecretsKey::Customer(arn.clone()), Chosen::StackKey(arn)))
}

/// Whether `key` (an ARN) is the stack's own secrets key.
pub async fn is_stack_key(
    config: &aws_config::SdkConfig,
    stack: &str,
    key: &str,
) -> Result<bool, SecretsKeyError> {
    let alias = alias(stack);
    match Kms::new(config).describe_key().key_id(&alias).send().await {
        Ok(described) => Ok(described.key_metadata().is_some_and(|m| {
            m.arn() == Some(key) || key.ends_with(&format!("key/{}", m.key_id()))
        })),
        Err(error) if aws_error::read(&error).kind == AwsErrorKind::NotFound => Ok(false),
        Err(error) => Err(classify("DescribeKey", &alias, &error)),
    }
}

async fn home(config: &aws_config::SdkConfig) -> Result<KeyHome, SecretsKeyError> {
    let identity = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| SecretsKeyError::Identity(aws_error::read(&e).summary))?;
    let caller = identity.arn().unwrap_or_default();
    // arn:<partition>:sts::<account>:assumed-role/...
    let partition = caller.split(':').nth(1).unwrap_or("aws").to_owned();
    Ok(KeyHome {
        partition,
        account: identity
            .account()
            .ok_or_else(|| SecretsKeyError::Identity("the answer named no account".into()))?
            .to_owned(),
        region: config
            .region()
            .map(ToString::to_string)
            .ok_or_else(|| SecretsKeyError::Identity("no region is configured".into()))?,
    })
}

fn classify<E>(
    operation: &'static str,
    alias: &str,
    error: &aws_sdk_kms::error::SdkError<E, HttpResponse>,
) -> SecretsKeyError
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let read = aws_error::read(error);
    match read.kind {
        AwsErrorKind::AccessDenied => SecretsKeyError::AccessDenied {
            alias: alias.to_owned(),
            operation,
        },
        _ => SecretsKeyError::Api {
            operation,
            alias: alias.to_owned(),
            message: read.summary,
        },
    }
}
