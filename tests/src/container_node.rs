//! One simulated instance's node agent as a container of the project's image,
//! on the stand-in's Docker networks with the private IP moto assigned its
//! instance. It does what `node::Node` does for a process (restarts like
//! systemd, crash, pause, kill), plus what only a real network allows: cutting
//! the instance off from its peers and healing it.
//!
//! The instance's "disk" (`NodeSpec::root`) is bind-mounted as the image's
//! volume, so its data dir and ready file are where `NodeSpec` says.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;

use crate::docker::{docker, docker_blocking};
use crate::node::{
    append_log, NodeRunner, NodeSpec, AGENT_TUNING_ENV, ETCD_TUNING_ARGS, MAX_STARTS, RESTART_DELAY,
};
use crate::paths::EtcdRelease;
use crate::sim_cluster::SimCluster;
use crate::stand_in::{StandIn, StandInOptions, SubnetRange};

/// The image `make image` builds; ETCD_AWS_IMAGE names another.
pub const DEFAULT_IMAGE: &str = "etcd-aws:latest";
/// The image's volume, which holds its data dir (`etcd`).
const VOLUME: &str = "/var/lib/etcd-aws";
/// The image's user, who must be able to write the bind-mounted disk.
const IMAGE_UID: u32 = 10001;

/// What every container of one cluster shares.
#[derive(Debug, Clone)]
pub struct ContainerSettings {
    pub image: String,
    /// The network whose subnet is the VPC's: the instances' private IPs.
    pub vpc_network: String,
    /// The network on which the stand-in's AWS endpoint listens.
    pub aws_network: String,
    /// Marks containers for removal with the stand-in's networks.
    pub label: String,
    /// `uid:gid` to run as instead of the image's user; see `for_stand_in`.
    pub user: Option<String>,
}

impl ContainerSettings {
    /// Containers of `image` (ETCD_AWS_IMAGE, else `etcd-aws:latest`) on a
    /// stand-in started with `SubnetRange::Docker`.
    pub async fn for_stand_in(stand_in: &StandIn) -> anyhow::Result<Self> {
        let networks = stand_in.docker_networks().context(
            "this stand-in's instances are not on Docker networks; start it with SubnetRange::Docker",
        )?;
        let image = std::env::var("ETCD_AWS_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.to_owned());
        docker(&["image", "inspect", "--format", "{{.Id}}", &image])
            .await
            .with_context(|| format!("image {image} is missing; build it with `make image`"))?;
        // As root the harness hands each disk to the image's own user, so the
        // image runs as it ships. Anyone else could not read or wipe what that
        // user writes, so the containers run as the harness's user instead.
        // SAFETY: getuid and getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let user = (uid != 0).then(|| format!("{uid}:{gid}"));
        Ok(Self {
            image,
            vpc_network: networks.vpc_network().to_owned(),
            aws_network: networks.aws_network().to_owned(),
            label: networks.container_label().to_owned(),
            user,
        })
    }
}

impl SimCluster<ContainerNode> {
    /// The stand-in on Docker networks, and a container on every instance.
    pub async fn start_in_containers(options: StandInOptions) -> anyhow::Result<Self> {
        let stand_in = StandIn::start_on(options, SubnetRange::Docker).await?;
        let settings = ContainerSettings::for_stand_in(&stand_in).await?;
        Self::start_nodes(stand_in, settings).await
    }
}

/// Shared with the supervising task.
#[derive(Debug, Default)]
struct Supervision {
    /// Bumped by every (re)start of supervision: an older task sees it and ends.
    generation: AtomicU64,
    stopped: AtomicBool,
    starts: AtomicU32,
}

/// A running container. Dropping it removes the container (its disk stays).
pub struct ContainerNode {
    spec: NodeSpec,
    name: String,
    vpc_network: String,
    supervision: Arc<Supervision>,
}

impl NodeRunner for ContainerNode {
    type Settings = ContainerSettings;

    fn start(spec: NodeSpec, settings: &ContainerSettings) -> anyhow::Result<Self> {
        anyhow::ensure!(
            spec.etcd == EtcdRelease::default(),
            "instance {} asks for {}, but a container runs the image's {} (bootstrap/image/build.sh); run other releases as processes",
            spec.instance_id,
            spec.etcd,
            EtcdRelease::default()
        );
        std::fs::create_dir_all(&spec.root)
            .with_context(|| format!("cannot create {}", spec.root.display()))?;
        if settings.user.is_none() {
            std::os::unix::fs::chown(&spec.root, Some(IMAGE_UID), Some(IMAGE_UID)).with_context(
                || format!("cannot give {} to the image's user", spec.root.display()),
            )?;
        }
        spec.forget_readiness();
        let name = format!("etcd-aws-{}-{}", spec.private_ip, spec.instance_id);
        create_container(&name, &spec, settings)?;
        let node = ContainerNode {
            spec,
            name,
            vpc_network: settings.vpc_network.clone(),
            supervision: Arc::new(Supervision::default()),
        };
        node.supervise();
        Ok(node)
    }

    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    fn is_ready(&self) -> bool {
        self.spec.ready_file().exists()
    }

    fn kill(&self) {
        self.supervision.stopped.store(true, Ordering::SeqCst);
        self.signal("KILL");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.spec.log_file()).unwrap_or_default()
    }
}

impl ContainerNode {
    pub fn instance_id(&self) -> &str {
        &self.spec.instance_id
    }

    pub fn container_name(&self) -> &str {
        &self.name
    }

    pub fn private_ip(&self) -> Ipv4Addr {
        self.spec.private_ip
    }

    /// How many times the container has been started.
    pub fn starts(&self) -> u32 {
        self.supervision
            .starts
            .load(Ordering::SeqCst)
            .min(MAX_STARTS)
    }

    /// Sends a signal (a name such as "TERM") to the agent, PID 1 in the container.
    pub fn signal(&self, signal: &str) {
        if let Err(error) = docker_blocking(&["kill", "--signal", signal, &self.name]) {
            append_log(&self.spec.log_file(), &format!("harness: {error:#}"));
        }
    }

    /// Crashes the agent and etcd; the supervisor restarts them on the same disk.
    pub fn crash(&self) {
        self.signal("KILL");
        self.spec.forget_readiness();
    }

    /// The instance powers off: no restart until `power_on`. Returns once the
    /// container has stopped, so its disk can be changed.
    pub fn power_off(&self) -> anyhow::Result<()> {
        self.supervision.stopped.store(true, Ordering::SeqCst);
        docker_blocking(&["stop", "--time", "0", &self.name])?;
        self.spec.forget_readiness();
        Ok(())
    }

    /// The instance shuts down: the agent is asked to stop (SIGTERM, with
    /// ten seconds before Docker kills it) and is not started again.
    pub fn shut_down(&self) -> anyhow::Result<()> {
        self.supervision.stopped.store(true, Ordering::SeqCst);
        docker_blocking(&["stop", "--time", "10", &self.name])?;
        self.spec.forget_readiness();
        Ok(())
    }

    /// The instance boots again after `kill` or `power_off`, on the same disk and with the same
    /// network attachment (still cut off if it was).
    pub fn power_on(&self) {
        self.spec.forget_readiness();
        self.supervision.stopped.store(false, Ordering::SeqCst);
        self.supervise();
    }

    /// Freezes the agent and etcd (cgroup freezer): they keep their sockets but
    /// answer nothing.
    pub fn pause(&self) -> anyhow::Result<()> {
        docker_blocking(&["pause", &self.name]).map(drop)
    }

    pub fn resume(&self) -> anyhow::Result<()> {
        docker_blocking(&["unpause", &self.name]).map(drop)
    }

    /// A partition: the instance leaves the VPC's network. Its peers and the
    /// harness can no longer reach it, nor it them; it keeps its AWS API.
    pub fn cut_off(&self) -> anyhow::Result<()> {
        docker_blocking(&["network", "disconnect", &self.vpc_network, &self.name])
            .map(drop)
            .with_context(|| format!("cutting {} off", self.spec.instance_id))
    }

    /// Ends the partition: the instance is back on the VPC's network with its
    /// private IP.
    pub fn heal(&self) -> anyhow::Result<()> {
        let ip = self.spec.private_ip.to_string();
        docker_blocking(&[
            "network",
            "connect",
            "--ip",
            &ip,
            &self.vpc_network,
            &self.name,
        ])
        .map(drop)
        .with_context(|| format!("healing {}", self.spec.instance_id))
    }

    /// Starts the container and restarts it whenever it exits, as systemd's
    /// Restart=always would, until killed or `MAX_STARTS` is reached.
    fn supervise(&self) {
        let supervision = Arc::clone(&self.supervision);
        let generation = supervision.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let (name, log_file, spec) = (self.name.clone(), self.spec.log_file(), self.spec.clone());
        tokio::spawn(async move {
            let current = || {
                supervision.generation.load(Ordering::SeqCst) == generation
                    && !supervision.stopped.load(Ordering::SeqCst)
            };
            while current() && supervision.starts.fetch_add(1, Ordering::SeqCst) < MAX_STARTS {
                let status = attach(&name, &log_file).await;
                spec.forget_readiness();
                if !current() {
                    // Stopped for good: its directory is being removed.
                    break;
                }
                append_log(&log_file, &format!("harness: container exited: {status:?}"));
                tokio::time::sleep(RESTART_DELAY).await;
            }
        });
    }
}

impl Drop for ContainerNode {
    fn drop(&mut self) {
        self.supervision.stopped.store(true, Ordering::SeqCst);
        if let Err(error) = docker_blocking(&["rm", "--force", "--volumes", &self.name]) {
            // The stand-in removes every container of its networks when it stops.
            tracing::warn!("leaving container {}: {error:#}", self.name);
        }
    }
}

fn create_container(
    name: &str,
    spec: &NodeSpec,
    settings: &ContainerSettings,
) -> anyhow::Result<()> {
    let volume = format!("{}:{VOLUME}", spec.root.display());
    let ip = spec.private_ip.to_string();
    let mut env: Vec<(String, String)> = spec.aws_env.clone();
    env.extend(
        [
            ("ETCD_AWS_INSTANCE_ID", spec.instance_id.clone()),
            ("ETCD_AWS_PRIVATE_IP", ip.clone()),
            ("ETCD_AWS_READY_FILE", format!("{VOLUME}/ready")),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    env.extend(spec.tls_env(&std::path::Path::new(VOLUME).join("tls")));
    env.extend(AGENT_TUNING_ENV.map(|(k, v)| (k.to_owned(), v.to_owned())));
    if !spec.group_name.is_empty() {
        env.push(("ETCD_AWS_GROUP_NAME".to_owned(), spec.group_name.clone()));
    }
    if let Some(bucket) = &spec.backup_bucket {
        env.push(("ETCD_BACKUP_BUCKET".to_owned(), bucket.clone()));
    }
    let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();

    let mut args: Vec<&str> = vec![
        "create",
        "--name",
        name,
        "--label",
        &settings.label,
        "--network",
        &settings.vpc_network,
        "--ip",
        &ip,
        "--volume",
        &volume,
    ];
    if let Some(user) = &settings.user {
        args.extend(["--user", user]);
    }
    for pair in &env {
        args.extend(["--env", pair]);
    }
    args.push(&settings.image);
    args.extend(spec.agent_args.iter().map(String::as_str));
    args.push("--");
    args.extend(ETCD_TUNING_ARGS);
    args.extend(spec.extra_args.iter().map(String::as_str));
    docker_blocking(&args).with_context(|| format!("creating container {name}"))?;
    docker_blocking(&["network", "connect", &settings.aws_network, name])
        .with_context(|| format!("connecting {name} to the AWS network"))?;
    Ok(())
}

/// Runs the container until it exits, its output appended to `log_file`.
async fn attach(name: &str, log_file: &Path) -> anyhow::Result<std::process::ExitStatus> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file)
        .with_context(|| format!("cannot open {}", log_file.display()))?;
    let err = log
        .try_clone()
        .context("cannot clone the log file handle")?;
    let status = tokio::process::Command::new("docker")
        .args(["start", "--attach", name])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .kill_on_drop(true)
        .status()
        .await
        .context("running docker start")?;
    Ok(status)
}
