//! What the template is generated from, validated before any JSON is built.
//!
//! Each type here can only hold a value that produces a working stack: a `ClusterSize`
//! is 3 or 5, an `InstanceType` knows its architecture, an `SshCidr` is never the whole
//! internet. The CLI parses flags into these types, so bad flags fail before anything
//! is generated or sent to AWS.

use etcd_aws_core::backup::lease_policy::LeasePolicy;
use etcd_aws_core::etcd::release::{EtcdRelease, ReleaseError};
use std::fmt;
use std::str::FromStr;

/// Why a generation option was refused; each message says what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error(
        "cluster size must be 3 or 5, got {0}: etcd needs an odd number of members, 3 survives \
         the loss of one node and 5 of two; more only slows every write"
    )]
    ClusterSize(String),
    #[error(
        "instance type {0:?} is not of the form family.size (for example t4g.medium or m7g.large)"
    )]
    InstanceType(String),
    #[error("etcd version {0:?} is not of the form MAJOR.MINOR.PATCH (for example 3.5.21)")]
    EtcdVersion(String),
    #[error(transparent)]
    EtcdRelease(#[from] ReleaseError),
    #[error("{0:?} is not a SHA-256 checksum (64 lowercase hexadecimal characters)")]
    Sha256(String),
    #[error("schedule {0:?} is not an EventBridge expression such as rate(15 minutes) or cron(0 * * * ? *)")]
    Schedule(String),
    #[error("SSH source {0:?} is not an IPv4 CIDR block such as 192.0.2.0/24")]
    SshCidrFormat(String),
    #[error(
        "SSH source {0} opens port 22 to the whole internet; give a narrow CIDR block, or use \
         SSM Session Manager (no SSH needed)"
    )]
    SshCidrOpen(String),
    #[error("SSH source {0} needs a key pair: pass --key-pair as well")]
    SshWithoutKeyPair(String),
    #[error(
        "VPC CIDR {0:?} must be a /16 block of the form A.B.0.0/16 (for example 10.40.0.0/16)"
    )]
    VpcCidr(String),
    #[error("network mode {0:?} is neither \"endpoints\" nor \"nat\"")]
    NetworkMode(String),
    #[error("{0:?} is not a VPC id such as vpc-0a1b2c3d4e5f60718")]
    VpcId(String),
    #[error("{0:?} is not a subnet id such as subnet-0a1b2c3d4e5f60718")]
    SubnetId(String),
    #[error("give three or five private subnets, each in another availability zone (the nodes spread over them); got {0}")]
    SubnetCount(usize),
    #[error("subnet {0} is given twice")]
    SubnetTwice(String),
    #[error("--vpc-id and --subnet-ids go together: the stack places its nodes, load balancer and functions in the given subnets of the given VPC")]
    ExistingVpcHalf,
    #[error("architecture {0:?} is neither \"arm64\" nor \"x86_64\"")]
    Architecture(String),
    #[error("backup retention must be between 1 and 3650 days, got {0}")]
    Retention(u32),
    #[error("the backups' Object Lock must last between 1 and 3650 days, got {0}; leave --backup-lock-days out for no lock")]
    LockDays(u32),
    #[error(
        "etcd's backend quota must be between 134217728 and 8589934592 bytes (128 MiB to 8 GiB; \
         etcd suggests at most 8 GiB, and a node needs memory for the whole database), got {0}"
    )]
    Quota(String),
    #[error("artifact prefix {0:?} must be empty or end with '/' and must not start with '/'")]
    ArtifactPrefix(String),
    #[error(
        "KMS key {0:?} must be alias/aws/secretsmanager (the AWS managed key) or a key ARN such as \
         arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab: the roles' \
         kms:Decrypt permission names the key by its ARN"
    )]
    SecretsKey(String),
}

/// Number of etcd members: 3 or 5, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterSize {
    Three,
    Five,
}

impl ClusterSize {
    pub fn count(self) -> u32 {
        match self {
            ClusterSize::Three => 3,
            ClusterSize::Five => 5,
        }
    }
}

impl FromStr for ClusterSize {
    type Err = OptionsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "3" => Ok(ClusterSize::Three),
            "5" => Ok(ClusterSize::Five),
            other => Err(OptionsError::ClusterSize(other.to_string())),
        }
    }
}

impl fmt::Display for ClusterSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.count())
    }
}

/// A CPU architecture, for instances and for functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Arm64,
    X86_64,
}

impl Architecture {
    /// Lambda's spelling.
    pub fn lambda_name(self) -> &'static str {
        match self {
            Architecture::Arm64 => "arm64",
            Architecture::X86_64 => "x86_64",
        }
    }

    /// The suffix of the public Amazon Linux 2023 SSM parameter.
    pub fn ami_parameter_suffix(self) -> &'static str {
        self.lambda_name()
    }

    /// etcd's release archives say amd64 where AWS says x86_64.
    pub fn etcd_release_name(self) -> &'static str {
        match self {
            Architecture::Arm64 => "arm64",
            Architecture::X86_64 => "amd64",
        }
    }
}

impl FromStr for Architecture {
    type Err = OptionsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "arm64" | "aarch64" => Ok(Architecture::Arm64),
            "x86_64" | "amd64" => Ok(Architecture::X86_64),
            other => Err(OptionsError::Architecture(other.to_string())),
        }
    }
}

/// An EC2 instance type; its architecture follows from its family (Graviton families
/// carry a `g` after the generation digit: t4g, m7g, c8g, r7gd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceType {
    name: String,
    architecture: Architecture,
}

impl InstanceType {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn architecture(&self) -> Architecture {
        self.architecture
    }
}

impl FromStr for InstanceType {
    type Err = OptionsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let name = text.trim();
        let refuse = || OptionsError::InstanceType(name.to_string());
        let (family, size) = name.split_once('.').ok_or_else(refuse)?;
        let well_formed = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        if !well_formed(family) || !well_formed(size) {
            return Err(refuse());
        }
        let generation_end = family
            .find(|c: char| c.is_ascii_digit())
            .ok_or_else(refuse)?;
        let attributes = family[generation_end..].trim_start_matches(|c: char| c.is_ascii_digit());
        let architecture = if attributes.starts_with('g') {
            Architecture::Arm64
        } else {
            Architecture::X86_64
        };
        Ok(InstanceType {
            name: name.to_string(),
            architecture,
        })
    }
}

/// An etcd release version a new stack may pin ([`EtcdRelease::check_deployable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdVersion(String);

impl EtcdVersion {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The release archive's file name for `architecture`.
    pub fn archive_name(&self, architecture: Architecture) -> String {
        format!(
            "etcd-v{}-linux-{}.tar.gz",
            self.0,
            architecture.etcd_release_name()
        )
    }

    /// The directory inside the archive.
    pub fn archive_directory(&self, architecture: Architecture) -> String {
        format!(
            "etcd-v{}-linux-{}",
            self.0,
            architecture.etcd_release_name()
        )
    }
}

impl FromStr for EtcdVersion {
    type Err = OptionsError;

    /// `3.5.16` (a leading `v` is dropped), a release the nodes' agent will
    /// run: the core's one rule ([`EtcdRelease::check_deployable`]).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let version = text.trim().trim_start_matches('v');
        let well_formed =
            version.split('.').count() == 3 && version.split('.').all(|p| p.parse::<u32>().is_ok());
        let release = EtcdRelease::parse(version)
            .filter(|_| well_formed)
            .ok_or_else(|| OptionsError::EtcdVersion(text.to_string()))?;
        release.check_deployable()?;
        Ok(EtcdVersion(version.to_string()))
    }
}

/// A SHA-256 checksum in hexadecimal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256(String);

impl Sha256 {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Sha256 {
    type Err = OptionsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let hex = text.trim().to_ascii_lowercase();
        if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(Sha256(hex))
        } else {
            Err(OptionsError::Sha256(text.to_string()))
        }
    }
}

/// etcd's backend quota (`--quota-backend-bytes`) in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaBytes(u64);

impl QuotaBytes {
    pub const MIN: u64 = 128 * 1024 * 1024;
    pub const MAX: u64 = 8 * 1024 * 1024 * 1024;

    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl Default for QuotaBytes {
    fn default() -> Self {
        QuotaBytes(defaults::QUOTA_BACKEND_BYTES)
    }
}

impl fmt::Display for QuotaBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for QuotaBytes {
    type Err = OptionsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().parse::<u64>() {
            Ok(bytes) if (Self::MIN..=Self::MAX).contains(&bytes) => Ok(QuotaBytes(bytes)),
            _ => Err(OptionsError::Quota(text.to_string())),
        }
    }
}

/// An EventBridge schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule(String);

impl Schedule {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Seconds between runs of a `rate(...)` expression; `None` for `cron(...)`, whose
    /// gaps vary.
    pub fn interval_seconds(&self) -> Option<u64> {
        let inner = self.0.strip_prefix("rate(")?.strip_suffix(')')?;
        let (count, unit) = inner.trim().split_once(' ')?;
        let count: u64 = count.parse().ok()?;
        let unit_seconds = match unit.trim() {
            "minute" | "minutes" => 60,
            "hour" | "hours" => 3_600,
            "day" | "days" => 86_400,
            _ => return None,
        };
        count.checked_mul(unit_seconds)
    }
}

impl FromStr for Schedule {
    type Err = OptionsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let expression = text.trim();
        let shaped = (expression.starts_with("rate(") || expression.starts_with("cron("))
            && expression.ends_with(')')
            && expression.len() > "rate()".len();
        if shaped {
            Ok(Schedule(expression.to_string()))
        } else {
            Err(OptionsError::Schedule(text.to_string()))
        }
    }
}

/// A /16 VPC block; the stack carves /24 subnets out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VpcCidr {
    first: u8,
    second: u8,
}

impl VpcCidr {
    pub fn block(&self) -> String {
        format!("{}.{}.0.0/16", self.first, self.second)
    }

    /// The /24 block number `third` inside the VPC.
    pub fn subnet(&self, third: u8) -> String {
        format!("{}.{}.{third}.0/24", self.first, self.second)
    }
}

impl Default for VpcCidr {
    fn default() -> Self {
        VpcCidr {
            first: 10,
            second: 40,
        }
    }
}

impl FromStr for VpcCidr {
    type Err = OptionsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refuse = || OptionsError::VpcCidr(text.to_string());
        let (address, length) = text.trim().split_once('/').ok_or_else(refuse)?;
        if length != "16" {
            return Err(refuse());
        }
        let octets: Vec<u8> = address
            .split('.')
            .map(|o| o.parse::<u8>().map_err(|_| refuse()))
            .collect::<Result<_, _>>()?;
        match octets.as_slice() {
            [first, second, 0, 0] => Ok(VpcCidr {
                first: *first,
                second: *second,
            }),
            _ => Err(refuse()),
        }
    }
}

/// An SSH source block that is not the whole internet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshCidr(String);

impl SshCidr {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SshCidr {
    type Err = OptionsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let cidr = text.trim();
        let (address, length) = cidr
            .split_once('/')
            .ok_or_else(|| OptionsError::SshCidrFormat(text.to_string()))?;
        let length: u8 = length
            .parse()
            .map_err(|_| OptionsError::SshCidrFormat(text.to_string()))?;
        let octets: Result<Vec<u8>, _> = address.split('.').map(str::parse::<u8>).collect();
        match octets {
            Ok(octets) if octets.len() == 4 && length <= 32 => {}
            _ => return Err(OptionsError::SshCidrFormat(text.to_string())),
        }
        // Anything wider than a /8 is the internet in all but name.
        if length < 8 {
            return Err(OptionsError::SshCidrOpen(cidr.to_string()));
        }
        Ok(SshCidr(cidr.to_string()))
    }
}

/// The id of a VPC that exists already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcId(String);

impl VpcId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for VpcId {
    type Err = OptionsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let id = text.trim();
        if aws_id(id, "vpc-") {
            Ok(VpcId(id.to_owned()))
        } else {
            Err(OptionsError::VpcId(text.to_owned()))
        }
    }
}

/// Three or five private subnets of an existing VPC, comma-separated, each
/// in another availability zone (deploy checks the zones before anything is
/// created; the template cannot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetIds(Vec<String>);

impl SubnetIds {
    pub fn ids(&self) -> &[String] {
        &self.0
    }
}

impl FromStr for SubnetIds {
    type Err = OptionsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut ids: Vec<String> = Vec::new();
        for id in text.split(',').map(str::trim).filter(|id| !id.is_empty()) {
            if !aws_id(id, "subnet-") {
                return Err(OptionsError::SubnetId(id.to_owned()));
            }
            if ids.iter().any(|known| known == id) {
                return Err(OptionsError::SubnetTwice(id.to_owned()));
            }
            ids.push(id.to_owned());
        }
        if ids.len() != 3 && ids.len() != 5 {
            return Err(OptionsError::SubnetCount(ids.len()));
        }
        Ok(SubnetIds(ids))
    }
}

/// `<prefix>` and 8 or 17 lowercase hex digits: how EC2 writes resource ids.
fn aws_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

/// A VPC the stack deploys into instead of creating one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingVpc {
    pub vpc_id: VpcId,
    pub subnet_ids: SubnetIds,
}

/// How the functions and the nodes reach the AWS APIs from their private subnets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// Interface endpoints for each API and an S3 gateway endpoint: no route to the
    /// internet at all.
    Endpoints,
    /// One NAT gateway in a public subnet: cheaper than the endpoints, but the instances
    /// can reach the internet.
    Nat,
}

impl FromStr for NetworkMode {
    type Err = OptionsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "endpoints" => Ok(NetworkMode::Endpoints),
            "nat" => Ok(NetworkMode::Nat),
            other => Err(OptionsError::NetworkMode(other.to_string())),
        }
    }
}

/// Where the build artifacts live: the function zips, the agent binary and the etcd
/// release archive, all under one prefix of one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPrefix(String);

impl ArtifactPrefix {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn key(&self, file: &str) -> String {
        format!("{}{file}", self.0)
    }
}

impl Default for ArtifactPrefix {
    fn default() -> Self {
        ArtifactPrefix(defaults::ARTIFACT_PREFIX.to_string())
    }
}

impl FromStr for ArtifactPrefix {
    type Err = OptionsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let prefix = text.trim();
        if prefix.starts_with('/') || !(prefix.is_empty() || prefix.ends_with('/')) {
            return Err(OptionsError::ArtifactPrefix(text.to_string()));
        }
        Ok(ArtifactPrefix(prefix.to_string()))
    }
}

/// The KMS key that encrypts the cluster's secrets (the CA and the functions' client
/// certificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsKey {
    /// `aws/secretsmanager`: its key policy lets the account's roles use it through
    /// Secrets Manager, so reading a secret needs no KMS permission.
    AwsManaged,
    /// A customer managed key, by ARN (the roles get `kms:Decrypt` on exactly it).
    Customer(String),
}

impl SecretsKey {
    /// The key's ARN for a customer managed key; `None` for the AWS managed one.
    pub fn customer_arn(&self) -> Option<&str> {
        match self {
            SecretsKey::AwsManaged => None,
            SecretsKey::Customer(arn) => Some(arn),
        }
    }
}

impl fmt::Display for SecretsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretsKey::AwsManaged => f.write_str(defaults::SECRETS_KMS_KEY),
            SecretsKey::Customer(arn) => f.write_str(arn),
        }
    }
}

impl FromStr for SecretsKey {
    type Err = OptionsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let key = text.trim();
        if key == defaults::SECRETS_KMS_KEY || key == "aws/secretsmanager" {
            return Ok(SecretsKey::AwsManaged);
        }
        let refuse = || OptionsError::SecretsKey(text.to_string());
        let parts: Vec<&str> = key.splitn(6, ':').collect();
        let [arn, partition, "kms", region, account, resource] = parts.as_slice() else {
            return Err(refuse());
        };
        let id = resource.strip_prefix("key/").ok_or_else(refuse)?;
        let well_formed = *arn == "arn"
            && partition.starts_with("aws")
            && !region.is_empty()
            && account.len() == 12
            && account.chars().all(|c| c.is_ascii_digit())
            && !id.is_empty()
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if well_formed {
            Ok(SecretsKey::Customer(key.to_string()))
        } else {
            Err(refuse())
        }
    }
}

/// File names of the artifacts under the prefix.
pub mod artifacts {
    pub const LIFECYCLE_ZIP: &str = "etcd-aws-lifecycle.zip";
    pub const BACKUP_ZIP: &str = "etcd-aws-backup.zip";
    pub const AGENT_BINARY: &str = "etcd-aws";
}

/// Defaults shared by [`Options::default`] and the command line.
pub mod defaults {
    pub const INSTANCE_TYPE: &str = "t4g.medium";
    /// The etcd the tests run, whose archive this project builds and pins
    /// (`etcd-archives.lock`).
    pub const ETCD_VERSION: &str = "3.5.30";
    pub const BACKUP_SCHEDULE: &str = "rate(15 minutes)";
    /// Health metrics every minute, so the no-leader alarm sees minutes, not hours;
    /// a run that finds nothing to do is a few status calls.
    pub const MAINTENANCE_SCHEDULE: &str = "rate(1 minute)";
    /// etcd's own default: far below the 8 GiB etcd suggests as a maximum, and
    /// well inside the 4 GiB of memory of the default t4g.medium.
    pub const QUOTA_BACKEND_BYTES: u64 = 2 * 1024 * 1024 * 1024;
    pub const RECONCILE_SCHEDULE: &str = "rate(10 minutes)";
    pub const BACKUP_RETENTION_DAYS: u32 = 30;
    pub const VPC_CIDR: &str = "10.40.0.0/16";
    pub const ARTIFACT_PREFIX: &str = "etcd-aws/";
    /// The AWS managed key of Secrets Manager.
    pub const SECRETS_KMS_KEY: &str = "alias/aws/secretsmanager";
}

/// Everything the template is generated from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub cluster_size: ClusterSize,
    pub instance_type: InstanceType,
    pub key_pair: Option<String>,
    pub ssh_cidr: Option<SshCidr>,
    pub etcd_version: EtcdVersion,
    /// Default of the `EtcdSha256` parameter; without it the deployer must supply one.
    pub etcd_sha256: Option<Sha256>,
    pub backup_schedule: Schedule,
    pub reconcile_schedule: Schedule,
    /// When the maintenance function runs (health metrics, defragmentation, NOSPACE).
    pub maintenance_schedule: Schedule,
    /// Default of the `EtcdQuotaBackendBytes` parameter.
    pub quota_backend_bytes: QuotaBytes,
    /// Default of the `RestoreLeases` parameter: what a restore does with the
    /// leases it brings back.
    pub restore_leases: LeasePolicy,
    /// How long S3 keeps backup versions that were overwritten or deleted.
    pub backup_retention_days: u32,
    /// S3 Object Lock on the backup bucket, governance mode, for this many
    /// days: no version of a backup can be removed before then, even by
    /// those who may delete it (they only hide it behind a delete marker).
    /// Off unless asked for ([`crate::backup_bucket`] says why the lock
    /// covers the whole bucket).
    pub backup_lock_days: Option<u32>,
    /// Default of the `AlarmEmail` parameter; without it the deployer must supply one.
    pub alarm_email: Option<String>,
    /// How a VPC of the stack's own reaches the AWS APIs.
    pub network_mode: NetworkMode,
    pub function_architecture: Architecture,
    pub vpc_cidr: VpcCidr,
    /// Default of the `ArtifactBucket` parameter.
    pub artifact_bucket: Option<String>,
    pub artifact_prefix: ArtifactPrefix,
    /// Deploy into this VPC and its subnets: the stack then creates no VPC,
    /// no endpoint and no NAT gateway, and `network_mode` does not apply.
    pub existing_vpc: Option<ExistingVpc>,
    /// SSM Session Manager on the nodes: its three interface endpoints (in
    /// endpoints mode) and its managed policy on the node role. Off unless
    /// asked for; SSH with a key pair is the other way in.
    pub session_manager: bool,
    /// Default of the `AgentSha256` parameter; without it the deployer must supply one.
    pub agent_sha256: Option<Sha256>,
    /// Default of the `OperatorRoleArns` parameter: who may sign restore
    /// orders and start-empty permits.
    pub operator_role_arns: Vec<String>,
}

impl Options {
    /// The checksum the nodes check their etcd archive against: the one given,
    /// else this project's pin for the version and the nodes' architecture.
    pub fn etcd_archive_sha256(&self) -> Option<Sha256> {
        self.etcd_sha256.clone().or_else(|| {
            crate::etcd_archive::pinned_sha256(
                &self.etcd_version,
                self.instance_type.architecture(),
            )
        })
    }

    /// Whether the stack creates interface endpoints for the AWS APIs: in
    /// endpoints mode, in a VPC of its own.
    pub fn creates_interface_endpoints(&self) -> bool {
        self.existing_vpc.is_none() && self.network_mode == NetworkMode::Endpoints
    }

    /// Checks the rules that involve more than one option.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if let (Some(cidr), None) = (&self.ssh_cidr, &self.key_pair) {
            return Err(OptionsError::SshWithoutKeyPair(cidr.as_str().to_string()));
        }
        if !(1..=3650).contains(&self.backup_retention_days) {
            return Err(OptionsError::Retention(self.backup_retention_days));
        }
        if let Some(days) = self
            .backup_lock_days
            .filter(|days| !(1..=3650).contains(days))
        {
            return Err(OptionsError::LockDays(days));
        }
        Ok(())
    }
}

impl Default for Options {
    /// Safe defaults: three Graviton nodes, no SSH, nothing reachable from the
    /// internet. A VPC of the stack's own reaches the AWS APIs through one NAT
    /// gateway: interface endpoints (no internet route at all) cost more than
    /// the three nodes (docs/benchmarks.md, "What it costs"), and a production
    /// cluster goes into the VPC its clients are in.
    fn default() -> Self {
        Options {
            cluster_size: ClusterSize::Three,
            instance_type: InstanceType {
                name: defaults::INSTANCE_TYPE.to_string(),
                architecture: Architecture::Arm64,
            },
            key_pair: None,
            ssh_cidr: None,
            etcd_version: EtcdVersion(defaults::ETCD_VERSION.to_string()),
            etcd_sha256: None,
            backup_schedule: Schedule(defaults::BACKUP_SCHEDULE.to_string()),
            reconcile_schedule: Schedule(defaults::RECONCILE_SCHEDULE.to_string()),
            maintenance_schedule: Schedule(defaults::MAINTENANCE_SCHEDULE.to_string()),
            quota_backend_bytes: QuotaBytes::default(),
            restore_leases: LeasePolicy::default(),
            backup_retention_days: defaults::BACKUP_RETENTION_DAYS,
            backup_lock_days: None,
            alarm_email: None,
            network_mode: NetworkMode::Nat,
            function_architecture: Architecture::Arm64,
            vpc_cidr: VpcCidr::default(),
            artifact_bucket: None,
            artifact_prefix: ArtifactPrefix::default(),
            existing_vpc: None,
            session_manager: false,
            agent_sha256: None,
            operator_role_arns: Vec::new(),
        }
    }
}
