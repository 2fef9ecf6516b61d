//! The user-data as a node receives it passes the tools that know bash and systemd.
//!
//! The script is rendered as CloudFormation renders its `Fn::Sub` (every variable given
//! a plausible value of a stack `etcd-prod` in eu-west-1), once for each combination
//! of options that changes its text. shellcheck then reads the script and the readiness
//! script it writes, and `systemd-analyze verify` reads the units it writes, in a root
//! laid out as the script lays out the node.
//!
//! Both tools come from Debian's packages; `make setup` installs them when missing.
//! Without them these tests fail, never skip: a skip would pass, its message hidden in
//! the test runner's captured output, and nothing would have been checked.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{everything_options, parse, template_for, user_data_script};
use etcd_aws_core::backup::lease_policy::LeasePolicy;
use etcd_aws_template::fn_sub::{self, SubError};
use etcd_aws_template::names::{
    logical, parameters, AGENT_BINARY, AGENT_UNIT, INSTALL_DIR, READY_UNIT,
};
use etcd_aws_template::node_logs::LOG_FILE;
use etcd_aws_template::options::{artifacts, Options};
use etcd_aws_template::user_data::VERIFIED_LINE;
use sha2::{Digest, Sha256};

/// What CloudFormation gives each variable the user-data names, for a stack `etcd-prod`
/// in eu-west-1: parameters, pseudo parameters, and the resources' `Ref` and
/// `Fn::GetAtt` values in the shapes AWS returns them.
fn stack_values() -> Vec<(String, String)> {
    [
        ("AWS::Region", "eu-west-1".to_string()),
        ("AWS::StackName", "etcd-prod".to_string()),
        (
            parameters::ARTIFACT_BUCKET,
            "etcd-artifacts-111122223333".to_string(),
        ),
        (parameters::ETCD_SHA256, "0123456789abcdef".repeat(4)),
        (parameters::AGENT_SHA256, "fedcba9876543210".repeat(4)),
        (
            parameters::CLUSTER_CA_SECRET_ARN,
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:etcd-prod/cluster-ca-a1B2c3"
                .to_string(),
        ),
        (
            parameters::FUNCTIONS_CLIENT_SECRET_ARN,
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:etcd-prod/functions-client-d4E5f6"
                .to_string(),
        ),
        (parameters::QUOTA_BACKEND_BYTES, "2147483648".to_string()),
        (
            parameters::RESTORE_LEASES,
            LeasePolicy::default().as_str().to_string(),
        ),
        (
            logical::BACKUP_BUCKET,
            "etcd-prod-backupbucket-1x2y3z4w5v6u".to_string(),
        ),
        (logical::NODE_LOGS, "/etcd-aws/etcd-prod/nodes".to_string()),
        (
            &format!("{}.Arn", logical::ORDER_SIGNING_KEY),
            "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                .to_string(),
        ),
        (
            &format!("{}.RoleId", logical::NODE_ROLE),
            "AROA3XFRBF535EXAMPLE".to_string(),
        ),
        (
            &format!("{}.DNSName", logical::LOAD_BALANCER),
            "internal-etcd-prod-Client-1A2B3C4D5E6F-0123456789.elb.eu-west-1.amazonaws.com"
                .to_string(),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect()
}

/// The combinations of options that change the script's text: the instance type's
/// architecture (which etcd archive, which directory in it), the etcd version and the
/// artifact prefix. Everything else (network, VPC, cluster size, SSH) reaches the
/// template elsewhere, and the parameters reach the script as `Fn::Sub` variables.
fn variants() -> Vec<(&'static str, Options)> {
    vec![
        // A Graviton t4g.medium, the default etcd, artifacts under etcd-aws/.
        ("default", Options::default()),
        // An x86_64 m7i.large: etcd's amd64 archive.
        ("everything", everything_options()),
        // Artifacts at the top of the bucket, another etcd release.
        (
            "unprefixed",
            Options {
                artifact_prefix: parse(""),
                etcd_version: parse("3.5.21"),
                ..Options::default()
            },
        ),
    ]
}

/// The user-data script of `options` as the node receives it.
fn rendered_script(options: &Options) -> String {
    rendered_script_with(options, &[])
}

/// The same, with some of the stack's values replaced by `overrides`.
fn rendered_script_with(options: &Options, overrides: &[(&str, String)]) -> String {
    let text = user_data_script(&template_for(options));
    let values: Vec<(String, String)> = stack_values()
        .into_iter()
        .map(|(name, value)| {
            let given = overrides.iter().find(|(overridden, _)| *overridden == name);
            (name, given.map_or(value, |(_, given)| given.clone()))
        })
        .collect();
    fn_sub::render(&text, &values).unwrap_or_else(|error| panic!("{error}"))
}

/// A file the script writes with `cat > PATH <<'DELIMITER'`: quoted, so bash writes
/// the body exactly as it stands.
struct WrittenFile {
    path: String,
    body: String,
}

impl WrittenFile {
    fn is_unit(&self) -> bool {
        self.path.starts_with("/etc/systemd/system/")
    }

    fn is_script(&self) -> bool {
        self.body.starts_with("#!")
    }

    fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// Every file the script writes with a quoted here-document, in the script's order.
fn written_files(script: &str) -> Vec<WrittenFile> {
    let mut files = Vec::new();
    let mut lines = script.lines();
    while let Some(line) = lines.next() {
        let Some((path, delimiter)) = quoted_heredoc(line) else {
            continue;
        };
        let mut body = String::new();
        loop {
            match lines.next() {
                Some(line) if line == delimiter => break,
                Some(line) => {
                    body.push_str(line);
                    body.push('\n');
                }
                None => panic!(
                    "the here-document that writes {path} never ends with a line {delimiter}: \
                     bash would write the rest of the script into it"
                ),
            }
        }
        files.push(WrittenFile {
            path: path.to_string(),
            body,
        });
    }
    files
}

/// The path and delimiter of a line `cat > PATH <<'DELIMITER'`.
fn quoted_heredoc(line: &str) -> Option<(&str, &str)> {
    let (path, delimiter) = line.strip_prefix("cat > ")?.split_once(" <<'")?;
    Some((path, delimiter.strip_suffix('\'')?))
}

/// The units the script writes: exactly the agent's and the readiness signal's, so a
/// change in how the script writes them cannot leave the check with nothing to check.
fn units(files: &[WrittenFile]) -> Vec<&WrittenFile> {
    let units: Vec<&WrittenFile> = files.iter().filter(|file| file.is_unit()).collect();
    let names: Vec<&str> = units.iter().map(|unit| unit.name()).collect();
    assert_eq!(
        names,
        [AGENT_UNIT, READY_UNIT],
        "the user-data should write the agent's and the readiness unit with \
         `cat > /etc/systemd/system/NAME <<'UNIT'`"
    );
    units
}

/// A program on PATH; `package` is the Debian package `make setup` installs it from.
fn tool(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|directory| directory.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not on PATH: run `make setup`, which installs Debian's {package} \
                 package when it is missing"
            )
        })
}

fn write(path: &Path, text: &str, mode: u32) {
    let directory = path.parent().expect("a file has a directory");
    std::fs::create_dir_all(directory)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", directory.display()));
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// shellcheck's optional checks that guard what the user-data relies on; the others
/// (braces around every variable, which `Fn::Sub` would take for its own; `[[ ]]`
/// over `[ ]`; a default case) are taste, and left out.
const SHELLCHECK_OPTIONAL: &str = concat!(
    // A value rendered into the script looks safe unquoted to shellcheck (a bucket
    // name, a path), but another stack's value may not be: quote every expansion.
    "quote-safe-variables,",
    // The script stops at the first failure only through `set -e` and its ERR trap:
    // no function call where `set -e` is off, no status lost in `$(...)`.
    "check-set-e-suppressed,check-extra-masked-returns,",
    // `set -u` would find a misspelt $INSTANCE_ID only on the node, at boot.
    "check-unassigned-uppercase",
);

/// shellcheck on `files`, every severity down to style; the findings, if any.
fn shellcheck(files: &[PathBuf]) -> Result<(), String> {
    let output = Command::new(tool("shellcheck", "shellcheck"))
        // The project's verdict, not whatever .shellcheckrc lies above the temporary
        // directory or in the home directory.
        .args([
            "--norc",
            "--shell=bash",
            "--severity=style",
            "--color=never",
        ])
        .arg(format!("--enable={SHELLCHECK_OPTIONAL}"))
        .args(files)
        .output()
        .expect("shellcheck runs");
    match (output.status.success(), printed(&output)) {
        (true, text) if text.trim().is_empty() => Ok(()),
        (_, text) => Err(text),
    }
}

/// The host's own systemd units (sysinit.target, network-online.target,
/// multi-user.target...), which every unit's dependencies end in.
fn system_unit_directory() -> &'static Path {
    ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(Path::new)
        .find(|directory| directory.join("sysinit.target").exists())
        .expect(
            "no systemd unit directory with sysinit.target: run `make setup`, which installs \
             Debian's systemd package when systemd-analyze is missing",
        )
}

/// `systemd-analyze verify` on the units of `files`, in a root laid out as the script
/// lays out the node; the findings, if any.
///
/// verify loads each unit with everything it depends on (a service's default
/// dependencies end in sysinit.target) and refuses a unit whose `ExecStart` is not an
/// executable; under `--root` it looks for both there. The root holds what a node holds
/// when the script starts the units: the host's systemd units (Amazon Linux's carry
/// the same targets), every file the script writes, executable where it is a script
/// (the user-data makes it so with chmod 0755), and, as a stand-in that does nothing,
/// the agent binary the script downloads. So a unit that runs a path the script does not install
/// fails, as it would on the node, and nothing on this machine outside the root counts.
fn verify_units(files: &[WrittenFile]) -> Result<(), String> {
    let systemd_analyze = tool("systemd-analyze", "systemd");
    let root = tempfile::tempdir().expect("temporary directory");
    let units_under_root = root.path().join("usr/lib/systemd");
    std::fs::create_dir_all(&units_under_root).expect("unit directory");
    // cp -a keeps the symlinks (aliases, .wants directories) as systemd reads them.
    let copy = Command::new("cp")
        .arg("-a")
        .arg(system_unit_directory())
        .arg(&units_under_root)
        .output()
        .expect("cp runs");
    assert!(
        copy.status.success(),
        "cannot copy the host's units: {}",
        printed(&copy)
    );
    let under_root = |path: &str| {
        let relative = path
            .strip_prefix('/')
            .unwrap_or_else(|| panic!("the user-data writes {path}, which is not absolute"));
        root.path().join(relative)
    };
    for file in files {
        let mode = if file.is_script() { 0o755 } else { 0o644 };
        write(&under_root(&file.path), &file.body, mode);
    }
    write(
        &under_root(&format!("{INSTALL_DIR}/{AGENT_BINARY}")),
        "#!/bin/sh\n",
        0o755,
    );
    let output = Command::new(systemd_analyze)
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        // Documentation= man pages would be looked up on this machine, not the node.
        .arg("--man=no")
        .args(units(files).iter().map(|unit| unit.name()))
        // verify exits 0 on a directive it ignores (a misspelt key, a value it cannot
        // parse) and only logs it as a warning: log warnings and worse, whatever the
        // environment says, and take any line as a finding.
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("systemd-analyze runs");
    match (output.status.success(), printed(&output)) {
        (true, text) if text.trim().is_empty() => Ok(()),
        (_, text) => Err(text),
    }
}

#[test]
fn fn_sub_rendering_fills_in_every_variable_and_writes_literals_as_cloudformation_does() {
    let values: Vec<(String, String)> = [
        ("Bucket", "b"),
        ("AWS::Region", "eu-west-1"),
        ("Balancer.DNSName", "lb.example"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect();
    for (text, rendered) in [
        (
            "no variables, $HOME and a lone $",
            "no variables, $HOME and a lone $",
        ),
        ("s3://${Bucket}/key", "s3://b/key"),
        ("${AWS::Region}", "eu-west-1"),
        ("${Balancer.DNSName}:2379", "lb.example:2379"),
        ("${Bucket}${Bucket}", "bb"),
        ("${!Literal} stays", "${Literal} stays"),
        ("${!Bucket}", "${Bucket}"),
        ("$${Bucket}", "$b"),
        ("", ""),
    ] {
        assert_eq!(
            fn_sub::render(text, &values).as_deref(),
            Ok(rendered),
            "rendering {text:?}"
        );
    }
}

#[test]
fn fn_sub_rendering_refuses_a_variable_it_has_no_value_for_or_one_never_closed() {
    let values = vec![("Bucket".to_string(), "b".to_string())];
    for (text, error) in [
        ("${Unknown}", SubError::Unknown("Unknown".to_string())),
        (
            "${Bucket} ${AWS::Region}",
            SubError::Unknown("AWS::Region".to_string()),
        ),
        ("${ Bucket }", SubError::Unknown(" Bucket ".to_string())),
        ("${}", SubError::Unknown(String::new())),
        ("${Bucket} ${Bucket", SubError::Unclosed(10)),
    ] {
        assert_eq!(
            fn_sub::render(text, &values),
            Err(error),
            "rendering {text:?}"
        );
    }
}

#[test]
fn each_variant_renders_a_script_of_its_own() {
    let scripts: Vec<(&str, String)> = variants()
        .iter()
        .map(|(name, options)| (*name, rendered_script(options)))
        .collect();
    for (index, (name, script)) in scripts.iter().enumerate() {
        for (other, other_script) in &scripts[index + 1..] {
            assert_ne!(
                script, other_script,
                "variants {name} and {other} render the same script: one checks nothing new"
            );
        }
    }
}

#[test]
fn user_data_writes_the_two_units_and_the_readiness_script_as_quoted_here_documents() {
    let files = written_files(&rendered_script(&Options::default()));
    units(&files);
    let scripts: Vec<&str> = files
        .iter()
        .filter(|file| file.is_script())
        .map(|file| file.path.as_str())
        .collect();
    assert_eq!(scripts, ["/usr/local/bin/etcd-aws-ready"]);
}

#[test]
fn shellcheck_finds_nothing_in_the_rendered_user_data_of_any_variant() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let files: Vec<PathBuf> = variants()
        .iter()
        .map(|(name, options)| {
            let path = directory.path().join(format!("{name}.user-data.sh"));
            write(&path, &rendered_script(options), 0o644);
            path
        })
        .collect();
    if let Err(findings) = shellcheck(&files) {
        panic!("shellcheck finds fault with the user-data:\n{findings}");
    }
}

#[test]
fn shellcheck_finds_nothing_in_the_readiness_script_the_user_data_writes() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let files: Vec<PathBuf> = written_files(&rendered_script(&Options::default()))
        .iter()
        .filter(|file| file.is_script())
        .map(|file| {
            let path = directory.path().join(file.name());
            write(&path, &file.body, 0o644);
            path
        })
        .collect();
    assert!(!files.is_empty(), "the user-data writes no script");
    if let Err(findings) = shellcheck(&files) {
        panic!("shellcheck finds fault with a script the user-data writes:\n{findings}");
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_units_the_user_data_of_each_variant_writes() {
    for (name, options) in variants() {
        let files = written_files(&rendered_script(&options));
        if let Err(findings) = verify_units(&files) {
            let units: Vec<String> = units(&files)
                .iter()
                .map(|unit| format!("--- {}\n{}", unit.path, unit.body))
                .collect();
            panic!(
                "systemd-analyze verify finds fault with the units of the {name} user-data:\n\
                 {findings}\n{}",
                units.join("")
            );
        }
    }
}

/// The part of the rendered script that fetches etcd's archive and the agent and
/// checks them against their pins: everything up to [`VERIFIED_LINE`]. It writes
/// nothing outside its temporary directory, and a test runs it as it stands; so that
/// a change can never make such a test set up the machine it runs on, the part must
/// hold none of the commands that do.
fn verification_part(script: &str) -> String {
    let end = script
        .find(VERIFIED_LINE)
        .unwrap_or_else(|| panic!("the user-data has no line {VERIFIED_LINE:?} ending its checks"));
    let part = &script[..end];
    for setting_up in [
        "install ",
        "tar ",
        "dnf ",
        "systemctl ",
        "cat >",
        "chmod ",
        "rm ",
    ] {
        assert!(
            !part.contains(setting_up),
            "the user-data runs `{setting_up}` before its checks end: install nothing \
             before both files match their pins"
        );
    }
    part.to_string()
}

/// The part of the rendered script that sets up log shipping and says when it fails:
/// from the `ship_logs` function to the end of the `if` that calls it.
fn log_shipping_part(script: &str) -> String {
    let start = script
        .find("ship_logs() {")
        .expect("the user-data sets up log shipping in a function ship_logs");
    let call = script[start..]
        .find("if ! ship_logs; then")
        .map(|offset| start + offset)
        .expect("the user-data calls ship_logs in `if ! ship_logs; then`");
    let end = script[call..]
        .find("\nfi\n")
        .map(|offset| call + offset + "\nfi\n".len())
        .expect("the if that calls ship_logs ends with a line fi");
    script[start..end].to_string()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// What a node fetches from the artifact bucket, as the deploy uploaded it.
const GENUINE_AGENT: &[u8] = b"\x7fELF the etcd-aws agent the deploy built\n";
const GENUINE_ARCHIVE: &[u8] = b"\x1f\x8b the etcd release archive\n";

/// A stand-in for the node a part of the user-data runs on: `aws` and `curl` on
/// PATH that answer as S3 (from a directory laid out as the artifact bucket), the
/// metadata service and CloudFormation (recording each signal), and a temporary
/// directory of its own.
struct StandInNode {
    root: tempfile::TempDir,
}

const AWS_STUB: &str = r#"#!/bin/bash
set -eu
node=$(dirname "$(dirname "$0")")
case "$1 $2" in
  "s3 cp")
    args=("$@")
    source=${args[-2]}
    cp "$node/bucket/${source#s3://*/}" "${args[-1]}"
    ;;
  "cloudformation signal-resource")
    echo "$*" >> "$node/signals"
    ;;
  *)
    echo "aws stand-in: no answer for: $*" >&2
    exit 1
    ;;
esac
"#;

const CURL_STUB: &str = r#"#!/bin/sh
case "$*" in
  *latest/api/token*) printf 'a-token' ;;
  *meta-data/instance-id*) printf 'i-0feedfacecafe0001' ;;
  *) echo "metadata stand-in: no answer for: $*" >&2; exit 22 ;;
esac
"#;

const DNF_FAILING: &str =
    "#!/bin/sh\necho 'Error: Failed to download metadata for repo amazonlinux' >&2\nexit 1\n";

/// What running a part of the user-data did.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
    signals: String,
}

impl StandInNode {
    /// A node whose artifact bucket holds `agent` and `archive` under the keys the
    /// default options' user-data fetches.
    fn with_artifacts(agent: &[u8], archive: &[u8]) -> StandInNode {
        let root = tempfile::tempdir().expect("temporary directory");
        let options = Options::default();
        let architecture = options.instance_type.architecture();
        let bucket = root.path().join("bucket");
        let archive_name = options.etcd_version.archive_name(architecture);
        for (name, body) in [(artifacts::AGENT_BINARY, agent), (&archive_name, archive)] {
            let object = bucket.join(options.artifact_prefix.key(name));
            write(&object, "", 0o644);
            std::fs::write(&object, body)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", object.display()));
        }
        write(&root.path().join("bin/aws"), AWS_STUB, 0o755);
        write(&root.path().join("bin/curl"), CURL_STUB, 0o755);
        std::fs::create_dir_all(root.path().join("tmp")).expect("tmp");
        StandInNode { root }
    }

    fn with_failing_dnf(self) -> StandInNode {
        write(&self.root.path().join("bin/dnf"), DNF_FAILING, 0o755);
        self
    }

    /// Runs `script` with bash, the stand-ins first on PATH and TMPDIR in the node.
    fn run(&self, script: &str) -> Run {
        let path = self.root.path().join("part.sh");
        write(&path, script, 0o644);
        let bin = self.root.path().join("bin");
        let output = Command::new("bash")
            .arg(&path)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("TMPDIR", self.root.path().join("tmp"))
            .output()
            .expect("bash runs");
        Run {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).to_string(),
            signals: std::fs::read_to_string(self.root.path().join("signals")).unwrap_or_default(),
        }
    }
}

/// The default user-data, rendered with the genuine files' checksums pinned.
fn script_pinning_the_genuine_files() -> String {
    rendered_script_with(
        &Options::default(),
        &[
            (parameters::ETCD_SHA256, sha256_hex(GENUINE_ARCHIVE)),
            (parameters::AGENT_SHA256, sha256_hex(GENUINE_AGENT)),
        ],
    )
}

#[test]
fn the_user_data_checks_pass_for_an_agent_and_archive_that_match_their_pins() {
    let node = StandInNode::with_artifacts(GENUINE_AGENT, GENUINE_ARCHIVE);
    let run = node.run(&verification_part(&script_pinning_the_genuine_files()));
    assert!(
        run.success,
        "the checks refused the genuine files:\n{}",
        run.stderr
    );
    assert_eq!(run.signals, "", "a boot that goes on signals nothing yet");
}

#[test]
fn a_tampered_agent_binary_fails_the_boot_naming_the_file_both_checksums_and_signals_failure() {
    let tampered = b"\x7fELF an agent someone else put in the bucket\n";
    let node = StandInNode::with_artifacts(tampered, GENUINE_ARCHIVE);
    let run = node.run(&verification_part(&script_pinning_the_genuine_files()));
    assert!(!run.success, "the boot went on with a tampered agent");
    let line = format!(
        "user-data: s3://etcd-artifacts-111122223333/etcd-aws/{} does not match the SHA-256 \
         the stack pins (expected {}, found {}): not installing it, signalling FAILURE",
        AGENT_BINARY,
        sha256_hex(GENUINE_AGENT),
        sha256_hex(tampered),
    );
    assert!(
        run.stderr.contains(&line),
        "no line {line:?} in:\n{}",
        run.stderr
    );
    assert_eq!(
        run.signals.trim(),
        format!(
            "cloudformation signal-resource --region eu-west-1 --stack-name etcd-prod \
             --logical-resource-id {} --unique-id i-0feedfacecafe0001 --status FAILURE",
            logical::AUTO_SCALING_GROUP
        ),
        "not exactly one FAILURE signal"
    );
}

#[test]
fn a_tampered_etcd_archive_fails_the_boot_naming_the_archive_and_signals_failure() {
    let tampered = b"\x1f\x8b an archive someone else put in the bucket\n";
    let node = StandInNode::with_artifacts(GENUINE_AGENT, tampered);
    let run = node.run(&verification_part(&script_pinning_the_genuine_files()));
    assert!(
        !run.success,
        "the boot went on with a tampered etcd archive"
    );
    let defaults = Options::default();
    let archive = defaults
        .etcd_version
        .archive_name(defaults.instance_type.architecture());
    assert!(
        run.stderr
            .contains(&format!("{archive} does not match the SHA-256"))
            && run.stderr.contains(&sha256_hex(tampered)),
        "the refusal does not name the archive and what was found:\n{}",
        run.stderr
    );
    assert!(run.signals.contains("--status FAILURE"), "{}", run.signals);
}

#[test]
fn a_failing_cloudwatch_agent_install_is_reported_and_the_boot_goes_on() {
    let node = StandInNode::with_artifacts(GENUINE_AGENT, GENUINE_ARCHIVE).with_failing_dnf();
    let script = script_pinning_the_genuine_files();
    // Behind the script's own preamble, so its `set -e` and ERR trap are in force.
    let run = node.run(&format!(
        "{}{}echo 'the boot goes on'\n",
        verification_part(&script),
        log_shipping_part(&script)
    ));
    assert!(
        run.success && run.stdout.contains("the boot goes on"),
        "a failed log shipping stopped the boot:\n{}",
        run.stderr
    );
    let line = format!(
        "user-data: shipping this node's logs to CloudWatch failed (see above); the node boots \
         without it, its log stays in {LOG_FILE}"
    );
    assert!(
        run.stderr.contains(&line),
        "no line {line:?} in:\n{}",
        run.stderr
    );
    assert_eq!(run.signals, "", "an optional step signalled CloudFormation");
}
