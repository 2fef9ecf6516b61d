//! AWS SDK clients that talk to moto directly, bypassing the proxy: the stand-in's
//! own calls must neither meet injected faults nor pass through its own lifecycle layer.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_autoscaling::config::Credentials;

pub const REGION: &str = "us-east-1";

#[derive(Debug, Clone)]
pub struct MotoClients {
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub url: String,
}

impl MotoClients {
    pub async fn new(moto_url: &str) -> Self {
        let config = sdk_config_for(moto_url).await;
        Self {
            autoscaling: aws_sdk_autoscaling::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            url: moto_url.to_owned(),
        }
    }

    /// The queue URL for an SQS ARN ("arn:aws:sqs:region:account:name").
    pub async fn queue_url(&self, queue_arn: &str) -> anyhow::Result<String> {
        let name = queue_arn
            .rsplit(':')
            .next()
            .filter(|name| !name.is_empty())
            .ok_or_else(|| anyhow::anyhow!("not an SQS queue ARN: {queue_arn}"))?;
        let answer = self.sqs.get_queue_url().queue_name(name).send().await?;
        answer
            .queue_url
            .ok_or_else(|| anyhow::anyhow!("moto returned no URL for queue {name}"))
    }

    pub async fn send_message(&self, queue_arn: &str, body: String) -> anyhow::Result<()> {
        let queue_url = self.queue_url(queue_arn).await?;
        self.sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await?;
        Ok(())
    }
}

/// An SDK configuration for the stand-in's region and fixed test credentials.
pub async fn sdk_config_for(endpoint_url: &str) -> SdkConfig {
    sdk_config_as(endpoint_url, "test").await
}

/// The same, signing with `access_key_id`: moto accepts any, and the proxy
/// records it as the caller.
pub async fn sdk_config_as(endpoint_url: &str, access_key_id: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint_url)
        .credentials_provider(Credentials::new(
            access_key_id,
            "test",
            None,
            None,
            "etcd-aws-stand-in",
        ))
        .load()
        .await
}
