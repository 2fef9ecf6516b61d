//! A cluster whose nodes boot as EC2 instances boot: every instance the
//! stand-in's group launches becomes a boot node (`boot_node.rs`: systemd as
//! PID 1, cloud-init, IMDSv2) whose cloud-init runs the stack's own user-data
//! (`etcd_aws_template::user_data`), rendered as CloudFormation renders its
//! `Fn::Sub` with the stand-in's values. The user-data fetches etcd and the
//! agent from the stand-in's artifact bucket and checks their pins, installs
//! the stand-in CloudWatch agent, writes the units and starts them; the agent
//! learns who it is from the metadata service, as on EC2, and the readiness
//! unit signals CloudFormation (the stand-in records the signals).
//!
//! What differs from EC2 is copied onto each node before it boots, from
//! tests/ec2-differences (its README lists and argues each difference), plus
//! one file made here: systemd's default environment, which points the AWS
//! CLI and the agent's SDK at the stand-in.

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use etcd_aws_core::backup::lease_policy::LeasePolicy;
use etcd_aws_template::names::{logical, parameters, READY_FILE};
use etcd_aws_template::node_logs::LOG_FILE;
use etcd_aws_template::options::{artifacts, Options};
use etcd_aws_template::{fn_sub, user_data};
use sha2::{Digest, Sha256};

use crate::boot_node::{BootHost, BootNode, BootSpec, NodeFile};
use crate::node::{NodeRunner, NodeSpec};
use crate::paths::{built_binary, workspace_root};
use crate::sim_cluster::SimCluster;
use crate::stand_in::imds::{Imds, ImdsOptions, ImdsRole};
use crate::stand_in::{Caller, StandIn, StandInOptions, SubnetRange, NODE_ROLE_ID};

/// The stack the nodes believe they belong to (`${AWS::StackName}`).
pub const STACK_NAME: &str = "etcd-boot";
/// The instance type the rendered user-data is for: an x86_64 one, as this
/// machine and its etcd packages are.
const INSTANCE_TYPE: &str = "m7i.large";
/// The instance profile's role as the metadata service names it.
const NODE_ROLE_NAME: &str = "etcd-boot-NodeRole";
/// Where the stand-in's differences from EC2 live in the repository.
const DIFFERENCES: &str = "tests/ec2-differences/root";
/// systemd's default environment on a test node, made by the harness.
const STAND_IN_ENVIRONMENT: &str = "/etc/systemd/system.conf.d/etcd-aws-stand-in.conf";

/// What every boot node of one cluster shares.
#[derive(Clone)]
pub struct BootSettings {
    host: BootHost,
    user_data: Arc<String>,
    artifacts: Arc<Artifacts>,
}

impl BootSettings {
    pub fn artifacts(&self) -> &Artifacts {
        &self.artifacts
    }

    pub fn imds(&self) -> &Imds {
        &self.host.imds
    }

    async fn for_stand_in(stand_in: &StandIn, imds: ImdsOptions) -> anyhow::Result<Self> {
        let networks = stand_in.docker_networks().context(
            "this stand-in's instances are not on Docker networks; start it with SubnetRange::Docker",
        )?;
        let options = Options {
            instance_type: INSTANCE_TYPE
                .parse()
                .map_err(|error| anyhow::anyhow!("instance type {INSTANCE_TYPE}: {error}"))?,
            ..Options::default()
        };
        let artifacts = put_artifacts(stand_in, &options).await?;
        let user_data = render_user_data(stand_in, &options, &artifacts)?;
        // Last, so that a slow start counts from just before the nodes boot.
        let imds = Arc::new(Imds::start(IpAddr::V4(networks.aws_gateway()), imds).await?);
        let mut host = BootHost::on(networks, imds).await?;
        host.files = differences_from_ec2(stand_in)?;
        Ok(Self {
            host,
            user_data: Arc::new(user_data),
            artifacts: Arc::new(artifacts),
        })
    }
}

/// The files the user-data fetches, where it fetches them from, and the
/// stack's values that name them.
#[derive(Debug, Clone)]
pub struct Artifacts {
    pub bucket: String,
    pub etcd_key: String,
    pub etcd_sha256: String,
    pub agent_key: String,
    pub agent_sha256: String,
    /// The log group the CloudWatch agent ships to (`${NodeLogs}`).
    pub log_group: String,
}

impl SimCluster<BootedNode> {
    /// The stand-in on Docker networks with a metadata service, the artifact
    /// bucket and the log group a stack has, and a boot node on every
    /// instance its group launches, now and later.
    pub async fn boot(options: StandInOptions) -> anyhow::Result<Self> {
        Self::boot_with(options, ImdsOptions::default()).await
    }

    /// The same, with a metadata service that starts as `imds` says (its
    /// slow start counts from before the first node starts).
    pub async fn boot_with(options: StandInOptions, imds: ImdsOptions) -> anyhow::Result<Self> {
        let stand_in = StandIn::start_on(options, SubnetRange::Docker).await?;
        let settings = BootSettings::for_stand_in(&stand_in, imds).await?;
        Self::start_nodes(stand_in, settings).await
    }
}

/// The artifact bucket as a deploy fills it: etcd's release archive and the
/// agent (as cargo built it for this machine) under the stack's artifact
/// prefix; and the nodes' log group.
async fn put_artifacts(stand_in: &StandIn, options: &Options) -> anyhow::Result<Artifacts> {
    let architecture = options.instance_type.architecture();
    let etcd_key = options
        .artifact_prefix
        .key(&options.etcd_version.archive_name(architecture));
    let agent_key = options.artifact_prefix.key(artifacts::AGENT_BINARY);
    let archive = etcd_archive(&options.etcd_version.archive_name(architecture))?;
    let agent = std::fs::read(built_binary("etcd-aws")?).context("reading the agent binary")?;

    let config = stand_in.sdk_config_as(Caller::Harness).await;
    let s3 = harness_s3(stand_in).await;
    let bucket = format!("{}-artifacts", stand_in.bucket());
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .with_context(|| format!("creating the artifact bucket {bucket}"))?;
    for (key, body) in [(&etcd_key, &archive), (&agent_key, &agent)] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(body.clone().into())
            .send()
            .await
            .with_context(|| format!("putting s3://{bucket}/{key}"))?;
    }
    let log_group = format!("/etcd-aws/{STACK_NAME}/nodes");
    aws_sdk_cloudwatchlogs::Client::new(&config)
        .create_log_group()
        .log_group_name(&log_group)
        .send()
        .await
        .with_context(|| format!("creating the log group {log_group}"))?;
    Ok(Artifacts {
        bucket,
        etcd_sha256: sha256_hex(&archive),
        etcd_key,
        agent_sha256: sha256_hex(&agent),
        agent_key,
        log_group,
    })
}

/// The harness's S3 client (path-style, as moto's endpoint needs), for the
/// artifact bucket.
pub async fn harness_s3(stand_in: &StandIn) -> aws_sdk_s3::Client {
    let config = stand_in.sdk_config_as(Caller::Harness).await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    )
}

/// The archive a deploy puts in the bucket: bootstrap/image/etcd-archive.sh
/// builds it from the pinned Debian packages, byte for byte the one whose
/// checksum the template's `EtcdSha256` defaults to (it checks that itself).
fn etcd_archive(name: &str) -> anyhow::Result<Vec<u8>> {
    let out = tempfile::Builder::new()
        .prefix("etcd-aws-archive-")
        .tempdir()
        .context("creating a directory for the etcd archive")?;
    let script = workspace_root().join("bootstrap/image/etcd-archive.sh");
    let output = std::process::Command::new(&script)
        .arg("amd64")
        .arg(out.path())
        .env_remove("ETCD_ARCHIVE_REPIN")
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "{} amd64 failed: {}{}",
        script.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let archive = out.path().join(name);
    std::fs::read(&archive).with_context(|| format!("reading {}", archive.display()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The user-data as CloudFormation hands it to an instance of this stack:
/// every `${...}` given the stand-in's value of the parameter, pseudo
/// parameter or resource attribute it names.
fn render_user_data(
    stand_in: &StandIn,
    options: &Options,
    artifacts: &Artifacts,
) -> anyhow::Result<String> {
    let pki = stand_in
        .pki()
        .context("boot nodes run TLS, as the stack's do: start the stand-in with tls")?;
    let values: Vec<(String, String)> = [
        ("AWS::Region", stand_in.region().to_owned()),
        ("AWS::StackName", STACK_NAME.to_owned()),
        (parameters::ARTIFACT_BUCKET, artifacts.bucket.clone()),
        (parameters::ETCD_SHA256, artifacts.etcd_sha256.clone()),
        (parameters::AGENT_SHA256, artifacts.agent_sha256.clone()),
        (parameters::CLUSTER_CA_SECRET_ARN, pki.ca_secret.clone()),
        (
            parameters::FUNCTIONS_CLIENT_SECRET_ARN,
            pki.functions_secret.clone(),
        ),
        (parameters::QUOTA_BACKEND_BYTES, "2147483648".to_owned()),
        (
            parameters::RESTORE_LEASES,
            LeasePolicy::default().as_str().to_owned(),
        ),
        (logical::BACKUP_BUCKET, stand_in.bucket().to_owned()),
        (logical::NODE_LOGS, artifacts.log_group.clone()),
        (
            &format!("{}.Arn", logical::ORDER_SIGNING_KEY),
            stand_in.order_signing_key().to_owned(),
        ),
        (
            &format!("{}.RoleId", logical::NODE_ROLE),
            NODE_ROLE_ID.to_owned(),
        ),
        (
            &format!("{}.DNSName", logical::LOAD_BALANCER),
            format!("{STACK_NAME}.elb.stand-in.internal"),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    Ok(fn_sub::render(&user_data::script(options), &values)?)
}

/// The files of tests/ec2-differences, and systemd's default environment
/// with the stand-in's endpoint and region.
fn differences_from_ec2(stand_in: &StandIn) -> anyhow::Result<Vec<NodeFile>> {
    let root = workspace_root().join(DIFFERENCES);
    let mut files = Vec::new();
    collect_files(&root, &root, &mut files)?;
    files.push(NodeFile {
        path: STAND_IN_ENVIRONMENT.to_owned(),
        content: format!(
            "# The test node's AWS is the stand-in (tests/ec2-differences/README.md).\n\
             [Manager]\nDefaultEnvironment=\"AWS_ENDPOINT_URL={}\" \"AWS_DEFAULT_REGION={}\"\n",
            stand_in.endpoint_url(),
            stand_in.region()
        )
        .into_bytes(),
        mode: 0o644,
    });
    Ok(files)
}

fn collect_files(root: &Path, dir: &Path, files: &mut Vec<NodeFile>) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(root, &path, files)?;
            continue;
        }
        let relative = path
            .strip_prefix(root)
            .with_context(|| format!("{} is outside {}", path.display(), root.display()))?;
        files.push(NodeFile {
            path: format!("/{}", relative.display()),
            content: std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
            mode: std::fs::metadata(&path)?.permissions().mode() & 0o777,
        });
    }
    Ok(())
}

/// An instance of the group, booted from the stack's user-data.
pub struct BootedNode {
    spec: NodeSpec,
    node: BootNode,
    killed: AtomicBool,
}

impl BootedNode {
    pub fn boot_node(&self) -> &BootNode {
        &self.node
    }
}

impl NodeRunner for BootedNode {
    type Settings = BootSettings;

    fn start(spec: NodeSpec, settings: &BootSettings) -> anyhow::Result<Self> {
        let boot = BootSpec {
            instance_id: spec.instance_id.clone(),
            private_ip: spec.private_ip,
            role: Some(ImdsRole {
                name: NODE_ROLE_NAME.to_owned(),
                access_key_id: Caller::Node.access_key_id().to_owned(),
                secret_access_key: "stand-in".to_owned(),
            }),
            user_data: settings.user_data.to_string(),
        };
        let node = BootNode::start(&settings.host, &boot)?;
        Ok(Self {
            spec,
            node,
            killed: AtomicBool::new(false),
        })
    }

    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    /// The agent's ready file, which the readiness unit waits for too.
    fn is_ready(&self) -> bool {
        !self.killed.load(Ordering::SeqCst)
            && self.node.exec_blocking(&["test", "-f", READY_FILE]).is_ok()
    }

    fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.node.remove();
    }

    /// The user-data's output, then the agent's log file (its and etcd's
    /// lines), as the node has them.
    fn log(&self) -> String {
        let read = |path: &str| {
            self.node
                .exec_blocking(&["tail", "-n", "200", path])
                .unwrap_or_else(|error| format!("(cannot read {path}: {error:#})"))
        };
        format!(
            "--- {} /var/log/cloud-init-output.log\n{}\n--- {LOG_FILE}\n{}",
            self.node.name(),
            read("/var/log/cloud-init-output.log"),
            read(LOG_FILE)
        )
    }
}
