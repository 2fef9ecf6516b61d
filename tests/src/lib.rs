//! The local AWS stand-in and the etcd process harness that the scenario
//! tests and `make demo` run against: moto behind a lifecycle-hook layer,
//! and one `etcd-aws` process per simulated instance on its loopback IP (or
//! one container of the project's image per instance, on Docker networks).
//!
//! # Layout
//! - The stand-in for AWS: [`stand_in`] (moto behind the lifecycle-hook and
//!   fault layer), [`iam`] (the template's policies, evaluated), [`lambda`]
//!   (the Runtime API), [`event_source`] (SQS to Lambda), [`functions`]
//!   (both functions on their triggers), [`operator`] (`etcd-aws-cfn` run
//!   against the stand-in), [`load_balancer`] (one address for clients, to
//!   the nodes that say they are ready), [`planted_backup`].
//! - The nodes: [`node`] (a process on its loopback IP), [`container_node`]
//!   with [`docker`] (a container on a network that can be cut),
//!   [`sim_cluster`] (a group of either), [`paths`] (the built binaries and
//!   etcd's releases), [`agent_log`] (the agent's JSON lines, read by event),
//!   [`etcd_metrics`]; [`boot_node`], a node that boots as an EC2 instance
//!   (systemd, cloud-init's user-data, IMDSv2 from `stand_in::imds`), and
//!   [`booted_cluster`], a group of them booting from the stack's own
//!   user-data.
//! - What the scenarios do and check: [`workload`] (a writer and its
//!   checker), [`watcher`] (a watcher that resumes as Kubernetes' do),
//!   [`space`] (filling a cluster on purpose), [`life`] (the life of a
//!   cluster, `make demo`), [`soak`] (`make soak`).

pub mod agent_log;
pub mod boot_node;
pub mod booted_cluster;
pub mod container_node;
pub mod docker;
pub mod etcd_metrics;
pub mod event_source;
pub mod functions;
pub mod iam;
pub mod lambda;
pub mod life;
pub mod load_balancer;
pub mod node;
pub mod operator;
pub mod paths;
pub mod planted_backup;
pub mod sim_cluster;
pub mod soak;
pub mod space;
pub mod stand_in;
pub mod watcher;
pub mod workload;

/// Locks a mutex the harness shares between tasks. A poisoned lock still
/// holds what a panicking test left, and every update under the harness's
/// locks is one call on a plain value, so the harness carries on (it must
/// still stop every process it started).
pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
