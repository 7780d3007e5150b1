//! Distributed differential privacy for aggregation rounds: the noise comes from the
//! clients, never from the aggregator.
//!
//! Each client clips its vector to L2 norm ≤ C, divides by the grid step g, rounds
//! stochastically to integers (unbiased), and adds discrete-Gaussian noise of variance
//! σ²/(g²·k), k = the round's minimum number of contributors. The sum of at least k
//! honest contributions then carries noise of variance ≥ σ²/g² in grid units: the
//! Gaussian mechanism on the sum with L2 sensitivity Δ = C/g + √d (clipping bounds the
//! vector, stochastic rounding may add up to √d).
//!
//! [`Accountant`] gives (ε, δ) by Rényi DP: a Gaussian mechanism of noise multiplier
//! z = σ_total/Δ has RDP ε(α) = α/(2z²) at every order α (Mironov 2017), which the
//! discrete Gaussian satisfies too (Canonne–Kamath–Steinke 2020); rounds compose by
//! adding RDP; (ε, δ) by the conversion of Balle et al. 2020 — the one Google's
//! `dp-accounting` uses, which is this module's oracle in the tests. A sum of k
//! discrete Gaussians is not exactly one: Kairouz–Liu–Steinke (ICML 2021) bound the
//! difference, which is below 10·k·e^{−2π²σ_i²} and is added to δ.

use rlwe::ring::Sampler;

use crate::error::AggregateError;

/// A client's privacy settings for one round (the round's creator publishes them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DpConfig {
    /// L2 clipping norm C, in the vector's units.
    pub clip: f64,
    /// Grid step g: values are sent as integers times g.
    pub grid: f64,
    /// Standard deviation σ of the total noise on the sum, in the vector's units.
    pub sigma: f64,
    /// k: contributions the noise is split over (the round's minimum).
    pub min_contributors: usize,
}

impl DpConfig {
    /// Refuses settings no client could follow (non-positive values, a per-client
    /// noise variance outside what the sampler draws exactly).
    pub fn check(&self) -> Result<(), AggregateError> {
        let ok = |x: f64| x.is_finite() && x > 0.0;
        if !(ok(self.clip) && ok(self.grid) && ok(self.sigma)) || self.min_contributors == 0 {
            return Err(AggregateError::Config(format!("DP settings need positive clip, grid, sigma and k: {self:?}")));
        }
        let share = self.share_variance();
        if !(1.0..=2f64.powi(50)).contains(&share) {
            return Err(AggregateError::Config(format!(
                "each client's noise variance is {share:.3e} grid steps²; it must be between 1 and 2^50 \
                 (choose a finer grid, or a larger sigma)"
            )));
        }
        Ok(())
    }

    /// Each client's noise variance in grid units: σ²/(g²·k).
    pub fn share_variance(&self) -> f64 {
        (self.sigma / self.grid).powi(2) / self.min_contributors as f64
    }

    /// The L2 sensitivity of the sum in grid units, for vectors of `d` values.
    pub fn sensitivity(&self, d: usize) -> f64 {
        self.clip / self.grid + (d as f64).sqrt()
    }
}

/// Clip, stochastically round and noise one client's vector: integers to encrypt (as
/// values times g) and contribute.
pub fn privatize(v: &[f64], cfg: &DpConfig, sampler: &mut Sampler) -> Result<Vec<i64>, AggregateError> {
    cfg.check()?;
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(AggregateError::Payload(format!("value {i} is not finite")));
    }
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let factor = if norm > cfg.clip { cfg.clip / norm } else { 1.0 };
    // σ_i² as a fraction with a power-of-two denominator: exact enough, integers only.
    let den: u64 = 1 << 10;
    let num = (cfg.share_variance() * den as f64).round() as u64;
    Ok(v.iter()
        .map(|&x| {
            let y = x * factor / cfg.grid;
            let floor = y.floor();
            // Unbiased: up with probability y − ⌊y⌋ (53 bits of it).
            let frac = ((y - floor) * 2f64.powi(53)) as u64;
            let up = (sampler.uniform_signed(1, 52)[0] + (1 << 52)) < frac as i128;
            floor as i64 + up as i64 + sampler.discrete_gaussian(num, den)
        })
        .collect())
}

/// ε after `rounds` rounds under `cfg` with vectors of `d` values, at `delta`: what a
/// user plans a run with (`heinfer aggregate epsilon`, `heinfer.aggregate.epsilon`).
/// Infinite when `delta` is below the discrete Gaussians' own δ.
pub fn epsilon_after(cfg: &DpConfig, d: usize, rounds: usize, delta: f64) -> Result<f64, AggregateError> {
    cfg.check()?;
    if d == 0 || rounds == 0 || !(delta > 0.0 && delta < 1.0) {
        return Err(AggregateError::Config(format!(
            "accounting needs a vector length and a number of rounds of at least 1 and 0 < delta < 1 \
             (got length {d}, rounds {rounds}, delta {delta})"
        )));
    }
    let mut a = Accountant::default();
    for _ in 0..rounds {
        a.round(cfg, d);
    }
    Ok(a.epsilon(delta))
}

/// Rényi-DP accounting over rounds.
#[derive(Clone, Debug, Default)]
pub struct Accountant {
    /// Σ over rounds of 1/(2z²): the RDP at order α is α times this.
    rho: f64,
    /// Σ of the per-round δ from the sum-of-discrete-Gaussians correction.
    delta_extra: f64,
}

/// The Rényi orders tried, as in `dp-accounting`'s defaults.
fn orders() -> Vec<f64> {
    let mut v: Vec<f64> = (1..100).map(|i| 1.0 + i as f64 / 10.0).collect();
    v.extend((11..=63).map(f64::from));
    v.extend([128.0, 256.0, 512.0]);
    v
}

impl Accountant {
    /// Records one round with these settings and vectors of `d` values.
    pub fn round(&mut self, cfg: &DpConfig, d: usize) {
        let z = (cfg.sigma / cfg.grid) / cfg.sensitivity(d);
        self.rho += 1.0 / (2.0 * z * z);
        let si2 = cfg.share_variance();
        self.delta_extra += 10.0 * cfg.min_contributors as f64 * (-2.0 * std::f64::consts::PI.powi(2) * si2).exp();
    }

    /// Records `rounds` rounds of a Gaussian mechanism of noise multiplier `z`.
    pub fn gaussian(&mut self, z: f64, rounds: usize) {
        self.rho += rounds as f64 / (2.0 * z * z);
    }

    /// The smallest ε such that everything recorded is (ε, δ)-DP.
    pub fn epsilon(&self, delta: f64) -> f64 {
        let d = delta - self.delta_extra;
        if d <= 0.0 {
            return f64::INFINITY;
        }
        orders()
            .into_iter()
            .map(|a| {
                let rdp = a * self.rho;
                (rdp + ((a - 1.0) / a).ln() - (d.ln() + a.ln()) / (a - 1.0)).max(0.0)
            })
            .fold(f64::INFINITY, f64::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privatized_sums_are_unbiased_with_the_promised_noise() {
        let cfg = DpConfig { clip: 1.0, grid: 1.0 / 64.0, sigma: 0.5, min_contributors: 10 };
        let mut s = Sampler::from_seed([3; 32]);
        let v: Vec<f64> = (0..400).map(|i| ((i % 7) as f64 - 3.0) / 40.0).collect();
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!(norm > 1.0, "the test vector must need clipping");
        let clipped: Vec<f64> = v.iter().map(|x| x / norm).collect();
        // Ten clients with the same vector: the sum's noise has σ = 0.5 in value units.
        let mut sum = vec![0i64; v.len()];
        for _ in 0..10 {
            for (a, b) in sum.iter_mut().zip(privatize(&v, &cfg, &mut s).unwrap()) {
                *a += b;
            }
        }
        let errs: Vec<f64> = sum.iter().zip(&clipped).map(|(&a, &c)| a as f64 * cfg.grid - 10.0 * c).collect();
        let mean = errs.iter().sum::<f64>() / errs.len() as f64;
        let var = errs.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / errs.len() as f64;
        // Noise variance 0.25 plus rounding (≤ 10·g²/4 ≈ 6e-4).
        assert!((var / 0.25 - 1.0).abs() < 0.2, "variance {var}");
        assert!(mean.abs() < 5.0 * (0.25 / errs.len() as f64).sqrt(), "mean {mean}");
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut s = Sampler::from_seed([3; 32]);
        for cfg in [
            DpConfig { clip: 0.0, grid: 0.01, sigma: 1.0, min_contributors: 10 },
            DpConfig { clip: 1.0, grid: 1.0, sigma: 0.1, min_contributors: 10 },
            DpConfig { clip: 1.0, grid: 0.01, sigma: 1.0, min_contributors: 0 },
        ] {
            assert!(privatize(&[0.5], &cfg, &mut s).is_err(), "{cfg:?}");
        }
        let ok = DpConfig { clip: 1.0, grid: 0.01, sigma: 1.0, min_contributors: 10 };
        assert!(privatize(&[f64::NAN], &ok, &mut s).is_err());
    }

    #[test]
    fn epsilon_grows_with_rounds_and_shrinks_with_noise() {
        let mut a = Accountant::default();
        a.gaussian(1.0, 1);
        let one = a.epsilon(1e-5);
        a.gaussian(1.0, 9);
        let ten = a.epsilon(1e-5);
        let mut b = Accountant::default();
        b.gaussian(2.0, 10);
        assert!(one < ten && b.epsilon(1e-5) < ten, "{one} {ten} {}", b.epsilon(1e-5));
        // The oracle: Google's dp-accounting 0.6.0, `rdp.RdpAccountant()` composed with
        // `GaussianDpEvent(z)` n times, `get_epsilon(1e-5)`.
        for (z, n, want) in [
            (1.0, 1, 4.728507067217623),
            (1.0, 10, 19.05359753163139),
            (2.0, 10, 8.079406222420491),
            (0.8, 100, 136.06337010237715),
        ] {
            let mut acc = Accountant::default();
            acc.gaussian(z, n);
            let got = acc.epsilon(1e-5);
            assert!((got / want - 1.0).abs() < 1e-3, "z {z}, {n} rounds: {got} against dp-accounting's {want}");
        }
    }
}
