//! Differentially private outputs: what the compiler decided and the server applies.
//!
//! The compiler clamps the model's outputs with a polynomial clip whose largest value
//! on its fit interval is `bound` (B); the server adds integer noise on the lattice
//! γℤ (γ = 2^-`granularity_bits`, in output units) to every output element under
//! encryption. Neighbouring relation: **per query, any two models** whose clamped
//! outputs lie in [−B, B]^k — so one answer is (ε, δ)-indistinguishable between the
//! served model and any other with that output range (output perturbation). L2
//! sensitivity 2B√k (Gaussian), L1 sensitivity 2Bk (Laplace), both rounded up to whole
//! lattice steps. Queries compose by basic composition (ε and δ add up per key id).
//!
//! Discrete Gaussian: ρ-zCDP with ρ = Δ₂²/2σ² (Canonne–Kamath–Steinke 2020, for
//! integer sensitivity), converted with ε = ρ + 2√(ρ ln(1/δ)) (Bun–Steinke 2016),
//! valid for every ε. Discrete Laplace with scale t: ε = Δ₁/t.

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Which noise the server adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpMechanism {
    /// discrete Gaussian, for δ > 0
    Gaussian,
    /// discrete Laplace, for δ = 0
    Laplace,
}

/// The output-DP configuration of a model (in the client spec, so clients see it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputDp {
    /// ε charged per query
    pub epsilon: f64,
    /// δ charged per query (0 for Laplace)
    pub delta: f64,
    pub mechanism: DpMechanism,
    /// the clamp asked for: outputs clipped to [−clamp, clamp]
    pub clamp: f64,
    /// the largest |p(x)| of the clip polynomial on its fit interval (≥ clamp by the
    /// fit's overshoot): the range the sensitivity is computed from
    pub bound: f64,
    /// the fit interval: the guarantee holds for pre-clamp outputs inside it
    pub fit_interval: (f64, f64),
    /// number of output elements k
    pub outputs: u32,
    /// noise lattice γ = 2^-granularity_bits (output units)
    pub granularity_bits: u32,
    /// sensitivity in lattice steps (L2 for Gaussian, L1 for Laplace), rounded up
    pub sensitivity_steps: u64,
    /// σ² in lattice steps² (Gaussian) or the scale t in lattice steps (Laplace)
    pub noise_param: u64,
    /// the noise's standard deviation in output units (for reports and clients)
    pub sigma: f64,
    /// ε each key id may spend on this model; None: unlimited (still counted)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<f64>,
}

/// The sampler's largest variance parameter is 2^50; keep a margin.
const MAX_SIGMA2_STEPS: f64 = (1u64 << 48) as f64;
const MAX_GRANULARITY_BITS: u32 = 20;
const MIN_GRANULARITY_BITS: u32 = 8;

impl OutputDp {
    /// Calibrates the noise for `epsilon`, `delta` per query, `outputs` elements in
    /// [−bound, bound]. δ = 0 picks the discrete Laplace mechanism.
    pub fn calibrate(
        epsilon: f64,
        delta: f64,
        clamp: f64,
        bound: f64,
        fit_interval: (f64, f64),
        outputs: u32,
        budget: Option<f64>,
    ) -> Result<Self, ModelError> {
        let bad = |m: String| Err(ModelError::Invalid(m));
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return bad(format!("output DP: ε must be a positive number, got {epsilon}"));
        }
        if !(0.0..1.0).contains(&delta) {
            return bad(format!("output DP: δ must be in [0, 1), got {delta}"));
        }
        if !(bound.is_finite() && bound > 0.0) || outputs == 0 {
            return bad(format!(
                "output DP: the clamp's range must be positive and finite (got ±{bound} over {outputs} outputs)"
            ));
        }
        if let Some(b) = budget {
            if !(b.is_finite() && b >= epsilon) {
                return bad(format!("output DP: the budget per key ({b}) must be at least one query's ε ({epsilon})"));
            }
        }
        let k = outputs as f64;
        let (mechanism, sens) = if delta > 0.0 {
            (DpMechanism::Gaussian, 2.0 * bound * k.sqrt())
        } else {
            (DpMechanism::Laplace, 2.0 * bound * k)
        };
        // ρ from (ε, δ): √ρ = √(ln 1/δ + ε) − √(ln 1/δ).
        let rho = if delta > 0.0 {
            let l = (1.0 / delta).ln();
            ((l + epsilon).sqrt() - l.sqrt()).powi(2)
        } else {
            0.0
        };
        // The finest lattice whose noise parameter the exact sampler takes.
        for g in (MIN_GRANULARITY_BITS..=MAX_GRANULARITY_BITS).rev() {
            let steps = (sens * (g as f64).exp2()).ceil();
            let (param, sigma_steps) = match mechanism {
                DpMechanism::Gaussian => {
                    let s2 = (steps * steps / (2.0 * rho)).ceil();
                    (s2, s2.sqrt())
                }
                DpMechanism::Laplace => {
                    let t = (steps / epsilon).ceil();
                    (t, t * std::f64::consts::SQRT_2)
                }
            };
            if param <= MAX_SIGMA2_STEPS {
                return Ok(Self {
                    epsilon,
                    delta,
                    mechanism,
                    clamp,
                    bound,
                    fit_interval,
                    outputs,
                    granularity_bits: g,
                    sensitivity_steps: steps as u64,
                    noise_param: param as u64,
                    sigma: sigma_steps / (g as f64).exp2(),
                    budget,
                });
            }
        }
        bad(format!(
            "output DP: ε = {epsilon}, δ = {delta} over a range of ±{bound} needs noise beyond what the exact sampler takes; raise ε or δ, or lower --dp-clamp"
        ))
    }

    /// γ, the noise lattice's step in output units.
    pub fn granularity(&self) -> f64 {
        (-(self.granularity_bits as f64)).exp2()
    }

    /// The ε this configuration actually gives per query (≤ the ε asked for: every
    /// rounding above went the safe way).
    pub fn achieved_epsilon(&self) -> f64 {
        let d = self.sensitivity_steps as f64;
        match self.mechanism {
            DpMechanism::Gaussian => {
                let rho = d * d / (2.0 * self.noise_param as f64);
                rho + 2.0 * (rho * (1.0 / self.delta).ln()).sqrt()
            }
            DpMechanism::Laplace => d / self.noise_param as f64,
        }
    }

    /// One line for reports and logs.
    pub fn describe(&self) -> String {
        let mech = match self.mechanism {
            DpMechanism::Gaussian => format!("discrete Gaussian (δ = {:e})", self.delta),
            DpMechanism::Laplace => "discrete Laplace (δ = 0)".into(),
        };
        let budget = match self.budget {
            Some(b) => {
                format!("budget ε = {b} per key id (basic composition: ≤ {} queries)", (b / self.epsilon).floor())
            }
            None => "no budget (ε spent is still counted per key id)".into(),
        };
        format!(
            "output DP: ε = {} per query, {mech}, σ = {:.4} per output on the lattice 2^-{}; clamp ±{} (clip polynomial reaches ±{:.4} on its fit interval [{:.3}, {:.3}]), sensitivity over {} outputs from that range; {budget}",
            self.epsilon,
            self.sigma,
            self.granularity_bits,
            self.clamp,
            self.bound,
            self.fit_interval.0,
            self.fit_interval.1,
            self.outputs,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_noise_gives_the_epsilon_asked() {
        for eps in [0.5, 1.0, 4.0] {
            let d = OutputDp::calibrate(eps, 1e-5, 3.0, 3.1, (-5.0, 5.0), 10, Some(10.0)).unwrap();
            assert_eq!(d.mechanism, DpMechanism::Gaussian);
            let got = d.achieved_epsilon();
            assert!(got <= eps && got > 0.99 * eps, "ε {got} for {eps}");
            // The classic bound for comparison: σ ≈ Δ₂ √(2 ln(1.25/δ)) / ε is of the same order.
            let classic = 2.0 * 3.1 * 10f64.sqrt() * (2.0 * (1.25e5f64).ln()).sqrt() / eps;
            assert!(d.sigma > 0.3 * classic && d.sigma < 3.0 * classic, "σ {} classic {classic}", d.sigma);
        }
    }

    #[test]
    fn laplace_for_pure_dp_and_refusals() {
        let d = OutputDp::calibrate(1.0, 0.0, 2.0, 2.0, (-3.0, 3.0), 2, None).unwrap();
        assert_eq!(d.mechanism, DpMechanism::Laplace);
        assert!(d.achieved_epsilon() <= 1.0);
        // scale t = Δ₁/ε = 8: σ = √2·8
        assert!((d.sigma - 8.0 * std::f64::consts::SQRT_2).abs() < 1e-3, "{}", d.sigma);
        assert!(OutputDp::calibrate(0.0, 0.0, 1.0, 1.0, (-1.0, 1.0), 1, None).is_err());
        assert!(OutputDp::calibrate(1.0, 1.0, 1.0, 1.0, (-1.0, 1.0), 1, None).is_err());
        assert!(OutputDp::calibrate(1.0, 0.0, 1.0, 1.0, (-1.0, 1.0), 1, Some(0.5)).is_err());
    }
}
