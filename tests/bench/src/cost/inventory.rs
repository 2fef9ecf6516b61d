//! What a generated stack holds that costs money, read from the template
//! itself: the nodes and their volumes, the load balancer, the endpoints and
//! NAT gateways, the functions with their memory and schedules, the alarms and
//! dashboards. Pure: the template in, the counts out.

use etcd_aws_template::options::Schedule;
use serde_json::Value;

use super::prices::HOURS_PER_MONTH;

/// The secrets `etcd-aws-cfn deploy` makes before the stack (the CA and the
/// functions' client certificate): outside the template, on the bill.
pub const DEPLOY_SECRETS: u32 = 2;
/// The metrics EC2's detailed (one-minute) monitoring adds per instance.
pub const DETAILED_MONITORING_METRICS: u32 = 7;

#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    pub nodes: u32,
    pub instance_type: String,
    pub volume_gb: f64,
    pub detailed_monitoring: bool,
    pub load_balancers: u32,
    /// Interface endpoints times the zones each is in.
    pub interface_endpoint_zones: u32,
    pub nat_gateways: u32,
    pub functions: Vec<Function>,
    pub alarms: u32,
    pub dashboards: u32,
    /// Log metric filters: each defines a custom metric.
    pub metric_filters: u32,
    /// Customer managed KMS keys (the node logs' key).
    pub kms_keys: u32,
    pub secrets: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    /// The template's logical id (`CaptureFunction`).
    pub id: String,
    pub memory_mb: f64,
    pub arm64: bool,
    /// Runs a month its schedules start; 0 for one fed by a queue only.
    pub scheduled_runs_per_month: f64,
    pub timeout_seconds: u64,
    /// The settings the template gives it as plain values (names and ARNs
    /// of the stack's resources left out).
    pub environment: Vec<(String, String)>,
}

impl Inventory {
    pub fn of(template: &Value) -> Inventory {
        let resources = template["Resources"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let of_type = |kind: &str| -> Vec<(String, Value)> {
            resources
                .iter()
                .filter(|(_, r)| r["Type"] == kind)
                .map(|(id, r)| (id.clone(), r.clone()))
                .collect()
        };
        let group = of_type("AWS::AutoScaling::AutoScalingGroup");
        let nodes = group
            .first()
            .and_then(|(_, g)| g["Properties"]["DesiredCapacity"].as_str()?.parse().ok())
            .unwrap_or(0);
        let launch = of_type("AWS::EC2::LaunchTemplate");
        let data = launch
            .first()
            .map(|(_, l)| l["Properties"]["LaunchTemplateData"].clone())
            .unwrap_or_default();
        let subnets = subnet_count(template);
        let schedules: Vec<(String, f64)> = of_type("AWS::Events::Rule")
            .iter()
            .filter_map(|(_, rule)| {
                let runs = runs_per_month(rule["Properties"]["ScheduleExpression"].as_str()?)?;
                let target = rule["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0]
                    .as_str()?
                    .to_owned();
                Some((target, runs))
            })
            .collect();
        Inventory {
            nodes,
            instance_type: data["InstanceType"].as_str().unwrap_or_default().to_owned(),
            volume_gb: data["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"]
                .as_f64()
                .unwrap_or(0.0),
            detailed_monitoring: data["Monitoring"]["Enabled"] == true,
            load_balancers: of_type("AWS::ElasticLoadBalancingV2::LoadBalancer").len() as u32,
            interface_endpoint_zones: of_type("AWS::EC2::VPCEndpoint")
                .iter()
                .filter(|(_, e)| e["Properties"]["VpcEndpointType"] == "Interface")
                .count() as u32
                * subnets,
            nat_gateways: of_type("AWS::EC2::NatGateway").len() as u32,
            functions: of_type("AWS::Lambda::Function")
                .into_iter()
                .map(|(id, f)| Function {
                    memory_mb: f["Properties"]["MemorySize"].as_f64().unwrap_or(128.0),
                    arm64: f["Properties"]["Architectures"][0] == "arm64",
                    // Lambda's default when the template gives none.
                    timeout_seconds: f["Properties"]["Timeout"].as_u64().unwrap_or(3),
                    environment: f["Properties"]["Environment"]["Variables"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter_map(|(name, value)| {
                            Some((name.clone(), value.as_str()?.to_owned()))
                        })
                        .collect(),
                    scheduled_runs_per_month: schedules
                        .iter()
                        .filter(|(target, _)| *target == id)
                        .map(|(_, runs)| runs)
                        .sum(),
                    id,
                })
                .collect(),
            alarms: of_type("AWS::CloudWatch::Alarm").len() as u32,
            dashboards: of_type("AWS::CloudWatch::Dashboard").len() as u32,
            metric_filters: of_type("AWS::Logs::MetricFilter").len() as u32,
            kms_keys: of_type("AWS::KMS::Key").len() as u32,
            secrets: DEPLOY_SECRETS,
        }
    }

    pub fn function(&self, id: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.id == id)
    }
}

/// The private subnets the stack's interface endpoints span.
fn subnet_count(template: &Value) -> u32 {
    let endpoint_subnets = template["Resources"]
        .as_object()
        .into_iter()
        .flat_map(|r| r.values())
        .find(|r| r["Properties"]["VpcEndpointType"] == "Interface")
        .map(|e| e["Properties"]["SubnetIds"].as_array().map_or(1, Vec::len));
    endpoint_subnets.unwrap_or(0) as u32
}

/// How often an EventBridge rate expression fires in a month (of 730 hours);
/// `None` for a cron expression or one that does not parse.
pub fn runs_per_month(expression: &str) -> Option<f64> {
    let interval = expression.parse::<Schedule>().ok()?.interval_seconds()?;
    (interval > 0).then(|| HOURS_PER_MONTH * 3600.0 / interval as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_aws_template::options::{NetworkMode, Options};

    fn template(options: &Options) -> Value {
        etcd_aws_template::template(options).unwrap_or_default()
    }

    #[test]
    fn rate_expressions_become_runs_a_month() {
        assert_eq!(runs_per_month("rate(1 minute)"), Some(43_800.0));
        assert_eq!(runs_per_month("rate(15 minutes)"), Some(2_920.0));
        assert_eq!(runs_per_month("rate(1 hour)"), Some(730.0));
        assert_eq!(runs_per_month("cron(0 * * * ? *)"), None);
    }

    #[test]
    fn an_endpoints_stack_has_three_nodes_six_endpoints_in_three_zones_and_no_nat() {
        let inventory = Inventory::of(&template(&Options {
            network_mode: NetworkMode::Endpoints,
            ..Options::default()
        }));
        assert_eq!(inventory.nodes, 3);
        assert_eq!(inventory.instance_type, "t4g.medium");
        // ec2, autoscaling, cloudformation, secretsmanager, logs and kms.
        assert_eq!(inventory.interface_endpoint_zones, 6 * 3);
        assert_eq!(inventory.nat_gateways, 0);
        assert_eq!(inventory.load_balancers, 1);
        let capture = inventory.function("CaptureFunction");
        assert_eq!(capture.map(|f| f.scheduled_runs_per_month), Some(43_800.0));
    }

    #[test]
    fn a_function_keeps_its_timeout_and_its_plain_settings_but_no_references() {
        let inventory = Inventory::of(&template(&Options::default()));
        let capture = inventory.function("CaptureFunction");
        assert_eq!(capture.map(|f| f.timeout_seconds), Some(900));
        let environment = capture.map(|f| f.environment.clone()).unwrap_or_default();
        assert!(
            environment
                .iter()
                .any(|(name, value)| name == "ETCD_BACKUP_REFRESH_AFTER" && value == "1800s"),
            "{environment:?}"
        );
        assert!(
            !environment
                .iter()
                .any(|(name, _)| name == "ETCD_BACKUP_BUCKET"),
            "{environment:?}"
        );
    }

    #[test]
    fn nat_mode_trades_the_endpoints_for_one_gateway_and_pays_no_detailed_monitoring() {
        let inventory = Inventory::of(&template(&Options {
            network_mode: NetworkMode::Nat,
            ..Options::default()
        }));
        assert_eq!(inventory.interface_endpoint_zones, 0);
        assert_eq!(inventory.nat_gateways, 1);
        assert!(!inventory.detailed_monitoring);
    }
}
