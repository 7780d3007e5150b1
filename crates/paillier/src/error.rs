//! The crate's one error type.

use thiserror::Error;

/// What went wrong; every message says what the caller can do about it.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum PaillierError {
    /// The modulus is too small for 128-bit security (or too large to accept).
    #[error(
        "a {bits}-bit Paillier modulus is refused: 128-bit security needs at least {min} bits \
         (NIST SP 800-57 rates factoring a 3072-bit modulus at 128 bits) and this build accepts at most {max}; \
         generate a key of {min} bits"
    )]
    ModulusSize {
        /// Bits of the offered modulus.
        bits: u32,
        /// The smallest accepted size.
        min: u32,
        /// The largest accepted size.
        max: u32,
    },
    /// Bytes ran out before the structure did.
    #[error("truncated {what}: {needed} bytes needed, only {available} present — the data was cut short")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes that were there.
        available: usize,
    },
    /// The bytes do not start with the Paillier magic.
    #[error("not a heinfer Paillier {what}: the bytes do not start with the magic \"HEPA\"")]
    BadMagic {
        /// What was being read.
        what: &'static str,
    },
    /// A format version this build cannot read.
    #[error("{what} has format version {found}; this build reads version {supported} — upgrade the reader")]
    Version {
        /// What was being read.
        what: &'static str,
        /// Version in the bytes.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// The header names another kind of object.
    #[error("expected a Paillier {expected}, found a {found}")]
    WrongKind {
        /// Kind wanted.
        expected: &'static str,
        /// Kind found.
        found: &'static str,
    },
    /// A field has a value outside its range.
    #[error("invalid {field}: {detail}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why it is invalid.
        detail: String,
    },
    /// A ciphertext is not below n².
    #[error("ciphertext {index} is out of range: a Paillier ciphertext must be below n² of the key it was made for")]
    CiphertextOutOfRange {
        /// Position in the batch.
        index: usize,
    },
    /// A ciphertext shares a factor with n (or is zero), so it is no ciphertext at all.
    #[error("ciphertext {index} is not invertible modulo n² (it is zero or shares a factor with n): it was not made by encryption under this key")]
    CiphertextNotInvertible {
        /// Position in the batch.
        index: usize,
    },
    /// Ciphertexts made under another public key.
    #[error("the ciphertexts were made for key {found}, not for this key {expected}: encrypt with the registered public key")]
    KeyMismatch {
        /// Key id of this key.
        expected: String,
        /// Key id written with the ciphertexts.
        found: String,
    },
    /// Bytes left after the structure ended.
    #[error("{count} unexpected bytes after the {what}")]
    TrailingBytes {
        /// What was read.
        what: &'static str,
        /// How many bytes were left.
        count: usize,
    },
    /// Model and input sizes disagree.
    #[error("the model takes {expected} inputs but {found} ciphertexts were given")]
    Dimension {
        /// Inputs the model takes.
        expected: usize,
        /// Inputs given.
        found: usize,
    },
    /// A real value that fixed point cannot hold.
    #[error("{what} {value} cannot be encoded with {frac_bits} fractional bits: {detail}")]
    Encoding {
        /// What was encoded.
        what: &'static str,
        /// The value.
        value: f64,
        /// The fractional bits asked for.
        frac_bits: u32,
        /// Why not.
        detail: &'static str,
    },
    /// A plaintext too large for the modulus (or for the bound the caller stated).
    #[error("plaintext out of range: {detail}")]
    PlaintextRange {
        /// Which bound was broken.
        detail: String,
    },
    /// Key material that does not form a valid key.
    #[error("invalid Paillier key: {0}")]
    InvalidKey(String),
}
