//! The group's instances as moto records them, with what EC2 adds (IP, launch time).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::SystemTime;

use anyhow::Context;

use super::moto_clients::MotoClients;

/// One instance of the stand-in's group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimInstance {
    pub id: String,
    pub private_ip: Ipv4Addr,
    /// As Auto Scaling shows it: "InService", "Terminating:Wait", ...
    pub lifecycle_state: String,
    pub launch_time: SystemTime,
}

/// A change in the group's membership, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceEvent {
    Launched {
        id: String,
        private_ip: Ipv4Addr,
    },
    /// The instance really stopped: its process should go now.
    Terminated {
        id: String,
    },
}

/// (instance id, lifecycle state) of the group's members, in moto's order.
pub async fn group_members(
    moto: &MotoClients,
    group_name: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let answer = moto
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group_name)
        .send()
        .await
        .with_context(|| format!("describing group {group_name}"))?;
    let group = answer
        .auto_scaling_groups()
        .first()
        .with_context(|| format!("group {group_name} does not exist"))?;
    Ok(group
        .instances()
        .iter()
        .filter_map(|instance| {
            let id = instance.instance_id()?.to_owned();
            let state = instance
                .lifecycle_state()
                .map(|state| state.as_str().to_owned())
                .unwrap_or_default();
            Some((id, state))
        })
        .collect())
}

/// Private IP and launch time of each instance, from EC2.
pub async fn ec2_details(
    moto: &MotoClients,
    ids: &[String],
) -> anyhow::Result<HashMap<String, (Ipv4Addr, SystemTime)>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let answer = moto
        .ec2
        .describe_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .context("describing instances")?;
    let mut details = HashMap::new();
    for instance in answer.reservations().iter().flat_map(|r| r.instances()) {
        let Some(id) = instance.instance_id() else {
            continue;
        };
        let ip: Ipv4Addr = instance
            .private_ip_address()
            .with_context(|| format!("instance {id} has no private IP"))?
            .parse()
            .with_context(|| format!("instance {id} has a malformed private IP"))?;
        let launch_time = instance
            .launch_time()
            .and_then(|time| SystemTime::try_from(*time).ok())
            .with_context(|| format!("instance {id} has no launch time"))?;
        details.insert(id.to_owned(), (ip, launch_time));
    }
    Ok(details)
}
