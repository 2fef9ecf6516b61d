//! Scenarios: what the holders of a lock and of an election see when every
//! node is lost and the cluster comes back from a backup taken before the
//! lock and the leadership changed hands.
//!
//! Real `etcdctl lock` and `etcdctl elect` processes hold them, keeping their
//! sessions' leases alive through the load balancer's one address (the
//! stand-in's, which sends a connection only to a node that says it is
//! ready). Each scenario takes a backup while holder A holds, then has A lose
//! to B the way a holder loses when its key goes (its process lives on and
//! keeps its lease alive, as a paused or partitioned process does), then
//! loses every node.
//!
//! A holder believes it holds for as long as its `etcdctl` runs: it exits
//! ("session expired") once its lease is gone.

use std::net::IpAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use etcd_aws_core::contract::events;
use etcd_aws_core::membership::member::url_ip;
use etcd_aws_tests::agent_log;
use etcd_aws_tests::load_balancer::LoadBalancer;
use etcd_aws_tests::paths::etcd_tool;
use etcd_aws_tests::sim_cluster::{wait_for, NodeOptions, SimCluster};
use etcd_aws_tests::stand_in::StandInOptions;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

const SETTLE: Duration = Duration::from_secs(120);
/// The lock's session TTL: longer than the outage, so that no session ends
/// by itself while the nodes are gone; short enough that a kept lease is
/// seen alive well past it.
const LOCK_TTL_SECONDS: u64 = 20;
/// How long after the restore the holders are watched: past the lock's TTL
/// and a keep-alive round of the election's 60 s session.
const WATCH_AFTER_RESTORE: Duration = Duration::from_secs(45);

/// One `etcdctl lock` or `etcdctl elect` process and what it printed.
struct Holder {
    name: &'static str,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Holder {
    fn start(name: &'static str, endpoint: &str, args: &[&str]) -> anyhow::Result<Self> {
        let mut child = Command::new(etcd_tool("etcdctl")?)
            .arg(format!("--endpoints={endpoint}"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting etcdctl for holder {name}"))?;
        let stdout = child.stdout.take().context("etcdctl's stdout")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(mut lines) = sink.lock() {
                    lines.push(line);
                }
            }
        });
        Ok(Self { name, child, lines })
    }

    /// The key it holds, once `etcdctl` printed it (it prints the key when
    /// it acquires, then holds until its session ends).
    async fn wait_until_holding(&self, timeout: Duration) -> anyhow::Result<String> {
        wait_for(
            &format!("holder {} to hold", self.name),
            timeout,
            || async {
                self.lines
                    .lock()
                    .ok()
                    .and_then(|lines| lines.first().cloned())
                    .context("nothing printed yet")
            },
        )
        .await
    }

    fn holds(&self) -> bool {
        self.lines.lock().is_ok_and(|lines| !lines.is_empty())
    }

    /// Whether its `etcdctl` still runs: it still believes it holds.
    fn believes(&mut self) -> bool {
        self.holds() && matches!(self.child.try_wait(), Ok(None))
    }
}

/// A plaintext three-node cluster whose agents restore leases as `policy`
/// says, and the load balancer in front of it.
async fn cluster(policy: &str) -> anyhow::Result<(SimCluster, LoadBalancer)> {
    let cluster = SimCluster::start_with_nodes(
        StandInOptions {
            tls: false,
            ..StandInOptions::default()
        },
        NodeOptions {
            agent_args: vec!["--restore-leases".to_owned(), policy.to_owned()],
            ..NodeOptions::default()
        },
    )
    .await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let endpoints = cluster.endpoints();
    let balancer = LoadBalancer::start(move || {
        endpoints
            .urls()
            .iter()
            .filter_map(|url| url_ip(url))
            .collect::<Vec<IpAddr>>()
    })
    .await?;
    Ok((cluster, balancer))
}

/// Holder A acquires, B waits behind it; a backup is taken; then A's key is
/// deleted, so B acquires while A's process lives on. Returns (A, B).
async fn change_hands_after_a_backup(
    cluster: &SimCluster,
    acquire: impl Fn(&'static str) -> anyhow::Result<Holder>,
) -> anyhow::Result<(Holder, Holder)> {
    let a = acquire("A")?;
    let a_key = a.wait_until_holding(SETTLE).await?;
    let b = acquire("B")?;
    // B's session and its waiting key exist before the backup, as a second
    // candidate's do in any deployment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    anyhow::ensure!(!b.holds(), "B holds while A does");
    cluster.backup_now().await?;
    cluster.client().await?.delete(a_key.as_str(), None).await?;
    b.wait_until_holding(SETTLE).await?;
    Ok((a, b))
}

/// Every node and disk is lost; waits for the restored cluster and watches
/// the holders for a while. Returns how many still believe they hold.
async fn lose_everything_and_count_believers(
    cluster: &SimCluster,
    holders: &mut [&mut Holder],
) -> anyhow::Result<usize> {
    anyhow::ensure!(
        holders.iter_mut().all(|h| h.believes()),
        "a holder stopped before the loss"
    );
    cluster.lose_every_instance().await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let restored = Instant::now();
    while restored.elapsed() < WATCH_AFTER_RESTORE {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(holders
        .iter_mut()
        .map(|h| h.believes())
        .filter(|b| *b)
        .count())
}

fn lock(endpoint: String) -> impl Fn(&'static str) -> anyhow::Result<Holder> {
    move |name| {
        Holder::start(
            name,
            &endpoint,
            &[
                "lock",
                &format!("--ttl={LOCK_TTL_SECONDS}"),
                "restore-leases/lock",
            ],
        )
    }
}

fn elect(endpoint: String) -> impl Fn(&'static str) -> anyhow::Result<Holder> {
    move |name| Holder::start(name, &endpoint, &["elect", "restore-leases/leader", name])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_no_holder_that_lost_a_lock_or_an_election_finds_it_again_after_a_restore(
) -> anyhow::Result<()> {
    let (cluster, balancer) = cluster("revoke").await?;
    let (mut lock_a, mut lock_b) =
        change_hands_after_a_backup(&cluster, lock(balancer.url())).await?;
    let (mut leader_a, mut leader_b) =
        change_hands_after_a_backup(&cluster, elect(balancer.url())).await?;

    let believers = lose_everything_and_count_believers(
        &cluster,
        &mut [&mut lock_a, &mut lock_b, &mut leader_a, &mut leader_b],
    )
    .await?;

    // Every restored lease was revoked: each holder was told its lease is
    // gone, and none believes it holds (they would acquire afresh).
    assert_eq!(believers, 0, "holders still believing after the restore");
    assert!(
        agent_log::events(&cluster.logs(), events::LEASES_REVOKED)
            .iter()
            .any(|line| line["revoked"].as_u64() >= Some(4)),
        "{}",
        cluster.logs()
    );
    let mut client = cluster.client().await?;
    for prefix in ["restore-leases/lock", "restore-leases/leader"] {
        let held = client
            .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
            .await?;
        assert_eq!(held.count(), 0, "{prefix} still has holders' keys");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeping_the_leases_hands_a_lock_back_to_the_holder_that_had_lost_it() -> anyhow::Result<()>
{
    let (cluster, balancer) = cluster("keep").await?;
    let (mut a, mut b) = change_hands_after_a_backup(&cluster, lock(balancer.url())).await?;

    let believers = lose_everything_and_count_believers(&cluster, &mut [&mut a, &mut b]).await?;

    // The restored leases live on, and so do both sessions: A holds the
    // restored lock key (the oldest), and B, which took the lock over before
    // the loss, still believes it holds it too. This is what `keep` risks.
    assert_eq!(believers, 2);
    let held = cluster
        .client()
        .await?
        .get(
            "restore-leases/lock",
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await?;
    assert_eq!(held.count(), 2, "both holders' keys are restored");
    Ok(())
}
