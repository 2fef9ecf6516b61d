//! The Docker networks of a stand-in whose instances are containers.
//!
//! Two networks per lease X, both `--internal` so that nothing on them can
//! reach beyond this machine:
//! - the VPC's subnet, 172.28.X.0/24: each container gets the private IP moto
//!   assigned its instance, and cutting an instance off means disconnecting it
//!   from this network;
//! - 172.29.X.0/24, on which the stand-in's AWS endpoint listens (at its
//!   gateway, an address of this machine). An instance cut off from its peers
//!   keeps its AWS API, as in a partition between instances: that is when a
//!   wrong decision could form a second cluster, so that is what tests need.

use std::net::Ipv4Addr;

use anyhow::Context;

use super::subnet_lease::SubnetLease;
use crate::docker::{docker, docker_blocking};

/// The label every container and network of one lease carries, so that what a
/// crashed test process left behind can be found and removed.
const LABEL: &str = "etcd-aws.stand-in";
const AWS_FIRST_OCTETS: &str = "172.29";

/// Removes its networks, and any container still on them, when dropped.
#[derive(Debug)]
pub struct DockerNetworks {
    vpc: String,
    aws: String,
    aws_gateway: Ipv4Addr,
    label: String,
}

impl DockerNetworks {
    pub async fn create(lease: &SubnetLease) -> anyhow::Result<Self> {
        let octet = lease.third_octet();
        let aws_prefix = format!("{AWS_FIRST_OCTETS}.{octet}");
        let aws_gateway: Ipv4Addr = format!("{aws_prefix}.1")
            .parse()
            .context("the AWS network's gateway")?;
        let networks = DockerNetworks {
            vpc: format!("etcd-aws-vpc-{octet}"),
            aws: format!("etcd-aws-api-{octet}"),
            aws_gateway,
            label: format!("{LABEL}={}", lease.prefix()),
        };
        // The lease is ours, so anything carrying its label is a leftover.
        networks.remove_leftovers().await?;
        networks
            .create_network(&networks.vpc, &lease.prefix())
            .await?;
        networks.create_network(&networks.aws, &aws_prefix).await?;
        Ok(networks)
    }

    /// The network whose subnet is the VPC's.
    pub fn vpc_network(&self) -> &str {
        &self.vpc
    }

    /// The network on which the stand-in's AWS endpoint is reachable.
    pub fn aws_network(&self) -> &str {
        &self.aws
    }

    /// Where the AWS endpoint listens: this machine's address on `aws_network()`.
    pub fn aws_gateway(&self) -> Ipv4Addr {
        self.aws_gateway
    }

    /// `key=value` for `docker create --label`: containers carrying it are
    /// removed with the networks.
    pub fn container_label(&self) -> &str {
        &self.label
    }

    async fn create_network(&self, name: &str, prefix: &str) -> anyhow::Result<()> {
        docker(&[
            "network",
            "create",
            "--driver",
            "bridge",
            "--internal",
            "--subnet",
            &format!("{prefix}.0/24"),
            "--gateway",
            &format!("{prefix}.1"),
            "--label",
            &self.label,
            name,
        ])
        .await
        .with_context(|| format!("creating Docker network {name} ({prefix}.0/24)"))?;
        Ok(())
    }

    async fn remove_leftovers(&self) -> anyhow::Result<()> {
        let filter = format!("label={}", self.label);
        let containers = docker(&["ps", "--all", "--quiet", "--filter", &filter]).await?;
        let ids: Vec<&str> = containers.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "--force", "--volumes"];
            args.extend(ids);
            docker(&args).await?;
        }
        let networks = docker(&["network", "ls", "--quiet", "--filter", &filter]).await?;
        for id in networks.split_whitespace() {
            docker(&["network", "rm", id]).await?;
        }
        Ok(())
    }
}

impl Drop for DockerNetworks {
    fn drop(&mut self) {
        let filter = format!("label={}", self.label);
        if let Ok(containers) = docker_blocking(&["ps", "--all", "--quiet", "--filter", &filter]) {
            let ids: Vec<&str> = containers.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "--force", "--volumes"];
                args.extend(ids);
                let _ = docker_blocking(&args);
            }
        }
        for network in [&self.vpc, &self.aws] {
            if let Err(error) = docker_blocking(&["network", "rm", network]) {
                // The next stand-in on this lease removes it; say so meanwhile.
                tracing::warn!("leaving Docker network {network}: {error:#}");
            }
        }
    }
}
