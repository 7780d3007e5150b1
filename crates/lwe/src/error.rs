//! The crate's one error type.

use thiserror::Error;

/// What went wrong; every message says what the caller can do about it.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum LweError {
    /// Dimension and modulus below 128-bit security (or beyond 64-bit words).
    #[error(
        "LWE parameters n = 2^{log_n}, q = 2^{log_q} are refused: 128-bit security with a ternary secret allows \
         at most q = 2^53 for n = 2048 (HE Security Standard, 2024); use n = 2048 and log q between 20 and 53"
    )]
    Insecure {
        /// log2 n offered.
        log_n: u32,
        /// log2 q offered.
        log_q: u32,
    },
    /// Bytes ran out before the structure did.
    #[error("truncated LWE {what}: {needed} bytes needed, only {available} present — the data was cut short")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes that were there.
        available: usize,
    },
    /// Bytes after the structure ended.
    #[error("{count} unexpected bytes after the LWE {what}: the data is not one {what}")]
    TrailingBytes {
        /// What was read.
        what: &'static str,
        /// How many bytes were left.
        count: usize,
    },
    /// Not this crate's wire format.
    #[error("not a heinfer LWE {what}: the bytes do not start with the magic \"HELW\"")]
    BadMagic {
        /// What was being read.
        what: &'static str,
    },
    /// A format version this build cannot read.
    #[error("LWE {what} has format version {found}; this build reads version {supported} — upgrade the reader")]
    Version {
        /// What was being read.
        what: &'static str,
        /// Version in the bytes.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// The header names another kind of object.
    #[error("expected an LWE {expected}, found an LWE {found}")]
    WrongKind {
        /// Kind wanted.
        expected: &'static str,
        /// Kind found.
        found: &'static str,
    },
    /// A query or answer under other parameters than the model's.
    #[error(
        "the LWE {what} was made with n = 2^{found_log_n}, q = 2^{found_log_q}, but this model uses \
         n = 2^{want_log_n}, q = 2^{want_log_q}: encrypt with the parameters of the model's client spec"
    )]
    ParamsMismatch {
        /// What was checked.
        what: &'static str,
        /// log2 n in the bytes.
        found_log_n: u32,
        /// log2 q in the bytes.
        found_log_q: u32,
        /// log2 n expected.
        want_log_n: u32,
        /// log2 q expected.
        want_log_q: u32,
    },
    /// Model and input sizes disagree.
    #[error("the model takes {expected} inputs but the query holds {found} values: encrypt one value per input")]
    Dimension {
        /// Inputs the model takes.
        expected: usize,
        /// Values given.
        found: usize,
    },
    /// An answer made from a query under another secret key.
    #[error("the answer was computed on a query made under another secret key ({found}…, this key is {expected}…): decrypt it with the key that encrypted the query")]
    KeyMismatch {
        /// This key's id, first 8 hex digits.
        expected: String,
        /// The id in the answer, first 8 hex digits.
        found: String,
    },
    /// A value the parameters cannot hold.
    #[error("invalid {field}: {detail}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why it is invalid.
        detail: String,
    },
}
