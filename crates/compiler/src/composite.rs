//! |x| by a composite polynomial: |x| = x·sign(x), sign(t) ≈ p_k(…p_1(t)) on t = x/R,
//! each p_i a low-degree odd polynomial (Cheon–Kim–Kim's g_n and f_n families, the
//! stages of the minimax composite sign in Lee et al.'s CKKS ResNet). Each stage is an
//! ordinary Chebyshev polynomial evaluation; the last multiplies by x (one level).
//!
//! Why both this and the single fit: at the ~1 % precision top-1 agreement needs, a
//! degree-(2^k − 1) fit of |x| is already near depth-optimal (error ≈ 0.28·R/2^k); a
//! composite is deeper for the same error near 0 (its slope at 0 grows ~1.6× per level,
//! the single fit's resolution 2× per level) but its error away from 0 falls
//! doubly-exponentially. So the compiler tries the single fits first and a composite
//! only where they miss the accuracy target (`approximate`).

use crate::cheb;

/// g_3 (slope 4.48 at 0), f_1, f_3 of Cheon, Kim and Kim (Asiacrypt 2020), power basis.
const G3: [f64; 8] = [0.0, 4589.0 / 1024.0, 0.0, -16577.0 / 1024.0, 0.0, 25614.0 / 1024.0, 0.0, -12860.0 / 1024.0];
const F1: [f64; 4] = [0.0, 1.5, 0.0, -0.5];
const F3: [f64; 8] = [0.0, 35.0 / 16.0, 0.0, -35.0 / 16.0, 0.0, 21.0 / 16.0, 0.0, -5.0 / 16.0];

/// A composite sign approximation: `stages[0]` applied first, all on [−1, 1].
#[derive(Clone, Debug)]
pub(crate) struct SignComposite {
    pub label: &'static str,
    /// Chebyshev coefficients of each stage.
    pub stages: Vec<Vec<f64>>,
}

impl SignComposite {
    fn new(label: &'static str, power: &[&[f64]]) -> Self {
        SignComposite { label, stages: power.iter().map(|p| cheb::power_to_cheb(p)).collect() }
    }
    pub fn sign(&self, t: f64) -> f64 {
        self.stages.iter().fold(t, |s, c| cheb::cheb_eval(c, s))
    }
    pub fn degrees(&self) -> Vec<usize> {
        self.stages.iter().map(|c| cheb::degree_of(c)).collect()
    }
    /// Levels of x·sign(x): each stage's Chebyshev evaluation, then the product.
    pub fn depth(&self) -> u32 {
        self.stages.iter().map(|c| cheb::depth_rec(c)).sum::<u32>() + 1
    }
    /// max over t ∈ [−1, 1] of |t·s(t) − |t|| / 2: |x|/2's error on [−R, R] is R times it.
    pub fn half_abs_error(&self) -> f64 {
        (0..=4000).map(|i| i as f64 / 4000.0).map(|t| 0.5 * (t * self.sign(t) - t).abs()).fold(0.0, f64::max)
    }
    /// The smallest ε such that sign is within 1 % of ±1 on [ε, 1] (its transition width).
    pub fn epsilon(&self) -> f64 {
        let mut eps = 0.0;
        for i in (1..=4000).rev() {
            let t = i as f64 / 4000.0;
            if (self.sign(t) - 1.0).abs() > 0.01 {
                eps = t;
                break;
            }
        }
        eps
    }
}

/// The composites tried for MaxPool's |x|, cheapest first.
pub(crate) fn candidates() -> Vec<SignComposite> {
    let mut c = vec![
        SignComposite::new("g3∘f3", &[&G3, &F3]),
        SignComposite::new("g3∘g3∘f1", &[&G3, &G3, &F1]),
        SignComposite::new("g3∘g3∘f3", &[&G3, &G3, &F3]),
    ];
    c.sort_by_key(SignComposite::depth);
    c
}

/// |x|/2 ≈ (R/2)·t·sign(t), t = x/R: the stages with the last one scaled by R/2, so that the
/// lowered program is x_normalised · p_k(…) with no extra constant product.
pub(crate) fn half_abs_stages(c: &SignComposite, radius: f64) -> Vec<Vec<f64>> {
    let mut st = c.stages.clone();
    if let Some(last) = st.last_mut() {
        for v in last.iter_mut() {
            *v *= 0.5 * radius;
        }
    }
    st
}

/// x · p_k(…p_1(x)) for the stages `half_abs_stages` returns.
pub(crate) fn eval_times_input(stages: &[Vec<f64>], x: f64) -> f64 {
    x * stages.iter().fold(x, |s, c| cheb::cheb_eval(c, s))
}

/// Scale bits a network with a composite stage is built at when none is asked for.
/// Measured on the digits MaxPool CNN (depth 29): at the 2^26 the noise analysis picks
/// (26-bit primes, N = 2^15) real ciphertexts lose the first degree-31 fit entirely
/// (error 33 after one constant product and rescale, `noise_trace`), which the analysis,
/// run on 2^40 primes, does not see; at 2^30 the logits are within 1.1e-4 of the simulation.
pub(crate) const MIN_SCALE_BITS: u32 = 30;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composites_approximate_sign_and_abs() {
        for c in candidates() {
            // Odd, bounded by 1 on [−1, 1], and close to sign away from 0.
            for i in 0..=200 {
                let t = i as f64 / 200.0;
                assert!((c.sign(t) + c.sign(-t)).abs() < 1e-12);
                assert!(c.sign(t).abs() <= 1.0 + 1e-9, "{} at {t}: {}", c.label, c.sign(t));
            }
            assert!((c.sign(0.5) - 1.0).abs() < 0.01, "{}: {}", c.label, c.sign(0.5));
            // f_1 ends g3∘g3∘f1 with a shallow stage: sharper at 0 than g3∘f3 but 3.7 % off
            // near ±1; every candidate is within 4 % of |t|/2's range.
            let e = c.half_abs_error();
            assert!(e < 0.04, "{}: {e}", c.label);
            let st = half_abs_stages(&c, 3.0);
            for x in [-0.9f64, -0.4, 0.3, 0.8] {
                assert!((eval_times_input(&st, x) - 1.5 * x.abs()).abs() <= 3.0 * e + 1e-12);
            }
        }
        // Deeper composites are more precise: the list is ordered by depth and error falls.
        let c = candidates();
        assert!(c.windows(2).all(|w| w[0].depth() <= w[1].depth()));
        assert!(c.last().unwrap().half_abs_error() < 0.5 * c[0].half_abs_error());
        assert_eq!(c[0].degrees(), vec![7, 7]);
        assert_eq!(c[0].depth(), 7);
    }
}
