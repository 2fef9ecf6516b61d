//! An operator's instruction to the nodes as the bucket holds it (a restore
//! order, a start-empty permit): the instruction's exact JSON and a signature
//! over it by the stack's order-signing key. Only the operators may sign with
//! that key (its key policy says so); the nodes verify with its public key.
//! Being able to write the object is therefore not enough to command the
//! cluster: an object written with a node's stolen credentials, the functions'
//! role or by a script is refused, and the refusal is logged and alarmed.
//!
//! The payload is kept as the very text that was signed, so verifying never
//! depends on how a JSON library orders or spaces fields. The signed message
//! is the instruction's kind, a newline and the payload: a permit signed for
//! one purpose cannot be passed off as an order.
//!
//! This module is the format and the rule; the signature itself is computed by
//! KMS and checked by the caller's verify function (the core does no crypto).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The envelope format this code writes and reads.
pub const FORMAT: u32 = 1;
/// KMS's name for the one algorithm used: ECDSA on NIST P-256 over SHA-256,
/// the signature DER-encoded.
pub const SIGNING_ALGORITHM: &str = "ECDSA_SHA_256";

/// Something an operator orders the nodes to do, kept signed in the bucket.
pub trait Instruction: Serialize + DeserializeOwned {
    /// The name signed with it, telling the kinds of instruction apart.
    const KIND: &'static str;
}

/// An instruction and its signature, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed {
    pub format: u32,
    pub kind: String,
    /// The instruction's JSON, exactly as signed.
    pub payload: String,
    /// The KMS key that signed, as KMS names it (its ARN).
    pub key_id: String,
    pub signing_algorithm: String,
    /// Base64 of the DER-encoded signature over [`Signed::message`].
    pub signature: String,
}

/// Why a stored instruction is not obeyed. [`Refusal::code`] is what logs
/// and tests match on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no order-signing key is configured (--order-signing-key), so no instruction can be verified")]
    NoKey,
    #[error("it is not a signed instruction of format {FORMAT} (written by hand, or by an older etcd-aws-cfn?): {reason}")]
    NotSigned { reason: String },
    #[error("it is a signed {found}, not a {expected}")]
    WrongKind {
        expected: &'static str,
        found: String,
    },
    #[error("it names signing key {found}, not the stack's order-signing key {expected}")]
    WrongKey { expected: String, found: String },
    #[error("its signing algorithm is {found}, not {SIGNING_ALGORITHM}")]
    WrongAlgorithm { found: String },
    #[error("its signature does not verify with the order-signing key's public key: it was not signed by that key, or was changed after")]
    BadSignature,
    #[error("its signed content is not a valid {kind} of this version: {reason}")]
    Content { kind: &'static str, reason: String },
}

impl Refusal {
    /// A stable name for the kind of refusal, for the log's `refusal` field.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NoKey => "no_key",
            Refusal::NotSigned { .. } => "not_signed",
            Refusal::WrongKind { .. } => "wrong_kind",
            Refusal::WrongKey { .. } => "wrong_key",
            Refusal::WrongAlgorithm { .. } => "wrong_algorithm",
            Refusal::BadSignature => "bad_signature",
            Refusal::Content { .. } => "content",
        }
    }
}

/// What to sign for `instruction`: its payload text and the message over it.
pub fn prepare<T: Instruction>(instruction: &T) -> (String, Vec<u8>) {
    // Serialising plain data structures cannot fail.
    let payload = serde_json::to_string_pretty(instruction).unwrap_or_default();
    let message = message(T::KIND, &payload);
    (payload, message)
}

/// Whether two names of a KMS key name the same key: an ARN and the bare
/// key id it ends in do (KMS answers with either, depending on the call and
/// the implementation). This is a diagnosis only: the signature decides.
fn same_key(a: &str, b: &str) -> bool {
    let id = |name: &str| {
        name.rsplit_once(":key/")
            .map_or(name, |(_, id)| id)
            .to_owned()
    };
    id(a) == id(b)
}

fn message(kind: &str, payload: &str) -> Vec<u8> {
    format!("{kind}\n{payload}").into_bytes()
}

impl Signed {
    /// The envelope for `payload` (from [`prepare`]) once KMS signed it.
    pub fn new<T: Instruction>(payload: String, key_id: String, signature: &[u8]) -> Self {
        Signed {
            format: FORMAT,
            kind: T::KIND.to_owned(),
            payload,
            key_id,
            signing_algorithm: SIGNING_ALGORITHM.to_owned(),
            signature: STANDARD.encode(signature),
        }
    }

    /// The bytes the signature covers.
    pub fn message(&self) -> Vec<u8> {
        message(&self.kind, &self.payload)
    }

    /// Reads an envelope from the stored object.
    pub fn parse(stored: &[u8]) -> Result<Signed, Refusal> {
        let signed: Signed = serde_json::from_slice(stored).map_err(|e| Refusal::NotSigned {
            reason: e.to_string(),
        })?;
        if signed.format != FORMAT {
            return Err(Refusal::NotSigned {
                reason: format!("format {} is not {FORMAT}", signed.format),
            });
        }
        Ok(signed)
    }

    /// The instruction, once its envelope names the expected kind, key and
    /// algorithm and `verify(message, signature)` accepts the signature.
    /// `key_arn` is the key the reader trusts (its configuration), never the
    /// one the envelope names.
    pub fn open<T: Instruction>(
        &self,
        key_arn: &str,
        verify: impl FnOnce(&[u8], &[u8]) -> bool,
    ) -> Result<T, Refusal> {
        if self.kind != T::KIND {
            return Err(Refusal::WrongKind {
                expected: T::KIND,
                found: self.kind.clone(),
            });
        }
        if !same_key(&self.key_id, key_arn) {
            return Err(Refusal::WrongKey {
                expected: key_arn.to_owned(),
                found: self.key_id.clone(),
            });
        }
        if self.signing_algorithm != SIGNING_ALGORITHM {
            return Err(Refusal::WrongAlgorithm {
                found: self.signing_algorithm.clone(),
            });
        }
        let signature = STANDARD
            .decode(&self.signature)
            .map_err(|_| Refusal::BadSignature)?;
        if !verify(&self.message(), &signature) {
            return Err(Refusal::BadSignature);
        }
        serde_json::from_str(&self.payload).map_err(|e| Refusal::Content {
            kind: T::KIND,
            reason: e.to_string(),
        })
    }

    /// The instruction without checking who signed it: only for what reads
    /// an order to keep more, never to act (retention protecting the
    /// snapshot an order names, a description of the bucket's history).
    pub fn unverified<T: Instruction>(stored: &[u8]) -> Option<T> {
        let signed = Signed::parse(stored).ok()?;
        (signed.kind == T::KIND)
            .then(|| serde_json::from_str(&signed.payload).ok())
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "arn:aws:kms:eu-west-1:111122223333:key/order";

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Order {
        id: String,
    }
    impl Instruction for Order {
        const KIND: &'static str = "order";
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Permit {
        id: String,
    }
    impl Instruction for Permit {
        const KIND: &'static str = "permit";
    }

    /// A stand-in for the key: the "signature" is the message reversed.
    fn sign(message: &[u8]) -> Vec<u8> {
        message.iter().rev().copied().collect()
    }

    fn verify(message: &[u8], signature: &[u8]) -> bool {
        sign(message) == signature
    }

    fn signed_order(id: &str) -> Signed {
        let (payload, message) = prepare(&Order { id: id.into() });
        Signed::new::<Order>(payload, KEY.into(), &sign(&message))
    }

    fn stored(signed: &Signed) -> Vec<u8> {
        serde_json::to_vec(signed).expect("serialises")
    }

    #[test]
    fn an_instruction_signed_by_the_trusted_key_opens() {
        let signed = Signed::parse(&stored(&signed_order("r1"))).expect("an envelope");
        assert_eq!(
            signed.open::<Order>(KEY, verify),
            Ok(Order { id: "r1".into() })
        );
    }

    #[test]
    fn a_plain_order_without_an_envelope_is_not_signed() {
        let refusal = Signed::parse(br#"{"id":"r1"}"#).expect_err("refused");
        assert_eq!(refusal.code(), "not_signed");
    }

    #[test]
    fn an_envelope_of_another_format_is_not_signed() {
        let mut signed = signed_order("r1");
        signed.format = FORMAT + 1;
        let refusal = Signed::parse(&stored(&signed)).expect_err("refused");
        assert_eq!(refusal.code(), "not_signed");
    }

    #[test]
    fn a_changed_payload_fails_its_signature() {
        let mut signed = signed_order("r1");
        signed.payload = signed.payload.replace("r1", "r2");
        assert_eq!(
            signed.open::<Order>(KEY, verify),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn a_signature_that_is_not_base64_fails() {
        let mut signed = signed_order("r1");
        signed.signature = "not base64!".into();
        assert_eq!(
            signed.open::<Order>(KEY, verify),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn an_envelope_naming_another_key_is_refused_before_any_signature_check() {
        let mut signed = signed_order("r1");
        signed.key_id = "arn:aws:kms:eu-west-1:444455556666:key/attacker".into();
        let refusal = signed
            .open::<Order>(KEY, |_, _| panic!("no signature is checked"))
            .expect_err("refused");
        assert_eq!(refusal.code(), "wrong_key");
    }

    #[test]
    fn a_key_is_the_same_by_its_arn_or_its_bare_id() {
        assert!(same_key(KEY, "order"));
        assert!(same_key("order", KEY));
        assert!(same_key(KEY, KEY));
        assert!(!same_key(
            KEY,
            "arn:aws:kms:eu-west-1:111122223333:key/other"
        ));
        assert!(!same_key(KEY, "other"));
    }

    #[test]
    fn a_permit_cannot_be_passed_off_as_an_order() {
        let (payload, message) = prepare(&Permit { id: "r1".into() });
        let permit = Signed::new::<Permit>(payload, KEY.into(), &sign(&message));
        let refusal = permit.open::<Order>(KEY, verify).expect_err("refused");
        assert_eq!(refusal.code(), "wrong_kind");
        // Relabelled, its signature no longer covers it.
        let relabelled = Signed {
            kind: Order::KIND.into(),
            ..permit
        };
        assert_eq!(
            relabelled.open::<Order>(KEY, verify),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn another_algorithm_is_refused() {
        let mut signed = signed_order("r1");
        signed.signing_algorithm = "RSASSA_PSS_SHA_256".into();
        let refusal = signed.open::<Order>(KEY, verify).expect_err("refused");
        assert_eq!(refusal.code(), "wrong_algorithm");
    }

    #[test]
    fn the_unverified_reading_sees_the_instruction_of_its_kind_only() {
        let bytes = stored(&signed_order("r1"));
        assert_eq!(
            Signed::unverified::<Order>(&bytes),
            Some(Order { id: "r1".into() })
        );
        assert_eq!(Signed::unverified::<Permit>(&bytes), None);
        assert_eq!(Signed::unverified::<Order>(b"{}"), None);
    }
}
