//! Errors of the RLWE layer and the schemes on it. Each message says what was expected, so the caller can act.

use thiserror::Error;

/// A parameter set that cannot be built, or must not be used.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ParamError {
    /// The ring degree is outside what is supported (test-built sets go down to 2^4).
    #[error("ring degree 2^{log_n} is outside the supported range 2^{min}..=2^{max}")]
    RingDegree {
        /// log2 N asked for.
        log_n: u32,
        /// Smallest log2 N accepted for use.
        min: u32,
        /// Largest log2 N accepted.
        max: u32,
    },
    /// Q·P is too large for 128-bit security at this ring degree.
    #[error(
        "insecure parameters: N = {n} with log2(QP) = {log_qp:.1} bits exceeds the 128-bit bound of \
         {bound} bits (HE Security Standard, 2024 update, ternary secret); use fewer or smaller primes, or a larger N"
    )]
    Insecure {
        /// The ring degree.
        n: usize,
        /// log2(Q·P) of the set, in bits.
        log_qp: f64,
        /// The standard's largest log2(Q·P) at this degree, in bits.
        bound: u32,
    },
    /// Primes are 20 to 61 bits (see `ring::PrimeError`).
    #[error("prime size of {bits} bits is outside 20..=61")]
    PrimeBits {
        /// The size asked for.
        bits: u32,
    },
    /// Fewer primes of that size are ≡ 1 mod 2N (and unused by the set) than it needs:
    /// ask for larger primes, or fewer of that size.
    #[error("not enough {bits}-bit primes ≡ 1 mod 2N for N = {n} (wanted {count})")]
    NotEnoughPrimes {
        /// The size asked for.
        bits: u32,
        /// The ring degree.
        n: usize,
        /// How many were asked for at once.
        count: usize,
    },
    /// A modulus of a given description cannot carry the NTT, or appears twice.
    #[error("modulus {q} is not an NTT-friendly prime for N = {n} (must be prime, ≡ 1 mod 2N, below 2^61, and not repeated)")]
    BadModulus {
        /// The modulus refused.
        q: u64,
        /// The ring degree.
        n: usize,
    },
    /// No ciphertext primes.
    #[error("the ciphertext modulus chain is empty")]
    EmptyChain,
    /// No special primes.
    #[error("no special primes: hybrid key switching needs at least one")]
    NoSpecialPrimes,
    /// The number of key-switching digits is not in 1..=(number of ciphertext primes).
    #[error("dnum = {dnum} is invalid for a chain of {levels} primes (need 1 ≤ dnum ≤ {levels})")]
    Dnum {
        /// Digits asked for.
        dnum: usize,
        /// Ciphertext primes in the chain.
        levels: usize,
    },
    /// A key basis the set cannot hold (see `ParamsSpec::key_bases`).
    #[error("invalid key basis: {detail}")]
    KeyBasis {
        /// What is wrong with it.
        detail: String,
    },
    /// A scale out of range: a set's default scale outside 2^1..=2^60, or the scale of a
    /// plaintext or ciphertext not finite or outside 1..=2^120 (`check_scale`).
    #[error("scale 2^{log_scale} is invalid: it must be between 2^1 and 2^60, and below the top prime")]
    Scale {
        /// log2 of the scale refused (NaN or infinite for a non-finite or non-positive one).
        log_scale: f64,
    },
    /// P is more than 2 bits smaller than the largest key-switching digit: every key
    /// switch would multiply the noise by their ratio.
    #[error(
        "special primes of {log_p:.1} bits are smaller than a key-switching digit of {log_digit:.1} bits; \
         use more or larger special primes, or more digits (dnum)"
    )]
    SpecialPrimesTooSmall {
        /// log2 P, in bits.
        log_p: f64,
        /// log2 of the largest digit (the product of its primes), in bits.
        log_digit: f64,
    },
    /// A set built without the security check (tests only) where only secure sets are
    /// accepted (`Parameters::require_secure`).
    #[error("these parameters are marked insecure and are refused here")]
    InsecureRefused,
}

/// Reading a serialized object failed. Nothing is allocated before its size is checked.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum WireError {
    /// The input ends before the object does.
    #[error("input truncated: needed {needed} bytes, {available} available")]
    Truncated {
        /// Bytes the object needs, counted from the start of the input.
        needed: usize,
        /// Bytes the input has.
        available: usize,
    },
    /// The input does not start with `HEIN`.
    #[error("not a heinfer object (bad magic)")]
    BadMagic,
    /// Written in a format version this build does not read.
    #[error("unsupported wire format version {found} (this build reads version {supported})")]
    Version {
        /// The version in the header.
        found: u16,
        /// The one version this build reads.
        supported: u16,
    },
    /// An object of another kind than the one being read (e.g. a key given as a ciphertext).
    #[error("expected a {expected}, found object kind {found}")]
    WrongKind {
        /// The kind being read, in words.
        expected: &'static str,
        /// The kind byte in the header (`wire::Kind`).
        found: u8,
    },
    /// The object was made under another parameter set: read it with the set whose
    /// fingerprint it carries.
    #[error("object was made under other CKKS parameters (fingerprint {found}, expected {expected})")]
    ForeignParameters {
        /// The header's fingerprint, in hex.
        found: String,
        /// The fingerprint of the parameters given, in hex.
        expected: String,
    },
    /// A field holds a value the format or the parameters do not allow.
    #[error("field {field} out of range: {detail}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value read, and what was allowed.
        detail: String,
    },
    /// A stored value is not reduced modulo its prime: the input is corrupt or forged.
    #[error("coefficient {value} is not below its modulus {modulus}")]
    Coefficient {
        /// The value read.
        value: u64,
        /// Its prime.
        modulus: u64,
    },
    /// Bytes follow the end of the object.
    #[error("{extra} unexpected trailing bytes")]
    Trailing {
        /// How many.
        extra: usize,
    },
}

/// Any failure of an evaluation, encoding or key operation.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Error {
    /// A parameter set that cannot be built or is refused.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// Reading a serialized object failed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Operands, keys or encoders made under different parameter sets.
    #[error("operands belong to different CKKS parameter sets")]
    ParamsMismatch,
    /// Operands at different levels (or a plaintext below its ciphertext's, or a
    /// decomposition of another level); also two ciphertext halves of unequal shape.
    #[error("operands are at different levels ({left} and {right}); drop the higher one with drop_level first")]
    LevelMismatch {
        /// Level of the first operand.
        left: usize,
        /// Level of the second.
        right: usize,
    },
    /// Operands of an addition whose scales differ by more than a relative 10^-9.
    #[error("operands have different scales (2^{left:.3} and 2^{right:.3}); rescale or re-encode so they match")]
    ScaleMismatch {
        /// log2 of the first operand's scale.
        left: f64,
        /// log2 of the second's.
        right: f64,
    },
    /// A rescale at level 0: no prime is left to divide by.
    #[error("no levels left: the ciphertext is at level 0 and cannot be rescaled further")]
    LevelExhausted,
    /// A level above the one available: levels only go down.
    #[error("cannot raise a ciphertext from level {from} to level {to}")]
    LevelRaise {
        /// The highest level available.
        from: usize,
        /// The level asked for.
        to: usize,
    },
    /// A rotation or conjugation whose Galois key is not among those given.
    #[error("no Galois key for {what}; generate keys that include it")]
    MissingGaloisKey {
        /// The operation, e.g. "rotation by 3".
        what: String,
    },
    /// A key-switching key made for lower levels than the ciphertext's (keys may stop
    /// at the highest level a model uses them).
    #[error("the key serves levels up to {key_level} but the ciphertext is at level {level}; make the key for level {level} or drop the ciphertext's level first")]
    KeyBelowLevel {
        /// The highest level the key serves.
        key_level: usize,
        /// The ciphertext's level.
        level: usize,
    },
    /// More values than slots to encode.
    #[error("{given} values do not fit in {max} slots")]
    TooManySlots {
        /// Values given.
        given: usize,
        /// Slots available: N/2.
        max: usize,
    },
    /// A value times its scale reaches 2^120, the largest integer an encoding holds.
    #[error("value {value} at scale 2^{log_scale:.1} is too large to encode; lower the scale or the value")]
    ValueTooLarge {
        /// The value; when encoding, a coefficient after the inverse FFT, not an input slot.
        value: f64,
        /// log2 of its scale.
        log_scale: f64,
    },
    /// A NaN or infinite input value.
    #[error("value {0} is not finite")]
    NotFinite(f64),
    /// A product's scale would leave less than one bit of the modulus at its level, so
    /// the result would wrap around: rescale the operands first.
    #[error("the result scale 2^{log_scale:.1} exceeds the remaining modulus of {log_q:.1} bits; rescale first")]
    ScaleOverflow {
        /// log2 of the product's scale.
        log_scale: f64,
        /// log2 of the modulus at the operands' level, in bits.
        log_q: f64,
    },
    /// Polynomials handed to a constructor do not fit the parameter set (a scheme
    /// crate's bug, or polynomials of another set).
    #[error("{what} does not fit these parameters: {detail}")]
    Shape {
        /// What was being built.
        what: &'static str,
        /// Which dimension is off, with both values.
        detail: String,
    },
    /// A step of a multiparty protocol given inputs it cannot use (see `multiparty`).
    #[error("{what}: {detail}")]
    Protocol {
        /// The step or object refused.
        what: &'static str,
        /// Why, and what to do.
        detail: String,
    },
    /// A committee member's second decryption share of one ciphertext: with fresh
    /// smudging each time, the difference of two shares averages the noise away.
    #[error("member {member} already made a decryption share of this ciphertext; a member shares a ciphertext once")]
    SecondShare {
        /// The member.
        member: u32,
    },
}

/// The result of an evaluation, encoding or key operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<ring::PrimeError> for ParamError {
    fn from(e: ring::PrimeError) -> Self {
        match e {
            ring::PrimeError::PrimeBits { bits } => ParamError::PrimeBits { bits },
            ring::PrimeError::NotEnoughPrimes { bits, n, count } => ParamError::NotEnoughPrimes { bits, n, count },
        }
    }
}
