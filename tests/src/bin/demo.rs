//! `make demo`: the life of an etcd-aws cluster on the local AWS stand-in,
//! under a steady writer.
//!
//! Starts moto behind the lifecycle-hook layer, a group of three instances
//! with one `etcd-aws` each, the lifecycle function on the hook's queue and
//! the backup function on a schedule (both through the Lambda Runtime API),
//! then plays the promises: formed; one node replaced; every node replaced in
//! turn; a backup; every node lost and restored. Ends with a summary table and
//! exits non-zero if any promise failed. Everything it started is stopped on
//! exit, also on Ctrl-C.

use std::process::ExitCode;
use std::time::Duration;

use etcd_aws_tests::life::{Life, LifeOptions, Steps};

#[tokio::main]
async fn main() -> ExitCode {
    tokio::select! {
        code = demo() => code,
        _ = tokio::signal::ctrl_c() => {
            // Returning drops the demo's future and with it the cluster, the
            // functions and moto, which stops every process it started.
            eprintln!("\ninterrupted: stopping every process the demo started");
            ExitCode::from(130)
        }
    }
}

async fn demo() -> ExitCode {
    println!("etcd-aws demo: a three-node cluster on the local AWS stand-in, while a client writes steadily.\n");
    let options = LifeOptions {
        progress_every: Some(Duration::from_secs(5)),
        ..LifeOptions::default()
    };
    let life = match Life::start(options).await {
        Ok(life) => life,
        Err(error) => {
            eprintln!("demo FAILED before the first step: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    life.say("started moto with the lifecycle-hook layer, a group of 3 instances, the lifecycle function on the hook's queue, the backup function on a 4 s schedule, and a writer putting a new key every 50 ms (retrying until acknowledged)");
    if let Ok(instances) = life.cluster.stand_in.instances().await {
        for instance in instances {
            life.say(&format!(
                "  instance {} at {} runs etcd-aws",
                instance.id, instance.private_ip
            ));
        }
    }
    let mut steps = Steps::new();
    let outcome = play(&life, &mut steps).await;
    println!("\nsummary (writes lost counts acknowledged writes missing afterwards; a restore may lose only the writes after its backup):\n");
    println!("{}", steps.summary());
    println!(
        "writer: {} writes acknowledged, {} failed attempts retried",
        life.writer.acknowledged(),
        life.writer.failed_attempts()
    );
    match outcome {
        Ok(()) if steps.all_kept() => {
            println!("\nevery promise kept. Cleaning up.");
            ExitCode::SUCCESS
        }
        Ok(()) => {
            eprintln!("\ndemo FAILED: a step broke its promise (see the table)");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("\ndemo FAILED: {error:#}\n\nlogs:\n{}", life.diagnostics());
            ExitCode::FAILURE
        }
    }
}

async fn play(life: &Life, steps: &mut Steps) -> anyhow::Result<()> {
    steps
        .step(life, "formed: three nodes form one cluster", life.formed())
        .await?;

    let victim = life
        .cluster
        .instance_ids()
        .first()
        .cloned()
        .unwrap_or_default();
    steps
        .step(
            life,
            "replaced: one node terminated, its member removed",
            life.replace(&victim),
        )
        .await?;
    steps.require_available(life)?;

    steps
        .step(
            life,
            "rolling replacement of every node",
            life.rolling_replacement(),
        )
        .await?;
    steps.require_available(life)?;

    steps
        .step(life, "backup written by the schedule", life.backup())
        .await?;

    steps.lose_everything_and_restore(life).await
}
