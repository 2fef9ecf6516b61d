//! `etcd-aws-cfn issue-client-cert`: a client certificate for a user or a program,
//! issued from the cluster CA in the stack's secret and written as the three files
//! etcdctl (or any etcd client) takes.
//!
//! The certificate lets its holder use the cluster as a client, and no more: it cannot
//! serve or join as a member. Whoever runs this needs to read the CA's secret, which is
//! what makes issuing certificates an operator's privilege.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use etcd_aws_core::etcd::launch::TlsFiles;
use etcd_aws_io::tls::authority::{AuthorityError, ValidityPeriod};
use etcd_aws_io::tls::certificate::{check_certificate, CertificateError};
use etcd_aws_io::tls::{SecretStore, SecretStoreError, TlsCredentials};

use etcd_aws_template::names::ports::CLIENT;
use etcd_aws_template::names::secrets;

/// The default lifetime of an issued client certificate.
pub const DEFAULT_VALIDITY: &str = "90days";

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("the client name (--name) is empty; give the name the certificate is for, such as alice or billing-service")]
    EmptyName,
    #[error("--valid-for is zero; give a lifetime such as 90days or 12h")]
    NoValidity,
    #[error(
        "secret {secret} does not exist: deploy the stack first (`etcd-aws-cfn --stack-name \
         {stack} ...` creates the cluster CA before the stack), or check --stack-name and the \
         region"
    )]
    NoCa { secret: String, stack: String },
    #[error(
        "secret {secret} holds no CA yet: deploy the stack first (`etcd-aws-cfn --stack-name \
         {stack} ...` writes it)"
    )]
    CaNotInitialised { secret: String, stack: String },
    #[error(
        "access denied reading {secret}: issuing a client certificate needs \
         secretsmanager:GetSecretValue on that secret (and kms:Decrypt on its key when it is a \
         customer managed key)"
    )]
    AccessDenied { secret: String },
    #[error(transparent)]
    Store(SecretStoreError),
    #[error("the cluster CA in {secret} is unusable: {source}")]
    CaUnusable {
        secret: String,
        source: CertificateError,
    },
    #[error(
        "a certificate valid for {asked} would outlive the cluster CA in {secret}, which expires \
         in {left}; ask for a shorter --valid-for"
    )]
    OutlivesCa {
        secret: String,
        asked: String,
        left: String,
    },
    #[error("cannot issue the certificate for {name}: {source}")]
    Issue {
        name: String,
        source: AuthorityError,
    },
    #[error("cannot write the certificate files to {}: {source}; choose a directory you can write with --out", dir.display())]
    Write {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct ClientCertificateRequest {
    pub stack: String,
    /// The certificate's common name: who etcd logs as the client.
    pub name: String,
    pub valid_for: Duration,
    pub out: PathBuf,
}

/// What was issued, and where it is.
#[derive(Debug, Clone)]
pub struct IssuedClientCertificate {
    pub files: TlsFiles,
    pub secret: String,
    pub not_after: SystemTime,
}

/// Reads the stack's CA, issues the certificate and writes `ca.pem`, `cert.pem` and
/// `key.pem` (the key readable by its owner only) into the request's directory.
pub async fn issue(
    config: &aws_config::SdkConfig,
    request: &ClientCertificateRequest,
) -> Result<IssuedClientCertificate, IssueError> {
    let name = request.name.trim();
    if name.is_empty() {
        return Err(IssueError::EmptyName);
    }
    if request.valid_for.is_zero() {
        return Err(IssueError::NoValidity);
    }
    let secret = secrets::cluster_ca(&request.stack);
    let store = SecretStore::new(config);
    let state = store
        .load_ca_state(&secret)
        .await
        .map_err(|error| match error {
            SecretStoreError::NotFound { .. } => IssueError::NoCa {
                secret: secret.clone(),
                stack: request.stack.clone(),
            },
            SecretStoreError::NotInitialised { .. } => IssueError::CaNotInitialised {
                secret: secret.clone(),
                stack: request.stack.clone(),
            },
            SecretStoreError::AccessDenied { .. } => IssueError::AccessDenied {
                secret: secret.clone(),
            },
            other => IssueError::Store(other),
        })?;
    let ca = &state.issuer;
    let now = SystemTime::now();
    // The CA is self-signed: checking it against itself reads its expiry.
    let ca_info = check_certificate("the cluster CA", ca.cert_pem(), ca.cert_pem(), now).map_err(
        |source| IssueError::CaUnusable {
            secret: secret.clone(),
            source,
        },
    )?;
    let validity = ValidityPeriod::starting_now(request.valid_for);
    if validity.until > ca_info.not_after {
        return Err(IssueError::OutlivesCa {
            secret,
            asked: humantime::format_duration(request.valid_for).to_string(),
            left: humantime::format_duration(whole_days(
                ca_info.not_after.duration_since(now).unwrap_or_default(),
            ))
            .to_string(),
        });
    }
    let issued = ca
        .issue_client(name, validity)
        .map_err(|source| IssueError::Issue {
            name: name.to_string(),
            source,
        })?;
    // During a CA rotation the client trusts every CA a member may present.
    let credentials = TlsCredentials {
        ca_pem: state.trusted_pem(),
        ..TlsCredentials::issued_by(ca, issued)
    };
    let files = credentials
        .write_to(&request.out)
        .map_err(|source| IssueError::Write {
            dir: request.out.clone(),
            source,
        })?;
    Ok(IssuedClientCertificate {
        files,
        secret,
        not_after: validity.until,
    })
}

fn whole_days(duration: Duration) -> Duration {
    Duration::from_secs(duration.as_secs() / 86_400 * 86_400)
}

/// The etcdctl command line that uses the files against `endpoint`
/// (`https://<load balancer>:2379`).
pub fn etcdctl_command(endpoint: &str, files: &TlsFiles) -> String {
    format!(
        "etcdctl --endpoints {endpoint} --cacert {} --cert {} --key {} member list",
        shell_word(&files.ca),
        shell_word(&files.cert),
        shell_word(&files.key),
    )
}

/// The endpoint to print when the stack's `ClientEndpoint` output cannot be read.
pub fn placeholder_endpoint() -> String {
    format!("https://<ClientEndpoint load balancer DNS name>:{CLIENT}")
}

/// A path quoted for a POSIX shell when it needs it.
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c));
    if plain && !text.is_empty() {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The stack's `ClientEndpoint` output, when the stack exists and has it.
pub async fn client_endpoint(
    client: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> Result<Option<String>, String> {
    let output = client
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|error| aws_sdk_cloudformation::error::DisplayErrorContext(&error).to_string())?;
    Ok(output
        .stacks()
        .first()
        .into_iter()
        .flat_map(|s| s.outputs())
        .find(|o| o.output_key() == Some("ClientEndpoint"))
        .and_then(|o| o.output_value())
        .map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etcdctl_command_names_the_three_files_and_quotes_odd_paths() {
        let files = TlsFiles::in_dir(Path::new("/home/a b/certs"));
        let command = etcdctl_command("https://lb.example:2379", &files);
        assert_eq!(
            command,
            "etcdctl --endpoints https://lb.example:2379 --cacert '/home/a b/certs/ca.pem' \
             --cert '/home/a b/certs/cert.pem' --key '/home/a b/certs/key.pem' member list"
        );
    }
}
