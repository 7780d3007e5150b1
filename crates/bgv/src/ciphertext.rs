//! BGV ciphertexts: an RLWE ciphertext (c0, c1) with c0 + c1·s ≡ t⁻¹·x (mod Q_l), the
//! factor f with x ≡ f·m (mod t), and the bound on ‖x‖ (see [`crate::noise`]).
//!
//! On the wire a ciphertext is `rlwe`'s object under the BGV set's fingerprint (which
//! covers the scheme and t, so it is never read as a CKKS one), followed by a 16-byte
//! trailer: the factor f (u64) and log2 of the noise bound (f64), little-endian. The RLWE
//! scale field holds `f as f64` too, but a double is exact only below 2^53 and t may reach
//! 2^60, so the u64 is the factor; readers check that the two agree, that f is in [1, t)
//! and that the bound is finite and below the level's limit, as well as everything `rlwe`
//! checks.
//!
//! The first format had an 8-byte trailer (the bound only; f in the scale field, wrong
//! after a modulus switch once t ≥ 2^53). Its length tells it apart (the RLWE object's
//! length follows from the level), and it is refused with an error that says to
//! re-encrypt with this version: read leniently, the last 8 bytes of a new object cut off
//! would pass for one.

use rlwe::WireError;

use crate::error::Result;
use crate::noise;
use crate::params::Parameters;

/// Bytes after the RLWE object: the factor (u64) and log2 of the noise bound (f64).
pub const NOISE_TRAILER_LEN: usize = 16;
/// The first format's trailer: log2 of the noise bound only (the factor in the scale
/// field). Refused.
pub const LEGACY_TRAILER_LEN: usize = 8;

/// A BGV ciphertext, in NTT form.
#[derive(Clone, Debug)]
pub struct Ciphertext {
    pub(crate) params: Parameters,
    pub(crate) inner: rlwe::Ciphertext,
    pub(crate) factor: u64,
    pub(crate) log_noise: f64,
}

impl Ciphertext {
    pub(crate) fn new(params: &Parameters, mut inner: rlwe::Ciphertext, factor: u64, log_noise: f64) -> Self {
        // The RLWE scale carries f on the wire (an integer in [1, t), exact as a double).
        inner.set_scale(factor as f64).expect("a factor in [1, t) is a valid scale");
        Self { params: params.clone(), inner, factor, log_noise }
    }
    /// The level: modulus switches left.
    pub fn level(&self) -> usize {
        self.inner.level()
    }
    /// The parameter set.
    pub fn params(&self) -> &Parameters {
        &self.params
    }
    /// log2 of the bound on the noise ‖x‖ (message included).
    pub fn noise_bound_bits(&self) -> f64 {
        self.log_noise
    }
    /// Bits of noise budget left: log2(Q_l / 2) − log2(noise bound). Operations that would
    /// bring it below one bit are refused.
    pub fn noise_budget_bits(&self) -> f64 {
        self.params.log_q_at(self.level()) - 1.0 - self.log_noise
    }
    /// The factor f ∈ [1, t): the ciphertext decrypts to f·m (each modulus switch from
    /// level l multiplies it by q_l⁻¹ mod t); decryption divides it out.
    pub fn factor(&self) -> u64 {
        self.factor
    }
    /// The RLWE ciphertext underneath.
    pub fn rlwe(&self) -> &rlwe::Ciphertext {
        &self.inner
    }

    /// Serializes: `Parameters::ciphertext_bytes(level)` bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.inner.to_bytes();
        push_trailer(&mut out, self.factor, self.log_noise);
        out
    }

    /// Reads a ciphertext made under `params`; the input must be exactly one object.
    pub fn from_bytes(params: &Parameters, bytes: &[u8]) -> Result<Self> {
        let (body, trailer) = split_trailer(params, bytes, false)?;
        let inner = rlwe::Ciphertext::from_bytes(params.rlwe(), body)?;
        let factor = check_factor(params, inner.scale(), trailer.factor)?;
        check_noise(params, inner.level(), trailer.log_noise)?;
        Ok(Self { params: params.clone(), inner, factor, log_noise: trailer.log_noise })
    }
}

/// A fresh symmetric ciphertext whose c1 is the expansion of a 32-byte seed: half the
/// bytes. Its factor is 1.
#[derive(Clone, Debug)]
pub struct SeededCiphertext {
    pub(crate) params: Parameters,
    pub(crate) inner: rlwe::SeededCiphertext,
    pub(crate) log_noise: f64,
}

impl SeededCiphertext {
    /// The level.
    pub fn level(&self) -> usize {
        self.inner.level()
    }
    /// log2 of the bound on the noise.
    pub fn noise_bound_bits(&self) -> f64 {
        self.log_noise
    }
    /// Re-derives c1 from the seed.
    pub fn expand(&self) -> Ciphertext {
        Ciphertext::new(&self.params, self.inner.expand(), 1, self.log_noise)
    }
    /// Serializes c0, the seed, the factor (1) and the noise bound.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.inner.to_bytes();
        push_trailer(&mut out, 1, self.log_noise);
        out
    }
    /// Reads a seeded ciphertext made under `params`.
    pub fn from_bytes(params: &Parameters, bytes: &[u8]) -> Result<Self> {
        let (body, trailer) = split_trailer(params, bytes, true)?;
        let inner = rlwe::SeededCiphertext::from_bytes(params.rlwe(), body)?;
        if inner.scale() != 1.0 || trailer.factor != 1 {
            let detail = format!("{} (a fresh ciphertext's factor is 1)", trailer.factor);
            return Err(WireError::OutOfRange { field: "factor", detail }.into());
        }
        check_noise(params, inner.level(), trailer.log_noise)?;
        Ok(Self { params: params.clone(), inner, log_noise: trailer.log_noise })
    }
}

/// Reads either form, expanding a seeded one.
pub fn read_any_ciphertext(params: &Parameters, bytes: &[u8]) -> Result<Ciphertext> {
    match rlwe::wire::peek_header(bytes)?.kind {
        k if k == rlwe::wire::Kind::SeededCiphertext as u8 => Ok(SeededCiphertext::from_bytes(params, bytes)?.expand()),
        _ => Ciphertext::from_bytes(params, bytes),
    }
}

impl Parameters {
    /// Bytes of a serialized ciphertext at `level` (two polynomials, or one and a seed).
    pub fn ciphertext_bytes(&self, level: usize, seeded: bool) -> usize {
        self.rlwe().ciphertext_bytes(level, seeded) + NOISE_TRAILER_LEN
    }
}

/// What follows the RLWE object: the factor and the noise bound.
struct Trailer {
    factor: u64,
    log_noise: f64,
}

fn push_trailer(out: &mut Vec<u8>, factor: u64, log_noise: f64) {
    out.extend_from_slice(&factor.to_le_bytes());
    out.extend_from_slice(&log_noise.to_le_bytes());
}

/// Splits off the trailer, telling the two formats apart by length: the RLWE object's
/// length follows from its level, so nothing is allocated before the length is known.
fn split_trailer<'a>(params: &Parameters, bytes: &'a [u8], seeded: bool) -> Result<(&'a [u8], Trailer)> {
    // The header first: a foreign or malformed object is named as such, not as short.
    rlwe::wire::peek_header(bytes)?;
    let level_at = rlwe::wire::HEADER_LEN;
    let Some(level) = bytes.get(level_at..level_at + 2) else {
        return Err(WireError::Truncated { needed: level_at + 2, available: bytes.len() }.into());
    };
    let level = u16::from_le_bytes([level[0], level[1]]) as usize;
    if level > params.max_level() {
        let detail = format!("{level} above the chain's top level {}", params.max_level());
        return Err(WireError::OutOfRange { field: "level", detail }.into());
    }
    let object = params.rlwe().ciphertext_bytes(level, seeded);
    match bytes.len().checked_sub(object) {
        Some(NOISE_TRAILER_LEN) => {}
        Some(LEGACY_TRAILER_LEN) => {
            let detail = "a ciphertext in the first BGV wire format (its factor as a double, inexact for t ≥ 2^53): \
                          re-encrypt it with this version of heinfer"
                .to_string();
            return Err(WireError::OutOfRange { field: "format", detail }.into());
        }
        Some(n) if n > NOISE_TRAILER_LEN => {
            let detail = format!("{} bytes after the ciphertext (expected {NOISE_TRAILER_LEN})", n - NOISE_TRAILER_LEN);
            return Err(WireError::OutOfRange { field: "length", detail }.into());
        }
        _ => return Err(WireError::Truncated { needed: object + NOISE_TRAILER_LEN, available: bytes.len() }.into()),
    };
    let (body, tail) = bytes.split_at(object);
    let word = |i: usize| -> [u8; 8] { tail[i..i + 8].try_into().expect("8 bytes") };
    Ok((body, Trailer { factor: u64::from_le_bytes(word(0)), log_noise: f64::from_le_bytes(word(8)) }))
}

/// The factor: the trailer's u64, which the scale field (`f as f64`) must match.
fn check_factor(params: &Parameters, scale: f64, f: u64) -> Result<u64> {
    let t = params.plaintext_modulus();
    if f == 0 || f >= t {
        let detail = format!("{f} (must be an integer in [1, {t}))");
        return Err(WireError::OutOfRange { field: "factor", detail }.into());
    }
    if scale != f as f64 {
        let detail = format!("{f} in the trailer but {scale} in the scale field (they must agree)");
        return Err(WireError::OutOfRange { field: "factor", detail }.into());
    }
    Ok(f)
}

fn check_noise(params: &Parameters, level: usize, log_noise: f64) -> Result<()> {
    let limit = noise::limit(params, level);
    if !log_noise.is_finite() || log_noise < 0.0 || log_noise > limit {
        let detail = format!("2^{log_noise} (must be finite, at least 1 and at most 2^{limit:.1} at level {level})");
        return Err(WireError::OutOfRange { field: "noise bound", detail }.into());
    }
    Ok(())
}
