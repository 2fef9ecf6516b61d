//! The data the backup, dump and restore benchmarks share: a one-node
//! cluster of the real agent on the stand-in, grown to each size in turn,
//! and the AWS CLI pointed at the same stand-in S3 as the functions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use etcd_aws_io::backup_store::BackupStore;

use super::control_plane;
use super::data::{self, Filled};
use super::environment::Tools;
use super::process::Stage;
use etcd_aws_tests::sim_cluster::SimCluster;
use etcd_aws_tests::stand_in::StandInOptions;

/// Keys of the data set; the dump reads everything, this is only for counting.
pub const PREFIX: &str = "/bench/objects/";
/// Where the standard tool's snapshot goes in the bucket.
pub const STANDARD_SNAPSHOT_KEY: &str = "standard/etcdctl-snapshot.db";

pub struct Dataset {
    pub cluster: SimCluster,
    /// The one member's client URL: every tool reads this same member.
    pub endpoint: String,
    pub store: BackupStore,
    pub tools: Tools,
    pub work: PathBuf,
    /// The standard tools' stderr.
    pub log: PathBuf,
}

impl Dataset {
    /// A one-instance group (no lifecycle hook: nothing is terminated) and its
    /// node, healthy. One node, so every tool reads the same member and the
    /// disk holds the data once.
    pub async fn start(tools: Tools, work: &Path) -> anyhow::Result<Dataset> {
        let cluster = SimCluster::start_with(StandInOptions {
            lifecycle_hook: None,
            ..control_plane::plaintext(1)
        })
        .await
        .context("starting the one-node cluster for the data benchmarks")?;
        cluster.wait_healthy(1, Duration::from_secs(60)).await?;
        let endpoint = cluster
            .client_urls()
            .into_iter()
            .next()
            .context("the one-node cluster has no node")?;
        let store = BackupStore::new(
            &cluster.stand_in.sdk_config().await,
            cluster.stand_in.bucket(),
            "backups/",
        );
        Ok(Dataset {
            cluster,
            endpoint,
            store,
            tools,
            work: work.to_owned(),
            log: work.join("standard-tools.log"),
        })
    }

    pub async fn grow_to(&self, mib: u64) -> anyhow::Result<Filled> {
        data::fill_to(std::slice::from_ref(&self.endpoint), PREFIX, mib << 20).await
    }

    /// A write outside the data set, so the next backup has a new revision
    /// (the function uploads nothing for an unchanged one).
    pub async fn bump_revision(&self) -> anyhow::Result<()> {
        let mut client = etcd_client::Client::connect([&self.endpoint], None)
            .await
            .context("cannot connect to bump the revision")?;
        client
            .put("/bench/marker", crate::environment::utc_now(), None)
            .await
            .context("cannot bump the revision")?;
        Ok(())
    }

    /// `aws <args> --endpoint-url <stand-in>` with the stand-in's credentials
    /// and no user configuration.
    pub fn aws(&self, args: &[&str]) -> Stage {
        let mut env = self.cluster.stand_in.env();
        env.push(("AWS_CONFIG_FILE".into(), "/nonexistent/aws-config".into()));
        env.push((
            "AWS_SHARED_CREDENTIALS_FILE".into(),
            "/nonexistent/aws-credentials".into(),
        ));
        let endpoint = self.cluster.stand_in.endpoint_url();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--endpoint-url", &endpoint, "--only-show-errors"]);
        Stage::new(&self.tools.aws, &all).env(&env)
    }

    /// `etcdctl --endpoints=<member> <args>`, with a command timeout long
    /// enough for a gigabyte (its default of 5 s is not).
    pub fn etcdctl(&self, args: &[&str]) -> Stage {
        let endpoints = format!("--endpoints={}", self.endpoint);
        let mut all = vec![endpoints.as_str(), "--command-timeout=15m"];
        all.extend(args);
        Stage::new(&self.tools.etcdctl, &all).env(&[("ETCDCTL_API".into(), "3".into())])
    }

    pub fn s3_url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.store.bucket())
    }
}
