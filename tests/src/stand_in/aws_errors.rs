//! AWS error answers in each service's own shape, so SDKs parse injected and
//! stand-in errors exactly as they would parse AWS's.

use super::aws_request::Protocol;

/// A complete HTTP answer made by the stand-in rather than moto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannedResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl CannedResponse {
    pub fn xml(status: u16, body: String) -> Self {
        Self {
            status,
            headers: vec![("content-type", "text/xml".to_owned())],
            body,
        }
    }
}

pub fn error_response(
    protocol: Protocol,
    service: &str,
    status: u16,
    code: &str,
    message: &str,
) -> CannedResponse {
    let request_id = uuid::Uuid::new_v4().to_string();
    let fault = if status >= 500 { "Receiver" } else { "Sender" };
    let code_xml = xml_escape(code);
    let message_xml = xml_escape(message);
    match protocol {
        Protocol::Json => CannedResponse {
            status,
            headers: vec![
                ("content-type", "application/x-amz-json-1.0".to_owned()),
                ("x-amzn-requestid", request_id),
                // SQS's JSON protocol carries the query-era error code here too.
                ("x-amzn-query-error", format!("{code};{fault}")),
            ],
            body: serde_json::json!({
                "__type": format!("com.amazonaws.{service}#{code}"),
                "message": message,
            })
            .to_string(),
        },
        Protocol::RestJson => CannedResponse {
            status,
            headers: vec![
                ("content-type", "application/json".to_owned()),
                ("x-amzn-requestid", request_id),
                ("x-amzn-errortype", code.to_owned()),
            ],
            body: serde_json::json!({ "message": message }).to_string(),
        },
        Protocol::Query => CannedResponse::xml(
            status,
            format!(
                "<ErrorResponse><Error><Type>{fault}</Type><Code>{code_xml}</Code>\
                 <Message>{message_xml}</Message></Error>\
                 <RequestId>{request_id}</RequestId></ErrorResponse>"
            ),
        ),
        Protocol::Ec2Query => CannedResponse::xml(
            status,
            format!(
                "<Response><Errors><Error><Code>{code_xml}</Code>\
                 <Message>{message_xml}</Message></Error></Errors>\
                 <RequestID>{request_id}</RequestID></Response>"
            ),
        ),
        Protocol::RestXml => CannedResponse {
            status,
            headers: vec![
                ("content-type", "application/xml".to_owned()),
                ("x-amz-request-id", request_id.clone()),
            ],
            body: format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code_xml}</Code>\
                 <Message>{message_xml}</Message><RequestId>{request_id}</RequestId></Error>"
            ),
        },
    }
}

pub fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_error_is_an_error_response_with_sender_fault() {
        let response = error_response(
            Protocol::Query,
            "autoscaling",
            400,
            "ValidationError",
            "No active Lifecycle Action found with instance ID i-1",
        );
        assert_eq!(response.status, 400);
        assert!(response.body.contains(
            "<Error><Type>Sender</Type><Code>ValidationError</Code>\
             <Message>No active Lifecycle Action found with instance ID i-1</Message></Error>"
        ));
    }

    #[test]
    fn a_server_side_query_error_is_a_receiver_fault() {
        let response = error_response(Protocol::Query, "autoscaling", 503, "Throttling", "slow");
        assert!(response.body.contains("<Type>Receiver</Type>"));
    }

    #[test]
    fn a_json_error_names_its_type_and_query_code() {
        let response = error_response(Protocol::Json, "sqs", 400, "QueueDoesNotExist", "gone");
        let body: serde_json::Value = serde_json::from_str(&response.body).unwrap_or_default();
        assert_eq!(body["__type"], "com.amazonaws.sqs#QueueDoesNotExist");
        assert!(response
            .headers
            .contains(&("x-amzn-query-error", "QueueDoesNotExist;Sender".to_owned())));
    }

    #[test]
    fn an_ec2_error_uses_the_errors_list_shape() {
        let response = error_response(
            Protocol::Ec2Query,
            "ec2",
            400,
            "InvalidInstanceID.NotFound",
            "x",
        );
        assert!(response
            .body
            .starts_with("<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code>"));
    }

    #[test]
    fn an_s3_error_is_a_bare_error_element() {
        let response = error_response(Protocol::RestXml, "s3", 500, "InternalError", "a<b");
        assert!(response
            .body
            .contains("<Error><Code>InternalError</Code><Message>a&lt;b</Message>"));
    }
}
