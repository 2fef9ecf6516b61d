//! The local AWS stand-in and the etcd process harness that the scenario
//! tests and `make demo` run against: moto behind a lifecycle-hook layer,
//! and one `etcd-aws` process per simulated instance on its loopback IP (or
//! one container of the project's image per instance, on Docker networks).

pub mod agent_log;
pub mod container_node;
pub mod docker;
pub mod etcd_metrics;
pub mod event_source;
pub mod functions;
pub mod iam;
pub mod lambda;
pub mod life;
pub mod node;
pub mod operator;
pub mod paths;
pub mod planted_backup;
pub mod sim_cluster;
pub mod soak;
pub mod space;
pub mod stand_in;
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
