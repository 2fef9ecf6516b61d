//! `make soak`: months of a cluster's life in minutes. A cluster of the
//! harness runs with both functions on their schedules (compressed) under a
//! checking workload, while faults drawn from a printed seed hit it one
//! after another; after each, the checker states what was promised and
//! what was kept. See `docs/soak.md` for a run's figures.

pub mod checker;
pub mod fault;
pub mod inject;
pub mod report;
pub mod run;
pub mod schedule;
pub mod workload;
