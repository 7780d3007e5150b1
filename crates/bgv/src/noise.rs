//! The noise bounds: analytic upper bounds on ‖x‖ for a ciphertext decrypting to
//! x = f·m + t·e (centered modulo Q_l), all as log2.
//!
//! Norms are in the canonical embedding, which bounds the coefficients (‖a‖_∞ ≤ ‖a‖_can
//! for power-of-two cyclotomics) and is submultiplicative (‖ab‖_can ≤ ‖a‖_can·‖b‖_can),
//! so products and automorphisms compose exactly. A random element with independent
//! coefficients of variance V is taken to satisfy ‖a‖_can ≤ D·√(N·V) with D = 6: each
//! slot is close to a complex Gaussian of variance N·V, which exceeds D standard deviations
//! with probability e^{-36}, below 2^-39 over all slots (Costache–Smart 2016;
//! Kim–Polyakov–Zucca 2021 use the same estimates for BGV). Plaintexts are not random:
//! their bound is exact, the ℓ1 norm of their centered coefficients.

use rlwe::params::ERROR_STDDEV;

use crate::params::Parameters;

/// Standard deviations in a high-probability bound.
pub const D: f64 = 6.0;

/// log2(2^a + 2^b), with −∞ for a zero bound.
pub fn log_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (1.0 + (lo - hi).exp2()).log2()
}

/// Bound on a random element whose coefficients have variance `v`.
fn random(n: f64, v: f64) -> f64 {
    D * (n * v).sqrt()
}

struct Elements {
    t: f64,
    /// Gaussian error (σ = 3.2)
    e: f64,
    /// uniform ternary secret or encryption randomness (variance 2/3)
    s: f64,
    /// rounding residues uniform in [−1/2, 1/2] (variance 1/12)
    r: f64,
}

fn elements(p: &Parameters) -> Elements {
    let n = p.n() as f64;
    Elements {
        t: p.plaintext_modulus() as f64,
        e: random(n, ERROR_STDDEV * ERROR_STDDEV),
        s: random(n, 2.0 / 3.0),
        r: random(n, 1.0 / 12.0),
    }
}

/// A public-key encryption's noise, message aside: t·(v·e + e0 + e1·s), with v ternary
/// and e, e0, e1 Gaussian (`rlwe::Encryptor`).
pub fn fresh_public(p: &Parameters) -> f64 {
    let k = elements(p);
    (k.t * (2.0 * k.s * k.e + k.e)).log2()
}

/// A symmetric encryption's noise, message aside: t·e.
pub fn fresh_symmetric(p: &Parameters) -> f64 {
    let k = elements(p);
    (k.t * k.e).log2()
}

/// What one key switch (relinearisation or rotation) at `level` adds: t·(Σ_j d_j·e_j / P
/// plus r0 + r1·s), the digits d_j centered modulo their D_j (variance D_j²/12), the e_j
/// the key's Gaussian errors, r0 and r1 the rounding of the division by P.
pub fn key_switch(p: &Parameters, level: usize) -> f64 {
    let k = elements(p);
    let ctx = p.rlwe().ctx();
    let n = p.n() as f64;
    let log_p: f64 = p.rlwe().p().iter().map(|&q| (q as f64).log2()).sum();
    // Σ_j D_j / P, each digit's primes among q_0..q_level.
    let digits: f64 = (0..=level)
        .collect::<Vec<_>>()
        .chunks(ctx.alpha)
        .map(|c| (c.iter().map(|&i| (p.q()[i] as f64).log2()).sum::<f64>() - log_p).exp2())
        .sum();
    let inner = D * (n / 12.0).sqrt() * k.e * digits;
    (k.t * (inner + k.r * (1.0 + k.s))).log2()
}

/// What a modulus switch adds: t·(r0 + r1·s) with r_i = [c_i]_{q_l}/q_l in [−1/2, 1/2].
pub fn mod_switch(p: &Parameters) -> f64 {
    let k = elements(p);
    (k.t * k.r * (1.0 + k.s)).log2()
}

/// The largest noise bound a ciphertext at `level` may carry: Q_l/2 less one bit, the
/// margin of decryption's exact conversion (exact away from ±Q/2 by 2^-40·Q).
pub fn limit(p: &Parameters, level: usize) -> f64 {
    p.log_q_at(level) - 2.0
}
