//! Key ids: SHA-256 of the public key's wire bytes, 64 lower-case hex digits.
//!
//! The same rules as `rlwe::wire::KeyId` (one spelling per case, nothing else accepted), kept
//! here so that a Paillier-only client or server does not pull in the RLWE engine.

use crate::error::PaillierError;

/// The id under which a server registers a public key: SHA-256 of [`crate::PublicKey::to_bytes`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 32]);

impl KeyId {
    /// The id of serialized public-key bytes.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        KeyId(Sha256::digest(bytes).into())
    }

    /// Parses exactly 64 hexadecimal digits (either case): no sign, whitespace or prefix, so a
    /// store keyed by the id cannot be fooled by a second spelling.
    pub fn parse(s: &str) -> Result<Self, PaillierError> {
        let bad = || PaillierError::Invalid {
            field: "key id",
            detail: format!("{:?} is not 64 hexadecimal digits", s.chars().take(80).collect::<String>()),
        };
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(KeyId(out))
    }

    /// The 64 lower-case hexadecimal digits (as `Display` writes them).
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({})", self.hex())
    }
}
