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

use etcd_aws_core::certificates::ca_rotation::Stage;

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

/// The CA secret: the CA certificates are issued from (`ca_cert`, the one
/// agents before CA rotation read), and during a rotation the other CA and
/// the stage.
#[derive(Serialize, Deserialize)]
struct CaSecret {
    kind: String,
    ca_cert: String,
    ca_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rotation: Option<RotationSecret>,
}

#[derive(Serialize, Deserialize)]
struct RotationSecret {
    id: String,
    stage: String,
    other_ca_cert: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    other_ca_key: Option<String>,
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

    /// The CA certificates are issued from now.
    pub async fn load_ca(&self, secret: &str) -> Result<ClusterCa, SecretStoreError> {
        Ok(self.load_ca_state(secret).await?.issuer)
    }

    /// The CA secret whole: the issuing CA and any rotation under way.
    pub async fn load_ca_state(&self, secret: &str) -> Result<CaState, SecretStoreError> {
        let text = self.read(secret, CA_KIND).await?;
        let value: CaSecret = parse(secret, CA_KIND, &text)?;
        let malformed = |reason: String| SecretStoreError::Malformed {
            secret: secret.to_owned(),
            kind: CA_KIND,
            reason,
        };
        let issuer = ClusterCa::from_pem(&value.ca_cert, &value.ca_key)
            .map_err(|e: AuthorityError| malformed(e.to_string()))?;
        let rotation = match value.rotation {
            None => None,
            Some(rotation) => Some(CaRotation {
                stage: Stage::parse(&rotation.stage).ok_or_else(|| {
                    malformed(format!("unknown rotation stage {:?}", rotation.stage))
                })?,
                id: rotation.id,
                other_cert_pem: rotation.other_ca_cert,
                other_key_pem: rotation.other_ca_key,
            }),
        };
        Ok(CaState { issuer, rotation })
    }

    /// Writes the CA secret whole (a rotation's stage with it).
    pub async fn store_ca_state(
        &self,
        secret: &str,
        state: &CaState,
    ) -> Result<(), SecretStoreError> {
        let value = CaSecret {
            kind: CA_KIND.into(),
            ca_cert: state.issuer.cert_pem().into(),
            ca_key: state.issuer.key_pem().into(),
            rotation: state.rotation.as_ref().map(|r| RotationSecret {
                id: r.id.clone(),
                stage: r.stage.as_str().into(),
                other_ca_cert: r.other_cert_pem.clone(),
                other_ca_key: r.other_key_pem.clone(),
            }),
        };
        self.write(secret, &to_json(&value)).await
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
        let state = CaState {
            issuer: ca.clone(),
            rotation: None,
        };
        self.store_ca_state(secret, &state).await
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

/// What the CA secret holds.
#[derive(Debug, Clone)]
pub struct CaState {
    /// The CA certificates are issued from now.
    pub issuer: ClusterCa,
    pub rotation: Option<CaRotation>,
}

/// A CA rotation under way ([`etcd_aws_core::certificates::ca_rotation`]).
#[derive(Debug, Clone)]
pub struct CaRotation {
    pub id: String,
    pub stage: Stage,
    /// The rotation's other CA: the new one while the old still issues
    /// (with its key, for the stage that issues from it), the old one after
    /// (without: nothing issues from it again).
    pub other_cert_pem: String,
    pub other_key_pem: Option<String>,
}

impl CaState {
    /// The CA certificates a member trusts now, as one PEM bundle, the
    /// issuer first.
    pub fn trusted_pem(&self) -> String {
        match &self.rotation {
            Some(rotation) if rotation.stage.trusted().len() == 2 => {
                bundle(&[self.issuer.cert_pem(), &rotation.other_cert_pem])
            }
            _ => self.issuer.cert_pem().to_owned(),
        }
    }
}

/// PEM certificates as one bundle, each on its own lines.
pub fn bundle(pems: &[&str]) -> String {
    let mut joined = String::new();
    for pem in pems {
        joined.push_str(pem.trim_end());
        joined.push('\n');
    }
    joined
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
