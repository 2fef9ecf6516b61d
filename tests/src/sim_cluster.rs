//! A simulated cluster: the AWS stand-in plus one node per instance, started and
//! killed as the autoscaling group launches and terminates them. A node is a
//! local process (`Node`, the default) or a container (`ContainerNode`).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use etcd_aws_backup::{run_backup, BackupConfig};
use etcd_aws_core::backup::manifest::BackupManifest;
use etcd_aws_core::etcd::ids::ClusterId;
use etcd_aws_core::membership::member::Member;
use etcd_aws_io::etcd::admin::{EtcdAccess, EtcdAdmin, EtcdTimeouts};
use etcd_client::ConnectOptions;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::etcd_metrics::{member_versions, MemberVersions};
use crate::lock;
use crate::node::{Node, NodeRunner, NodeSpec};
use crate::paths::EtcdRelease;
use crate::stand_in::{Caller, InstanceEvent, StandIn, StandInOptions};

/// Nodes by instance id, plus the ids the group has terminated (never restarted).
struct Fleet<N> {
    nodes: HashMap<String, N>,
    terminated: HashSet<String>,
}

impl<N> Default for Fleet<N> {
    fn default() -> Self {
        Self {
            nodes: HashMap::new(),
            terminated: HashSet::new(),
        }
    }
}

/// How the harness starts every node, beyond what the stand-in decides.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// Give the agent no group name, as the template's user data does: it asks
    /// Auto Scaling which group its instance is in. The default names the group,
    /// which spares every start a call.
    pub discover_group: bool,
    /// The agent's own flags on every node, such as `--restore-leases keep`.
    pub agent_args: Vec<String>,
    /// etcd flags every node's agent passes on (after `--`), such as a small
    /// `--quota-backend-bytes`.
    pub etcd_args: Vec<String>,
    /// The etcd release the group's launch template installs on its instances
    /// (until `SimCluster::launch_with_etcd` changes it).
    pub etcd: EtcdRelease,
}

pub struct SimCluster<N: NodeRunner = Node> {
    pub stand_in: StandIn,
    fleet: Arc<Mutex<Fleet<N>>>,
    settings: N::Settings,
    /// What every instance the group launches gets, like a launch template:
    /// `launch` fills in the instance.
    template: Arc<Mutex<NodeSpec>>,
    root: tempfile::TempDir,
    asg: JoinHandle<()>,
}

/// The current client URLs of a changing cluster, and how to reach them.
#[derive(Clone)]
pub struct Endpoints {
    urls: Arc<dyn Fn() -> Vec<String> + Send + Sync>,
    access: EtcdAccess,
}

impl Endpoints {
    pub fn new(urls: Arc<dyn Fn() -> Vec<String> + Send + Sync>, access: EtcdAccess) -> Self {
        Self { urls, access }
    }

    pub fn urls(&self) -> Vec<String> {
        (self.urls)()
    }

    /// The same endpoints with the list passed through `filter` (to gate
    /// or reorder it).
    pub fn map(
        &self,
        filter: impl Fn(Vec<String>) -> Vec<String> + Send + Sync + 'static,
    ) -> Endpoints {
        let urls = Arc::clone(&self.urls);
        Endpoints {
            urls: Arc::new(move || filter(urls())),
            access: self.access.clone(),
        }
    }

    /// etcd client options with these endpoints' TLS and the given timeouts.
    pub fn connect_options(&self, connect: Duration, request: Duration) -> ConnectOptions {
        client_options(&self.access, connect, request)
    }
}

/// etcd client options for `access` (its certificate, if any) and these timeouts.
pub fn client_options(access: &EtcdAccess, connect: Duration, request: Duration) -> ConnectOptions {
    let options = ConnectOptions::new()
        .with_connect_timeout(connect)
        .with_timeout(request);
    match &access.tls {
        Some(tls) => options.with_tls(tls.current().etcd_options()),
        None => options,
    }
}

/// Timeouts of the harness's own admin calls: short, it polls.
pub const HARNESS_TIMEOUTS: EtcdTimeouts = EtcdTimeouts {
    connect: Duration::from_millis(500),
    request: Duration::from_secs(2),
};

/// The member list as one serving node reported it.
#[derive(Debug, Clone)]
pub struct ClusterSnapshot {
    pub cluster_id: ClusterId,
    pub members: Vec<Member>,
}

impl SimCluster {
    /// Starts the stand-in with a group of `size` and a node on every instance at once.
    pub async fn start(size: usize) -> anyhow::Result<SimCluster> {
        Self::start_with(StandInOptions {
            group_size: size,
            ..StandInOptions::default()
        })
        .await
    }

    pub async fn start_with(options: StandInOptions) -> anyhow::Result<SimCluster> {
        Self::start_nodes(StandIn::start(options).await?, ()).await
    }

    /// A cluster whose nodes are started with `nodes`.
    pub async fn start_with_nodes(
        options: StandInOptions,
        nodes: NodeOptions,
    ) -> anyhow::Result<SimCluster> {
        Self::start_nodes_with(StandIn::start(options).await?, (), nodes).await
    }
}

impl<N: NodeRunner> SimCluster<N> {
    /// Starts a node on every instance of the stand-in's group, and on every
    /// instance the group launches later.
    pub async fn start_nodes(stand_in: StandIn, settings: N::Settings) -> anyhow::Result<Self> {
        Self::start_nodes_with(stand_in, settings, NodeOptions::default()).await
    }

    /// The same, with every node started with `node_options`.
    pub async fn start_nodes_with(
        stand_in: StandIn,
        settings: N::Settings,
        node_options: NodeOptions,
    ) -> anyhow::Result<Self> {
        let root = tempfile::Builder::new()
            .prefix("etcd-aws-sim-")
            .tempdir()
            .context("cannot create the cluster's temp dir")?;
        let fleet = Arc::new(Mutex::new(Fleet::<N>::default()));
        let mut events = stand_in.subscribe();
        let template = Arc::new(Mutex::new(node_template(
            &stand_in,
            root.path(),
            &node_options,
        )));
        for instance in stand_in.instances().await? {
            launch(
                &fleet,
                &current(&template),
                &settings,
                &instance.id,
                instance.private_ip,
            );
        }
        let (asg_fleet, asg_template, asg_settings) =
            (fleet.clone(), template.clone(), settings.clone());
        let asg = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(InstanceEvent::Launched { id, private_ip }) => launch(
                        &asg_fleet,
                        &current(&asg_template),
                        &asg_settings,
                        &id,
                        private_ip,
                    ),
                    Ok(InstanceEvent::Terminated { id }) => {
                        let mut fleet = lock(&asg_fleet);
                        fleet.terminated.insert(id.clone());
                        if let Some(node) = fleet.nodes.remove(&id) {
                            node.kill();
                        }
                    }
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                }
            }
        });
        Ok(SimCluster {
            stand_in,
            fleet,
            settings,
            template,
            root,
            asg,
        })
    }

    /// Instances launched from now on run `release`, as after a stack update
    /// gives the launch template a new etcd; running instances keep theirs.
    pub fn launch_with_etcd(&self, release: EtcdRelease) {
        lock(&self.template).etcd = release;
    }

    /// What every node of this cluster shares.
    pub fn settings(&self) -> &N::Settings {
        &self.settings
    }

    /// Instances launched (or restarted with [`SimCluster::restart_node`])
    /// from now on run their agent with `args` instead of the ones the
    /// cluster started with.
    pub fn launch_with_agent_args(&self, args: Vec<String>) {
        lock(&self.template).agent_args = args;
    }

    /// Ids of the instances that currently have a node.
    pub fn instance_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.fleet).nodes.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Runs `f` on the node of `instance_id`.
    pub fn with_node<T>(&self, instance_id: &str, f: impl FnOnce(&N) -> T) -> anyhow::Result<T> {
        let fleet = lock(&self.fleet);
        let node = fleet
            .nodes
            .get(instance_id)
            .with_context(|| format!("no node runs on instance {instance_id}"))?;
        Ok(f(node))
    }

    pub fn client_url(&self, instance_id: &str) -> anyhow::Result<String> {
        self.with_node(instance_id, |n| n.spec().client_url())
    }

    /// The instance's "disk", where its data dir lives.
    pub fn instance_root(&self, instance_id: &str) -> std::path::PathBuf {
        self.root.path().join(instance_id)
    }

    /// Client URLs of every node.
    pub fn client_urls(&self) -> Vec<String> {
        lock(&self.fleet)
            .nodes
            .values()
            .map(|n| n.spec().client_url())
            .collect()
    }

    /// Every node's client URL as the group changes, for a client that
    /// outlives the instances it started with (what a load balancer gives).
    pub fn endpoints(&self) -> Endpoints {
        let fleet = Arc::clone(&self.fleet);
        let urls = Arc::new(move || {
            let mut urls: Vec<String> = lock(&fleet)
                .nodes
                .values()
                .map(|n| n.spec().client_url())
                .collect();
            urls.sort();
            urls
        });
        Endpoints::new(urls, self.etcd_access())
    }

    /// A backup now, as the backup function takes one (run in-process):
    /// the manifest of the backup that holds the cluster as it is.
    pub async fn backup_now(&self) -> anyhow::Result<BackupManifest> {
        let config = BackupConfig::new(
            self.stand_in.group_name(),
            self.stand_in.bucket(),
            self.stand_in.functions_tls(),
        );
        let outcome = run_backup(&config, &self.stand_in.sdk_config().await).await?;
        Ok(outcome.action.manifest().clone())
    }

    /// How the harness reaches etcd: with its client certificate when TLS is on.
    pub fn etcd_access(&self) -> EtcdAccess {
        self.stand_in.etcd_access(HARNESS_TIMEOUTS)
    }

    /// etcd client options with the harness's certificate (if any).
    pub fn client_options(&self) -> ConnectOptions {
        client_options(
            &self.etcd_access(),
            Duration::from_secs(2),
            Duration::from_secs(5),
        )
    }

    /// Stops a node's processes for good and forgets it (its disk stays).
    pub fn remove_node(&self, instance_id: &str) {
        if let Some(node) = lock(&self.fleet).nodes.remove(instance_id) {
            node.kill();
        }
    }

    /// Starts a fresh node process on an instance (after `remove_node`), with
    /// what the launch template gives now.
    pub async fn restart_node(&self, instance_id: &str) -> anyhow::Result<()> {
        let instance = self
            .stand_in
            .instances()
            .await?
            .into_iter()
            .find(|i| i.id == instance_id)
            .with_context(|| format!("instance {instance_id} is not in the group"))?;
        let template = current(&self.template);
        lock(&self.fleet).terminated.remove(instance_id);
        launch(
            &self.fleet,
            &template,
            &self.settings,
            instance_id,
            instance.private_ip,
        );
        Ok(())
    }

    /// Every instance is lost at once, disks included; the group replaces
    /// them all with fresh instances (new ids, new IPs, empty disks).
    pub async fn lose_every_instance(&self) -> anyhow::Result<Vec<String>> {
        let lost = self.instance_ids();
        self.lose_instances(&lost).await?;
        Ok(lost)
    }

    /// These instances are lost, disks included (their nodes may already be
    /// stopped with [`SimCluster::remove_node`]); the group replaces them.
    pub async fn lose_instances(&self, lost: &[String]) -> anyhow::Result<()> {
        for id in lost {
            self.remove_node(id);
            wipe(&self.instance_root(id)).await?;
        }
        for id in lost {
            self.stand_in.vanish(id).await?;
        }
        Ok(())
    }

    /// An etcd client over every node.
    pub async fn client(&self) -> anyhow::Result<etcd_client::Client> {
        Ok(etcd_client::Client::connect(self.client_urls(), Some(self.client_options())).await?)
    }

    /// The member list through one client URL, checked for quorum.
    pub async fn snapshot_via(&self, url: &str) -> anyhow::Result<ClusterSnapshot> {
        snapshot_via(url, &self.etcd_access()).await
    }

    /// Every node's etcd release and cluster version, by instance id, as each
    /// member reports them.
    pub async fn etcd_versions(&self) -> anyhow::Result<Vec<(String, MemberVersions)>> {
        let mut nodes: Vec<(String, Ipv4Addr)> = lock(&self.fleet)
            .nodes
            .iter()
            .map(|(id, n)| (id.clone(), n.spec().private_ip))
            .collect();
        nodes.sort();
        let mut versions = Vec::with_capacity(nodes.len());
        for (id, ip) in nodes {
            let reported = member_versions(ip)
                .await
                .with_context(|| format!("the etcd versions of instance {id}"))?;
            versions.push((id, reported));
        }
        Ok(versions)
    }

    /// Every node's log, for failure messages.
    pub fn logs(&self) -> String {
        let fleet = lock(&self.fleet);
        let mut ids: Vec<&String> = fleet.nodes.keys().collect();
        ids.sort();
        ids.iter()
            .filter_map(|id| {
                fleet
                    .nodes
                    .get(*id)
                    .map(|n| format!("===== {id} =====\n{}", tail(&n.log(), 60)))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The member list from the first node that answers with quorum.
    pub async fn snapshot(&self) -> anyhow::Result<ClusterSnapshot> {
        let mut last = anyhow::anyhow!("no node to ask");
        for url in self.client_urls() {
            match self.snapshot_via(&url).await {
                Ok(snapshot) => return Ok(snapshot),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Waits until the cluster has exactly `voters` started voting members, no
    /// learners, one per running node, and every node says it is ready.
    pub async fn wait_healthy(
        &self,
        voters: usize,
        timeout: Duration,
    ) -> anyhow::Result<ClusterSnapshot> {
        let result = wait_for(
            &format!("{voters} healthy voting members"),
            timeout,
            || async {
                let snapshot = self.snapshot().await?;
                let ids = self.instance_ids();
                let started_voters = snapshot
                    .members
                    .iter()
                    .filter(|m| !m.is_learner && !m.is_unstarted())
                    .count();
                if snapshot.members.len() != voters || started_voters != voters {
                    bail!("members are {:?}", summary(&snapshot.members));
                }
                if let Some(stranger) = snapshot.members.iter().find(|m| !ids.contains(&m.name)) {
                    bail!("member {} runs on no current instance", stranger.name);
                }
                let unready: Vec<String> = ids
                    .iter()
                    .filter(|id| !self.with_node(id, N::is_ready).unwrap_or(false))
                    .cloned()
                    .collect();
                if !unready.is_empty() {
                    bail!("nodes not ready yet: {unready:?}");
                }
                Ok(snapshot)
            },
        )
        .await;
        result.with_context(|| {
            format!(
                "cluster did not become healthy; node logs:\n{}",
                self.logs()
            )
        })
    }
}

impl<N: NodeRunner> Drop for SimCluster<N> {
    fn drop(&mut self) {
        self.asg.abort();
        lock(&self.fleet).nodes.clear();
    }
}

/// What every node of the stand-in's group shares; `launch` fills in the instance.
fn node_template(stand_in: &StandIn, root: &std::path::Path, options: &NodeOptions) -> NodeSpec {
    NodeSpec {
        instance_id: String::new(),
        private_ip: Ipv4Addr::LOCALHOST,
        group_name: if options.discover_group {
            String::new()
        } else {
            stand_in.group_name().to_owned()
        },
        aws_env: stand_in.env_as(Caller::Node),
        root: root.to_owned(),
        agent_args: options.agent_args.clone(),
        extra_args: options.etcd_args.clone(),
        backup_bucket: Some(stand_in.bucket().to_owned()),
        tls_ca_secret: stand_in.pki().map(|pki| pki.ca_secret.clone()),
        tls_functions_secret: stand_in.pki().map(|pki| pki.functions_secret.clone()),
        etcd: options.etcd,
    }
}

/// The launch template as it is now.
fn current(template: &Mutex<NodeSpec>) -> NodeSpec {
    lock(template).clone()
}

fn launch<N: NodeRunner>(
    fleet: &Mutex<Fleet<N>>,
    template: &NodeSpec,
    settings: &N::Settings,
    id: &str,
    private_ip: Ipv4Addr,
) {
    let mut fleet = lock(fleet);
    if fleet.nodes.contains_key(id) || fleet.terminated.contains(id) {
        return;
    }
    let spec = NodeSpec {
        instance_id: id.to_owned(),
        private_ip,
        root: template.root.join(id),
        ..template.clone()
    };
    match N::start(spec, settings) {
        Ok(node) => {
            fleet.nodes.insert(id.to_owned(), node);
        }
        Err(e) => {
            tracing::error!(instance = id, error = %format!("{e:#}"), "harness cannot start node")
        }
    }
}

/// The member list through one client URL, checked for quorum.
pub async fn snapshot_via(url: &str, access: &EtcdAccess) -> anyhow::Result<ClusterSnapshot> {
    let mut admin = EtcdAdmin::connect(&[url.to_owned()], access).await?;
    let (cluster_id, members) = admin.members().await?;
    admin.check_quorum().await?;
    Ok(ClusterSnapshot {
        cluster_id,
        members,
    })
}

/// Removes an instance's disk. A process killed a moment ago may still be
/// writing a file into it, which fails the removal: try again, a few times.
async fn wipe(disk: &std::path::Path) -> anyhow::Result<()> {
    const ATTEMPTS: u32 = 20;
    for attempt in 1..=ATTEMPTS {
        match std::fs::remove_dir_all(disk) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if attempt == ATTEMPTS => {
                return Err(e).with_context(|| format!("cannot wipe {}", disk.display()))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    Ok(())
}

/// Polls `check` every 250 ms until it succeeds or `timeout` passes.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!("timed out after {timeout:?} waiting for {what}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// `name(learner?)` per member, for messages.
pub fn summary(members: &[Member]) -> Vec<String> {
    members
        .iter()
        .map(|m| {
            let name = if m.name.is_empty() {
                format!("unstarted@{:?}", m.peer_urls)
            } else {
                m.name.clone()
            };
            if m.is_learner {
                format!("{name}(learner)")
            } else {
                name
            }
        })
        .collect()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
