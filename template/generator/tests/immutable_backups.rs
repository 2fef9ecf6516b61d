//! Immutable backups (`--backup-lock-days`): off unless asked for; when
//! asked, every new version in the backup bucket is locked in governance
//! mode for the days asked, and S3 keeps a deleted version at least until its
//! lock ends. tests/tests/backup_function.rs shows retention on a locked
//! bucket.

mod common;

use common::{default_template, resource, template_for};
use etcd_aws_template::names::logical;
use etcd_aws_template::options::OptionsError;
use etcd_aws_template::Options;
use serde_json::{json, Value};

fn bucket(template: &Value) -> &Value {
    &resource(template, logical::BACKUP_BUCKET)["Properties"]
}

fn locked_for(days: u32) -> Options {
    Options {
        backup_lock_days: Some(days),
        ..Options::default()
    }
}

fn noncurrent_days(template: &Value) -> Value {
    bucket(template)["LifecycleConfiguration"]["Rules"]
        .as_array()
        .and_then(|rules| {
            rules
                .iter()
                .find(|rule| rule["Id"] == "expire-replaced-versions")
        })
        .map(|rule| rule["NoncurrentVersionExpiration"]["NoncurrentDays"].clone())
        .unwrap_or(Value::Null)
}

#[test]
fn without_the_option_the_bucket_has_no_object_lock() {
    let template = default_template();
    assert!(bucket(&template).get("ObjectLockEnabled").is_none());
    assert!(bucket(&template).get("ObjectLockConfiguration").is_none());
}

#[test]
fn with_the_option_every_new_version_is_locked_in_governance_mode_for_the_days_asked() {
    let template = template_for(&locked_for(14));
    assert_eq!(bucket(&template)["ObjectLockEnabled"], true);
    assert_eq!(
        bucket(&template)["ObjectLockConfiguration"],
        json!({
            "ObjectLockEnabled": "Enabled",
            "Rule": { "DefaultRetention": { "Mode": "GOVERNANCE", "Days": 14 } },
        })
    );
}

#[test]
fn the_locked_bucket_stays_versioned() {
    let template = template_for(&locked_for(14));
    assert_eq!(
        bucket(&template)["VersioningConfiguration"]["Status"],
        "Enabled"
    );
}

#[test]
fn a_deleted_version_is_kept_until_its_lock_ends_when_the_lock_outlasts_the_retention() {
    let options = Options {
        backup_retention_days: 30,
        ..locked_for(90)
    };
    assert_eq!(noncurrent_days(&template_for(&options)), 90);
}

#[test]
fn a_deleted_version_is_kept_for_the_retention_when_it_outlasts_the_lock() {
    let options = Options {
        backup_retention_days: 30,
        ..locked_for(7)
    };
    assert_eq!(noncurrent_days(&template_for(&options)), 30);
}

#[test]
fn a_lock_of_no_days_or_over_ten_years_is_refused() {
    for days in [0, 3651] {
        assert!(
            matches!(locked_for(days).validate(), Err(OptionsError::LockDays(d)) if d == days),
            "{days}"
        );
    }
    assert!(locked_for(1).validate().is_ok());
    assert!(locked_for(3650).validate().is_ok());
}
