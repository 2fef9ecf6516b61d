//! Scenarios: rolling upgrades of etcd under a steady writer, a minor one
//! (3.4.23 to 3.5.16) and a patch one (3.5.16 to 3.5.30, the newest 3.5
//! Debian serves). The agent is the same binary throughout; only the etcd release
//! the group's launch template installs changes, as a stack update would
//! change it. The upgrade is the template's rolling update (MaxBatchSize 1,
//! MinInstancesInService = size): for each old instance, the group first
//! launches a new one and waits until it is a healthy voting member, then
//! terminates the old one through the lifecycle hook, and the lifecycle
//! function removes its member. After every step a checker reads back every
//! acknowledged write; each member's release and cluster version are read
//! from its plain-HTTP metrics port.
//!
//! Needs `make setup` (the three Debian releases) and the agent and both
//! functions built (make test does).

use std::time::Duration;

use etcd_aws_tests::life::{Life, LifeOptions, Steps};
use etcd_aws_tests::paths::EtcdRelease;
use etcd_aws_tests::sim_cluster::wait_for;

/// Bound on the whole scenario: formation, three batches, the version change.
const SCENARIO_LIMIT: Duration = Duration::from_secs(420);
/// A member that just joined may take a moment to report the cluster version;
/// the leader raises it a few seconds after the last old member left.
const VERSION_SETTLE: Duration = Duration::from_secs(30);

/// Waits until every running member runs the release its instance was
/// launched with and reports `expected` as the cluster version.
async fn cluster_version_everywhere(life: &Life, expected: &str) -> anyhow::Result<()> {
    let versions = wait_for(
        &format!("every member to report cluster version {expected}"),
        VERSION_SETTLE,
        || async {
            let versions = life.cluster.etcd_versions().await?;
            for (instance, reported) in &versions {
                let installed = life.cluster.with_node(instance, |n| n.spec().etcd)?;
                anyhow::ensure!(
                    reported.server == installed.version(),
                    "{instance} was launched with {installed} but its etcd says {}",
                    reported.server
                );
                anyhow::ensure!(
                    reported.cluster == expected,
                    "{instance} (etcd {}) reports cluster version {}; members: {versions:?}",
                    reported.server,
                    reported.cluster
                );
            }
            Ok(versions)
        },
    )
    .await?;
    let members: Vec<String> = versions
        .iter()
        .map(|(instance, v)| format!("{instance} on {}", v.server))
        .collect();
    life.say(&format!(
        "  cluster version {expected} on every member: {}",
        members.join(", ")
    ));
    Ok(())
}

/// The rolling update to `release`: for each old instance, one more
/// instance launched with it joins, then the old one is retired through the
/// lifecycle hook; the cluster version stays `during` while an old member
/// remains. Returns once every old instance has stopped.
async fn roll(
    life: &Life,
    steps: &mut Steps,
    release: EtcdRelease,
    during: &str,
) -> anyhow::Result<()> {
    life.cluster.launch_with_etcd(release);
    let old = life.cluster.instance_ids();
    for (index, victim) in old.iter().enumerate() {
        let name = format!(
            "batch {}: a {} node joins, {victim} leaves",
            index + 1,
            release.version()
        );
        steps
            .step(life, &name, async {
                life.launch_one_more().await?;
                cluster_version_everywhere(life, during).await?;
                life.retire(victim).await?;
                if index + 1 < old.len() {
                    cluster_version_everywhere(life, during).await?;
                }
                Ok(())
            })
            .await?;
        steps.require_available(life)?;
    }
    // The group stops a retired instance's node a moment after its member is
    // removed; on a busy machine that moment shows.
    wait_for("every old instance to stop", VERSION_SETTLE, || async {
        let old_left = life
            .cluster
            .instance_ids()
            .iter()
            .all(|id| !old.contains(id));
        anyhow::ensure!(old_left, "an old instance still runs");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_3_4_cluster_replaced_node_by_node_with_3_5_nodes_keeps_every_write_and_moves_to_cluster_version_3_5(
) -> anyhow::Result<()> {
    let life = Life::start(LifeOptions {
        etcd: EtcdRelease::V3_4_23,
        ..LifeOptions::default()
    })
    .await?;
    let mut steps = Steps::new();
    let played = tokio::time::timeout(SCENARIO_LIMIT, async {
        // 1. Three instances whose launch template installs etcd 3.4.23 form
        //    the cluster: every member runs 3.4.23, the cluster version is 3.4.
        steps
            .step(&life, "formed on etcd 3.4.23", async {
                life.formed().await?;
                cluster_version_everywhere(&life, "3.4").await
            })
            .await?;

        // 2. A stack update: the launch template now installs 3.5.16. The
        //    rolling update replaces the three old instances one at a time,
        //    the new one first, so the cluster never has fewer than three
        //    voters. While any 3.4 member remains, the cluster version stays
        //    3.4 on every member, old and new alike.
        roll(&life, &mut steps, EtcdRelease::V3_5_16, "3.4").await?;

        // 3. Every member runs 3.5.16 now: the leader sees it and raises the
        //    cluster version to 3.5, on every member.
        steps
            .step(
                &life,
                "cluster version 3.5",
                cluster_version_everywhere(&life, "3.5"),
            )
            .await
    })
    .await;
    steps.verdict(&life, SCENARIO_LIMIT, played)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_3_5_16_cluster_replaced_node_by_node_with_3_5_30_nodes_keeps_every_write_and_cluster_version_3_5(
) -> anyhow::Result<()> {
    let life = Life::start(LifeOptions {
        etcd: EtcdRelease::V3_5_16,
        ..LifeOptions::default()
    })
    .await?;
    let mut steps = Steps::new();
    let played = tokio::time::timeout(SCENARIO_LIMIT, async {
        steps
            .step(&life, "formed on etcd 3.5.16", async {
                life.formed().await?;
                cluster_version_everywhere(&life, "3.5").await
            })
            .await?;
        // A patch release: the cluster version is 3.5 before, during and
        // after, and each member runs the release its instance installed.
        roll(&life, &mut steps, EtcdRelease::V3_5_30, "3.5").await?;
        steps
            .step(
                &life,
                "every member on 3.5.30",
                cluster_version_everywhere(&life, "3.5"),
            )
            .await
    })
    .await;
    steps.verdict(&life, SCENARIO_LIMIT, played)
}
