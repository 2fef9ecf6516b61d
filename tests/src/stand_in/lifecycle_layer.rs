//! What AWS does around lifecycle hooks and moto does not: hold a terminating
//! instance, notify the hook's queue, and terminate for real once the action is
//! completed or times out. The rules live in `lifecycle_actions`; this file does the
//! I/O around them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use crate::lock;
use anyhow::Context;
use tokio::sync::broadcast;

use super::group_watch::GroupWatch;
use super::instances::{ec2_details, group_members, InstanceEvent};
use super::lifecycle_actions::{
    ActionError, ActionKey, HookResult, LifecycleActionRecord, LifecycleActions, NewAction, Proceed,
};
use super::lifecycle_hooks::{LifecycleHook, LifecycleHooks, PutLifecycleHook};
use super::moto_clients::MotoClients;
use super::notification::{LifecycleNotification, TestNotification};

#[derive(Debug)]
pub struct LifecycleLayer {
    moto: MotoClients,
    actions: Mutex<LifecycleActions>,
    hooks: Mutex<LifecycleHooks>,
    watch: GroupWatch,
    /// moto replaces a terminated instance by counting the group's instances;
    /// two terminations at once both count the same gap and over-launch.
    terminations: tokio::sync::Mutex<()>,
}

impl LifecycleLayer {
    /// A layer that reports membership events for `group_name`.
    pub fn new(moto: MotoClients, group_name: &str) -> Self {
        Self {
            moto,
            actions: Mutex::default(),
            hooks: Mutex::default(),
            watch: GroupWatch::new(group_name),
            terminations: tokio::sync::Mutex::new(()),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<InstanceEvent> {
        self.watch.subscribe()
    }

    pub async fn reconcile(&self) -> anyhow::Result<()> {
        self.watch.reconcile(&self.moto).await
    }

    /// Records a hook moto has accepted and, as AWS does when a hook gets a
    /// notification target, sends the target a TEST_NOTIFICATION.
    pub async fn hook_put(&self, put: PutLifecycleHook) -> anyhow::Result<()> {
        let target_given = put.notification_target_arn.is_some();
        let hook = lock(&self.hooks).put(put);
        let Some(target) = hook.notification_target_arn.filter(|_| target_given) else {
            return Ok(());
        };
        let answer = self
            .moto
            .autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&hook.group_name)
            .send()
            .await?;
        let group_arn = answer
            .auto_scaling_groups()
            .first()
            .and_then(|group| group.auto_scaling_group_arn())
            .unwrap_or_default();
        let message = TestNotification::new(group_arn, &hook.group_name, SystemTime::now());
        self.moto
            .send_message(&target, serde_json::to_string(&message)?)
            .await
            .context("sending the hook's TEST_NOTIFICATION")
    }

    pub fn hook_deleted(&self, group_name: &str, hook_name: &str) {
        lock(&self.hooks).delete(group_name, hook_name);
    }

    pub fn hooks_of(&self, group_name: &str) -> Vec<LifecycleHook> {
        lock(&self.hooks).of_group(group_name)
    }

    /// The group an instance belongs to, if any.
    pub async fn group_of(&self, instance_id: &str) -> anyhow::Result<Option<String>> {
        let answer = self
            .moto
            .autoscaling
            .describe_auto_scaling_instances()
            .instance_ids(instance_id)
            .send()
            .await?;
        Ok(answer
            .auto_scaling_instances()
            .first()
            .and_then(|instance| instance.auto_scaling_group_name())
            .map(str::to_owned))
    }

    /// Starts the termination Auto Scaling would start. With a terminating hook the
    /// instance waits and the hook's queue is told; returns the group then. Without
    /// one, returns `None` and leaves the instance alone: the caller terminates it.
    pub async fn hold_for_termination(
        &self,
        instance_id: &str,
        decrement_desired: bool,
    ) -> anyhow::Result<Option<String>> {
        let Some(group_name) = self.group_of(instance_id).await? else {
            return Ok(None);
        };
        let Some(hook) = lock(&self.hooks).terminating_hook(&group_name) else {
            return Ok(None);
        };
        let token = self.hold(&hook, instance_id, decrement_desired)?;
        self.notify(&hook, instance_id, &token).await?;
        Ok(Some(group_name))
    }

    /// CompleteLifecycleAction. The outer error is a failure to talk to moto; the
    /// inner one is the caller's mistake, answered as AWS answers it.
    pub async fn complete(
        &self,
        key: &ActionKey,
        result: HookResult,
    ) -> anyhow::Result<Result<(), ActionError>> {
        let proceed = lock(&self.actions).complete(key, result, SystemTime::now());
        match proceed {
            Ok(proceed) => {
                self.terminate_for_real(&proceed).await?;
                Ok(Ok(()))
            }
            Err(error) => Ok(Err(error)),
        }
    }

    pub fn heartbeat(&self, key: &ActionKey) -> Result<(), ActionError> {
        lock(&self.actions).heartbeat(key, Instant::now())
    }

    /// Applies the default result to actions whose heartbeat timeout has passed.
    pub async fn expire_due(&self) -> anyhow::Result<()> {
        let expired = lock(&self.actions).expire(Instant::now(), SystemTime::now());
        let mut first_error = None;
        // One failed termination must not strand the other expired instances.
        for proceed in expired {
            if let Err(error) = self.terminate_for_real(&proceed).await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The instance disappears without any lifecycle action: a missed message.
    pub async fn vanish(&self, instance_id: &str) -> anyhow::Result<()> {
        self.moto_terminate(instance_id, false).await?;
        lock(&self.actions).finish(instance_id);
        self.reconcile().await
    }

    /// SetDesiredCapacity as Auto Scaling does it: scale-in holds the newest live
    /// instances when the group has a terminating hook; otherwise moto changes the
    /// group, with room kept for held instances that will lower it when they go.
    pub async fn set_desired_capacity(
        &self,
        group_name: &str,
        desired: usize,
    ) -> anyhow::Result<()> {
        let hook = lock(&self.hooks).terminating_hook(group_name);
        let (held, pending_decrements) = {
            let actions = lock(&self.actions);
            (actions.held_instances(), actions.pending_decrements())
        };
        let live: Vec<String> = group_members(&self.moto, group_name)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| !held.contains(id))
            .collect();
        match hook {
            Some(hook) if desired < live.len() => {
                let excess = live.len() - desired;
                for victim in self.newest_first(live).await?.into_iter().take(excess) {
                    let token = self.hold(&hook, &victim, true)?;
                    self.notify(&hook, &victim, &token).await?;
                }
                Ok(())
            }
            _ => {
                let moto_desired = desired + pending_decrements;
                self.moto
                    .autoscaling
                    .set_desired_capacity()
                    .auto_scaling_group_name(group_name)
                    .desired_capacity(i32::try_from(moto_desired)?)
                    .send()
                    .await?;
                self.reconcile().await
            }
        }
    }

    /// Lifecycle states that differ from moto's view, for rewriting its answers.
    pub fn lifecycle_states(&self) -> HashMap<String, &'static str> {
        let actions = lock(&self.actions);
        actions
            .held_instances()
            .into_iter()
            .filter_map(|id| {
                let state = actions.lifecycle_state(&id)?;
                Some((id, state))
            })
            .collect()
    }

    pub fn records(&self) -> Vec<LifecycleActionRecord> {
        lock(&self.actions).records()
    }

    fn hold(
        &self,
        hook: &LifecycleHook,
        instance_id: &str,
        decrement_desired: bool,
    ) -> anyhow::Result<String> {
        let token = uuid::Uuid::new_v4().to_string();
        let new = NewAction {
            instance_id: instance_id.to_owned(),
            group_name: hook.group_name.clone(),
            hook_name: hook.hook_name.clone(),
            token: token.clone(),
            heartbeat_timeout: hook.heartbeat_timeout,
            default_result: hook.default_result,
            decrement_desired,
        };
        lock(&self.actions).hold(new, Instant::now(), SystemTime::now())?;
        Ok(token)
    }

    /// Sends the hook's queue the message AWS sends for a waiting instance.
    async fn notify(
        &self,
        hook: &LifecycleHook,
        instance_id: &str,
        token: &str,
    ) -> anyhow::Result<()> {
        let Some(target) = &hook.notification_target_arn else {
            return Ok(());
        };
        let message = LifecycleNotification::terminating(
            instance_id,
            &hook.group_name,
            &hook.hook_name,
            token,
            hook.notification_metadata.clone(),
            SystemTime::now(),
        );
        self.moto
            .send_message(target, serde_json::to_string(&message)?)
            .await
            .with_context(|| format!("notifying the hook's queue about {instance_id}"))
    }

    /// Scale-in victims, newest first: AWS's default policy ends in a random pick
    /// among equals, and tests need to know which instance goes.
    async fn newest_first(&self, ids: Vec<String>) -> anyhow::Result<Vec<String>> {
        let details = ec2_details(&self.moto, &ids).await?;
        let mut ids = ids;
        ids.sort_by_key(|id| std::cmp::Reverse((details.get(id).map(|(_, at)| *at), id.clone())));
        Ok(ids)
    }

    async fn terminate_for_real(&self, proceed: &Proceed) -> anyhow::Result<()> {
        self.moto_terminate(&proceed.instance_id, proceed.decrement_desired)
            .await?;
        lock(&self.actions).finish(&proceed.instance_id);
        self.reconcile().await
    }

    async fn moto_terminate(
        &self,
        instance_id: &str,
        decrement_desired: bool,
    ) -> anyhow::Result<()> {
        let _one_at_a_time = self.terminations.lock().await;
        self.moto
            .autoscaling
            .terminate_instance_in_auto_scaling_group()
            .instance_id(instance_id)
            .should_decrement_desired_capacity(decrement_desired)
            .send()
            .await
            .with_context(|| format!("terminating {instance_id} in moto"))?;
        Ok(())
    }
}
