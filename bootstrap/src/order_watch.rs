//! The operator's restore orders, as one node sees them: while etcd runs,
//! notice an order that asks this node to stop; before etcd starts, say
//! whether it may ([`restore_order::node_step`] decides, this module reads
//! the bucket). An order no operator signed is no order
//! ([`crate::instructions`]).
//!
//! [`restore_order::node_step`]: etcd_aws_core::contract::restore_order::node_step

use std::sync::Arc;
use std::time::Duration;

use etcd_aws_core::contract::restore_order::{
    node_step, Acknowledger, NodeStep, Phase, RestoreOrder,
};
use etcd_aws_io::aws::order_key::OrderKeyError;
use etcd_aws_io::backup_store::{BackupStore, BackupStoreError};

use crate::instructions::Instructions;

#[derive(Debug, thiserror::Error)]
pub enum OrderWatchError {
    #[error(transparent)]
    Store(#[from] BackupStoreError),
    #[error(transparent)]
    Key(#[from] OrderKeyError),
}

pub struct OrderWatch {
    pub store: BackupStore,
    pub instructions: Arc<Instructions>,
    pub instance_id: String,
    /// Who this node acknowledges as; `None` only without the order-signing
    /// key, when no order is obeyed and so none acknowledged.
    pub acknowledger: Option<Acknowledger>,
    /// How often a running node reads the order.
    pub interval: Duration,
}

/// What the bucket says this node should do, and the order that says it.
#[derive(Debug)]
pub struct Step {
    pub step: NodeStep,
    pub order: Option<RestoreOrder>,
}

impl OrderWatch {
    pub async fn step(&self) -> Result<Step, OrderWatchError> {
        let stored = match self.store.restore_order().await {
            Ok(stored) => stored,
            // No bucket holds no order; the seed then forms a new cluster
            // and says why.
            Err(BackupStoreError::NoSuchBucket { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let order = match stored {
            Some(stored) => {
                let object = self.store.layout().restore_order_key();
                self.instructions
                    .open::<RestoreOrder>(&object, &stored)
                    .await?
            }
            None => None,
        };
        let acknowledged = match &order {
            Some(order) if order.phase == Phase::Quarantine => self
                .store
                .quarantine_acks(&order.id)
                .await?
                .contains(&self.instance_id),
            _ => false,
        };
        Ok(Step {
            step: node_step(order.as_ref(), acknowledged),
            order,
        })
    }

    /// Returns once an order asks this node to stop its etcd; runs for as
    /// long as etcd does otherwise. An unreadable bucket is logged once per
    /// problem and read again: it is no reason to stop a serving member.
    pub async fn until_quarantine(&self) -> RestoreOrder {
        let mut last_problem = String::new();
        loop {
            tokio::time::sleep(self.interval).await;
            match self.step().await {
                Ok(Step {
                    step: NodeStep::Quarantine,
                    order: Some(order),
                }) => return order,
                Ok(_) => last_problem.clear(),
                Err(problem) => {
                    let problem = problem.to_string();
                    if problem != last_problem {
                        tracing::warn!(%problem, "cannot read the restore order; reading it again");
                        last_problem = problem;
                    }
                }
            }
        }
    }
}
