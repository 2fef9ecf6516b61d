//! AWS as the programs meet it: the SDK's configuration, its errors, the
//! autoscaling group, the instance metadata service and the order-signing key.

pub mod discovery;
pub mod env;
pub mod error;
pub mod identity;
pub mod order_key;
