//! The backup formats in the bucket: snapshots with their manifests, the
//! continuous backup's segments, and the plan that replays them on a restore;
//! how far a restore bumps revisions; and when a seed may start empty over a
//! bucket without snapshots.

pub mod empty_start;
pub mod lease_policy;
pub mod manifest;
pub mod replay;
pub mod revisions;
pub mod segment;
