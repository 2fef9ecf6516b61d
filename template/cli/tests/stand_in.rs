//! The template against the local AWS stand-in (moto's CloudFormation and Secrets
//! Manager): the stack is created as far as moto supports its resource types, the
//! deploy command shows progress and reports a failed create clearly, makes the
//! cluster's secrets once before the stack, and issues client certificates.
//!
//! Each test starts its own moto server on a free loopback port and points the deploy
//! command at it through `AWS_ENDPOINT_URL`.

#[path = "../../generator/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::template_for;
use etcd_aws_io::tls::{ClusterCa, SecretStore, TlsCredentials};
use etcd_aws_template::names::{parameters, secrets};
use etcd_aws_template::options::{ArtifactPrefix, ExistingVpc, Options};
use etcd_aws_template::tls_secrets::{resource_policy, secrets_key_policy, ClusterSecret, KeyHome};
use serde_json::Value;

/// Resource types moto's CloudFormation does not implement: it logs "No Moto
/// CloudFormation support" and creates the stack without them.
const MOTO_SKIPS: &[&str] = &[
    "AWS::CloudWatch::Alarm",
    "AWS::EC2::SecurityGroupEgress",
    "AWS::Logs::MetricFilter",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::Subscription",
];

/// Resources moto implements but mishandles, removed from the template before it goes
/// to moto, each with what goes wrong.
const MOTO_MISHANDLES: &[(&str, &str)] = &[
    (
        "ClientListener",
        "moto ignores the load balancer's Type and makes an application load balancer, which then refuses the TCP listener",
    ),
    (
        "Dashboard",
        "moto's target group has no TargetGroupFullName attribute, and resolving it crashes every later stack call",
    ),
];

const REGION: &str = "us-east-1";
const ARTIFACT_BUCKET: &str = "etcd-aws-artifacts";

fn venv_tool(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.venv/bin")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run `make setup` to install moto into the project's .venv",
        path.display()
    );
    path
}

/// A moto server process, killed when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("bound address").port()
        };
        let child = Command::new(venv_tool("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto did not listen on port {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", REGION)
            .env("AWS_DEFAULT_REGION", REGION)
            .env_remove("AWS_PROFILE");
        command
    }

    /// Uploads stand-in function zips, as `make package` would upload the real ones,
    /// to a versioned bucket (the deploy pins the zips' versions).
    fn upload_artifacts(&self, prefix: &str) {
        self.python(&format!(
            r##"
import boto3, io, zipfile
s3 = boto3.client("s3")
s3.create_bucket(Bucket="{ARTIFACT_BUCKET}")
s3.put_bucket_versioning(Bucket="{ARTIFACT_BUCKET}", VersioningConfiguration={{"Status": "Enabled"}})
archive = io.BytesIO()
with zipfile.ZipFile(archive, "w") as z:
    z.writestr("bootstrap", "#!/bin/sh\n")
for name in ["etcd-aws-lifecycle.zip", "etcd-aws-backup.zip"]:
    s3.put_object(Bucket="{ARTIFACT_BUCKET}", Key="{prefix}" + name, Body=archive.getvalue())
"##
        ));
    }

    /// The artifact bucket, empty: where a large template is staged.
    fn create_artifact_bucket(&self) {
        self.python(&format!(
            r#"import boto3; boto3.client("s3").create_bucket(Bucket="{ARTIFACT_BUCKET}")"#
        ));
    }

    /// The artifact bucket, versioned and empty: where a deploy uploads the package.
    fn create_versioned_artifact_bucket(&self) {
        self.python(&format!(
            r#"
import boto3
s3 = boto3.client("s3")
s3.create_bucket(Bucket="{ARTIFACT_BUCKET}")
s3.put_bucket_versioning(Bucket="{ARTIFACT_BUCKET}", VersioningConfiguration={{"Status": "Enabled"}})
"#
        ));
    }

    /// Runs `script` with the venv's Python against this server.
    fn python(&self, script: &str) {
        let output = self
            .command(&venv_tool("python"))
            .args(["-c", script])
            .output()
            .expect("python runs");
        assert!(
            output.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Deploys as `make deploy` does: with the artifact bucket, where a template over
    /// the inline limit is staged.
    fn deploy(&self, stack: &str, template: &Path) -> Output {
        self.deploy_with(stack, template, &["--artifact-bucket", ARTIFACT_BUCKET])
    }

    fn deploy_with(&self, stack: &str, template: &Path, extra: &[&str]) -> Output {
        self.cfn()
            .args(["--stack-name", stack, "--template-file"])
            .arg(template)
            .args(["--poll-seconds", "1", "--timeout-minutes", "2"])
            .args(extra)
            .output()
            .expect("etcd-aws-cfn runs")
    }

    /// `etcd-aws-cfn` pointed at this server, without the caller's `ETCD_AWS_*` settings.
    fn cfn(&self) -> Command {
        let mut command = self.command(Path::new(env!("CARGO_BIN_EXE_etcd-aws-cfn")));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ETCD_AWS_") {
                command.env_remove(name);
            }
        }
        command
    }

    async fn config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_cloudformation::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load()
            .await
    }

    async fn client(&self) -> aws_sdk_cloudformation::Client {
        aws_sdk_cloudformation::Client::new(&self.config().await)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Ours to stop: the server this test started, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stack's template with every parameter given a default, minus what moto mishandles.
fn template_for_moto() -> Value {
    template_for_moto_at(Options::default().artifact_prefix)
}

/// The same, with the artifacts under `prefix` (a later build's `make deploy`).
fn template_for_moto_at(prefix: ArtifactPrefix) -> Value {
    template_for_moto_with(moto_options(prefix))
}

/// Every parameter given a default, the artifacts under `prefix`.
fn moto_options(prefix: ArtifactPrefix) -> Options {
    Options {
        alarm_email: Some("ops@example.com".to_string()),
        artifact_bucket: Some(ARTIFACT_BUCKET.to_string()),
        etcd_sha256: Some(common::parse(&"0".repeat(64))),
        agent_sha256: Some(common::parse(&"1".repeat(64))),
        artifact_prefix: prefix,
        operator_role_arns: vec!["arn:aws:iam::123456789012:role/etcd-operators".to_string()],
        ..Options::default()
    }
}

/// The template for `options`, minus what moto mishandles.
fn template_for_moto_with(options: Options) -> Value {
    let mut template = template_for(&options);
    for (id, _why) in MOTO_MISHANDLES {
        let removed = template["Resources"]
            .as_object_mut()
            .and_then(|r| r.remove(*id));
        assert!(
            removed.is_some(),
            "{id} is no longer in the template: update MOTO_MISHANDLES"
        );
        if let Some(outputs) = template["Outputs"].as_object_mut() {
            outputs.retain(|_, output| {
                let mut names = Vec::new();
                common::references(output, &mut names);
                !names.iter().any(|n| n == id)
            });
        }
    }
    template
}

fn write(directory: &Path, template: &Value) -> PathBuf {
    let path = directory.join("template.json");
    std::fs::write(
        &path,
        etcd_aws_template::compact(template).expect("renders"),
    )
    .expect("written");
    path
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_is_created_in_the_stand_in_except_the_types_moto_skips() {
    let moto = Moto::start();
    moto.upload_artifacts(Options::default().artifact_prefix.as_str());
    let directory = tempfile::tempdir().expect("temporary directory");
    let template = template_for_moto();
    let output = moto.deploy("etcd-a", &write(directory.path(), &template));
    let log = stderr(&output);
    assert!(output.status.success(), "deploy failed:\n{log}");
    assert!(log.contains("CREATE_COMPLETE"), "no progress shown:\n{log}");

    let client = moto.client().await;
    let created: BTreeSet<String> = client
        .list_stack_resources()
        .stack_name("etcd-a")
        .send()
        .await
        .expect("stack resources listed")
        .stack_resource_summaries()
        .iter()
        .filter_map(|r| r.logical_resource_id().map(str::to_string))
        .collect();
    let mut by_type: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (id, body) in template["Resources"].as_object().expect("resources") {
        let kind = body["Type"].as_str().unwrap_or_default().to_string();
        let entry = by_type.entry(kind).or_default();
        entry.0 += 1;
        if created.contains(id) {
            entry.1 += 1;
        }
    }
    let skipped: Vec<&str> = by_type
        .iter()
        .filter(|(_, (_, made))| *made == 0)
        .map(|(kind, _)| kind.as_str())
        .collect();
    eprintln!("resource types moto skipped: {skipped:?}");
    eprintln!("removed before moto: {MOTO_MISHANDLES:?}");
    assert_eq!(
        skipped, MOTO_SKIPS,
        "moto's skipped types changed: update MOTO_SKIPS"
    );
    for (kind, (declared, made)) in &by_type {
        if !MOTO_SKIPS.contains(&kind.as_str()) {
            assert_eq!(declared, made, "moto created {made} of {declared} {kind}");
        }
    }
    // Not checked here: moto computes no stack outputs (and emits no per-resource
    // events) for a stack made through a change set; the structural tests cover outputs.
}

/// The physical id CloudFormation gave the stack's resource `logical`.
async fn physical_id(moto: &Moto, stack: &str, logical: &str) -> String {
    stack_resources(moto, stack)
        .await
        .iter()
        .find(|r| r.logical_resource_id() == Some(logical))
        .and_then(|r| r.physical_resource_id())
        .unwrap_or_else(|| panic!("{logical} of {stack} has a physical id"))
        .to_owned()
}

/// The stack's resources as CloudFormation lists them.
async fn stack_resources(
    moto: &Moto,
    stack: &str,
) -> Vec<aws_sdk_cloudformation::types::StackResourceSummary> {
    moto.client()
        .await
        .list_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .expect("stack resources listed")
        .stack_resource_summaries()
        .to_vec()
}

/// What moto's S3 shows: an object written to the stack's bucket with no
/// encryption asked for is encrypted with the stack's backup key. moto does
/// not enforce the key's policy on reads: that a principal outside it cannot
/// read is the key policy's evaluation in the template's tests
/// (template/generator/tests/backup_encryption.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_written_to_the_stacks_bucket_carries_the_stacks_backup_key() {
    let moto = Moto::start();
    let directory = tempfile::tempdir().expect("temporary directory");
    deployed(&moto, "etcd-sse", directory.path());
    let bucket = physical_id(&moto, "etcd-sse", "BackupBucket").await;
    let key = physical_id(&moto, "etcd-sse", "BackupKey").await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&moto.config().await)
            .force_path_style(true)
            .build(),
    );
    s3.put_object()
        .bucket(&bucket)
        .key("backups/snapshots/r1.db.zst")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"snapshot"))
        .send()
        .await
        .expect("the object is written");
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key("backups/snapshots/r1.db.zst")
        .send()
        .await
        .expect("the object is described");
    assert_eq!(
        head.server_side_encryption(),
        Some(&aws_sdk_s3::types::ServerSideEncryption::AwsKms)
    );
    let used = head.ssekms_key_id().unwrap_or_default();
    assert!(
        used == key || used.ends_with(&format!("key/{key}")),
        "encrypted with {used:?}, not the stack's backup key {key}"
    );
}

#[test]
fn deploy_shows_progress_and_names_the_reason_when_the_create_fails() {
    let moto = Moto::start();
    // Injected failure: the stack's artifact bucket was never made, so creating the
    // functions fails in the middle of the stack (the template itself is staged in
    // the deployer's bucket, which exists and holds the zips whose versions it pins).
    moto.upload_artifacts(Options::default().artifact_prefix.as_str());
    let mut template = template_for_moto();
    template["Parameters"][parameters::ARTIFACT_BUCKET]["Default"] =
        Value::from("etcd-aws-never-made");
    let directory = tempfile::tempdir().expect("temporary directory");
    let output = moto.deploy("etcd-broken", &write(directory.path(), &template));
    let log = stderr(&output);
    assert!(
        !output.status.success(),
        "deploy succeeded without artifacts:\n{log}"
    );
    assert!(log.contains("creating change set"), "{log}");
    assert!(log.contains("executing change set"), "{log}");
    assert!(
        log.contains("ExecuteChangeSet failed: InvalidParameterValueException: Error occurred while GetObject"),
        "the failure does not say what went wrong:\n{log}"
    );
    assert!(
        !log.contains("ServiceError {"),
        "raw SDK debug output instead of a message:\n{log}"
    );
}

#[test]
fn deploying_the_same_template_again_reports_no_changes() {
    let moto = Moto::start();
    moto.upload_artifacts(Options::default().artifact_prefix.as_str());
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = write(directory.path(), &template_for_moto());
    let first = moto.deploy("etcd-twice", &path);
    assert!(
        first.status.success(),
        "first deploy failed:\n{}",
        stderr(&first)
    );
    let second = moto.deploy("etcd-twice", &path);
    let log = stderr(&second);
    assert!(second.status.success(), "second deploy failed:\n{log}");
    assert!(log.contains("no changes"), "{log}");
    assert!(log.contains("stack unchanged"), "{log}");
}

/// `template` with top-level metadata that takes its body past CloudFormation's
/// inline limit, whatever size the stack's own resources have.
fn over_the_inline_limit(mut template: Value) -> Value {
    let body = etcd_aws_template::compact(&template).expect("renders");
    let padding = (etcd_aws_template::TEMPLATE_BODY_LIMIT + 1).saturating_sub(body.len());
    template["Metadata"]["Padding"] = Value::String("x".repeat(padding.max(1)));
    template
}

#[test]
fn a_template_over_the_inline_limit_is_staged_in_the_artifact_bucket() {
    let moto = Moto::start();
    moto.upload_artifacts(Options::default().artifact_prefix.as_str());
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = write(
        directory.path(),
        &over_the_inline_limit(template_for_moto()),
    );
    let output = moto.deploy("etcd-large", &path);
    let log = stderr(&output);
    assert!(output.status.success(), "deploy failed:\n{log}");
    assert!(log.contains("template staged in S3"), "{log}");
    assert!(log.contains("stack created"), "{log}");
}

#[test]
fn a_template_over_the_inline_limit_without_an_artifact_bucket_says_to_pass_one() {
    let moto = Moto::start();
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = write(
        directory.path(),
        &over_the_inline_limit(template_for_moto()),
    );
    let output = moto.deploy_with("etcd-large", &path, &[]);
    let log = stderr(&output);
    assert!(!output.status.success(), "deploy succeeded:\n{log}");
    assert!(log.contains("pass --artifact-bucket"), "{log}");
}

// The cluster's secrets: made by the deploy command before the stack, never replaced.

/// A stack deployed once on `moto`, with the log of the deploy.
fn deployed(moto: &Moto, stack: &str, directory: &Path) -> (PathBuf, String) {
    moto.upload_artifacts(Options::default().artifact_prefix.as_str());
    let path = write(directory, &template_for_moto());
    let output = moto.deploy(stack, &path);
    let log = stderr(&output);
    assert!(output.status.success(), "deploy failed:\n{log}");
    (path, log)
}

struct StoredSecrets {
    ca: ClusterCa,
    functions: TlsCredentials,
    functions_raw: String,
}

async fn stored_secrets(moto: &Moto, stack: &str) -> StoredSecrets {
    let config = moto.config().await;
    let store = SecretStore::new(&config);
    let ca = store
        .load_ca(&secrets::cluster_ca(stack))
        .await
        .expect("the cluster CA is stored");
    let functions = store
        .load_client(&secrets::functions_client(stack))
        .await
        .expect("the functions' certificate is stored");
    let functions_raw = aws_sdk_secretsmanager::Client::new(&config)
        .get_secret_value()
        .secret_id(secrets::functions_client(stack))
        .send()
        .await
        .expect("the functions' secret is readable")
        .secret_string()
        .unwrap_or_default()
        .to_string();
    StoredSecrets {
        ca,
        functions,
        functions_raw,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_creates_the_cluster_ca_and_a_functions_certificate_issued_from_it() {
    let moto = Moto::start();
    let directory = tempfile::tempdir().expect("temporary directory");
    let (_, log) = deployed(&moto, "etcd-tls", directory.path());
    assert!(
        log.contains("created cluster CA in secret arn:aws:secretsmanager:"),
        "{log}"
    );
    assert!(
        log.contains("issued the functions' client certificate into secret"),
        "{log}"
    );
    let stored = stored_secrets(&moto, "etcd-tls").await;
    assert_eq!(stored.functions.ca_pem, stored.ca.cert_pem());
    let info = stored
        .functions
        .check("the functions' certificate", SystemTime::now())
        .expect("the functions' certificate verifies against the CA");
    assert_eq!(info.common_name, "etcd-aws-functions");
    // Valid for about two years, and not a day less than 700 days.
    let left = info
        .not_after
        .duration_since(SystemTime::now())
        .expect("not expired");
    assert!(left > Duration::from_secs(700 * 86_400), "{left:?}");
    assert!(
        !stored.functions_raw.contains(stored.ca.key_pem().trim()),
        "the functions' secret holds the CA's key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_tags_both_secrets_with_the_stack_and_passes_their_arns_to_it() {
    let moto = Moto::start();
    let directory = tempfile::tempdir().expect("temporary directory");
    deployed(&moto, "etcd-tags", directory.path());
    let config = moto.config().await;
    let secrets_client = aws_sdk_secretsmanager::Client::new(&config);
    let mut arns = BTreeMap::new();
    for (parameter, name) in [
        (
            parameters::CLUSTER_CA_SECRET_ARN,
            secrets::cluster_ca("etcd-tags"),
        ),
        (
            parameters::FUNCTIONS_CLIENT_SECRET_ARN,
            secrets::functions_client("etcd-tags"),
        ),
    ] {
        let described = secrets_client
            .describe_secret()
            .secret_id(&name)
            .send()
            .await
            .expect("the secret exists");
        let tagged = described
            .tags()
            .iter()
            .any(|t| t.key() == Some(secrets::STACK_TAG) && t.value() == Some("etcd-tags"));
        assert!(tagged, "{name} lacks its stack tag: {:?}", described.tags());
        arns.insert(
            parameter.to_string(),
            described.arn().unwrap_or_default().to_string(),
        );
    }
    let stacks = moto
        .client()
        .await
        .describe_stacks()
        .stack_name("etcd-tags")
        .send()
        .await
        .expect("the stack is described");
    let given: BTreeMap<String, String> = stacks.stacks()[0]
        .parameters()
        .iter()
        .filter(|p| arns.contains_key(p.parameter_key().unwrap_or_default()))
        .map(|p| {
            (
                p.parameter_key().unwrap_or_default().to_string(),
                p.parameter_value().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(given, arns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_guards_both_secrets_with_a_policy_naming_the_operators() {
    let moto = Moto::start();
    let directory = tempfile::tempdir().expect("temporary directory");
    moto.upload_artifacts(Options::default().artifact_prefix.as_str());
    let path = write(directory.path(), &template_for_moto());
    let operators = "arn:aws:iam::123456789012:role/etcd-operators";
    let output = moto.deploy_with(
        "etcd-guard",
        &path,
        &[
            "--artifact-bucket",
            ARTIFACT_BUCKET,
            "--operator-role-arns",
            operators,
        ],
    );
    assert!(
        output.status.success(),
        "deploy failed:\n{}",
        stderr(&output)
    );
    let store = SecretStore::new(&moto.config().await);
    for (name, which) in [
        (secrets::cluster_ca("etcd-guard"), ClusterSecret::Ca),
        (
            secrets::functions_client("etcd-guard"),
            ClusterSecret::FunctionsClient,
        ),
    ] {
        let stored = store
            .policy(&name)
            .await
            .expect("the policy is readable")
            .unwrap_or_else(|| panic!("{name} has no resource policy"));
        let stored: Value = serde_json::from_str(&stored).expect("the policy is JSON");
        assert_eq!(
            stored,
            resource_policy("etcd-guard", which, &[operators.to_owned()]),
            "{name}"
        );
    }
}

/// A deploy of `stack` with operators named, and no key given.
fn deployed_with_operators(moto: &Moto, stack: &str, directory: &Path) -> String {
    moto.upload_artifacts(Options::default().artifact_prefix.as_str());
    let path = write(directory, &template_for_moto());
    let output = moto.deploy_with(
        stack,
        &path,
        &[
            "--artifact-bucket",
            ARTIFACT_BUCKET,
            "--operator-role-arns",
            OPERATORS,
        ],
    );
    let log = stderr(&output);
    assert!(output.status.success(), "deploy failed:\n{log}");
    log
}

const OPERATORS: &str = "arn:aws:iam::123456789012:role/etcd-operators";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_stacks_secrets_get_a_key_of_their_own_that_only_its_roles_and_operators_use() {
    let moto = Moto::start();
    let directory = tempfile::tempdir().expect("temporary directory");
    deployed_with_operators(&moto, "etcd-own-key", directory.path());
    let config = moto.config().await;
    let kms = aws_sdk_kms::Client::new(&config);
    let key = kms
        .describe_key()
        .key_id("alias/etcd-aws/etcd-own-key/secrets")
        .send()
        .await
        .expect("the stack's secrets key exists under its alias");
    let arn = key
        .key_metadata()
        .and_then(|m| m.arn())
        .expect("the key has an ARN")
        .to_owned();
    let secrets_client = aws_sdk_secretsmanager::Client::new(&config);
    for name in [
        secrets::cluster_ca("etcd-own-key"),
        secrets::functions_client("etcd-own-key"),
    ] {
        let described = secrets_client
            .describe_secret()
            .secret_id(&name)
            .send()
            .await
            .expect("the secret exists");
        assert_eq!(described.kms_key_id(), Some(arn.as_str()), "{name}");
    }
    let policy = kms
        .get_key_policy()
        .key_id(&arn)
        .policy_name("default")
        .send()
        .await
        .expect("the key policy is readable");
    let policy: Value = serde_json::from_str(policy.policy().unwrap_or_default()).expect("JSON");
    let home = KeyHome {
        partition: "aws".into(),
        account: "123456789012".into(),
        region: REGION.into(),
    };
    assert_eq!(
        policy,
        secrets_key_policy(&home, "etcd-own-key", &[OPERATORS.to_owned()])
    );
    let stacks = moto
        .client()
        .await
        .describe_stacks()
        .stack_name("etcd-own-key")
        .send()
        .await
        .expect("described");
    let given = stacks.stacks()[0]
        .parameters()
        .iter()
        .find(|p| p.parameter_key() == Some(parameters::SECRETS_KMS_KEY_ARN))
        .and_then(|p| p.parameter_value())
        .map(str::to_owned);
    assert_eq!(
        given,
        Some(arn),
        "the roles are granted the key the secrets use"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_made_under_the_aws_managed_key_keep_it_and_the_deploy_says_how_to_change_it() {
    let moto = Moto::start();
    let directory = tempfile::tempdir().expect("temporary directory");
    deployed(&moto, "etcd-old-key", directory.path());
    let log = deployed_with_operators(&moto, "etcd-old-key", directory.path());
    assert!(log.contains("keep it"), "{log}");
    let described = aws_sdk_secretsmanager::Client::new(&moto.config().await)
        .describe_secret()
        .secret_id(secrets::cluster_ca("etcd-old-key"))
        .send()
        .await
        .expect("the secret exists");
    assert_eq!(described.kms_key_id(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_without_operators_leaves_the_secrets_unguarded_and_says_so() {
    let moto = Moto::start();
    let directory = tempfile::tempdir().expect("temporary directory");
    let (_, log) = deployed(&moto, "etcd-open", directory.path());
    assert!(log.contains("gets no resource policy"), "{log}");
    let store = SecretStore::new(&moto.config().await);
    let policy = store
        .policy(&secrets::cluster_ca("etcd-open"))
        .await
        .expect("the policy is readable");
    assert_eq!(policy, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_deploy_keeps_the_cluster_ca_and_the_functions_certificate() {
    let moto = Moto::start();
    let directory = tempfile::tempdir().expect("temporary directory");
    let (path, _) = deployed(&moto, "etcd-again", directory.path());
    let before = stored_secrets(&moto, "etcd-again").await;
    let output = moto.deploy("etcd-again", &path);
    let log = stderr(&output);
    assert!(output.status.success(), "second deploy failed:\n{log}");
    assert!(log.contains("cluster CA already present in"), "{log}");
    assert!(
        log.contains("functions' client certificate already present in"),
        "{log}"
    );
    let after = stored_secrets(&moto, "etcd-again").await;
    assert_eq!(after.ca, before.ca, "the CA was replaced");
    assert_eq!(after.functions, before.functions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reissuing_the_functions_certificate_keeps_the_cluster_ca() {
    let moto = Moto::start();
    let directory = tempfile::tempdir().expect("temporary directory");
    let (path, _) = deployed(&moto, "etcd-reissue", directory.path());
    let before = stored_secrets(&moto, "etcd-reissue").await;
    let output = moto.deploy_with(
        "etcd-reissue",
        &path,
        &[
            "--artifact-bucket",
            ARTIFACT_BUCKET,
            "--reissue-functions-certificate",
        ],
    );
    let log = stderr(&output);
    assert!(output.status.success(), "deploy failed:\n{log}");
    assert!(
        log.contains("re-issued the functions' client certificate"),
        "{log}"
    );
    let after = stored_secrets(&moto, "etcd-reissue").await;
    assert_eq!(after.ca, before.ca, "the CA was replaced");
    assert_ne!(after.functions.cert_pem, before.functions.cert_pem);
    after
        .functions
        .check("the re-issued certificate", SystemTime::now())
        .expect("the new certificate verifies against the same CA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_client_cert_writes_a_certificate_that_verifies_against_the_cluster_ca() {
    let moto = Moto::start();
    let directory = tempfile::tempdir().expect("temporary directory");
    deployed(&moto, "etcd-users", directory.path());
    let out = directory.path().join("alice");
    let output = moto
        .cfn()
        .args(["issue-client-cert", "--stack-name", "etcd-users"])
        .args(["--name", "alice", "--valid-for", "30days", "--out"])
        .arg(&out)
        .output()
        .expect("etcd-aws-cfn runs");
    let log = stderr(&output);
    assert!(output.status.success(), "issue-client-cert failed:\n{log}");
    let read = |file: &str| {
        std::fs::read_to_string(out.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
    };
    let credentials = TlsCredentials {
        ca_pem: read("ca.pem"),
        cert_pem: read("cert.pem"),
        key_pem: read("key.pem"),
    };
    let ca = stored_secrets(&moto, "etcd-users").await.ca;
    assert_eq!(credentials.ca_pem, ca.cert_pem());
    let info = credentials
        .check("alice's certificate", SystemTime::now())
        .expect("alice's certificate verifies against the cluster CA");
    assert_eq!(info.common_name, "alice");
    let left = info
        .not_after
        .duration_since(SystemTime::now())
        .expect("not expired");
    assert!(
        left <= Duration::from_secs(30 * 86_400) && left > Duration::from_secs(29 * 86_400),
        "{left:?}"
    );
    let mode = std::fs::metadata(out.join("key.pem"))
        .expect("key.pem")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let command = String::from_utf8_lossy(&output.stdout);
    let expected = format!(
        "--cacert {0}/ca.pem --cert {0}/cert.pem --key {0}/key.pem",
        out.display()
    );
    assert!(
        command.starts_with("etcdctl --endpoints https://"),
        "{command}"
    );
    assert!(command.contains(&expected), "{command}");
}

#[test]
fn issue_client_cert_before_the_stack_is_deployed_says_to_deploy_first() {
    let moto = Moto::start();
    let directory = tempfile::tempdir().expect("temporary directory");
    let output = moto
        .cfn()
        .args(["issue-client-cert", "--stack-name", "etcd-nowhere"])
        .args(["--name", "bob", "--out"])
        .arg(directory.path().join("bob"))
        .output()
        .expect("etcd-aws-cfn runs");
    let log = stderr(&output);
    assert!(!output.status.success(), "{log}");
    assert!(
        log.contains("etcd-aws/etcd-nowhere/cluster-ca does not exist: deploy the stack first"),
        "{log}"
    );
    assert!(!directory.path().join("bob").exists());
}

/// `cargo lambda deploy` of the arm64 functions of `make package` (their
/// `bootstrap` under `$ETCD_AWS_PACKAGE_DIST/arm64/lambda/<function>/`, where
/// `cargo lambda deploy --lambda-dir` looks) into a stack created in moto:
/// each function's code becomes the zip cargo lambda made (its CodeSha256),
/// while the stack's configuration (role, environment, architecture, runtime)
/// stays; then a later build's `make deploy` (artifacts under a new prefix)
/// puts the stack's code back. Run by `make package-check`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs `make package` (the arm64 functions) and cargo-lambda; make package-check runs it"]
async fn cargo_lambda_deploy_replaces_the_code_of_the_stacks_functions() {
    let dist = PathBuf::from(std::env::var_os("ETCD_AWS_PACKAGE_DIST").expect(
        "ETCD_AWS_PACKAGE_DIST is not set: run `make package-check` (it runs `make package` and points this test at dist/)",
    ));
    let cargo_lambda = venv_tool("cargo-lambda");
    let moto = Moto::start();
    let stack = "etcd-code";
    let directory = tempfile::tempdir().expect("temporary directory");
    deployed(&moto, stack, directory.path());
    let lambda = aws_sdk_lambda::Client::new(&moto.config().await);
    let stack_functions = stack_function_names(&moto, stack).await;

    for (logical_id, binary_name) in [
        ("LifecycleFunction", "etcd-aws-lifecycle"),
        ("BackupFunction", "etcd-aws-backup"),
    ] {
        let name = &stack_functions[logical_id];
        let before = function_configuration(&lambda, name).await;

        // A copy: cargo lambda writes its zip beside the binary it deploys.
        let lambda_dir = directory.path().join("lambda");
        let source = dist
            .join("arm64/lambda")
            .join(binary_name)
            .join("bootstrap");
        let copy = lambda_dir.join(binary_name);
        std::fs::create_dir_all(&copy).expect("lambda dir");
        std::fs::copy(&source, copy.join("bootstrap")).unwrap_or_else(|e| {
            panic!("{} is missing ({e}): run `make package`", source.display())
        });
        let output = moto
            .command(&cargo_lambda)
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
            .args(["lambda", "deploy", "--endpoint-url", &moto.endpoint])
            .args([
                "--region",
                REGION,
                "--binary-name",
                binary_name,
                "--lambda-dir",
            ])
            .arg(&lambda_dir)
            .arg(name)
            .output()
            .expect("cargo lambda runs");
        assert!(
            output.status.success(),
            "cargo lambda deploy {name} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            stderr(&output)
        );

        let zip = std::fs::read(copy.join("bootstrap.zip")).expect("cargo lambda's zip");
        let after = function_configuration(&lambda, name).await;
        assert_eq!(
            after.code_sha256(),
            Some(code_sha256(&zip).as_str()),
            "{name}'s code is not the zip cargo lambda deployed"
        );
        assert_ne!(
            before.code_sha256(),
            after.code_sha256(),
            "{name}'s code did not change"
        );
        assert_eq!(after.code_size(), zip.len() as i64);
        assert_eq!(after.architectures(), before.architectures());
        assert_eq!(after.runtime(), before.runtime());
        assert_eq!(after.role(), before.role());
        assert_eq!(after.handler(), before.handler());
        assert_eq!(
            after.environment().map(|e| e.variables()),
            before.environment().map(|e| e.variables()),
            "cargo lambda deploy changed {name}'s environment"
        );
    }

    // A later build: `make deploy` uploads under its own prefix and updates the
    // stack, whose functions then run the stack's artifacts again.
    let next = common::parse::<ArtifactPrefix>("etcd-aws/next-build/");
    moto.upload_artifacts(next.as_str());
    let output = moto.deploy_with(
        stack,
        &write(directory.path(), &template_for_moto_at(next.clone())),
        &[
            "--artifact-bucket",
            ARTIFACT_BUCKET,
            "--artifact-prefix",
            next.as_str(),
        ],
    );
    assert!(
        output.status.success(),
        "the update failed:\n{}",
        stderr(&output)
    );
    let s3 = aws_sdk_s3::Client::new(&moto.config().await);
    for (logical_id, zip) in [
        ("LifecycleFunction", "etcd-aws-lifecycle.zip"),
        ("BackupFunction", "etcd-aws-backup.zip"),
    ] {
        let uploaded = s3
            .get_object()
            .bucket(ARTIFACT_BUCKET)
            .key(next.key(zip))
            .send()
            .await
            .expect("the uploaded artifact")
            .body
            .collect()
            .await
            .expect("its bytes")
            .into_bytes();
        let name = &stack_functions[logical_id];
        assert_eq!(
            function_configuration(&lambda, name).await.code_sha256(),
            Some(code_sha256(&uploaded).as_str()),
            "after the stack update {name} does not run the stack's artifact"
        );
    }
}

/// Logical id -> function name of the stack's Lambda functions.
async fn stack_function_names(moto: &Moto, stack: &str) -> BTreeMap<String, String> {
    stack_resources(moto, stack)
        .await
        .iter()
        .filter(|r| r.resource_type() == Some("AWS::Lambda::Function"))
        .filter_map(|r| {
            Some((
                r.logical_resource_id()?.to_string(),
                r.physical_resource_id()?.to_string(),
            ))
        })
        .collect()
}

async fn function_configuration(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
) -> aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput {
    lambda
        .get_function_configuration()
        .function_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetFunctionConfiguration {name}: {e:?}"))
}

/// What Lambda reports as CodeSha256: the zip's SHA-256, base64.
fn code_sha256(zip: &[u8]) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(zip))
}

/// A VPC of the deployer's in the stand-in: three subnets in distinct zones
/// and, when `routed`, an internet gateway as their default route (which
/// reaches S3 and the APIs, as far as routing can tell). Returns the VPC's id
/// and the subnets' ids, comma-separated.
fn existing_vpc(moto: &Moto, routed: bool) -> (String, String) {
    let output = moto
        .command(&venv_tool("python"))
        .args([
            "-c",
            &format!(
                r#"
import boto3
ec2 = boto3.client("ec2")
vpc = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
subnets = [
    ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.50.{{n}}.0/24", AvailabilityZone=f"{REGION}{{zone}}")["Subnet"]["SubnetId"]
    for n, zone in enumerate("abc")
]
if {routed}:
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    gateway = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc)
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
    for subnet in subnets:
        ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
print(vpc, ",".join(subnets))
"#,
                routed = if routed { "True" } else { "False" }
            ),
        ])
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout).to_string();
    let (vpc, subnets) = printed.trim().split_once(' ').expect("vpc and subnets");
    (vpc.to_owned(), subnets.to_owned())
}

/// The types of the stack's resources, as CloudFormation made them.
async fn created_types(moto: &Moto, stack: &str) -> BTreeSet<String> {
    stack_resources(moto, stack)
        .await
        .iter()
        .filter_map(|r| r.resource_type().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_in_an_existing_vpc_creates_no_network_of_its_own() {
    let moto = Moto::start();
    moto.upload_artifacts(Options::default().artifact_prefix.as_str());
    let (vpc_id, subnet_ids) = existing_vpc(&moto, true);
    let template = template_for_moto_with(Options {
        existing_vpc: Some(ExistingVpc {
            vpc_id: common::parse(&vpc_id),
            subnet_ids: common::parse(&subnet_ids),
        }),
        ..moto_options(Options::default().artifact_prefix)
    });
    let directory = tempfile::tempdir().expect("temporary directory");
    let output = moto.deploy_with(
        "etcd-in-vpc",
        &write(directory.path(), &template),
        &[
            "--artifact-bucket",
            ARTIFACT_BUCKET,
            "--vpc-id",
            &vpc_id,
            "--subnet-ids",
            &subnet_ids,
        ],
    );
    let log = stderr(&output);
    assert!(output.status.success(), "deploy failed:\n{log}");
    assert!(
        log.contains("in distinct zones"),
        "no preflight shown:\n{log}"
    );

    let types = created_types(&moto, "etcd-in-vpc").await;
    for network in [
        "AWS::EC2::VPC",
        "AWS::EC2::Subnet",
        "AWS::EC2::VPCEndpoint",
        "AWS::EC2::NatGateway",
        "AWS::EC2::InternetGateway",
        "AWS::EC2::RouteTable",
    ] {
        assert!(!types.contains(network), "the stack created a {network}");
    }
    assert!(
        types.contains("AWS::AutoScaling::AutoScalingGroup"),
        "{types:?}"
    );
    // The nodes go in the deployer's subnets, the security groups in its VPC.
    let output = moto
        .command(&venv_tool("python"))
        .args([
            "-c",
            r#"
import boto3
group = boto3.client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"][0]
groups = boto3.client("ec2").describe_security_groups()["SecurityGroups"]
print(group["VPCZoneIdentifier"])
print(" ".join(sorted({g["VpcId"] for g in groups if g["GroupName"] != "default"})))
"#,
        ])
        .output()
        .expect("python runs");
    let printed = String::from_utf8_lossy(&output.stdout).to_string();
    let mut lines = printed.lines();
    let zone_identifier: BTreeSet<&str> = lines.next().unwrap_or_default().split(',').collect();
    assert_eq!(zone_identifier, subnet_ids.split(',').collect());
    assert_eq!(lines.next(), Some(vpc_id.as_str()), "{printed}");
}

#[test]
fn a_vpc_whose_subnets_reach_neither_s3_nor_the_apis_is_refused_before_anything_is_created() {
    let moto = Moto::start();
    moto.create_artifact_bucket();
    let (vpc_id, subnet_ids) = existing_vpc(&moto, false);
    let output = moto
        .cfn()
        .args(["--stack-name", "etcd-unreachable", "--vpc-id", &vpc_id])
        .args(["--subnet-ids", &subnet_ids])
        .args(["--alarm-email", "ops@example.com"])
        .args([
            "--operator-role-arns",
            "arn:aws:iam::123456789012:role/etcd-operators",
        ])
        .args(["--artifact-bucket", ARTIFACT_BUCKET])
        .args(["--agent-sha256", &"1".repeat(64)])
        .args(["--poll-seconds", "1", "--timeout-minutes", "2"])
        .output()
        .expect("etcd-aws-cfn runs");
    let log = stderr(&output);
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("no route to S3"), "{log}");
    assert!(log.contains("no interface endpoint for ec2"), "{log}");
    assert!(log.contains("nothing was created"), "{log}");
    // Neither the stack nor the cluster's secrets exist.
    let output = moto
        .command(&venv_tool("python"))
        .args([
            "-c",
            r#"
import boto3
stacks = boto3.client("cloudformation").list_stacks()["StackSummaries"]
secrets = boto3.client("secretsmanager").list_secrets()["SecretList"]
print(len(stacks), len(secrets))
"#,
        ])
        .output()
        .expect("python runs");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "0 0");
}

// What the stack runs is what the deploy uploaded: `--artifacts-dir`.

/// A package as `make package` lays it out for arm64 nodes and functions: the two
/// zips (each `bootstrap` alone), the agent and an etcd archive, with contents of
/// their own; the bytes of each, by file name.
fn package(directory: &Path) -> BTreeMap<String, Vec<u8>> {
    let arch = directory.join("arm64");
    std::fs::create_dir_all(&arch).expect("package directory");
    let output = Command::new(venv_tool("python"))
        .arg("-c")
        .arg(
            r##"
import sys, zipfile
for name in ["etcd-aws-lifecycle", "etcd-aws-backup"]:
    with zipfile.ZipFile(f"{sys.argv[1]}/{name}.zip", "w") as z:
        z.writestr("bootstrap", f"#!/bin/sh\n# {name}\n")
"##,
        )
        .arg(&arch)
        .output()
        .expect("python runs");
    assert!(output.status.success(), "{}", stderr(&output));
    std::fs::write(
        arch.join("etcd-aws"),
        b"\x7fELF the agent this deploy ships\n",
    )
    .expect("agent");
    std::fs::write(
        arch.join("etcd-v3.5.30-linux-arm64.tar.gz"),
        b"\x1f\x8b an etcd archive\n",
    )
    .expect("archive");
    std::fs::read_dir(&arch)
        .expect("package directory")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            (name, std::fs::read(&path).expect("packaged file"))
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Deploys the moto template with the package in `dist` uploaded by the deploy,
/// its etcd archive's checksum given (it is not the archive the project pins);
/// `extra` flags after.
fn deploy_package(
    moto: &Moto,
    stack: &str,
    directory: &Path,
    dist: &Path,
    extra: &[&str],
) -> Output {
    let archive = std::fs::read(dist.join("arm64/etcd-v3.5.30-linux-arm64.tar.gz"))
        .expect("the packaged archive");
    let etcd_sha256 = sha256_hex(&archive);
    let dist = dist.display().to_string();
    let mut flags = vec![
        "--artifact-bucket",
        ARTIFACT_BUCKET,
        "--artifacts-dir",
        &dist,
    ];
    flags.extend_from_slice(&["--etcd-sha256", &etcd_sha256]);
    flags.extend_from_slice(extra);
    moto.deploy_with(stack, &write(directory, &template_for_moto()), &flags)
}

async fn stack_parameters(moto: &Moto, stack: &str) -> BTreeMap<String, String> {
    moto.client()
        .await
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .expect("stack described")
        .stacks()
        .first()
        .expect("the stack")
        .parameters()
        .iter()
        .filter_map(|p| {
            Some((
                p.parameter_key()?.to_string(),
                p.parameter_value()?.to_string(),
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_uploads_the_package_and_pins_the_checksums_of_what_it_read_and_the_versions_it_wrote(
) {
    let moto = Moto::start();
    moto.create_versioned_artifact_bucket();
    let directory = tempfile::tempdir().expect("temporary directory");
    let dist = directory.path().join("dist");
    let files = package(&dist);
    let archive = &files["etcd-v3.5.30-linux-arm64.tar.gz"];
    let output = deploy_package(&moto, "etcd-pinned", directory.path(), &dist, &[]);
    let log = stderr(&output);
    assert!(output.status.success(), "deploy failed:\n{log}");

    let s3 = aws_sdk_s3::Client::new(&moto.config().await);
    let prefix = Options::default().artifact_prefix;
    let mut versions = BTreeMap::new();
    for (name, bytes) in &files {
        let object = s3
            .get_object()
            .bucket(ARTIFACT_BUCKET)
            .key(prefix.key(name))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name} was not uploaded: {e}"));
        versions.insert(
            name.clone(),
            object.version_id().unwrap_or_default().to_string(),
        );
        let uploaded = object.body.collect().await.expect("its bytes").into_bytes();
        assert_eq!(&uploaded[..], &bytes[..], "{name} is not what was packaged");
    }
    let parameters = stack_parameters(&moto, "etcd-pinned").await;
    assert_eq!(
        parameters.get(parameters::AGENT_SHA256),
        Some(&sha256_hex(&files["etcd-aws"]))
    );
    assert_eq!(
        parameters.get(parameters::ETCD_SHA256),
        Some(&sha256_hex(archive))
    );
    for (parameter, zip) in [
        (parameters::LIFECYCLE_CODE_VERSION, "etcd-aws-lifecycle.zip"),
        (parameters::BACKUP_CODE_VERSION, "etcd-aws-backup.zip"),
    ] {
        assert!(!versions[zip].is_empty(), "{zip} has no version");
        assert_eq!(
            parameters.get(parameter),
            Some(&versions[zip]),
            "{parameter}"
        );
    }
}

#[test]
fn deploy_refuses_an_unversioned_artifact_bucket_and_says_how_to_turn_versioning_on() {
    let moto = Moto::start();
    moto.create_artifact_bucket();
    let directory = tempfile::tempdir().expect("temporary directory");
    let dist = directory.path().join("dist");
    package(&dist);
    let output = deploy_package(&moto, "etcd-unversioned", directory.path(), &dist, &[]);
    let log = stderr(&output);
    assert!(!output.status.success(), "deployed:\n{log}");
    assert!(
        log.contains(&format!(
            "the artifact bucket {ARTIFACT_BUCKET} is not versioned"
        )) && log.contains("put-bucket-versioning"),
        "{log}"
    );
    assert!(!log.contains("creating change set"), "{log}");
}

#[test]
fn deploy_refuses_an_agent_that_is_not_the_one_whose_checksum_was_given_and_uploads_nothing() {
    let moto = Moto::start();
    moto.create_versioned_artifact_bucket();
    let directory = tempfile::tempdir().expect("temporary directory");
    let dist = directory.path().join("dist");
    let files = package(&dist);
    let meant = sha256_hex(b"the agent the operator reviewed");
    let output = deploy_package(
        &moto,
        "etcd-other-agent",
        directory.path(),
        &dist,
        &["--agent-sha256", &meant],
    );
    let log = stderr(&output);
    assert!(!output.status.success(), "deployed:\n{log}");
    let line = format!(
        "--agent-sha256 {meant} is not the SHA-256 of {} ({})",
        dist.join("arm64/etcd-aws").display(),
        sha256_hex(&files["etcd-aws"])
    );
    assert!(log.contains(&line), "no {line:?} in:\n{log}");
    let output = moto
        .command(&venv_tool("python"))
        .args([
            "-c",
            &format!(
                r#"import boto3; print(boto3.client("s3").list_objects_v2(Bucket="{ARTIFACT_BUCKET}").get("KeyCount"))"#
            ),
        ])
        .output()
        .expect("python runs");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "0");
}
