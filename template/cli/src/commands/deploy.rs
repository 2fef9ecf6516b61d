//! `etcd-aws-cfn deploy` (what runs with no command): print the stack's
//! template, or create or update the stack after making sure its secrets exist.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use etcd_aws_core::backup::lease_policy::LeasePolicy;
use etcd_aws_template::names;
use etcd_aws_template::names::parameters::{
    AGENT_SHA256, BACKUP_CODE_VERSION, CLUSTER_CA_SECRET_ARN, ETCD_SHA256,
    FUNCTIONS_CLIENT_SECRET_ARN, LIFECYCLE_CODE_VERSION, SECRETS_KMS_KEY_ARN, SUBNET_IDS, VPC_ID,
};
use etcd_aws_template::options::{
    defaults, Architecture, ArtifactPrefix, ClusterSize, EtcdVersion, ExistingVpc, InstanceType,
    NetworkMode, QuotaBytes, Schedule, SecretsKey, Sha256, SshCidr, SubnetIds, VpcCidr, VpcId,
};
use etcd_aws_template::{compact, render, template, Format, Options, TEMPLATE_BODY_LIMIT};

use crate::deploy::artifacts::{self, Pins};
use crate::deploy::change_set::{deploy, Deployed, Deployment};
use crate::deploy::cluster_secrets::{self, SecretsSettings};
use crate::deploy::preflight::{self, Finding};
use crate::deploy::secrets_key;
use crate::deploy::staging;

/// The stack's settings: what the template is generated from, and how the
/// deploy runs.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// Print the template on stdout instead of deploying it.
    #[arg(long, env = "ETCD_AWS_DRY_RUN")]
    dry_run: bool,
    /// Template format for --dry-run: json or yaml.
    #[arg(long, env = "ETCD_AWS_FORMAT", default_value = "json")]
    format: Format,
    /// Stack to create or update.
    #[arg(long, env = "ETCD_AWS_STACK_NAME", default_value = "etcd")]
    stack_name: String,
    /// Number of etcd members: 3 or 5.
    #[arg(long, env = "ETCD_AWS_CLUSTER_SIZE", default_value = "3")]
    cluster_size: ClusterSize,
    /// EC2 instance type; a Graviton type (t4g, m7g, ...) gives arm64 nodes.
    #[arg(long, env = "ETCD_AWS_INSTANCE_TYPE", default_value = defaults::INSTANCE_TYPE)]
    instance_type: InstanceType,
    /// EC2 key pair for SSH; without one, reach nodes with --session-manager, or not at all.
    #[arg(long, env = "ETCD_AWS_KEY_PAIR")]
    key_pair: Option<String>,
    /// CIDR block allowed to SSH to the nodes (needs --key-pair; never the whole internet).
    #[arg(long, env = "ETCD_AWS_SSH_CIDR")]
    ssh_cidr: Option<SshCidr>,
    /// etcd release installed on the nodes: 3.5.13 or newer, whose etcdutl bumps revisions on restore.
    #[arg(long, env = "ETCD_AWS_ETCD_VERSION", default_value = defaults::ETCD_VERSION)]
    etcd_version: EtcdVersion,
    /// SHA-256 of the etcd release archive for the nodes' architecture; defaults to
    /// this project's pin when the version is the one it builds (the default).
    #[arg(long, env = "ETCD_AWS_ETCD_SHA256")]
    etcd_sha256: Option<Sha256>,
    /// EventBridge schedule of the backups.
    #[arg(
        long,
        env = "ETCD_AWS_BACKUP_SCHEDULE",
        default_value = defaults::BACKUP_SCHEDULE
    )]
    backup_schedule: Schedule,
    /// EventBridge schedule of the member reconcile.
    #[arg(
        long,
        env = "ETCD_AWS_RECONCILE_SCHEDULE",
        default_value = defaults::RECONCILE_SCHEDULE
    )]
    reconcile_schedule: Schedule,
    /// EventBridge schedule of the maintenance runs: etcd's health metrics,
    /// defragmentation when a member's free space passes a threshold, NOSPACE recovery.
    #[arg(
        long,
        env = "ETCD_AWS_MAINTENANCE_SCHEDULE",
        default_value = defaults::MAINTENANCE_SCHEDULE
    )]
    maintenance_schedule: Schedule,
    /// etcd's backend quota in bytes (128 MiB to 8 GiB): past it the cluster refuses
    /// writes until space is reclaimed. Default of the EtcdQuotaBackendBytes parameter.
    #[arg(long, env = names::env::QUOTA_BACKEND_BYTES, default_value_t = QuotaBytes::default())]
    quota_backend_bytes: QuotaBytes,
    /// What a restore does with the leases it brings back: revoke (every holder of
    /// a lock or an election acquires it afresh) or keep. Default of the
    /// RestoreLeases parameter.
    #[arg(long, env = names::env::RESTORE_LEASES, default_value = "revoke")]
    restore_leases: LeasePolicy,
    /// Days S3 keeps backup versions that were deleted or overwritten.
    #[arg(long, env = "ETCD_AWS_BACKUP_RETENTION_DAYS", default_value_t = defaults::BACKUP_RETENTION_DAYS)]
    backup_retention_days: u32,
    /// Lock every backup version with S3 Object Lock (governance mode) for this
    /// many days: nobody without s3:BypassGovernanceRetention can remove one
    /// sooner, a deletion only hides it. Off by default; once a bucket has
    /// Object Lock, S3 cannot turn it off (docs/operations.md).
    #[arg(long, env = "ETCD_AWS_BACKUP_LOCK_DAYS")]
    backup_lock_days: Option<u32>,
    /// E-mail address that receives the alarms (required to deploy).
    #[arg(long, env = "ETCD_AWS_ALARM_EMAIL")]
    alarm_email: Option<String>,
    /// ARNs of the IAM roles whose members may order a restore or an empty
    /// start (comma-separated; required to deploy): only they may sign with the
    /// stack's order-signing key, and the nodes obey nothing else they find in
    /// the backup bucket.
    #[arg(long, env = "ETCD_AWS_OPERATOR_ROLE_ARNS", value_delimiter = ',')]
    operator_role_arns: Vec<String>,
    /// Deploy into this existing VPC (with --subnet-ids): the stack then creates no VPC,
    /// no endpoint and no NAT gateway, and checks first that the subnets reach S3 and
    /// the AWS APIs the nodes and functions call.
    #[arg(long, env = "ETCD_AWS_VPC_ID", requires = "subnet_ids")]
    vpc_id: Option<VpcId>,
    /// The existing VPC's private subnets for the nodes, the load balancer and the
    /// functions: three or five, comma-separated, each in another availability zone.
    #[arg(long, env = "ETCD_AWS_SUBNET_IDS", requires = "vpc_id")]
    subnet_ids: Option<SubnetIds>,
    /// SSM Session Manager on the nodes: its managed policy on the node role and, in a
    /// new VPC in endpoints mode, its three interface endpoints.
    #[arg(long, env = "ETCD_AWS_SESSION_MANAGER")]
    session_manager: bool,
    /// How a new VPC's private subnets reach the AWS APIs: nat (one NAT gateway)
    /// or endpoints (an interface endpoint per API in every zone: no internet
    /// route at all, and about 77 USD a month more at us-east-1 prices; see docs/benchmarks.md).
    #[arg(
        long,
        env = "ETCD_AWS_NETWORK_MODE",
        default_value = "nat",
        conflicts_with = "vpc_id"
    )]
    network_mode: NetworkMode,
    /// Architecture of the Lambda functions: arm64 or x86_64.
    #[arg(long, env = "ETCD_AWS_FUNCTION_ARCH", default_value = "arm64")]
    function_arch: Architecture,
    /// The VPC's /16 block.
    #[arg(long, env = "ETCD_AWS_VPC_CIDR", default_value = defaults::VPC_CIDR)]
    vpc_cidr: VpcCidr,
    /// Bucket holding the function zips, the etcd-aws binary and the etcd archive
    /// (required to deploy).
    #[arg(long, env = "ETCD_AWS_ARTIFACT_BUCKET")]
    artifact_bucket: Option<String>,
    /// Key prefix of the artifacts in the bucket.
    #[arg(long, env = "ETCD_AWS_ARTIFACT_PREFIX", default_value = defaults::ARTIFACT_PREFIX)]
    artifact_prefix: ArtifactPrefix,
    /// Deploy this template file instead of generating one.
    #[arg(long, env = "ETCD_AWS_TEMPLATE_FILE")]
    template_file: Option<PathBuf>,
    /// Minutes to wait for the stack operation before giving up watching it.
    #[arg(long, env = "ETCD_AWS_TIMEOUT_MINUTES", default_value_t = 60)]
    timeout_minutes: u64,
    /// Seconds between progress polls.
    #[arg(long, env = "ETCD_AWS_POLL_SECONDS", default_value_t = 5)]
    poll_seconds: u64,
    /// KMS key encrypting the cluster CA's and the functions' secrets when they are
    /// created: a key ARN, or alias/aws/secretsmanager (the AWS managed key, which
    /// any role of the account may use). Without it a new stack's secrets get a key
    /// of their own, alias/etcd-aws/<stack>/secrets, that only the stack's roles and
    /// --operator-role-arns may use (about 1 USD a month); existing secrets keep
    /// the key they have.
    #[arg(long, env = "ETCD_AWS_KMS_KEY_ID")]
    kms_key_id: Option<SecretsKey>,
    /// Issue the functions' client certificate anew (a deploy already does when it
    /// expires within 30 days).
    #[arg(long, env = "ETCD_AWS_REISSUE_FUNCTIONS_CERTIFICATE")]
    reissue_functions_certificate: bool,
    /// Upload the artifacts `make package` wrote under this directory (<dir>/<arch>/)
    /// to the artifact bucket, and pin them: the agent's and etcd's SHA-256, which the
    /// nodes check, and the object versions of the function zips, which the functions
    /// run. The bucket must be versioned.
    #[arg(long, env = "ETCD_AWS_ARTIFACTS_DIR")]
    artifacts_dir: Option<PathBuf>,
    /// SHA-256 of the etcd-aws agent binary in the artifact bucket, which the nodes
    /// refuse to install otherwise; computed from the binary with --artifacts-dir.
    #[arg(long, env = "ETCD_AWS_AGENT_SHA256")]
    agent_sha256: Option<Sha256>,
}

impl DeployArgs {
    fn options(&self) -> Options {
        Options {
            cluster_size: self.cluster_size,
            instance_type: self.instance_type.clone(),
            key_pair: self.key_pair.clone(),
            ssh_cidr: self.ssh_cidr.clone(),
            etcd_version: self.etcd_version.clone(),
            etcd_sha256: self.etcd_sha256.clone(),
            backup_schedule: self.backup_schedule.clone(),
            reconcile_schedule: self.reconcile_schedule.clone(),
            maintenance_schedule: self.maintenance_schedule.clone(),
            quota_backend_bytes: self.quota_backend_bytes,
            restore_leases: self.restore_leases,
            backup_retention_days: self.backup_retention_days,
            backup_lock_days: self.backup_lock_days,
            alarm_email: self.alarm_email.clone(),
            network_mode: self.network_mode,
            function_architecture: self.function_arch,
            vpc_cidr: self.vpc_cidr,
            artifact_bucket: self.artifact_bucket.clone(),
            artifact_prefix: self.artifact_prefix.clone(),
            existing_vpc: self
                .vpc_id
                .clone()
                .zip(self.subnet_ids.clone())
                .map(|(vpc_id, subnet_ids)| ExistingVpc { vpc_id, subnet_ids }),
            session_manager: self.session_manager,
            agent_sha256: self.agent_sha256.clone(),
            operator_role_arns: self.operator_role_arns.clone(),
        }
    }

    /// Deploying a generated template needs the values that have no safe default; a
    /// dry run leaves them to the template's parameters.
    fn check_deployable(&self) -> anyhow::Result<()> {
        if self.template_file.is_some() {
            return Ok(());
        }
        let missing: Vec<&str> = [
            ("--alarm-email", self.alarm_email.is_none()),
            (
                "--operator-role-arns (who may order a restore)",
                self.operator_role_arns.is_empty(),
            ),
            ("--artifact-bucket", self.artifact_bucket.is_none()),
            (
                "--etcd-sha256 (no archive of this etcd version is pinned) or --artifacts-dir",
                self.options().etcd_archive_sha256().is_none() && self.artifacts_dir.is_none(),
            ),
            (
                "--agent-sha256 or --artifacts-dir",
                self.agent_sha256.is_none() && self.artifacts_dir.is_none(),
            ),
        ]
        .into_iter()
        .filter_map(|(flag, absent)| absent.then_some(flag))
        .collect();
        if !missing.is_empty() {
            bail!(
                "deploying needs {} (or use --dry-run to print a template that asks for them as parameters)",
                missing.join(", ")
            );
        }
        Ok(())
    }
}

/// The existing VPC's preflight, said line by line; an error, before anything
/// is created, when the stack would not work there.
async fn check_existing_vpc(
    config: &aws_config::SdkConfig,
    vpc: &ExistingVpc,
) -> anyhow::Result<()> {
    let observed = preflight::observe(&aws_sdk_ec2::Client::new(config), vpc).await?;
    let findings = preflight::judge(vpc, &observed);
    let mut problems = 0;
    for finding in &findings {
        match finding {
            Finding::Ok(line) => tracing::info!(vpc = vpc.vpc_id.as_str(), "preflight: {line}"),
            Finding::Note(line) => {
                tracing::warn!(vpc = vpc.vpc_id.as_str(), "preflight, not checked: {line}")
            }
            Finding::Problem(line) => {
                problems += 1;
                tracing::error!(vpc = vpc.vpc_id.as_str(), "preflight: {line}");
            }
        }
    }
    if problems > 0 {
        bail!(
            "{} does not hold what the cluster needs ({problems} problems above); nothing was created",
            vpc.vpc_id.as_str()
        );
    }
    Ok(())
}

/// Stages a template too large to send inline in the artifact bucket; its URL.
async fn stage_template(
    args: &DeployArgs,
    config: &aws_config::SdkConfig,
    body: &str,
) -> anyhow::Result<String> {
    let bucket = args
        .artifact_bucket
        .as_deref()
        .ok_or(staging::StagingError::NoBucket { bytes: body.len() })?;
    let region = config
        .region()
        .map(|region| region.to_string())
        .context("staging the template in S3 needs a region (AWS_REGION)")?;
    let key = staging::staged_key(args.artifact_prefix.as_str(), body);
    staging::stage(&aws_sdk_s3::Client::new(config), bucket, &key, body).await?;
    tracing::info!(
        bucket,
        key,
        bytes = body.len(),
        "template staged in S3 (over the inline limit of {TEMPLATE_BODY_LIMIT} bytes)"
    );
    Ok(staging::template_url(bucket, &region, &key))
}

/// Uploads and pins the artifacts (`--artifacts-dir`), or pins those already in the
/// bucket; `None` when there is no bucket to look in (a `--template-file` deployed
/// without one: CloudFormation then asks for the pins it lacks).
async fn pin_artifacts(
    args: &DeployArgs,
    config: &aws_config::SdkConfig,
) -> anyhow::Result<Option<Pins>> {
    let Some(bucket) = args.artifact_bucket.as_deref() else {
        if args.artifacts_dir.is_some() {
            bail!("--artifacts-dir needs --artifact-bucket: the bucket to upload them to");
        }
        return Ok(None);
    };
    let options = args.options();
    let s3 = aws_sdk_s3::Client::new(config);
    let pins = match &args.artifacts_dir {
        Some(directory) => {
            let read = artifacts::read(artifacts::plan(directory, &options))?;
            artifacts::check(
                &read,
                options.etcd_archive_sha256().as_ref(),
                options.agent_sha256.as_ref(),
            )?;
            artifacts::upload(&s3, bucket, read).await?
        }
        None => artifacts::find_versions(&s3, bucket, &options).await?,
    };
    Ok(Some(pins))
}

/// Prints the template (`--dry-run`), or creates or updates the stack.
pub async fn run(args: &DeployArgs) -> anyhow::Result<()> {
    if args.dry_run {
        let template = template(&args.options())?;
        let text = render(&template, args.format)?;
        std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .context("writing the template to stdout")?;
        return Ok(());
    }
    args.check_deployable()?;
    let config = aws_config::load_from_env().await;
    let existing_vpc = args.options().existing_vpc;
    if let Some(vpc) = &existing_vpc {
        check_existing_vpc(&config, vpc).await?;
    }
    let pins = pin_artifacts(args, &config).await?;
    let mut options = args.options();
    if let Some(pins) = &pins {
        options.agent_sha256 = pins.agent_sha256.clone().or(options.agent_sha256);
        options.etcd_sha256 = pins.etcd_sha256.clone().or(options.etcd_sha256);
    }
    let template_body = match &args.template_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading template {}", path.display()))?,
        None => compact(&template(&options)?)?,
    };
    let template_url = if template_body.len() > TEMPLATE_BODY_LIMIT {
        Some(stage_template(args, &config, &template_body).await?)
    } else {
        None
    };
    let secrets_key = match &args.kms_key_id {
        Some(key) => key.clone(),
        None => secrets_key_of(args, &config).await?,
    };
    // Before the stack: its nodes cannot start, nor signal, without the CA.
    let secrets = cluster_secrets::ensure(
        &config,
        &SecretsSettings {
            stack: args.stack_name.clone(),
            key: secrets_key.clone(),
            reissue_functions_certificate: args.reissue_functions_certificate,
            operators: args.operator_role_arns.clone(),
        },
    )
    .await?;
    let client = aws_sdk_cloudformation::Client::new(&config);
    let mut parameters = vec![
        (CLUSTER_CA_SECRET_ARN.to_string(), secrets.ca_arn),
        (
            FUNCTIONS_CLIENT_SECRET_ARN.to_string(),
            secrets.functions_client_arn,
        ),
        (
            SECRETS_KMS_KEY_ARN.to_string(),
            secrets_key.customer_arn().unwrap_or_default().to_string(),
        ),
    ];
    // Given, not left to the defaults: the code a --template-file's stack runs is
    // the code this deploy uploaded or found.
    if let Some(pins) = pins {
        parameters.push((LIFECYCLE_CODE_VERSION.to_string(), pins.lifecycle_version));
        parameters.push((BACKUP_CODE_VERSION.to_string(), pins.backup_version));
        let checksums = [
            (AGENT_SHA256, pins.agent_sha256),
            (ETCD_SHA256, pins.etcd_sha256),
        ];
        for (name, sha) in checksums {
            if let Some(sha) = sha {
                parameters.push((name.to_string(), sha.as_str().to_string()));
            }
        }
    }
    // Given, not left to the defaults: the VPC the flags name is the one the
    // preflight checked, also for a --template-file.
    if let Some(vpc) = existing_vpc {
        parameters.push((VPC_ID.to_string(), vpc.vpc_id.as_str().to_string()));
        parameters.push((SUBNET_IDS.to_string(), vpc.subnet_ids.ids().join(",")));
    }
    let deployment = Deployment {
        stack_name: args.stack_name.clone(),
        template_body,
        template_url,
        parameters,
        timeout: Duration::from_secs(args.timeout_minutes.saturating_mul(60)),
        poll_interval: Duration::from_secs(args.poll_seconds.max(1)),
    };
    let result = deploy(&client, &deployment).await?;
    let word = match result {
        Deployed::Created => "created",
        Deployed::Updated => "updated",
        Deployed::Unchanged => "unchanged",
    };
    tracing::info!(stack = %args.stack_name, "stack {word}");
    Ok(())
}

/// The key for the secrets when `--kms-key-id` is not given: the one existing
/// secrets have, or the stack's own ([`secrets_key`]).
async fn secrets_key_of(
    args: &DeployArgs,
    config: &aws_config::SdkConfig,
) -> anyhow::Result<SecretsKey> {
    let stack = &args.stack_name;
    let ensure_own = || secrets_key::ensure(config, stack, &args.operator_role_arns);
    Ok(match cluster_secrets::current_key(config, stack).await? {
        None => ensure_own().await?.0,
        Some(SecretsKey::AwsManaged) => {
            tracing::warn!(
                "the secrets of stack {stack} exist under the AWS managed key aws/secretsmanager \
                 and keep it; their resource policies guard them. For a key of the stack's own, \
                 re-encrypt them (`aws secretsmanager update-secret --kms-key-id <key ARN>`) and \
                 deploy with --kms-key-id <key ARN>"
            );
            SecretsKey::AwsManaged
        }
        // The stack's own key: its policy is put again with the operators given now.
        Some(SecretsKey::Customer(arn))
            if secrets_key::is_stack_key(config, stack, &arn).await? =>
        {
            ensure_own().await?.0
        }
        Some(customer) => customer,
    })
}
