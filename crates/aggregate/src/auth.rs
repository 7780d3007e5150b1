//! Ed25519 signatures over what a party sends: the message names the protocol, the
//! kind of payload and the round, then the payload's SHA-256 — so a signature for one
//! round, or for a share, is never valid as another.

use ed25519_dalek::{Signature, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::AggregateError;

/// What is signed for a payload of `kind` ("contribution" or "share") in `round`.
pub fn signing_message(kind: &str, round: &str, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(64 + round.len());
    m.extend_from_slice(b"heinfer/aggregate/v1/");
    m.extend_from_slice(kind.as_bytes());
    m.push(0);
    m.extend_from_slice(round.as_bytes());
    m.push(0);
    m.extend_from_slice(&Sha256::digest(payload));
    m
}

/// A party's signing key (contributor or committee member).
pub struct Signer(SigningKey);

impl Signer {
    /// From a 32-byte secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }
    /// The verifying key, as 64 lowercase hex digits (how a round names its parties).
    pub fn public_hex(&self) -> String {
        hex(self.0.verifying_key().as_bytes())
    }
    /// The signature of `payload` of `kind` in `round`.
    pub fn sign(&self, kind: &str, round: &str, payload: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.0.sign(&signing_message(kind, round, payload)).to_bytes()
    }
}

/// Checks `signature` by the key `public_hex` over `payload` of `kind` in `round`.
pub fn verify(
    public_hex: &str,
    kind: &str,
    round: &str,
    payload: &[u8],
    signature: &[u8],
) -> Result<(), AggregateError> {
    let key = parse_key(public_hex)?;
    let sig: [u8; 64] = signature
        .try_into()
        .map_err(|_| AggregateError::Auth(format!("a signature is 64 bytes, got {}", signature.len())))?;
    key.verify(&signing_message(kind, round, payload), &Signature::from_bytes(&sig))
        .map_err(|_| AggregateError::Auth(format!("the signature of this {kind} by {public_hex} does not verify")))
}

/// A verifying key from 64 hex digits; refuses anything else (and weak points).
pub fn parse_key(public_hex: &str) -> Result<VerifyingKey, AggregateError> {
    let bad = || AggregateError::Auth(format!("{public_hex:?} is not an Ed25519 public key (64 hex digits)"));
    if public_hex.len() != 64 || !public_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&public_hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad())?;
    if key.is_weak() {
        return Err(bad());
    }
    Ok(key)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_binds_kind_round_and_payload() {
        let s = Signer::from_seed(&[1; 32]);
        let sig = s.sign("contribution", "r1", b"data");
        verify(&s.public_hex(), "contribution", "r1", b"data", &sig).unwrap();
        for (kind, round, payload) in
            [("share", "r1", &b"data"[..]), ("contribution", "r2", b"data"), ("contribution", "r1", b"datb")]
        {
            assert!(verify(&s.public_hex(), kind, round, payload, &sig).is_err());
        }
        let other = Signer::from_seed(&[2; 32]);
        assert!(verify(&other.public_hex(), "contribution", "r1", b"data", &sig).is_err());
        assert!(verify("zz", "contribution", "r1", b"data", &sig).is_err());
        assert!(verify(&s.public_hex(), "contribution", "r1", b"data", &sig[..63]).is_err());
    }
}
