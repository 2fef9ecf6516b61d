//! Gathers an [`Observation`]: the group from AWS, peers by probing, the data dir.

use std::path::PathBuf;

use anyhow::Context;
use etcd_aws_core::membership::observation::{Me, Observation, PeerProbe};
use etcd_aws_io::aws::discovery::GroupDiscovery;
use etcd_aws_io::data_dir;
use etcd_aws_io::etcd::admin::EtcdAccess;
use etcd_aws_io::etcd::peer_probe;
use tokio::task::JoinSet;

pub struct Observer {
    pub discovery: GroupDiscovery,
    pub group: String,
    pub me: Me,
    pub data_dir: PathBuf,
    pub client_port: u16,
    pub access: EtcdAccess,
}

impl Observer {
    pub async fn observe(&self) -> anyhow::Result<Observation> {
        let group = self
            .discovery
            .instances(&self.group)
            .await
            .with_context(|| {
                format!(
                    "cannot list the instances of autoscaling group {}",
                    self.group
                )
            })?;
        let mut probes = JoinSet::new();
        for instance in group
            .iter()
            .filter(|i| i.is_live() && i.id != self.me.instance_id)
        {
            let Some(ip) = instance.private_ip else {
                continue;
            };
            let (id, port, access) = (instance.id.clone(), self.client_port, self.access.clone());
            probes.spawn(async move {
                PeerProbe {
                    instance_id: id,
                    state: peer_probe::probe_peer(ip, port, &access).await,
                }
            });
        }
        let mut results = Vec::new();
        while let Some(probe) = probes.join_next().await {
            results.push(probe.context("a peer probe task failed")?);
        }
        results.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        let local_data = data_dir::inspect(&self.data_dir)?;
        Ok(Observation {
            me: self.me.clone(),
            group,
            probes: results,
            local_data,
        })
    }
}
