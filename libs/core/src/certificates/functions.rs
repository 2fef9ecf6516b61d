//! The functions' client certificate: what it is called and how long it
//! lives. `etcd-aws-cfn deploy` issues the first one; the nodes renew it.

use std::time::Duration;

/// Its common name: what etcd logs as the client of the lifecycle, backup,
/// capture and maintenance functions.
pub const CLIENT_NAME: &str = "etcd-aws-functions";

/// How long each one is valid. The nodes renew it at about two thirds of
/// that, so a stack nobody deploys for years keeps its functions working.
pub const VALIDITY: Duration = Duration::from_secs(2 * 365 * 86_400);
