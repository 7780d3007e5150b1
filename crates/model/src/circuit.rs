//! Circuit privacy (`compile --circuit-privacy`): what the server adds to each answer so
//! that the client learns the outputs and nothing more about the weights.
//!
//! The answer's CKKS error e (the integer coefficients that decryption leaves beyond
//! Δ·m) depends on the weights. The server adds an encryption of zero under the
//! client's public key whose c0 also carries u, uniform in [−2^b, 2^b)^N. For one
//! coefficient, shifting a uniform variable on 2^(b+1) integers by e_i moves it by
//! statistical distance |e_i|/2^(b+1); over the N coefficients at most ‖e‖₁/2^(b+1).
//! So b = ⌈λ + log2 ‖e‖₁⌉ − 1 gives distance ≤ 2^-λ per answer, whatever the weights,
//! as long as ‖e‖₁ is below the bound the compiler gives. Uniform on a power-of-two
//! interval is exact from b + 1 random bits (no float, no rejection), so the sampler
//! has no rounding pattern of its own to leak. The fresh encryption of zero
//! re-randomizes c1 (RLWE with a fresh ternary v, independent of the weights).
//!
//! Cost: in every slot the flood adds real and imaginary errors of standard deviation
//! 2^b·√(N/6)/Δ output units (N/2 terms of variance 2^(2b)/3 each, halved per part).

use serde::{Deserialize, Serialize};

/// The default statistical distance exponent: answers of two models with the same
/// outputs are within 2^-40 of each other.
pub const DEFAULT_LAMBDA: u32 = 40;

/// What the server floods with, and why (in the client spec: the client must then
/// register its public key with its evaluation keys).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CircuitPrivacy {
    /// statistical distance ≤ 2^-lambda per answer
    pub lambda: u32,
    /// log2 of the compiler's bound on ‖e‖₁ of the answer's error, in integer
    /// coefficient units at the answer's scale
    pub log2_error_l1: f64,
    /// the flood: u uniform in [−2^flood_bits, 2^flood_bits) per coefficient
    pub flood_bits: u32,
    /// what the flood adds in a slot, in output units: standard deviation of each of
    /// the real and imaginary parts
    pub slot_std: f64,
}

impl CircuitPrivacy {
    /// The flood for an answer of degree `n` at `scale` whose error has ‖e‖₁ ≤ 2^`log2_error_l1`.
    pub fn size(lambda: u32, log2_error_l1: f64, n: usize, scale: f64) -> Self {
        let flood_bits = ((lambda as f64 + log2_error_l1).ceil() - 1.0).max(0.0) as u32;
        Self { lambda, log2_error_l1, flood_bits, slot_std: slot_std(flood_bits, n, scale) }
    }

    /// The statistical distance this flood guarantees against an error of ‖e‖₁ = 2^`log2_l1`.
    pub fn distance_bound(&self, log2_l1: f64) -> f64 {
        2f64.powf(log2_l1 - (self.flood_bits as f64 + 1.0))
    }
}

/// Standard deviation, in output units, of each of a slot's real and imaginary parts
/// after adding u uniform in [−2^bits, 2^bits)^N at `scale`.
pub fn slot_std(bits: u32, n: usize, scale: f64) -> f64 {
    2f64.powi(bits as i32) * (n as f64 / 6.0).sqrt() / scale
}

/// Bound on ‖e‖₁ (coefficients) from a bound on every slot's error: Parseval over the N/2
/// slots and their conjugates gives ‖e‖₂² = (2/N)·Δ²·Σ|z_j|² ≤ 2Δ²·max|z|², and
/// ‖e‖₁ ≤ √N·‖e‖₂ ≤ √(2N)·Δ·max|z|.
pub fn l1_from_slot_bound(max_slot_error: f64, n: usize, scale: f64) -> f64 {
    (2.0 * n as f64).sqrt() * scale * max_slot_error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_is_wide_enough_for_the_stated_distance() {
        for (lambda, l1) in [(40, 20.3), (40, 0.0), (20, 35.9)] {
            let c = CircuitPrivacy::size(lambda, l1, 8192, 2f64.powi(40));
            assert!(c.distance_bound(l1) <= 2f64.powi(-(lambda as i32)), "{c:?}");
            // and not wider than one bit more than needed
            assert!(c.distance_bound(l1) > 2f64.powi(-(lambda as i32) - 1), "{c:?}");
        }
    }

    #[test]
    fn slot_noise_follows_the_flood() {
        let a = slot_std(30, 8192, 2f64.powi(40));
        assert!((a - 2f64.powi(-10) * (8192f64 / 6.0).sqrt()).abs() < 1e-12);
        assert_eq!(slot_std(31, 8192, 1.0), 2.0 * slot_std(30, 8192, 1.0));
    }
}
