//! Randomness: a ChaCha20 CSPRNG seeded by the operating system, and the
//! distributions CKKS needs (uniform mod q, uniform ternary, discrete Gaussian).

use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use zeroize::Zeroize;

use crate::arith::Modulus;
use crate::poly::Poly;

/// Tail cut of the discrete Gaussian, in standard deviations.
const GAUSS_TAIL: f64 = 6.0;

/// A ChaCha20 stream and the distributions drawn from it.
pub struct Sampler {
    rng: ChaCha20Rng,
    /// cumulative distribution of |e| for the discrete Gaussian, scaled to 2^64
    cdt: Vec<u64>,
}

impl Sampler {
    /// Seeded by the operating system's generator, with the discrete Gaussian of
    /// standard deviation `sigma` (secrets, errors).
    pub fn new(sigma: f64) -> Self {
        let mut seed = fresh_seed();
        let s = Self { rng: ChaCha20Rng::from_seed(seed), cdt: gaussian_table(sigma) };
        seed.zeroize();
        s
    }

    /// Seeded by the operating system's generator, for draws that need no Gaussian table
    /// (uniform, `uniform_signed`, the exact discrete Gaussian and Laplace): noise for
    /// release, differential privacy and smudging.
    pub fn os_seeded() -> Self {
        let mut seed = fresh_seed();
        let s = Self { rng: ChaCha20Rng::from_seed(seed), cdt: Vec::new() };
        seed.zeroize();
        s
    }

    /// Deterministic stream from a seed, for the public uniform halves of seeded objects:
    /// it draws uniform residues only, so it builds no Gaussian table.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self { rng: ChaCha20Rng::from_seed(seed), cdt: Vec::new() }
    }

    /// Stream `stream` of a seed's ChaCha20 (stream 0 is [`Sampler::from_seed`]'s):
    /// independent draws that can be made in parallel, e.g. one per value of a query.
    pub fn from_seed_stream(seed: [u8; 32], stream: u64) -> Self {
        let mut rng = ChaCha20Rng::from_seed(seed);
        rng.set_stream(stream);
        Self { rng, cdt: Vec::new() }
    }

    /// Uniform bytes (seeds, signing keys).
    pub fn fill_bytes(&mut self, out: &mut [u8]) {
        self.rng.fill_bytes(out);
    }

    /// Uniform ternary coefficients in {-1, 0, 1}.
    pub fn ternary(&mut self, n: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(n);
        let mut buf = [0u8; 64];
        while out.len() < n {
            self.rng.fill_bytes(&mut buf);
            for &b in &buf {
                // 255 = 3·85: reject it so the three values are exactly equally likely.
                if b < 255 && out.len() < n {
                    out.push((b % 3) as i64 - 1);
                }
            }
        }
        buf.zeroize();
        out
    }

    /// A polynomial in NTT-ready form (coefficients reduced into every limb) of secret
    /// small values: the Gaussian error (or ternary values when `ternary`). The signed
    /// draws are wiped once reduced; callers wipe the polynomial when done with it.
    pub fn small_poly(&mut self, n: usize, moduli: &[&Modulus], ternary: bool) -> Poly {
        let mut v = if ternary { self.ternary(n) } else { self.gaussian(n) };
        let p = Poly::from_signed(&v, moduli);
        v.zeroize();
        p
    }

    /// Discrete Gaussian with the stream's σ, cut at 6σ, by inversion of its table.
    /// Constant time: every table entry is compared (no search whose branches follow
    /// the secret value) and a sign bit is drawn for every sample, zero included.
    pub fn gaussian(&mut self, n: usize) -> Vec<i64> {
        assert!(!self.cdt.is_empty(), "a seeded stream draws uniform values only (use Sampler::new)");
        (0..n)
            .map(|_| {
                let r = self.rng.next_u64();
                // The number of entries ≤ r is |e|; the last entry is u64::MAX, so at most len − 1 … len.
                let k = self.cdt[..self.cdt.len() - 1].iter().fold(0i64, |acc, &c| acc + (c <= r) as i64);
                let sign = (self.rng.next_u32() & 1) as i64;
                k * (1 - 2 * sign)
            })
            .collect()
    }

    /// Uniform residues for every limb; in NTT form this is a uniform polynomial.
    pub fn uniform(&mut self, n: usize, moduli: &[&Modulus]) -> Poly {
        let mut p = Poly::zero(n, moduli.len());
        for (i, m) in moduli.iter().enumerate() {
            let q = m.value();
            let mask = u64::MAX >> q.leading_zeros();
            for x in p.limb_mut(i) {
                *x = loop {
                    let v = self.rng.next_u64() & mask;
                    if v < q {
                        break v;
                    }
                };
            }
        }
        p
    }

    /// Uniform integers in [-2^bits, 2^bits): the flooding ("smudging") noise that hides
    /// a smaller error, e.g. before decrypted values or decryption shares are released.
    /// Exactly uniform: the draw is `bits` + 1 random bits, no rejection needed.
    pub fn uniform_signed(&mut self, n: usize, bits: u32) -> Vec<i128> {
        assert!(bits <= 126, "flooding width 2^{bits} is beyond 128-bit words");
        let mask = (1u128 << (bits + 1)) - 1;
        (0..n)
            .map(|_| {
                let x = ((self.rng.next_u64() as u128) << 64 | self.rng.next_u64() as u128) & mask;
                x as i128 - (1i128 << bits)
            })
            .collect()
    }
}

/// Exact samplers for differential privacy (Canonne–Kamath–Steinke, NeurIPS 2020):
/// integer-only arithmetic on the CSPRNG, no floating point anywhere, so the output is
/// exactly the discrete Gaussian (or Laplace) — a rounded float sampler is not, and
/// its rounding pattern can leak what the noise hides.
impl Sampler {
    /// Uniform in [0, bound), bound > 0, without bias.
    fn below(&mut self, bound: u128) -> u128 {
        let zone = u128::MAX - u128::MAX % bound;
        loop {
            let x = (self.rng.next_u64() as u128) << 64 | self.rng.next_u64() as u128;
            if x < zone {
                return x % bound;
            }
        }
    }

    /// Bernoulli(num/den), num ≤ den.
    fn bernoulli(&mut self, num: u128, den: u128) -> bool {
        self.below(den) < num
    }

    /// Bernoulli(exp(−num/den)).
    fn bernoulli_exp(&mut self, num: u128, den: u128) -> bool {
        let whole = num / den;
        for _ in 0..whole {
            if !self.bernoulli_exp_at_most_one(1, 1) {
                return false;
            }
        }
        self.bernoulli_exp_at_most_one(num % den, den)
    }

    /// Bernoulli(exp(−γ)) for γ = num/den ∈ [0, 1]: the parity of the first k whose
    /// Bernoulli(γ/k) fails.
    fn bernoulli_exp_at_most_one(&mut self, num: u128, den: u128) -> bool {
        let mut k: u128 = 1;
        loop {
            let Some(dk) = den.checked_mul(k) else { return k % 2 == 1 };
            if !self.bernoulli(num, dk) {
                return k % 2 == 1;
            }
            k += 1;
        }
    }

    /// Discrete Laplace with scale t: P(x) ∝ exp(−|x|/t).
    pub fn discrete_laplace(&mut self, t: u64) -> i64 {
        assert!(t >= 1, "the discrete Laplace needs scale ≥ 1");
        let t128 = t as u128;
        loop {
            let u = self.below(t128);
            if !self.bernoulli_exp(u, t128) {
                continue;
            }
            let mut v: u128 = 0;
            while self.bernoulli_exp(1, 1) {
                v += 1;
            }
            let x = u + t128 * v;
            let negative = self.rng.next_u32() & 1 == 1;
            if negative && x == 0 {
                continue;
            }
            let x = x as i64;
            return if negative { -x } else { x };
        }
    }

    /// Discrete Gaussian with variance parameter σ² = num/den: P(x) ∝ exp(−x²/2σ²), by
    /// rejection from the discrete Laplace of scale ⌊σ⌋ + 1. σ² up to 2^50 (the
    /// rejection test's integers stay within 128 bits).
    pub fn discrete_gaussian(&mut self, sigma2_num: u64, sigma2_den: u64) -> i64 {
        assert!(sigma2_num > 0 && sigma2_den > 0, "σ² must be positive");
        let (num, den) = (sigma2_num as u128, sigma2_den as u128);
        assert!(num / den < 1 << 50, "σ² beyond 2^50");
        // t = ⌊σ⌋ + 1, from the integer square root of ⌊σ²⌋.
        let t = isqrt(num / den) + 1;
        loop {
            let y = self.discrete_laplace(t as u64);
            // γ = (|y| − σ²/t)² / (2σ²) = (|y|·t·den − num)² / (2·num·den·t²)
            let a = (y.unsigned_abs() as u128) * t * den;
            let diff = a.abs_diff(num);
            let (Some(g_num), Some(g_den)) = (diff.checked_mul(diff), (2 * num * den).checked_mul(t * t)) else {
                continue;
            };
            if self.bernoulli_exp(g_num, g_den) {
                return y;
            }
        }
    }
}

fn isqrt(x: u128) -> u128 {
    let mut r = (x as f64).sqrt() as u128;
    while r * r > x {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= x {
        r += 1;
    }
    r
}

impl Drop for Sampler {
    /// The generator's state would replay every value it produced (secrets among
    /// them): overwrite it in place.
    fn drop(&mut self) {
        self.rng = ChaCha20Rng::from_seed([0; 32]);
    }
}

/// Cumulative distribution of |e| for the discrete Gaussian of deviation `sigma`, cut at
/// `GAUSS_TAIL`·σ, scaled to 2^64 (the last entry is 2^64 − 1).
fn gaussian_table(sigma: f64) -> Vec<u64> {
    let bound = (sigma * GAUSS_TAIL).ceil() as i64;
    let weights: Vec<f64> = (0..=bound)
        .map(|k| {
            let w = (-(k * k) as f64 / (2.0 * sigma * sigma)).exp();
            // |e| = k > 0 stands for two values, ±k.
            if k == 0 {
                w
            } else {
                2.0 * w
            }
        })
        .collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    let mut cdt: Vec<u64> = weights
        .iter()
        .map(|w| {
            acc += w / total;
            (acc * 18446744073709551615.0).min(18446744073709551615.0) as u64
        })
        .collect();
    *cdt.last_mut().expect("the table has the zero entry") = u64::MAX;
    cdt
}

/// 32 bytes from the operating system's CSPRNG.
pub fn fresh_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    seed
}

#[cfg(test)]
mod tests {
    use super::*;

    const ERROR_STDDEV: f64 = 3.2;

    /// The exact sampler against the exact law: P(x) ∝ exp(−x²/2σ²) at σ² = 49/4 over
    /// 200 000 draws, every value with expected count ≥ 200 within 5σ of its count, and
    /// the variance (which for σ ≥ 1 is σ² to within 1e-6).
    #[test]
    fn discrete_gaussian_is_the_discrete_gaussian() {
        let mut s = Sampler::from_seed([11; 32]);
        let (num, den) = (49u64, 4u64);
        let sigma2 = num as f64 / den as f64;
        let n = 200_000;
        let draws: Vec<i64> = (0..n).map(|_| s.discrete_gaussian(num, den)).collect();
        let weight = |x: i64| (-(x * x) as f64 / (2.0 * sigma2)).exp();
        let z: f64 = (-60..=60).map(weight).sum();
        for x in -15i64..=15 {
            let expected = n as f64 * weight(x) / z;
            if expected < 200.0 {
                continue;
            }
            let got = draws.iter().filter(|&&d| d == x).count() as f64;
            let sd = (expected * (1.0 - expected / n as f64)).sqrt();
            assert!((got - expected).abs() < 5.0 * sd, "P({x}): {got} draws, {expected:.0} expected");
        }
        let mean = draws.iter().sum::<i64>() as f64 / n as f64;
        let var = draws.iter().map(|&d| (d as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 5.0 * (sigma2 / n as f64).sqrt(), "mean {mean}");
        assert!((var / sigma2 - 1.0).abs() < 0.02, "variance {var} against {sigma2}");
        // A wide one stays centred and spread as asked.
        let wide: Vec<i64> = (0..20_000).map(|_| s.discrete_gaussian(1 << 40, 1)).collect();
        let var = wide.iter().map(|&d| (d as f64).powi(2)).sum::<f64>() / wide.len() as f64;
        assert!((var / 2f64.powi(40) - 1.0).abs() < 0.05, "variance 2^{}", var.log2());
    }

    #[test]
    fn discrete_laplace_has_its_law() {
        let mut s = Sampler::from_seed([12; 32]);
        let n = 100_000;
        let draws: Vec<i64> = (0..n).map(|_| s.discrete_laplace(3)).collect();
        // P(0) = (1 − e^{−1/3}) / (1 + e^{−1/3})
        let q = (-1.0f64 / 3.0).exp();
        let p0 = (1.0 - q) / (1.0 + q);
        let got = draws.iter().filter(|&&d| d == 0).count() as f64 / n as f64;
        assert!((got - p0).abs() < 5.0 * (p0 * (1.0 - p0) / n as f64).sqrt(), "P(0) {got} vs {p0}");
        let pos = draws.iter().filter(|&&d| d > 0).count() as f64;
        let neg = draws.iter().filter(|&&d| d < 0).count() as f64;
        assert!((pos - neg).abs() < 5.0 * (n as f64).sqrt());
    }

    #[test]
    fn uniform_signed_covers_its_range_evenly() {
        let mut s = Sampler::from_seed([7; 32]);
        let v = s.uniform_signed(60_000, 2);
        let mut counts = [0u32; 8];
        for x in v {
            counts[(x + 4) as usize] += 1;
        }
        // [-4, 4): 7 500 expected each; 5σ ≈ 410.
        assert!(counts.iter().all(|&c| (7_090..=7_910).contains(&c)), "{counts:?}");
        let wide = s.uniform_signed(10_000, 100);
        assert!(wide.iter().all(|&x| (-(1i128 << 100)..1i128 << 100).contains(&x)));
        assert!(wide.iter().any(|&x| x < -(1i128 << 99)) && wide.iter().any(|&x| x > 1i128 << 99));
    }

    #[test]
    fn gaussian_has_the_right_spread_and_ternary_is_balanced() {
        let mut s = Sampler::new(ERROR_STDDEV);
        let e = s.gaussian(200_000);
        let mean = e.iter().sum::<i64>() as f64 / e.len() as f64;
        let var = e.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / e.len() as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var.sqrt() - ERROR_STDDEV).abs() < 0.05, "sd {}", var.sqrt());
        assert!(e.iter().all(|x| x.abs() <= 20));
        let t = s.ternary(300_000);
        for v in [-1, 0, 1] {
            let c = t.iter().filter(|&&x| x == v).count() as f64 / t.len() as f64;
            assert!((c - 1.0 / 3.0).abs() < 0.01, "{v}: {c}");
        }
    }

    #[test]
    fn seeded_streams_repeat_and_fresh_ones_differ() {
        let m = Modulus::new(1099511922689);
        let a = Sampler::from_seed([7; 32]).uniform(64, &[&m]);
        let b = Sampler::from_seed([7; 32]).uniform(64, &[&m]);
        assert_eq!(a, b);
        assert_ne!(fresh_seed(), fresh_seed());
    }
}
