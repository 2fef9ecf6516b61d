//! The backup function's code: one binary, four jobs, each asked for by the
//! invocation's payload and answered with its typed answer (the contract in
//! `etcd_aws_core::contract::jobs`): a backup on the backup schedule (a
//! consistent snapshot streamed to S3, published only once it is whole, then
//! old backups thinned), the continuous [`capture`] every minute,
//! [`maintenance`] on its own schedule, and the operator's [`status`].
//!
//! [`run_backup`] is the whole backup job and runs in-process (tests, the
//! demo); `main.rs` is a thin Lambda handler that parses the job and calls
//! the job's run.
//!
//! # Layout
//! - The backup: [`run`] (the job), [`member_choice`] (which member serves
//!   the snapshot, pure), [`stored_stream`] (compress, cut parts, hash) and
//!   [`multipart`] (the upload), [`retention`] (what is kept, pure), [`emf`]
//!   (its metric line).
//! - [`capture`]: the continuous backup: the watch, what is held until it is
//!   flushed, and the merge of a run's segments.
//! - [`maintenance`]: etcd's health as metrics, defragmentation and NOSPACE
//!   recovery, with its pure plan.
//! - [`status`]: the cluster report for the operator's commands.
//! - [`certificates`]: when each certificate expires, for both.
//! - [`config`] (the environment, below) and [`endpoints`] (the members'
//!   client URLs from the group).
//!
//! # What a run does
//! 1. Reads the group's live instances and asks each member for its status;
//!    [`member_choice`] orders the healthy voting members, followers first
//!    (a snapshot is a full read of the database: the leader should not pay it).
//! 2. Confirms quorum with a linearizable read through the chosen member; its
//!    revision is the one recorded (a lower bound of what the snapshot holds).
//! 3. When `latest.json` already names that revision of that cluster, and that
//!    backup is younger than `ETCD_BACKUP_REFRESH_AFTER`, uploads nothing and
//!    says so in the log.
//! 4. Otherwise streams the maintenance snapshot into an S3 multipart upload:
//!    [`stored_stream`] compresses (zstd, optional), cuts parts, hashes the
//!    stored bytes and checks etcd's own trailing digest; [`multipart`] keeps a
//!    bounded number of parts in flight. Any failure aborts the upload and
//!    leaves `latest.json` alone. The manifest, then `latest.json`, are written
//!    only after CompleteMultipartUpload (format: `etcd_aws_core::backup::manifest`).
//! 5. Deletes what [`retention`] no longer keeps: only this job does. The
//!    capture and the maintenance run take their snapshots with [`take_backup`],
//!    which deletes nothing, as their roles may not.
//! 6. Prints one CloudWatch embedded-metric-format line ([`emf`]).
//!
//! # Configuration (environment of the function)
//! Every variable, its default and meaning is in `docs/settings.md`, written
//! from [`config::EnvConfig`] itself by `make docs`; beside them, `ETCD_AWS_LOG`
//! is the log filter (`RUST_LOG` syntax, default `info`).
//!
//! The newest backup and the one `latest.json` names are never deleted,
//! whatever the retention settings say.
//!
//! # Metrics
//! Namespace `EtcdAws`, dimension `GroupName`: `BackupAgeSeconds` (seconds
//! since the newest valid backup was taken: about the run's duration after an
//! upload, that backup's age after an unchanged revision, at most
//! `ETCD_BACKUP_REFRESH_AFTER` plus a schedule interval on a healthy cluster),
//! `BackupBytes` (stored size of the newest backup), `BackupDurationSeconds`;
//! a capture run: `CaptureLossWindowSeconds`, `CaptureLagRevisions`,
//! `CaptureGaps`. The backup's revision and a capture run's segments and
//! revisions ride in the same lines as fields, free and read by Logs Insights
//! (`etcd_aws_core::contract::metrics` lists what is published); a
//! maintenance run adds etcd's health and the certificates' days left. A
//! failed backup run prints no metric line and fails the invocation: the
//! stale-backup alarm fires on an age past its limit and treats missing data
//! as breaching, and the Lambda error alarm sees the failure.
//!
//! # Memory
//! About `(parts in flight + 1) x part size` plus zstd's window: with the
//! defaults (2 in flight, 8 MiB parts) some 24 MiB of buffers whatever the
//! database size. The measured peak is in `docs/benchmarks.md`.
//!
//! # Why zstd (level 1) is the default
//! The upload is the bottleneck, so fewer bytes win, and a higher level
//! compresses Kubernetes-like data barely more for more CPU
//! (`examples/compression_bench.rs` measures none, level 1 and level 3 on
//! your own data; the stored sizes `make bench` sees are in
//! `docs/benchmarks.md`). A Lambda function
//! with little memory also has a fraction of a vCPU, where compression is
//! slower: `ETCD_BACKUP_COMPRESSION=none` is the switch if the duration metric
//! says so.

pub mod capture;
pub mod certificates;
pub mod config;
pub mod emf;
pub mod endpoints;
pub mod maintenance;
pub mod member_choice;
pub mod multipart;
pub mod retention;
pub mod run;
pub mod status;
pub mod stored_stream;

pub use config::BackupConfig;
pub use run::{run_backup, take_backup, BackupAction, BackupError, BackupOutcome};
