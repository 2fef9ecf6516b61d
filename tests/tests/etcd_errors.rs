//! etcd's refusals, classified against a real etcd.
//!
//! The agent and the functions retry or give up by the kind of an etcd error
//! (`EtcdErrorKind`), which is read from the gRPC code and etcd's own error
//! string when the error is made. An etcd release that changed either would
//! silently turn a retry into a failure, or the reverse: these tests are where
//! that shows first.

use etcd_aws_core::etcd::ids::MemberId;
use std::time::Duration;

use etcd_aws_io::etcd::admin::{EtcdAccess, EtcdAdmin};
use etcd_aws_io::etcd::error::EtcdErrorKind;
use etcd_aws_io::tls::authority::ValidityPeriod;
use etcd_aws_io::tls::{ClusterCa, TlsCredentials};
use etcd_aws_tests::sim_cluster::{wait_for, SimCluster, HARNESS_TIMEOUTS};

const SETTLE: Duration = Duration::from_secs(60);

/// A peer URL in the cluster's own subnet where nothing runs.
fn unused_peer_url(cluster: &SimCluster, last: u8) -> String {
    format!("https://{}.{last}:2380", cluster.stand_in.subnet_prefix())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_refusals_are_told_apart_by_code_and_etcds_own_words() -> anyhow::Result<()> {
    let cluster = SimCluster::start(1).await?;
    let formed = cluster.wait_healthy(1, SETTLE).await?;
    let voter = formed.members[0].id;
    let admin =
        || async { EtcdAdmin::connect(&cluster.client_urls(), &cluster.etcd_access()).await };

    // Removing a member that is not there, and promoting one that already
    // votes, are done already: both calls answer Ok because etcd's refusal
    // was recognised as "member not found" and "not a learner".
    admin().await?.remove(MemberId(0x00c0_ffee)).await?;
    admin().await?.promote(voter).await?;

    // A learner that never started cannot be promoted: it is not in sync.
    let learner = admin()
        .await?
        .add_learner(&unused_peer_url(&cluster, 250))
        .await?;
    let not_in_sync = admin()
        .await?
        .promote(learner)
        .await
        .expect_err("promoted a learner that never ran");
    assert_eq!(
        not_in_sync.kind,
        EtcdErrorKind::LearnerNotInSync,
        "{not_in_sync}"
    );
    assert!(not_in_sync.is_transient());

    // etcd takes one learner at a time.
    let second = admin()
        .await?
        .add_learner(&unused_peer_url(&cluster, 251))
        .await
        .expect_err("a second learner was added");
    assert_eq!(second.kind, EtcdErrorKind::TooManyLearners, "{second}");
    assert!(second.is_transient());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_that_would_leave_too_few_active_members_is_an_unhealthy_cluster(
) -> anyhow::Result<()> {
    // Given three voting members, one of which has just died,
    let cluster = SimCluster::start(3).await?;
    let formed = cluster.wait_healthy(3, SETTLE).await?;
    let ids = cluster.instance_ids();
    let (asked, kept, dead) = (&ids[0], &ids[1], &ids[2]);
    cluster.with_node(dead, |node| node.kill())?;
    let asked_url = cluster.client_url(asked)?;
    let dead_member = member_id(&formed.members, dead)?;
    let asked_ip = cluster.with_node(asked, |node| node.spec().private_ip)?;
    wait_for("the dead member to count as inactive", SETTLE, || async {
        let metrics = metrics(asked_ip).await?;
        anyhow::ensure!(
            !peer_is_active(&metrics, dead_member),
            "still an active peer"
        );
        Ok(())
    })
    .await?;

    // removing a live one would leave one active member of two voters:
    let mut admin =
        EtcdAdmin::connect(std::slice::from_ref(&asked_url), &cluster.etcd_access()).await?;
    let refused = admin
        .remove(member_id(&formed.members, kept)?)
        .await
        .expect_err("etcd removed a member although quorum would be lost");
    assert_eq!(refused.kind, EtcdErrorKind::UnhealthyCluster, "{refused}");
    assert!(refused.is_transient());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_certificate_we_do_not_trust_is_a_refused_handshake() -> anyhow::Result<()> {
    let cluster = SimCluster::start(1).await?;
    cluster.wait_healthy(1, SETTLE).await?;
    let hour = Duration::from_secs(3600);
    let other = ClusterCa::generate("another cluster", ValidityPeriod::starting_now(hour))?;
    let issued = other.issue_client("stranger", ValidityPeriod::starting_now(hour))?;
    let stranger = EtcdAccess::tls(HARNESS_TIMEOUTS, TlsCredentials::issued_by(&other, issued));
    let refused = match EtcdAdmin::connect(&cluster.client_urls(), &stranger).await {
        Ok(mut admin) => admin.members().await.map(|_| ()),
        Err(error) => Err(error),
    }
    .expect_err("a stranger's CA verified the member");
    assert_eq!(refused.kind, EtcdErrorKind::TlsRefused, "{refused}");
    Ok(())
}

fn member_id(
    members: &[etcd_aws_core::membership::member::Member],
    name: &str,
) -> anyhow::Result<MemberId> {
    members
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.id)
        .ok_or_else(|| anyhow::anyhow!("no member named {name}"))
}

/// etcd's Prometheus metrics, from the plain-HTTP metrics port.
async fn metrics(ip: std::net::Ipv4Addr) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect((ip, 2381)).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: etcd\r\n\r\n")
        .await?;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer)).await??;
    Ok(answer)
}

/// `etcd_network_active_peers{Local="..",Remote="<id>"} 1` while etcd's
/// transport counts the peer as connected.
fn peer_is_active(metrics: &str, member: MemberId) -> bool {
    let remote = format!("Remote=\"{member}\"");
    metrics.lines().any(|line| {
        line.starts_with("etcd_network_active_peers{")
            && line.contains(&remote)
            && line.trim_end().ends_with(" 1")
    })
}
