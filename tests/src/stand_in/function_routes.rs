//! Lambda's Invoke API for the functions the harness runs, so that a program
//! under test (the operator's commands) invokes them as it would a deployed
//! stack's: `POST /2015-03-31/functions/{name}/invocations`, answered the way
//! Lambda answers (status 200; `X-Amz-Function-Error` when the function
//! failed, with its `errorType` and `errorMessage`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use serde_json::{json, Value};

use super::aws_errors::CannedResponse;
use crate::lambda::{InvokeError, LambdaFunction};
use crate::lock;

/// Functions by name, shared by the stand-in and its proxy. Held weakly: a
/// function the test dropped is gone, as if deleted.
#[derive(Clone, Default)]
pub struct FunctionRoutes {
    functions: Arc<Mutex<HashMap<String, Weak<LambdaFunction>>>>,
}

impl std::fmt::Debug for FunctionRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(lock(&self.functions).keys())
            .finish()
    }
}

impl FunctionRoutes {
    pub fn serve(&self, name: &str, function: &Arc<LambdaFunction>) {
        lock(&self.functions).insert(name.to_owned(), Arc::downgrade(function));
    }

    /// The function an Invoke path names (by name or ARN), if the harness runs it.
    fn find(&self, path: &str) -> Option<Arc<LambdaFunction>> {
        let name = function_name(path)?;
        lock(&self.functions).get(name)?.upgrade()
    }

    pub async fn invoke(&self, path: &str, body: &[u8]) -> CannedResponse {
        let Some(function) = self.find(path) else {
            return CannedResponse {
                status: 404,
                headers: vec![
                    ("content-type", "application/json".to_owned()),
                    ("x-amzn-errortype", "ResourceNotFoundException".to_owned()),
                ],
                body: json!({"Type": "User", "message": format!("Function not found: {path}")})
                    .to_string(),
            };
        };
        let payload: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let (error, answer) = match function.invoke(&payload).await {
            Ok(answer) => (None, answer),
            Err(InvokeError::Function(e)) => (
                Some("Unhandled"),
                json!({"errorType": e.error_type, "errorMessage": e.error_message}),
            ),
            Err(other) => (
                Some("Unhandled"),
                json!({"errorType": "Runtime.Harness", "errorMessage": other.to_string()}),
            ),
        };
        let mut headers = vec![
            ("content-type", "application/json".to_owned()),
            ("x-amz-executed-version", "$LATEST".to_owned()),
        ];
        if let Some(error) = error {
            headers.push(("x-amz-function-error", error.to_owned()));
        }
        CannedResponse {
            status: 200,
            headers,
            body: answer.to_string(),
        }
    }
}

/// `/2015-03-31/functions/{name or ARN}/invocations` -> the function's name.
fn function_name(path: &str) -> Option<&str> {
    let named = path
        .strip_prefix("/2015-03-31/functions/")?
        .strip_suffix("/invocations")?;
    // An ARN (percent-encoded or not) ends with the name.
    named
        .rsplit([':', '/'])
        .next()
        .map(|n| n.rsplit("%3A").next().unwrap_or(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invoke_path_names_its_function_by_name_or_arn() {
        assert_eq!(
            function_name("/2015-03-31/functions/etcd-backup/invocations"),
            Some("etcd-backup")
        );
        assert_eq!(
            function_name("/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Aetcd-backup/invocations"),
            Some("etcd-backup")
        );
        assert_eq!(function_name("/2015-03-31/functions/x"), None);
    }
}
