//! AWS's refusals, classified against moto's answers.
//!
//! The bucket and secret stores decide what to tell the operator (and whether
//! a deploy may go on) from the kind of an SDK error, which
//! `etcd_aws_io::aws::error` reads from the error code AWS sends. These
//! tests pin each kind a caller acts on to the answer of the stand-in.

use etcd_aws_io::backup_store::{BackupStore, BackupStoreError};
use etcd_aws_io::tls::{NewSecret, SecretStore, SecretStoreError};
use etcd_aws_tests::stand_in::StandIn;

fn secret<'a>(name: &'a str) -> NewSecret<'a> {
    NewSecret {
        name,
        description: "aws_errors test",
        kms_key_arn: None,
        tags: &[("etcd-aws:stack", "aws-errors")],
    }
}

#[tokio::test]
async fn a_missing_bucket_is_named_as_such() -> anyhow::Result<()> {
    let stand_in = StandIn::start_without_instances().await?;
    let store = BackupStore::new(&stand_in.sdk_config().await, "no-such-bucket", "backups/");
    match store.manifests().await {
        Err(BackupStoreError::NoSuchBucket { bucket }) => assert_eq!(bucket, "no-such-bucket"),
        other => panic!("expected NoSuchBucket, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn a_missing_secret_is_not_found() -> anyhow::Result<()> {
    let stand_in = StandIn::start_without_instances().await?;
    let store = SecretStore::new(&stand_in.sdk_config().await);
    match store.load_ca("etcd-aws/nobody/cluster-ca").await {
        Err(SecretStoreError::NotFound { secret }) => {
            assert_eq!(secret, "etcd-aws/nobody/cluster-ca")
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn creating_a_secret_twice_says_it_exists_and_keeps_the_first() -> anyhow::Result<()> {
    let stand_in = StandIn::start_without_instances().await?;
    let store = SecretStore::new(&stand_in.sdk_config().await);
    let name = format!("etcd-aws/{}/twice", stand_in.group_name());
    let arn = store.create(&secret(&name)).await?;
    assert!(arn.contains(&name), "{arn}");
    match store.create(&secret(&name)).await {
        Err(SecretStoreError::AlreadyExists { secret }) => assert_eq!(secret, name),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // The first one still holds its placeholder: a node reading it waits.
    match store.load_ca(&name).await {
        Err(SecretStoreError::NotInitialised { .. }) => {}
        other => panic!("expected the placeholder, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn a_value_for_a_secret_nobody_created_is_refused_not_created() -> anyhow::Result<()> {
    let stand_in = StandIn::start_without_instances().await?;
    let store = SecretStore::new(&stand_in.sdk_config().await);
    let name = format!("etcd-aws/{}/never-created", stand_in.group_name());
    let ca = etcd_aws_io::tls::ClusterCa::generate(
        "never-created",
        etcd_aws_io::tls::authority::ValidityPeriod::starting_now(std::time::Duration::from_secs(
            3_600,
        )),
    )?;
    match store.store_ca(&name, &ca).await {
        Err(SecretStoreError::NotFound { secret }) => assert_eq!(secret, name),
        other => panic!("expected NotFound, got {other:?}"),
    }
    Ok(())
}
