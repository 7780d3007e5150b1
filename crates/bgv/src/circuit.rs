//! Circuit privacy for BGV answers: what the client decrypts tells it the outputs and
//! nothing more about the weights, within statistical distance 2^-λ.
//!
//! An answer decrypts exactly to its outputs, but its noise e (x = f·m + t·e) is a
//! function of the weights (weighted sums of the inputs' noises, the rounding of every
//! modulus switch), and so is the noise bound its wire trailer carries. The server adds
//! an encryption of zero under the client's public key (a fresh ternary v re-randomizes
//! c1; its noise t·e_pk depends on nothing of the server's) and t·u with u uniform in
//! [−2^b, 2^b) per coefficient. Shifting u by e moves it by statistical distance at most
//! ‖e‖₁/2^(b+1), so b = ⌈λ + log2 ‖e‖₁⌉ − 1 gives 2^-λ between the answers of any two
//! networks with the same outputs, ‖e‖₁ bounded by N·‖e‖_∞ from the noise bound. The
//! answer's trailer then carries a bound that depends on b alone ([`flooded_noise_bits`]).
//! Unlike CKKS, BGV decrypts the outputs exactly whatever the flood, as long as it stays
//! below Q_l/2: circuit privacy costs modulus (about λ + 1.5·log2 N bits at the answer's
//! level), never precision.
//!
//! In the scaled representation (c0 + c1·s ≡ t⁻¹·x), adding t·u to x is adding u to c0.

use ring::{Poly, Sampler};

use crate::ciphertext::Ciphertext;
use crate::encoding::Plaintext;
use crate::encryption::Encryptor;
use crate::error::{Error, Result};
use crate::noise;
use crate::params::Parameters;

/// log2 of the bound on ‖e‖₁ of an answer whose ‖x‖ ≤ 2^`log_noise` (x = f·m + t·e):
/// |e_i| ≤ (|x_i| + t/2)/t per coefficient, N coefficients.
pub fn error_l1_bits(params: &Parameters, log_noise: f64) -> f64 {
    let log_t = (params.plaintext_modulus() as f64).log2();
    noise::log_add(log_noise - log_t, -1.0) + (params.n() as f64).log2()
}

/// The flood b (u uniform in [−2^b, 2^b)) that hides an answer of noise bound
/// 2^`log_noise` within statistical distance 2^-`lambda`.
pub fn flood_bits(params: &Parameters, log_noise: f64, lambda: u32) -> u32 {
    ((lambda as f64 + error_l1_bits(params, log_noise)).ceil() - 1.0).max(0.0) as u32
}

/// The noise bound of an answer flooded with `bits`, public (the same for every network
/// served with that flood): t·u (a random element, [`noise::D`] deviations of its
/// canonical norm), the encryption of zero, and the answer's own x, at most
/// t·2^(bits+1−λ)/N ≤ t·2^bits by the choice of b.
pub fn flooded_noise_bits(params: &Parameters, bits: u32) -> f64 {
    let log_t = (params.plaintext_modulus() as f64).log2();
    let n = params.n() as f64;
    let u = log_t + bits as f64 + (noise::D * (n / 3.0).sqrt()).log2();
    noise::log_add(noise::log_add(u, noise::fresh_public(params)), log_t + bits as f64)
}

/// Floods an answer: ct + Enc_pk(0) + t·u, u uniform in [−2^bits, 2^bits)^N from the
/// operating system's randomness; its noise bound becomes [`flooded_noise_bits`].
/// Refused (`NoiseBudgetExhausted`) where the flood would not decrypt at the answer's level,
/// or where `bits` is too narrow to hide this answer's noise at 2^-`lambda`.
pub fn flood(enc: &mut Encryptor, ct: &Ciphertext, bits: u32, lambda: u32) -> Result<Ciphertext> {
    let params = ct.params().clone();
    let level = ct.level();
    let bound = flooded_noise_bits(&params, bits);
    let limit = noise::limit(&params, level);
    if bound > limit || flood_bits(&params, ct.noise_bound_bits(), lambda) > bits {
        return Err(Error::NoiseBudgetExhausted { op: "flood", bound_bits: bound, limit_bits: limit, level });
    }
    let zero = enc.encrypt(&Plaintext::from_coeffs(&params, vec![0; params.n()], level))?;
    let ctx = params.rlwe().ctx();
    let moduli: Vec<_> = ctx.moduli[..=level].iter().collect();
    // The server's own randomness: nothing of the client's, nothing to wipe.
    let u = Sampler::os_seeded().uniform_signed(params.n(), bits);
    let mut u = Poly::from_signed_wide(&u, &moduli);
    u.ntt(&ctx.ntt[..=level].iter().collect::<Vec<_>>());
    let mut inner = ct.inner.clone();
    {
        let (c0, c1) = inner.parts_mut();
        let (z0, z1) = zero.inner.parts();
        // The zero's message is 0: its factor does not matter, the sum keeps ct's.
        c0.add_assign(z0, &moduli);
        c1.add_assign(z1, &moduli);
        c0.add_assign(&u, &moduli);
    }
    Ok(Ciphertext::new(&params, inner, ct.factor(), bound))
}
