//! The `etcd-aws-cfn` command line, run as a user runs it.

use std::process::Command;

/// The command without any `ETCD_AWS_*` setting of the caller's (`make`
/// or a developer's shell), so each test states the settings it depends on.
fn clean_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_etcd-aws-cfn"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ETCD_AWS_") {
            command.env_remove(name);
        }
    }
    command
}

fn etcd_aws_cfn(args: &[&str]) -> std::process::Output {
    clean_command()
        .args(args)
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("etcd-aws-cfn runs")
}

#[test]
fn dry_run_prints_the_template_as_json() {
    let output = etcd_aws_cfn(&["--dry-run"]);
    assert!(output.status.success());
    let template: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    assert_eq!(template["AWSTemplateFormatVersion"], "2010-09-09");
}

#[test]
fn dry_run_prints_yaml_when_asked() {
    let output = etcd_aws_cfn(&["--dry-run", "--format", "yaml"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.starts_with("AWSTemplateFormatVersion: 2010-09-09") || text.contains("\nResources:")
    );
    let template: serde_json::Value = serde_norway::from_str(&text).expect("stdout is YAML");
    assert!(template["Resources"].is_object());
}

#[test]
fn cluster_size_four_fails_with_the_reason() {
    let output = etcd_aws_cfn(&["--dry-run", "--cluster-size", "4"]);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("cluster size must be 3 or 5, got 4"),
        "{error}"
    );
}

#[test]
fn flags_can_come_from_the_environment() {
    let output = clean_command()
        .args(["--dry-run"])
        .env("ETCD_AWS_CLUSTER_SIZE", "5")
        .output()
        .expect("etcd-aws-cfn runs");
    assert!(output.status.success());
    let template: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    assert_eq!(
        template["Resources"]["EtcdAutoScalingGroup"]["CreationPolicy"]["ResourceSignal"]["Count"],
        5
    );
}

#[test]
fn deploying_without_alarm_email_operators_and_artifacts_names_what_is_missing() {
    let output = etcd_aws_cfn(&["--stack-name", "etcd"]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    for flag in ["--alarm-email", "--operator-role-arns", "--artifact-bucket"] {
        assert!(error.contains(flag), "{error}");
    }
    // The default etcd release's checksum is pinned.
    assert!(!error.contains("--etcd-sha256"), "{error}");
}

#[test]
fn deploying_an_etcd_release_without_a_pinned_archive_asks_for_its_checksum() {
    let output = etcd_aws_cfn(&["--stack-name", "etcd", "--etcd-version", "3.5.21"]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("--etcd-sha256"), "{error}");
}

/// A release whose etcdutl cannot bump revisions would deploy and run, and
/// then leave the cluster down after its first total loss.
#[test]
fn deploying_an_etcd_whose_restore_cannot_bump_revisions_is_refused_with_what_to_choose() {
    let output = etcd_aws_cfn(&["--dry-run", "--etcd-version", "3.5.12"]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    for needed in ["--etcd-version", "--bump-revision", "3.5.13"] {
        assert!(error.contains(needed), "{needed:?} missing from {error}");
    }
}

#[test]
fn ssh_from_anywhere_is_refused_on_the_command_line() {
    let output = etcd_aws_cfn(&["--dry-run", "--key-pair", "k", "--ssh-cidr", "0.0.0.0/0"]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("whole internet"), "{error}");
}

#[test]
fn dry_run_without_flags_prints_the_library_default_template() {
    let output = etcd_aws_cfn(&["--dry-run"]);
    assert!(output.status.success());
    let printed: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    let library = etcd_aws_template::template(&etcd_aws_template::Options::default())
        .expect("default template");
    assert_eq!(printed, library);
}

#[test]
fn issue_client_cert_without_name_and_directory_names_both() {
    let output = etcd_aws_cfn(&["issue-client-cert", "--stack-name", "etcd"]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    for flag in ["--name", "--out"] {
        assert!(error.contains(flag), "{error}");
    }
}

#[test]
fn issue_client_cert_refuses_an_empty_name_before_reading_any_secret() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let out = directory.path().join("certs");
    let output = clean_command()
        .args(["issue-client-cert", "--name", " ", "--out"])
        .arg(&out)
        // Nothing listens here: reaching AWS would fail with a different error.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("etcd-aws-cfn runs");
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("client name (--name) is empty"), "{error}");
    assert!(!out.exists());
}

#[test]
fn issue_client_cert_refuses_an_unreadable_lifetime() {
    let output = etcd_aws_cfn(&[
        "issue-client-cert",
        "--name",
        "alice",
        "--out",
        "/tmp/unused",
        "--valid-for",
        "forever",
    ]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("--valid-for"), "{error}");
}

#[test]
fn a_kms_key_alias_is_refused_with_why_an_arn_is_needed() {
    let output = etcd_aws_cfn(&["--dry-run", "--kms-key-id", "alias/mine"]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("names the key by its ARN"), "{error}");
}

#[test]
fn deploy_named_or_not_is_the_same_command() {
    let unnamed = etcd_aws_cfn(&["--dry-run", "--cluster-size", "5"]);
    let named = etcd_aws_cfn(&["deploy", "--dry-run", "--cluster-size", "5"]);
    assert!(named.status.success() && unnamed.status.success());
    assert_eq!(named.stdout, unnamed.stdout);
}

#[test]
fn a_deploy_setting_in_the_environment_does_not_reach_the_operator_commands() {
    let output = clean_command()
        .args(["backups", "list", "--bucket", "b", "--group-name", "g"])
        .args(["--backup-function", "f"])
        // Invalid for a deploy: the operator commands must not read it at all.
        .env("ETCD_AWS_CLUSTER_SIZE", "4")
        // Nothing listens here: the command fails reaching S3, after parsing.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .expect("etcd-aws-cfn runs");
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!error.contains("cluster size"), "{error}");
    assert!(error.contains("ListObjectsV2"), "{error}");
}

#[test]
fn rotate_cas_help_says_it_stops_for_the_clients_until_drop_old() {
    let output = etcd_aws_cfn(&["rotate-ca", "--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for part in [
        "There it stops",
        "With --drop-old it goes on",
        "leader last",
        "carries on",
    ] {
        assert!(help.contains(part), "{part}: {help}");
    }
}

#[test]
fn the_roots_help_names_every_command_and_the_default() {
    let output = etcd_aws_cfn(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for command in [
        "deploy",
        "issue-client-cert",
        "status",
        "backups",
        "backup",
        "restore",
        "start-empty",
        "rotate-ca",
    ] {
        assert!(help.contains(command), "{command}: {help}");
    }
    assert!(help.contains("With no command, deploys"), "{help}");
}

#[test]
fn a_network_mode_with_an_existing_vpc_is_refused_before_anything_runs() {
    let output = etcd_aws_cfn(&[
        "--dry-run",
        "--vpc-id",
        "vpc-0a1b2c3d4e5f60718",
        "--subnet-ids",
        "subnet-0000000a,subnet-0000000b,subnet-0000000c",
        "--network-mode",
        "endpoints",
    ]);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("--network-mode") && error.contains("--vpc-id"),
        "{error}"
    );
}

#[test]
fn an_existing_vpc_needs_no_network_mode() {
    let output = etcd_aws_cfn(&[
        "--dry-run",
        "--vpc-id",
        "vpc-0a1b2c3d4e5f60718",
        "--subnet-ids",
        "subnet-0000000a,subnet-0000000b,subnet-0000000c",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let template: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    let nat = template["Resources"]
        .as_object()
        .into_iter()
        .flat_map(|r| r.values())
        .filter(|r| r["Type"] == "AWS::EC2::NatGateway")
        .count();
    assert_eq!(nat, 0);
}
