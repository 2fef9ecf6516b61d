//! Generation options accept only values that make a working stack.

use etcd_aws_core::etcd::release::ReleaseError;
use etcd_aws_template::options::{
    Architecture, ArtifactPrefix, EtcdVersion, InstanceType, OptionsError, Schedule, SecretsKey,
    Sha256, SubnetIds, VpcCidr, VpcId,
};

#[test]
fn graviton_instance_types_are_arm64_and_others_x86_64() {
    for (name, architecture) in [
        ("t4g.medium", Architecture::Arm64),
        ("m7g.large", Architecture::Arm64),
        ("r7gd.xlarge", Architecture::Arm64),
        ("c8g.2xlarge", Architecture::Arm64),
        ("m7i.large", Architecture::X86_64),
        ("t3.medium", Architecture::X86_64),
        ("m7a.large", Architecture::X86_64),
    ] {
        let parsed: InstanceType = name.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed.architecture(), architecture, "{name}");
    }
}

#[test]
fn malformed_instance_types_are_refused() {
    for name in ["", "t4g", "T4G.MEDIUM", "t4g..medium", "medium.", "g.large"] {
        assert!(
            matches!(
                name.parse::<InstanceType>(),
                Err(OptionsError::InstanceType(_))
            ),
            "{name:?} accepted"
        );
    }
}

#[test]
fn etcd_older_than_3_5_is_refused() {
    assert!(matches!(
        "3.4.30".parse::<EtcdVersion>(),
        Err(OptionsError::EtcdRelease(ReleaseError::NotForNewStacks(_)))
    ));
    assert!(matches!(
        "3.5".parse::<EtcdVersion>(),
        Err(OptionsError::EtcdVersion(_))
    ));
    assert!("3.5.21".parse::<EtcdVersion>().is_ok());
    assert!("v3.6.0".parse::<EtcdVersion>().is_ok());
}

/// The agent refuses them (a data corruption bug): a stack pinning one would
/// deploy, and then no node would start.
#[test]
fn the_withdrawn_etcd_releases_are_refused_as_the_agent_refuses_them() {
    for version in ["3.5.0", "3.5.1", "3.5.2"] {
        let parsed = version.parse::<EtcdVersion>();
        assert!(
            matches!(
                parsed,
                Err(OptionsError::EtcdRelease(ReleaseError::Withdrawn(_)))
            ),
            "{version}: {parsed:?}"
        );
    }
}

/// A seed refuses to restore with their etcdutl (no --bump-revision): a
/// stack pinning one would run until its first total loss, then stay down.
#[test]
fn etcd_releases_whose_restore_cannot_bump_revisions_are_refused() {
    for version in ["3.5.3", "3.5.12"] {
        let parsed = version.parse::<EtcdVersion>();
        assert!(
            matches!(
                parsed,
                Err(OptionsError::EtcdRelease(
                    ReleaseError::CannotBumpRevisions(_)
                ))
            ),
            "{version}: {parsed:?}"
        );
    }
    assert!("3.5.13".parse::<EtcdVersion>().is_ok());
}

#[test]
fn etcd_archive_names_follow_the_release_naming() {
    let version: EtcdVersion = "3.5.21".parse().expect("valid");
    assert_eq!(
        version.archive_name(Architecture::Arm64),
        "etcd-v3.5.21-linux-arm64.tar.gz"
    );
    assert_eq!(
        version.archive_name(Architecture::X86_64),
        "etcd-v3.5.21-linux-amd64.tar.gz"
    );
}

#[test]
fn checksums_are_64_hex_characters() {
    assert!("A".repeat(64).parse::<Sha256>().is_ok());
    assert!("a".repeat(63).parse::<Sha256>().is_err());
    assert!("g".repeat(64).parse::<Sha256>().is_err());
}

#[test]
fn schedules_are_rate_or_cron_expressions() {
    assert!("rate(15 minutes)".parse::<Schedule>().is_ok());
    assert!("cron(0 * * * ? *)".parse::<Schedule>().is_ok());
    assert!("every 15 minutes".parse::<Schedule>().is_err());
    assert!("rate()".parse::<Schedule>().is_err());
}

#[test]
fn rate_schedules_know_their_interval_and_cron_ones_do_not() {
    let interval = |text: &str| text.parse::<Schedule>().expect("valid").interval_seconds();
    assert_eq!(interval("rate(15 minutes)"), Some(900));
    assert_eq!(interval("rate(1 hour)"), Some(3_600));
    assert_eq!(interval("rate(2 days)"), Some(172_800));
    assert_eq!(interval("cron(0 * * * ? *)"), None);
}

#[test]
fn vpc_blocks_are_slash_16_and_give_slash_24_subnets() {
    let cidr: VpcCidr = "10.7.0.0/16".parse().expect("valid");
    assert_eq!(cidr.subnet(2), "10.7.2.0/24");
    for wrong in ["10.7.0.0/24", "10.7.1.0/16", "10.7.0.0", "300.1.0.0/16"] {
        assert!(wrong.parse::<VpcCidr>().is_err(), "{wrong} accepted");
    }
}

#[test]
fn artifact_prefixes_end_with_a_slash_and_do_not_start_with_one() {
    assert!("etcd-aws/abc123/".parse::<ArtifactPrefix>().is_ok());
    assert!("".parse::<ArtifactPrefix>().is_ok());
    assert!("etcd-aws".parse::<ArtifactPrefix>().is_err());
    assert!("/etcd-aws/".parse::<ArtifactPrefix>().is_err());
}

#[test]
fn secrets_key_is_the_aws_managed_key_or_a_key_arn() {
    assert_eq!(
        "alias/aws/secretsmanager".parse::<SecretsKey>(),
        Ok(SecretsKey::AwsManaged)
    );
    let arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    assert_eq!(
        arn.parse::<SecretsKey>(),
        Ok(SecretsKey::Customer(arn.to_string()))
    );
}

#[test]
fn secrets_key_aliases_and_bare_ids_are_refused_with_why_an_arn_is_needed() {
    for key in [
        "alias/my-key",
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:eu-west-1:111122223333:alias/my-key",
        "arn:aws:kms:eu-west-1:1111:key/abc",
        "",
    ] {
        let error = match key.parse::<SecretsKey>() {
            Ok(parsed) => panic!("{key:?} was accepted as {parsed:?}"),
            Err(error) => error,
        };
        assert!(matches!(error, OptionsError::SecretsKey(_)), "{key:?}");
        assert!(
            error.to_string().contains("names the key by its ARN"),
            "{error}"
        );
    }
}

#[test]
fn an_existing_vpc_is_named_by_ids_of_ec2s_shape() {
    assert!("vpc-0a1b2c3d".parse::<VpcId>().is_ok());
    assert!("vpc-0a1b2c3d4e5f60718".parse::<VpcId>().is_ok());
    for bad in ["vpc-XYZ", "0a1b2c3d", "subnet-0a1b2c3d", "vpc-0a1b2c3"] {
        assert!(
            matches!(bad.parse::<VpcId>(), Err(OptionsError::VpcId(_))),
            "{bad}"
        );
    }
}

#[test]
fn three_or_five_distinct_subnets_are_taken() {
    let three = "subnet-0000000a, subnet-0000000b,subnet-0000000c".parse::<SubnetIds>();
    assert_eq!(three.map(|s| s.ids().len()).ok(), Some(3));
    assert!(matches!(
        "subnet-0000000a,subnet-0000000b".parse::<SubnetIds>(),
        Err(OptionsError::SubnetCount(2))
    ));
    assert!(matches!(
        "subnet-0000000a,subnet-0000000a,subnet-0000000c".parse::<SubnetIds>(),
        Err(OptionsError::SubnetTwice(_))
    ));
    assert!(matches!(
        "subnet-0000000a,sg-0000000b,subnet-0000000c".parse::<SubnetIds>(),
        Err(OptionsError::SubnetId(_))
    ));
}
