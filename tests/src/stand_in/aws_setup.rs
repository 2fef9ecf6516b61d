//! The AWS resources a cluster needs, created in a fresh moto: a VPC whose subnet is
//! the stand-in's leased /24 (loopback, or a Docker network's), the autoscaling group, the hook's queue with its dead-letter
//! queue, and the backup bucket.

use anyhow::Context;
use aws_sdk_autoscaling::types::LaunchTemplateSpecification;
use aws_sdk_ec2::types::{InstanceType, RequestLaunchTemplateData};
use aws_sdk_sqs::types::QueueAttributeName;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::lifecycle_actions::HookResult;
use super::lifecycle_hooks::{PutLifecycleHook, TERMINATING};
use super::lifecycle_layer::LifecycleLayer;
use super::moto_clients::{MotoClients, REGION};
use super::notification::ACCOUNT_ID;

const LAUNCH_TEMPLATE: &str = "etcd-node";
/// An AMI id moto knows.
const IMAGE_ID: &str = "ami-12c6146b";
const MAX_RECEIVE_COUNT: u32 = 3;

/// Names chosen for one stand-in.
#[derive(Debug, Clone)]
pub struct Names {
    pub subnet_prefix: String,
    pub group: String,
    pub hook: String,
    pub queue: String,
    pub dead_letter_queue: String,
    pub bucket: String,
}

#[derive(Debug, Clone)]
pub struct Provisioned {
    pub queue_url: String,
    pub dead_letter_queue_url: String,
}

pub struct HookSettings {
    /// Kept exact by the stand-in, so tests may use sub-second timeouts; moto, which
    /// counts whole seconds, gets it rounded up.
    pub heartbeat_timeout: std::time::Duration,
    pub default_result: HookResult,
}

pub async fn provision(
    moto: &MotoClients,
    layer: &LifecycleLayer,
    names: &Names,
    group_size: usize,
    hook: Option<HookSettings>,
) -> anyhow::Result<Provisioned> {
    let subnet_id = network(moto, &names.subnet_prefix).await?;
    let (queue_url, dead_letter_queue_url, queue_arn) = queues(moto, names).await?;
    create_bucket(&moto.url, &names.bucket).await?;
    group(moto, &names.group, &subnet_id, group_size).await?;
    if let Some(hook) = hook {
        put_hook(moto, layer, names, &queue_arn, hook).await?;
    }
    Ok(Provisioned {
        queue_url,
        dead_letter_queue_url,
    })
}

async fn network(moto: &MotoClients, subnet_prefix: &str) -> anyhow::Result<String> {
    let (first_octets, _) = subnet_prefix
        .rsplit_once('.')
        .with_context(|| format!("{subnet_prefix} is not a /24 prefix"))?;
    let vpc = moto
        .ec2
        .create_vpc()
        .cidr_block(format!("{first_octets}.0.0/16"))
        .send()
        .await
        .context("creating the VPC")?;
    let vpc_id = vpc
        .vpc()
        .and_then(|vpc| vpc.vpc_id())
        .context("moto returned no VPC id")?;
    let subnet = moto
        .ec2
        .create_subnet()
        .vpc_id(vpc_id)
        .cidr_block(format!("{subnet_prefix}.0/24"))
        .send()
        .await
        .context("creating the subnet")?;
    let subnet_id = subnet
        .subnet()
        .and_then(|subnet| subnet.subnet_id())
        .context("moto returned no subnet id")?;
    moto.ec2
        .create_launch_template()
        .launch_template_name(LAUNCH_TEMPLATE)
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id(IMAGE_ID)
                .instance_type(InstanceType::T3Micro)
                .build(),
        )
        .send()
        .await
        .context("creating the launch template")?;
    Ok(subnet_id.to_owned())
}

async fn group(
    moto: &MotoClients,
    group_name: &str,
    subnet_id: &str,
    size: usize,
) -> anyhow::Result<()> {
    let size = i32::try_from(size).context("group size")?;
    moto.autoscaling
        .create_auto_scaling_group()
        .auto_scaling_group_name(group_name)
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_name(LAUNCH_TEMPLATE)
                .build(),
        )
        .min_size(0)
        // Room to scale out and to replace instances while others still wait.
        .max_size(size.saturating_mul(2).max(10))
        .desired_capacity(size)
        .vpc_zone_identifier(subnet_id)
        .send()
        .await
        .context("creating the autoscaling group")?;
    Ok(())
}

/// (queue URL, dead-letter queue URL, queue ARN)
async fn queues(moto: &MotoClients, names: &Names) -> anyhow::Result<(String, String, String)> {
    let dead_letter_queue_url = moto
        .sqs
        .create_queue()
        .queue_name(&names.dead_letter_queue)
        .send()
        .await
        .context("creating the dead-letter queue")?
        .queue_url
        .context("moto returned no dead-letter queue URL")?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": queue_arn(&names.dead_letter_queue),
        "maxReceiveCount": MAX_RECEIVE_COUNT.to_string(),
    });
    let queue_url = moto
        .sqs
        .create_queue()
        .queue_name(&names.queue)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .context("creating the lifecycle queue")?
        .queue_url
        .context("moto returned no queue URL")?;
    Ok((queue_url, dead_letter_queue_url, queue_arn(&names.queue)))
}

fn queue_arn(name: &str) -> String {
    format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}")
}

async fn put_hook(
    moto: &MotoClients,
    layer: &LifecycleLayer,
    names: &Names,
    queue_arn: &str,
    hook: HookSettings,
) -> anyhow::Result<()> {
    let role_arn = format!("arn:aws:iam::{ACCOUNT_ID}:role/etcd-lifecycle-hook");
    let whole_seconds = hook.heartbeat_timeout.as_secs_f64().ceil().max(1.0);
    let heartbeat = i32::try_from(whole_seconds as i64).context("heartbeat timeout")?;
    moto.autoscaling
        .put_lifecycle_hook()
        .auto_scaling_group_name(&names.group)
        .lifecycle_hook_name(&names.hook)
        .lifecycle_transition(TERMINATING)
        .notification_target_arn(queue_arn)
        .role_arn(&role_arn)
        .heartbeat_timeout(heartbeat)
        .default_result(hook.default_result.as_aws_str())
        .send()
        .await
        .context("putting the lifecycle hook")?;
    layer
        .hook_put(PutLifecycleHook {
            group_name: names.group.clone(),
            hook_name: names.hook.clone(),
            transition: Some(TERMINATING.to_owned()),
            notification_target_arn: Some(queue_arn.to_owned()),
            role_arn: Some(role_arn),
            notification_metadata: None,
            heartbeat_timeout: Some(hook.heartbeat_timeout),
            default_result: Some(hook.default_result),
        })
        .await
}

/// One plain PUT: moto checks no signature, and this spares the large S3 SDK.
async fn create_bucket(moto_url: &str, bucket: &str) -> anyhow::Result<()> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = http::Request::put(format!("{moto_url}/{bucket}"))
        // Moto routes unsigned requests by host; the credential scope makes it S3.
        .header(
            http::header::AUTHORIZATION,
            format!(
                "AWS4-HMAC-SHA256 Credential=test/20240101/{REGION}/s3/aws4_request, \
                 SignedHeaders=host, Signature=0"
            ),
        )
        .body(Full::new(Bytes::new()))?;
    let response = client
        .request(request)
        .await
        .context("creating the backup bucket")?;
    anyhow::ensure!(
        response.status().is_success(),
        "moto refused to create bucket {bucket}: {}",
        response.status()
    );
    Ok(())
}

/// The stack's order-signing key (the template's `OrderSigningKey`): an
/// ECC_NIST_P256 signing key, as the template makes it. The stand-in's
/// operator commands sign with it and its agents verify with it; moto does
/// not enforce its key policy (who may sign), the template's tests check it.
pub async fn order_signing_key(config: &aws_config::SdkConfig) -> anyhow::Result<String> {
    let created = aws_sdk_kms::Client::new(config)
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .description("etcd-aws stand-in: restore orders and start-empty permits")
        .send()
        .await
        .context("creating the order-signing key in moto")?;
    created
        .key_metadata()
        .and_then(|key| key.arn())
        .map(str::to_owned)
        .context("moto created the order-signing key without an ARN")
}
