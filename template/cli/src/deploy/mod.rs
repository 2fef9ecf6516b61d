//! What `etcd-aws-cfn` (deploy) does besides generating the template: make
//! the cluster's secrets before the stack ([`cluster_secrets`]), with a key
//! of the stack's own unless told one ([`secrets_key`]), stage a
//! template too large to send inline ([`staging`]), create or update the stack
//! through a change set ([`change_set`]) and read its progress from its
//! events ([`stack_events`]); into an existing VPC, check first that its
//! subnets hold what the cluster needs ([`preflight`]). What the stack runs is
//! uploaded and pinned by [`artifacts`].

pub mod artifacts;
pub mod change_set;
pub mod cluster_secrets;
pub mod preflight;
pub mod secrets_key;
pub mod stack_events;
pub mod staging;
