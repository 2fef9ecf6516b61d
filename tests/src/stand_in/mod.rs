//! The local AWS stand-in: moto for EC2, Auto Scaling, S3 and SQS, behind a proxy
//! that adds what moto lacks (lifecycle hooks and their notifications,
//! CloudFormation's resource signals) and what tests need (fault injection). Each stand-in owns its moto process, its group,
//! queues and bucket, and a loopback /24 for its instances' IPs (or, started with
//! `SubnetRange::Docker`, Docker networks whose subnet its instances' IPs are on).

mod autoscaling_xml;
mod aws_errors;
mod aws_proxy;
mod aws_request;
mod aws_setup;
mod call_log;
mod cluster_pki;
mod docker_network;
mod fault_injection;
mod function_routes;
mod group_watch;
pub mod imds;
mod instances;
mod lifecycle_actions;
mod lifecycle_hooks;
mod lifecycle_layer;
mod moto_clients;
mod moto_server;
mod notification;
mod stack_signals;
mod subnet_lease;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use etcd_aws_core::contract::names::env;
use etcd_aws_core::contract::signed::{Instruction, Signed};
use etcd_aws_io::aws::order_key::OrderKey;
use etcd_aws_io::etcd::admin::{EtcdAccess, EtcdTimeouts};
use etcd_aws_io::tls::authority::ValidityPeriod;
use etcd_aws_io::tls::ClientTlsSource;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub use call_log::{Caller, RecordedCall};
pub use cluster_pki::{create_secret, ClusterPki};
pub use docker_network::DockerNetworks;
pub use fault_injection::{FaultEffect, FaultInjector, FaultRule};
use function_routes::FunctionRoutes;
pub use instances::{InstanceEvent, SimInstance};
pub use lifecycle_actions::{ActionOutcome, HookResult, LifecycleActionRecord};
pub use notification::{LifecycleNotification, TestNotification};
pub use stack_signals::ResourceSignal;
use stack_signals::StackSignals;
pub use subnet_lease::{SubnetLease, SubnetRange};

use aws_proxy::AwsProxy;
use aws_setup::{HookSettings, Names};
use call_log::CallLog;
use instances::{ec2_details, group_members};
use lifecycle_layer::LifecycleLayer;
use moto_clients::{sdk_config_as, sdk_config_for, MotoClients, REGION};
pub use moto_server::MotoServer;

/// The node role's id as the stand-in's nodes are told it (the stack's
/// `NodeRole.RoleId` on AWS). The stand-in does not evaluate the policy
/// variable that binds an acknowledgement to its writer; the template's
/// tests do (template/generator/tests/order_signing.rs).
pub const NODE_ROLE_ID: &str = "AROASTANDINNODEROLE";

/// How often waiting lifecycle actions are checked for an expired heartbeat timeout.
const TIMEOUT_CHECK_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct StandInOptions {
    pub group_size: usize,
    /// The group's EC2_INSTANCE_TERMINATING hook, notifying `queue_url()`; `None`
    /// for a group that terminates instances at once.
    pub lifecycle_hook: Option<HookOptions>,
    /// A cluster CA in Secrets Manager for nodes that run TLS (the agent's
    /// default); `false` for a stand-in whose nodes run `--insecure-plaintext`.
    pub tls: bool,
    /// When the functions' client certificate is valid; `None` for as long
    /// as a deploy makes it.
    pub functions_certificate: Option<ValidityPeriod>,
}

impl Default for StandInOptions {
    fn default() -> Self {
        Self {
            group_size: 3,
            lifecycle_hook: Some(HookOptions::default()),
            tls: true,
            functions_certificate: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HookOptions {
    pub heartbeat_timeout: Duration,
    pub default_result: HookResult,
}

impl Default for HookOptions {
    fn default() -> Self {
        Self {
            heartbeat_timeout: Duration::from_secs(60),
            default_result: HookResult::Continue,
        }
    }
}

/// A running stand-in. Dropping it (also while a test panics) stops the proxy, the
/// timeout checks and moto, and releases its subnet.
#[derive(Debug)]
pub struct StandIn {
    // Fields drop in this order: nothing may still call moto once it is killed.
    _timeouts: AbortOnDrop,
    _proxy: AwsProxy,
    layer: Arc<LifecycleLayer>,
    moto_clients: MotoClients,
    faults: FaultInjector,
    calls: CallLog,
    signals: StackSignals,
    _moto: MotoServer,
    docker: Option<DockerNetworks>,
    _lease: SubnetLease,
    endpoint_url: String,
    subnet_prefix: String,
    names: Names,
    pki: Option<ClusterPki>,
    queue_url: String,
    dead_letter_queue_url: String,
    order_signing_key: String,
    functions: FunctionRoutes,
}

impl StandIn {
    /// A stand-in whose instances get loopback IPs.
    pub async fn start(opts: StandInOptions) -> anyhow::Result<StandIn> {
        Self::start_on(opts, SubnetRange::Loopback).await
    }

    /// A stand-in with an empty group and no lifecycle hook: for tests of the
    /// bucket and the secrets alone.
    pub async fn start_without_instances() -> anyhow::Result<StandIn> {
        Self::start(StandInOptions {
            group_size: 0,
            lifecycle_hook: None,
            ..StandInOptions::default()
        })
        .await
    }

    /// A stand-in whose instances get their IPs from `range`. For
    /// `SubnetRange::Docker` it creates the Docker networks (see
    /// `docker_networks()`) and serves its AWS endpoint on one of them.
    pub async fn start_on(opts: StandInOptions, range: SubnetRange) -> anyhow::Result<StandIn> {
        let lease = SubnetLease::acquire_in(range)?;
        let docker = match range {
            SubnetRange::Loopback => None,
            SubnetRange::Docker => Some(DockerNetworks::create(&lease).await?),
        };
        let proxy_ip = docker
            .as_ref()
            .map_or(Ipv4Addr::LOCALHOST, DockerNetworks::aws_gateway);
        let log_name = match range {
            SubnetRange::Loopback => format!("moto-{}.log", lease.third_octet()),
            SubnetRange::Docker => format!("moto-docker-{}.log", lease.third_octet()),
        };
        let log = std::env::temp_dir().join("etcd-aws-subnets").join(log_name);
        let moto = MotoServer::start(log).await?;
        let moto_clients = MotoClients::new(&moto.url()).await;
        let names = names_for(&lease);
        let layer = Arc::new(LifecycleLayer::new(moto_clients.clone(), &names.group));
        let hook = opts.lifecycle_hook.map(|hook| HookSettings {
            heartbeat_timeout: hook.heartbeat_timeout,
            default_result: hook.default_result,
        });
        let provisioned =
            aws_setup::provision(&moto_clients, &layer, &names, opts.group_size, hook)
                .await
                .context("provisioning the stand-in's AWS resources")?;
        let direct = sdk_config_for(&moto.url()).await;
        let pki = if opts.tls {
            Some(ClusterPki::provision(&direct, &names.group, opts.functions_certificate).await?)
        } else {
            None
        };
        let order_signing_key = aws_setup::order_signing_key(&direct).await?;
        // Learn the initial instances now, so later events report only changes.
        layer.reconcile().await?;
        let faults = FaultInjector::default();
        let calls = CallLog::default();
        let functions = FunctionRoutes::default();
        let signals = StackSignals::default();
        let proxy = AwsProxy::start(
            Arc::clone(&layer),
            faults.clone(),
            calls.clone(),
            functions.clone(),
            signals.clone(),
            moto.url(),
            IpAddr::V4(proxy_ip),
        )
        .await?;
        let timeouts = AbortOnDrop(tokio::spawn(apply_timeouts(Arc::clone(&layer))));
        Ok(StandIn {
            _timeouts: timeouts,
            endpoint_url: proxy.url(),
            _proxy: proxy,
            layer,
            moto_clients,
            faults,
            calls,
            _moto: moto,
            docker,
            subnet_prefix: lease.prefix(),
            _lease: lease,
            names,
            pki,
            queue_url: provisioned.queue_url,
            dead_letter_queue_url: provisioned.dead_letter_queue_url,
            order_signing_key,
            functions,
            signals,
        })
    }

    /// Answers Lambda's Invoke of `name` with this function, as a deployed
    /// stack's function is invoked (the operator's commands do).
    pub fn serve_function(&self, name: &str, function: &Arc<crate::lambda::LambdaFunction>) {
        self.functions.serve(name, function);
    }

    /// The proxy in front of moto; what programs under test get as AWS_ENDPOINT_URL.
    pub fn endpoint_url(&self) -> String {
        self.endpoint_url.clone()
    }

    pub fn region(&self) -> &str {
        REGION
    }

    pub fn group_name(&self) -> &str {
        &self.names.group
    }

    /// The KMS key operators sign restore orders and start-empty permits with.
    pub fn order_signing_key(&self) -> &str {
        &self.order_signing_key
    }

    /// A signing key of the same kind that is not the stack's: what someone
    /// who can create keys but not sign with the stack's has.
    pub async fn another_signing_key(&self) -> anyhow::Result<String> {
        aws_setup::order_signing_key(&self.sdk_config().await).await
    }

    /// `instruction` signed with the order-signing key, as an operator's
    /// command signs it.
    pub async fn signed_by_operator<T: Instruction>(
        &self,
        instruction: &T,
    ) -> anyhow::Result<Signed> {
        let config = self.sdk_config().await;
        Ok(OrderKey::new(&config, &self.order_signing_key)
            .sign(instruction)
            .await?)
    }

    /// The queue the terminating hook notifies.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Where the hook's queue moves a message after three receives.
    pub fn dead_letter_queue_url(&self) -> &str {
        &self.dead_letter_queue_url
    }

    pub fn lifecycle_hook_name(&self) -> &str {
        &self.names.hook
    }

    /// The bucket for backups. S3 clients need path-style addressing
    /// (`force_path_style(true)`) against the stand-in.
    pub fn bucket(&self) -> &str {
        &self.names.bucket
    }

    /// "127.0.X" (or "172.28.X"): the /24 this stand-in's instances get their IPs from.
    pub fn subnet_prefix(&self) -> &str {
        &self.subnet_prefix
    }

    /// The cluster CA and client certificates; `None` when the stand-in was
    /// started for plaintext nodes.
    pub fn pki(&self) -> Option<&ClusterPki> {
        self.pki.as_ref()
    }

    /// How a test client reaches this stand-in's etcd (its harness
    /// certificate when TLS is on).
    pub fn etcd_access(&self, timeouts: EtcdTimeouts) -> EtcdAccess {
        cluster_pki::harness_access(self.pki.as_ref(), timeouts)
    }

    /// What the functions get: the secret with their client certificate.
    pub fn functions_tls(&self) -> ClientTlsSource {
        cluster_pki::functions_source(self.pki.as_ref())
    }

    /// The environment that tells a function how to reach etcd.
    pub fn functions_tls_env(&self) -> Vec<(String, String)> {
        match self.functions_tls() {
            ClientTlsSource::Secret(secret) => {
                vec![("ETCD_AWS_TLS_CLIENT_SECRET".to_owned(), secret)]
            }
            ClientTlsSource::Plaintext => {
                vec![("ETCD_AWS_INSECURE_PLAINTEXT".to_owned(), "true".to_owned())]
            }
        }
    }

    /// The environment that tells a node agent how to get its certificate
    /// (`--tls-dir` is the node's own business).
    pub fn node_tls_env(&self) -> Vec<(String, String)> {
        match &self.pki {
            Some(pki) => vec![("ETCD_AWS_TLS_CA_SECRET".to_owned(), pki.ca_secret.clone())],
            None => vec![("ETCD_AWS_INSECURE_PLAINTEXT".to_owned(), "true".to_owned())],
        }
    }

    /// The Docker networks of a stand-in started on `SubnetRange::Docker`.
    pub fn docker_networks(&self) -> Option<&DockerNetworks> {
        self.docker.as_ref()
    }

    /// The environment a program needs to use the stand-in as its AWS, signing
    /// as the harness.
    pub fn env(&self) -> Vec<(String, String)> {
        self.env_as(Caller::Harness)
    }

    /// The environment a program needs to use the stand-in as its AWS, signing
    /// as `caller` so that `calls()` names it. It names the stack's
    /// order-signing key too, as the user data does for the agent and the
    /// stack's outputs do for the operator's commands.
    pub fn env_as(&self, caller: Caller) -> Vec<(String, String)> {
        // The user data names the node role's id to the agent, which names
        // its acknowledgements of a restore with it (as the node's session).
        let node_role_id = match caller {
            Caller::Node => vec![(env::NODE_ROLE_ID, NODE_ROLE_ID)],
            _ => Vec::new(),
        };
        [
            (env::ORDER_SIGNING_KEY, self.order_signing_key.as_str()),
            ("AWS_ENDPOINT_URL", self.endpoint_url.as_str()),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", caller.access_key_id()),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .chain(node_role_id)
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
    }

    /// An SDK configuration pointed at the proxy, faults and all, signing as
    /// the harness.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        self.sdk_config_as(Caller::Harness).await
    }

    /// An SDK configuration pointed at the proxy, signing as `caller`: for a
    /// program's code run in-process (`run_backup` as the backup function).
    pub async fn sdk_config_as(&self, caller: Caller) -> aws_config::SdkConfig {
        sdk_config_as(&self.endpoint_url, caller.access_key_id()).await
    }

    /// Every call the proxy has received so far, in order, with its caller.
    /// The stand-in's own calls go to moto directly and are not among them.
    /// Every CloudFormation SignalResource the instances sent, oldest first.
    pub fn stack_signals(&self) -> Vec<ResourceSignal> {
        self.signals.all()
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.calls.calls()
    }

    /// The group's instances as Auto Scaling shows them through the proxy (held ones
    /// in Terminating:Wait), read directly so injected faults never hit this call.
    pub async fn instances(&self) -> anyhow::Result<Vec<SimInstance>> {
        let members = group_members(&self.moto_clients, &self.names.group).await?;
        let ids: Vec<String> = members.iter().map(|(id, _)| id.clone()).collect();
        let details = ec2_details(&self.moto_clients, &ids).await?;
        let overrides = self.layer.lifecycle_states();
        members
            .into_iter()
            .map(|(id, state)| {
                let (private_ip, launch_time) = *details
                    .get(&id)
                    .with_context(|| format!("EC2 does not know instance {id}"))?;
                let lifecycle_state = overrides
                    .get(&id)
                    .map_or(state, |state| (*state).to_owned());
                Ok(SimInstance {
                    id,
                    private_ip,
                    lifecycle_state,
                    launch_time,
                })
            })
            .collect()
    }

    /// What the group does to an instance on scale-in or health replacement. With
    /// the terminating hook, the instance waits in Terminating:Wait and the hook's
    /// queue gets AWS's notification; without it, it is terminated and replaced now.
    pub async fn terminate(&self, instance_id: &str) -> anyhow::Result<()> {
        let held = self.layer.hold_for_termination(instance_id, false).await?;
        if held.is_none() {
            self.layer.vanish(instance_id).await?;
        }
        Ok(())
    }

    /// The instance is terminated and replaced with no notification at all, as when
    /// a lifecycle message is lost.
    pub async fn vanish(&self, instance_id: &str) -> anyhow::Result<()> {
        self.layer.vanish(instance_id).await
    }

    /// Scale-out launches at once; scale-in holds the newest instances for the hook.
    pub async fn set_desired_capacity(&self, n: usize) -> anyhow::Result<()> {
        self.layer.set_desired_capacity(&self.names.group, n).await
    }

    /// Events from now on. The instances already there come from `instances()`:
    /// subscribe first, then read them, and ignore a Launched for an id already seen.
    pub fn subscribe(&self) -> broadcast::Receiver<InstanceEvent> {
        self.layer.subscribe()
    }

    pub fn faults(&self) -> &FaultInjector {
        &self.faults
    }

    pub fn lifecycle_actions(&self) -> Vec<LifecycleActionRecord> {
        self.layer.records()
    }
}

fn names_for(lease: &SubnetLease) -> Names {
    let octet = lease.third_octet();
    // The subnet is unique on this machine while leased; the random part keeps names
    // from repeating across runs, should anything outlive a stand-in.
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let short = &unique[..8];
    Names {
        subnet_prefix: lease.prefix(),
        group: format!("etcd-{octet}-{short}"),
        hook: "etcd-member-removal".to_owned(),
        queue: format!("etcd-lifecycle-{octet}-{short}"),
        dead_letter_queue: format!("etcd-lifecycle-dlq-{octet}-{short}"),
        bucket: format!("etcd-backups-{octet}-{short}"),
    }
}

async fn apply_timeouts(layer: Arc<LifecycleLayer>) {
    let mut ticks = tokio::time::interval(TIMEOUT_CHECK_INTERVAL);
    loop {
        ticks.tick().await;
        if let Err(error) = layer.expire_due().await {
            tracing::warn!("applying a lifecycle hook timeout failed: {error:#}");
        }
    }
}

#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
