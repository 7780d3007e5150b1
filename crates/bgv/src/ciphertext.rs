//! BGV ciphertexts: an RLWE ciphertext (c0, c1) with c0 + c1·s ≡ t⁻¹·x (mod Q_l), the
//! factor f with x ≡ f·m (mod t), and the bound on ‖x‖ (see [`crate::noise`]).
//!
//! On the wire a ciphertext is `rlwe`'s object under the BGV set's fingerprint (which
//! covers the scheme and t, so it is never read as a CKKS one), its scale field holding
//! f, followed by 8 bytes: log2 of the noise bound (f64, little-endian). Readers check f
//! (an integer in [1, t)) and the bound (finite, below the level's limit) as well as
//! everything `rlwe` checks.

use rlwe::WireError;

use crate::error::Result;
use crate::noise;
use crate::params::Parameters;

/// Bytes after the RLWE object: log2 of the noise bound.
pub const NOISE_TRAILER_LEN: usize = 8;

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
        out.extend_from_slice(&self.log_noise.to_le_bytes());
        out
    }

    /// Reads a ciphertext made under `params`; the input must be exactly one object.
    pub fn from_bytes(params: &Parameters, bytes: &[u8]) -> Result<Self> {
        let (body, log_noise) = split_trailer(bytes)?;
        let inner = rlwe::Ciphertext::from_bytes(params.rlwe(), body)?;
        let factor = check_factor(params, inner.scale())?;
        check_noise(params, inner.level(), log_noise)?;
        Ok(Self { params: params.clone(), inner, factor, log_noise })
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
    /// Serializes c0, the seed and the noise bound.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.inner.to_bytes();
        out.extend_from_slice(&self.log_noise.to_le_bytes());
        out
    }
    /// Reads a seeded ciphertext made under `params`.
    pub fn from_bytes(params: &Parameters, bytes: &[u8]) -> Result<Self> {
        let (body, log_noise) = split_trailer(bytes)?;
        let inner = rlwe::SeededCiphertext::from_bytes(params.rlwe(), body)?;
        if inner.scale() != 1.0 {
            let detail = format!("{} (a fresh ciphertext's factor is 1)", inner.scale());
            return Err(WireError::OutOfRange { field: "factor", detail }.into());
        }
        check_noise(params, inner.level(), log_noise)?;
        Ok(Self { params: params.clone(), inner, log_noise })
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

fn split_trailer(bytes: &[u8]) -> Result<(&[u8], f64)> {
    // The header first: a foreign or malformed object is named as such, not as short.
    rlwe::wire::peek_header(bytes)?;
    if bytes.len() < rlwe::wire::HEADER_LEN + NOISE_TRAILER_LEN {
        let needed = rlwe::wire::HEADER_LEN + NOISE_TRAILER_LEN;
        return Err(WireError::Truncated { needed, available: bytes.len() }.into());
    }
    let (body, tail) = bytes.split_at(bytes.len() - NOISE_TRAILER_LEN);
    let log_noise = f64::from_le_bytes(tail.try_into().expect("8 bytes"));
    Ok((body, log_noise))
}

fn check_factor(params: &Parameters, scale: f64) -> Result<u64> {
    let t = params.plaintext_modulus();
    if scale.fract() != 0.0 || scale < 1.0 || scale >= t as f64 {
        let detail = format!("{scale} (must be an integer in [1, {t}))");
        return Err(WireError::OutOfRange { field: "factor", detail }.into());
    }
    Ok(scale as u64)
}

fn check_noise(params: &Parameters, level: usize, log_noise: f64) -> Result<()> {
    let limit = noise::limit(params, level);
    if !log_noise.is_finite() || log_noise < 0.0 || log_noise > limit {
        let detail = format!("2^{log_noise} (must be finite, at least 1 and at most 2^{limit:.1} at level {level})");
        return Err(WireError::OutOfRange { field: "noise bound", detail }.into());
    }
    Ok(())
}
