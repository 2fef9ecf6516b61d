//! What the stack runs, shipped and pinned: the two function zips, the node agent
//! and etcd's release archive, read from the directory `make package` writes
//! (`<dir>/<arch>/`), uploaded to the artifact bucket under the prefix, and pinned
//! to what was read here. The agent's and the archive's SHA-256 go into the
//! template, where every node checks its download against them; each zip's S3
//! object version goes into the functions' `Code` (why versions there:
//! `etcd_aws_template::artifact_pins`). Another object written under the same keys
//! afterwards is then refused by the nodes and never run by the functions.
//!
//! A deploy that uploads nothing (the artifacts shipped by other means) pins the
//! versions of the zips it finds under the prefix and needs the agent's checksum
//! given: a checksum read back from the bucket would vouch for whatever is there.
//!
//! [`plan`] and [`check`] are the rules, pure; [`upload`] and [`find_versions`]
//! talk to S3.

use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use etcd_aws_io::aws::error as aws_error;
use etcd_aws_template::options::{artifacts, Options, Sha256};
use sha2::Digest;

/// Which artifact a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    LifecycleZip,
    BackupZip,
    Agent,
    EtcdArchive,
}

/// A file of the package and the key it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub kind: Kind,
    pub file: PathBuf,
    pub key: String,
}

/// A file as read, with its checksum.
#[derive(Debug, Clone)]
pub struct ReadArtifact {
    pub artifact: Artifact,
    pub bytes: Vec<u8>,
    pub sha256: Sha256,
}

/// What pins the deployed code: the parameters' values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pins {
    /// Known when this deploy read the agent, or was given its checksum.
    pub agent_sha256: Option<Sha256>,
    /// Known when this deploy read the archive.
    pub etcd_sha256: Option<Sha256>,
    pub lifecycle_version: String,
    pub backup_version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactsError {
    #[error(
        "cannot read {path}: {message}; run `make package`, which writes the artifacts to \
         dist/<arch>/, or point --artifacts-dir at the directory holding them"
    )]
    Read { path: String, message: String },
    #[error(
        "{path} has SHA-256 {found}, not {expected}, the checksum the nodes would check it \
         against: rebuild it with `make package`, or give the archive's checksum with --etcd-sha256"
    )]
    EtcdMismatch {
        path: String,
        expected: String,
        found: String,
    },
    #[error(
        "--agent-sha256 {given} is not the SHA-256 of {path} ({found}), the agent this deploy \
         would upload: leave --agent-sha256 out, or point --artifacts-dir at the binary you mean"
    )]
    AgentMismatch {
        given: String,
        path: String,
        found: String,
    },
    #[error(
        "the artifact bucket {bucket} is not versioned (s3://{bucket}/{key} got no version), \
         so the functions cannot be pinned to the code this deploy ships: run `aws s3api \
         put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled`, \
         then deploy again (with --artifacts-dir)"
    )]
    Unversioned { bucket: String, key: String },
    #[error(
        "s3://{bucket}/{key} has no version of its own (it was written before versioning was \
         on): upload it again with --artifacts-dir"
    )]
    NoVersion { bucket: String, key: String },
    #[error(
        "{action} s3://{bucket}/{key} failed: {message}; the deploying identity needs \
         s3:PutObject and s3:GetObject there (and the object must exist: `make package` \
         and --artifacts-dir upload it)"
    )]
    S3 {
        action: &'static str,
        bucket: String,
        key: String,
        message: String,
    },
}

/// The files of the package under `dir` that the stack of `options` runs, and
/// their keys: the zips of the functions' architecture, the agent and etcd's
/// archive of the nodes'.
pub fn plan(dir: &Path, options: &Options) -> Vec<Artifact> {
    let functions = dir.join(options.function_architecture.lambda_name());
    let nodes = dir.join(options.instance_type.architecture().lambda_name());
    let archive = options
        .etcd_version
        .archive_name(options.instance_type.architecture());
    [
        (Kind::LifecycleZip, &functions, artifacts::LIFECYCLE_ZIP),
        (Kind::BackupZip, &functions, artifacts::BACKUP_ZIP),
        (Kind::Agent, &nodes, artifacts::AGENT_BINARY),
        (Kind::EtcdArchive, &nodes, archive.as_str()),
    ]
    .into_iter()
    .map(|(kind, directory, name)| Artifact {
        kind,
        file: directory.join(name),
        key: options.artifact_prefix.key(name),
    })
    .collect()
}

/// The SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Sha256 {
    let hex: String = sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    // 64 hexadecimal characters always parse.
    hex.parse()
        .unwrap_or_else(|_| unreachable!("a digest is 64 hex digits"))
}

/// Whether what was read may be shipped: etcd's archive must be the one the stack
/// pins (or would pin: `etcd_pin`), the agent the one given (`agent_given`).
pub fn check(
    read: &[ReadArtifact],
    etcd_pin: Option<&Sha256>,
    agent_given: Option<&Sha256>,
) -> Result<(), ArtifactsError> {
    for file in read {
        let expected = match file.artifact.kind {
            Kind::EtcdArchive => etcd_pin,
            Kind::Agent => agent_given,
            Kind::LifecycleZip | Kind::BackupZip => None,
        };
        let Some(expected) = expected else { continue };
        if expected == &file.sha256 {
            continue;
        }
        let path = file.artifact.file.display().to_string();
        let found = file.sha256.as_str().to_string();
        return Err(match file.artifact.kind {
            Kind::Agent => ArtifactsError::AgentMismatch {
                given: expected.as_str().to_string(),
                path,
                found,
            },
            _ => ArtifactsError::EtcdMismatch {
                path,
                expected: expected.as_str().to_string(),
                found,
            },
        });
    }
    Ok(())
}

/// Reads every file of `plan`, with its checksum.
pub fn read(plan: Vec<Artifact>) -> Result<Vec<ReadArtifact>, ArtifactsError> {
    plan.into_iter()
        .map(|artifact| {
            let bytes = std::fs::read(&artifact.file).map_err(|error| ArtifactsError::Read {
                path: artifact.file.display().to_string(),
                message: error.to_string(),
            })?;
            let sha256 = sha256(&bytes);
            Ok(ReadArtifact {
                artifact,
                bytes,
                sha256,
            })
        })
        .collect()
}

/// A version id that pins an object. S3 answers none in a bucket that is not
/// versioned, and `null` for an object written before versioning was turned on:
/// a later write replaces either. (The answers of PutObject and HeadObject are
/// what is checked, not GetBucketVersioning: they say it of the very object.)
fn pinning_version(
    version: Option<&str>,
    bucket: &str,
    key: &str,
) -> Result<String, ArtifactsError> {
    let (bucket, key) = (bucket.to_string(), key.to_string());
    match version {
        None | Some("") => Err(ArtifactsError::Unversioned { bucket, key }),
        Some("null") => Err(ArtifactsError::NoVersion { bucket, key }),
        Some(version) => Ok(version.to_string()),
    }
}

/// Uploads what was read to `bucket`; the pins of what was uploaded.
pub async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    read: Vec<ReadArtifact>,
) -> Result<Pins, ArtifactsError> {
    let mut pins = Pins {
        agent_sha256: None,
        etcd_sha256: None,
        lifecycle_version: String::new(),
        backup_version: String::new(),
    };
    for file in read {
        let key = file.artifact.key.as_str();
        let written = s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(file.bytes))
            .send()
            .await
            .map_err(|error| ArtifactsError::S3 {
                action: "uploading to",
                bucket: bucket.to_string(),
                key: key.to_string(),
                message: aws_error::read(&error).summary,
            })?;
        let version = pinning_version(written.version_id(), bucket, key)?;
        tracing::info!(
            bucket,
            key,
            sha256 = file.sha256.as_str(),
            version,
            "artifact uploaded"
        );
        match file.artifact.kind {
            Kind::LifecycleZip => pins.lifecycle_version = version,
            Kind::BackupZip => pins.backup_version = version,
            Kind::Agent => pins.agent_sha256 = Some(file.sha256),
            Kind::EtcdArchive => pins.etcd_sha256 = Some(file.sha256),
        }
    }
    Ok(pins)
}

/// The current versions of the zips of `options` in `bucket`, for a deploy that
/// uploads nothing; the agent's checksum is the one given.
pub async fn find_versions(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    options: &Options,
) -> Result<Pins, ArtifactsError> {
    let mut versions = Vec::new();
    for zip in [artifacts::LIFECYCLE_ZIP, artifacts::BACKUP_ZIP] {
        let key = options.artifact_prefix.key(zip);
        let head = s3
            .head_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|error| ArtifactsError::S3 {
                action: "reading",
                bucket: bucket.to_string(),
                key: key.clone(),
                message: aws_error::read(&error).summary,
            })?;
        let version = pinning_version(head.version_id(), bucket, &key)?;
        tracing::info!(
            bucket,
            key,
            version,
            "function code pinned as found in the bucket"
        );
        versions.push(version);
    }
    let [lifecycle_version, backup_version] = <[String; 2]>::try_from(versions)
        .unwrap_or_else(|_| unreachable!("two zips, two versions"));
    Ok(Pins {
        agent_sha256: options.agent_sha256.clone(),
        etcd_sha256: None,
        lifecycle_version,
        backup_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: std::str::FromStr>(text: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        text.parse().expect("test literal parses")
    }

    fn read_as(kind: Kind, bytes: &[u8]) -> ReadArtifact {
        ReadArtifact {
            artifact: Artifact {
                kind,
                file: PathBuf::from(format!("dist/arm64/{kind:?}")),
                key: format!("etcd-aws/{kind:?}"),
            },
            bytes: bytes.to_vec(),
            sha256: sha256(bytes),
        }
    }

    #[test]
    fn the_zips_come_from_the_functions_architecture_and_the_agent_and_etcd_from_the_nodes() {
        let options = Options {
            instance_type: parse("m7i.large"),
            function_architecture: parse("arm64"),
            artifact_prefix: parse("etcd-aws/0123abcd/"),
            ..Options::default()
        };
        let planned: Vec<(Kind, String, String)> = plan(Path::new("dist"), &options)
            .into_iter()
            .map(|a| (a.kind, a.file.display().to_string(), a.key))
            .collect();
        assert_eq!(
            planned,
            [
                (
                    Kind::LifecycleZip,
                    "dist/arm64/etcd-aws-lifecycle.zip".to_string(),
                    "etcd-aws/0123abcd/etcd-aws-lifecycle.zip".to_string()
                ),
                (
                    Kind::BackupZip,
                    "dist/arm64/etcd-aws-backup.zip".to_string(),
                    "etcd-aws/0123abcd/etcd-aws-backup.zip".to_string()
                ),
                (
                    Kind::Agent,
                    "dist/x86_64/etcd-aws".to_string(),
                    "etcd-aws/0123abcd/etcd-aws".to_string()
                ),
                (
                    Kind::EtcdArchive,
                    "dist/x86_64/etcd-v3.5.30-linux-amd64.tar.gz".to_string(),
                    "etcd-aws/0123abcd/etcd-v3.5.30-linux-amd64.tar.gz".to_string()
                ),
            ]
        );
    }

    #[test]
    fn the_checksum_is_sha256_in_lowercase_hexadecimal() {
        assert_eq!(
            sha256(b"").as_str(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn an_etcd_archive_other_than_the_pinned_one_is_refused_naming_both_checksums() {
        let read = [read_as(Kind::EtcdArchive, b"another archive")];
        let pin = sha256(b"the pinned archive");
        let error = check(&read, Some(&pin), None).expect_err("refused");
        let text = error.to_string();
        assert!(text.contains(pin.as_str()), "{text}");
        assert!(text.contains(sha256(b"another archive").as_str()), "{text}");
        assert!(text.contains("make package"), "{text}");
    }

    #[test]
    fn an_agent_other_than_the_given_checksum_is_refused() {
        let read = [read_as(Kind::Agent, b"the agent built here")];
        let given = sha256(b"the agent meant");
        assert!(matches!(
            check(&read, None, Some(&given)),
            Err(ArtifactsError::AgentMismatch { .. })
        ));
    }

    #[test]
    fn files_that_match_what_is_pinned_or_given_pass() {
        let read = [
            read_as(Kind::EtcdArchive, b"archive"),
            read_as(Kind::Agent, b"agent"),
            read_as(Kind::LifecycleZip, b"zip"),
        ];
        assert!(check(&read, Some(&sha256(b"archive")), Some(&sha256(b"agent"))).is_ok());
        assert!(check(&read, None, None).is_ok());
    }

    #[test]
    fn an_object_without_a_version_of_its_own_pins_nothing() {
        for version in [None, Some("")] {
            assert!(
                matches!(
                    pinning_version(version, "b", "k"),
                    Err(ArtifactsError::Unversioned { .. })
                ),
                "{version:?}"
            );
        }
        assert!(matches!(
            pinning_version(Some("null"), "b", "k"),
            Err(ArtifactsError::NoVersion { .. })
        ));
        assert_eq!(
            pinning_version(Some("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"), "b", "k").ok(),
            Some("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY".to_string())
        );
    }
}
