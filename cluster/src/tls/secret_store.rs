//! The cluster CA and the functions' client certificate in Secrets Manager.
//!
//! `etcd-aws-cfn deploy` creates both secrets before the stack (a placeholder
//! first, then the value) and never replaces a CA. A node that finds a
//! placeholder waits for the value rather than inventing a CA of its own.

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::Client as SecretsClient;
use serde::{Deserialize, Serialize};

use crate::discovery::error_chain;
use crate::tls::authority::{AuthorityError, ClusterCa};
use crate::tls::credentials::TlsCredentials;

#[derive(Debug, thiserror::Error)]
pub enum SecretStoreError {
    #[error("secret {secret} does not exist; `etcd-aws-cfn deploy` creates it (check --tls-ca-secret / ETCD_AWS_TLS_CA_SECRET, or --tls-client-secret / ETCD_AWS_TLS_CLIENT_SECRET)")]
    NotFound { secret: String },
    #[error("secret {secret} holds no {kind} yet; `etcd-aws-cfn deploy` writes it before it creates the stack")]
    NotInitialised { secret: String, kind: &'static str },
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

    /// Whether the secret already holds a value of ours (not the placeholder).
    pub async fn is_initialised(&self, secret: &str) -> Result<bool, SecretStoreError> {
        match self.read(secret, "value").await {
            Ok(_) => Ok(true),
            Err(SecretStoreError::NotInitialised { .. }) => Ok(false),
            Err(e) => Err(e),
        }
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

    /// Writes a new version; creates the secret when nothing made it yet
    /// (the stand-in, or a cluster run outside the stack).
    async fn write(&self, secret: &str, value: &str) -> Result<(), SecretStoreError> {
        let put = self
            .client
            .put_secret_value()
            .secret_id(secret)
            .secret_string(value)
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => {
                self.client
                    .create_secret()
                    .name(secret)
                    .secret_string(value)
                    .send()
                    .await
                    .map_err(|e| api_error("CreateSecret", secret, e))?;
                Ok(())
            }
            Err(e) => Err(api_error("PutSecretValue", secret, e)),
        }
    }
}

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

fn api_error<E, R>(operation: &'static str, secret: &str, error: SdkError<E, R>) -> SecretStoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let secret = secret.to_owned();
    match error.code() {
        Some("ResourceNotFoundException") => SecretStoreError::NotFound { secret },
        Some("AccessDeniedException") | Some("AccessDenied") => {
            SecretStoreError::AccessDenied { secret, operation }
        }
        _ => SecretStoreError::Api {
            operation,
            secret,
            message: error_chain(&error),
        },
    }
}
