//! Where the members are: the client URLs of the group's live instances, the
//! same for a backup and a maintenance run.

use etcd_aws_io::aws::discovery::{DiscoveryError, GroupDiscovery};
use etcd_aws_io::etcd::admin::EtcdAccess;

use crate::config::BackupConfig;

/// The client URL of every live instance of the group that has a private IP;
/// empty when none has.
pub async fn live_endpoints(
    config: &BackupConfig,
    sdk: &aws_config::SdkConfig,
    access: &EtcdAccess,
) -> Result<Vec<String>, DiscoveryError> {
    let instances = GroupDiscovery::new(sdk)
        .instances(&config.group_name)
        .await?;
    Ok(instances
        .iter()
        .filter(|i| i.is_live())
        .filter_map(|i| i.private_ip)
        .map(|ip| access.url(ip, config.client_port))
        .collect())
}
