//! Reading a certificate back, to refuse a bad one with a clear reason before
//! etcd or a TLS handshake refuses it with an obscure one.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_aws_core::certificates::renewal::Lifetime;

use x509_parser::extensions::GeneralName;
use x509_parser::pem::{parse_x509_pem, Pem};
use x509_parser::prelude::X509Certificate;

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("{what} is not a PEM certificate ({reason}); issue a new one from the cluster CA")]
    Unreadable { what: String, reason: String },
    #[error("{what} expired {ago} ago (valid until {until}); {remedy}")]
    Expired {
        what: String,
        until: String,
        ago: String,
        remedy: &'static str,
    },
    #[error("{what} is not valid before {from} (check this machine's clock)")]
    NotYetValid { what: String, from: String },
    #[error("{what} (subject {subject}) was not issued by this cluster's CA (issuer {issuer}); use a certificate issued from the CA in the cluster's secret")]
    WrongIssuer {
        what: String,
        subject: String,
        issuer: String,
    },
}

const LEAF_REMEDY: &str = "issue a new one from the cluster CA (nodes issue theirs at start, `etcd-aws-cfn issue-client-cert` issues client certificates)";
const CA_REMEDY: &str = "the cluster needs a new CA: `etcd-aws-cfn rotate-ca` replaces it without downtime while the old one is still valid; once it has expired, store a new one in the CA secret, restart every node so it issues itself a new certificate, and re-issue the client certificates";

/// What a checked certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub common_name: String,
    pub ips: Vec<IpAddr>,
    pub dns_names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl CertificateInfo {
    /// Its life from when it was issued: this project's certificates start
    /// a clock-skew allowance before they are issued.
    pub fn lifetime(&self) -> Lifetime {
        let issued_at = self.not_before + crate::tls::authority::CLOCK_SKEW_ALLOWANCE;
        Lifetime {
            issued_at: issued_at.min(self.not_after),
            not_after: self.not_after,
        }
    }
}

/// Checks that `cert_pem` was signed by the CA in `ca_pem` and is valid at
/// `now`. `what` names the certificate in errors ("client certificate /path").
pub fn check_certificate(
    what: &str,
    cert_pem: &str,
    ca_pem: &str,
    now: SystemTime,
) -> Result<CertificateInfo, CertificateError> {
    check(what, cert_pem, ca_pem, now, LEAF_REMEDY)
}

/// Checks a (self-signed) CA certificate: readable and valid at `now`.
pub fn check_ca(
    what: &str,
    ca_pem: &str,
    now: SystemTime,
) -> Result<CertificateInfo, CertificateError> {
    check(what, ca_pem, ca_pem, now, CA_REMEDY)
}

/// Whether the PEM bundle `bundle` holds the certificate `cert_pem` (the
/// same bytes, however the PEM text is laid out).
pub fn bundle_holds(bundle: &str, cert_pem: &str) -> bool {
    let ders = |pem: &str| -> Vec<Vec<u8>> {
        Pem::iter_from_buffer(pem.as_bytes())
            .filter_map(Result::ok)
            .map(|block| block.contents)
            .collect()
    };
    let wanted = ders(cert_pem);
    !wanted.is_empty() && wanted.iter().all(|der| ders(bundle).contains(der))
}

/// When the PEM certificate `cert_pem` expires, whether or not it is valid
/// now; `what` names it in the error.
pub fn not_after(what: &str, cert_pem: &str) -> Result<SystemTime, CertificateError> {
    let unreadable = |reason: String| CertificateError::Unreadable {
        what: what.to_owned(),
        reason,
    };
    let (_, block) = parse_x509_pem(cert_pem.as_bytes()).map_err(|e| unreadable(e.to_string()))?;
    let cert = block.parse_x509().map_err(|e| unreadable(e.to_string()))?;
    Ok(to_system_time(cert.validity().not_after.timestamp()))
}

/// The DNS names of the DER certificate `der` (as a TLS handshake carries it).
pub fn dns_names_of_der(der: &[u8]) -> Option<Vec<String>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(dns_sans(&cert))
}

/// When the DER certificate `der` (as a TLS handshake carries it) expires.
pub fn not_after_of_der(der: &[u8]) -> Option<SystemTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(to_system_time(cert.validity().not_after.timestamp()))
}

fn check(
    what: &str,
    cert_pem: &str,
    ca_pem: &str,
    now: SystemTime,
    expired_remedy: &'static str,
) -> Result<CertificateInfo, CertificateError> {
    let unreadable = |what: &str, reason: String| CertificateError::Unreadable {
        what: what.to_owned(),
        reason,
    };
    let (_, cert_block) =
        parse_x509_pem(cert_pem.as_bytes()).map_err(|e| unreadable(what, e.to_string()))?;
    let cert = cert_block
        .parse_x509()
        .map_err(|e| unreadable(what, e.to_string()))?;
    let ca_what = format!("the CA certificate checking {what}");
    // During a CA rotation a member trusts a bundle of two: any may be the issuer.
    let ca_blocks = Pem::iter_from_buffer(ca_pem.as_bytes())
        .collect::<Result<Vec<Pem>, _>>()
        .map_err(|e| unreadable(&ca_what, e.to_string()))?;
    if ca_blocks.is_empty() {
        return Err(unreadable(&ca_what, "no PEM certificate in it".to_owned()));
    }
    let mut issued_by_one = false;
    for block in &ca_blocks {
        let ca = block
            .parse_x509()
            .map_err(|e| unreadable(&ca_what, e.to_string()))?;
        if cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok() {
            issued_by_one = true;
            break;
        }
    }
    if !issued_by_one {
        return Err(CertificateError::WrongIssuer {
            what: what.to_owned(),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
        });
    }
    let from = to_system_time(cert.validity().not_before.timestamp());
    let until = to_system_time(cert.validity().not_after.timestamp());
    if now < from {
        return Err(CertificateError::NotYetValid {
            what: what.to_owned(),
            from: cert.validity().not_before.to_string(),
        });
    }
    if now > until {
        let ago = now.duration_since(until).unwrap_or_default();
        return Err(CertificateError::Expired {
            what: what.to_owned(),
            until: cert.validity().not_after.to_string(),
            ago: humanize(ago),
            remedy: expired_remedy,
        });
    }
    Ok(CertificateInfo {
        common_name: common_name(&cert),
        ips: ip_sans(&cert),
        dns_names: dns_sans(&cert),
        not_before: from,
        not_after: until,
    })
}

fn common_name(cert: &X509Certificate<'_>) -> String {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn dns_sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(sans)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    sans.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            _ => None,
        })
        .collect()
}

fn ip_sans(cert: &X509Certificate<'_>) -> Vec<IpAddr> {
    let Ok(Some(sans)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    sans.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn to_system_time(timestamp: i64) -> SystemTime {
    match u64::try_from(timestamp) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH - Duration::from_secs(timestamp.unsigned_abs()),
    }
}

/// "3d 4h", "12m": enough to tell an operator how stale a certificate is.
fn humanize(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::authority::{ClusterCa, ValidityPeriod};

    const HOUR: Duration = Duration::from_secs(3600);

    fn ca() -> ClusterCa {
        ClusterCa::generate("test", ValidityPeriod::starting_now(HOUR * 24)).expect("CA")
    }

    #[test]
    fn a_certificate_from_either_ca_of_a_bundle_checks_and_from_neither_does_not() {
        let (old, new, other) = (ca(), ca(), ca());
        let both = crate::tls::secret_store::bundle(&[old.cert_pem(), new.cert_pem()]);
        let now = SystemTime::now();
        for (name, issuer) in [("old", &old), ("new", &new)] {
            let issued = issuer
                .issue_client(name, ValidityPeriod::starting_now(HOUR))
                .expect("issue");
            check_certificate(name, &issued.cert_pem, &both, now).expect("trusted by the bundle");
        }
        let stranger = other
            .issue_client("stranger", ValidityPeriod::starting_now(HOUR))
            .expect("issue");
        assert!(matches!(
            check_certificate("stranger", &stranger.cert_pem, &both, now),
            Err(CertificateError::WrongIssuer { .. })
        ));
    }

    #[test]
    fn a_bundle_holds_the_certificates_put_in_it_and_no_other() {
        let (old, new) = (ca(), ca());
        let both = crate::tls::secret_store::bundle(&[old.cert_pem(), new.cert_pem()]);
        assert!(bundle_holds(&both, old.cert_pem()));
        assert!(bundle_holds(&both, new.cert_pem()));
        assert!(!bundle_holds(old.cert_pem(), new.cert_pem()));
        assert!(!bundle_holds(&both, "not a certificate"));
    }

    #[test]
    fn a_certificates_life_begins_when_it_was_issued_not_at_its_back_dated_start() {
        let ca = ca();
        let issued_at = SystemTime::now();
        let issued = ca
            .issue_client("alice", ValidityPeriod::starting_now(HOUR))
            .expect("issue");
        let info =
            check_certificate("alice", &issued.cert_pem, ca.cert_pem(), issued_at).expect("valid");
        let life = info.lifetime();
        assert!(info.not_before < issued_at - Duration::from_secs(60));
        // X.509 times are whole seconds.
        let off = life
            .issued_at
            .duration_since(issued_at)
            .unwrap_or_else(|e| e.duration());
        assert!(off <= Duration::from_secs(1), "{off:?}");
        assert_eq!(life.not_after, info.not_after);
    }

    #[test]
    fn an_expired_certificate_says_when_it_expired_and_what_to_do() {
        let ca = ca();
        let now = SystemTime::now();
        let old = ca
            .issue_client(
                "alice",
                ValidityPeriod {
                    from: now - HOUR * 50,
                    until: now - HOUR * 26,
                },
            )
            .expect("issue");
        let error = check_certificate(
            "client certificate alice.pem",
            &old.cert_pem,
            ca.cert_pem(),
            now,
        )
        .expect_err("expired");
        let message = error.to_string();
        assert!(
            matches!(error, CertificateError::Expired { .. }),
            "{message}"
        );
        assert!(message.contains("alice.pem expired 1d 2h ago"), "{message}");
        assert!(message.contains("issue-client-cert"), "{message}");
    }

    #[test]
    fn an_expired_ca_says_the_cluster_needs_a_new_one() {
        let now = SystemTime::now();
        let old = ClusterCa::generate(
            "old",
            ValidityPeriod {
                from: now - HOUR * 3,
                until: now - HOUR,
            },
        )
        .expect("CA");
        let error = check_ca("the cluster CA", old.cert_pem(), now).expect_err("expired");
        assert!(error.to_string().contains("needs a new CA"), "{error}");
    }

    #[test]
    fn a_certificate_from_the_future_points_at_the_clock() {
        let ca = ca();
        let now = SystemTime::now();
        let future = ca
            .issue_client(
                "bob",
                ValidityPeriod {
                    from: now + HOUR,
                    until: now + HOUR * 2,
                },
            )
            .expect("issue");
        let error =
            check_certificate("bob", &future.cert_pem, ca.cert_pem(), now).expect_err("early");
        assert!(error.to_string().contains("clock"), "{error}");
    }

    #[test]
    fn garbage_is_unreadable_not_a_panic() {
        let error = check_certificate("cert.pem", "hello", ca().cert_pem(), SystemTime::now())
            .expect_err("garbage");
        assert!(
            matches!(error, CertificateError::Unreadable { .. }),
            "{error}"
        );
    }
}
