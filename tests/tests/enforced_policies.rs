//! The template's S3 grants, enforced by moto's own IAM rather than read by
//! our evaluator: moto's access control (`INITIAL_NO_AUTH_ACTION_COUNT`) is
//! switched on, each role of the stack is made in moto's IAM with its S3
//! statements as the template writes them (CloudFormation's substitutions
//! done), assumed, and used. Where moto stops (it reads `${aws:userid}` as
//! plain text and checks no bucket or key policy), the template's tests
//! evaluate the rest (template/generator/tests/order_signing.rs,
//! secret_policies.rs).

use std::time::Duration;

use anyhow::Context;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client as S3;
use etcd_aws_template::names::logical;
use etcd_aws_template::Options;
use etcd_aws_tests::stand_in::MotoServer;
use serde_json::{json, Value};

// us-east-1: a bucket there needs no location constraint.
const REGION: &str = "us-east-1";
const BUCKET: &str = "etcd-prod-backupbucket-1x2y3z";
const TIMEOUT: Duration = Duration::from_secs(60);

fn config(endpoint: &str, key: &str, secret: &str, token: Option<String>) -> SdkConfig {
    let credentials =
        aws_sdk_s3::config::Credentials::new(key, secret, token, None, "enforced-policies");
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            credentials,
        ))
        .build()
}

fn s3(config: &SdkConfig) -> S3 {
    S3::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    )
}

/// A resource of the template's policy as CloudFormation gives it to IAM,
/// for the S3 resources of the backup bucket; `None` for anything else.
fn rendered(resource: &Value) -> Option<String> {
    let bucket_arn = format!("arn:aws:s3:::{BUCKET}");
    if let Some([target, attribute]) = resource["Fn::GetAtt"].as_array().map(Vec::as_slice) {
        return (target == logical::BACKUP_BUCKET && attribute == "Arn").then_some(bucket_arn);
    }
    let text = resource["Fn::Sub"].as_str()?;
    let known = format!("${{{}.Arn}}", logical::BACKUP_BUCKET);
    let rest = text.strip_prefix(&known)?;
    // `${!Literal}` is CloudFormation's escape for IAM's own variables.
    Some(format!("{bucket_arn}{}", rest.replace("${!", "${")))
}

/// `role`'s statements that grant S3 actions on the backup bucket, rendered.
fn s3_policy(template: &Value, role: &str) -> anyhow::Result<Value> {
    let statements: Vec<Value> = template["Resources"][role]["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().cloned().unwrap_or_default())
        .filter(|s| {
            let actions = s["Action"].as_array().cloned().unwrap_or_default();
            !actions.is_empty() && actions.iter().all(|a| a.as_str().is_some_and(|a| a.starts_with("s3:")))
        })
        // moto reads a condition it cannot evaluate as a Deny; the S3
        // object calls below need none (listing, which has one, is left out).
        .filter(|s| s.get("Condition").is_none())
        .filter_map(|s| {
            let resources: Vec<String> = match &s["Resource"] {
                Value::Array(items) => items.iter().filter_map(rendered).collect(),
                one => rendered(one).into_iter().collect(),
            };
            (!resources.is_empty()).then(|| {
                json!({ "Sid": s["Sid"], "Effect": "Allow", "Action": s["Action"], "Resource": resources })
            })
        })
        .collect();
    anyhow::ensure!(
        !statements.is_empty(),
        "role {role} grants no S3 object action on the backup bucket"
    );
    Ok(json!({ "Version": "2012-10-17", "Statement": statements }))
}

/// A moto with its access control on, an administrator, the bucket with a
/// snapshot in it, and `role` of the template made and assumed: the S3
/// client as that role, and the administrator's.
struct Enforced {
    _moto: MotoServer,
    _logs: tempfile::TempDir,
    admin: S3,
    role: S3,
}

async fn enforced(role: &str) -> anyhow::Result<Enforced> {
    let logs = tempfile::tempdir()?;
    // Three unchecked requests: the administrator, its policy and its key.
    let moto = MotoServer::start_with_access_control(logs.path().join("moto.log"), 3).await?;
    let endpoint = moto.url();
    let anonymous = config(&endpoint, "bootstrap", "bootstrap", None);
    let iam = aws_sdk_iam::Client::new(&anonymous);
    iam.create_user().user_name("admin").send().await?;
    iam.put_user_policy()
        .user_name("admin")
        .policy_name("everything")
        .policy_document(json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": "*", "Resource": "*" }] }).to_string())
        .send()
        .await?;
    let key = iam.create_access_key().user_name("admin").send().await?;
    let key = key
        .access_key()
        .context("CreateAccessKey returned no key")?;
    let admin_config = config(
        &endpoint,
        key.access_key_id(),
        key.secret_access_key(),
        None,
    );
    let admin = s3(&admin_config);
    admin.create_bucket().bucket(BUCKET).send().await?;
    admin
        .put_object()
        .bucket(BUCKET)
        .key("backups/snapshots/r100.db.zst")
        .body(ByteStream::from_static(b"snapshot"))
        .send()
        .await?;

    let template = etcd_aws_template::template(&Options::default())?;
    let iam = aws_sdk_iam::Client::new(&admin_config);
    let trust = json!({ "Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": { "AWS": "arn:aws:iam::123456789012:user/admin" }, "Action": "sts:AssumeRole" }] });
    let made = iam
        .create_role()
        .role_name(role)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await?;
    let role_arn = made
        .role()
        .map(|r| r.arn().to_owned())
        .context("CreateRole returned no role")?;
    iam.put_role_policy()
        .role_name(role)
        .policy_name("s3")
        .policy_document(s3_policy(&template, role)?.to_string())
        .send()
        .await?;
    let session = aws_sdk_sts::Client::new(&admin_config)
        .assume_role()
        .role_arn(role_arn)
        .role_session_name("i-0aaa")
        .send()
        .await?;
    let credentials = session
        .credentials()
        .context("AssumeRole returned no credentials")?;
    let as_role = config(
        &endpoint,
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_owned()),
    );
    Ok(Enforced {
        _moto: moto,
        _logs: logs,
        admin,
        role: s3(&as_role),
    })
}

/// Whether moto refused the call as IAM would (AccessDenied), as opposed
/// to any other failure, which fails the test.
fn refused<T, E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<T, aws_sdk_s3::error::SdkError<E>>,
) -> anyhow::Result<bool> {
    match result {
        Ok(_) => Ok(false),
        Err(error) => match error.as_service_error().and_then(|e| e.code()) {
            Some("AccessDenied") => Ok(true),
            _ => anyhow::bail!("neither allowed nor refused: {error:?}"),
        },
    }
}

async fn put(client: &S3, key: &str) -> anyhow::Result<bool> {
    let result = tokio::time::timeout(
        TIMEOUT,
        client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from_static(b"{}"))
            .send(),
    )
    .await?;
    refused(result)
}

/// Whether `client` is refused deleting the snapshot every test bucket holds.
async fn delete_snapshot(client: &S3) -> anyhow::Result<bool> {
    let result = tokio::time::timeout(
        TIMEOUT,
        client
            .delete_object()
            .bucket(BUCKET)
            .key("backups/snapshots/r100.db.zst")
            .send(),
    )
    .await?;
    refused(result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_may_read_backups_but_writing_an_order_or_a_snapshot_is_refused(
) -> anyhow::Result<()> {
    let stack = enforced(logical::NODE_ROLE).await?;
    // The node's own grant works, so a refusal below is the policy's doing.
    let read = stack
        .role
        .get_object()
        .bucket(BUCKET)
        .key("backups/snapshots/r100.db.zst")
        .send()
        .await;
    assert!(!refused(read)?, "the node reads a backup");
    for key in [
        "backups/restore/order.json",
        "backups/restore/empty-start.json",
        "backups/snapshots/r200.db.zst",
    ] {
        assert!(put(&stack.role, key).await?, "the node wrote {key}");
        assert!(
            !put(&stack.admin, key).await?,
            "the administrator may write {key}"
        );
    }
    assert!(
        delete_snapshot(&stack.role).await?,
        "the node deleted a snapshot"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capture_may_write_segments_but_deleting_a_snapshot_is_refused() -> anyhow::Result<()> {
    let stack = enforced(logical::CAPTURE_FUNCTION_ROLE).await?;
    assert!(
        !put(
            &stack.role,
            "backups/segments/00000000000000000101-00000000000000000200.json.zst"
        )
        .await?
    );
    assert!(
        delete_snapshot(&stack.role).await?,
        "the capture deleted a snapshot"
    );
    for key in [
        "backups/restore/order.json",
        "backups/restore/r1/AROA3XFRBF535EXAMPLE:i-0aaa",
    ] {
        assert!(put(&stack.role, key).await?, "the capture wrote {key}");
    }
    Ok(())
}
