//! Creating or updating the stack through a change set, with the stack's events
//! printed as progress until the operation ends.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, Parameter, StackEvent,
};
use aws_sdk_cloudformation::Client;

use etcd_aws_core::clock;
use etcd_aws_io::aws::error as aws_error;

use super::stack_events::{self, Event, Outcome};

pub use etcd_aws_template::TEMPLATE_BODY_LIMIT;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{action} failed: {message}")]
    Api {
        action: &'static str,
        message: String,
    },
    #[error("the template is {bytes} bytes, over CloudFormation's {TEMPLATE_BODY_LIMIT}-byte limit for a template body; stage it in S3 first (the artifact bucket: --artifact-bucket)")]
    TemplateTooLarge { bytes: usize },
    #[error("stack {stack} cannot be deployed now: {reason}")]
    NotUpdatable { stack: String, reason: String },
    #[error("change set for stack {stack} failed: {reason}")]
    ChangeSet { stack: String, reason: String },
    #[error("stack {stack} ended in {status}:\n  {}", reasons.join("\n  "))]
    Failed {
        stack: String,
        status: String,
        reasons: Vec<String>,
    },
    #[error("stack {stack} was still {status} after {waited:?}; it goes on in CloudFormation, check its events there")]
    TimedOut {
        stack: String,
        status: String,
        waited: Duration,
    },
}

fn api<E>(action: &'static str) -> impl Fn(SdkError<E, HttpResponse>) -> DeployError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    move |error| DeployError::Api {
        action,
        message: aws_error::read(&error).summary,
    }
}

/// What a deployment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deployed {
    Created,
    Updated,
    /// The template and parameters match the running stack.
    Unchanged,
}

/// How to deploy.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub stack_name: String,
    pub template_body: String,
    /// Where the body was staged in S3 when it is too large to send inline
    /// ([`super::staging`]); the change set then reads it from there.
    pub template_url: Option<String>,
    /// Parameter values (name, value) for the change set; only those the template
    /// declares are sent, since CloudFormation refuses any other.
    pub parameters: Vec<(String, String)>,
    /// How long to wait for the change set and for the stack operation, each.
    pub timeout: Duration,
    /// Time between polls of the change set and the stack's events.
    pub poll_interval: Duration,
}

/// Creates or updates the stack and waits for the operation to end, logging each stack
/// event as it appears.
pub async fn deploy(client: &Client, deployment: &Deployment) -> Result<Deployed, DeployError> {
    let bytes = deployment.template_body.len();
    if bytes > TEMPLATE_BODY_LIMIT && deployment.template_url.is_none() {
        return Err(DeployError::TemplateTooLarge { bytes });
    }
    let stack = deployment.stack_name.as_str();
    let change_set_type = match stack_status(client, stack).await? {
        None => ChangeSetType::Create,
        Some(status) if stack_events::needs_create(&status) => ChangeSetType::Create,
        Some(status) => {
            stack_events::updatable(&status).map_err(|reason| DeployError::NotUpdatable {
                stack: stack.to_string(),
                reason,
            })?;
            ChangeSetType::Update
        }
    };
    let creating = change_set_type == ChangeSetType::Create;
    tracing::info!(
        stack,
        kind = change_set_type.as_str(),
        "creating change set"
    );
    let change_set_name = format!("etcd-aws-cfn-{}", clock::now_unix_seconds());
    let declared = declared_parameters(&deployment.template_body);
    let parameters: Vec<Parameter> = deployment
        .parameters
        .iter()
        .filter(|(name, _)| declared.contains(name))
        .map(|(name, value)| {
            Parameter::builder()
                .parameter_key(name)
                .parameter_value(value)
                .build()
        })
        .collect();
    let created = client
        .create_change_set()
        .stack_name(stack)
        .change_set_name(&change_set_name)
        .change_set_type(change_set_type);
    let created = match &deployment.template_url {
        Some(url) => created.template_url(url),
        None => created.template_body(&deployment.template_body),
    };
    let created = created
        .set_parameters(Some(parameters))
        .capabilities(Capability::CapabilityIam)
        .capabilities(Capability::CapabilityNamedIam)
        .description("etcd-aws-cfn deploy")
        .send()
        .await
        .map_err(api("CreateChangeSet"))?;
    let change_set_id = created.id().unwrap_or(&change_set_name).to_string();
    if !wait_for_change_set(client, stack, &change_set_id, deployment).await? {
        tracing::info!(stack, "no changes: the stack already matches the template");
        // Tidiness only: an unexecuted change set costs nothing and expires with the next one.
        if let Err(error) = client
            .delete_change_set()
            .change_set_name(&change_set_id)
            .stack_name(stack)
            .send()
            .await
        {
            tracing::warn!(stack, error = %DisplayErrorContext(&error), "could not delete the empty change set");
        }
        return Ok(Deployed::Unchanged);
    }
    // Events from before this operation are history, not progress.
    let mut seen: HashSet<String> = recent_events(client, stack)
        .await?
        .into_iter()
        .map(|e| e.id)
        .collect();
    tracing::info!(stack, "executing change set");
    client
        .execute_change_set()
        .change_set_name(&change_set_id)
        .stack_name(stack)
        .send()
        .await
        .map_err(api("ExecuteChangeSet"))?;
    watch(client, stack, deployment, &mut seen).await?;
    Ok(if creating {
        Deployed::Created
    } else {
        Deployed::Updated
    })
}

/// The stack's status, or `None` when there is no such stack.
async fn stack_status(client: &Client, stack: &str) -> Result<Option<String>, DeployError> {
    match client.describe_stacks().stack_name(stack).send().await {
        Ok(output) => Ok(output
            .stacks()
            .first()
            .and_then(|s| s.stack_status())
            .map(|s| s.as_str().to_string())),
        Err(error) => {
            let missing = error.code() == Some("ValidationError")
                && error
                    .message()
                    .is_some_and(|m| m.contains("does not exist"));
            if missing {
                Ok(None)
            } else {
                Err(DeployError::Api {
                    action: "DescribeStacks",
                    message: aws_error::read(&error).summary,
                })
            }
        }
    }
}

/// Waits until the change set is ready; `false` when it holds no changes.
async fn wait_for_change_set(
    client: &Client,
    stack: &str,
    change_set: &str,
    deployment: &Deployment,
) -> Result<bool, DeployError> {
    let started = Instant::now();
    loop {
        let output = client
            .describe_change_set()
            .change_set_name(change_set)
            .stack_name(stack)
            .send()
            .await
            .map_err(api("DescribeChangeSet"))?;
        let reason = output.status_reason().unwrap_or("no reason given");
        match output.status() {
            Some(ChangeSetStatus::CreateComplete) => return Ok(true),
            Some(ChangeSetStatus::Failed) => {
                let unchanged = reason.contains("didn't contain changes")
                    || reason.contains("No updates are to be performed");
                if unchanged {
                    return Ok(false);
                }
                return Err(DeployError::ChangeSet {
                    stack: stack.to_string(),
                    reason: reason.to_string(),
                });
            }
            _ => {}
        }
        if started.elapsed() >= deployment.timeout {
            return Err(DeployError::TimedOut {
                stack: stack.to_string(),
                status: format!(
                    "waiting for its change set ({})",
                    output.status().map(|s| s.as_str()).unwrap_or("unknown")
                ),
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(deployment.poll_interval).await;
    }
}

/// Logs new events until the stack operation ends; an error names the failed resources.
async fn watch(
    client: &Client,
    stack: &str,
    deployment: &Deployment,
    seen: &mut HashSet<String>,
) -> Result<(), DeployError> {
    let started = Instant::now();
    let mut history: Vec<Event> = Vec::new();
    loop {
        let fresh = stack_events::unseen(recent_events(client, stack).await?, seen);
        for event in &fresh {
            if event.status.ends_with("_FAILED") {
                tracing::warn!("{event}");
            } else {
                tracing::info!("{event}");
            }
        }
        history.extend(fresh);
        let status = stack_status(client, stack)
            .await?
            .unwrap_or_else(|| "DELETE_COMPLETE".to_string());
        match stack_events::outcome(&status) {
            Outcome::Succeeded => {
                tracing::info!(stack, status, "stack operation finished");
                return Ok(());
            }
            Outcome::Failed => {
                let mut reasons = stack_events::failure_reasons(&history, stack);
                if reasons.is_empty() {
                    reasons.push("CloudFormation reported no failed resource".to_string());
                }
                return Err(DeployError::Failed {
                    stack: stack.to_string(),
                    status,
                    reasons,
                });
            }
            Outcome::InProgress => {}
        }
        if started.elapsed() >= deployment.timeout {
            return Err(DeployError::TimedOut {
                stack: stack.to_string(),
                status,
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(deployment.poll_interval).await;
    }
}

/// The newest page of the stack's events (newest first). One page per poll is enough:
/// a stack does not emit a hundred events between two polls seconds apart.
async fn recent_events(client: &Client, stack: &str) -> Result<Vec<Event>, DeployError> {
    let output = client
        .describe_stack_events()
        .stack_name(stack)
        .send()
        .await
        .map_err(api("DescribeStackEvents"))?;
    Ok(output.stack_events().iter().map(event).collect())
}

fn event(e: &StackEvent) -> Event {
    Event {
        id: e.event_id().unwrap_or_default().to_string(),
        timestamp: e.timestamp().map(|t| t.to_string()).unwrap_or_default(),
        logical_id: e.logical_resource_id().unwrap_or_default().to_string(),
        resource_type: e.resource_type().unwrap_or_default().to_string(),
        status: e
            .resource_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        reason: e.resource_status_reason().map(str::to_string),
    }
}

/// The parameter names a JSON or YAML template declares. YAML is a superset of JSON,
/// and its short-form tags (`!Ref`) parse as tagged values, so one parser reads both;
/// a template it cannot read declares nothing here and CloudFormation says why.
pub fn declared_parameters(template_body: &str) -> HashSet<String> {
    let Ok(template) = serde_norway::from_str::<serde_norway::Value>(template_body) else {
        return HashSet::new();
    };
    template
        .get("Parameters")
        .and_then(serde_norway::Value::as_mapping)
        .map(|parameters| {
            parameters
                .keys()
                .filter_map(|key| key.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
