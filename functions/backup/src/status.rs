//! The `{"job": "status"}` run: what the cluster looks like from inside the
//! VPC, for the operator's `status` and `restore` commands. It reads only,
//! and answers even when no member does (the report then says why).

use etcd_aws_core::clock;
use etcd_aws_core::contract::cluster_report::{
    ClusterReport, ReportedCertificates, ServedCertificate,
};
use etcd_aws_io::aws::discovery::GroupDiscovery;
use etcd_aws_io::etcd::admin::EtcdAccess;
use etcd_aws_io::etcd::version_endpoint;

use crate::certificates;
use crate::config::BackupConfig;
use crate::maintenance::{observe, MaintenanceError};

/// The report; an error only when the function cannot reach etcd at all
/// (its client certificate) or cannot read the group.
pub async fn run_status(
    config: &BackupConfig,
    quota_bytes: i64,
    sdk: &aws_config::SdkConfig,
) -> Result<ClusterReport, MaintenanceError> {
    let access = config.tls.access(sdk, config.etcd_timeouts).await?;
    let instances = GroupDiscovery::new(sdk)
        .instances(&config.group_name)
        .await?;
    // Each live instance with its member's client URL.
    let live: Vec<(String, String)> = instances
        .iter()
        .filter(|i| i.is_live())
        .filter_map(|i| Some((i.id.clone(), access.url(i.private_ip?, config.client_port))))
        .collect();
    let endpoints: Vec<String> = live.iter().map(|(_, url)| url.clone()).collect();
    if endpoints.is_empty() {
        return Ok(ClusterReport {
            error: Some(format!(
                "group {} has no live instance with a private IP",
                config.group_name
            )),
            quota_bytes,
            ..ClusterReport::of(&instances, &[], &[], &[], quota_bytes)
        });
    }
    let certificates = reported_certificates(&live, &access).await;
    match observe(&endpoints, &access).await {
        Ok(seen) => Ok(ClusterReport {
            cluster_version: cluster_version(&endpoints, &access).await,
            certificates,
            ..ClusterReport::of(
                &instances,
                &seen.members,
                &seen.statuses,
                &seen.alarms,
                quota_bytes,
            )
        }),
        Err(error) => Ok(ClusterReport {
            error: Some(format!("no member answered with the member list: {error}")),
            certificates,
            ..ClusterReport::of(&instances, &[], &[], &[], quota_bytes)
        }),
    }
}

/// When each certificate expires, each live instance's by its id. Read even
/// when no member answers: an expired certificate is a likely reason.
async fn reported_certificates(
    live: &[(String, String)],
    access: &EtcdAccess,
) -> ReportedCertificates {
    let endpoints: Vec<String> = live.iter().map(|(_, url)| url.clone()).collect();
    let seen = certificates::read(&endpoints, access).await;
    ReportedCertificates {
        nodes: live
            .iter()
            .zip(&seen.served)
            .map(|((instance, _), (_, at))| ServedCertificate {
                instance: instance.clone(),
                not_after: at.map(clock::unix_seconds),
            })
            .collect(),
        functions: seen.functions.map(clock::unix_seconds),
        ca: seen.ca.map(clock::unix_seconds),
    }
}

/// The cluster version as the first member that answers states it (every
/// member holds the same one, set through raft).
async fn cluster_version(endpoints: &[String], access: &EtcdAccess) -> Option<String> {
    for endpoint in endpoints {
        match version_endpoint::versions(endpoint, access).await {
            Ok(versions) => return Some(versions.cluster),
            Err(error) => tracing::info!(%endpoint, %error, "member did not say its versions"),
        }
    }
    None
}
