//! What crosses a program boundary, each defined once and used by both
//! sides: the backup function's jobs and their answers, the cluster report,
//! the restore order and its acknowledgements, the acknowledgements of a CA
//! rotation's stages, the signed envelope of an
//! operator's instructions, the metrics and log events the
//! stack's alarms read, and the names the template and the binaries share.

pub mod ca_rotation_acks;
pub mod cluster_report;
pub mod events;
pub mod jobs;
pub mod metrics;
pub mod names;
pub mod restore_order;
pub mod signed;
