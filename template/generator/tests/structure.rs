//! The template's security and wiring, asserted on the generated JSON.

mod common;

use common::*;
use etcd_aws_core::backup::lease_policy::LeasePolicy;
use etcd_aws_template::names::{conditions, env, functions, logical, parameters, ports};
use etcd_aws_template::options::{ClusterSize, Options, OptionsError, SshCidr};
use serde_json::{json, Value};

#[test]
fn instances_require_imdsv2_session_tokens() {
    for template in [default_template(), template_for(&everything_options())] {
        let metadata = &resource(&template, logical::LAUNCH_TEMPLATE)["Properties"]
            ["LaunchTemplateData"]["MetadataOptions"];
        assert_eq!(metadata["HttpTokens"], "required");
        assert_eq!(metadata["HttpPutResponseHopLimit"], 1);
    }
}

#[test]
fn image_comes_from_the_public_amazon_linux_ssm_parameter_for_the_instance_architecture() {
    let graviton = default_template();
    let image = &graviton["Parameters"][parameters::IMAGE_ID];
    assert_eq!(
        image["Type"],
        "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    );
    assert_eq!(
        image["Default"],
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
    );
    assert_eq!(
        resource(&graviton, logical::LAUNCH_TEMPLATE)["Properties"]["LaunchTemplateData"]
            ["ImageId"],
        json!({ "Ref": parameters::IMAGE_ID })
    );
    let intel = template_for(&everything_options());
    assert_eq!(
        intel["Parameters"][parameters::IMAGE_ID]["Default"],
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    );
}

#[test]
fn nodes_get_no_public_address() {
    let template = default_template();
    let interfaces = &resource(&template, logical::LAUNCH_TEMPLATE)["Properties"]
        ["LaunchTemplateData"]["NetworkInterfaces"];
    assert_eq!(interfaces[0]["AssociatePublicIpAddress"], false);
}

#[test]
fn no_security_group_rule_admits_the_whole_internet() {
    for template in [default_template(), template_for(&everything_options())] {
        for (id, body) in resources(&template) {
            let mut rules: Vec<Value> = Vec::new();
            if body["Type"] == "AWS::EC2::SecurityGroupIngress" {
                rules.push(body["Properties"].clone());
            }
            if body["Type"] == "AWS::EC2::SecurityGroup" {
                rules.extend(
                    body["Properties"]["SecurityGroupIngress"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            for rule in rules {
                assert_ne!(rule["CidrIp"], "0.0.0.0/0", "{id} admits 0.0.0.0/0");
                assert_ne!(rule["CidrIpv6"], "::/0", "{id} admits ::/0");
            }
        }
    }
}

#[test]
fn ssh_is_closed_unless_a_source_block_is_given() {
    let template = default_template();
    let ssh_rules: Vec<_> = of_type(&template, "AWS::EC2::SecurityGroupIngress")
        .into_iter()
        .filter(|(_, body)| body["Properties"]["FromPort"] == 22)
        .collect();
    assert!(
        ssh_rules.is_empty(),
        "default template opens SSH: {ssh_rules:?}"
    );
}

#[test]
fn ssh_is_opened_only_to_the_given_block() {
    let template = template_for(&everything_options());
    let ssh_rules: Vec<_> = of_type(&template, "AWS::EC2::SecurityGroupIngress")
        .into_iter()
        .filter(|(_, body)| body["Properties"]["FromPort"] == 22)
        .map(|(_, body)| body["Properties"]["CidrIp"].clone())
        .collect();
    assert_eq!(ssh_rules, vec![json!("192.0.2.0/24")]);
}

#[test]
fn ssh_from_the_internet_is_refused_before_generation() {
    for open in ["0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/4"] {
        let refused = open.parse::<SshCidr>();
        assert!(
            matches!(refused, Err(OptionsError::SshCidrOpen(_))),
            "{open} was accepted"
        );
    }
}

#[test]
fn ssh_without_a_key_pair_is_refused() {
    let options = Options {
        ssh_cidr: Some(parse("192.0.2.0/24")),
        key_pair: None,
        ..Options::default()
    };
    assert!(matches!(
        etcd_aws_template::template(&options),
        Err(etcd_aws_template::TemplateError::Options(
            OptionsError::SshWithoutKeyPair(_)
        ))
    ));
}

#[test]
fn cluster_size_is_three_or_five_and_anything_else_says_why() {
    assert_eq!(parse::<ClusterSize>("3").count(), 3);
    assert_eq!(parse::<ClusterSize>("5").count(), 5);
    for wrong in ["0", "1", "2", "4", "6", "7", "three", "-3", ""] {
        let error = match wrong.parse::<ClusterSize>() {
            Ok(size) => panic!("{wrong:?} was accepted as {size}"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains("must be 3 or 5"), "unclear error: {error}");
    }
}

#[test]
fn no_iam_statement_allows_s3_wildcards_or_all_actions() {
    for template in [default_template(), template_for(&everything_options())] {
        for (role, statement) in iam_statements(&template) {
            for action in strings(&statement["Action"]) {
                assert!(
                    action != "*" && action != "s3:*" && !action.ends_with(":*"),
                    "{role} allows {action}"
                );
            }
        }
    }
}

#[test]
fn every_statement_on_all_resources_is_a_describe_call() {
    // Describe calls support no resource-level permissions; anything else must name
    // the resources it needs.
    for (role, statement) in iam_statements(&default_template()) {
        if statement["Resource"] == json!(["*"]) || statement["Resource"] == json!("*") {
            for action in strings(&statement["Action"]) {
                let verb = action.split(':').nth(1).unwrap_or_default();
                assert!(verb.starts_with("Describe"), "{role} allows {action} on *");
            }
        }
    }
}

#[test]
fn lifecycle_hook_posts_to_the_queue_the_lifecycle_function_reads() {
    let template = default_template();
    let group = resource(&template, logical::AUTO_SCALING_GROUP);
    let hooks = group["Properties"]["LifecycleHookSpecificationList"]
        .as_array()
        .expect("the group declares its lifecycle hooks");
    assert_eq!(hooks.len(), 1);
    assert_eq!(
        hooks[0]["LifecycleTransition"],
        "autoscaling:EC2_INSTANCE_TERMINATING"
    );
    let mapping = resource(&template, logical::LIFECYCLE_EVENT_SOURCE);
    assert_eq!(
        hooks[0]["NotificationTargetARN"],
        mapping["Properties"]["EventSourceArn"]
    );
    assert_eq!(
        mapping["Properties"]["FunctionName"],
        json!({ "Ref": logical::LIFECYCLE_FUNCTION })
    );
}

#[test]
fn lifecycle_hook_role_may_post_to_exactly_that_queue() {
    let template = default_template();
    let hook_target = resource(&template, logical::AUTO_SCALING_GROUP)["Properties"]
        ["LifecycleHookSpecificationList"][0]["NotificationTargetARN"]
        .clone();
    let statements: Vec<Value> = iam_statements(&template)
        .into_iter()
        .filter(|(role, _)| role == logical::LIFECYCLE_HOOK_ROLE)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0]["Resource"], json!([hook_target]));
}

#[test]
fn lifecycle_function_reports_partial_batch_failures() {
    let template = default_template();
    let mapping = resource(&template, logical::LIFECYCLE_EVENT_SOURCE);
    assert_eq!(
        mapping["Properties"]["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
}

#[test]
fn poison_lifecycle_messages_reach_a_dead_letter_queue_that_has_an_alarm() {
    let template = default_template();
    let queue = resource(&template, logical::LIFECYCLE_QUEUE);
    assert_eq!(
        queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"],
        json!({ "Fn::GetAtt": [logical::LIFECYCLE_DEAD_LETTER_QUEUE, "Arn"] })
    );
    let watched: Vec<_> = of_type(&template, "AWS::CloudWatch::Alarm")
        .into_iter()
        .filter(|(_, alarm)| {
            alarm["Properties"]["Dimensions"][0]["Value"]
                == json!({ "Fn::GetAtt": [logical::LIFECYCLE_DEAD_LETTER_QUEUE, "QueueName"] })
        })
        .collect();
    assert_eq!(watched.len(), 1);
}

#[test]
fn queue_visibility_outlasts_six_lifecycle_function_timeouts() {
    let template = default_template();
    let timeout = resource(&template, logical::LIFECYCLE_FUNCTION)["Properties"]["Timeout"]
        .as_u64()
        .expect("the function has a timeout");
    let visibility = resource(&template, logical::LIFECYCLE_QUEUE)["Properties"]
        ["VisibilityTimeout"]
        .as_u64()
        .expect("the queue has a visibility timeout");
    assert!(visibility >= 6 * timeout);
}

fn backup_bucket(template: &Value) -> &Value {
    &resource(template, logical::BACKUP_BUCKET)["Properties"]
}

#[test]
fn backup_bucket_encrypts_with_kms() {
    let template = default_template();
    let rules = &backup_bucket(&template)["BucketEncryption"]["ServerSideEncryptionConfiguration"];
    assert_eq!(rules.as_array().map(Vec::len), Some(1), "{rules}");
    assert_eq!(
        rules[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"],
        "aws:kms"
    );
}

#[test]
fn backup_bucket_is_versioned() {
    let template = default_template();
    assert_eq!(
        backup_bucket(&template)["VersioningConfiguration"]["Status"],
        "Enabled"
    );
}

#[test]
fn backup_bucket_blocks_all_public_access() {
    let template = default_template();
    let block = &backup_bucket(&template)["PublicAccessBlockConfiguration"];
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[setting], true, "{setting}");
    }
}

#[test]
fn backup_bucket_refuses_plain_http_to_the_bucket_and_every_object() {
    let template = default_template();
    let policies = of_type(&template, "AWS::S3::BucketPolicy");
    assert_eq!(policies.len(), 1);
    let properties = &policies[0].1["Properties"];
    assert_eq!(
        properties["Bucket"],
        json!({ "Ref": logical::BACKUP_BUCKET })
    );
    let statement = &properties["PolicyDocument"]["Statement"][0];
    assert_eq!(statement["Effect"], "Deny");
    assert_eq!(statement["Principal"], "*");
    assert_eq!(statement["Action"], "s3:*");
    assert_eq!(
        statement["Condition"]["Bool"]["aws:SecureTransport"],
        "false"
    );
    assert_eq!(
        statement["Resource"],
        json!([
            { "Fn::GetAtt": [logical::BACKUP_BUCKET, "Arn"] },
            { "Fn::Sub": "${BackupBucket.Arn}/*" },
        ])
    );
}

#[test]
fn bucket_rules_never_expire_current_backups_by_age() {
    // An idle cluster writes no new backup; age-based expiry would delete its only one.
    let template = default_template();
    let rules = resource(&template, logical::BACKUP_BUCKET)["Properties"]["LifecycleConfiguration"]
        ["Rules"]
        .as_array()
        .expect("the bucket has lifecycle rules")
        .clone();
    for rule in rules {
        assert!(rule.get("ExpirationInDays").is_none(), "{rule}");
        assert!(rule.get("ExpirationDate").is_none(), "{rule}");
    }
}

#[test]
fn backups_survive_deleting_the_stack() {
    let template = default_template();
    assert_eq!(
        resource(&template, logical::BACKUP_BUCKET)["DeletionPolicy"],
        "Retain"
    );
}

#[test]
fn every_alarm_notifies_a_topic_with_an_email_subscription() {
    let template = default_template();
    let alarms = of_type(&template, "AWS::CloudWatch::Alarm");
    assert!(alarms.len() >= 5);
    for (id, alarm) in alarms {
        assert_eq!(
            alarm["Properties"]["AlarmActions"],
            json!([{ "Ref": logical::ALARM_TOPIC }]),
            "{id}"
        );
    }
    let subscriptions = of_type(&template, "AWS::SNS::Subscription");
    assert_eq!(subscriptions.len(), 1);
    let subscription = &subscriptions[0].1["Properties"];
    assert_eq!(
        subscription["TopicArn"],
        json!({ "Ref": logical::ALARM_TOPIC })
    );
    assert_eq!(subscription["Protocol"], "email");
    assert_eq!(
        subscription["Endpoint"],
        json!({ "Ref": parameters::ALARM_EMAIL })
    );
}

#[test]
fn alarm_email_is_asked_for_when_not_given() {
    let template = default_template();
    assert!(template["Parameters"][parameters::ALARM_EMAIL]
        .get("Default")
        .is_none());
    let given = template_for(&everything_options());
    assert_eq!(
        given["Parameters"][parameters::ALARM_EMAIL]["Default"],
        "ops@example.com"
    );
}

#[test]
fn backups_that_stop_raise_an_alarm() {
    let template = default_template();
    let alarm = &resource(&template, "BackupStaleAlarm")["Properties"];
    assert_eq!(
        alarm["MetricName"],
        etcd_aws_template::names::metrics::BACKUP_AGE
    );
    assert_eq!(alarm["TreatMissingData"], "breaching");
    // Three missed 15-minute runs.
    assert_eq!(alarm["Threshold"], json!(2700.0));
}

/// Physical-name properties: set to a constant, they would collide between two stacks
/// in one account and region.
const NAME_PROPERTIES: &[&str] = &[
    "AutoScalingGroupName",
    "BucketName",
    "QueueName",
    "FunctionName",
    "RoleName",
    "TopicName",
    "LogGroupName",
    "DashboardName",
    "Name",
    "LaunchTemplateName",
    "GroupName",
    "InstanceProfileName",
    "AlarmName",
    "ManagedPolicyName",
];

/// A name as a stack named `stack` would give it: refs to the stack's own resources are
/// unique to the stack, and so is `${AWS::StackName}`.
fn resolve_name(value: &Value, stack: &str) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Object(map) if map.contains_key("Fn::Sub") => map["Fn::Sub"]
            .as_str()
            .unwrap_or_default()
            .replace("${AWS::StackName}", stack),
        Value::Object(map) if map.contains_key("Ref") => format!("{stack}:{}", map["Ref"]),
        other => format!("{stack}:{other}"),
    }
}

#[test]
fn physical_names_differ_between_two_stacks() {
    for template in [default_template(), template_for(&everything_options())] {
        for (id, body) in resources(&template) {
            // Event source mappings name the function they feed, not themselves.
            if body["Type"] == "AWS::Lambda::EventSourceMapping"
                || body["Type"] == "AWS::Lambda::Permission"
            {
                continue;
            }
            let Some(properties) = body["Properties"].as_object() else {
                continue;
            };
            for key in NAME_PROPERTIES {
                if let Some(name) = properties.get(*key) {
                    assert_ne!(
                        resolve_name(name, "etcd-a"),
                        resolve_name(name, "etcd-b"),
                        "{id}.{key} is the same in two stacks"
                    );
                }
            }
        }
    }
}

#[test]
fn creation_waits_for_every_node_to_signal() {
    for (options, count) in [(Options::default(), 3), (everything_options(), 5)] {
        let template = template_for(&options);
        let group = resource(&template, logical::AUTO_SCALING_GROUP);
        assert_eq!(group["CreationPolicy"]["ResourceSignal"]["Count"], count);
        assert_eq!(group["Properties"]["MinSize"], count.to_string());
        assert_eq!(group["Properties"]["DesiredCapacity"], count.to_string());
    }
}

#[test]
fn rolling_update_adds_one_signalled_node_before_removing_one() {
    let template = default_template();
    let group = resource(&template, logical::AUTO_SCALING_GROUP);
    let update = &group["UpdatePolicy"]["AutoScalingRollingUpdate"];
    assert_eq!(update["MaxBatchSize"], 1);
    assert_eq!(update["MinInstancesInService"], 3);
    assert_eq!(update["WaitOnResourceSignals"], true);
    assert_eq!(group["Properties"]["MaxSize"], "4");
}

#[test]
fn node_health_comes_from_the_load_balancer() {
    let template = default_template();
    let group = &resource(&template, logical::AUTO_SCALING_GROUP)["Properties"];
    assert_eq!(group["HealthCheckType"], "ELB");
    assert_eq!(
        group["TargetGroupARNs"],
        json!([{ "Ref": logical::TARGET_GROUP }])
    );
}

#[test]
fn load_balancer_health_check_asks_the_agents_readiness_so_no_client_meets_a_learner() {
    let template = default_template();
    let target_group = &resource(&template, logical::TARGET_GROUP)["Properties"];
    assert_eq!(target_group["HealthCheckPath"], "/ready");
    assert_eq!(target_group["Port"], 2379);
    let balancer = &resource(&template, logical::LOAD_BALANCER)["Properties"];
    assert_eq!(balancer["Scheme"], "internal");
}

#[test]
fn functions_run_rust_on_provided_al2023_inside_the_vpc() {
    let template = default_template();
    for id in [logical::LIFECYCLE_FUNCTION, logical::BACKUP_FUNCTION] {
        let function = &resource(&template, id)["Properties"];
        assert_eq!(function["Runtime"], functions::RUNTIME);
        assert_eq!(function["Handler"], functions::HANDLER);
        assert_eq!(function["Architectures"], json!(["arm64"]));
        assert_eq!(
            function["VpcConfig"]["SecurityGroupIds"],
            json!([{ "Ref": logical::FUNCTION_SECURITY_GROUP }])
        );
        let variables = &function["Environment"]["Variables"];
        for name in [env::GROUP_NAME, env::BACKUP_BUCKET, env::BACKUP_PREFIX] {
            assert!(variables.get(name).is_some(), "{id} lacks {name}");
        }
    }
}

#[test]
fn functions_may_reach_etcd_client_port_on_the_nodes() {
    let template = default_template();
    let allowed = of_type(&template, "AWS::EC2::SecurityGroupIngress")
        .into_iter()
        .any(|(_, rule)| {
            rule["Properties"]["GroupId"] == json!({ "Ref": logical::NODE_SECURITY_GROUP })
                && rule["Properties"]["SourceSecurityGroupId"]
                    == json!({ "Ref": logical::FUNCTION_SECURITY_GROUP })
                && rule["Properties"]["FromPort"] == 2379
        });
    assert!(allowed);
}

#[test]
fn reconcile_schedule_sends_the_reconcile_event_to_the_lifecycle_function() {
    let template = default_template();
    let rule = &resource(&template, "ReconcileSchedule")["Properties"];
    let target = &rule["Targets"][0];
    assert_eq!(
        target["Arn"],
        json!({ "Fn::GetAtt": [logical::LIFECYCLE_FUNCTION, "Arn"] })
    );
    let input: Value = serde_json::from_str(target["Input"].as_str().unwrap_or_default())
        .expect("the reconcile input is JSON");
    assert_eq!(input, json!({ "reconcile": true }));
}

#[test]
fn backup_schedule_invokes_the_backup_function() {
    let template = default_template();
    let rule = &resource(&template, "BackupSchedule")["Properties"];
    assert_eq!(rule["ScheduleExpression"], "rate(15 minutes)");
    assert_eq!(
        rule["Targets"][0]["Arn"],
        json!({ "Fn::GetAtt": [logical::BACKUP_FUNCTION, "Arn"] })
    );
}

#[test]
fn user_data_verifies_the_etcd_archive_before_installing_it() {
    let script = user_data_script(&default_template());
    let check = script
        .find(r#"fetch_verified "$ETCD_URL" "$ETCD_SHA256""#)
        .expect("fetches etcd and checks its checksum");
    let unpack = script.find("tar -xzf").expect("unpacks etcd");
    assert!(check < unpack);
    assert!(script.contains("etcd-v3.5.30-linux-arm64.tar.gz"));
    assert!(script.contains("ETCD_SHA256='${EtcdSha256}'"));
}

#[test]
fn user_data_runs_the_agent_under_systemd_with_the_project_environment() {
    let script = user_data_script(&default_template());
    for line in [
        "ExecStart=/opt/etcd-aws/bin/etcd-aws",
        "Restart=always",
        "Environment=AWS_REGION=${AWS::Region}",
        "Environment=ETCD_BACKUP_BUCKET=${BackupBucket}",
        "Environment=ETCD_BACKUP_PREFIX=backups/",
        "Environment=ETCD_DATA_DIR=/var/lib/etcd",
        "Environment=ETCD_AWS_LOG_FORMAT=json",
        "Environment=PATH=/opt/etcd-aws/bin:",
        "systemctl enable --now etcd-aws.service",
    ] {
        assert!(script.contains(line), "user-data lacks {line:?}");
    }
}

#[test]
fn user_data_signals_success_only_from_the_agents_ready_file() {
    let script = user_data_script(&default_template());
    let success: Vec<&str> = script
        .lines()
        .filter(|l| l.contains("--status SUCCESS"))
        .collect();
    assert_eq!(success.len(), 1, "one place signals success");
    let ready_check = script
        .find("if [ -f '/run/etcd-aws/ready' ]")
        .expect("waits for the ready file");
    let signal = script.find("--status SUCCESS").unwrap_or(0);
    assert!(ready_check < signal);
    assert!(script.contains("Environment=ETCD_AWS_READY_FILE=/run/etcd-aws/ready"));
}

#[test]
fn user_data_has_no_unfilled_markers_and_no_shell_braces_that_sub_would_eat() {
    let script = user_data_script(&default_template());
    let leftover: Vec<&str> = script
        .split('@')
        .skip(1)
        .step_by(2)
        .filter(|piece| {
            !piece.is_empty() && piece.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        })
        .collect();
    assert!(leftover.is_empty(), "unfilled markers: {leftover:?}");
    let mut names = Vec::new();
    references(&json!({ "Fn::Sub": script }), &mut names);
    for name in names {
        assert!(
            name.starts_with("AWS::")
                || [
                    "ArtifactBucket",
                    "EtcdSha256",
                    parameters::AGENT_SHA256,
                    "BackupBucket",
                    parameters::CLUSTER_CA_SECRET_ARN,
                    parameters::FUNCTIONS_CLIENT_SECRET_ARN,
                    parameters::QUOTA_BACKEND_BYTES,
                    parameters::RESTORE_LEASES,
                    logical::NODE_LOGS,
                    logical::LOAD_BALANCER,
                    logical::ORDER_SIGNING_KEY,
                    logical::NODE_ROLE,
                ]
                .contains(&name.as_str()),
            "user-data substitutes unknown ${{{name}}}"
        );
    }
}

#[test]
fn every_reference_names_a_parameter_or_resource_of_the_template() {
    for template in [default_template(), template_for(&everything_options())] {
        let mut names = Vec::new();
        references(&template, &mut names);
        for name in names {
            let known = name.starts_with("AWS::")
                || template["Parameters"].get(&name).is_some()
                || template["Resources"].get(&name).is_some();
            assert!(known, "reference to undefined {name}");
        }
    }
}

#[test]
fn endpoints_mode_has_no_route_to_the_internet() {
    let template = template_for(&endpoints_options());
    assert!(of_type(&template, "AWS::EC2::InternetGateway").is_empty());
    assert!(of_type(&template, "AWS::EC2::NatGateway").is_empty());
    assert!(of_type(&template, "AWS::EC2::Route").is_empty());
    let interface_endpoints = of_type(&template, "AWS::EC2::VPCEndpoint")
        .into_iter()
        .filter(|(_, e)| e["Properties"]["VpcEndpointType"] == "Interface")
        .count();
    assert!(interface_endpoints >= 5);
}

#[test]
fn nat_mode_routes_private_subnets_through_one_nat_gateway_and_has_no_interface_endpoints() {
    let template = template_for(&everything_options());
    assert_eq!(of_type(&template, "AWS::EC2::NatGateway").len(), 1);
    assert_eq!(interface_endpoints(&template), 0);
}

#[test]
fn every_scanner_skip_carries_a_written_reason() {
    for template in [default_template(), template_for(&everything_options())] {
        for (id, body) in resources(&template) {
            let skips = body["Metadata"]["checkov"]["skip"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for skip in skips {
                let reason = skip["comment"].as_str().unwrap_or_default();
                assert!(
                    reason.len() > 30,
                    "{id} skips {} without a reason",
                    skip["id"]
                );
            }
        }
    }
}

#[test]
fn outputs_name_the_client_endpoint_bucket_queue_and_functions() {
    let template = default_template();
    for output in [
        "ClientEndpoint",
        "BackupBucketName",
        "LifecycleQueueUrl",
        "LifecycleFunctionName",
        "BackupFunctionName",
        "MaintenanceFunctionName",
        "CaptureFunctionName",
        "ClientSecurityGroupId",
        "FunctionLogGroupNames",
    ] {
        assert!(
            template["Outputs"].get(output).is_some(),
            "no output {output}"
        );
    }
}

#[test]
fn the_function_log_groups_output_names_each_functions_log_group() {
    let template = default_template();
    assert_eq!(
        template["Outputs"]["FunctionLogGroupNames"]["Value"],
        json!({ "Fn::Sub": "${LifecycleFunctionLogs},${BackupFunctionLogs},${MaintenanceFunctionLogs},${CaptureFunctionLogs}" })
    );
    for group in [
        "LifecycleFunctionLogs",
        "BackupFunctionLogs",
        "MaintenanceFunctionLogs",
        "CaptureFunctionLogs",
    ] {
        assert_eq!(template["Resources"][group]["Type"], "AWS::Logs::LogGroup");
    }
}

#[test]
fn client_endpoint_is_an_https_url_on_the_load_balancer() {
    let template = default_template();
    assert_eq!(
        template["Outputs"]["ClientEndpoint"]["Value"],
        json!({ "Fn::Sub": "https://${ClientLoadBalancer.DNSName}:2379" })
    );
}

#[test]
fn compact_template_fits_the_cloudformation_limit_for_a_template_in_s3() {
    // Over the inline limit, a deploy stages the body in S3 (the CLI's stand-in
    // tests show it); the limit there is the one that cannot be worked around.
    for template in [default_template(), template_for(&everything_options())] {
        let body = etcd_aws_template::compact(&template).expect("renders");
        assert!(
            body.len() <= etcd_aws_template::TEMPLATE_URL_LIMIT,
            "{} bytes",
            body.len()
        );
    }
}

#[test]
fn yaml_and_json_renderings_hold_the_same_template() {
    let template = template_for(&everything_options());
    let yaml = etcd_aws_template::render(&template, etcd_aws_template::Format::Yaml)
        .expect("renders YAML");
    let back: Value = serde_norway::from_str(&yaml).expect("YAML parses");
    assert_eq!(back, template);
}

// TLS everywhere: who may read which secret, and what the nodes, the functions and the
// load balancer are told.

/// The resources each role may call `secretsmanager:GetSecretValue` on, by role.
/// Every statement that grants Secrets Manager actions: its role, its actions and
/// its resources.
fn secret_grants(template: &Value) -> Vec<(String, Vec<String>, Value)> {
    iam_statements(template)
        .into_iter()
        .filter(|(_, statement)| {
            strings(&statement["Action"])
                .iter()
                .any(|a| a.starts_with("secretsmanager:"))
        })
        .map(|(role, statement)| {
            (
                role,
                strings(&statement["Action"]),
                statement["Resource"].clone(),
            )
        })
        .collect()
}

/// The roles that may do anything with secrets, each statement's resources.
fn secret_readers(template: &Value) -> Vec<(String, Value)> {
    secret_grants(template)
        .into_iter()
        .map(|(role, _, resources)| (role, resources))
        .collect()
}

fn parameter_ref(name: &str) -> Value {
    json!([{ "Ref": name }])
}

const READ: &[&str] = &["secretsmanager:GetSecretValue"];
const READ_AND_WRITE: &[&str] = &[
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
];

fn grants_of(template: &Value, role: &str) -> Vec<(Vec<String>, Value)> {
    secret_grants(template)
        .into_iter()
        .filter(|(r, _, _)| r == role)
        .map(|(_, actions, resources)| (actions, resources))
        .collect()
}

fn grant(actions: &[&str], secret_parameter: &str) -> (Vec<String>, Value) {
    (
        actions.iter().map(|a| (*a).to_string()).collect(),
        parameter_ref(secret_parameter),
    )
}

#[test]
fn node_role_reads_the_cluster_ca_and_renews_the_functions_certificate_and_nothing_else() {
    for template in [default_template(), template_for(&everything_options())] {
        assert_eq!(
            grants_of(&template, logical::NODE_ROLE),
            vec![
                grant(READ, parameters::CLUSTER_CA_SECRET_ARN),
                grant(READ_AND_WRITE, parameters::FUNCTIONS_CLIENT_SECRET_ARN),
            ]
        );
    }
}

#[test]
fn each_function_role_reads_exactly_the_functions_client_secret() {
    for template in [default_template(), template_for(&everything_options())] {
        for function_role in [
            logical::LIFECYCLE_FUNCTION_ROLE,
            logical::BACKUP_FUNCTION_ROLE,
            logical::MAINTENANCE_FUNCTION_ROLE,
            logical::CAPTURE_FUNCTION_ROLE,
        ] {
            assert_eq!(
                grants_of(&template, function_role),
                vec![grant(READ, parameters::FUNCTIONS_CLIENT_SECRET_ARN)],
                "{function_role}"
            );
        }
    }
}

#[test]
fn no_role_but_the_node_role_can_reach_the_cluster_ca() {
    // Whoever holds the CA can mint a peer certificate and join the cluster.
    for template in [default_template(), template_for(&everything_options())] {
        let readers: Vec<String> = secret_readers(&template)
            .into_iter()
            .map(|(role, _)| role)
            .collect();
        assert_eq!(
            readers
                .iter()
                .filter(|r| r.as_str() != logical::NODE_ROLE)
                .count(),
            4,
            "only the node role and the four function roles read secrets: {readers:?}"
        );
        for (role, statement) in iam_statements(&template) {
            if role == logical::NODE_ROLE {
                continue;
            }
            let mut names = Vec::new();
            references(&statement, &mut names);
            assert!(
                !names.iter().any(|n| n == parameters::CLUSTER_CA_SECRET_ARN),
                "{role} may touch the cluster CA: {statement}"
            );
        }
    }
}

#[test]
fn secrets_need_kms_only_with_a_customer_key_only_through_secrets_manager_and_for_their_own_use() {
    let template = default_template();
    assert_eq!(
        template["Conditions"][conditions::SECRETS_USE_CUSTOMER_KEY],
        json!({ "Fn::Not": [{ "Fn::Equals": [{ "Ref": parameters::SECRETS_KMS_KEY_ARN }, ""] }] })
    );
    assert_eq!(
        template["Parameters"][parameters::SECRETS_KMS_KEY_ARN]["Default"],
        ""
    );
    // The backup bucket's key is another matter (tests/backup_encryption.rs).
    let backup_key = json!([{ "Fn::GetAtt": [logical::BACKUP_KEY, "Arn"] }]);
    let decrypts: Vec<(String, Value)> = iam_statements(&template)
        .into_iter()
        .filter(|(_, s)| strings(&s["Action"]).iter().any(|a| a.starts_with("kms:")))
        .filter(|(_, s)| s["Resource"] != backup_key)
        .collect();
    let mut uses: Vec<(String, Vec<String>, Value)> = Vec::new();
    for (role, statement) in decrypts {
        assert_eq!(
            statement["Resource"],
            parameter_ref(parameters::SECRETS_KMS_KEY_ARN),
            "{role}"
        );
        assert_eq!(
            statement["Condition"]["StringEquals"]["kms:ViaService"],
            json!({ "Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com" }),
            "{role}"
        );
        uses.push((
            role,
            strings(&statement["Action"]),
            statement["Condition"]["StringEquals"]["kms:EncryptionContext:SecretARN"].clone(),
        ));
    }
    uses.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    let decrypt = || vec!["kms:Decrypt".to_string()];
    let secret = |name: &str| json!({ "Ref": name });
    let mut expected = vec![
        (
            logical::NODE_ROLE.to_string(),
            decrypt(),
            secret(parameters::CLUSTER_CA_SECRET_ARN),
        ),
        // Writing the functions' renewed certificate encrypts it.
        (
            logical::NODE_ROLE.to_string(),
            vec!["kms:Decrypt".to_string(), "kms:GenerateDataKey".to_string()],
            secret(parameters::FUNCTIONS_CLIENT_SECRET_ARN),
        ),
        (
            logical::LIFECYCLE_FUNCTION_ROLE.to_string(),
            decrypt(),
            secret(parameters::FUNCTIONS_CLIENT_SECRET_ARN),
        ),
        (
            logical::BACKUP_FUNCTION_ROLE.to_string(),
            decrypt(),
            secret(parameters::FUNCTIONS_CLIENT_SECRET_ARN),
        ),
        (
            logical::MAINTENANCE_FUNCTION_ROLE.to_string(),
            decrypt(),
            secret(parameters::FUNCTIONS_CLIENT_SECRET_ARN),
        ),
        (
            logical::CAPTURE_FUNCTION_ROLE.to_string(),
            decrypt(),
            secret(parameters::FUNCTIONS_CLIENT_SECRET_ARN),
        ),
    ];
    expected.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    assert_eq!(uses, expected);
    // Without a customer key the statement disappears.
    let conditional = resources(&template)
        .values()
        .filter(|body| body["Type"] == "AWS::IAM::Role")
        .flat_map(|body| {
            body["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|s| s.get("Fn::If").is_some())
        .collect::<Vec<_>>();
    // One per secret the node role reads, one per function role.
    assert_eq!(conditional.len(), 6);
    for statement in conditional {
        assert_eq!(statement["Fn::If"][0], conditions::SECRETS_USE_CUSTOMER_KEY);
        assert_eq!(statement["Fn::If"][2], json!({ "Ref": "AWS::NoValue" }));
    }
}

#[test]
fn secret_arns_are_parameters_the_deployer_fills_in() {
    let template = default_template();
    for name in [
        parameters::CLUSTER_CA_SECRET_ARN,
        parameters::FUNCTIONS_CLIENT_SECRET_ARN,
    ] {
        let parameter = &template["Parameters"][name];
        assert_eq!(parameter["Type"], "String", "{name}");
        assert!(parameter.get("Default").is_none(), "{name} has a default");
        assert!(
            parameter["AllowedPattern"]
                .as_str()
                .is_some_and(|p| p.contains(":secretsmanager:")),
            "{name}"
        );
    }
}

#[test]
fn functions_get_the_client_secret_arn_and_never_the_ca() {
    let template = default_template();
    for id in [logical::LIFECYCLE_FUNCTION, logical::BACKUP_FUNCTION] {
        let variables = &resource(&template, id)["Properties"]["Environment"]["Variables"];
        assert_eq!(
            variables[env::TLS_CLIENT_SECRET],
            json!({ "Ref": parameters::FUNCTIONS_CLIENT_SECRET_ARN }),
            "{id}"
        );
        let mut names = Vec::new();
        references(variables, &mut names);
        assert!(
            !names.iter().any(|n| n == parameters::CLUSTER_CA_SECRET_ARN),
            "{id}"
        );
    }
}

#[test]
fn user_data_gives_the_agent_the_secrets_the_balancer_name_and_its_ports() {
    let script = user_data_script(&default_template());
    for line in [
        "Environment=ETCD_AWS_TLS_CA_SECRET=${ClusterCaSecretArn}",
        // The nodes renew the functions' certificate in its secret.
        "Environment=ETCD_AWS_TLS_FUNCTIONS_SECRET=${FunctionsClientSecretArn}",
        "Environment=ETCD_AWS_TLS_DNS_NAMES=${ClientLoadBalancer.DNSName}",
        "Environment=ETCD_AWS_METRICS_PORT=2381",
        "Environment=ETCD_AWS_READY_PORT=2382",
        "Environment=ETCD_AWS_TLS_DIR=/var/lib/etcd-aws/tls",
        "install -d -m 0700 '/var/lib/etcd-aws/tls'",
    ] {
        assert!(script.contains(line), "user-data lacks {line:?}");
    }
}

#[test]
fn health_check_asks_the_agents_plain_http_ready_port() {
    let template = default_template();
    let target_group = &resource(&template, logical::TARGET_GROUP)["Properties"];
    assert_eq!(target_group["HealthCheckProtocol"], "HTTP");
    assert_eq!(target_group["HealthCheckPort"], ports::READY.to_string());
    assert_eq!(ports::READY, 2382);
    assert_eq!(target_group["HealthCheckPath"], "/ready");
}

fn rule_exists(
    template: &Value,
    kind: &str,
    group: &str,
    peer_key: &str,
    peer: &str,
    port: u16,
) -> bool {
    of_type(template, kind).into_iter().any(|(_, rule)| {
        let p = &rule["Properties"];
        p["GroupId"] == json!({ "Ref": group })
            && p[peer_key] == json!({ "Ref": peer })
            && p["FromPort"] == port
            && p["ToPort"] == port
            && p["IpProtocol"] == "tcp"
    })
}

#[test]
fn load_balancer_may_reach_the_ready_port_of_the_nodes() {
    for template in [default_template(), template_for(&everything_options())] {
        assert!(rule_exists(
            &template,
            "AWS::EC2::SecurityGroupIngress",
            logical::NODE_SECURITY_GROUP,
            "SourceSecurityGroupId",
            logical::LOAD_BALANCER_SECURITY_GROUP,
            ports::READY,
        ));
        assert!(rule_exists(
            &template,
            "AWS::EC2::SecurityGroupEgress",
            logical::LOAD_BALANCER_SECURITY_GROUP,
            "DestinationSecurityGroupId",
            logical::NODE_SECURITY_GROUP,
            ports::READY,
        ));
    }
}

#[test]
fn only_the_load_balancer_may_reach_the_ready_port() {
    let template = default_template();
    let sources: Vec<Value> = of_type(&template, "AWS::EC2::SecurityGroupIngress")
        .into_iter()
        .filter(|(_, rule)| rule["Properties"]["FromPort"] == ports::READY)
        .map(|(_, rule)| rule["Properties"]["SourceSecurityGroupId"].clone())
        .collect();
    assert_eq!(
        sources,
        vec![json!({ "Ref": logical::LOAD_BALANCER_SECURITY_GROUP })]
    );
}

#[test]
fn nothing_outside_a_node_may_reach_etcds_metrics_port() {
    let template = template_for(&everything_options());
    let opened: Vec<&String> = of_type(&template, "AWS::EC2::SecurityGroupIngress")
        .into_iter()
        .filter(|(_, rule)| rule["Properties"]["FromPort"] == ports::METRICS)
        .map(|(id, _)| id)
        .collect();
    assert!(opened.is_empty(), "{opened:?}");
}

#[test]
fn client_listener_passes_tcp_through_so_tls_ends_at_etcd() {
    let template = default_template();
    let listener = &resource(&template, "ClientListener")["Properties"];
    assert_eq!(listener["Protocol"], "TCP");
    assert_eq!(listener["Port"], ports::CLIENT);
    assert!(listener.get("Certificates").is_none());
}

#[test]
fn endpoints_mode_reaches_secrets_manager_without_the_internet() {
    let template = template_for(&endpoints_options());
    let endpoint = &resource(&template, "SecretsManagerEndpoint")["Properties"];
    assert_eq!(
        endpoint["ServiceName"],
        json!({ "Fn::Sub": "com.amazonaws.${AWS::Region}.secretsmanager" })
    );
    assert_eq!(endpoint["PrivateDnsEnabled"], true);
}

#[test]
fn restored_leases_are_revoked_unless_the_stack_says_keep() {
    let template = default_template();
    let leases = &template["Parameters"][parameters::RESTORE_LEASES];
    assert_eq!(leases["Default"], "revoke");
    assert_eq!(leases["AllowedValues"], json!(["revoke", "keep"]));
    let keeping = template_for(&Options {
        restore_leases: LeasePolicy::Keep,
        ..Options::default()
    });
    assert_eq!(
        keeping["Parameters"][parameters::RESTORE_LEASES]["Default"],
        "keep"
    );
}

#[test]
fn the_nodes_get_the_stacks_lease_policy() {
    let script = user_data_script(&default_template());
    let line = format!(
        "Environment={}=${{{}}}",
        env::RESTORE_LEASES,
        parameters::RESTORE_LEASES
    );
    assert!(script.contains(&line), "user-data lacks {line}");
}

#[test]
fn in_an_existing_vpc_the_stack_creates_no_network_and_places_everything_in_its_subnets() {
    let template = template_for(&existing_vpc_options());
    for network in [
        "AWS::EC2::VPC",
        "AWS::EC2::Subnet",
        "AWS::EC2::VPCEndpoint",
        "AWS::EC2::NatGateway",
        "AWS::EC2::InternetGateway",
        "AWS::EC2::RouteTable",
    ] {
        assert!(of_type(&template, network).is_empty(), "{network} created");
    }
    let parameters = &template["Parameters"];
    assert_eq!(parameters[parameters::VPC_ID]["Type"], "AWS::EC2::VPC::Id");
    assert_eq!(
        parameters[parameters::SUBNET_IDS]["Type"],
        "List<AWS::EC2::Subnet::Id>"
    );
    let subnets = json!({ "Ref": parameters::SUBNET_IDS });
    let group = &resource(&template, logical::AUTO_SCALING_GROUP)["Properties"];
    assert_eq!(group["VPCZoneIdentifier"], subnets);
    let balancer = &resource(&template, logical::LOAD_BALANCER)["Properties"];
    assert_eq!(balancer["Subnets"], subnets);
    for (id, security_group) in of_type(&template, "AWS::EC2::SecurityGroup") {
        assert_eq!(
            security_group["Properties"]["VpcId"],
            json!({ "Ref": parameters::VPC_ID }),
            "{id}"
        );
    }
}

fn interface_endpoints(template: &Value) -> usize {
    of_type(template, "AWS::EC2::VPCEndpoint")
        .into_iter()
        .filter(|(_, e)| e["Properties"]["VpcEndpointType"] == "Interface")
        .count()
}

#[test]
fn a_new_vpc_reaches_the_aws_apis_through_one_nat_gateway_by_default() {
    let template = default_template();
    assert_eq!(of_type(&template, "AWS::EC2::NatGateway").len(), 1);
    assert_eq!(interface_endpoints(&template), 0);
}

#[test]
fn an_existing_vpc_gets_no_nat_gateway_whatever_the_network_mode() {
    for network_mode in [
        etcd_aws_template::options::NetworkMode::Nat,
        etcd_aws_template::options::NetworkMode::Endpoints,
    ] {
        let template = template_for(&Options {
            network_mode,
            ..existing_vpc_options()
        });
        assert!(of_type(&template, "AWS::EC2::NatGateway").is_empty());
        assert!(of_type(&template, "AWS::EC2::VPCEndpoint").is_empty());
    }
}

#[test]
fn session_manager_costs_nothing_unless_asked_for() {
    let endpoint_services = |template: &Value| -> Vec<String> {
        of_type(template, "AWS::EC2::VPCEndpoint")
            .into_iter()
            .map(|(_, e)| e["Properties"]["ServiceName"].to_string())
            .collect()
    };
    let default = default_template();
    assert!(
        !endpoint_services(&default)
            .iter()
            .any(|s| s.contains("ssm") || s.contains("ec2messages")),
        "{:?}",
        endpoint_services(&default)
    );
    let role = &resource(&default, logical::NODE_ROLE)["Properties"];
    assert_eq!(role["ManagedPolicyArns"], json!([]));
    let asked = template_for(&Options {
        session_manager: true,
        ..endpoints_options()
    });
    let services = endpoint_services(&asked);
    for service in ["ssm", "ssmmessages", "ec2messages"] {
        assert!(
            services
                .iter()
                .any(|s| s.contains(&format!(".{service}\""))),
            "{service}: {services:?}"
        );
    }
    let role = &resource(&asked, logical::NODE_ROLE)["Properties"];
    assert_eq!(role["ManagedPolicyArns"].as_array().map(Vec::len), Some(1));
}

/// A custom metric costs the same whether anyone reads it: every metric the
/// programs publish is read by an alarm or the dashboard.
#[test]
fn every_published_metric_is_read_by_an_alarm_or_the_dashboard() {
    let template = default_template();
    let readers: String = ["AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard"]
        .into_iter()
        .flat_map(|kind| of_type(&template, kind))
        .map(|(_, resource)| resource["Properties"].to_string())
        .collect();
    for metric in etcd_aws_core::contract::metrics::PUBLISHED {
        // A name in an alarm's JSON, or in the dashboard's body (a JSON string).
        let named = format!("\"{metric}\"");
        let named_in_body = format!("\\\"{metric}\\\"");
        assert!(
            readers.contains(&named) || readers.contains(&named_in_body),
            "{metric} is published but nothing reads it"
        );
    }
}

#[test]
fn nodes_pay_for_one_minute_ec2_metrics_only_when_something_reads_them() {
    let template = default_template();
    let readers: String = ["AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard"]
        .into_iter()
        .flat_map(|kind| of_type(&template, kind))
        .map(|(_, resource)| resource["Properties"].to_string())
        .collect();
    let read = readers.contains("AWS/EC2");
    let (_, launch) = of_type(&template, "AWS::EC2::LaunchTemplate")
        .into_iter()
        .next()
        .expect("a launch template");
    let detailed = launch["Properties"]["LaunchTemplateData"]["Monitoring"]["Enabled"] == true;
    assert_eq!(
        detailed, read,
        "detailed monitoring (seven custom metrics a node) is on: {detailed}; an alarm or the dashboard reads AWS/EC2: {read}"
    );
}
