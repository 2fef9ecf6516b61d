//! The node's disk as its agent reports it: how full the data directory's
//! disk is, said as a `data_disk_use` line whose numeric fields the stack's
//! metric filter and alarm read (template/generator/tests/node_logs.rs).

use std::time::Duration;

use anyhow::Context;
use etcd_aws_core::contract::events;
use etcd_aws_core::etcd::disk::Disk;
use etcd_aws_io::data_dir;
use etcd_aws_tests::agent_log;
use etcd_aws_tests::sim_cluster::SimCluster;

const SETTLE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_reports_its_data_disk_use_as_numbers_the_alarm_reads() -> anyhow::Result<()>
{
    let cluster = SimCluster::start(1).await?;
    cluster.wait_healthy(1, SETTLE).await?;
    let id = cluster
        .instance_ids()
        .into_iter()
        .next()
        .context("the group has an instance")?;
    let (log, dir) = cluster.with_node(&id, |node| (node.log(), node.spec().data_dir()))?;
    let report = agent_log::events(&log, events::DATA_DISK_USE)
        .into_iter()
        .next()
        .with_context(|| format!("no {} line in the log:\n{log}", events::DATA_DISK_USE))?;
    // Numbers, not text: the metric filter's value is `$.used_percent`.
    let used_percent = report["used_percent"].as_f64().context("used_percent")?;
    let free_bytes = report["free_bytes"].as_u64().context("free_bytes")?;
    let total_bytes = report["total_bytes"].as_u64().context("total_bytes")?;
    assert!(total_bytes > 0 && free_bytes <= total_bytes, "{report}");
    // The share is the core's rule over the bytes reported beside it...
    let reported = Disk {
        free_bytes,
        total_bytes,
    };
    assert_eq!(used_percent, reported.used_percent(), "{report}");
    // ...of the disk the data directory is on.
    assert_eq!(
        data_dir::disk_of(&dir)?.total_bytes,
        total_bytes,
        "{report}"
    );
    Ok(())
}
