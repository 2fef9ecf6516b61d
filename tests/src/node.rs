//! One simulated instance's node agent: an `etcd-aws` process (with its etcd
//! child) bound to the instance's loopback IP, restarted like systemd would.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::process::Command;

use crate::paths::{self, EtcdRelease};

/// How a node's process is started.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub instance_id: String,
    pub private_ip: Ipv4Addr,
    /// Empty leaves the agent to ask Auto Scaling for its instance's group, as
    /// it does when the template's user data starts it.
    pub group_name: String,
    /// Environment for the AWS SDK (endpoint, region, credentials).
    pub aws_env: Vec<(String, String)>,
    /// The instance's "disk": data dir, ready file and log live here.
    pub root: PathBuf,
    /// The agent's own flags, such as `--restore-leases keep`.
    pub agent_args: Vec<String>,
    /// etcd's flags, passed on by the agent (after `--`).
    pub extra_args: Vec<String>,
    /// The stand-in's backup bucket, for restores after total loss.
    pub backup_bucket: Option<String>,
    /// The secret holding the cluster CA; `None` runs the node `--insecure-plaintext`.
    pub tls_ca_secret: Option<String>,
    /// The secret holding the functions' certificate, which the node renews
    /// as on EC2; `None` leaves it alone.
    pub tls_functions_secret: Option<String>,
    /// The etcd release installed on the instance, which its agent runs.
    pub etcd: EtcdRelease,
}

impl NodeSpec {
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("etcd")
    }

    pub fn ready_file(&self) -> PathBuf {
        self.root.join("ready")
    }

    /// A node whose agent is starting or has died is not ready, whatever its
    /// last run wrote: the agent removes a stale ready file too, but only
    /// once it runs, and a harness that waited for readiness in between
    /// would see the old run's file and go on.
    pub fn forget_readiness(&self) {
        let _ = std::fs::remove_file(self.ready_file());
    }

    pub fn log_file(&self) -> PathBuf {
        self.root.join("etcd-aws.log")
    }

    pub fn tls_dir(&self) -> PathBuf {
        self.root.join("tls")
    }

    pub fn client_url(&self) -> String {
        let scheme = if self.tls_ca_secret.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}:2379", self.private_ip)
    }

    /// How the agent gets its certificate, or that it runs without one.
    pub fn tls_env(&self, tls_dir: &Path) -> Vec<(String, String)> {
        match &self.tls_ca_secret {
            Some(secret) => {
                let mut env = vec![
                    ("ETCD_AWS_TLS_CA_SECRET".into(), secret.clone()),
                    ("ETCD_AWS_TLS_DIR".into(), tls_dir.display().to_string()),
                    // Loopback connections leave from 127.0.0.1, not the
                    // instance's IP, and etcd checks a peer's source address
                    // against its certificate.
                    ("ETCD_AWS_TLS_EXTRA_IPS".into(), "127.0.0.1".into()),
                ];
                if let Some(functions) = &self.tls_functions_secret {
                    env.push(("ETCD_AWS_TLS_FUNCTIONS_SECRET".into(), functions.clone()));
                }
                env
            }
            None => vec![("ETCD_AWS_INSECURE_PLAINTEXT".into(), "true".into())],
        }
    }
}

/// A running node. Dropping it kills its process group (etcd-aws and etcd).
pub struct Node {
    spec: NodeSpec,
    /// Process group of the current etcd-aws process, 0 while none runs.
    pgid: Arc<AtomicI32>,
    stopped: Arc<AtomicBool>,
    starts: Arc<AtomicU32>,
}

/// systemd's Restart=always, bounded so a broken node cannot spin forever.
pub(crate) const MAX_STARTS: u32 = 30;
pub(crate) const RESTART_DELAY: Duration = Duration::from_secs(1);

/// The agent's timings, scaled down from production's so scenarios take
/// seconds; every node of the harness, process or container, runs with them.
pub(crate) const AGENT_TUNING_ENV: [(&str, &str); 7] = [
    ("ETCD_AWS_POLL_INTERVAL", "500ms"),
    ("ETCD_AWS_RESTORE_POLL_INTERVAL", "1s"),
    ("ETCD_AWS_PROBE_TIMEOUT", "500ms"),
    ("ETCD_AWS_QUORUM_LOSS_GRACE", "3s"),
    // A learner left without its cluster gives up within a scenario's time.
    ("ETCD_AWS_PROMOTE_TIMEOUT", "30s"),
    ("ETCD_AWS_LOG", "info,etcd_aws=debug"),
    // JSON lines, as CloudWatch Logs gets them on EC2: the scenarios match
    // a line's `event` field ([`crate::agent_log`]), not its wording.
    ("ETCD_AWS_LOG_FORMAT", "json"),
];
/// etcd's timings to match (and its own chatter kept to warnings).
pub const ETCD_TUNING_ARGS: [&str; 3] = [
    "--heartbeat-interval=50",
    "--election-timeout=500",
    "--log-level=warn",
];

/// What the cluster harness needs of a running instance's node agent, whether
/// it runs as a local process (`Node`) or in a container
/// (`container_node::ContainerNode`).
pub trait NodeRunner: Send + Sized + 'static {
    /// What every node of one cluster shares beyond its spec.
    type Settings: Clone + Send + Sync + 'static;

    /// Starts the agent and keeps restarting it when it exits, until killed.
    fn start(spec: NodeSpec, settings: &Self::Settings) -> anyhow::Result<Self>;
    fn spec(&self) -> &NodeSpec;
    fn is_ready(&self) -> bool;
    /// The instance dies: no restart.
    fn kill(&self);
    /// The agent's and etcd's output so far.
    fn log(&self) -> String;
}

impl NodeRunner for Node {
    type Settings = ();

    fn start(spec: NodeSpec, _: &()) -> anyhow::Result<Self> {
        Node::start(spec)
    }

    fn spec(&self) -> &NodeSpec {
        Node::spec(self)
    }

    fn is_ready(&self) -> bool {
        Node::is_ready(self)
    }

    fn kill(&self) {
        Node::kill(self);
    }

    fn log(&self) -> String {
        Node::log(self)
    }
}

impl Node {
    /// Starts the agent and keeps restarting it when it exits, until killed.
    pub fn start(spec: NodeSpec) -> anyhow::Result<Node> {
        std::fs::create_dir_all(&spec.root)
            .with_context(|| format!("cannot create {}", spec.root.display()))?;
        spec.forget_readiness();
        let binary = paths::etcd_aws_binary()?;
        let etcd = spec.etcd.tool("etcd")?;
        let etcdutl = spec.etcd.restore_tool()?;
        let node = Node {
            spec: spec.clone(),
            pgid: Arc::new(AtomicI32::new(0)),
            stopped: Arc::new(AtomicBool::new(false)),
            starts: Arc::new(AtomicU32::new(0)),
        };
        let (pgid, stopped, starts) =
            (node.pgid.clone(), node.stopped.clone(), node.starts.clone());
        tokio::spawn(async move {
            while !stopped.load(Ordering::SeqCst)
                && starts.fetch_add(1, Ordering::SeqCst) < MAX_STARTS
            {
                let mut child =
                    match spawn_agent(&binary, [etcd.as_path(), etcdutl.as_path()], &spec) {
                        Ok(child) => child,
                        Err(e) => {
                            append_log(
                                &spec.log_file(),
                                &format!("harness: cannot start etcd-aws: {e:#}"),
                            );
                            break;
                        }
                    };
                let id = child
                    .id()
                    .and_then(|id| i32::try_from(id).ok())
                    .unwrap_or(0);
                pgid.store(id, Ordering::SeqCst);
                let status = child.wait().await;
                pgid.store(0, Ordering::SeqCst);
                spec.forget_readiness();
                // etcd may outlive a killed agent; the group kill takes it too.
                kill_group(id, libc::SIGKILL);
                // A node stopped for good is being cleaned up: a line written
                // now would recreate its log in a directory being removed.
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                append_log(
                    &spec.log_file(),
                    &format!("harness: etcd-aws exited: {status:?}"),
                );
                tokio::time::sleep(RESTART_DELAY).await;
            }
        });
        Ok(node)
    }

    pub fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    pub fn instance_id(&self) -> &str {
        &self.spec.instance_id
    }

    /// How many times the agent process has been started.
    pub fn starts(&self) -> u32 {
        self.starts.load(Ordering::SeqCst).min(MAX_STARTS)
    }

    pub fn is_ready(&self) -> bool {
        self.spec.ready_file().exists()
    }

    /// The running etcd-aws process's id (it leads its own process group).
    pub fn pid(&self) -> Option<i32> {
        Some(self.pgid.load(Ordering::SeqCst)).filter(|&pid| pid > 0)
    }

    /// The id of the etcd process the agent runs (in the agent's process
    /// group), if one runs: a test that must see etcd not restarted compares it.
    pub fn etcd_pid(&self) -> Option<i32> {
        let group = self.pid()?;
        let entries = std::fs::read_dir("/proc").ok()?;
        entries.flatten().find_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // "pid (comm) state ppid pgrp ...": comm may hold spaces, so
            // split after its closing parenthesis.
            let (head, rest) = stat.rsplit_once(')')?;
            let comm = head.split_once('(')?.1;
            let pgrp: i32 = rest.split_whitespace().nth(2)?.parse().ok()?;
            (comm == "etcd" && pgrp == group).then_some(pid)
        })
    }

    /// Sends a signal to the agent and etcd (the whole process group).
    pub fn signal(&self, signal: i32) {
        kill_group(self.pgid.load(Ordering::SeqCst), signal);
    }

    /// The instance dies: no restart, processes killed at once.
    pub fn kill(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.signal(libc::SIGKILL);
    }

    /// The instance shuts down: the agent and etcd are asked to stop
    /// (SIGTERM) and are not started again.
    pub fn shut_down(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.signal(libc::SIGTERM);
    }

    /// Crashes the agent and etcd; the supervisor restarts them on the same disk.
    pub fn crash(&self) {
        self.signal(libc::SIGKILL);
        self.spec.forget_readiness();
    }

    /// Freezes the agent and etcd: they keep their sockets but answer nothing.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.spec.log_file()).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        let pgid = self.pgid.load(Ordering::SeqCst);
        kill_group(pgid, libc::SIGCONT);
        kill_group(pgid, libc::SIGKILL);
    }
}

fn spawn_agent(
    binary: &Path,
    [etcd, etcdutl]: [&Path; 2],
    spec: &NodeSpec,
) -> anyhow::Result<tokio::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(spec.log_file())
        .with_context(|| format!("cannot open {}", spec.log_file().display()))?;
    let err = log
        .try_clone()
        .context("cannot clone the log file handle")?;
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(spec.aws_env.iter().map(|(k, v)| (k, v)))
        .env("ETCD_AWS_INSTANCE_ID", &spec.instance_id)
        .env("ETCD_AWS_PRIVATE_IP", spec.private_ip.to_string())
        .env("ETCD_DATA_DIR", spec.data_dir())
        .env("ETCD_AWS_ETCD_BINARY", etcd)
        .env("ETCD_AWS_ETCDUTL_BINARY", etcdutl)
        .env("ETCD_AWS_READY_FILE", spec.ready_file())
        .envs(spec.tls_env(&spec.tls_dir()))
        .envs(AGENT_TUNING_ENV)
        .args(&spec.agent_args)
        .arg("--")
        .args(ETCD_TUNING_ARGS)
        .args(&spec.extra_args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(true);
    if !spec.group_name.is_empty() {
        command.env("ETCD_AWS_GROUP_NAME", &spec.group_name);
    }
    if let Some(bucket) = &spec.backup_bucket {
        command.env("ETCD_BACKUP_BUCKET", bucket);
    }
    command
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))
}

fn kill_group(pgid: i32, signal: i32) {
    if pgid > 0 {
        // SAFETY: signalling a process group this harness created.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

pub(crate) fn append_log(path: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{line}");
    }
}
