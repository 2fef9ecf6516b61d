//! The rules of the cluster's certificates: when a running node renews its
//! own and the functions', how close each certificate is to expiring, and the
//! name that lets only nodes onto the peer port, and how a new CA replaces
//! the old one without a member ever distrusting a peer.

pub mod ca_rotation;
pub mod expiry;
pub mod functions;
pub mod peer_name;
pub mod renewal;
