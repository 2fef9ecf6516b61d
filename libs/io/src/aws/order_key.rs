//! The stack's order-signing key in KMS: the operator tool signs its
//! instructions with it ([`OrderKey::sign`]), every reader verifies them with
//! its public key ([`OrderTrust`]), fetched once and checked locally, so a
//! node polling the bucket makes no KMS request per poll. The envelope and
//! the rule are the core's ([`etcd_aws_core::contract::signed`]).

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use etcd_aws_core::contract::signed::{self, Instruction, Refusal, Signed};
use rustls::pki_types::{alg_id, SignatureVerificationAlgorithm};
use tokio::sync::OnceCell;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::aws::error::read;

#[derive(Debug, thiserror::Error)]
pub enum OrderKeyError {
    #[error("KMS {operation} with order-signing key {key} failed: {message}; the caller needs kms:{operation} on it (the key policy names the operators as signers and the cluster's roles as verifiers)")]
    Kms {
        operation: &'static str,
        key: String,
        message: String,
    },
    #[error("order-signing key {key} is not an ECC_NIST_P256 signing key ({reason}); the stack creates one, pass its ARN")]
    UnsuitableKey { key: String, reason: String },
}

/// The key as the operator tool and the readers reach it.
#[derive(Debug, Clone)]
pub struct OrderKey {
    kms: aws_sdk_kms::Client,
    /// An ARN, key id or alias, as configured.
    key: String,
}

impl OrderKey {
    pub fn new(config: &aws_config::SdkConfig, key: &str) -> Self {
        OrderKey {
            kms: aws_sdk_kms::Client::new(config),
            key: key.to_owned(),
        }
    }

    /// `instruction` signed by the key (KMS Sign: only operators may).
    pub async fn sign<T: Instruction>(&self, instruction: &T) -> Result<Signed, OrderKeyError> {
        let (payload, message) = signed::prepare(instruction);
        let answer = self
            .kms
            .sign()
            .key_id(&self.key)
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| self.failed("Sign", read(&e).summary))?;
        let key_id = answer
            .key_id()
            .map_or_else(|| self.key.clone(), str::to_owned);
        let signature = answer
            .signature()
            .ok_or_else(|| self.failed("Sign", "the answer carried no signature".into()))?;
        Ok(Signed::new::<T>(payload, key_id, signature.as_ref()))
    }

    /// The key's public half, to verify with (KMS GetPublicKey).
    pub async fn verifier(&self) -> Result<Verifier, OrderKeyError> {
        let answer = self
            .kms
            .get_public_key()
            .key_id(&self.key)
            .send()
            .await
            .map_err(|e| self.failed("GetPublicKey", read(&e).summary))?;
        let key_arn = answer
            .key_id()
            .map_or_else(|| self.key.clone(), str::to_owned);
        let der = answer.public_key().ok_or_else(|| {
            self.failed("GetPublicKey", "the answer carried no public key".into())
        })?;
        Verifier::from_public_key(&key_arn, der.as_ref())
    }

    fn failed(&self, operation: &'static str, message: String) -> OrderKeyError {
        OrderKeyError::Kms {
            operation,
            key: self.key.clone(),
            message,
        }
    }
}

/// Checks signatures with the key's public half.
#[derive(Debug, Clone)]
pub struct Verifier {
    key_arn: String,
    /// The P-256 point, as the SubjectPublicKeyInfo carries it.
    point: Vec<u8>,
}

/// rustls's (aws-lc's) ECDSA P-256 with SHA-256 over DER signatures: the
/// TLS stack's own, so verifying needs no second crypto library.
fn ecdsa_p256_sha256() -> Option<&'static dyn SignatureVerificationAlgorithm> {
    rustls::crypto::aws_lc_rs::default_provider()
        .signature_verification_algorithms
        .all
        .iter()
        .copied()
        .find(|alg| {
            alg.public_key_alg_id() == alg_id::ECDSA_P256
                && alg.signature_alg_id() == alg_id::ECDSA_SHA256
        })
}

impl Verifier {
    /// From the DER SubjectPublicKeyInfo KMS gives out.
    pub fn from_public_key(key_arn: &str, der: &[u8]) -> Result<Self, OrderKeyError> {
        let unsuitable = |reason: String| OrderKeyError::UnsuitableKey {
            key: key_arn.to_owned(),
            reason,
        };
        let (_, info) = SubjectPublicKeyInfo::from_der(der)
            .map_err(|e| unsuitable(format!("its public key does not parse: {e}")))?;
        let curve = info
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|oid| oid.to_id_string());
        // id-ecPublicKey on prime256v1.
        if info.algorithm.algorithm.to_id_string() != "1.2.840.10045.2.1"
            || curve.as_deref() != Some("1.2.840.10045.3.1.7")
        {
            return Err(unsuitable(format!(
                "its public key is {} {}",
                info.algorithm.algorithm.to_id_string(),
                curve.unwrap_or_default()
            )));
        }
        Ok(Verifier {
            key_arn: key_arn.to_owned(),
            point: info.subject_public_key.data.to_vec(),
        })
    }

    /// The instruction in `stored`, if this key signed it.
    pub fn open<T: Instruction>(&self, stored: &[u8]) -> Result<T, Refusal> {
        let signed = Signed::parse(stored)?;
        signed.open(&self.key_arn, |message, signature| {
            ecdsa_p256_sha256().is_some_and(|alg| {
                alg.verify_signature(&self.point, message, signature)
                    .is_ok()
            })
        })
    }
}

/// What a reader trusts: the configured key's public half, fetched on first
/// use and kept; or no key, and then no instruction is obeyed.
#[derive(Debug)]
pub struct OrderTrust {
    key: Option<OrderKey>,
    verifier: OnceCell<Verifier>,
}

impl OrderTrust {
    pub fn new(key: Option<OrderKey>) -> Self {
        OrderTrust {
            key,
            verifier: OnceCell::new(),
        }
    }

    /// The instruction in `stored` if the key signed it (`Ok(Err(_))` says
    /// why not); `Err` when the key's public half cannot be fetched, which
    /// is worth trying again.
    pub async fn open<T: Instruction>(
        &self,
        stored: &[u8],
    ) -> Result<Result<T, Refusal>, OrderKeyError> {
        let Some(key) = &self.key else {
            return Ok(Err(Refusal::NoKey));
        };
        let verifier = self.verifier.get_or_try_init(|| key.verifier()).await?;
        Ok(verifier.open(stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use etcd_aws_core::backup::empty_start::EmptyStartPermit;
    use etcd_aws_core::contract::restore_order::RestoreOrder;
    use rcgen::PublicKeyData;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::SignatureScheme;

    const KEY_ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/order";

    /// A P-256 key as KMS would hold one, signing the way KMS does (DER
    /// ECDSA over SHA-256 of the message), and its verifier.
    struct TestKey {
        pair: rcgen::KeyPair,
    }

    impl TestKey {
        fn new() -> Self {
            TestKey {
                pair: rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                    .expect("a P-256 key"),
            }
        }

        fn sign<T: Instruction>(&self, instruction: &T) -> Vec<u8> {
            let (payload, message) = signed::prepare(instruction);
            let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pair.serialize_der()));
            let signer = rustls::crypto::aws_lc_rs::sign::any_ecdsa_type(&der)
                .expect("an ECDSA key")
                .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
                .expect("P-256 with SHA-256");
            let signature = signer.sign(&message).expect("signs");
            serde_json::to_vec(&Signed::new::<T>(payload, KEY_ARN.into(), &signature))
                .expect("serialises")
        }

        fn verifier(&self) -> Verifier {
            Verifier::from_public_key(KEY_ARN, &self.pair.subject_public_key_info())
                .expect("suitable")
        }
    }

    fn permit() -> EmptyStartPermit {
        EmptyStartPermit {
            history: "2 segments up to revision 9, pointer absent, restore order none".into(),
            by: "operator".into(),
            at: 1,
        }
    }

    #[test]
    fn an_instruction_signed_by_the_key_opens_with_its_public_half() {
        let key = TestKey::new();
        let stored = key.sign(&permit());
        assert_eq!(
            key.verifier().open::<EmptyStartPermit>(&stored),
            Ok(permit())
        );
    }

    #[test]
    fn an_instruction_signed_by_another_key_of_the_same_name_is_refused() {
        let stored = TestKey::new().sign(&permit());
        let refusal = TestKey::new()
            .verifier()
            .open::<EmptyStartPermit>(&stored)
            .expect_err("refused");
        assert_eq!(refusal, Refusal::BadSignature);
    }

    #[test]
    fn a_signed_permit_is_no_restore_order() {
        let key = TestKey::new();
        let refusal = key
            .verifier()
            .open::<RestoreOrder>(&key.sign(&permit()))
            .expect_err("refused");
        assert_eq!(refusal.code(), "wrong_kind");
    }

    #[test]
    fn an_ed25519_public_key_is_unsuitable() {
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("a key");
        let error = Verifier::from_public_key(KEY_ARN, &other.subject_public_key_info())
            .expect_err("refused");
        assert!(
            matches!(error, OrderKeyError::UnsuitableKey { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_public_key_that_is_not_der_is_unsuitable() {
        let error = Verifier::from_public_key("arn:k", b"not der").expect_err("refused");
        assert!(
            matches!(error, OrderKeyError::UnsuitableKey { .. }),
            "{error}"
        );
    }

    #[test]
    fn the_tls_stack_offers_ecdsa_p256_with_sha256() {
        assert!(ecdsa_p256_sha256().is_some());
    }

    #[tokio::test]
    async fn without_a_key_every_instruction_is_refused() {
        let trust = OrderTrust::new(None);
        let opened = trust
            .open::<RestoreOrder>(b"{}")
            .await
            .expect("no KMS call is made");
        assert_eq!(opened.expect_err("refused"), Refusal::NoKey);
    }
}
