//! The AWS SDK's configuration, loaded the same way by every program, after
//! checking what the SDK would only complain about inside its first request.
//!
//! An `AWS_ENDPOINT_URL` that is not a URL makes every call fail with a long
//! dump of the request; a one-line error before any call says what to fix.

use aws_config::{BehaviorVersion, SdkConfig};

#[derive(Debug, thiserror::Error)]
pub enum AwsEnvError {
    #[error("{variable}={value:?} is not a URL; set it to an endpoint such as https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:5000, or unset it to use AWS's own endpoints")]
    EndpointNotAUrl { variable: String, value: String },
}

/// Checks the endpoint variables, then loads the SDK's configuration from the
/// standard environment (region, credentials, endpoints).
pub async fn load() -> Result<SdkConfig, AwsEnvError> {
    check_endpoints(std::env::vars())?;
    Ok(aws_config::defaults(BehaviorVersion::latest()).load().await)
}

/// `AWS_ENDPOINT_URL` and the per-service `AWS_ENDPOINT_URL_<SERVICE>` must
/// each be an absolute http(s) URL.
pub fn check_endpoints(
    variables: impl IntoIterator<Item = (String, String)>,
) -> Result<(), AwsEnvError> {
    for (variable, value) in variables {
        if !variable.starts_with("AWS_ENDPOINT_URL") || is_endpoint_url(&value) {
            continue;
        }
        return Err(AwsEnvError::EndpointNotAUrl { variable, value });
    }
    Ok(())
}

fn is_endpoint_url(value: &str) -> bool {
    match value.parse::<http::Uri>() {
        Ok(uri) => {
            matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.authority().is_some_and(|a| !a.host().is_empty())
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(variable: &str, value: &str) -> Result<(), AwsEnvError> {
        check_endpoints([(variable.to_owned(), value.to_owned())])
    }

    #[test]
    fn http_and_https_urls_are_endpoints() {
        for value in [
            "http://127.0.0.1:5000",
            "https://s3.eu-west-1.amazonaws.com",
            "http://localhost:4566/",
        ] {
            assert!(check("AWS_ENDPOINT_URL", value).is_ok(), "{value}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_variable_named() {
        for value in ["not a url", "127.0.0.1:5000", "ftp://host", "http://", ""] {
            let error = check("AWS_ENDPOINT_URL_S3", value).map_err(|e| e.to_string());
            assert!(
                error
                    .as_ref()
                    .is_err_and(|e| e.starts_with("AWS_ENDPOINT_URL_S3=")),
                "{value}: {error:?}"
            );
        }
    }

    #[test]
    fn other_variables_are_not_looked_at() {
        assert!(check("AWS_REGION", "not a url").is_ok());
    }
}
