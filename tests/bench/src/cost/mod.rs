//! `make cost`: what a stack costs a month. The stack's resources are read
//! from the template the generator makes ([`inventory`]), its requests, run
//! times and bytes are measured on the stand-in ([`measure`], scaled in
//! [`observed`]), and both are priced with a pinned, dated table ([`prices`])
//! into a bill ([`bill`]), one per way of deploying, idle and under writes;
//! [`render`] writes them as the cost section of docs/benchmarks.md.

pub mod bill;
pub mod inventory;
pub mod measure;
pub mod observed;
pub mod prices;
pub mod render;

use etcd_aws_template::options::{ExistingVpc, NetworkMode, Options};

/// One way of deploying the stack, as `etcd-aws-cfn deploy` is asked for it.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub name: String,
    pub options: Options,
}

/// The ways priced, the default first: a new VPC in each network mode, and
/// an existing VPC.
pub fn deployments() -> anyhow::Result<Vec<Deployment>> {
    let default_mode = Options::default().network_mode;
    let new_vpc = |mode: NetworkMode, what: &str| Deployment {
        name: format!(
            "new VPC, {what}{}",
            if mode == default_mode {
                " (the default)"
            } else {
                ""
            }
        ),
        options: Options {
            network_mode: mode,
            ..Options::default()
        },
    };
    let existing = ExistingVpc {
        vpc_id: "vpc-0a1b2c3d4e5f60718"
            .parse()
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        subnet_ids: "subnet-0000000a,subnet-0000000b,subnet-0000000c"
            .parse()
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    let mut new_vpcs = vec![
        new_vpc(NetworkMode::Nat, "one NAT gateway"),
        new_vpc(NetworkMode::Endpoints, "interface endpoints"),
    ];
    new_vpcs.sort_by_key(|deployment| deployment.options.network_mode != default_mode);
    Ok(new_vpcs
        .into_iter()
        .chain([Deployment {
            name: "existing VPC (--vpc-id)".into(),
            options: Options {
                existing_vpc: Some(existing),
                ..Options::default()
            },
        }])
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_deployment_comes_first_and_says_so() {
        let deployments = deployments().unwrap_or_default();
        assert_eq!(deployments.len(), 3);
        let first = &deployments[0];
        assert_eq!(first.options.network_mode, Options::default().network_mode);
        assert!(first.options.existing_vpc.is_none());
        assert!(first.name.ends_with("(the default)"), "{}", first.name);
        assert_eq!(
            deployments
                .iter()
                .filter(|d| d.name.contains("default"))
                .count(),
            1
        );
    }
}
