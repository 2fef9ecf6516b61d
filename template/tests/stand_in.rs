//! The template against the local AWS stand-in (moto's CloudFormation): the stack is
//! created as far as moto supports its resource types, and the deploy command shows
//! progress and reports a failed create clearly.
//!
//! Each test starts its own moto server on a free loopback port and points the deploy
//! command at it through `AWS_ENDPOINT_URL`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::template_for;
use etcd_aws_cfn::options::Options;
use serde_json::Value;

/// Resource types moto's CloudFormation does not implement: it logs "No Moto
/// CloudFormation support" and creates the stack without them.
const MOTO_SKIPS: &[&str] = &[
    "AWS::CloudWatch::Alarm",
    "AWS::EC2::SecurityGroupEgress",
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
        .join("../.venv/bin")
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

    /// Uploads stand-in function zips, as `make package` would upload the real ones.
    fn upload_artifacts(&self, prefix: &str) {
        let script = format!(
            r##"
import boto3, io, zipfile
s3 = boto3.client("s3")
s3.create_bucket(Bucket="{ARTIFACT_BUCKET}")
archive = io.BytesIO()
with zipfile.ZipFile(archive, "w") as z:
    z.writestr("bootstrap", "#!/bin/sh\n")
for name in ["etcd-aws-lifecycle.zip", "etcd-aws-backup.zip"]:
    s3.put_object(Bucket="{ARTIFACT_BUCKET}", Key="{prefix}" + name, Body=archive.getvalue())
"##
        );
        let output = self
            .command(&venv_tool("python"))
            .args(["-c", &script])
            .output()
            .expect("python runs");
        assert!(
            output.status.success(),
            "upload failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn deploy(&self, stack: &str, template: &Path) -> Output {
        self.command(Path::new(env!("CARGO_BIN_EXE_etcd-aws-cfn")))
            .args(["--stack-name", stack, "--template-file"])
            .arg(template)
            .args(["--poll-seconds", "1", "--timeout-minutes", "2"])
            .output()
            .expect("etcd-aws-cfn runs")
    }

    async fn client(&self) -> aws_sdk_cloudformation::Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_cloudformation::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load()
            .await;
        aws_sdk_cloudformation::Client::new(&config)
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
    let options = Options {
        alarm_email: Some("ops@example.com".to_string()),
        artifact_bucket: Some(ARTIFACT_BUCKET.to_string()),
        etcd_sha256: Some(common::parse(&"0".repeat(64))),
        ..Options::default()
    };
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
    std::fs::write(&path, etcd_aws_cfn::compact(template).expect("renders")).expect("written");
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

#[test]
fn deploy_shows_progress_and_names_the_reason_when_the_create_fails() {
    let moto = Moto::start();
    // Injected failure: the function zips were never uploaded, so creating the
    // functions fails in the middle of the stack.
    let directory = tempfile::tempdir().expect("temporary directory");
    let output = moto.deploy(
        "etcd-broken",
        &write(directory.path(), &template_for_moto()),
    );
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
