//! Which AWS service and operation an HTTP request is, read the way AWS reads it:
//! the SigV4 credential scope names the service; the form body's Action, the JSON
//! X-Amz-Target, or S3's method and query string name the operation. The
//! credential's access key id names the caller.

use http::{HeaderMap, Method, Uri};

/// The wire protocol a call used, which decides the shape of an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Form-encoded `Action=...` (Auto Scaling, SQS query).
    Query,
    /// EC2's variant of the query protocol, with its own error shape.
    Ec2Query,
    /// `X-Amz-Target` with a JSON body (SQS today).
    Json,
    /// S3's REST-XML.
    RestXml,
    /// Lambda's REST-JSON.
    RestJson,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCall {
    /// The access key id the request was signed with: who made the call.
    pub access_key_id: String,
    pub service: String,
    pub operation: String,
    pub protocol: Protocol,
    /// Form parameters (query protocols) in request order; empty for other protocols.
    pub params: Vec<(String, String)>,
}

impl AwsCall {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

pub fn classify(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> AwsCall {
    let query = uri.query().unwrap_or("");
    let scope = scope_from_authorization(headers)
        .or_else(|| scope_from_presigned_query(query))
        .unwrap_or_default();
    let (access_key_id, service) = (scope.access_key_id, scope.service);
    if let Some(target) = header(headers, "x-amz-target") {
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        return AwsCall {
            access_key_id,
            service,
            operation,
            protocol: Protocol::Json,
            params: Vec::new(),
        };
    }
    if service == "lambda" {
        let invoke = method == Method::POST
            && uri.path().starts_with("/2015-03-31/functions/")
            && uri.path().ends_with("/invocations");
        return AwsCall {
            access_key_id,
            operation: if invoke { "Invoke" } else { "" }.to_owned(),
            service,
            protocol: Protocol::RestJson,
            params: Vec::new(),
        };
    }
    if service == "s3" {
        return AwsCall {
            access_key_id,
            operation: s3_operation(method, uri.path(), query, headers),
            service,
            protocol: Protocol::RestXml,
            params: Vec::new(),
        };
    }
    let mut params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    params.extend(form_urlencoded::parse(body).into_owned());
    let operation = params
        .iter()
        .find(|(key, _)| key == "Action")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let protocol = if service == "ec2" {
        Protocol::Ec2Query
    } else {
        Protocol::Query
    };
    AwsCall {
        access_key_id,
        service,
        operation,
        protocol,
        params,
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The parts of a SigV4 credential ("AKID/20240101/us-east-1/s3/aws4_request")
/// that say who called which service.
#[derive(Debug, Default)]
struct CredentialScope {
    access_key_id: String,
    service: String,
}

/// "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/autoscaling/aws4_request, ..."
fn scope_from_authorization(headers: &HeaderMap) -> Option<CredentialScope> {
    let authorization = header(headers, "authorization")?;
    let credential = authorization
        .split([' ', ','])
        .find_map(|part| part.strip_prefix("Credential="))?;
    scope_from_credential(credential)
}

fn scope_from_presigned_query(query: &str) -> Option<CredentialScope> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "X-Amz-Credential")
        .and_then(|(_, credential)| scope_from_credential(&credential))
}

fn scope_from_credential(credential: &str) -> Option<CredentialScope> {
    let scope: Vec<&str> = credential.split('/').collect();
    (scope.len() == 5).then(|| CredentialScope {
        access_key_id: scope[0].to_owned(),
        service: scope[3].to_owned(),
    })
}

/// S3 names no operation on the wire; it is implied by method, path and subresource.
fn s3_operation(method: &Method, path: &str, query: &str, headers: &HeaderMap) -> String {
    let has = |name: &str| form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == name);
    let trimmed = path.trim_start_matches('/');
    let has_key = trimmed
        .split_once('/')
        .is_some_and(|(_, key)| !key.is_empty());
    let copy = headers.contains_key("x-amz-copy-source");
    let operation = match (method.as_str(), has_key) {
        ("PUT", true) if has("partNumber") && copy => "UploadPartCopy",
        ("PUT", true) if has("partNumber") => "UploadPart",
        ("PUT", true) if has("tagging") => "PutObjectTagging",
        ("PUT", true) if copy => "CopyObject",
        ("PUT", true) => "PutObject",
        ("POST", true) if has("uploads") => "CreateMultipartUpload",
        ("POST", true) if has("uploadId") => "CompleteMultipartUpload",
        ("DELETE", true) if has("uploadId") => "AbortMultipartUpload",
        ("DELETE", true) => "DeleteObject",
        ("GET", true) if has("uploadId") => "ListParts",
        ("GET", true) if has("tagging") => "GetObjectTagging",
        ("GET", true) => "GetObject",
        ("HEAD", true) => "HeadObject",
        ("PUT", false) if has("versioning") => "PutBucketVersioning",
        ("PUT", false) if has("lifecycle") => "PutBucketLifecycleConfiguration",
        ("PUT", false) => "CreateBucket",
        ("POST", false) if has("delete") => "DeleteObjects",
        ("DELETE", false) => "DeleteBucket",
        ("HEAD", false) => "HeadBucket",
        ("GET", false) if has("uploads") => "ListMultipartUploads",
        ("GET", false) if has("versions") => "ListObjectVersions",
        ("GET", false) if has("versioning") => "GetBucketVersioning",
        ("GET", false) if has("list-type") => "ListObjectsV2",
        ("GET", false) if trimmed.is_empty() => "ListBuckets",
        ("GET", false) => "ListObjects",
        _ => "Unknown",
    };
    operation.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn signed_for(service: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/{service}/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=abc"
        );
        if let Ok(value) = HeaderValue::from_str(&authorization) {
            headers.insert("authorization", value);
        }
        headers
    }

    fn uri(text: &str) -> Uri {
        text.parse().unwrap_or_default()
    }

    #[test]
    fn an_autoscaling_form_body_names_service_and_action() {
        let call = classify(
            &Method::POST,
            &uri("/"),
            &signed_for("autoscaling"),
            b"Action=CompleteLifecycleAction&Version=2011-01-01&InstanceId=i-1",
        );
        assert_eq!(call.service, "autoscaling");
        assert_eq!(call.operation, "CompleteLifecycleAction");
        assert_eq!(call.protocol, Protocol::Query);
        assert_eq!(call.param("InstanceId"), Some("i-1"));
    }

    #[test]
    fn ec2_calls_use_the_ec2_query_protocol() {
        let call = classify(
            &Method::POST,
            &uri("/"),
            &signed_for("ec2"),
            b"Action=DescribeInstances&Version=2016-11-15",
        );
        assert_eq!(call.protocol, Protocol::Ec2Query);
        assert_eq!(call.operation, "DescribeInstances");
    }

    #[test]
    fn an_sqs_json_call_is_named_by_its_target_header() {
        let mut headers = signed_for("sqs");
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("AmazonSQS.ReceiveMessage"),
        );
        let call = classify(&Method::POST, &uri("/"), &headers, b"{}");
        assert_eq!(call.service, "sqs");
        assert_eq!(call.operation, "ReceiveMessage");
        assert_eq!(call.protocol, Protocol::Json);
    }

    #[test]
    fn s3_multipart_calls_are_told_apart_by_query_string() {
        let headers = signed_for("s3");
        let put = |query: &str| {
            classify(
                &Method::PUT,
                &uri(&format!("/bucket/key{query}")),
                &headers,
                b"",
            )
            .operation
        };
        assert_eq!(
            put("?partNumber=1&uploadId=abc&x-id=UploadPart"),
            "UploadPart"
        );
        assert_eq!(put(""), "PutObject");
        assert_eq!(put("?x-id=PutObject"), "PutObject");
        let post = |query: &str| {
            classify(
                &Method::POST,
                &uri(&format!("/bucket/key{query}")),
                &headers,
                b"",
            )
            .operation
        };
        assert_eq!(post("?uploads"), "CreateMultipartUpload");
        assert_eq!(post("?uploadId=abc"), "CompleteMultipartUpload");
    }

    #[test]
    fn s3_bucket_level_calls_are_recognised() {
        let headers = signed_for("s3");
        let call = classify(&Method::GET, &uri("/bucket?list-type=2"), &headers, b"");
        assert_eq!(call.operation, "ListObjectsV2");
        let call = classify(&Method::PUT, &uri("/bucket"), &headers, b"");
        assert_eq!(call.operation, "CreateBucket");
    }

    #[test]
    fn a_presigned_url_names_its_service_in_the_query() {
        let call = classify(
            &Method::GET,
            &uri("/bucket/key?X-Amz-Credential=test%2F20240101%2Fus-east-1%2Fs3%2Faws4_request"),
            &HeaderMap::new(),
            b"",
        );
        assert_eq!(call.service, "s3");
        assert_eq!(call.operation, "GetObject");
    }

    #[test]
    fn an_unsigned_request_has_no_service() {
        let call = classify(&Method::GET, &uri("/"), &HeaderMap::new(), b"");
        assert_eq!(call.service, "");
        assert_eq!(call.access_key_id, "");
    }

    #[test]
    fn the_credentials_access_key_id_names_the_caller() {
        let call = classify(
            &Method::POST,
            &uri("/"),
            &signed_for("ec2"),
            b"Action=DescribeInstances",
        );
        assert_eq!(call.access_key_id, "test");
        let presigned = classify(
            &Method::GET,
            &uri("/bucket/key?X-Amz-Credential=node-agent%2F20240101%2Fus-east-1%2Fs3%2Faws4_request"),
            &HeaderMap::new(),
            b"",
        );
        assert_eq!(presigned.access_key_id, "node-agent");
    }
}
