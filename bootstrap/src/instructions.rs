//! The operators' instructions in the bucket (restore orders, start-empty
//! permits) as this node takes them: only what the stack's order-signing key
//! signed ([`etcd_aws_core::contract::signed`]). Anything else is refused and
//! said once per object, with the `instruction_refused` event the stack
//! counts and alarms on: whoever wrote it could write to the bucket but could
//! not sign, which an operator must hear of.

use std::sync::Mutex;

use etcd_aws_core::contract::events;
use etcd_aws_core::contract::signed::Instruction;
use etcd_aws_io::aws::order_key::{OrderKey, OrderKeyError, OrderTrust};

pub struct Instructions {
    trust: OrderTrust,
    /// The object refused last, so that a poll finding it again is quiet.
    last_refused: Mutex<Option<Vec<u8>>>,
}

impl Instructions {
    pub fn new(key: Option<OrderKey>) -> Self {
        if key.is_none() {
            tracing::warn!("no order-signing key (--order-signing-key): this node obeys no restore order and no start-empty permit");
        }
        Instructions {
            trust: OrderTrust::new(key),
            last_refused: Mutex::new(None),
        }
    }

    /// The instruction stored at `object` if an operator signed it, else
    /// `None` (and the refusal logged); `Err` when the key's public half
    /// cannot be fetched (worth another try).
    pub async fn open<T: Instruction>(
        &self,
        object: &str,
        stored: &[u8],
    ) -> Result<Option<T>, OrderKeyError> {
        match self.trust.open::<T>(stored).await? {
            Ok(instruction) => Ok(Some(instruction)),
            Err(refusal) => {
                let mut last = self
                    .last_refused
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if last.as_deref() != Some(stored) {
                    tracing::error!(
                        event = events::INSTRUCTION_REFUSED,
                        instruction = T::KIND,
                        %object,
                        refusal = refusal.code(),
                        reason = %refusal,
                        "REFUSED an instruction in the backup bucket that no operator signed: ignoring it; find out who wrote it (CloudTrail's S3 data events) and delete it"
                    );
                    *last = Some(stored.to_vec());
                }
                Ok(None)
            }
        }
    }
}
