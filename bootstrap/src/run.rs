//! The bootstrap loop: observe, decide, act; then supervise etcd.

use std::time::Duration;

use anyhow::{bail, Context};
use aws_config::BehaviorVersion;
use etcd_aws_cluster::backup::BackupManifest;
use etcd_aws_cluster::backup_store::{BackupStore, BackupStoreError};
use etcd_aws_cluster::data_dir;
use etcd_aws_cluster::decision::{decide, Decision, WaitReason};
use etcd_aws_cluster::discovery::GroupDiscovery;
use etcd_aws_cluster::etcd_admin::{EtcdAccess, EtcdTimeouts};
use etcd_aws_cluster::etcd_launch::{ClusterState, EtcdLaunch, InitialCluster};
use etcd_aws_cluster::identity;
use etcd_aws_cluster::observation::{Me, Observation, PeerState};
use tokio::time::Instant;

use crate::cli::Cli;
use crate::etcd_process::{self, exit_code};
use crate::join::{self, JoinError};
use crate::node_tls::{self, NoCa};
use crate::observe::Observer;
use crate::quorum_watch::QuorumWatch;
use crate::readiness::Readiness;
use crate::restore::Restorer;
use crate::signals::Signals;

/// Exit status when `--wait-timeout` ran out (EX_TEMPFAIL: try again later).
pub const EXIT_GAVE_UP_WAITING: u8 = 75;

/// A join whose etcd exits before it is ready is retried this many times
/// (etcd exits when a concurrent join changed the member list under it).
const JOIN_ATTEMPTS: u32 = 3;

pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    let mut signals = Signals::install()?;
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let (instance_id, private_ip) =
        identity::resolve(cli.instance_id.clone(), cli.private_ip).await?;
    let discovery = GroupDiscovery::new(&config);
    let backups = cli
        .backup_bucket
        .as_deref()
        .map(|bucket| BackupStore::new(&config, bucket, &cli.backup_prefix));
    let group = match &cli.group_name {
        Some(group) => group.clone(),
        None => discovery.group_of(&instance_id).await?,
    };
    tracing::info!(%instance_id, %private_ip, %group, data_dir = %cli.data_dir.display(), "etcd-aws starting");
    if let Some(path) = &cli.ready_file {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e)
                    .with_context(|| format!("cannot remove stale ready file {}", path.display()));
            }
            _ => {}
        }
    }
    let timeouts = EtcdTimeouts {
        connect: cli.probe_timeout,
        request: cli.probe_timeout * 3,
    };
    let (access, tls_files) = match &cli.tls_ca_secret {
        None => {
            node_tls::warn_plaintext();
            (EtcdAccess::plaintext(timeouts), None)
        }
        Some(secret) => {
            match node_tls::prepare(
                &cli,
                secret,
                &config,
                &instance_id,
                private_ip,
                &mut signals,
            )
            .await?
            {
                Ok(tls) => (EtcdAccess::tls(timeouts, tls.credentials), Some(tls.files)),
                Err(NoCa::Signal(signal)) => {
                    tracing::info!(
                        signal,
                        "stopping while waiting for the CA; etcd was never started"
                    );
                    return Ok(128 + u8::try_from(signal).unwrap_or(0));
                }
                Err(NoCa::GaveUp) => return Ok(EXIT_GAVE_UP_WAITING),
            }
        }
    };
    let watch = QuorumWatch {
        own_client_url: access.url(private_ip, cli.client_port),
        discovery: discovery.clone(),
        group: group.clone(),
        backups: backups.clone(),
        access: access.clone(),
        grace: cli.quorum_loss_grace,
        interval: Duration::from_secs(2).min(cli.quorum_loss_grace),
    };
    let observer = Observer {
        discovery,
        group: group.clone(),
        me: Me {
            instance_id: instance_id.clone(),
            private_ip,
        },
        data_dir: cli.data_dir.clone(),
        client_port: cli.client_port,
        access: access.clone(),
    };
    let base_launch = EtcdLaunch {
        name: instance_id.clone(),
        data_dir: cli.data_dir.clone(),
        ip: private_ip,
        client_port: cli.client_port,
        peer_port: cli.peer_port,
        metrics_port: cli.metrics_port,
        tls: tls_files,
        initial_cluster: None,
        extra_args: cli.etcd_args.clone(),
    };

    let mut waiting = Waiting::new(cli.wait_timeout);
    let mut failed_joins = 0;
    loop {
        let mut observation = observer.observe().await?;
        let mut decision = decide(&observation);
        let mut candidates = Vec::new();
        if matches!(decision, Decision::Form { .. }) {
            // Backups matter only to a seed about to form: read them only then.
            candidates = backup_candidates(backups.as_ref()).await?;
            observation.newest_backup = candidates.first().map(BackupManifest::backup_ref);
            decision = decide(&observation);
        }
        let cluster_urls = serving_client_urls(&observation, &instance_id);
        let launch = match decision {
            Decision::Wait(reason) => {
                waiting.log(&reason);
                if waiting.expired() {
                    tracing::error!(%reason, "gave up waiting (--wait-timeout)");
                    return Ok(EXIT_GAVE_UP_WAITING);
                }
                if let Some(signal) = pause(cli.poll_interval, &mut signals).await {
                    tracing::info!(signal, "stopping while waiting; etcd was never started");
                    return Ok(128 + u8::try_from(signal).unwrap_or(0));
                }
                continue;
            }
            Decision::Restart => {
                tracing::info!(
                    "this node's data belongs to a member of the cluster; restarting etcd on it"
                );
                base_launch.clone()
            }
            Decision::Form { restore_from: None } => {
                tracing::info!(%group, "no cluster exists and this node is the seed: forming a new one-member cluster");
                EtcdLaunch {
                    initial_cluster: Some(InitialCluster {
                        members: vec![(instance_id.clone(), base_launch.peer_url())],
                        state: ClusterState::New,
                        token: group.clone(),
                    }),
                    ..base_launch.clone()
                }
            }
            Decision::Form {
                restore_from: Some(backup),
            } => {
                tracing::info!(%group, key = %backup.key, revision = backup.revision,
                    "no cluster exists and this node is the seed: restoring the newest backup and forming from it");
                let Some(store) = backups.as_ref() else {
                    bail!("a backup was chosen but no backup bucket is configured")
                };
                let restorer = Restorer {
                    store,
                    etcdutl: &cli.etcdutl_binary,
                    token: &group,
                };
                restorer.restore(&candidates, &base_launch).await?;
                // The restored data dir holds the one-member cluster: start on it.
                base_launch.clone()
            }
            Decision::Join(plan) => {
                tracing::info!(
                    remove = plan.remove.len(),
                    move_aside = plan.move_aside_local_data,
                    "a healthy cluster exists: joining it as a learner"
                );
                match join::prepare(&plan, &cluster_urls, base_launch.clone(), &access).await {
                    Ok(launch) => launch,
                    Err(JoinError::NotYet(e)) => {
                        waiting.log_text(&e.to_string());
                        if let Some(signal) = pause(cli.poll_interval, &mut signals).await {
                            return Ok(128 + u8::try_from(signal).unwrap_or(0));
                        }
                        continue;
                    }
                    Err(e) => return Err(e).context("joining the cluster failed"),
                }
            }
        };
        waiting = Waiting::new(cli.wait_timeout);
        let is_join = launch
            .initial_cluster
            .as_ref()
            .is_some_and(|i| i.state == ClusterState::Existing);
        let mut launch = launch;
        let exit = loop {
            let readiness = Readiness {
                name: instance_id.clone(),
                own_client_url: launch.client_url(),
                peer_client_urls: cluster_urls.clone(),
                promote_timeout: is_join.then_some(cli.promote_timeout),
                poll_interval: Duration::from_millis(500),
                ready_file: cli.ready_file.clone(),
                access: access.clone(),
            };
            let exit =
                etcd_process::run(&cli.etcd_binary, &launch, readiness, &watch, &mut signals)
                    .await?;
            if !exit.stopped_for_recovery {
                break exit;
            }
            // Once only: later restarts run on the recovered data as it is.
            let mut extra_args = cli.etcd_args.clone();
            extra_args.push("--force-new-cluster".into());
            launch = EtcdLaunch {
                initial_cluster: None,
                extra_args,
                ..base_launch.clone()
            };
        };
        if exit.stopped_as_learner {
            // A learner whose cluster is gone (its seed died before promoting
            // it) would restart as that learner forever, and its peers would
            // wait on it forever: start over without its data, kept aside.
            let moved = data_dir::move_aside(&base_launch.data_dir)?;
            tracing::warn!(data_dir = %base_launch.data_dir.display(), moved_to = %moved.display(),
                "this node was never promoted from learner; moved its data aside (not deleted) and observing the group again");
            continue;
        }
        if exit.stopped_unready {
            bail!("etcd was stopped because this node never became a healthy voting member (see the error above)");
        }
        if is_join && !exit.was_ready && !exit.status.success() && failed_joins + 1 < JOIN_ATTEMPTS
        {
            failed_joins += 1;
            tracing::warn!(status = %exit.status, attempt = failed_joins, "etcd exited while joining; observing the cluster again");
            continue;
        }
        return Ok(exit_code(exit.status));
    }
}

/// The backups a seed may restore, newest first. No bucket, a bucket that
/// does not exist, or one without backups means a brand-new cluster; any
/// other failure stops us rather than form an empty cluster over data that
/// might exist.
async fn backup_candidates(store: Option<&BackupStore>) -> anyhow::Result<Vec<BackupManifest>> {
    let Some(store) = store else {
        tracing::info!("no backup bucket configured (--backup-bucket / ETCD_BACKUP_BUCKET): the new cluster starts empty");
        return Ok(Vec::new());
    };
    match store.manifests().await {
        Ok(manifests) if manifests.is_empty() => {
            tracing::info!(bucket = store.bucket(), prefix = %store.layout().snapshots_prefix(), "no backups found: this is a new cluster, it starts empty");
            Ok(manifests)
        }
        Ok(manifests) => Ok(manifests),
        Err(BackupStoreError::NoSuchBucket { bucket }) => {
            tracing::warn!(%bucket, "backup bucket does not exist: the new cluster starts empty (create the bucket, or the backups will fail)");
            Ok(Vec::new())
        }
        Err(e) => Err(anyhow::Error::new(e).context(
            "cannot read the backups; refusing to form an empty cluster over data that might exist",
        )),
    }
}

/// Client URLs of the voting members seen by peers that have quorum.
fn serving_client_urls(observation: &Observation, me: &str) -> Vec<String> {
    let mut urls: Vec<String> = observation
        .probes
        .iter()
        .filter_map(|p| match &p.state {
            PeerState::Serving {
                members,
                has_quorum: true,
                ..
            } => Some(members),
            _ => None,
        })
        .flatten()
        .filter(|m| !m.is_learner && m.name != me)
        .flat_map(|m| m.client_urls.iter().cloned())
        .collect();
    urls.sort();
    urls.dedup();
    urls
}

/// Sleeps for `duration`, or returns the signal that interrupted it.
async fn pause(duration: Duration, signals: &mut Signals) -> Option<i32> {
    tokio::select! {
        _ = tokio::time::sleep(duration) => None,
        signal = signals.recv() => Some(signal),
    }
}

/// Logs each new reason to wait once (not every poll) and tracks the timeout.
struct Waiting {
    since: Instant,
    timeout: Option<Duration>,
    last: Option<String>,
}

impl Waiting {
    fn new(timeout: Option<Duration>) -> Self {
        Self {
            since: Instant::now(),
            timeout,
            last: None,
        }
    }

    fn log(&mut self, reason: &WaitReason) {
        self.log_text(&reason.to_string());
    }

    fn log_text(&mut self, reason: &str) {
        if self.last.as_deref() != Some(reason) {
            tracing::info!(%reason, "waiting");
            self.last = Some(reason.to_owned());
        }
    }

    fn expired(&self) -> bool {
        self.timeout.is_some_and(|t| self.since.elapsed() >= t)
    }
}
