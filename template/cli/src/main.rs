//! `etcd-aws-cfn`: print the etcd cluster's CloudFormation template, or deploy it
//! (after making sure the cluster CA and the functions' client certificate exist);
//! `etcd-aws-cfn issue-client-cert` issues a client certificate from the cluster CA;
//! `status`, `backups list`, `backup` and `restore` operate a running cluster
//! ([`etcd_aws_cfn::operate`]).
//!
//! See the library's documentation for what the stack contains.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use etcd_aws_cfn::client_certificate::{self, ClientCertificateRequest};
use etcd_aws_cfn::cluster_secrets::{self, SecretsSettings};
use etcd_aws_cfn::deploy::{deploy, Deployed, Deployment};
use etcd_aws_cfn::operate::function::BackupFunction;
use etcd_aws_cfn::operate::progress::Progress;
use etcd_aws_cfn::operate::restore::{Requested, RestoreRun, Waits};
use etcd_aws_cfn::operate::stack::{StackFlags, StackParts};
use etcd_aws_cfn::operate::status::{self, Limits};
use etcd_aws_cfn::operate::{self, commands};
use etcd_aws_cfn::staging;
use etcd_aws_core::clock::utc_stamp;
use etcd_aws_io::aws::discovery::GroupDiscovery;
use etcd_aws_io::backup_store::BackupStore;
use etcd_aws_io::logging::{self, LogFormat, LogTarget};
use etcd_aws_template::names;
use etcd_aws_template::names::parameters::{
    CLUSTER_CA_SECRET_ARN, FUNCTIONS_CLIENT_SECRET_ARN, SECRETS_KMS_KEY_ARN,
};
use etcd_aws_template::options::{
    defaults, Architecture, ArtifactPrefix, ClusterSize, EtcdVersion, InstanceType, NetworkMode,
    QuotaBytes, Schedule, SecretsKey, Sha256, SshCidr, VpcCidr,
};
use etcd_aws_template::{compact, render, template, Format, Options, TEMPLATE_BODY_LIMIT};

/// Generates the CloudFormation template of a self-healing etcd cluster, and creates or
/// updates its stack.
#[derive(Debug, Parser)]
#[command(name = "etcd-aws-cfn", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
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
    /// EC2 key pair for SSH; without one, reach nodes with SSM Session Manager.
    #[arg(long, env = "ETCD_AWS_KEY_PAIR")]
    key_pair: Option<String>,
    /// CIDR block allowed to SSH to the nodes (needs --key-pair; never the whole internet).
    #[arg(long, env = "ETCD_AWS_SSH_CIDR")]
    ssh_cidr: Option<SshCidr>,
    /// etcd release installed on the nodes (3.5 or newer).
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
    /// Days S3 keeps backup versions that were deleted or overwritten.
    #[arg(long, env = "ETCD_AWS_BACKUP_RETENTION_DAYS", default_value_t = defaults::BACKUP_RETENTION_DAYS)]
    backup_retention_days: u32,
    /// E-mail address that receives the alarms (required to deploy).
    #[arg(long, env = "ETCD_AWS_ALARM_EMAIL")]
    alarm_email: Option<String>,
    /// How private subnets reach the AWS APIs: endpoints (no internet route) or nat.
    #[arg(long, env = "ETCD_AWS_NETWORK_MODE", default_value = "endpoints")]
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
    /// created: alias/aws/secretsmanager (the AWS managed key) or a key ARN.
    #[arg(long, env = "ETCD_AWS_KMS_KEY_ID", default_value = defaults::SECRETS_KMS_KEY)]
    kms_key_id: SecretsKey,
    /// Issue the functions' client certificate anew (a deploy already does when it
    /// expires within 30 days).
    #[arg(long, env = "ETCD_AWS_REISSUE_FUNCTIONS_CERTIFICATE")]
    reissue_functions_certificate: bool,
    /// Log format on stderr: text (coloured only on a terminal) or json; levels from
    /// ETCD_AWS_LOG (RUST_LOG syntax).
    #[arg(long, global = true, env = names::env::LOG_FORMAT, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Issue a client certificate from the stack's cluster CA and write ca.pem, cert.pem
    /// and key.pem for etcdctl or any etcd client.
    IssueClientCert(IssueClientCert),
    /// Show every member (zone, role, leader, etcd and cluster version), the database
    /// against its quota, etcd's alarms, the newest backup, the continuous backup's
    /// loss window, the lifecycle queues and the functions' recent errors; exit 1
    /// when anything is not healthy (so it can gate a pipeline).
    ///
    /// Reads the cluster through the backup function (inside the VPC), so it works
    /// from a machine that cannot reach the members. Example:
    ///   etcd-aws-cfn status --stack-name prod --output json
    #[command(verbatim_doc_comment)]
    Status(StatusArgs),
    /// List the backups and the revisions a restore can reach.
    Backups {
        #[command(subcommand)]
        command: BackupsCommand,
    },
    /// Take a backup now through the backup function and wait for it to be stored.
    ///
    /// Example, before a risky change:  etcd-aws-cfn backup --stack-name prod
    #[command(verbatim_doc_comment)]
    Backup(OperateArgs),
    /// Bring the running cluster back to a backup, a revision or a time.
    ///
    /// Takes a safety backup first (restoring it undoes the restore), stops every
    /// member's etcd (clients are refused until the restored cluster serves), restores
    /// the seed from the target with revisions bumped past the old ones, lets the
    /// others join, backs up the restored cluster, and reports where it went back to.
    /// Interrupted, it is run again with the same target and carries on. Examples:
    ///   etcd-aws-cfn restore --to-time 2026-12-01T09:59:00Z
    ///   etcd-aws-cfn restore --to-revision 48211 --yes
    ///   etcd-aws-cfn restore --backup backups/snapshots/20261201T093000Z-r...db.zst
    #[command(verbatim_doc_comment)]
    Restore(RestoreArgs),
}

#[derive(Debug, Subcommand)]
enum BackupsCommand {
    /// Every snapshot (time, revision, size, cluster, checksum) and the stretches of
    /// revisions a restore can reach with the captured changes.
    ///
    /// Example:  etcd-aws-cfn backups list --verify
    #[command(verbatim_doc_comment)]
    List(ListArgs),
}

/// What every operator command needs: where the stack's parts are, how to print.
#[derive(Debug, clap::Args)]
struct OperateArgs {
    #[command(flatten)]
    stack: StackFlags,
    /// table (for people) or json (for scripts).
    #[arg(long, env = "ETCD_AWS_OUTPUT", value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    operate: OperateArgs,
    /// The newest snapshot older than this is a problem.
    #[arg(long, env = "ETCD_AWS_BACKUP_MAX_AGE", default_value = "1h", value_parser = humantime::parse_duration)]
    backup_max_age: Duration,
    /// The fullest member past this share of the quota (percent) is a problem.
    #[arg(long, env = "ETCD_AWS_QUOTA_WARN_PERCENT", default_value_t = 80)]
    quota_warn_percent: i64,
    /// A total loss now losing more than this (changes no snapshot or segment
    /// holds yet, by the age of the newest held one) is a problem.
    #[arg(long, env = "ETCD_AWS_LOSS_WINDOW_MAX", default_value = "2m", value_parser = humantime::parse_duration)]
    loss_window_max: Duration,
    /// How far back the functions' logs are searched for errors (shown, never
    /// a problem by themselves: what they lead to is).
    #[arg(long, env = "ETCD_AWS_ERRORS_WINDOW", default_value = "1h", value_parser = humantime::parse_duration)]
    errors_window: Duration,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    operate: OperateArgs,
    /// Download every snapshot and check it against its manifest's SHA-256.
    #[arg(long, env = "ETCD_AWS_VERIFY")]
    verify: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to_time", "to_revision", "backup"])))]
struct RestoreArgs {
    #[command(flatten)]
    operate: OperateArgs,
    /// Go back to the last change acknowledged by this time (RFC 3339, UTC).
    #[arg(long, env = "ETCD_AWS_RESTORE_TO_TIME", value_parser = humantime::parse_rfc3339_weak)]
    to_time: Option<std::time::SystemTime>,
    /// Go back to exactly this revision of the cluster.
    #[arg(long, env = "ETCD_AWS_RESTORE_TO_REVISION")]
    to_revision: Option<i64>,
    /// Go back to exactly this snapshot (its key, from `backups list`), without the
    /// changes captured after it.
    #[arg(long, env = "ETCD_AWS_RESTORE_BACKUP")]
    backup: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long, env = "ETCD_AWS_YES")]
    yes: bool,
    /// Bound on each wait: every node stopping, the restored cluster becoming whole.
    #[arg(long, env = "ETCD_AWS_RESTORE_TIMEOUT", default_value = "30m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// How often the progress is read.
    #[arg(long, env = "ETCD_AWS_RESTORE_POLL", default_value = "2s", value_parser = humantime::parse_duration)]
    poll: Duration,
}

#[derive(Debug, clap::Args)]
struct IssueClientCert {
    /// Stack whose cluster CA issues the certificate.
    #[arg(long, env = "ETCD_AWS_STACK_NAME", default_value = "etcd")]
    stack_name: String,
    /// Who the certificate is for (its common name, which etcd logs).
    #[arg(long, env = "ETCD_AWS_CLIENT_NAME")]
    name: String,
    /// How long the certificate is valid, such as 90days, 12h or 1year.
    #[arg(
        long,
        env = "ETCD_AWS_CLIENT_VALID_FOR",
        default_value = client_certificate::DEFAULT_VALIDITY,
        value_parser = humantime::parse_duration
    )]
    valid_for: Duration,
    /// Directory for ca.pem, cert.pem and key.pem (created if missing; the key is
    /// written readable by its owner only).
    #[arg(long, env = "ETCD_AWS_CLIENT_CERT_DIR")]
    out: PathBuf,
}

impl Cli {
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
            backup_retention_days: self.backup_retention_days,
            alarm_email: self.alarm_email.clone(),
            network_mode: self.network_mode,
            function_architecture: self.function_arch,
            vpc_cidr: self.vpc_cidr,
            artifact_bucket: self.artifact_bucket.clone(),
            artifact_prefix: self.artifact_prefix.clone(),
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
            ("--artifact-bucket", self.artifact_bucket.is_none()),
            (
                "--etcd-sha256 (no archive of this etcd version is pinned)",
                self.options().etcd_archive_sha256().is_none(),
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

async fn issue_client_cert(args: &IssueClientCert) -> anyhow::Result<()> {
    let config = aws_config::load_from_env().await;
    let request = ClientCertificateRequest {
        stack: args.stack_name.clone(),
        name: args.name.clone(),
        valid_for: args.valid_for,
        out: args.out.clone(),
    };
    let issued = client_certificate::issue(&config, &request).await?;
    tracing::info!(
        secret = %issued.secret,
        "issued a client certificate for {} valid until {}, written to {}",
        args.name.trim(),
        humantime::format_rfc3339_seconds(issued.not_after),
        args.out.display()
    );
    let cloudformation = aws_sdk_cloudformation::Client::new(&config);
    let endpoint = match client_certificate::client_endpoint(&cloudformation, &args.stack_name)
        .await
    {
        Ok(Some(endpoint)) => endpoint,
        Ok(None) => {
            tracing::warn!(stack = %args.stack_name, "the stack has no ClientEndpoint output yet; fill in the load balancer's DNS name below");
            client_certificate::placeholder_endpoint()
        }
        Err(error) => {
            tracing::warn!(stack = %args.stack_name, "could not read the stack's ClientEndpoint output ({error}); fill in the load balancer's DNS name below");
            client_certificate::placeholder_endpoint()
        }
    };
    let command = client_certificate::etcdctl_command(&endpoint, &issued.files);
    writeln!(std::io::stdout().lock(), "{command}").context("writing to stdout")?;
    Ok(())
}

/// Stages a template too large to send inline in the artifact bucket; its URL.
async fn stage_template(
    cli: &Cli,
    config: &aws_config::SdkConfig,
    body: &str,
) -> anyhow::Result<String> {
    let bucket = cli
        .artifact_bucket
        .as_deref()
        .ok_or(staging::StagingError::NoBucket { bytes: body.len() })?;
    let region = config
        .region()
        .map(|region| region.to_string())
        .context("staging the template in S3 needs a region (AWS_REGION)")?;
    let key = staging::staged_key(cli.artifact_prefix.as_str(), body);
    staging::stage(&aws_sdk_s3::Client::new(config), bucket, &key, body).await?;
    tracing::info!(
        bucket,
        key,
        bytes = body.len(),
        "template staged in S3 (over the inline limit of {TEMPLATE_BODY_LIMIT} bytes)"
    );
    Ok(staging::template_url(bucket, &region, &key))
}

/// Prints `value` as JSON, or `table` for people.
fn print(output: Output, value: &impl serde::Serialize, table: &str) -> anyhow::Result<()> {
    let text = match output {
        Output::Json => format!("{}\n", serde_json::to_string_pretty(value)?),
        Output::Table => table.to_owned(),
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .context("writing to stdout")
}

async fn operate(
    args: &OperateArgs,
) -> anyhow::Result<(aws_config::SdkConfig, StackParts, BackupStore)> {
    let config = aws_config::load_from_env().await;
    let parts = args.stack.resolve(&config).await?;
    let store = BackupStore::new(&config, &parts.bucket, &parts.prefix);
    Ok((config, parts, store))
}

/// Exit status 1 when the cluster is not healthy.
async fn show_status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let (config, parts, store) = operate(&args.operate).await?;
    let limits = Limits {
        backup_max_age_seconds: args.backup_max_age.as_secs() as i64,
        quota_warn_percent: args.quota_warn_percent,
        loss_window_max_seconds: args.loss_window_max.as_secs() as i64,
    };
    let view = commands::status(&config, &parts, &store, &limits, args.errors_window).await?;
    print(args.operate.output, &view, &status::table(&view))?;
    Ok(if view.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn list_backups(args: &ListArgs) -> anyhow::Result<()> {
    let (_, _, store) = operate(&args.operate).await?;
    let (rows, stretches) = commands::backups(&store, args.verify).await?;
    let mut table = format!(
        "{:<17} {:>12} {:>12} {:<9} {:<17} {:<12} KEY\n",
        "TAKEN", "REVISION", "BYTES", "KIND", "CLUSTER", "CHECKSUM"
    );
    for row in &rows {
        table.push_str(&format!(
            "{:<17} {:>12} {:>12} {:<9} {:<17} {:<12} {}\n",
            utc_stamp(row.created_at),
            row.revision,
            row.stored_bytes,
            row.kind,
            row.cluster_id,
            row.verified.to_string(),
            row.key
        ));
    }
    for stretch in &stretches {
        table.push_str(&format!(
            "point in time: revisions {} to {} (from the snapshot taken {})\n",
            stretch.from_revision,
            stretch.until_revision,
            utc_stamp(stretch.from_time)
        ));
    }
    print(
        args.operate.output,
        &serde_json::json!({"backups": rows, "point_in_time": stretches}),
        &table,
    )
}

async fn backup_now(args: &OperateArgs) -> anyhow::Result<()> {
    let (config, parts, _) = operate(args).await?;
    let progress = Progress::new();
    progress.step("backup", format!("invoking {}", parts.backup_function));
    let answer = BackupFunction::new(&config, &parts.backup_function)
        .backup()
        .await?;
    let table = format!(
        "{} {} (revision {}, {} bytes, from {}) in {:.1} s\n",
        if answer.uploaded {
            "stored"
        } else {
            "unchanged since"
        },
        answer.key,
        answer.revision,
        answer.stored_bytes,
        answer.member,
        progress.elapsed().as_secs_f64()
    );
    print(
        args.output,
        &serde_json::json!({"uploaded": answer.uploaded, "key": answer.key, "revision": answer.revision, "stored_bytes": answer.stored_bytes}),
        &table,
    )
}

async fn restore(args: &RestoreArgs) -> anyhow::Result<()> {
    let (config, parts, store) = operate(&args.operate).await?;
    let requested = match (&args.backup, args.to_revision, args.to_time) {
        (Some(key), _, _) => Requested::Backup(key.clone()),
        (None, Some(revision), _) => Requested::Revision(revision),
        (None, None, Some(time)) => Requested::Time(
            time.duration_since(std::time::UNIX_EPOCH)
                .context("--to-time is before 1970")?
                .as_millis() as i64,
        ),
        (None, None, None) => bail!("give --to-time, --to-revision or --backup"),
    };
    let resolved = operate::restore::resolve(&store, &requested).await?;
    tracing::info!(
        "restoring group {} to {}",
        parts.group_name,
        resolved.described
    );
    if !args.yes {
        confirm(&parts.group_name)?;
    }
    let function = BackupFunction::new(&config, &parts.backup_function);
    let progress = Progress::new();
    let run = RestoreRun {
        store: &store,
        function: &function,
        discovery: GroupDiscovery::new(&config),
        group: parts.group_name.clone(),
        waits: Waits {
            poll: args.poll,
            timeout: args.timeout,
        },
        progress: &progress,
    };
    let outcome = run.run(&resolved).await?;
    let out = outcome.clients_out_seconds.map_or_else(String::new, |s| {
        format!("; clients were refused for {s:.1} s")
    });
    let table = format!(
        "restored to {} (revision {}, acknowledged at {}) as cluster {} in {:.1} s{out}\nundo with: etcd-aws-cfn restore --backup {}\n",
        outcome.target,
        outcome.revision,
        outcome.time.as_deref().unwrap_or("an unrecorded time"),
        outcome.cluster_id,
        progress.elapsed().as_secs_f64(),
        outcome.safety_backup
    );
    print(args.operate.output, &outcome, &table)
}

/// Asks on the terminal; refuses without one (scripts pass --yes).
fn confirm(group: &str) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        bail!("a restore replaces the data of every member of {group}; confirm with --yes when not running on a terminal");
    }
    eprint!("This replaces the data of every member of {group}. Type the group's name to go on: ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .context("reading the confirmation")?;
    if answer.trim() != group {
        bail!("not confirmed; nothing was changed");
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Some(Command::IssueClientCert(args)) => {
            return issue_client_cert(args).await.map(|()| ExitCode::SUCCESS)
        }
        Some(Command::Status(args)) => return show_status(args).await,
        Some(Command::Backups {
            command: BackupsCommand::List(args),
        }) => return list_backups(args).await.map(|()| ExitCode::SUCCESS),
        Some(Command::Backup(args)) => return backup_now(args).await.map(|()| ExitCode::SUCCESS),
        Some(Command::Restore(args)) => return restore(args).await.map(|()| ExitCode::SUCCESS),
        None => {}
    }
    deploy_stack(cli).await.map(|()| ExitCode::SUCCESS)
}

async fn deploy_stack(cli: Cli) -> anyhow::Result<()> {
    if cli.dry_run {
        let template = template(&cli.options())?;
        let text = render(&template, cli.format)?;
        std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .context("writing the template to stdout")?;
        return Ok(());
    }
    cli.check_deployable()?;
    let template_body = match &cli.template_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading template {}", path.display()))?,
        None => compact(&template(&cli.options())?)?,
    };
    let config = aws_config::load_from_env().await;
    let template_url = if template_body.len() > TEMPLATE_BODY_LIMIT {
        Some(stage_template(&cli, &config, &template_body).await?)
    } else {
        None
    };
    // Before the stack: its nodes cannot start, nor signal, without the CA.
    let secrets = cluster_secrets::ensure(
        &config,
        &SecretsSettings {
            stack: cli.stack_name.clone(),
            key: cli.kms_key_id.clone(),
            reissue_functions_certificate: cli.reissue_functions_certificate,
        },
    )
    .await?;
    let client = aws_sdk_cloudformation::Client::new(&config);
    let deployment = Deployment {
        stack_name: cli.stack_name.clone(),
        template_body,
        template_url,
        parameters: vec![
            (CLUSTER_CA_SECRET_ARN.to_string(), secrets.ca_arn),
            (
                FUNCTIONS_CLIENT_SECRET_ARN.to_string(),
                secrets.functions_client_arn,
            ),
            (
                SECRETS_KMS_KEY_ARN.to_string(),
                cli.kms_key_id
                    .customer_arn()
                    .unwrap_or_default()
                    .to_string(),
            ),
        ],
        timeout: Duration::from_secs(cli.timeout_minutes.saturating_mul(60)),
        poll_interval: Duration::from_secs(cli.poll_seconds.max(1)),
    };
    let result = deploy(&client, &deployment).await?;
    let word = match result {
        Deployed::Created => "created",
        Deployed::Updated => "updated",
        Deployed::Unchanged => "unchanged",
    };
    tracing::info!(stack = %cli.stack_name, "stack {word}");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format, LogTarget::Process);
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}
