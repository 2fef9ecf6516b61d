//! Peer discovery: the instances of this node's autoscaling group and their IPs.

use std::collections::HashMap;

use crate::error_chain::error_chain;
use std::net::IpAddr;

use aws_sdk_autoscaling::Client as AutoScalingClient;
use aws_sdk_ec2::Client as Ec2Client;

use etcd_aws_core::membership::instance::{Instance, LifecycleState};

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("AWS {operation} failed: {message}; check the endpoint, the region and that the role may call it")]
    Aws {
        operation: &'static str,
        message: String,
    },
    #[error("instance {0} belongs to no autoscaling group; etcd-aws must run on an instance of the cluster's group (or pass --group-name)")]
    NotInAGroup(String),
    #[error("autoscaling group {0} does not exist; check --group-name")]
    NoSuchGroup(String),
}

fn aws_error<E: std::error::Error>(operation: &'static str, error: E) -> DiscoveryError {
    DiscoveryError::Aws {
        operation,
        message: error_chain(&error),
    }
}

/// What EC2 alone says of an instance, group or not: where its member would be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Instance {
    pub private_ip: Option<IpAddr>,
}

/// Reads the group through the Auto Scaling and EC2 APIs.
#[derive(Debug, Clone)]
pub struct GroupDiscovery {
    autoscaling: AutoScalingClient,
    ec2: Ec2Client,
}

impl GroupDiscovery {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            autoscaling: AutoScalingClient::new(config),
            ec2: Ec2Client::new(config),
        }
    }

    /// The name of the autoscaling group an instance belongs to.
    pub async fn group_of(&self, instance_id: &str) -> Result<String, DiscoveryError> {
        let out = self
            .autoscaling
            .describe_auto_scaling_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| aws_error("DescribeAutoScalingInstances", e))?;
        out.auto_scaling_instances()
            .iter()
            .find_map(|i| i.auto_scaling_group_name().map(str::to_owned))
            .ok_or_else(|| DiscoveryError::NotInAGroup(instance_id.to_owned()))
    }

    /// Every instance of the group in every lifecycle state, with private IPs
    /// and launch times from EC2.
    pub async fn instances(&self, group: &str) -> Result<Vec<Instance>, DiscoveryError> {
        let out = self
            .autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(group)
            .send()
            .await
            .map_err(|e| aws_error("DescribeAutoScalingGroups", e))?;
        let asg = out
            .auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(group))
            .ok_or_else(|| DiscoveryError::NoSuchGroup(group.to_owned()))?;
        let members: Vec<(String, LifecycleState, Option<String>)> = asg
            .instances()
            .iter()
            .filter_map(|i| {
                let id = i.instance_id()?.to_owned();
                let state = i
                    .lifecycle_state()
                    .map_or(LifecycleState::Other(String::new()), |s| {
                        LifecycleState::parse(s.as_str())
                    });
                Some((id, state, i.availability_zone().map(str::to_owned)))
            })
            .collect();
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let details = self
            .ec2_details(members.iter().map(|(id, _, _)| id.clone()).collect())
            .await?;
        Ok(members
            .into_iter()
            .map(|(id, lifecycle_state, availability_zone)| {
                let (private_ip, launch_time) = details.get(&id).cloned().unwrap_or((None, None));
                Instance {
                    id,
                    private_ip,
                    lifecycle_state,
                    launch_time,
                    availability_zone,
                }
            })
            .collect())
    }

    /// What EC2 knows about an instance outside the group (a terminated one
    /// stays visible for a while): `None` when EC2 never heard of the id.
    /// Filtering instead of naming the id makes an unknown id an empty answer
    /// rather than an error that would look like an outage.
    pub async fn ec2_instance(
        &self,
        instance_id: &str,
    ) -> Result<Option<Ec2Instance>, DiscoveryError> {
        let out = self
            .ec2
            .describe_instances()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("instance-id")
                    .values(instance_id)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws_error("DescribeInstances", e))?;
        Ok(out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(instance_id))
            .map(|i| Ec2Instance {
                private_ip: i.private_ip_address().and_then(|ip| ip.parse().ok()),
            }))
    }

    async fn ec2_details(
        &self,
        ids: Vec<String>,
    ) -> Result<HashMap<String, (Option<IpAddr>, Option<i64>)>, DiscoveryError> {
        let mut details = HashMap::new();
        let mut pages = self
            .ec2
            .describe_instances()
            .set_instance_ids(Some(ids))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("DescribeInstances", e))?;
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = instance.instance_id() else {
                    continue;
                };
                let ip = instance.private_ip_address().and_then(|ip| ip.parse().ok());
                let launched = instance.launch_time().map(|t| t.secs());
                details.insert(id.to_owned(), (ip, launched));
            }
        }
        Ok(details)
    }
}
