//! A template over CloudFormation's limit for an inline body (51,200 bytes) goes
//! through S3: it is written to the artifact bucket, beside the code it deploys,
//! under a key named for its content, and the change set reads it from there
//! (CloudFormation's limit for a template in S3 is 1 MB).

use aws_sdk_s3::primitives::ByteStream;
use etcd_aws_io::aws::error as aws_error;
use sha2::{Digest, Sha256};

pub use etcd_aws_template::TEMPLATE_URL_LIMIT;

#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error(
        "the template is {bytes} bytes, over CloudFormation's 51200-byte limit for an inline \
         body: pass --artifact-bucket so it can be staged in S3"
    )]
    NoBucket { bytes: usize },
    #[error("the template is {bytes} bytes, over CloudFormation's {TEMPLATE_URL_LIMIT}-byte limit even in S3")]
    TooLarge { bytes: usize },
    #[error(
        "staging the template at s3://{bucket}/{key} failed: {message}; the deploying identity \
         needs s3:PutObject and s3:GetObject there"
    )]
    Upload {
        bucket: String,
        key: String,
        message: String,
    },
}

/// The key a template is staged under: one per content, so two deploys of
/// different templates never overwrite each other's.
pub fn staged_key(prefix: &str, body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{prefix}templates/{hex}.json")
}

/// The URL CloudFormation reads a staged template from.
pub fn template_url(bucket: &str, region: &str, key: &str) -> String {
    format!("https://{bucket}.s3.{region}.amazonaws.com/{key}")
}

/// Writes `body` to `s3://bucket/key`.
pub async fn stage(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: &str,
) -> Result<(), StagingError> {
    if body.len() > TEMPLATE_URL_LIMIT {
        return Err(StagingError::TooLarge { bytes: body.len() });
    }
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .body(ByteStream::from(body.as_bytes().to_vec()))
        .send()
        .await
        .map_err(|error| StagingError::Upload {
            bucket: bucket.to_string(),
            key: key.to_string(),
            message: aws_error::read(&error).summary,
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staged_template_is_keyed_by_its_content_under_the_artifact_prefix() {
        let key = staged_key("etcd-aws/abc123/", "{}");
        assert_eq!(
            key,
            "etcd-aws/abc123/templates/44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a.json"
        );
        assert_ne!(staged_key("p/", "{\"a\":1}"), staged_key("p/", "{\"a\":2}"));
    }

    #[test]
    fn the_url_names_the_bucket_and_region() {
        assert_eq!(
            template_url("artifacts", "eu-west-1", "p/templates/x.json"),
            "https://artifacts.s3.eu-west-1.amazonaws.com/p/templates/x.json"
        );
    }
}
