//! Scenarios: the whole life of a cluster under a steady writer, and the
//! faults it must survive. Every scenario runs the real `etcd-aws` nodes, the
//! lifecycle function on the hook's queue and the backup function on its
//! schedule (both through the Lambda Runtime API); a writer puts a new key
//! every 50 ms with retries, and after every step a checker reads back every
//! acknowledged write. A failing scenario names the step that failed and
//! prints the summary table and the logs.
//!
//! Needs `cargo build -p etcd-aws -p etcd-aws-lifecycle -p etcd-aws-backup`
//! first (make test does); scenarios run concurrently, each on its own subnet.

use std::time::Duration;

use anyhow::Context;
use etcd_aws_tests::life::{Life, LifeOptions, Steps};
use etcd_aws_tests::sim_cluster::wait_for;
use etcd_aws_tests::stand_in::FaultRule;
use tokio::time::Instant;

/// Bound on a whole scenario; each step has its own, shorter bound.
const SCENARIO_LIMIT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_forms_survives_replacements_is_backed_up_and_restored_without_losing_an_acknowledged_write(
) -> anyhow::Result<()> {
    let life = Life::start(LifeOptions::default()).await?;
    let mut steps = Steps::new();
    let played = tokio::time::timeout(SCENARIO_LIMIT, async {
        // 1. Three instances, no data anywhere: the earliest-launched seeds,
        //    the others join, and the writer's first put is acknowledged.
        steps.step(&life, "formed", life.formed()).await?;

        // 2. The group terminates one instance: the hook holds it, the
        //    lifecycle function removes its member and lets it go, the
        //    replacement joins. Writes never wait long.
        let victim = life.cluster.instance_ids()[0].clone();
        steps
            .step(&life, "one node replaced", life.replace(&victim))
            .await?;
        steps.require_available(&life)?;

        // 3. Every node replaced in turn, leader included.
        steps
            .step(&life, "rolling replacement", life.rolling_replacement())
            .await?;
        steps.require_available(&life)?;

        // 4. The schedule uploads a backup holding every write so far.
        steps.step(&life, "backup", life.backup()).await?;

        // 5. Every instance and disk is lost; the new group restores the
        //    newest backup by itself. Every write at or below its revision is
        //    back; the writes after it are the reported, allowed loss.
        steps.lose_everything_and_restore(&life).await
    })
    .await;
    steps.verdict(&life, SCENARIO_LIMIT, played)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_functions_aws_calls_failing_for_a_while_delay_the_removal_until_a_retry_succeeds(
) -> anyhow::Result<()> {
    let life = Life::start(LifeOptions::default()).await?;
    let mut steps = Steps::new();
    let played = tokio::time::timeout(SCENARIO_LIMIT, async {
        steps.step(&life, "formed", life.formed()).await?;

        // Auto Scaling throttles CompleteLifecycleAction: more failures than
        // the SDK's own retries absorb, so the message goes back to the
        // queue and a later delivery completes the action.
        let faults = life.cluster.stand_in.faults();
        faults.inject(
            FaultRule::error(
                "autoscaling",
                "CompleteLifecycleAction",
                400,
                "Throttling",
                "Rate exceeded",
            )
            .times(6),
        );
        let victim = life.cluster.instance_ids()[0].clone();
        steps
            .step(
                &life,
                "replaced while AWS throttles the function",
                async {
                    life.replace(&victim).await?;
                    anyhow::ensure!(
                        faults.pending() == 0,
                        "{} injected failures were never met",
                        faults.pending()
                    );
                    let redelivered = life
                        .lifecycle
                        .deliveries()
                        .iter()
                        .filter(|d| d.messages.iter().any(|m| m.body.contains(&victim)))
                        .count();
                    anyhow::ensure!(
                        redelivered >= 2,
                        "the notification was delivered {redelivered} times; a failed completion must return it to the queue"
                    );
                    life.say(&format!(
                        "  the notification was delivered {redelivered} times before the action completed"
                    ));
                    Ok(())
                },
            )
            .await?;
        steps.require_available(&life)
    })
    .await;
    steps.verdict(&life, SCENARIO_LIMIT, played)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_delivered_twice_removes_the_member_once_and_spares_the_replacement(
) -> anyhow::Result<()> {
    let life = Life::start(LifeOptions::default()).await?;
    let mut steps = Steps::new();
    let played = tokio::time::timeout(SCENARIO_LIMIT, async {
        steps.step(&life, "formed", life.formed()).await?;
        let victim = life.cluster.instance_ids()[0].clone();
        steps
            .step(&life, "one node replaced", life.replace(&victim))
            .await?;

        // SQS delivers at least once: the same notification comes back after
        // the member is gone and the replacement has joined.
        steps
            .step(&life, "the notification arrives again", async {
                let before = life.cluster.snapshot().await?;
                let body = life
                    .lifecycle
                    .deliveries()
                    .iter()
                    .flat_map(|d| d.messages.clone())
                    .find(|m| m.body.contains(&victim))
                    .map(|m| m.body)
                    .context("the first notification was never delivered")?;
                let sqs = aws_sdk_sqs::Client::new(&life.cluster.stand_in.sdk_config().await);
                let sent = sqs
                    .send_message()
                    .queue_url(life.cluster.stand_in.queue_url())
                    .message_body(&body)
                    .send()
                    .await?;
                let duplicate = sent.message_id().unwrap_or_default().to_owned();
                wait_for(
                    "the duplicate to be handled",
                    Duration::from_secs(30),
                    || async {
                        let handled = life
                            .lifecycle
                            .deliveries()
                            .iter()
                            .any(|d| d.succeeded(&duplicate));
                        anyhow::ensure!(handled, "not delivered yet");
                        Ok(())
                    },
                )
                .await?;
                let after = life
                    .cluster
                    .wait_healthy(3, Duration::from_secs(30))
                    .await?;
                let ids = |s: &etcd_aws_tests::sim_cluster::ClusterSnapshot| {
                    let mut ids: Vec<u64> = s.members.iter().map(|m| m.id.0).collect();
                    ids.sort_unstable();
                    ids
                };
                anyhow::ensure!(
                    ids(&after) == ids(&before),
                    "the duplicate changed the membership"
                );
                let removals = life.lifecycle.logged_for("removed member", &victim);
                anyhow::ensure!(removals == 1, "{victim}'s member removed {removals} times");
                life.say("  the duplicate succeeded and removed nothing");
                Ok(())
            })
            .await
            .map(drop)
    })
    .await;
    steps.verdict(&life, SCENARIO_LIMIT, played)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_during_its_join_completes_it_and_one_that_dies_is_replaced(
) -> anyhow::Result<()> {
    let life = Life::start(LifeOptions::default()).await?;
    let mut steps = Steps::new();
    let played = tokio::time::timeout(SCENARIO_LIMIT, async {
        let formed = steps.step(&life, "formed", life.formed()).await?;
        let victim = life.cluster.instance_ids()[0].clone();
        steps
            .step(&life, "replacement killed while joining", async {
                life.cluster.stand_in.terminate(&victim).await?;
                // Catch the replacement between being added and being a voter.
                let (newcomer, state) =
                    wait_for("the replacement to be mid-join", Duration::from_secs(60), || {
                        mid_join(&life, &formed.members)
                    })
                    .await?;
                life.cluster.with_node(&newcomer, |n| n.crash())?;
                life.say(&format!(
                    "  killed {newcomer}'s etcd-aws and etcd while its member was {state}; it restarts on the same disk"
                ));
                let after = life.cluster.wait_healthy(3, Duration::from_secs(60)).await?;
                anyhow::ensure!(after.cluster_id == formed.cluster_id, "a second cluster formed");
                anyhow::ensure!(
                    after.members.iter().any(|m| m.name == newcomer),
                    "the killed replacement never became a member"
                );
                let starts = life.cluster.with_node(&newcomer, |n| n.starts())?;
                life.say(&format!("  {newcomer} joined after {starts} starts"));
                Ok(())
            })
            .await?;

        // Worse: the joining instance itself dies, leaving its member behind;
        // the next replacement removes it before joining.
        let members = life.cluster.snapshot().await?.members;
        let victim = life.cluster.instance_ids()[0].clone();
        steps
            .step(&life, "replacement's instance dies while joining", async {
                life.cluster.stand_in.terminate(&victim).await?;
                let (newcomer, state) =
                    wait_for("the replacement to be mid-join", Duration::from_secs(60), || {
                        mid_join(&life, &members)
                    })
                    .await?;
                life.cluster.stand_in.vanish(&newcomer).await?;
                life.say(&format!(
                    "  {newcomer}'s instance died while its member was {state}; the group replaces it"
                ));
                let after = life.cluster.wait_healthy(3, Duration::from_secs(60)).await?;
                anyhow::ensure!(after.cluster_id == formed.cluster_id, "a second cluster formed");
                anyhow::ensure!(
                    after.members.iter().all(|m| m.name != newcomer && !m.is_learner),
                    "the dead joiner's member was left behind"
                );
                Ok(())
            })
            .await
    })
    .await;
    steps.verdict(&life, SCENARIO_LIMIT, played)
}

/// A node that is not one of `original` and whose member is added but not
/// yet a started voter: (instance id, "unstarted" or "a learner").
async fn mid_join(
    life: &Life,
    original: &[etcd_aws_core::membership::member::Member],
) -> anyhow::Result<(String, &'static str)> {
    for id in life.cluster.instance_ids() {
        if original.iter().any(|m| m.name == id) {
            continue;
        }
        let ip = life.cluster.with_node(&id, |n| n.spec().private_ip)?;
        let snapshot = life.cluster.snapshot().await?;
        let joining = snapshot
            .members
            .iter()
            .find(|m| m.name == id || m.peer_urls.iter().any(|u| u.contains(&format!("//{ip}:"))));
        match joining {
            Some(m) if m.is_unstarted() => return Ok((id, "added but not started")),
            Some(m) if m.is_learner => return Ok((id, "a learner")),
            Some(_) => anyhow::bail!("{id} is already a voter: the join was missed"),
            None => {}
        }
    }
    anyhow::bail!("no replacement is joining yet")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_dying_while_its_first_joiner_is_a_learner_leaves_one_cluster_formed_without_it(
) -> anyhow::Result<()> {
    // The writer starts once the cluster has formed: a seed that dies right
    // after forming alone takes the writes only it acknowledged with it.
    let life = Life::start(LifeOptions {
        writes_from_start: false,
        ..LifeOptions::default()
    })
    .await?;
    let mut steps = Steps::new();
    let played = tokio::time::timeout(SCENARIO_LIMIT, async {
        steps
            .step(&life, "the seed dies while forming", async {
                // Every node agrees the earliest-launched instance seeds.
                let mut instances = life.cluster.stand_in.instances().await?;
                instances.sort_by(|a, b| (a.launch_time, &a.id).cmp(&(b.launch_time, &b.id)));
                let seed = instances.first().context("no instances")?.id.clone();
                let seed_url = life.cluster.client_url(&seed)?;
                // The hardest moment: the seed has formed alone and added its
                // first joiner, which is still a learner holding a copy of
                // the seed's data.
                let learner = wait_for(
                    "the seed's first learner",
                    Duration::from_secs(60),
                    || async {
                        let snapshot = life.cluster.snapshot_via(&seed_url).await?;
                        snapshot
                            .members
                            .iter()
                            .find(|m| m.is_learner)
                            .map(|m| m.peer_urls.join(","))
                            .context("no learner yet")
                    },
                )
                .await?;
                // Frozen first, so it cannot promote the learner before it dies.
                life.cluster.with_node(&seed, |n| n.pause())?;
                life.cluster.stand_in.vanish(&seed).await?;
                life.say(&format!(
                    "  the seed {seed} died while {learner} was its learner; the group replaces it"
                ));
                let formed = life.formed().await?;
                anyhow::ensure!(
                    formed.members.iter().all(|m| m.name != seed),
                    "the dead seed is still a member"
                );
                // One cluster: every node answers with the same cluster id.
                let mut ids = Vec::new();
                for url in life.cluster.client_urls() {
                    ids.push(life.cluster.snapshot_via(&url).await?.cluster_id);
                }
                ids.dedup();
                anyhow::ensure!(
                    ids.len() == 1,
                    "the nodes serve different clusters: {ids:x?}"
                );
                Ok(())
            })
            .await
    })
    .await;
    steps.verdict(&life, SCENARIO_LIMIT, played)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_node_cluster_that_loses_two_nodes_keeps_serving_and_replaces_both(
) -> anyhow::Result<()> {
    let life = Life::start(LifeOptions {
        size: 5,
        ..LifeOptions::default()
    })
    .await?;
    let mut steps = Steps::new();
    let played = tokio::time::timeout(SCENARIO_LIMIT, async {
        let formed = steps
            .step(&life, "formed (five nodes)", life.formed())
            .await?;
        steps
            .step(&life, "two nodes lost at once", async {
                // Two instances die without notice; three of five keep quorum.
                let ids = life.cluster.instance_ids();
                let lost = [ids[0].clone(), ids[1].clone()];
                let began = Instant::now();
                let (a, b) = tokio::join!(
                    life.cluster.stand_in.vanish(&lost[0]),
                    life.cluster.stand_in.vanish(&lost[1])
                );
                a?;
                b?;
                life.say(&format!("  lost {} and {}", lost[0], lost[1]));
                let after = life
                    .cluster
                    .wait_healthy(5, Duration::from_secs(80))
                    .await?;
                anyhow::ensure!(
                    after.cluster_id == formed.cluster_id,
                    "a second cluster formed"
                );
                anyhow::ensure!(
                    after.members.iter().all(|m| !lost.contains(&m.name)),
                    "a lost node is still a member"
                );
                life.say(&format!(
                    "  both replacements joined; five voters again {:.1}s after the loss",
                    began.elapsed().as_secs_f64()
                ));
                Ok(())
            })
            .await?;
        steps.require_available(&life)
    })
    .await;
    steps.verdict(&life, SCENARIO_LIMIT, played)
}
