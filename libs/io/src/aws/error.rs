//! One reading of an AWS SDK error for every caller: what kind of failure it is,
//! decided from the error code AWS sent (never from its wording), and the most
//! useful one-line account of it for a log or an error message.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::error_chain::error_chain;

/// The failures callers treat differently. Anything else (throttling, a
/// network failure, a server error) is [`AwsErrorKind::Other`] and is reported
/// with its code and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// The caller's role lacks a permission (or a key policy refuses it).
    AccessDenied,
    /// The named object, secret or resource does not exist.
    NotFound,
    /// S3: the bucket itself does not exist.
    NoSuchBucket,
    /// The resource to create exists already.
    AlreadyExists,
    Other,
}

/// What an SDK error says, read once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub kind: AwsErrorKind,
    /// AWS's error code, when the answer carried one.
    pub code: Option<String>,
    /// `code: message`, else the HTTP status and body, else the SDK's chain of causes.
    pub summary: String,
}

/// The kind of failure an AWS error code names. The codes are those the
/// services document for the calls this project makes; a service that words
/// its message differently changes nothing here.
pub fn kind_of_code(code: &str) -> AwsErrorKind {
    match code {
        "AccessDenied" | "AccessDeniedException" | "Forbidden" | "UnauthorizedOperation" => {
            AwsErrorKind::AccessDenied
        }
        "NoSuchBucket" => AwsErrorKind::NoSuchBucket,
        // NotFoundException: KMS, for a key or alias that does not exist.
        "NoSuchKey"
        | "NotFound"
        | "NotFoundException"
        | "ResourceNotFoundException"
        | "NoSuchUpload" => AwsErrorKind::NotFound,
        "ResourceExistsException" | "AlreadyExistsException" | "AlreadyExists" => {
            AwsErrorKind::AlreadyExists
        }
        _ => AwsErrorKind::Other,
    }
}

/// Reads an SDK error of any AWS client of this workspace.
pub fn read<E>(error: &SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = error.code().map(str::to_owned);
    let kind = code.as_deref().map_or(AwsErrorKind::Other, kind_of_code);
    AwsError {
        kind,
        summary: summary(error),
        code,
    }
}

/// AWS's code and message when the answer carried them, else the HTTP status and
/// body (an emulator or proxy in the way may answer in a shape the SDK cannot
/// parse), else the SDK's own chain of causes.
fn summary<E>(error: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => return format!("{code}: {message}"),
        (Some(code), None) => return code.to_owned(),
        _ => {}
    }
    if let Some(raw) = error.raw_response() {
        let body: String = raw
            .body()
            .bytes()
            .map(|bytes| String::from_utf8_lossy(bytes).chars().take(1_000).collect())
            .unwrap_or_default();
        // AWS-style JSON errors ({"__type": ..., "message": ...}) say it best themselves.
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) {
            if let Some(message) = json["message"].as_str() {
                let kind = json["__type"].as_str().unwrap_or("error");
                return format!("{kind}: {message}");
            }
        }
        if !body.trim().is_empty() {
            return format!("HTTP {}: {}", raw.status().as_u16(), body.trim());
        }
    }
    error_chain(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_name_their_kind() {
        let cases = [
            ("AccessDenied", AwsErrorKind::AccessDenied),
            ("AccessDeniedException", AwsErrorKind::AccessDenied),
            ("Forbidden", AwsErrorKind::AccessDenied),
            ("NoSuchBucket", AwsErrorKind::NoSuchBucket),
            ("NoSuchKey", AwsErrorKind::NotFound),
            ("ResourceNotFoundException", AwsErrorKind::NotFound),
            ("NotFoundException", AwsErrorKind::NotFound),
            ("ResourceExistsException", AwsErrorKind::AlreadyExists),
            ("ValidationError", AwsErrorKind::Other),
            ("InternalError", AwsErrorKind::Other),
        ];
        for (code, kind) in cases {
            assert_eq!(kind_of_code(code), kind, "{code}");
        }
    }
}
