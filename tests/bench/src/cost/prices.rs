//! The price table the bill is computed with: AWS's public on-demand list
//! prices for us-east-1, as the project read them on the date below. Pinned
//! here so that a bill can be reproduced and compared; refresh the figures
//! (and the date) from AWS's pricing pages before budgeting with them.

/// When these prices were read.
pub const AS_OF: &str = "2026-12-07";
pub const REGION: &str = "us-east-1";
/// Hours in a month, as AWS's calculators count them.
pub const HOURS_PER_MONTH: f64 = 730.0;

/// On-demand Linux instance prices, per hour.
pub const INSTANCE_HOURLY: &[(&str, f64)] = &[
    ("t4g.small", 0.0168),
    ("t4g.medium", 0.0336),
    ("t4g.large", 0.0672),
    ("m7g.large", 0.0816),
    ("m7i.large", 0.1008),
    ("m6i.large", 0.096),
];
/// EBS gp3, per GB-month.
pub const GP3_GB_MONTH: f64 = 0.08;
/// Network load balancer, per hour, and per NLCU-hour.
pub const NLB_HOURLY: f64 = 0.0225;
/// An interface endpoint, per hour in each availability zone, and per GB processed.
pub const INTERFACE_ENDPOINT_AZ_HOURLY: f64 = 0.01;
pub const INTERFACE_ENDPOINT_GB: f64 = 0.01;
/// A NAT gateway, per hour, and per GB processed.
pub const NAT_HOURLY: f64 = 0.045;
pub const NAT_GB: f64 = 0.045;
/// Lambda, per GB-second (arm64, x86_64) and per request.
pub const LAMBDA_GB_SECOND_ARM64: f64 = 0.000_013_333_4;
pub const LAMBDA_GB_SECOND_X86_64: f64 = 0.000_016_666_7;
pub const LAMBDA_REQUEST: f64 = 0.000_000_2;
/// S3 Standard: PUT, COPY, POST and LIST requests; GET and the rest; storage.
pub const S3_PUT_CLASS_REQUEST: f64 = 0.000_005;
pub const S3_GET_CLASS_REQUEST: f64 = 0.000_000_4;
pub const S3_GB_MONTH: f64 = 0.023;
/// CloudWatch: a custom metric, a standard alarm, a dashboard (the first
/// three of an account are free; counted here), log ingestion per GB.
pub const CLOUDWATCH_METRIC_MONTH: f64 = 0.30;
pub const CLOUDWATCH_ALARM_MONTH: f64 = 0.10;
pub const CLOUDWATCH_DASHBOARD_MONTH: f64 = 3.00;
pub const LOGS_INGESTED_GB: f64 = 0.50;
/// Secrets Manager: a secret per month, and per API call.
pub const SECRET_MONTH: f64 = 0.40;
pub const SECRET_API_CALL: f64 = 0.000_005;
/// KMS: a customer managed key per month.
pub const KMS_KEY_MONTH: f64 = 1.00;
/// X-Ray: per trace recorded beyond the free 100,000 a month.
pub const XRAY_TRACE: f64 = 0.000_005;
pub const XRAY_FREE_TRACES: f64 = 100_000.0;
/// Data between availability zones, per GB (each side pays $0.01).
pub const CROSS_AZ_GB: f64 = 0.02;

/// The hourly price of `instance_type`, when the table has it.
pub fn instance_hourly(instance_type: &str) -> Option<f64> {
    INSTANCE_HOURLY
        .iter()
        .find(|(name, _)| *name == instance_type)
        .map(|(_, price)| *price)
}
