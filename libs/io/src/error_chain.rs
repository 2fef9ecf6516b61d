//! An error and its causes on one line, for operators.

/// The error and its sources on one line: the SDK's top-level message alone
/// ("service error") tells an operator nothing.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
