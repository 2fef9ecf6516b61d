//! Scenario: a member whose data diverged from its peers' is not restarted
//! on that data forever: etcd's initial corruption check refuses it, and the
//! agent sets the data aside (never deleting it) and rejoins the healthy
//! quorum as a new learner.
//!
//! The divergence is made the way etcd's own corruption tests make it: the
//! member is stopped and one stored value is rewritten in place, at the same
//! length, in its backend file (bbolt keeps small values inline in its leaf
//! pages and has no page checksums), so the member restarts at the same
//! revision as its peers with a different hash.

use etcd_aws_core::contract::events;
use std::time::Duration;

use anyhow::Context;
use etcd_aws_tests::agent_log;
use etcd_aws_tests::sim_cluster::{wait_for, NodeOptions, SimCluster};
use etcd_aws_tests::stand_in::StandInOptions;
use etcd_client::{Client, GetOptions};

const SETTLE: Duration = Duration::from_secs(90);
const SNAPSHOT_EVERY: usize = 20;
const KEY: &str = "corruption/canary";
const ORIGINAL: &[u8] = b"canary-value-0123456789abcdef";
const TAMPERED: &[u8] = b"CANARY-VALUE-0123456789ABCDEF";

/// Rewrites every occurrence of `from` in `file` with `to` (same length);
/// returns how many there were.
fn rewrite_in_place(file: &std::path::Path, from: &[u8], to: &[u8]) -> anyhow::Result<usize> {
    anyhow::ensure!(from.len() == to.len(), "the rewrite must keep the length");
    let mut bytes =
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut found = 0;
    let mut at = 0;
    while let Some(offset) = bytes[at..].windows(from.len()).position(|w| w == from) {
        let start = at + offset;
        bytes[start..start + to.len()].copy_from_slice(to);
        found += 1;
        at = start + to.len();
    }
    std::fs::write(file, &bytes).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(found)
}

fn contains(file: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read(file).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_data_diverged_sets_it_aside_and_rejoins_from_the_quorum(
) -> anyhow::Result<()> {
    // Given a healthy three-member cluster holding a known value, whose
    // members have taken a raft snapshot since (etcd 3.5 learns a restarted
    // member's peers from its snapshot, and compares hashes only with peers
    // it knows; in production a snapshot follows every 10,000 entries),
    let cluster = SimCluster::start_with_nodes(
        StandInOptions::default(),
        NodeOptions {
            etcd_args: vec![format!("--snapshot-count={SNAPSHOT_EVERY}")],
            ..NodeOptions::default()
        },
    )
    .await?;
    let formed = cluster.wait_healthy(3, SETTLE).await?;
    let mut client = Client::connect(cluster.client_urls(), Some(cluster.client_options())).await?;
    client.put(KEY, ORIGINAL, None).await?;
    for n in 0..(3 * SNAPSHOT_EVERY) {
        client
            .put(format!("corruption/filler/{n}"), "x", None)
            .await?;
    }
    let victim = cluster.instance_ids()[2].clone();
    let old_member = formed
        .members
        .iter()
        .find(|m| m.name == victim)
        .map(|m| m.id)
        .context("the victim has no member")?;
    let data_dir = cluster.instance_root(&victim).join("etcd");
    let db = data_dir.join("member/snap/db");
    // (etcd commits its backend every 100 ms: wait until the value is on disk)
    wait_for("the value in the victim's backend file", SETTLE, || async {
        anyhow::ensure!(contains(&db, ORIGINAL), "not yet");
        Ok(())
    })
    .await?;

    // when that member is stopped and the value rewritten in its backend file,
    let victim_ip = cluster.with_node(&victim, |node| node.spec().private_ip)?;
    cluster.remove_node(&victim);
    wait_for("the victim's etcd to stop", SETTLE, || async {
        let listening = tokio::net::TcpStream::connect((victim_ip, 2379)).await;
        anyhow::ensure!(listening.is_err(), "still listening");
        Ok(())
    })
    .await?;
    let rewritten = rewrite_in_place(&db, ORIGINAL, TAMPERED)?;
    assert!(rewritten >= 1, "the value was not in the file");

    // and its node starts again on that disk,
    cluster.restart_node(&victim).await?;

    // etcd refuses the diverged data, the agent sets it aside and the node
    // rejoins as a new member: three healthy voters again,
    let rejoined = wait_for("the victim to rejoin as a new member", SETTLE, || async {
        let snapshot = cluster.snapshot().await?;
        let member = snapshot
            .members
            .iter()
            .find(|m| m.name == victim)
            .context("no member of the victim's")?;
        anyhow::ensure!(member.id != old_member, "still the old member");
        Ok(member.id)
    })
    .await
    .with_context(|| cluster.logs())?;
    let healed = cluster.wait_healthy(3, SETTLE).await?;
    assert!(healed.members.iter().any(|m| m.id == rejoined));
    let log = cluster.with_node(&victim, |node| node.log())?;
    assert!(log.contains("found data inconsistency with peers"), "{log}");
    assert!(agent_log::has_event(&log, events::DATA_DIVERGED), "{log}");

    // the diverged data is kept beside the new data dir, not deleted,
    let parent = data_dir.parent().context("data dir has a parent")?;
    let kept = std::fs::read_dir(parent)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("etcd.removed-"))
        })
        .context("the diverged data was not kept")?;
    assert!(contains(&kept.join("member/snap/db"), TAMPERED));

    // and the rejoined member serves the cluster's value, not its own.
    let own_url = cluster.client_url(&victim)?;
    let mut own = Client::connect([own_url], Some(cluster.client_options())).await?;
    let got = own
        .get(KEY, Some(GetOptions::new().with_serializable()))
        .await?;
    assert_eq!(
        got.kvs().first().map(|kv| kv.value().to_vec()),
        Some(ORIGINAL.to_vec())
    );
    Ok(())
}
