//! The agent's loop: observe, decide, act; run etcd; then do what
//! [`policy::next`] says about how it ended.
//!
//! The decisions live elsewhere, as pure functions: what to start is
//! [`decide`]'s, what to do after an outcome is [`policy::next`]'s. This module
//! only gathers what they need and carries out what they say.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use etcd_aws_core::backup::empty_start::{BucketHistory, EmptyStart};
use etcd_aws_core::backup::replay::ReplayTarget;
use etcd_aws_core::contract::ca_rotation_acks;
use etcd_aws_core::contract::events;
use etcd_aws_core::contract::restore_order::{Acknowledger, NodeStep, RestoreOrder, RestoreTarget};
use etcd_aws_core::etcd::disk::{self, PrunePolicy};
use etcd_aws_core::etcd::launch::{ClusterState, EtcdLaunch, InitialCluster};
use etcd_aws_core::etcd::release::{EtcdBinary, EtcdRelease};
use etcd_aws_core::membership::decision::{after_divergence, decide, Decision};
use etcd_aws_core::membership::observation::{Me, Observation, PeerState};
use etcd_aws_io::aws::discovery::GroupDiscovery;
use etcd_aws_io::aws::order_key::OrderKey;
use etcd_aws_io::aws::{env as aws_env, identity};
use etcd_aws_io::backup_store::BackupStore;
use etcd_aws_io::data_dir;
use etcd_aws_io::etcd::admin::{EtcdAccess, EtcdTimeouts};
use etcd_aws_io::tls::SecretStore;
use tokio::sync::Notify;

use crate::ca_trust_watch::TrustWatch;
use crate::cert_renewal::Renewal;
use crate::etcd_process::{self, EtcdSettings, Supervised};
use crate::functions_cert_renewal::FunctionsRenewal;
use crate::housekeeping;
use crate::instructions::Instructions;
use crate::join::{self, JoinError};
use crate::node_tls::{self, TlsSettings};
use crate::observe::Observer;
use crate::order_watch::{OrderWatch, Step};
use crate::peer_check;
use crate::policy::{self, EtcdExit, Next, Outcome, Start};
use crate::quorum_watch::QuorumWatch;
use crate::readiness::Readiness;
use crate::ready_endpoint::{NodeState, ReadyEndpoint};
use crate::restore::{BackupSettings, Restorer};
use crate::signals::Signals;
use crate::wait::{Wait, WaitPolicy};

/// Everything the agent is told, in the parts that use it.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub identity: IdentityFlags,
    pub etcd: EtcdSettings,
    /// `None`: `--insecure-plaintext`.
    pub tls: Option<TlsSettings>,
    /// `None`: no backup bucket; a seed forms an empty cluster.
    pub backups: Option<BackupSettings>,
    pub timeouts: EtcdTimeouts,
    pub wait: WaitPolicy,
    pub supervision: Supervision,
}

/// Who this node is, where given; IMDSv2 and the group say the rest.
#[derive(Debug, Clone)]
pub struct IdentityFlags {
    pub instance_id: Option<String>,
    pub private_ip: Option<IpAddr>,
    /// How long to keep asking the metadata service for what is not given.
    pub imds_patience: Duration,
    pub group_name: Option<String>,
}

/// How a running etcd is watched.
#[derive(Debug, Clone)]
pub struct Supervision {
    /// How long a joining learner may take to be promoted and ready.
    pub promote_timeout: Duration,
    /// How long quorum must stay lost before recovering from this member.
    pub quorum_loss_grace: Duration,
    /// How often a running member reads the bucket for a restore order.
    pub restore_poll_interval: Duration,
    /// How often a running member reads the CA secret for a CA rotation.
    pub ca_poll_interval: Duration,
    pub ready_file: Option<PathBuf>,
    /// The port of the agent's `GET /ready`; 0 serves nothing.
    pub ready_port: u16,
}

/// What the waits say they wait for.
const FOR_THE_CA: &str = "for the cluster CA";
const TO_START_ETCD: &str = "to start etcd";

/// Runs the agent until etcd ends for good; returns the exit status.
pub async fn run(config: AgentConfig) -> anyhow::Result<u8> {
    let mut signals = Signals::install()?;
    let aws = aws_env::load().await?;
    let (instance_id, private_ip) = identity::resolve(
        config.identity.instance_id.clone(),
        config.identity.private_ip,
        config.identity.imds_patience,
    )
    .await?;
    let me = Me {
        instance_id,
        private_ip,
    };
    let discovery = GroupDiscovery::new(&aws);
    let group = match &config.identity.group_name {
        Some(group) => group.clone(),
        None => discovery.group_of(&me.instance_id).await?,
    };
    tracing::info!(instance_id = %me.instance_id, %private_ip, %group, data_dir = %config.etcd.data_dir.display(), "etcd-aws starting");
    if let Some(path) = &config.supervision.ready_file {
        remove_stale_ready_file(path)?;
    }
    let node = Arc::new(NodeState::default());
    let renew_now = Arc::new(Notify::new());
    let (access, tls_files) = match &config.tls {
        None => {
            node_tls::warn_plaintext();
            (EtcdAccess::plaintext(config.timeouts), None)
        }
        Some(settings) => {
            let mut wait = Wait::new(config.wait, FOR_THE_CA);
            match node_tls::prepare(settings, &aws, &me, &mut wait, &mut signals).await? {
                Ok(tls) => {
                    node.set_certificate_not_after(Some(tls.lifetime.not_after));
                    let access = EtcdAccess::tls(config.timeouts, tls.credentials);
                    if let Some(credentials) = &access.tls {
                        let renewal = Renewal {
                            store: SecretStore::new(&aws),
                            ca_secret: settings.ca_secret.clone(),
                            name: me.instance_id.clone(),
                            ips: tls.ips,
                            dns_names: settings.dns_names.clone(),
                            validity: settings.cert_validity,
                            files: tls.files.clone(),
                            credentials: Arc::clone(credentials),
                            node: Arc::clone(&node),
                            renew_now: Arc::clone(&renew_now),
                        };
                        tokio::spawn(renewal.run(tls.lifetime));
                        if let Some(certificate) = &settings.functions {
                            let renewal = FunctionsRenewal {
                                store: SecretStore::new(&aws),
                                ca_secret: settings.ca_secret.clone(),
                                certificate: certificate.clone(),
                                node: me.instance_id.clone(),
                                trust: Arc::clone(credentials),
                            };
                            tokio::spawn(renewal.run());
                        }
                    }
                    (access, Some(tls.files))
                }
                Err(end) => return Ok(policy::after_wait(&end)),
            }
        }
    };
    if config.supervision.ready_port != 0 {
        let endpoint = ReadyEndpoint {
            state: Arc::clone(&node),
            own_client_url: access.url(private_ip, config.etcd.client_port),
            access: access.clone(),
        };
        let address = SocketAddr::new(private_ip, config.supervision.ready_port);
        tokio::spawn(async move {
            if let Err(error) = endpoint.serve(address).await {
                tracing::error!(%address, %error, "cannot serve GET /ready: the load balancer will count this node unhealthy; free the port or set --ready-port");
            }
        });
    }
    tokio::spawn(housekeeping::report_disk_use(
        config.etcd.data_dir.clone(),
        Duration::from_secs(disk::USE_REPORT_INTERVAL_SECONDS),
    ));
    let etcd = etcd_aws_io::etcd::binary::probe(&config.etcd.binary).await?;
    etcd.release.check_supported()?;
    tracing::info!(release = %etcd.release, binary = %config.etcd.binary.display(), "etcd release");
    let backups = config
        .backups
        .as_ref()
        .map(|b| BackupStore::new(&aws, &b.bucket, &b.prefix));
    let instructions = config.backups.as_ref().map(|b| {
        Arc::new(Instructions::new(
            b.operators
                .as_ref()
                .map(|o| OrderKey::new(&aws, &o.signing_key)),
        ))
    });
    let acknowledger = config
        .backups
        .as_ref()
        .and_then(|b| b.operators.as_ref())
        .map(|o| Acknowledger {
            role_id: o.node_role_id.clone(),
            instance_id: me.instance_id.clone(),
        });
    // A rotation's stages are acknowledged in the bucket: without one (no
    // stack around the node) there is no rotation to follow.
    let trust = match (&config.tls, &access.tls, &tls_files, &backups) {
        (Some(settings), Some(credentials), Some(files), Some(backups)) => Some(TrustWatch {
            store: SecretStore::new(&aws),
            ca_secret: settings.ca_secret.clone(),
            files: files.clone(),
            credentials: Arc::clone(credentials),
            renew_now,
            backups: backups.clone(),
            instance_id: me.instance_id.clone(),
            ack_name: ca_rotation_acks::ack_name(acknowledger.as_ref(), &me.instance_id),
            own_client_url: access.url(private_ip, config.etcd.client_port),
            access: access.clone(),
            interval: config.supervision.ca_poll_interval,
        }),
        _ => None,
    };
    let agent = Agent {
        observer: Observer {
            discovery: discovery.clone(),
            group: group.clone(),
            me: me.clone(),
            data_dir: config.etcd.data_dir.clone(),
            client_port: config.etcd.client_port,
            access: access.clone(),
        },
        watch: QuorumWatch {
            own_client_url: access.url(private_ip, config.etcd.client_port),
            client_port: config.etcd.client_port,
            discovery,
            group: group.clone(),
            backups: backups.clone(),
            access: access.clone(),
            node: Arc::clone(&node),
            grace: config.supervision.quorum_loss_grace,
            interval: Duration::from_secs(2).min(config.supervision.quorum_loss_grace),
        },
        orders: backups
            .clone()
            .zip(instructions.clone())
            .map(|(store, instructions)| OrderWatch {
                store,
                instructions,
                instance_id: me.instance_id.clone(),
                acknowledger,
                interval: config.supervision.restore_poll_interval,
            }),
        restorer: backups.zip(config.backups.as_ref()).zip(instructions).map(
            |((store, settings), instructions)| Restorer {
                store,
                instructions,
                etcdutl: settings.etcdutl.clone(),
                etcd: config.etcd.binary.clone(),
                etcd_args: config.etcd.upkeep.args(&etcd),
                token: group.clone(),
                lease_policy: settings.lease_policy,
            },
        ),
        base: EtcdLaunch {
            name: me.instance_id.clone(),
            data_dir: config.etcd.data_dir.clone(),
            ip: private_ip,
            client_port: config.etcd.client_port,
            peer_port: config.etcd.peer_port,
            metrics_port: config.etcd.metrics_port,
            tls: tls_files,
            // Decided at each start, from the peers' certificates.
            peer_allowed_hostname: None,
            initial_cluster: None,
            upkeep_args: config.etcd.upkeep.args(&etcd),
            extra_args: config.etcd.extra_args.clone(),
        },
        trust,
        etcd,
        me,
        group,
        node,
        etcd_binary: config.etcd.binary.clone(),
        access,
        supervision: config.supervision.clone(),
        wait: config.wait,
        moved_aside: config.etcd.moved_aside,
    };
    agent.run(&mut signals).await
}

fn remove_stale_ready_file(path: &std::path::Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove stale ready file {}", path.display()))
        }
        _ => Ok(()),
    }
}

struct Agent {
    me: Me,
    group: String,
    observer: Observer,
    watch: QuorumWatch,
    /// `None` without a backup bucket: restore orders live there.
    orders: Option<OrderWatch>,
    /// `None` without TLS or a backup bucket: no CA rotation to follow.
    trust: Option<TrustWatch>,
    restorer: Option<Restorer>,
    /// etcd's command line for a start on the data directory as it is.
    base: EtcdLaunch,
    /// The etcd that runs: its release decides what it may join.
    etcd: EtcdBinary,
    /// What the readiness endpoint answers from.
    node: Arc<NodeState>,
    etcd_binary: PathBuf,
    access: EtcdAccess,
    supervision: Supervision,
    wait: WaitPolicy,
    /// What of the data directories moved aside is kept.
    moved_aside: PrunePolicy,
}

/// etcd's command line, and what supervising it needs to know.
struct Launch {
    etcd: EtcdLaunch,
    /// Client URLs of the serving voting members, as observed.
    peers: Vec<String>,
    start: Start,
}

/// What observing and deciding came to.
enum Prepared {
    Launch(Box<Launch>),
    /// etcd is not started this round.
    Waited(Outcome),
}

impl Agent {
    async fn run(&self, signals: &mut Signals) -> anyhow::Result<u8> {
        let mut wait = Wait::new(self.wait, TO_START_ETCD);
        let mut failed_joins = 0;
        // A launch decided by the policy rather than by observing: the restart
        // that forces a new cluster.
        let mut decided: Option<Launch> = None;
        loop {
            let launch = match decided.take() {
                Some(launch) => launch,
                None => match self.prepare(failed_joins, &mut wait, signals).await? {
                    Prepared::Launch(launch) => *launch,
                    Prepared::Waited(outcome) => match policy::next(&outcome) {
                        Next::Exit(code) => return Ok(code),
                        _ => continue,
                    },
                },
            };
            housekeeping::prune_moved_aside(&self.base.data_dir, self.moved_aside);
            self.node.set_etcd_running(true);
            let supervised = self.supervise(&launch, signals).await;
            self.node.set_etcd_running(false);
            let supervised = supervised?;
            // A new stretch of waiting starts once etcd has run.
            wait = Wait::new(self.wait, TO_START_ETCD);
            let next = policy::next(&Outcome::EtcdEnded {
                exit: supervised.exit.clone(),
                start: launch.start,
            });
            report(&supervised, &next);
            match next {
                Next::Observe => {}
                Next::RetryJoin => failed_joins += 1,
                Next::MoveDataAsideAndObserve => {
                    let moved = data_dir::move_aside(&self.base.data_dir)?;
                    tracing::warn!(data_dir = %self.base.data_dir.display(), moved_to = %moved.display(),
                        "this node was never promoted from learner; moved its data aside (not deleted) and observing the group again");
                }
                Next::SetAsideDivergedData => {
                    if let Err(end) = self.set_aside_diverged_data(&mut wait, signals).await? {
                        return Ok(policy::after_wait(&end));
                    }
                }
                Next::RestartForcingNewCluster => {
                    decided = Some(self.forcing_new_cluster(launch.peers));
                }
                Next::Exit(code) => return Ok(code),
                Next::Fail(failure) => return Err(failure.into()),
            }
        }
    }

    /// Observes, decides and acts until etcd can start, or waits one round.
    async fn prepare(
        &self,
        failed_joins: u32,
        wait: &mut Wait,
        signals: &mut Signals,
    ) -> anyhow::Result<Prepared> {
        let ordered = match self.restore_order_step().await {
            Ok(step) => step,
            Err(reason) => {
                return Ok(pause(wait, &reason, "restore_order_unreadable", signals).await)
            }
        };
        self.node.set_held_by_restore(matches!(
            ordered,
            Some(Step {
                step: NodeStep::Quarantine | NodeStep::Hold,
                ..
            })
        ));
        let order_target = match ordered {
            None => None,
            Some(Step {
                step: NodeStep::Restore(target),
                ..
            }) => Some(target),
            Some(Step {
                step: NodeStep::Quarantine,
                order: Some(order),
            }) => {
                self.quarantine(&order).await?;
                return Ok(pause(wait, &holding(&order), "restore_order_holds", signals).await);
            }
            Some(Step {
                step: NodeStep::Hold,
                order: Some(order),
            }) => return Ok(pause(wait, &holding(&order), "restore_order_holds", signals).await),
            // Carry on (a quarantine or hold always comes with its order).
            Some(_) => None,
        };
        let observation = self.observer.observe().await?;
        let peers = serving_client_urls(&observation, &self.me.instance_id);
        let decision = decide(&observation);
        if matches!(decision, Decision::Restart | Decision::Join(_)) {
            let members: Vec<EtcdRelease> = observation
                .probes
                .iter()
                .filter_map(|p| match &p.state {
                    PeerState::Serving { version, .. } => version.as_deref(),
                    _ => None,
                })
                .filter_map(EtcdRelease::parse)
                .collect();
            self.etcd.release.check_can_join(&members)?;
        }
        let (etcd, start) = match decision {
            Decision::Wait(reason) => return Ok(pause(wait, &reason, reason.kind(), signals).await),
            Decision::Restart => {
                tracing::info!(
                    event = events::RESTARTED_ON_OWN_DATA,
                    "this node's data belongs to a member of the cluster; restarting etcd on it"
                );
                (self.base.clone(), Start::Other)
            }
            Decision::Form => match self.form(order_target.as_ref()).await? {
                Ok(launch) => (launch, Start::Other),
                Err(refusal) => {
                    if wait.is_new(&refusal) {
                        let history = &refusal.history;
                        tracing::error!(
                            event = events::EMPTY_START_REFUSED,
                            reason = %refusal,
                            segments = history.segments,
                            pointer = history.pointer,
                            restore_order = history.restore_order.is_some(),
                            deleted_snapshots = history.deleted.snapshots,
                            deleted_segments = history.deleted.segments,
                            deleted_pointer = history.deleted.pointer,
                            stale_permit = refusal.stale_permit,
                            "no snapshot to restore, but the bucket holds an earlier cluster's history: not forming an empty cluster"
                        );
                    }
                    return Ok(pause(wait, &refusal, "empty_start_refused", signals).await);
                }
            },
            Decision::Join(plan) => {
                tracing::info!(
                    remove = plan.remove.len(),
                    move_aside = plan.move_aside_local_data,
                    "a healthy cluster exists: joining it as a learner"
                );
                match join::prepare(&plan, &peers, self.base.clone(), &self.access).await {
                    Ok(launch) => (
                        launch,
                        Start::Join {
                            failed_before: failed_joins,
                        },
                    ),
                    Err(JoinError::NotYet(reason)) => {
                        return Ok(pause(wait, &reason, "join_refused_for_now", signals).await)
                    }
                    Err(e) => return Err(e).context("joining the cluster failed"),
                }
            }
        };
        let etcd = EtcdLaunch {
            peer_allowed_hostname: peer_check::allowed_hostname(
                &observation,
                &self.me.instance_id,
                &self.access,
            )
            .await,
            ..etcd
        };
        Ok(Prepared::Launch(Box::new(Launch { etcd, peers, start })))
    }

    /// What the bucket's restore order says this node does; `None` without a
    /// backup bucket. An unreadable order is a reason to wait: starting etcd
    /// might rejoin a cluster an operator is restoring.
    async fn restore_order_step(&self) -> Result<Option<Step>, String> {
        let Some(orders) = &self.orders else {
            return Ok(None);
        };
        match orders.step().await {
            Ok(step) => Ok(Some(step)),
            Err(e) => Err(format!("cannot read the restore order ({e})")),
        }
    }

    /// Stops taking part in the cluster for a restore: etcd is not running
    /// here (the supervisor stopped it, or it never started), the data
    /// directory is moved aside (never deleted) so the node starts afresh,
    /// and the bucket hears that this node is out.
    async fn quarantine(&self, order: &RestoreOrder) -> anyhow::Result<()> {
        let data_dir = &self.base.data_dir;
        if data_dir.exists() {
            let moved = data_dir::move_aside(data_dir)?;
            tracing::warn!(order = %order.id, data_dir = %data_dir.display(), moved_to = %moved.display(),
                "QUARANTINED for a restore: moved this member's data aside (not deleted); etcd stays stopped until every node is out");
        }
        if let Some((orders, node)) = self
            .orders
            .as_ref()
            .and_then(|o| o.acknowledger.as_ref().map(|node| (o, node)))
        {
            orders
                .store
                .acknowledge_quarantine(&order.id, node)
                .await
                .context("cannot acknowledge the restore order's quarantine in the bucket")?;
        }
        Ok(())
    }

    /// The seed's start: the restore order's target during a restore, the
    /// newest valid backup otherwise, and an empty cluster without backups
    /// unless the bucket holds an earlier cluster's history (`Err`: why it
    /// waits instead).
    async fn form(
        &self,
        order_target: Option<&RestoreTarget>,
    ) -> anyhow::Result<Result<EtcdLaunch, EmptyStartRefusal>> {
        if let (Some(restorer), Some(target)) = (&self.restorer, order_target) {
            tracing::info!(group = %self.group, %target, "no cluster exists and this node is the seed of an operator's restore: restoring its target and forming from it");
            let candidates = restorer.candidates().await?;
            let restored = restorer
                .restore_target(&candidates, &self.base, target)
                .await?;
            tracing::info!(
                event = events::FORMED,
                from = "restore_order",
                key = %restored.manifest.key,
                snapshot_revision = restored.snapshot_revision,
                restored_until = restored.replayed.until,
                "restored the order's target"
            );
            return Ok(Ok(self.base.clone()));
        }
        let candidates = match &self.restorer {
            Some(restorer) => restorer.candidates().await?,
            None => {
                tracing::info!("no backup bucket configured (--backup-bucket / ETCD_BACKUP_BUCKET): the new cluster starts empty");
                Vec::new()
            }
        };
        match (&self.restorer, candidates.first()) {
            (Some(restorer), Some(newest)) => {
                tracing::info!(group = %self.group, key = %newest.key, revision = newest.revision,
                    "no cluster exists and this node is the seed: restoring the newest backup and forming from it");
                let restored = restorer
                    .restore(&candidates, &self.base, ReplayTarget::Latest)
                    .await?;
                tracing::info!(
                    event = events::FORMED,
                    from = "backup",
                    key = %restored.manifest.key,
                    cluster_id = %restored.manifest.cluster_id,
                    snapshot_revision = restored.snapshot_revision,
                    replayed_revisions = restored.replayed.revisions,
                    replayed_segments = restored.replayed.segments,
                    restored_until = restored.replayed.until,
                    "restored the backup and replayed the changes captured after it"
                );
                // The restored data dir holds the one-member cluster: start on it.
                Ok(Ok(self.base.clone()))
            }
            (restorer, _) => {
                let from = match restorer {
                    None => "empty",
                    Some(restorer) => match restorer.empty_start().await? {
                        (EmptyStart::Form, _) => "empty",
                        (EmptyStart::FormAsPermitted, history) => {
                            tracing::warn!(abandoned = %history.describe(), "an operator allowed an empty start over this history (etcd-aws-cfn start-empty): it is abandoned");
                            "empty_permitted"
                        }
                        (
                            EmptyStart::Refuse {
                                traces,
                                stale_permit,
                            },
                            history,
                        ) => {
                            return Ok(Err(EmptyStartRefusal {
                                traces,
                                stale_permit,
                                history,
                            }))
                        }
                    },
                };
                tracing::info!(event = events::FORMED, from, group = %self.group, "no cluster exists and this node is the seed: forming a new one-member cluster");
                Ok(Ok(EtcdLaunch {
                    initial_cluster: Some(InitialCluster {
                        members: vec![(self.me.instance_id.clone(), self.base.peer_url())],
                        state: ClusterState::New,
                        token: self.group.clone(),
                    }),
                    ..self.base.clone()
                }))
            }
        }
    }

    /// Sets aside data that diverged from the peers' once a healthy quorum
    /// serves (waiting while none does); the next observation then finds this
    /// node's member without data, removes it and joins afresh.
    async fn set_aside_diverged_data(
        &self,
        wait: &mut Wait,
        signals: &mut Signals,
    ) -> anyhow::Result<Result<(), crate::wait::WaitEnd>> {
        loop {
            let observation = self.observer.observe().await?;
            match after_divergence(&observation) {
                Ok(()) => {
                    let moved = data_dir::move_aside(&self.base.data_dir)?;
                    tracing::error!(event = events::DATA_DIVERGED, data_dir = %self.base.data_dir.display(), moved_to = %moved.display(),
                        "DATA DIVERGED: etcd's corruption check found this member's data differs from its peers' at the same revision; moved it aside (not deleted) and rejoining as a new learner from the healthy quorum");
                    return Ok(Ok(()));
                }
                Err(reason) => {
                    if let Err(end) = wait.pause(&reason, reason.kind(), signals).await {
                        return Ok(Err(end));
                    }
                }
            }
        }
    }

    /// Once only per loss: later restarts run on the recovered data as it is.
    fn forcing_new_cluster(&self, peers: Vec<String>) -> Launch {
        let mut extra_args = self.base.extra_args.clone();
        extra_args.push("--force-new-cluster".into());
        Launch {
            etcd: EtcdLaunch {
                initial_cluster: None,
                extra_args,
                ..self.base.clone()
            },
            peers,
            start: Start::Other,
        }
    }

    async fn supervise(
        &self,
        launch: &Launch,
        signals: &mut Signals,
    ) -> anyhow::Result<Supervised> {
        let is_join = matches!(launch.start, Start::Join { .. });
        let readiness = Readiness {
            me: self.me.clone(),
            own_client_url: launch.etcd.client_url(),
            peer_client_urls: launch.peers.clone(),
            promote_timeout: is_join.then_some(self.supervision.promote_timeout),
            poll_interval: Duration::from_millis(500),
            ready_file: self.supervision.ready_file.clone(),
            access: self.access.clone(),
        };
        etcd_process::run(
            &self.etcd_binary,
            &launch.etcd,
            readiness,
            &self.watch,
            self.orders.as_ref(),
            self.trust.as_ref(),
            signals,
        )
        .await
    }
}

/// Waits one poll interval through the one wait helper.
async fn pause(
    wait: &mut Wait,
    reason: &dyn std::fmt::Display,
    kind: &'static str,
    signals: &mut Signals,
) -> Prepared {
    Prepared::Waited(match wait.pause(reason, kind, signals).await {
        Ok(()) => Outcome::NotYet,
        Err(end) => Outcome::WaitEnded(end),
    })
}

/// Why a seed waits rather than form an empty cluster: what the bucket
/// holds instead ([`EmptyStart::Refuse`]).
struct EmptyStartRefusal {
    traces: Vec<String>,
    stale_permit: bool,
    history: BucketHistory,
}

/// The reason an operator reads, with what to run.
impl std::fmt::Display for EmptyStartRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stale = if self.stale_permit {
            " (the start-empty permit in the bucket was given for another history)"
        } else {
            ""
        };
        write!(
            f,
            "the bucket holds no snapshot but {}: forming an empty cluster would abandon them{stale}; \
             put the snapshots back if they were moved or deleted, or abandon this history ({}) with `etcd-aws-cfn start-empty`",
            self.traces.join(", "),
            self.history.describe()
        )
    }
}

/// Why a quarantined node waits.
fn holding(order: &RestoreOrder) -> String {
    format!(
        "quarantined by restore order {} (to {}): etcd stays stopped until every node is out and the order moves on",
        order.id, order.target
    )
}

/// Says what a failed etcd run means: etcd's own last lines, and what to check.
fn report(supervised: &Supervised, next: &Next) {
    let EtcdExit::Ended { status, .. } = supervised.exit else {
        return;
    };
    if status.success() {
        return;
    }
    let last_lines = &supervised.last_lines;
    match next {
        Next::RetryJoin => tracing::warn!(event = events::ETCD_EXITED, %status, ?last_lines,
            "etcd exited while joining (a concurrent join may have changed the member list); observing the cluster again"),
        _ => tracing::error!(event = events::ETCD_EXITED, %status, ?last_lines,
            "etcd exited with a failure, so etcd-aws stops too; etcd's last lines say why. Check the flags after `--`, that the data directory is writable and has free space, and that the client and peer ports are free"),
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
