//! Lambda as the functions meet it: the Runtime API they poll, their
//! binaries run as Lambda runs them, and their output shipped to CloudWatch
//! Logs.

mod function;
mod log_shipper;
mod runtime_api;

pub use function::{function_binary, FunctionSpec, LambdaFunction};
pub use log_shipper::LogShipper;
pub use runtime_api::{function_arn, FunctionError, InvocationRecord, InvokeError, RuntimeApi};
