//! Lambda as the functions meet it: the Runtime API they poll, and their
//! binaries run as Lambda runs them.

mod function;
mod runtime_api;

pub use function::{function_binary, FunctionSpec, LambdaFunction};
pub use runtime_api::{function_arn, FunctionError, InvocationRecord, InvokeError, RuntimeApi};
