//! `make demo`: a three-node etcd-aws cluster on the local AWS stand-in.
//!
//! Starts moto behind the lifecycle-hook layer, a group of three instances and
//! one `etcd-aws` per instance, shows the cluster forming and serving, then
//! tears everything down (also on Ctrl-C). Exits non-zero if a step fails.

use std::time::{Duration, Instant};

use anyhow::Context;
use etcd_aws_tests::sim_cluster::{ClusterSnapshot, SimCluster};
use etcd_client::Client;

const FORMATION_TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tokio::select! {
        result = demo() => match result {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("demo FAILED: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => {
            // Returning drops the cluster, which stops every process it started.
            eprintln!("interrupted: stopping every process the demo started");
            std::process::ExitCode::from(130)
        }
    }
}

async fn demo() -> anyhow::Result<()> {
    let started = Instant::now();
    step("starting the AWS stand-in (moto + lifecycle hooks) and a group of 3 instances");
    let cluster = SimCluster::start(3).await?;
    for instance in cluster.stand_in.instances().await? {
        println!("    instance {} at {}", instance.id, instance.private_ip);
    }

    step("each instance runs etcd-aws; waiting for the cluster to form");
    let formed = cluster.wait_healthy(3, FORMATION_TIMEOUT).await?;
    println!("    formed in {:.1}s", started.elapsed().as_secs_f64());
    print_members(&formed);

    step("writing and reading a key through every node");
    let mut client = Client::connect(cluster.client_urls(), None)
        .await
        .context("connecting a client")?;
    client
        .put("demo/greeting", "hello from etcd-aws", None)
        .await
        .context("writing demo/greeting")?;
    for url in cluster.client_urls() {
        let mut node_client = Client::connect([url.as_str()], None).await?;
        let response = node_client.get("demo/greeting", None).await?;
        let value = response
            .kvs()
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
        println!("    {url}: {}", value.as_deref().unwrap_or("<missing>"));
        anyhow::ensure!(
            value.as_deref() == Some("hello from etcd-aws"),
            "{url} does not serve the key"
        );
    }

    step("tearing down");
    drop(cluster);
    println!(
        "\nformed: 3 voting members, one cluster id, serving; total {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn step(text: &str) {
    println!("\n==> {text}");
}

fn print_members(snapshot: &ClusterSnapshot) {
    println!("    cluster id {:x}", snapshot.cluster_id);
    println!(
        "    {:<18} {:<22} {:<30} role",
        "member id", "name (instance)", "client URL"
    );
    for member in &snapshot.members {
        let role = if member.is_learner {
            "learner"
        } else {
            "voter"
        };
        let url = member.client_urls.first().map_or("", String::as_str);
        println!(
            "    {:<18x} {:<22} {:<30} {role}",
            member.id, member.name, url
        );
    }
}
