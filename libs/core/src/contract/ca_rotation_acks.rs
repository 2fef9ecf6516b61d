//! The nodes' acknowledgements of a CA rotation's stages
//! ([`crate::certificates::ca_rotation`]): an empty object per node in the
//! backup bucket, under the rotation's id and the stage's name. The operator's
//! `rotate-ca` moves to the next stage once every node has one; the nodes
//! read them to know whose turn it is to restart.
//!
//! A node names its object as it names a restore acknowledgement, after its
//! role session (`<role id>:<instance id>`), so the node role's policy lets it
//! write its own and no other's; a node started without `--node-role-id` (no
//! stack around it) names it after its instance id.

use crate::backup::manifest::BackupLayout;
use crate::certificates::ca_rotation::Stage;
use crate::contract::names::bucket::CA_ROTATION_DIR;
use crate::contract::restore_order::Acknowledger;

impl BackupLayout {
    /// Where the nodes acknowledge `stage` of rotation `rotation`.
    pub fn ca_rotation_acks_prefix(&self, rotation: &str, stage: Stage) -> String {
        format!("{}{CA_ROTATION_DIR}{rotation}/{stage}/", self.prefix())
    }

    /// The object by which the node named `node` (see [`ack_name`])
    /// acknowledges `stage`.
    pub fn ca_rotation_ack_key(&self, rotation: &str, stage: Stage, node: &str) -> String {
        format!("{}{node}", self.ca_rotation_acks_prefix(rotation, stage))
    }
}

/// The name a node's acknowledgement carries: its role session's when it
/// knows its role, its instance id otherwise.
pub fn ack_name(acknowledger: Option<&Acknowledger>, instance_id: &str) -> String {
    match acknowledger {
        Some(node) => node.name(),
        None => instance_id.to_owned(),
    }
}

/// The instance an acknowledgement's name speaks for; `None` for a name no
/// node writes (an empty part, or an extra level).
pub fn acknowledging_instance(name: &str) -> Option<&str> {
    if name.is_empty() || name.contains('/') {
        return None;
    }
    match name.rsplit_once(':') {
        None => Some(name),
        Some(_) => Acknowledger::instance_of(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_live_under_the_rotation_and_the_stage() {
        let layout = BackupLayout::new("backups/");
        assert_eq!(
            layout.ca_rotation_ack_key("r1", Stage::DropOld, "AROA1:i-a"),
            "backups/ca-rotation/r1/drop-old/AROA1:i-a"
        );
    }

    #[test]
    fn a_node_with_a_role_names_its_acknowledgement_after_its_role_session() {
        let node = Acknowledger {
            role_id: "AROA1".into(),
            instance_id: "i-a".into(),
        };
        assert_eq!(ack_name(Some(&node), "i-a"), "AROA1:i-a");
        assert_eq!(ack_name(None, "i-a"), "i-a");
    }

    #[test]
    fn acknowledging_instances() {
        let cases = [
            ("AROA1:i-a", Some("i-a")),
            ("i-a", Some("i-a")),
            (":i-a", None),
            ("AROA1:", None),
            ("x/i-a", None),
            ("", None),
        ];
        for (name, expected) in cases {
            assert_eq!(acknowledging_instance(name), expected, "{name}");
        }
    }
}
