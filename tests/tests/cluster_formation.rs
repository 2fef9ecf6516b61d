//! Scenario: three instances start at the same moment and form one cluster.

use std::collections::HashSet;
use std::time::Duration;

use etcd_aws_tests::sim_cluster::SimCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_started_together_form_exactly_one_cluster() -> anyhow::Result<()> {
    // Given a group of three whose node agents all start at once,
    let cluster = SimCluster::start(3).await?;

    // when they settle, there are three started voting members,
    let snapshot = cluster.wait_healthy(3, Duration::from_secs(60)).await?;
    assert_eq!(snapshot.members.len(), 3);

    // and every node reports the same cluster: no second cluster was formed.
    let mut cluster_ids = HashSet::new();
    for id in cluster.instance_ids() {
        let seen = cluster.snapshot_via(&cluster.client_url(&id)?).await?;
        assert_eq!(seen.members.len(), 3, "{id} sees {:?}", seen.members);
        cluster_ids.insert(seen.cluster_id);
    }
    assert_eq!(
        cluster_ids.len(),
        1,
        "nodes disagree on the cluster id: {cluster_ids:x?}"
    );
    Ok(())
}
