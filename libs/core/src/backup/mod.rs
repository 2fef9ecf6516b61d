//! The backup formats in the bucket: snapshots with their manifests, the
//! continuous backup's segments, and the plan that replays them on a restore.

pub mod lease_policy;
pub mod manifest;
pub mod replay;
pub mod segment;
