//! One file per command: its arguments, its run and its output.

pub mod backup;
pub mod backups;
pub mod deploy;
pub mod issue_client_cert;
pub mod restore;
pub mod rotate_ca;
pub mod start_empty;
pub mod status;
