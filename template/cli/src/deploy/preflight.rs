//! Before a stack goes into a VPC that exists already: do its subnets hold
//! what the cluster needs? The stack creates no network there, so what it
//! needs must be there: subnets of that VPC in distinct zones, a way to S3
//! (the backups, the artifacts) and a way to the AWS APIs the nodes and
//! functions call. Everything CloudFormation would only find out an hour
//! later, as nodes that never signal, is checked here before anything is
//! created; what cannot be checked from outside (a firewall, a proxy) is
//! said.
//!
//! [`judge`] is the rule, pure; [`observe`] reads the VPC.

use std::collections::BTreeSet;

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::Filter;
use etcd_aws_io::aws::error as aws_error;
use etcd_aws_template::endpoints::INTERFACE_SERVICES;
use etcd_aws_template::options::ExistingVpc;

/// What the VPC holds, as far as the check needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The subnets asked for that exist.
    pub subnets: Vec<ObservedSubnet>,
    /// The interface endpoints of the VPC, by service (`ec2`, `logs`, ...).
    pub interface_endpoints: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedSubnet {
    pub id: String,
    pub vpc_id: String,
    pub availability_zone: String,
    /// The routes of the subnet's route table (its own, or the VPC's main one).
    pub routes: Vec<Route>,
}

/// What a route leads to, as far as reaching AWS goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A default route (0.0.0.0/0) through a NAT gateway, an internet
    /// gateway, a transit gateway or any other target: the APIs' public
    /// addresses are reachable, as far as routing can tell.
    Default(String),
    /// A gateway endpoint's prefix list (S3 or DynamoDB).
    GatewayEndpoint(String),
}

/// One line of the preflight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Ok(String),
    /// Not checkable from here; the deployer must make sure.
    Note(String),
    /// The stack would not work: nothing is created.
    Problem(String),
}

/// The rule: what `observed` means for a stack in `vpc`.
pub fn judge(vpc: &ExistingVpc, observed: &Observed) -> Vec<Finding> {
    let mut findings = Vec::new();
    let asked = vpc.subnet_ids.ids();
    for id in asked {
        match observed.subnets.iter().find(|s| &s.id == id) {
            None => findings.push(Finding::Problem(format!("subnet {id} does not exist"))),
            Some(subnet) if subnet.vpc_id != vpc.vpc_id.as_str() => {
                findings.push(Finding::Problem(format!(
                    "subnet {id} belongs to {}, not to {}",
                    subnet.vpc_id,
                    vpc.vpc_id.as_str()
                )))
            }
            Some(_) => {}
        }
    }
    let zones: BTreeSet<&str> = observed
        .subnets
        .iter()
        .map(|s| s.availability_zone.as_str())
        .collect();
    if zones.len() < observed.subnets.len() {
        findings.push(Finding::Problem(format!(
            "the subnets share availability zones ({}): a zone's loss would take more than one node; give subnets in {} distinct zones",
            zones.iter().copied().collect::<Vec<_>>().join(", "),
            asked.len()
        )));
    } else if observed.subnets.len() == asked.len() {
        findings.push(Finding::Ok(format!(
            "{} subnets of {} in distinct zones ({})",
            asked.len(),
            vpc.vpc_id.as_str(),
            zones.iter().copied().collect::<Vec<_>>().join(", ")
        )));
    }
    let s3_problem = observed
        .subnets
        .iter()
        .filter(|s| {
            !s.routes
                .iter()
                .any(|r| matches!(r, Route::Default(_) | Route::GatewayEndpoint(_)))
        })
        .map(|s| s.id.as_str())
        .collect::<Vec<_>>();
    if !s3_problem.is_empty() || observed.subnets.is_empty() {
        findings.push(Finding::Problem(format!(
            "subnets {} have no route to S3 (neither a default route nor a gateway endpoint): the nodes could not fetch etcd, nor restore a backup; add an S3 gateway endpoint to their route tables",
            s3_problem.join(", ")
        )));
    } else {
        findings.push(Finding::Ok("every subnet routes to S3".to_owned()));
    }
    let without_default: Vec<&str> = observed
        .subnets
        .iter()
        .filter(|s| !s.routes.iter().any(|r| matches!(r, Route::Default(_))))
        .map(|s| s.id.as_str())
        .collect();
    let missing: Vec<&str> = INTERFACE_SERVICES
        .iter()
        .map(|(service, _)| *service)
        .filter(|service| !observed.interface_endpoints.contains(*service))
        .collect();
    if without_default.is_empty() {
        findings.push(Finding::Ok(
            "every subnet has a default route, through which the AWS APIs are reached".to_owned(),
        ));
        findings.push(Finding::Note(format!(
            "a firewall or proxy on that route must let HTTPS through to the {} and S3 APIs",
            INTERFACE_SERVICES
                .iter()
                .map(|(service, _)| *service)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    } else if missing.is_empty() {
        findings.push(Finding::Ok(
            "the VPC has an interface endpoint for every AWS API the nodes and functions call"
                .to_owned(),
        ));
        findings.push(Finding::Note(
            "the endpoints' security groups must accept HTTPS from the VPC (the stack's nodes and functions)"
                .to_owned(),
        ));
    } else {
        findings.push(Finding::Problem(format!(
            "subnets {} have no default route, and the VPC has no interface endpoint for {}: the nodes could not discover their peers or read the cluster CA; add the endpoints (with private DNS), or a route through a NAT gateway",
            without_default.join(", "),
            missing.join(", ")
        )));
    }
    findings
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read the VPC's {what} ({message}); check the region and that your credentials may ec2:Describe{what}")]
pub struct ObserveError {
    what: &'static str,
    message: String,
}

fn observe_error<E>(what: &'static str, error: &SdkError<E, HttpResponse>) -> ObserveError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    ObserveError {
        what,
        message: aws_error::read(error).summary,
    }
}

/// Reads what [`judge`] needs: the subnets, their route tables (a subnet
/// without its own uses the VPC's main one) and the VPC's interface endpoints.
pub async fn observe(
    ec2: &aws_sdk_ec2::Client,
    vpc: &ExistingVpc,
) -> Result<Observed, ObserveError> {
    let vpc_filter = Filter::builder()
        .name("vpc-id")
        .values(vpc.vpc_id.as_str())
        .build();
    let subnets = ec2
        .describe_subnets()
        .filters(vpc_filter.clone())
        .send()
        .await
        .map_err(|e| observe_error("Subnets", &e))?;
    let tables = ec2
        .describe_route_tables()
        .filters(vpc_filter.clone())
        .send()
        .await
        .map_err(|e| observe_error("RouteTables", &e))?;
    let endpoints = ec2
        .describe_vpc_endpoints()
        .filters(vpc_filter)
        .send()
        .await
        .map_err(|e| observe_error("VpcEndpoints", &e))?;
    let routes_of = |table: &aws_sdk_ec2::types::RouteTable| -> Vec<Route> {
        table
            .routes()
            .iter()
            .filter_map(|route| {
                let target = route
                    .nat_gateway_id()
                    .or(route.gateway_id())
                    .or(route.transit_gateway_id())
                    .or(route.network_interface_id())
                    .or(route.vpc_peering_connection_id())
                    .unwrap_or("a target");
                if route.destination_cidr_block() == Some("0.0.0.0/0") {
                    Some(Route::Default(target.to_owned()))
                } else {
                    route
                        .destination_prefix_list_id()
                        .map(|list| Route::GatewayEndpoint(list.to_owned()))
                }
            })
            .collect()
    };
    let main = tables
        .route_tables()
        .iter()
        .find(|t| t.associations().iter().any(|a| a.main() == Some(true)));
    let observed_subnets = subnets
        .subnets()
        .iter()
        .filter(|s| {
            s.subnet_id()
                .is_some_and(|id| vpc.subnet_ids.ids().iter().any(|asked| asked == id))
        })
        .map(|s| {
            let id = s.subnet_id().unwrap_or_default().to_owned();
            let own = tables.route_tables().iter().find(|t| {
                t.associations()
                    .iter()
                    .any(|a| a.subnet_id() == Some(id.as_str()))
            });
            ObservedSubnet {
                vpc_id: s.vpc_id().unwrap_or_default().to_owned(),
                availability_zone: s.availability_zone().unwrap_or_default().to_owned(),
                routes: own.or(main).map(routes_of).unwrap_or_default(),
                id,
            }
        })
        .collect();
    let interface_endpoints = endpoints
        .vpc_endpoints()
        .iter()
        .filter(|e| e.vpc_endpoint_type() == Some(&aws_sdk_ec2::types::VpcEndpointType::Interface))
        .filter_map(|e| e.service_name())
        .filter_map(|name| name.rsplit('.').next())
        .map(str::to_owned)
        .collect();
    Ok(Observed {
        subnets: observed_subnets,
        interface_endpoints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vpc() -> ExistingVpc {
        ExistingVpc {
            vpc_id: "vpc-0a1b2c3d".parse().expect("vpc id"),
            subnet_ids: "subnet-0000000a,subnet-0000000b,subnet-0000000c"
                .parse()
                .expect("subnet ids"),
        }
    }

    fn subnet(letter: char, zone: &str, routes: Vec<Route>) -> ObservedSubnet {
        ObservedSubnet {
            id: format!("subnet-0000000{letter}"),
            vpc_id: "vpc-0a1b2c3d".to_owned(),
            availability_zone: zone.to_owned(),
            routes,
        }
    }

    fn behind_nat() -> Vec<Route> {
        vec![Route::Default("nat-0123".to_owned())]
    }

    fn three(routes: impl Fn() -> Vec<Route>) -> Vec<ObservedSubnet> {
        vec![
            subnet('a', "us-east-1a", routes()),
            subnet('b', "us-east-1b", routes()),
            subnet('c', "us-east-1c", routes()),
        ]
    }

    fn problems(findings: &[Finding]) -> Vec<&str> {
        findings
            .iter()
            .filter_map(|f| match f {
                Finding::Problem(p) => Some(p.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn subnets_behind_a_nat_gateway_in_three_zones_pass() {
        let observed = Observed {
            subnets: three(behind_nat),
            ..Observed::default()
        };
        assert_eq!(problems(&judge(&vpc(), &observed)), Vec::<&str>::new());
    }

    #[test]
    fn isolated_subnets_pass_with_an_s3_gateway_and_every_interface_endpoint() {
        let observed = Observed {
            subnets: three(|| vec![Route::GatewayEndpoint("pl-63a5400a".to_owned())]),
            interface_endpoints: INTERFACE_SERVICES
                .iter()
                .map(|(s, _)| (*s).to_owned())
                .collect(),
        };
        assert_eq!(problems(&judge(&vpc(), &observed)), Vec::<&str>::new());
    }

    #[test]
    fn an_isolated_subnet_without_the_endpoints_names_the_ones_missing() {
        let observed = Observed {
            subnets: three(|| vec![Route::GatewayEndpoint("pl-63a5400a".to_owned())]),
            interface_endpoints: ["ec2".to_owned()].into(),
        };
        let found = judge(&vpc(), &observed);
        let problems = problems(&found);
        assert_eq!(problems.len(), 1, "{found:?}");
        assert!(problems[0].contains("autoscaling") && problems[0].contains("secretsmanager"));
        assert!(!problems[0].contains("ec2,"), "{}", problems[0]);
    }

    #[test]
    fn no_route_to_s3_is_a_problem() {
        let observed = Observed {
            subnets: three(Vec::new),
            interface_endpoints: INTERFACE_SERVICES
                .iter()
                .map(|(s, _)| (*s).to_owned())
                .collect(),
        };
        assert!(problems(&judge(&vpc(), &observed))
            .iter()
            .any(|p| p.contains("no route to S3")));
    }

    #[test]
    fn two_subnets_in_one_zone_are_a_problem() {
        let mut subnets = three(behind_nat);
        subnets[2].availability_zone = "us-east-1a".to_owned();
        let observed = Observed {
            subnets,
            ..Observed::default()
        };
        assert!(problems(&judge(&vpc(), &observed))
            .iter()
            .any(|p| p.contains("share availability zones")));
    }

    #[test]
    fn a_missing_subnet_or_one_of_another_vpc_is_a_problem() {
        let mut subnets = three(behind_nat);
        subnets.pop();
        subnets[1].vpc_id = "vpc-99999999".to_owned();
        let observed = Observed {
            subnets,
            ..Observed::default()
        };
        let found = judge(&vpc(), &observed);
        let problems = problems(&found);
        assert!(problems
            .iter()
            .any(|p| p.contains("subnet-0000000c does not exist")));
        assert!(problems
            .iter()
            .any(|p| p.contains("belongs to vpc-99999999")));
    }
}
