//! TLS for every etcd connection: the cluster's certificate authority, the
//! certificates it issues, and where they are kept.
//!
//! One CA per cluster, created at deploy time and kept in Secrets Manager
//! (two while `rotate-ca` replaces it: members then trust a bundle of both).
//! Each node issues itself a peer-and-server certificate for its private IP at
//! boot (and renews it while it runs), so no certificate is ever copied
//! between machines; the functions and users hold client certificates only,
//! which cannot join the cluster. [`served`] reads back the certificate a
//! member serves, for the expiry metrics.

pub mod authority;
pub mod certificate;
pub mod client_source;
pub mod credentials;
pub mod secret_store;
pub mod served;

pub use authority::{ClusterCa, IssuedCertificate};
pub use certificate::CertificateError;
pub use client_source::{ClientTlsError, ClientTlsSource};
pub use credentials::{RenewableCredentials, TlsCredentials};
pub use secret_store::{CaRotation, CaState, NewSecret, SecretStore, SecretStoreError};
