//! Each run of the backup code writes only its own kinds of object, and only
//! the backup run deletes a snapshot: what each role's statements allow on
//! the object keys the programs use (built by the core's `BackupLayout`, as
//! the programs build them), matched as IAM matches them. moto enforces no
//! IAM policy, so these checks are the guard; tests/tests/least_privilege.rs
//! shows each role allows what its run calls and nothing more.

mod common;

use common::{action_allowed, default_template, iam_matches, iam_statements, resource};
use etcd_aws_core::backup::manifest::{BackupLayout, Compression};
use etcd_aws_core::contract::restore_order::Acknowledger;
use etcd_aws_template::fn_sub::render;
use etcd_aws_template::names::{logical, BACKUP_PREFIX};
use serde_json::Value;

/// The bucket's ARN in these checks.
const BUCKET_ARN: &str = "arn:aws:s3:::stack-backups";

const BACKUP: &str = logical::BACKUP_FUNCTION_ROLE;
const MAINTENANCE: &str = logical::MAINTENANCE_FUNCTION_ROLE;
const CAPTURE: &str = logical::CAPTURE_FUNCTION_ROLE;
const BACKUP_ROLES: [&str; 3] = [BACKUP, MAINTENANCE, CAPTURE];

/// One key of each kind the bucket holds.
struct Keys {
    snapshot: String,
    manifest: String,
    pointer: String,
    segment: String,
    order: String,
    permit: String,
    acknowledgement: String,
}

fn keys() -> Keys {
    let layout = BackupLayout::new(BACKUP_PREFIX);
    let snapshot = layout.snapshot_key(1_765_000_000, 42, "0a1b2c3d4e5f", Compression::Zstd);
    Keys {
        manifest: BackupLayout::manifest_key(&snapshot),
        snapshot,
        pointer: layout.pointer_key(),
        segment: format!(
            "{}{:020}-{:020}-{:016x}-{}.seg.zst",
            layout.segments_prefix(),
            200,
            43,
            0xc1,
            "ab".repeat(32)
        ),
        order: layout.restore_order_key(),
        permit: layout.empty_start_permit_key(),
        acknowledgement: layout.quarantine_ack_key(
            "20261207T120000Z",
            &Acknowledger {
                role_id: "AROA3XFRBF535EXAMPLE".into(),
                instance_id: "i-0abc".into(),
            },
        ),
    }
}

/// The ARN patterns of a statement's resources, rendered as CloudFormation
/// would; resources that are not the bucket's are left out.
fn bucket_patterns(statement: &Value) -> Vec<String> {
    let resources = match &statement["Resource"] {
        Value::Array(resources) => resources.clone(),
        other => vec![other.clone()],
    };
    let values = [
        (
            format!("{}.Arn", logical::BACKUP_BUCKET),
            BUCKET_ARN.to_owned(),
        ),
        ("AWS::Partition".to_owned(), "aws".to_owned()),
    ];
    resources
        .iter()
        .filter_map(|resource| match resource {
            Value::String(text) => Some(text.clone()),
            _ => resource["Fn::Sub"]
                .as_str()
                .filter(|text| text.starts_with(&format!("${{{}.Arn}}", logical::BACKUP_BUCKET)))
                .map(|text| match render(text, &values) {
                    Ok(rendered) => rendered,
                    Err(error) => panic!("{text}: {error}"),
                }),
        })
        .collect()
}

/// Whether `role` is allowed `action` on the object at `key`.
fn may(role: &str, action: &str, key: &str) -> bool {
    let arn = format!("{BUCKET_ARN}/{key}");
    iam_statements(&default_template())
        .into_iter()
        .filter(|(owner, statement)| {
            owner == role && statement["Effect"] == "Allow" && action_allowed(statement, action)
        })
        .any(|(_, statement)| {
            bucket_patterns(&statement)
                .iter()
                .any(|pattern| iam_matches(pattern, &arn))
        })
}

fn may_write(role: &str, key: &str) -> bool {
    may(role, "s3:PutObject", key)
}

fn may_delete(role: &str, key: &str) -> bool {
    may(role, "s3:DeleteObject", key)
}

#[test]
fn each_run_of_the_backup_code_has_a_role_of_its_own() {
    let template = default_template();
    for (function, role) in [
        (logical::BACKUP_FUNCTION, BACKUP),
        (logical::MAINTENANCE_FUNCTION, MAINTENANCE),
        (logical::CAPTURE_FUNCTION, CAPTURE),
    ] {
        assert_eq!(
            resource(&template, function)["Properties"]["Role"]["Fn::GetAtt"][0],
            role,
            "{function}"
        );
    }
}

#[test]
fn the_backup_run_may_write_snapshots_their_manifests_and_the_pointer_and_no_segment() {
    let k = keys();
    assert!(may_write(BACKUP, &k.snapshot));
    assert!(may_write(BACKUP, &k.manifest));
    assert!(may_write(BACKUP, &k.pointer));
    assert!(!may_write(BACKUP, &k.segment));
}

#[test]
fn the_backup_run_may_delete_snapshots_manifests_and_segments_for_retention_but_not_the_pointer() {
    let k = keys();
    assert!(may_delete(BACKUP, &k.snapshot));
    assert!(may_delete(BACKUP, &k.manifest));
    assert!(may_delete(BACKUP, &k.segment));
    assert!(!may_delete(BACKUP, &k.pointer));
}

#[test]
fn the_backup_run_reads_manifests_the_pointer_and_the_restore_order_but_no_snapshot_data() {
    let k = keys();
    assert!(may(BACKUP, "s3:GetObject", &k.manifest));
    assert!(may(BACKUP, "s3:GetObject", &k.pointer));
    assert!(may(BACKUP, "s3:GetObject", &k.order));
    assert!(!may(BACKUP, "s3:GetObject", &k.snapshot));
    assert!(!may(BACKUP, "s3:GetObject", &k.segment));
}

#[test]
fn the_maintenance_run_may_write_a_snapshot_and_the_pointer_but_no_segment() {
    let k = keys();
    assert!(may_write(MAINTENANCE, &k.snapshot));
    assert!(may_write(MAINTENANCE, &k.manifest));
    assert!(may_write(MAINTENANCE, &k.pointer));
    assert!(!may_write(MAINTENANCE, &k.segment));
}

#[test]
fn the_maintenance_run_may_delete_nothing() {
    let k = keys();
    for key in [&k.snapshot, &k.manifest, &k.pointer, &k.segment] {
        assert!(!may_delete(MAINTENANCE, key), "{key}");
    }
}

/// `role` may read `latest.json` and no other object.
fn assert_reads_only_the_pointer(role: &str) {
    let k = keys();
    assert!(may(role, "s3:GetObject", &k.pointer));
    for key in [&k.snapshot, &k.manifest, &k.segment, &k.order] {
        assert!(!may(role, "s3:GetObject", key), "{role} may read {key}");
    }
}

#[test]
fn the_maintenance_run_reads_only_the_pointer() {
    assert_reads_only_the_pointer(MAINTENANCE);
}

#[test]
fn the_capture_may_write_segments_and_a_snapshot_with_its_manifest_and_the_pointer() {
    let k = keys();
    for key in [&k.segment, &k.snapshot, &k.manifest, &k.pointer] {
        assert!(may_write(CAPTURE, key), "{key}");
    }
}

#[test]
fn the_capture_may_write_segments_but_never_delete_a_snapshot() {
    let k = keys();
    assert!(may_delete(CAPTURE, &k.segment));
    for key in [&k.snapshot, &k.manifest, &k.pointer] {
        assert!(!may_delete(CAPTURE, key), "{key}");
    }
}

#[test]
fn the_capture_reads_only_the_pointer() {
    assert_reads_only_the_pointer(CAPTURE);
}

#[test]
fn no_backup_role_may_write_or_delete_under_restore() {
    let k = keys();
    for role in BACKUP_ROLES {
        for key in [&k.order, &k.permit, &k.acknowledgement] {
            assert!(!may_write(role, key), "{role} may write {key}");
            assert!(!may_delete(role, key), "{role} may delete {key}");
        }
    }
}

#[test]
fn no_backup_role_may_remove_a_version_or_touch_a_lock() {
    let k = keys();
    for role in BACKUP_ROLES {
        for action in [
            "s3:DeleteObjectVersion",
            "s3:BypassGovernanceRetention",
            "s3:PutObjectRetention",
            "s3:PutObjectLegalHold",
        ] {
            for key in [&k.snapshot, &k.manifest, &k.segment, &k.pointer] {
                assert!(!may(role, action, key), "{role} may {action} {key}");
            }
        }
    }
}
