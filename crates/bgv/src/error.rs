//! Errors of the BGV scheme. The RLWE layer's errors (mismatched parameters or levels,
//! missing keys, wire errors) pass through as [`Error::Rlwe`].

use thiserror::Error;

/// Any failure of a BGV parameter set, encoding, encryption or evaluation.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Error {
    /// An error of the RLWE layer (parameters, levels, keys, shapes, the wire format).
    #[error(transparent)]
    Rlwe(#[from] rlwe::Error),
    /// A plaintext modulus the scheme cannot use.
    #[error("plaintext modulus t = {t} is unusable: {reason}")]
    PlaintextModulus {
        /// The modulus refused.
        t: u64,
        /// Why, and what would do.
        reason: String,
    },
    /// Batching (SIMD slots) needs t ≡ 1 (mod 2N).
    #[error(
        "batching needs t ≡ 1 (mod 2N = {two_n}) and t = {t} is not: use coefficient encoding \
         (encode_coeffs), or a t ≡ 1 mod 2N such as 65537 (for N up to 2^15)"
    )]
    NoBatching {
        /// The plaintext modulus.
        t: u64,
        /// 2N.
        two_n: usize,
    },
    /// More values than slots (or coefficients) to encode.
    #[error("{given} values do not fit in {max} slots")]
    TooManyValues {
        /// Values given.
        given: usize,
        /// Slots (or coefficients) available: N.
        max: usize,
    },
    /// The result's noise could reach half the modulus at its level: it might decrypt
    /// wrong, so the operation is refused.
    #[error(
        "{op} refused: its noise could reach 2^{bound_bits:.1}, and a ciphertext at level {level} holds \
         less than 2^{limit_bits:.1} (half its modulus, less one bit of margin) before decryption goes wrong; \
         switch the operands' modulus down first (mod_switch), or use more or larger ciphertext primes"
    )]
    NoiseBudgetExhausted {
        /// The operation refused.
        op: &'static str,
        /// log2 of the result's noise bound.
        bound_bits: f64,
        /// log2 of the largest noise its level allows.
        limit_bits: f64,
        /// The result's level.
        level: usize,
    },
    /// A parameter set built for another scheme (CKKS's) given to BGV.
    #[error("these parameters are not BGV parameters (no plaintext modulus); build them with bgv::Parameters")]
    NotBgv,
}

impl From<rlwe::ParamError> for Error {
    fn from(e: rlwe::ParamError) -> Self {
        Error::Rlwe(e.into())
    }
}

impl From<rlwe::WireError> for Error {
    fn from(e: rlwe::WireError) -> Self {
        Error::Rlwe(e.into())
    }
}

/// The result of a BGV operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
