//! AWS as the programs meet it: the SDK's configuration, its errors, the
//! autoscaling group and the instance metadata service.

pub mod discovery;
pub mod env;
pub mod error;
pub mod identity;
