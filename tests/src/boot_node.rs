//! A node that boots as an EC2 instance boots: a container of the test node
//! image (`make boot-image`, bootstrap/boot-image/build.sh) with systemd as
//! PID 1, cloud-init running its user-data from a NoCloud seed, and the
//! metadata service at 169.254.169.254 answered by the IMDSv2 stand-in
//! (`stand_in::imds`).
//!
//! # How the container runs systemd, and why these flags
//! This machine's Docker runs on cgroup v1, where an unprivileged container
//! gets its cgroup hierarchies read-only and systemd cannot create
//! `init.scope` ("Failed to allocate manager object"). So:
//! - `--cgroupns private`: the container sees its own cgroup subtree as the
//!   root, and whatever systemd mounts or creates stays inside it;
//! - `--tmpfs /sys/fs/cgroup` and `--cap-add SYS_ADMIN`: instead of Docker's
//!   read-only mounts, an empty directory where systemd mounts the
//!   hierarchies itself, read-write, which takes CAP_SYS_ADMIN. That one
//!   capability, not `--privileged`: the container still gets no devices,
//!   keeps Docker's seccomp profile and read-only /proc/sys, and no other
//!   capability beyond Docker's defaults (not NET_ADMIN: the node cannot
//!   change how it reaches the metadata service);
//! - `--tmpfs /run`, `/run/lock`, `/tmp`: systemd expects them fresh at each
//!   boot, as on a machine;
//! - `--stop-signal SIGRTMIN+3`: systemd's "halt", so `docker stop` is a
//!   clean shutdown (the image says so too).
//!
//! # How 169.254.169.254 reaches the stand-in
//! Each node is two containers sharing one network namespace, as a
//! Kubernetes pod shares its "pause" container's: a holder (`sleep
//! infinity`, with NET_ADMIN) that owns the namespace and the node's
//! addresses, and the node, started with `--network container:<holder>`.
//! Before the node exists, a `docker exec` in the holder adds a route for
//! 169.254.169.254/32 out of the AWS network's interface and a DNAT rule in
//! the namespace's own OUTPUT chain to the stand-in on this machine's address
//! on that network. (`docker exec --privileged` cannot add NET_ADMIN to a
//! container created without it: runc refuses capabilities beyond the
//! container's bounding set, so the holder is created with it.)
//! Nothing on the host changes (no host address, route or firewall rule: a
//! CI runner on EC2 keeps its own metadata service), the rules go with the
//! namespace when the containers go, there is no race with an early boot
//! step, and the node itself never holds NET_ADMIN. The metadata service
//! knows each node by the holder's address on the AWS network, as EC2 knows
//! an instance by its interface.

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::docker::{docker, docker_blocking};
use crate::stand_in::imds::{Imds, ImdsInstance, ImdsOptions, ImdsRole};
use crate::stand_in::{DockerNetworks, SubnetLease, SubnetRange};

/// The image `make boot-image` builds; ETCD_AWS_BOOT_IMAGE names another.
pub const DEFAULT_BOOT_IMAGE: &str = "etcd-aws-boot:latest";
/// Where cloud-init's NoCloud datasource looks for a seed on the node.
const SEED_DIR: &str = "/var/lib/cloud/seed/nocloud";
/// How long a node may take from `docker start` to the end of cloud-init's
/// final stage. Booting takes about 10 s here; the user-data's own work comes
/// on top, so callers with heavier user-data pass more.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(500);

/// Where boot nodes run: the image, the Docker networks they are on, their
/// metadata service, and what each gets copied onto it before it boots.
#[derive(Clone)]
pub struct BootHost {
    pub image: String,
    /// The network whose subnet is the VPC's: the instances' private IPs.
    pub vpc_network: String,
    /// The network on which this machine serves AWS and the metadata service.
    pub aws_network: String,
    /// Marks containers for removal with the networks.
    pub label: String,
    pub imds: Arc<Imds>,
    /// Files put on every node before it boots, such as the stand-in's
    /// differences from EC2 (`booted_cluster.rs`).
    pub files: Vec<NodeFile>,
}

/// A file put on a node before it boots.
#[derive(Debug, Clone)]
pub struct NodeFile {
    /// Absolute, on the node.
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

impl BootHost {
    /// Boot nodes of the test node image (ETCD_AWS_BOOT_IMAGE, else
    /// `etcd-aws-boot:latest`) on `networks`, with `imds` as their metadata
    /// service.
    pub async fn on(networks: &DockerNetworks, imds: Arc<Imds>) -> anyhow::Result<Self> {
        let image =
            std::env::var("ETCD_AWS_BOOT_IMAGE").unwrap_or_else(|_| DEFAULT_BOOT_IMAGE.to_owned());
        docker(&["image", "inspect", "--format", "{{.Id}}", &image])
            .await
            .with_context(|| {
                format!("image {image} is missing; build it with `make boot-image`")
            })?;
        Ok(Self {
            image,
            vpc_network: networks.vpc_network().to_owned(),
            aws_network: networks.aws_network().to_owned(),
            label: networks.container_label().to_owned(),
            imds,
            files: Vec::new(),
        })
    }
}

/// The networks a group of boot nodes share, and their metadata service.
/// Dropping it removes the networks and every container on them.
pub struct BootNetwork {
    host: BootHost,
    _networks: DockerNetworks,
    lease: SubnetLease,
}

impl BootNetwork {
    /// Leases a subnet, creates its Docker networks (`DockerNetworks`: the VPC
    /// subnet and the AWS network) and starts the metadata service on this
    /// machine's address on the AWS network.
    pub async fn create(imds: ImdsOptions) -> anyhow::Result<Self> {
        let lease = SubnetLease::acquire_in(SubnetRange::Docker)?;
        let networks = DockerNetworks::create(&lease).await?;
        let imds = Arc::new(Imds::start(IpAddr::V4(networks.aws_gateway()), imds).await?);
        Ok(Self {
            host: BootHost::on(&networks, imds).await?,
            _networks: networks,
            lease,
        })
    }

    pub fn host(&self) -> &BootHost {
        &self.host
    }

    pub fn imds(&self) -> &Imds {
        &self.host.imds
    }

    /// The private IP of host number `host` (2..=254) in the VPC subnet.
    pub fn private_ip(&self, host: u8) -> Ipv4Addr {
        let octet = self.lease.third_octet();
        Ipv4Addr::new(172, 28, octet, host)
    }
}

/// What a node boots as: its identity, its instance profile's role and the
/// user-data cloud-init runs.
#[derive(Debug, Clone)]
pub struct BootSpec {
    pub instance_id: String,
    pub private_ip: Ipv4Addr,
    pub role: Option<ImdsRole>,
    pub user_data: String,
}

/// How a boot ended: systemd's and cloud-init's own words.
#[derive(Debug, Clone)]
pub struct BootOutcome {
    /// `systemctl is-system-running`: "running" when every unit started.
    pub system: String,
    /// The first line of `cloud-init status`: "status: done" when the
    /// user-data ran and exited 0.
    pub cloud_init: String,
    /// `systemctl --failed`, for messages.
    pub failed_units: String,
    pub took: Duration,
}

/// The output of a command run on the node.
#[derive(Debug, Clone)]
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// A booting or booted node. Dropping it removes both its containers (the
/// networks' drop removes any left by a crashed test).
pub struct BootNode {
    name: String,
    holder: String,
    /// This node's address on the AWS network, where its metadata requests
    /// come from.
    aws_ip: IpAddr,
    started: Instant,
    /// The NoCloud seed, bind-mounted read-only; kept until the node goes.
    _seed: tempfile::TempDir,
}

impl BootNode {
    /// Creates the node's network namespace with its route to the metadata
    /// service, puts the host's files on it, then starts it: systemd boots
    /// and cloud-init runs `spec.user_data`. Returns once the node is
    /// started, not booted (see `wait_booted`). Blocking: it only runs the
    /// Docker CLI, and node runners start nodes where they cannot await.
    pub fn start(host: &BootHost, spec: &BootSpec) -> anyhow::Result<Self> {
        let name = format!("etcd-aws-boot-{}", spec.instance_id);
        let holder = format!("{name}-net");
        let seed = seed(spec)?;
        let mut node = BootNode {
            name: name.clone(),
            holder: holder.clone(),
            aws_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            started: Instant::now(),
            _seed: seed,
        };
        // From here on, dropping `node` removes whatever was created.
        let private_ip = spec.private_ip.to_string();
        let hostname = format!("ip-{}", private_ip.replace('.', "-"));
        docker_blocking(&[
            "run",
            "--detach",
            "--name",
            &holder,
            "--label",
            &host.label,
            "--hostname",
            &hostname,
            // For the route and the DNAT rule only; it runs nothing but sleep.
            "--cap-add",
            "NET_ADMIN",
            "--network",
            &host.vpc_network,
            "--ip",
            &private_ip,
            "--entrypoint",
            "/bin/sleep",
            &host.image,
            "infinity",
        ])
        .with_context(|| format!("starting {holder}, the network holder of {name}"))?;
        docker_blocking(&["network", "connect", &host.aws_network, &holder])
            .with_context(|| format!("connecting {holder} to the AWS network"))?;
        node.aws_ip = route_metadata(&holder, host.imds.address())
            .with_context(|| format!("routing 169.254.169.254 of {name} to the stand-in"))?;
        host.imds.add_instance(
            node.aws_ip,
            ImdsInstance {
                instance_id: spec.instance_id.clone(),
                local_ipv4: IpAddr::V4(spec.private_ip),
                role: spec.role.clone(),
            },
        );

        let seed_mount = format!("{}:{SEED_DIR}:ro", node._seed.path().display());
        let network_mode = format!("container:{holder}");
        docker_blocking(&[
            "create",
            "--name",
            &name,
            "--label",
            &host.label,
            "--network",
            &network_mode,
            "--cgroupns",
            "private",
            "--cap-add",
            "SYS_ADMIN",
            "--tmpfs",
            "/sys/fs/cgroup",
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/run/lock",
            "--tmpfs",
            "/tmp",
            "--stop-signal",
            "SIGRTMIN+3",
            "--volume",
            &seed_mount,
            &host.image,
        ])
        .with_context(|| format!("creating {name}"))?;
        copy_files(&name, &host.files)?;
        node.started = Instant::now();
        docker_blocking(&["start", &name]).with_context(|| format!("starting {name}"))?;
        Ok(node)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where this node's metadata requests come from (its address on the
    /// AWS network).
    pub fn aws_ip(&self) -> IpAddr {
        self.aws_ip
    }

    /// Waits until systemd has finished starting up and cloud-init has run
    /// every stage, within `timeout` from the start. Returns how it ended,
    /// success or not: callers assert on it.
    pub async fn wait_booted(&self, timeout: Duration) -> anyhow::Result<BootOutcome> {
        let deadline = self.started + timeout;
        let mut system = String::new();
        // Bounded by the deadline; each probe by `run`'s own timeout.
        while Instant::now() < deadline {
            let probe = self
                .run(&["systemctl", "is-system-running"], Duration::from_secs(10))
                .await?;
            system = probe.stdout.trim().to_owned();
            if !matches!(system.as_str(), "initializing" | "starting" | "") {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        if matches!(system.as_str(), "initializing" | "starting" | "") {
            bail!(
                "{} did not finish booting within {timeout:?} (systemd says {system:?}); its console: {}",
                self.name,
                self.console()
            );
        }
        let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
        let status = self
            .run(&["cloud-init", "status", "--wait"], left)
            .await
            .with_context(|| format!("waiting for cloud-init on {}", self.name))?;
        let cloud_init = status
            .stdout
            .lines()
            .rfind(|line| line.starts_with("status:"))
            .unwrap_or_default()
            .to_owned();
        let failed_units = self
            .run(
                &["systemctl", "--failed", "--no-legend"],
                Duration::from_secs(10),
            )
            .await?
            .stdout;
        // systemd's state again: cloud-init's final stage may have started
        // (or failed) units since the first answer.
        let system = self
            .run(&["systemctl", "is-system-running"], Duration::from_secs(10))
            .await?
            .stdout
            .trim()
            .to_owned();
        Ok(BootOutcome {
            system,
            cloud_init,
            failed_units,
            took: self.started.elapsed(),
        })
    }

    /// Runs a command on the node (`docker exec`), killed after `timeout`.
    pub async fn run(&self, command: &[&str], timeout: Duration) -> anyhow::Result<Run> {
        let child = tokio::process::Command::new("docker")
            .arg("exec")
            .arg(&self.name)
            .args(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot run the docker CLI (is Docker installed?)")?;
        let output = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .with_context(|| {
                format!(
                    "`{}` on {} took over {timeout:?}",
                    command.join(" "),
                    self.name
                )
            })?
            .context("waiting for docker exec")?;
        Ok(Run {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs a command on the node where the caller cannot await; its stdout,
    /// or an error with its stderr when it fails.
    pub fn exec_blocking(&self, command: &[&str]) -> anyhow::Result<String> {
        let mut args = vec!["exec", self.name.as_str()];
        args.extend_from_slice(command);
        docker_blocking(&args)
    }

    /// The user-data's output as cloud-init logged it, for messages.
    pub async fn cloud_init_output(&self) -> String {
        match self
            .run(
                &["cat", "/var/log/cloud-init-output.log"],
                Duration::from_secs(10),
            )
            .await
        {
            Ok(run) => run.stdout,
            Err(error) => format!("(cannot read it: {error:#})"),
        }
    }

    /// What systemd printed on the container's console, for messages.
    fn console(&self) -> String {
        docker_blocking(&["logs", "--tail", "40", &self.name])
            .unwrap_or_else(|error| format!("(cannot read it: {error:#})"))
    }
}

impl BootNode {
    /// Removes both containers: the instance is gone. Idempotent.
    pub fn remove(&self) {
        for container in [&self.name, &self.holder] {
            if let Err(error) = docker_blocking(&["rm", "--force", "--volumes", container]) {
                // The networks' drop removes every container carrying their label.
                tracing::warn!("leaving container {container}: {error:#}");
            }
        }
    }
}

impl Drop for BootNode {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The NoCloud seed: user-data as given, meta-data with the instance id (a
/// new id is what makes cloud-init treat a boot as an instance's first).
fn seed(spec: &BootSpec) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("etcd-aws-seed-")
        .tempdir()
        .context("creating a directory for the NoCloud seed")?;
    write_seed_file(dir.path(), "user-data", &spec.user_data)?;
    write_seed_file(
        dir.path(),
        "meta-data",
        &format!(
            "instance-id: {}\nlocal-hostname: ip-{}\n",
            spec.instance_id,
            spec.private_ip.to_string().replace('.', "-")
        ),
    )?;
    Ok(dir)
}

fn write_seed_file(dir: &Path, name: &str, content: &str) -> anyhow::Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))
}

/// Puts `files` into the created, not yet started, container: written into
/// a directory here with their modes, then `docker cp` (which writes them
/// as root on the node).
fn copy_files(container: &str, files: &[NodeFile]) -> anyhow::Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    let tree = tempfile::Builder::new()
        .prefix("etcd-aws-node-files-")
        .tempdir()
        .context("creating a directory for the node's files")?;
    for file in files {
        let relative = file.path.trim_start_matches('/');
        anyhow::ensure!(
            !relative.is_empty() && !relative.split('/').any(|part| part == ".."),
            "{:?} is not a file path on the node",
            file.path
        );
        let path = tree.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, &file.content)
            .with_context(|| format!("writing {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode))
            .with_context(|| format!("setting the mode of {}", path.display()))?;
    }
    let source = format!("{}/.", tree.path().display());
    let target = format!("{container}:/");
    docker_blocking(&["cp", &source, &target])
        .with_context(|| format!("copying the node's files onto {container}"))?;
    Ok(())
}

/// In the holder's namespace: 169.254.169.254/32 goes out of the AWS
/// network's interface, from its address, and port 80 there is rewritten to
/// the stand-in. Returns the holder's address on the AWS network.
fn route_metadata(holder: &str, imds: std::net::SocketAddr) -> anyhow::Result<IpAddr> {
    let gateway = imds.ip();
    // `ip route get` prints "<gateway> dev <interface> src <address> ...".
    let script = format!(
        "set -eu
set -- $(ip -o -4 route get {gateway})
[ \"$2\" = dev ] && [ \"$4\" = src ] || {{ echo \"unexpected route: $*\" >&2; exit 1; }}
ip route add 169.254.169.254/32 dev \"$3\" src \"$5\"
iptables -t nat -A OUTPUT -d 169.254.169.254/32 -p tcp --dport 80 -j DNAT --to-destination {imds}
echo \"$5\""
    );
    let address = docker_blocking(&["exec", holder, "/bin/sh", "-c", &script])?;
    address
        .trim()
        .parse()
        .with_context(|| format!("the holder's AWS address {address:?}"))
}
