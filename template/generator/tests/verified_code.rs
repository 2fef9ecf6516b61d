//! The code the stack runs is the code that was deployed: the agent binary is
//! checked against a SHA-256 the template pins before a node installs it, and each
//! function runs the S3 object version the deploy recorded. (That the check in the
//! script refuses a tampered file is shown by running it: rendered_user_data.rs.)

mod common;

use common::*;
use etcd_aws_template::names::parameters;
use etcd_aws_template::options::{artifacts, Options};
use etcd_aws_template::user_data::VERIFIED_LINE;
use serde_json::json;

#[test]
fn the_agent_checksum_is_a_parameter_of_64_hexadecimal_characters() {
    let template = default_template();
    let parameter = &template["Parameters"][parameters::AGENT_SHA256];
    assert_eq!(parameter["Type"], "String");
    assert_eq!(parameter["AllowedPattern"], "^[0-9a-f]{64}$");
}

#[test]
fn a_template_generated_without_an_agent_checksum_asks_for_one() {
    let template = default_template();
    assert_eq!(
        template["Parameters"][parameters::AGENT_SHA256].get("Default"),
        None
    );
}

#[test]
fn a_given_agent_checksum_is_the_parameters_default() {
    let sha = "cd".repeat(32);
    let template = template_for(&Options {
        agent_sha256: Some(parse(&sha)),
        ..Options::default()
    });
    assert_eq!(
        template["Parameters"][parameters::AGENT_SHA256]["Default"],
        json!(sha)
    );
}

#[test]
fn user_data_fetches_the_agent_and_checks_it_against_the_pinned_checksum_before_installing_it() {
    let script = user_data_script(&default_template());
    assert!(script.contains("AGENT_SHA256='${AgentSha256}'"));
    let check = script
        .find(r#"fetch_verified "$AGENT_URL" "$AGENT_SHA256" "$work/etcd-aws""#)
        .expect("fetches the agent into the work directory and checks it");
    let verified = script.find(VERIFIED_LINE).expect("the checks end");
    let install = script
        .find(r#"install -m 0755 "$work/etcd-aws" "$BIN/etcd-aws""#)
        .expect("installs the checked agent");
    assert!(check < verified && verified < install);
    assert_eq!(
        script.matches("aws s3 cp").count(),
        1,
        "every download goes through fetch_verified"
    );
}

#[test]
fn every_function_runs_the_object_version_of_its_zip_that_the_deploy_recorded() {
    let template = default_template();
    let functions = of_type(&template, "AWS::Lambda::Function");
    assert_eq!(functions.len(), 4);
    for (id, function) in functions {
        let code = &function["Properties"]["Code"];
        let key = code["S3Key"].as_str().unwrap_or_default();
        let parameter = if key.ends_with(artifacts::LIFECYCLE_ZIP) {
            parameters::LIFECYCLE_CODE_VERSION
        } else {
            assert!(key.ends_with(artifacts::BACKUP_ZIP), "{id} runs {key}");
            parameters::BACKUP_CODE_VERSION
        };
        assert_eq!(
            code["S3ObjectVersion"],
            json!({ "Ref": parameter }),
            "{id} does not pin its code"
        );
    }
}

#[test]
fn the_code_versions_have_no_default_so_no_stack_runs_an_unpinned_object() {
    let template = template_for(&everything_options());
    for parameter in [
        parameters::LIFECYCLE_CODE_VERSION,
        parameters::BACKUP_CODE_VERSION,
    ] {
        let declared = &template["Parameters"][parameter];
        assert_eq!(declared["Type"], "String", "{parameter}");
        assert_eq!(declared["MinLength"], 1, "{parameter}");
        assert_eq!(declared.get("Default"), None, "{parameter}");
    }
}
