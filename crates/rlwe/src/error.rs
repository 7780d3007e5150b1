//! Errors of the RLWE layer and the schemes on it. Each message says what was expected, so the caller can act.

use thiserror::Error;

/// A parameter set that cannot be built, or must not be used.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ParamError {
    #[error("ring degree 2^{log_n} is outside the supported range 2^{min}..=2^{max}")]
    RingDegree { log_n: u32, min: u32, max: u32 },
    #[error(
        "insecure parameters: N = {n} with log2(QP) = {log_qp:.1} bits exceeds the 128-bit bound of \
         {bound} bits (HE Security Standard, 2024 update, ternary secret); use fewer or smaller primes, or a larger N"
    )]
    Insecure { n: usize, log_qp: f64, bound: u32 },
    #[error("prime size of {bits} bits is outside 20..=61")]
    PrimeBits { bits: u32 },
    #[error("not enough {bits}-bit primes ≡ 1 mod 2N for N = {n} (wanted {count})")]
    NotEnoughPrimes { bits: u32, n: usize, count: usize },
    #[error("modulus {q} is not an NTT-friendly prime for N = {n} (must be prime, ≡ 1 mod 2N, below 2^61, and not repeated)")]
    BadModulus { q: u64, n: usize },
    #[error("the ciphertext modulus chain is empty")]
    EmptyChain,
    #[error("no special primes: hybrid key switching needs at least one")]
    NoSpecialPrimes,
    #[error("dnum = {dnum} is invalid for a chain of {levels} primes (need 1 ≤ dnum ≤ {levels})")]
    Dnum { dnum: usize, levels: usize },
    #[error("scale 2^{log_scale} is invalid: it must be between 2^1 and 2^60, and below the top prime")]
    Scale { log_scale: f64 },
    #[error(
        "special primes of {log_p:.1} bits are smaller than a key-switching digit of {log_digit:.1} bits; \
         use more or larger special primes, or more digits (dnum)"
    )]
    SpecialPrimesTooSmall { log_p: f64, log_digit: f64 },
    #[error("these parameters are marked insecure and are refused here")]
    InsecureRefused,
}

/// Reading a serialized object failed. Nothing is allocated before its size is checked.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum WireError {
    #[error("input truncated: needed {needed} bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("not a heinfer object (bad magic)")]
    BadMagic,
    #[error("unsupported wire format version {found} (this build reads version {supported})")]
    Version { found: u16, supported: u16 },
    #[error("expected a {expected}, found object kind {found}")]
    WrongKind { expected: &'static str, found: u8 },
    #[error("object was made under other CKKS parameters (fingerprint {found}, expected {expected})")]
    ForeignParameters { found: String, expected: String },
    #[error("field {field} out of range: {detail}")]
    OutOfRange { field: &'static str, detail: String },
    #[error("coefficient {value} is not below its modulus {modulus}")]
    Coefficient { value: u64, modulus: u64 },
    #[error("{extra} unexpected trailing bytes")]
    Trailing { extra: usize },
}

/// Any failure of an evaluation, encoding or key operation.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Error {
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("operands belong to different CKKS parameter sets")]
    ParamsMismatch,
    #[error("operands are at different levels ({left} and {right}); drop the higher one with drop_level first")]
    LevelMismatch { left: usize, right: usize },
    #[error("operands have different scales (2^{left:.3} and 2^{right:.3}); rescale or re-encode so they match")]
    ScaleMismatch { left: f64, right: f64 },
    #[error("no levels left: the ciphertext is at level 0 and cannot be rescaled further")]
    LevelExhausted,
    #[error("cannot raise a ciphertext from level {from} to level {to}")]
    LevelRaise { from: usize, to: usize },
    #[error("no Galois key for {what}; generate keys that include it")]
    MissingGaloisKey { what: String },
    #[error("{given} values do not fit in {max} slots")]
    TooManySlots { given: usize, max: usize },
    #[error("value {value} at scale 2^{log_scale:.1} is too large to encode; lower the scale or the value")]
    ValueTooLarge { value: f64, log_scale: f64 },
    #[error("value {0} is not finite")]
    NotFinite(f64),
    #[error("the result scale 2^{log_scale:.1} exceeds the remaining modulus of {log_q:.1} bits; rescale first")]
    ScaleOverflow { log_scale: f64, log_q: f64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<ring::PrimeError> for ParamError {
    fn from(e: ring::PrimeError) -> Self {
        match e {
            ring::PrimeError::PrimeBits { bits } => ParamError::PrimeBits { bits },
            ring::PrimeError::NotEnoughPrimes { bits, n, count } => ParamError::NotEnoughPrimes { bits, n, count },
        }
    }
}
