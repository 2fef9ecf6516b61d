//! The cluster CA and the functions' client certificate in Secrets Manager.
//!
//! `etcd-aws-cfn deploy` creates both secrets before the stack (a placeholder
//! first, then the value) and never replaces a CA. A node that finds a
//! placeholder waits for the value rather than inventing a CA of its own.

use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::Tag;
use aws_sdk_secretsmanager::Client as SecretsClient;
use serde::{Deserialize, Serialize};

use crate::aws::error::{self as aws_error, AwsErrorKind};
use crate::tls::authority::{AuthorityError, ClusterCa};
use crate::tls::credentials::TlsCredentials;

#[derive(Debug, thiserror::Error)]
pub enum SecretStoreError {
    #[error("secret {secret} does not exist; `etcd-aws-cfn deploy` creates it (check --tls-ca-secret / ETCD_AWS_TLS_CA_SECRET, or --tls-client-secret / ETCD_AWS_TLS_CLIENT_SECRET)")]
    NotFound { secret: String },
    #[error("secret {secret} holds no {kind} yet; `etcd-aws-cfn deploy` writes it before it creates the stack")]
    NotInitialised { secret: String, kind: &'static str },
    #[error("secret {secret} exists already")]
    AlreadyExists { secret: String },
    #[error("access denied to secret {secret} ({operation}); the role needs secretsmanager:{operation} on it and kms:Decrypt on its key")]
    AccessDenied {
        secret: String,
        operation: &'static str,
    },
    #[error("secret {secret} is not a valid {kind}: {reason}; restore its previous version")]
    Malformed {
        secret: String,
        kind: &'static str,
        reason: String,
    },
    #[error("Secrets Manager {operation} on {secret} failed: {message}")]
    Api {
        operation: &'static str,
        secret: String,
        message: String,
    },
}

const CA_KIND: &str = "etcd-aws-cluster-ca";
const CLIENT_KIND: &str = "etcd-aws-client-certificate";

#[derive(Serialize, Deserialize)]
struct CaSecret {
    kind: String,
    ca_cert: String,
    ca_key: String,
}

#[derive(Serialize, Deserialize)]
struct ClientSecret {
    kind: String,
    ca_cert: String,
    cert: String,
    key: String,
}

/// Any JSON object with a `kind` we know is initialised; anything else (the
/// stack's generated placeholder) is not.
#[derive(Deserialize)]
struct Kind {
    kind: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SecretStore {
    client: SecretsClient,
}

impl SecretStore {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            client: SecretsClient::new(config),
        }
    }

    pub async fn load_ca(&self, secret: &str) -> Result<ClusterCa, SecretStoreError> {
        let text = self.read(secret, CA_KIND).await?;
        let value: CaSecret = parse(secret, CA_KIND, &text)?;
        ClusterCa::from_pem(&value.ca_cert, &value.ca_key).map_err(|e: AuthorityError| {
            SecretStoreError::Malformed {
                secret: secret.to_owned(),
                kind: CA_KIND,
                reason: e.to_string(),
            }
        })
    }

    pub async fn load_client(&self, secret: &str) -> Result<TlsCredentials, SecretStoreError> {
        let text = self.read(secret, CLIENT_KIND).await?;
        let value: ClientSecret = parse(secret, CLIENT_KIND, &text)?;
        Ok(TlsCredentials {
            ca_pem: value.ca_cert,
            cert_pem: value.cert,
            key_pem: value.key,
        })
    }

    pub async fn store_ca(&self, secret: &str, ca: &ClusterCa) -> Result<(), SecretStoreError> {
        let value = CaSecret {
            kind: CA_KIND.into(),
            ca_cert: ca.cert_pem().into(),
            ca_key: ca.key_pem().into(),
        };
        self.write(secret, &to_json(&value)).await
    }

    pub async fn store_client(
        &self,
        secret: &str,
        credentials: &TlsCredentials,
    ) -> Result<(), SecretStoreError> {
        let value = ClientSecret {
            kind: CLIENT_KIND.into(),
            ca_cert: credentials.ca_pem.clone(),
            cert: credentials.cert_pem.clone(),
            key: credentials.key_pem.clone(),
        };
        self.write(secret, &to_json(&value)).await
    }

    async fn read(&self, secret: &str, kind: &'static str) -> Result<String, SecretStoreError> {
        let response = self
            .client
            .get_secret_value()
            .secret_id(secret)
            .send()
            .await
            .map_err(|e| api_error("GetSecretValue", secret, e))?;
        let text = response.secret_string().unwrap_or_default().to_owned();
        match serde_json::from_str::<Kind>(&text) {
            Ok(Kind { kind: Some(_) }) => Ok(text),
            _ => Err(SecretStoreError::NotInitialised {
                secret: secret.to_owned(),
                kind,
            }),
        }
    }

    /// Writes a new version of a secret that [`SecretStore::create`] made.
    async fn write(&self, secret: &str, value: &str) -> Result<(), SecretStoreError> {
        self.client
            .put_secret_value()
            .secret_id(secret)
            .secret_string(value)
            .send()
            .await
            .map_err(|e| api_error("PutSecretValue", secret, e))?;
        Ok(())
    }

    /// Replaces the secret's resource policy with `policy` (a JSON policy
    /// document). Secrets Manager checks it first and refuses one that would
    /// make the secret public.
    pub async fn put_policy(&self, secret: &str, policy: &str) -> Result<(), SecretStoreError> {
        self.client
            .put_resource_policy()
            .secret_id(secret)
            .resource_policy(policy)
            .block_public_policy(true)
            .send()
            .await
            .map_err(|e| api_error("PutResourcePolicy", secret, e))?;
        Ok(())
    }

    /// The secret's resource policy as stored, if it has one.
    pub async fn policy(&self, secret: &str) -> Result<Option<String>, SecretStoreError> {
        let response = self
            .client
            .get_resource_policy()
            .secret_id(secret)
            .send()
            .await
            .map_err(|e| api_error("GetResourcePolicy", secret, e))?;
        Ok(response.resource_policy().map(str::to_owned))
    }

    /// Creates the secret with a placeholder value (which reads as "not
    /// initialised", so a node seeing it waits) and returns its ARN. The one
    /// way this project creates a secret: with its description, key and tags.
    pub async fn create(&self, new: &NewSecret<'_>) -> Result<String, SecretStoreError> {
        let mut create = self
            .client
            .create_secret()
            .name(new.name)
            .description(new.description)
            .secret_string(PLACEHOLDER);
        for (key, value) in new.tags {
            create = create.tags(Tag::builder().key(*key).value(*value).build());
        }
        if let Some(key) = new.kms_key_arn {
            create = create.kms_key_id(key);
        }
        let created = create
            .send()
            .await
            .map_err(|e| api_error("CreateSecret", new.name, e))?;
        created
            .arn()
            .map(str::to_owned)
            .ok_or_else(|| SecretStoreError::Api {
                operation: "CreateSecret",
                secret: new.name.to_owned(),
                message: "the answer carried no ARN".to_owned(),
            })
    }
}

/// A secret to create: see [`SecretStore::create`].
#[derive(Debug, Clone, Copy)]
pub struct NewSecret<'a> {
    pub name: &'a str,
    pub description: &'a str,
    /// A customer managed KMS key; `None` for the AWS managed key.
    pub kms_key_arn: Option<&'a str>,
    pub tags: &'a [(&'a str, &'a str)],
}

/// Written when a secret is created, until its value is; anything without our
/// `kind` field reads as "not initialised".
const PLACEHOLDER: &str = r#"{"placeholder":"etcd-aws-cfn writes the value"}"#;

fn parse<T: serde::de::DeserializeOwned>(
    secret: &str,
    kind: &'static str,
    text: &str,
) -> Result<T, SecretStoreError> {
    serde_json::from_str(text).map_err(|e| SecretStoreError::Malformed {
        secret: secret.to_owned(),
        kind,
        reason: e.to_string(),
    })
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serialising a struct of strings cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

fn api_error<E>(
    operation: &'static str,
    secret: &str,
    error: SdkError<E, HttpResponse>,
) -> SecretStoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let secret = secret.to_owned();
    let error = aws_error::read(&error);
    match error.kind {
        AwsErrorKind::NotFound => SecretStoreError::NotFound { secret },
        AwsErrorKind::AlreadyExists => SecretStoreError::AlreadyExists { secret },
        AwsErrorKind::AccessDenied => SecretStoreError::AccessDenied { secret, operation },
        _ => SecretStoreError::Api {
            operation,
            secret,
            message: error.summary,
        },
    }
}
