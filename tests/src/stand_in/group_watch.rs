//! Turns changes in the group's membership into InstanceEvents. Every path that can
//! change membership calls `reconcile` afterwards, so events come from one diff
//! instead of being guessed at each call site.

use std::collections::BTreeSet;

use tokio::sync::{broadcast, Mutex};

use super::instances::{ec2_details, group_members, InstanceEvent};
use super::moto_clients::MotoClients;

const EVENT_BUFFER: usize = 1024;

#[derive(Debug)]
pub struct GroupWatch {
    group_name: String,
    // An async lock: it serialises whole reconciliations, so two of them can never
    // report the same change twice.
    known: Mutex<BTreeSet<String>>,
    events: broadcast::Sender<InstanceEvent>,
}

impl GroupWatch {
    pub fn new(group_name: &str) -> Self {
        Self {
            group_name: group_name.to_owned(),
            known: Mutex::new(BTreeSet::new()),
            events: broadcast::channel(EVENT_BUFFER).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<InstanceEvent> {
        self.events.subscribe()
    }

    /// Reports instances that left the group as Terminated, then new ones as Launched.
    pub async fn reconcile(&self, moto: &MotoClients) -> anyhow::Result<()> {
        let mut known = self.known.lock().await;
        let members = group_members(moto, &self.group_name).await?;
        let current: BTreeSet<String> = members.iter().map(|(id, _)| id.clone()).collect();
        let launched: Vec<String> = members
            .iter()
            .map(|(id, _)| id.clone())
            .filter(|id| !known.contains(id))
            .collect();
        let details = ec2_details(moto, &launched).await?;
        for gone in known.difference(&current) {
            // No receiver is fine: nobody may be watching yet.
            let _ = self
                .events
                .send(InstanceEvent::Terminated { id: gone.clone() });
        }
        for id in launched {
            if let Some((private_ip, _)) = details.get(&id) {
                let _ = self.events.send(InstanceEvent::Launched {
                    id,
                    private_ip: *private_ip,
                });
            }
        }
        *known = current;
        Ok(())
    }
}
