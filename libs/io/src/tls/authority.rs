//! The cluster's certificate authority: creating it, and issuing the peer
//! certificates nodes give themselves and the client certificates of the
//! functions and users.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use etcd_aws_core::certificates::peer_name::PEER_HOSTNAME;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

/// Certificates start this long before they are issued, so that a machine
/// whose clock is a little behind the issuer's still accepts them.
pub(crate) const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    #[error("cannot create the cluster CA: {0}")]
    Create(rcgen::Error),
    #[error("the cluster CA's {part} cannot be read ({source}); the CA secret is damaged: restore its previous version or deploy a new CA")]
    Load {
        part: &'static str,
        source: rcgen::Error,
    },
    #[error("cannot issue a certificate for {subject}: {source}")]
    Issue {
        subject: String,
        source: rcgen::Error,
    },
    #[error("the certificate for {subject} would be valid from {from:?} until {until:?}, which is no time at all")]
    EmptyValidity {
        subject: String,
        from: SystemTime,
        until: SystemTime,
    },
}

/// When a certificate is valid. Tests make expired ones with a period in the past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidityPeriod {
    pub from: SystemTime,
    pub until: SystemTime,
}

impl ValidityPeriod {
    /// From a few minutes ago (clock skew) until `lifetime` from now.
    pub fn starting_now(lifetime: Duration) -> Self {
        let now = SystemTime::now();
        Self {
            from: now - CLOCK_SKEW_ALLOWANCE,
            until: now + lifetime,
        }
    }
}

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// The cluster CA. Whoever holds it can add members to the cluster, so only
/// the nodes read it; everyone else gets a client certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterCa {
    certificate: IssuedCertificate,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("certificate", &self.certificate)
            .finish()
    }
}

impl ClusterCa {
    /// A new self-signed CA named `name` (the stack or group it serves).
    pub fn generate(name: &str, validity: ValidityPeriod) -> Result<Self, AuthorityError> {
        let key = KeyPair::generate().map_err(AuthorityError::Create)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(&format!("etcd-aws CA {name}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, name, validity)?;
        let cert = params.self_signed(&key).map_err(AuthorityError::Create)?;
        Ok(Self {
            certificate: IssuedCertificate {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            },
        })
    }

    /// The CA as kept in its secret; fails when either half does not parse.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, AuthorityError> {
        let ca = Self {
            certificate: IssuedCertificate {
                cert_pem: cert_pem.to_owned(),
                key_pem: key_pem.to_owned(),
            },
        };
        ca.issuer()?;
        Ok(ca)
    }

    /// Refuses a CA that is expired or not yet valid, naming it `what`.
    pub fn check(
        &self,
        what: &str,
        now: SystemTime,
    ) -> Result<crate::tls::certificate::CertificateInfo, crate::tls::certificate::CertificateError>
    {
        crate::tls::certificate::check_ca(what, self.cert_pem(), now)
    }

    pub fn cert_pem(&self) -> &str {
        &self.certificate.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.certificate.key_pem
    }

    /// A node's own certificate: server for clients and peers, and client
    /// towards its peers, for its IPs (private IP first) and any DNS names,
    /// with a new key.
    pub fn issue_peer(
        &self,
        name: &str,
        ips: &[IpAddr],
        dns_names: &[String],
        validity: ValidityPeriod,
    ) -> Result<IssuedCertificate, AuthorityError> {
        let key = KeyPair::generate().map_err(|source| AuthorityError::Issue {
            subject: name.to_owned(),
            source,
        })?;
        self.issue(name, peer_params(ips, dns_names)?, validity, key)
    }

    /// A node's certificate renewed while it runs: the same as
    /// [`Self::issue_peer`], for the key it already holds (`key_pem`). etcd
    /// reads its certificate and key files one after the other at every
    /// handshake; with the key unchanged, whichever certificate it reads
    /// matches the key it reads.
    pub fn renew_peer(
        &self,
        name: &str,
        ips: &[IpAddr],
        dns_names: &[String],
        validity: ValidityPeriod,
        key_pem: &str,
    ) -> Result<IssuedCertificate, AuthorityError> {
        let key = KeyPair::from_pem(key_pem).map_err(|source| AuthorityError::Issue {
            subject: format!("{name} (its current key)"),
            source,
        })?;
        self.issue(name, peer_params(ips, dns_names)?, validity, key)
    }

    /// A certificate that lets `name` use the cluster as a client, and no more.
    pub fn issue_client(
        &self,
        name: &str,
        validity: ValidityPeriod,
    ) -> Result<IssuedCertificate, AuthorityError> {
        let mut params = CertificateParams::default();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().map_err(|source| AuthorityError::Issue {
            subject: name.to_owned(),
            source,
        })?;
        self.issue(name, params, validity, key)
    }

    fn issue(
        &self,
        name: &str,
        mut params: CertificateParams,
        validity: ValidityPeriod,
        key: KeyPair,
    ) -> Result<IssuedCertificate, AuthorityError> {
        let issue_error = |source| AuthorityError::Issue {
            subject: name.to_owned(),
            source,
        };
        params.distinguished_name = common_name(name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, name, validity)?;
        let cert = params
            .signed_by(&key, &self.issuer()?)
            .map_err(issue_error)?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, AuthorityError> {
        let key = KeyPair::from_pem(self.key_pem()).map_err(|source| AuthorityError::Load {
            part: "private key",
            source,
        })?;
        Issuer::from_ca_cert_pem(self.cert_pem(), key).map_err(|source| AuthorityError::Load {
            part: "certificate",
            source,
        })
    }
}

/// A node certificate's names and uses: server for clients and peers, client
/// towards its peers, and the name only node certificates carry
/// ([`PEER_HOSTNAME`]), which etcd's peer port can require.
fn peer_params(ips: &[IpAddr], dns_names: &[String]) -> Result<CertificateParams, AuthorityError> {
    let mut params = CertificateParams::default();
    params
        .subject_alt_names
        .extend(ips.iter().copied().map(SanType::IpAddress));
    let peer_name = PEER_HOSTNAME.to_owned();
    for dns in dns_names.iter().chain([&peer_name]) {
        let dns = dns
            .clone()
            .try_into()
            .map_err(|source| AuthorityError::Issue {
                subject: format!("DNS name {dns}"),
                source,
            })?;
        params.subject_alt_names.push(SanType::DnsName(dns));
    }
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    Ok(params)
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn set_validity(
    params: &mut CertificateParams,
    subject: &str,
    validity: ValidityPeriod,
) -> Result<(), AuthorityError> {
    if validity.until <= validity.from {
        return Err(AuthorityError::EmptyValidity {
            subject: subject.to_owned(),
            from: validity.from,
            until: validity.until,
        });
    }
    params.not_before = OffsetDateTime::from(validity.from);
    params.not_after = OffsetDateTime::from(validity.until);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::certificate::{check_certificate, CertificateError};

    const DAY: Duration = Duration::from_secs(86_400);

    fn ca() -> ClusterCa {
        ClusterCa::generate("test", ValidityPeriod::starting_now(DAY)).expect("CA")
    }

    #[test]
    fn a_ca_survives_the_round_trip_through_its_pem() {
        let ca = ca();
        let loaded = ClusterCa::from_pem(ca.cert_pem(), ca.key_pem()).expect("reload");
        assert_eq!(loaded, ca);
    }

    #[test]
    fn a_damaged_ca_key_is_refused_with_what_to_do() {
        let ca = ca();
        let error = ClusterCa::from_pem(ca.cert_pem(), "not a key").expect_err("damaged");
        assert!(error.to_string().contains("private key"), "{error}");
        assert!(error.to_string().contains("restore"), "{error}");
    }

    #[test]
    fn peer_certificates_are_issued_by_the_ca_for_the_node_ip() {
        let ca = ca();
        let ip: IpAddr = "10.0.1.7".parse().expect("ip");
        let peer = ca
            .issue_peer("i-1", &[ip], &[], ValidityPeriod::starting_now(DAY))
            .expect("issue");
        let info = check_certificate("peer", &peer.cert_pem, ca.cert_pem(), SystemTime::now())
            .expect("valid");
        assert_eq!(info.ips, vec![ip]);
        assert_eq!(info.common_name, "i-1");
    }

    #[test]
    fn only_node_certificates_carry_the_peer_name_the_peer_port_can_require() {
        let ca = ca();
        let ip: IpAddr = "10.0.1.7".parse().expect("ip");
        let balancer = ["etcd.example.internal".to_owned()];
        let node = ca
            .issue_peer("i-1", &[ip], &balancer, ValidityPeriod::starting_now(DAY))
            .expect("issue");
        let renewed = ca
            .renew_peer(
                "i-1",
                &[ip],
                &balancer,
                ValidityPeriod::starting_now(DAY),
                &node.key_pem,
            )
            .expect("renew");
        let client = ca
            .issue_client("alice", ValidityPeriod::starting_now(DAY))
            .expect("issue");
        let names = |pem: &str| {
            check_certificate("c", pem, ca.cert_pem(), SystemTime::now())
                .expect("valid")
                .dns_names
        };
        assert_eq!(
            names(&node.cert_pem),
            vec!["etcd.example.internal".to_owned(), PEER_HOSTNAME.to_owned()]
        );
        assert_eq!(names(&renewed.cert_pem), names(&node.cert_pem));
        assert!(names(&client.cert_pem).is_empty());
    }

    #[test]
    fn a_renewed_peer_certificate_keeps_the_key_and_the_names_and_lives_longer() {
        let ca = ca();
        let ip: IpAddr = "10.0.1.7".parse().expect("ip");
        let names = ["etcd.internal".to_owned()];
        let first = ca
            .issue_peer("i-1", &[ip], &names, ValidityPeriod::starting_now(DAY))
            .expect("issue");
        let renewed = ca
            .renew_peer(
                "i-1",
                &[ip],
                &names,
                ValidityPeriod::starting_now(2 * DAY),
                &first.key_pem,
            )
            .expect("renew");
        assert_eq!(renewed.key_pem, first.key_pem);
        assert_ne!(renewed.cert_pem, first.cert_pem);
        let now = SystemTime::now();
        let before =
            check_certificate("first", &first.cert_pem, ca.cert_pem(), now).expect("valid");
        let after =
            check_certificate("renewed", &renewed.cert_pem, ca.cert_pem(), now).expect("valid");
        assert_eq!((after.common_name.as_str(), &after.ips), ("i-1", &vec![ip]));
        assert!(after.not_after > before.not_after);
    }

    #[test]
    fn a_renewal_with_a_damaged_key_names_the_key() {
        let error = ca()
            .renew_peer(
                "i-1",
                &[],
                &[],
                ValidityPeriod::starting_now(DAY),
                "not a key",
            )
            .expect_err("damaged");
        assert!(error.to_string().contains("current key"), "{error}");
    }

    #[test]
    fn a_certificate_from_another_ca_is_not_ours() {
        let theirs = ca()
            .issue_client("intruder", ValidityPeriod::starting_now(DAY))
            .expect("issue");
        let error = check_certificate(
            "client",
            &theirs.cert_pem,
            ca().cert_pem(),
            SystemTime::now(),
        )
        .expect_err("foreign");
        assert!(
            matches!(error, CertificateError::WrongIssuer { .. }),
            "{error}"
        );
    }

    #[test]
    fn an_empty_validity_period_is_refused() {
        let now = SystemTime::now();
        let error = ca()
            .issue_client(
                "x",
                ValidityPeriod {
                    from: now,
                    until: now,
                },
            )
            .expect_err("empty");
        assert!(
            matches!(error, AuthorityError::EmptyValidity { .. }),
            "{error}"
        );
    }
}
