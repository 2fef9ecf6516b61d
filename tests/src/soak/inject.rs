//! Applying one fault to a running cluster of the harness, and saying what
//! was done. Recovery is the system's job: this only breaks things (and
//! undoes what no system could, such as a frozen process or a cut cable,
//! once the fault's time is up).

use std::time::Duration;

use anyhow::Context;
use etcd_aws_io::etcd::admin::EtcdAdmin;
use tokio::time::Instant;

use super::fault::Fault;
use super::schedule::Rng;
use crate::container_node::ContainerNode;
use crate::node::{Node, NodeRunner};
use crate::paths::EtcdRelease;
use crate::sim_cluster::{wait_for, SimCluster};
use crate::space;
use crate::stand_in::FaultRule;

/// What a node must let the soak do to it beyond the harness's basics.
pub trait Faultable: NodeRunner {
    /// The agent and etcd die at once; the supervisor starts them again.
    fn crash(&self);
    /// The instance shuts down: the agent and etcd are asked to stop
    /// (SIGTERM) and are not started again.
    fn shut_down(&self) -> anyhow::Result<()>;
    fn freeze(&self) -> anyhow::Result<()>;
    fn thaw(&self) -> anyhow::Result<()>;
    fn cut_off(&self) -> anyhow::Result<()>;
    fn heal(&self) -> anyhow::Result<()>;
}

impl Faultable for Node {
    fn crash(&self) {
        Node::crash(self);
    }

    fn shut_down(&self) -> anyhow::Result<()> {
        Node::shut_down(self);
        Ok(())
    }

    fn freeze(&self) -> anyhow::Result<()> {
        self.pause();
        Ok(())
    }

    fn thaw(&self) -> anyhow::Result<()> {
        self.resume();
        Ok(())
    }

    fn cut_off(&self) -> anyhow::Result<()> {
        anyhow::bail!("a process node shares the host's network: partitions need --containers")
    }

    fn heal(&self) -> anyhow::Result<()> {
        anyhow::bail!("a process node shares the host's network: partitions need --containers")
    }
}

impl Faultable for ContainerNode {
    fn crash(&self) {
        ContainerNode::crash(self);
    }

    fn shut_down(&self) -> anyhow::Result<()> {
        ContainerNode::shut_down(self)
    }

    fn freeze(&self) -> anyhow::Result<()> {
        self.pause()
    }

    fn thaw(&self) -> anyhow::Result<()> {
        self.resume()
    }

    fn cut_off(&self) -> anyhow::Result<()> {
        ContainerNode::cut_off(self)
    }

    fn heal(&self) -> anyhow::Result<()> {
        ContainerNode::heal(self)
    }
}

/// How long the faults that last a while last.
#[derive(Debug, Clone, Copy)]
pub struct Durations {
    pub shortest: Duration,
    pub longest: Duration,
}

/// What applying a fault did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// One line for the log: which nodes, for how long.
    pub what: String,
    /// When every instance and disk was lost, and the cluster that served.
    pub total_loss: Option<(Instant, u64)>,
    /// Instances the fault was aimed at, by id.
    pub targets: Vec<String>,
}

impl Applied {
    fn on(what: String, targets: Vec<String>) -> Self {
        Self {
            what,
            total_loss: None,
            targets,
        }
    }
}

/// Everything a fault acts on.
pub struct Target<'a, N: Faultable> {
    pub cluster: &'a SimCluster<N>,
    pub size: usize,
    /// The bound on each wait a fault itself has (a replacement joining).
    pub timeout: Duration,
    pub quota_bytes: usize,
}

impl<N: Faultable> Target<'_, N> {
    /// The instance whose member leads now.
    async fn leader(&self) -> anyhow::Result<String> {
        let snapshot = self.cluster.snapshot().await?;
        let statuses =
            EtcdAdmin::status_of_each(&self.cluster.client_urls(), &self.cluster.etcd_access())
                .await;
        let leader = statuses
            .into_iter()
            .filter_map(|(_, status)| status.ok())
            .find_map(|status| status.leader_id)
            .context("no member names a leader")?;
        snapshot
            .members
            .iter()
            .find(|m| m.id == leader)
            .map(|m| m.name.clone())
            .with_context(|| format!("leader {leader} is not in the member list"))
    }

    /// `count` instances drawn from `from`, in a seeded order.
    fn pick(&self, rng: &mut Rng, mut from: Vec<String>, count: usize) -> Vec<String> {
        from.sort();
        let mut picked = Vec::new();
        while picked.len() < count && !from.is_empty() {
            picked.push(from.remove(rng.below(from.len())));
        }
        picked
    }

    fn each(&self, ids: &[String], act: impl Fn(&N) -> anyhow::Result<()>) -> anyhow::Result<()> {
        for id in ids {
            self.cluster.with_node(id, &act)??;
        }
        Ok(())
    }

    /// `start` on each of `ids`, then after `how_long` `end` on each: a
    /// fault that lasts a while and is undone.
    async fn each_for(
        &self,
        ids: &[String],
        how_long: Duration,
        start: impl Fn(&N) -> anyhow::Result<()>,
        end: impl Fn(&N) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.each(ids, start)?;
        tokio::time::sleep(how_long).await;
        self.each(ids, end)
    }

    pub async fn apply(
        &self,
        fault: Fault,
        rng: &mut Rng,
        lasting: Durations,
    ) -> anyhow::Result<Applied> {
        let ids = self.cluster.instance_ids();
        let majority = self.size / 2 + 1;
        match fault {
            Fault::KillLeader => {
                let leader = self.leader().await?;
                self.each(std::slice::from_ref(&leader), |n| {
                    n.crash();
                    Ok(())
                })?;
                Ok(Applied::on(
                    format!("crashed the leader {leader}"),
                    vec![leader],
                ))
            }
            Fault::KillFollower => {
                let leader = self.leader().await?;
                let followers: Vec<String> = ids.into_iter().filter(|id| *id != leader).collect();
                let victim = self.pick(rng, followers, 1);
                self.each(&victim, |n| {
                    n.crash();
                    Ok(())
                })?;
                Ok(Applied::on(
                    format!("crashed follower {}", victim.join(",")),
                    victim,
                ))
            }
            Fault::KillMajority | Fault::KillAll => {
                let count = if fault == Fault::KillAll {
                    ids.len()
                } else {
                    majority
                };
                let victims = self.pick(rng, ids, count);
                self.each(&victims, |n| {
                    n.crash();
                    Ok(())
                })?;
                Ok(Applied::on(
                    format!(
                        "crashed {} nodes at once: {}",
                        victims.len(),
                        victims.join(", ")
                    ),
                    victims,
                ))
            }
            Fault::KillAndWipeOne | Fault::KillAndWipeMajority => {
                let count = if fault == Fault::KillAndWipeOne {
                    1
                } else {
                    majority
                };
                let victims = self.pick(rng, ids, count);
                self.cluster.lose_instances(&victims).await?;
                Ok(Applied::on(
                    format!(
                        "lost {} instances with their disks: {}",
                        victims.len(),
                        victims.join(", ")
                    ),
                    victims,
                ))
            }
            Fault::KillAndWipeAll | Fault::StopAndWipeAll => {
                let serving = self.cluster.snapshot().await?.cluster_id.0;
                if fault == Fault::StopAndWipeAll {
                    self.each(&ids, |n| n.shut_down())?;
                    self.wait_stopped().await?;
                }
                let at = Instant::now();
                self.cluster.lose_instances(&ids).await?;
                Ok(Applied {
                    what: format!(
                        "{} every instance ({}) and lost every disk",
                        if fault == Fault::StopAndWipeAll {
                            "stopped"
                        } else {
                            "killed"
                        },
                        ids.join(", ")
                    ),
                    total_loss: Some((at, serving)),
                    targets: ids,
                })
            }
            Fault::ReplaceOne => {
                let victim = self.pick(rng, ids, 1);
                for id in &victim {
                    self.replace_through_the_hook(id).await?;
                }
                Ok(Applied::on(
                    format!("replaced {} through the lifecycle hook", victim.join(",")),
                    victim,
                ))
            }
            Fault::RollingUpgrade => {
                self.cluster.launch_with_etcd(EtcdRelease::default());
                for id in &ids {
                    self.replace_through_the_hook(id).await?;
                }
                Ok(Applied::on(
                    format!(
                        "replaced every node ({}) through the lifecycle hook by one running {}",
                        ids.join(", "),
                        EtcdRelease::default()
                    ),
                    ids,
                ))
            }
            Fault::Freeze => {
                let victim = self.pick(rng, ids, 1);
                let how_long = rng.between(lasting.shortest, lasting.longest);
                self.each_for(&victim, how_long, |n| n.freeze(), |n| n.thaw())
                    .await?;
                Ok(Applied::on(
                    format!("froze {} for {how_long:?}", victim.join(",")),
                    victim,
                ))
            }
            Fault::PartitionOne | Fault::PartitionLeader => {
                let victim = if fault == Fault::PartitionLeader {
                    vec![self.leader().await?]
                } else {
                    self.pick(rng, ids, 1)
                };
                let how_long = rng.between(lasting.shortest, lasting.longest);
                self.each_for(&victim, how_long, |n| n.cut_off(), |n| n.heal())
                    .await?;
                Ok(Applied::on(
                    format!("cut {} off the network for {how_long:?}", victim.join(",")),
                    victim,
                ))
            }
            Fault::AwsErrors | Fault::AwsThrottling | Fault::BucketUnreachable => {
                let how_long = rng.between(lasting.shortest, lasting.longest);
                let rules = aws_rules(fault);
                let faults = self.cluster.stand_in.faults();
                for rule in rules {
                    faults.inject(rule);
                }
                tokio::time::sleep(how_long).await;
                faults.clear();
                Ok(Applied::on(
                    format!("{} for {how_long:?}", describe_aws(fault)),
                    Vec::new(),
                ))
            }
            Fault::NospaceSqueeze => {
                let squeezed = space::squeeze_until_nospace(self.cluster, self.quota_bytes).await?;
                let accepted = space::writable_again(self.cluster, self.timeout).await?;
                Ok(Applied::on(
                    format!(
                        "filled the database past its quota; writes accepted again {:.1}s after NOSPACE",
                        (accepted - squeezed.full_at).as_secs_f64()
                    ),
                    Vec::new(),
                ))
            }
        }
    }

    /// The group terminates `victim` through its lifecycle hook and launches
    /// a replacement; returns once the replacement votes.
    async fn replace_through_the_hook(&self, victim: &str) -> anyhow::Result<()> {
        self.cluster.stand_in.terminate(victim).await?;
        wait_for(
            &format!("the lifecycle function to remove {victim}'s member"),
            self.timeout,
            || async {
                let snapshot = self.cluster.snapshot().await?;
                anyhow::ensure!(
                    snapshot.members.iter().all(|m| m.name != victim),
                    "{victim} is still a member"
                );
                Ok(())
            },
        )
        .await?;
        self.cluster.wait_healthy(self.size, self.timeout).await?;
        Ok(())
    }

    /// Waits until no node's client port answers (each etcd has shut down).
    async fn wait_stopped(&self) -> anyhow::Result<()> {
        let urls = self.cluster.client_urls();
        wait_for("every node to stop", self.timeout, || async {
            for url in &urls {
                let address = url.rsplit("://").next().unwrap_or(url.as_str()).to_owned();
                if tokio::net::TcpStream::connect(&address).await.is_ok() {
                    anyhow::bail!("{address} still answers");
                }
            }
            Ok(())
        })
        .await
    }
}

/// The proxy's rules for an AWS fault: the error each service answers
/// when it fails or throttles, on every call, until cleared.
fn aws_rules(fault: Fault) -> Vec<FaultRule> {
    const EVERY_CALL: usize = usize::MAX;
    let rule = |service: &str, status: u16, code: &str, message: &str| {
        FaultRule::error(service, "*", status, code, message).times(EVERY_CALL)
    };
    match fault {
        Fault::AwsErrors => vec![
            rule(
                "autoscaling",
                500,
                "InternalFailure",
                "soak: injected failure",
            ),
            rule("ec2", 500, "InternalError", "soak: injected failure"),
            rule("sqs", 500, "InternalError", "soak: injected failure"),
        ],
        Fault::AwsThrottling => vec![
            rule("autoscaling", 400, "Throttling", "Rate exceeded"),
            rule(
                "ec2",
                503,
                "RequestLimitExceeded",
                "Request limit exceeded.",
            ),
            rule("sqs", 400, "ThrottlingException", "Rate exceeded"),
            rule("s3", 503, "SlowDown", "Please reduce your request rate."),
        ],
        Fault::BucketUnreachable => vec![rule(
            "s3",
            503,
            "ServiceUnavailable",
            "soak: the bucket is out of reach",
        )],
        _ => Vec::new(),
    }
}

fn describe_aws(fault: Fault) -> &'static str {
    match fault {
        Fault::AwsErrors => "every autoscaling, EC2 and SQS call failed (5xx)",
        Fault::AwsThrottling => "every autoscaling, EC2, SQS and S3 call was throttled",
        _ => "every S3 call failed (503)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_fault_touches_only_s3_and_the_aws_fault_never_does() {
        let bucket = aws_rules(Fault::BucketUnreachable);
        assert!(bucket.iter().all(|r| r.service == "s3"));
        assert!(aws_rules(Fault::AwsErrors)
            .iter()
            .all(|r| r.service != "s3"));
        assert!(aws_rules(Fault::KillLeader).is_empty());
    }
}
