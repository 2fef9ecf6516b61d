//! The cluster's two secrets, made before the stack: the CA, and the functions' client
//! certificate issued from it.
//!
//! They exist before the stack because the autoscaling group's creation policy waits
//! for every node to become a healthy member, and a node needs the CA to issue itself
//! a certificate and start. Each deploy makes sure both are there and creates only what
//! is missing: replacing an existing CA would leave the running nodes with certificates
//! the new ones do not trust, splitting the cluster.

use std::time::{Duration, SystemTime};

use aws_sdk_secretsmanager::Client;
use etcd_aws_core::certificates::functions;
use etcd_aws_io::aws::error::{self as aws_error, AwsErrorKind};
use etcd_aws_io::tls::authority::{AuthorityError, ValidityPeriod};
use etcd_aws_io::tls::{ClusterCa, NewSecret, SecretStore, SecretStoreError, TlsCredentials};

use etcd_aws_template::names::secrets;
use etcd_aws_template::options::SecretsKey;
use etcd_aws_template::tls_secrets::{resource_policy, ClusterSecret};

/// How long the CA is valid. Replacing it means re-issuing every certificate at once,
/// so it outlives any cluster we expect to run.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);
/// A deploy re-issues the functions' certificate when it expires sooner than this (the
/// nodes renew it long before; this covers a stack whose nodes could not).
pub const FUNCTIONS_CERTIFICATE_RENEWAL: Duration = Duration::from_secs(30 * 86_400);

#[derive(Debug, thiserror::Error)]
pub enum ClusterSecretsError {
    #[error(
        "access denied to secret {secret} ({operation}); the deploying identity needs \
         secretsmanager:DescribeSecret, CreateSecret, TagResource, GetSecretValue, \
         PutSecretValue and PutResourcePolicy on etcd-aws/{stack}/* (and kms:GenerateDataKey \
         and kms:Decrypt on a customer managed key), and must be one of --operator-role-arns \
         once the secret's resource policy is in place"
    )]
    AccessDenied {
        secret: String,
        stack: String,
        operation: &'static str,
    },
    #[error(
        "secret {secret} is scheduled for deletion; restore it with `aws secretsmanager \
         restore-secret --secret-id {secret}` and deploy again (a new CA would split the cluster \
         from its running nodes)"
    )]
    PendingDeletion { secret: String },
    #[error(
        "secret {secret} is encrypted with KMS key {actual}, but --kms-key-id is {wanted}; pass \
         the secret's key (as an ARN), or re-encrypt the secret first with `aws secretsmanager \
         update-secret --secret-id {secret} --kms-key-id ...`"
    )]
    KeyMismatch {
        secret: String,
        actual: String,
        wanted: String,
    },
    #[error("Secrets Manager {operation} on {secret} failed: {message}")]
    Api {
        operation: &'static str,
        secret: String,
        message: String,
    },
    #[error("cannot create {what}: {source}")]
    Authority {
        what: String,
        source: AuthorityError,
    },
    #[error(transparent)]
    Store(#[from] SecretStoreError),
}

/// Where the secrets are, for the template's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSecrets {
    pub ca_arn: String,
    pub functions_client_arn: String,
}

/// What [`ensure`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    AlreadyPresent,
    Reissued,
}

/// The settings of [`ensure`].
#[derive(Debug, Clone)]
pub struct SecretsSettings {
    pub stack: String,
    pub key: SecretsKey,
    /// Issue a new functions' certificate even when the current one is good.
    pub reissue_functions_certificate: bool,
    /// The operators' role ARNs, which the secrets' resource policies let
    /// read and replace them besides the stack's own roles.
    pub operators: Vec<String>,
}

/// Makes sure both secrets exist and hold a value, creating only what is missing.
pub async fn ensure(
    config: &aws_config::SdkConfig,
    settings: &SecretsSettings,
) -> Result<ClusterSecrets, ClusterSecretsError> {
    let client = Client::new(config);
    let store = SecretStore::new(config);
    let stack = settings.stack.as_str();

    let ca_arn = ensure_secret(
        &client,
        &store,
        settings,
        &secrets::cluster_ca(stack),
        "etcd-aws cluster CA (certificate and key); only the etcd nodes may read it",
    )
    .await?;
    let (ca, _) = ensure_ca(&store, stack, &ca_arn).await?;

    let functions_client_arn = ensure_secret(
        &client,
        &store,
        settings,
        &secrets::functions_client(stack),
        "etcd-aws client certificate of the lifecycle and backup functions",
    )
    .await?;
    match store.load_ca_state(&ca_arn).await?.rotation {
        // The rotation keeps the functions' certificate on the CAs the
        // members trust at each stage; a deploy in between must not undo it.
        Some(rotation) => tracing::warn!(
            secret = %functions_client_arn,
            rotation = %rotation.id,
            stage = %rotation.stage,
            "a CA rotation is under way: leaving the functions' certificate to `etcd-aws-cfn rotate-ca`; run it to finish the rotation"
        ),
        None => {
            ensure_functions_certificate(
                &store,
                &ca,
                &functions_client_arn,
                settings.reissue_functions_certificate,
            )
            .await?;
        }
    }
    guard(&store, settings, &ca_arn, ClusterSecret::Ca).await?;
    guard(
        &store,
        settings,
        &functions_client_arn,
        ClusterSecret::FunctionsClient,
    )
    .await?;
    Ok(ClusterSecrets {
        ca_arn,
        functions_client_arn,
    })
}

/// Puts the resource policy that refuses `secret`'s value to all but the
/// stack's roles that need it and the operators; every deploy, so a policy
/// changed by hand or a new operator list takes effect. Last, after this
/// deploy's own reads and writes: an identity that is no operator could
/// not read the CA afterwards.
async fn guard(
    store: &SecretStore,
    settings: &SecretsSettings,
    secret: &str,
    which: ClusterSecret,
) -> Result<(), ClusterSecretsError> {
    if settings.operators.is_empty() {
        tracing::warn!(
            secret,
            "no --operator-role-arns: secret {secret} gets no resource policy, so any identity \
             of the account allowed secretsmanager:GetSecretValue reads it; deploy with \
             --operator-role-arns to guard it"
        );
        return Ok(());
    }
    let policy = resource_policy(&settings.stack, which, &settings.operators);
    match store.put_policy(secret, &policy.to_string()).await {
        Ok(()) => {
            tracing::info!(
                secret,
                "secret {secret}: only the stack's roles that need it and the operators may read it"
            );
            Ok(())
        }
        Err(SecretStoreError::AccessDenied { operation, .. }) => {
            Err(ClusterSecretsError::AccessDenied {
                secret: secret.to_string(),
                stack: settings.stack.clone(),
                operation,
            })
        }
        Err(error) => Err(error.into()),
    }
}

/// The CA in `secret`, generated and stored when the secret holds none yet.
pub async fn ensure_ca(
    store: &SecretStore,
    stack: &str,
    secret: &str,
) -> Result<(ClusterCa, Action), ClusterSecretsError> {
    match store.load_ca(secret).await {
        Ok(ca) => {
            tracing::info!(secret, "cluster CA already present in {secret}");
            Ok((ca, Action::AlreadyPresent))
        }
        // NotFound: the secret exists (we just described or made it) but has no value.
        Err(SecretStoreError::NotInitialised { .. } | SecretStoreError::NotFound { .. }) => {
            let ca = ClusterCa::generate(stack, ValidityPeriod::starting_now(CA_VALIDITY))
                .map_err(|source| ClusterSecretsError::Authority {
                    what: format!("the cluster CA of stack {stack}"),
                    source,
                })?;
            store.store_ca(secret, &ca).await?;
            tracing::info!(secret, "created cluster CA in secret {secret}");
            Ok((ca, Action::Created))
        }
        Err(error) => Err(error.into()),
    }
}

/// Why the functions' current certificate must be replaced, if it must.
fn replacement_reason(current: &TlsCredentials, ca: &ClusterCa, now: SystemTime) -> Option<String> {
    if current.ca_pem != ca.cert_pem() {
        return Some("it names a different CA than the cluster's".to_string());
    }
    match current.check("the functions' client certificate", now) {
        Err(error) => Some(error.to_string()),
        Ok(info) if info.not_after < now + FUNCTIONS_CERTIFICATE_RENEWAL => Some(format!(
            "it expires at {}, within {} days",
            humantime::format_rfc3339_seconds(info.not_after),
            FUNCTIONS_CERTIFICATE_RENEWAL.as_secs() / 86_400
        )),
        Ok(_) => None,
    }
}

/// The functions' certificate in `secret`, issued when it is missing, about to expire,
/// not from `ca`, or `reissue` asks for it. The CA's key never goes into this secret.
pub async fn ensure_functions_certificate(
    store: &SecretStore,
    ca: &ClusterCa,
    secret: &str,
    reissue: bool,
) -> Result<Action, ClusterSecretsError> {
    let (action, reason) = match store.load_client(secret).await {
        Ok(current) => match replacement_reason(&current, ca, SystemTime::now()) {
            None if !reissue => {
                tracing::info!(
                    secret,
                    "functions' client certificate already present in {secret}"
                );
                return Ok(Action::AlreadyPresent);
            }
            None => (
                Action::Reissued,
                "--reissue-functions-certificate".to_string(),
            ),
            Some(reason) => (Action::Reissued, reason),
        },
        Err(SecretStoreError::NotInitialised { .. } | SecretStoreError::NotFound { .. }) => {
            (Action::Created, String::new())
        }
        // Damaged: nothing of value to keep, and the functions cannot use it either.
        Err(SecretStoreError::Malformed { reason, .. }) => (Action::Reissued, reason),
        Err(error) => return Err(error.into()),
    };
    let issued = ca
        .issue_client(
            functions::CLIENT_NAME,
            ValidityPeriod::starting_now(functions::VALIDITY),
        )
        .map_err(|source| ClusterSecretsError::Authority {
            what: "the functions' client certificate".to_string(),
            source,
        })?;
    store
        .store_client(secret, &TlsCredentials::issued_by(ca, issued))
        .await?;
    match action {
        Action::Created => tracing::info!(
            secret,
            "issued the functions' client certificate into secret {secret}"
        ),
        _ => tracing::info!(
            secret,
            "re-issued the functions' client certificate in secret {secret} ({reason}); \
             running functions read it again within the hour"
        ),
    }
    Ok(action)
}

/// The ARN of the secret `name`, created (with the key, the stack tag and a
/// placeholder value) when it does not exist.
async fn ensure_secret(
    client: &Client,
    store: &SecretStore,
    settings: &SecretsSettings,
    name: &str,
    description: &str,
) -> Result<String, ClusterSecretsError> {
    if let Some(arn) = existing_secret(client, settings, name).await? {
        return Ok(arn);
    }
    let new = NewSecret {
        name,
        description,
        kms_key_arn: settings.key.customer_arn(),
        tags: &[(secrets::STACK_TAG, settings.stack.as_str())],
    };
    match store.create(&new).await {
        Ok(arn) => {
            tracing::info!(secret = name, key = %settings.key, "created secret {name}");
            Ok(arn)
        }
        // Another deploy made it meanwhile: use theirs.
        Err(SecretStoreError::AlreadyExists { .. }) => existing_secret(client, settings, name)
            .await?
            .ok_or_else(|| ClusterSecretsError::Api {
                operation: "DescribeSecret",
                secret: name.to_string(),
                message: "CreateSecret said it exists, DescribeSecret that it does not".to_string(),
            }),
        Err(SecretStoreError::AccessDenied { operation, .. }) => {
            Err(ClusterSecretsError::AccessDenied {
                secret: name.to_string(),
                stack: settings.stack.clone(),
                operation,
            })
        }
        Err(error) => Err(error.into()),
    }
}

/// The key that encrypts the stack's CA secret, if the secret exists: a
/// deploy not told a key keeps it.
pub async fn current_key(
    config: &aws_config::SdkConfig,
    stack: &str,
) -> Result<Option<SecretsKey>, ClusterSecretsError> {
    let name = secrets::cluster_ca(stack);
    match Client::new(config)
        .describe_secret()
        .secret_id(&name)
        .send()
        .await
    {
        Ok(described) => Ok(Some(match described.kms_key_id() {
            Some(key) if !key.ends_with("alias/aws/secretsmanager") => {
                SecretsKey::Customer(key.to_owned())
            }
            _ => SecretsKey::AwsManaged,
        })),
        Err(error) => {
            let error = aws_error::read(&error);
            match error.kind {
                AwsErrorKind::NotFound => Ok(None),
                AwsErrorKind::AccessDenied => Err(ClusterSecretsError::AccessDenied {
                    secret: name,
                    stack: stack.to_owned(),
                    operation: "DescribeSecret",
                }),
                _ => Err(ClusterSecretsError::Api {
                    operation: "DescribeSecret",
                    secret: name,
                    message: error.summary,
                }),
            }
        }
    }
}

/// The ARN of the secret `name` when it exists, after checking it is usable.
async fn existing_secret(
    client: &Client,
    settings: &SecretsSettings,
    name: &str,
) -> Result<Option<String>, ClusterSecretsError> {
    let described = match client.describe_secret().secret_id(name).send().await {
        Ok(described) => described,
        Err(error) => {
            let error = aws_error::read(&error);
            return match error.kind {
                AwsErrorKind::NotFound => Ok(None),
                AwsErrorKind::AccessDenied => Err(ClusterSecretsError::AccessDenied {
                    secret: name.to_string(),
                    stack: settings.stack.clone(),
                    operation: "DescribeSecret",
                }),
                _ => Err(ClusterSecretsError::Api {
                    operation: "DescribeSecret",
                    secret: name.to_string(),
                    message: error.summary,
                }),
            };
        }
    };
    if described.deleted_date().is_some() {
        return Err(ClusterSecretsError::PendingDeletion {
            secret: name.to_string(),
        });
    }
    if !same_key(described.kms_key_id(), &settings.key) {
        return Err(ClusterSecretsError::KeyMismatch {
            secret: name.to_string(),
            actual: described
                .kms_key_id()
                .unwrap_or(etcd_aws_template::options::defaults::SECRETS_KMS_KEY)
                .to_string(),
            wanted: settings.key.to_string(),
        });
    }
    let arn = described.arn().ok_or_else(|| ClusterSecretsError::Api {
        operation: "DescribeSecret",
        secret: name.to_string(),
        message: "the answer carried no ARN".to_string(),
    })?;
    Ok(Some(arn.to_string()))
}

/// Whether the key a secret reports (absent for the AWS managed key; else as given at
/// creation: a key id, key ARN or alias) is `wanted`. A mismatch would leave the roles
/// with kms:Decrypt on the wrong key, or none.
pub fn same_key(reported: Option<&str>, wanted: &SecretsKey) -> bool {
    let aws_managed = match reported {
        None => true,
        Some(key) => key.ends_with("alias/aws/secretsmanager"),
    };
    match (wanted, reported) {
        (SecretsKey::AwsManaged, _) => aws_managed,
        (SecretsKey::Customer(_), None) => false,
        (SecretsKey::Customer(arn), Some(key)) => {
            key == arn || arn.ends_with(&format!("key/{key}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab";

    #[test]
    fn the_aws_managed_key_matches_a_secret_that_reports_no_key() {
        assert!(same_key(None, &SecretsKey::AwsManaged));
        assert!(same_key(
            Some("alias/aws/secretsmanager"),
            &SecretsKey::AwsManaged
        ));
    }

    #[test]
    fn a_customer_key_matches_its_arn_or_its_id_and_nothing_else() {
        let wanted = SecretsKey::Customer(KEY.to_string());
        assert!(same_key(Some(KEY), &wanted));
        assert!(same_key(Some("1234abcd-12ab"), &wanted));
        assert!(!same_key(None, &wanted));
        assert!(!same_key(Some("other"), &wanted));
        assert!(!same_key(Some(KEY), &SecretsKey::AwsManaged));
    }

    #[test]
    fn a_good_functions_certificate_is_kept_and_one_near_expiry_is_replaced() {
        let ca = ClusterCa::generate("t", ValidityPeriod::starting_now(CA_VALIDITY)).expect("CA");
        let issue = |lifetime| {
            let issued = ca
                .issue_client("f", ValidityPeriod::starting_now(lifetime))
                .expect("issued");
            TlsCredentials::issued_by(&ca, issued)
        };
        let now = SystemTime::now();
        assert_eq!(
            replacement_reason(&issue(functions::VALIDITY), &ca, now),
            None
        );
        let reason = replacement_reason(&issue(Duration::from_secs(86_400)), &ca, now);
        assert!(
            reason
                .as_deref()
                .is_some_and(|r| r.contains("within 30 days")),
            "{reason:?}"
        );
        let other =
            ClusterCa::generate("o", ValidityPeriod::starting_now(CA_VALIDITY)).expect("CA");
        assert!(replacement_reason(&issue(functions::VALIDITY), &other, now).is_some());
    }
}
