//! Noise-aware scale choice: the program is simulated with the noise real CKKS adds
//! (encryption, encoding, rescaling, key switching), and the scale is the smallest
//! that keeps the outputs' top-1 class, with a safety factor, on calibration data.
//!
//! The simulation runs once on a program whose primes all equal a reference scale
//! 2^S_REF (so every value's scale is Δ or Δ²); errors that small are linear in the
//! noise, which is proportional to 2^−S, so the error at scale 2^S is the reference
//! error times 2^(S_REF − S).
//!
//! Noise per event, in slot units before dividing by the value's scale (N = ring
//! degree, σ = 3.2, h ≈ 2N/3 nonzero secret coefficients, rounding errors uniform):
//! - encryption and encoding of the input: σ·√N + √(N/12);
//! - plaintext encoding: √(N/12), relative to the plaintext's scale;
//! - rescale (rounding c0 + c1·s): √(N·(1 + h)/12) ≈ 0.24·N;
//! - key switch (rotation, relinearization): the same rounding in ModDown plus the
//!   digits' key noise Σ d_j·e_j / P ≈ σ·N·√(dnum/12)·(digit / P), digits centered
//!   (the engine's base conversions are exact), weighted per parameter set by
//!   [`ks_factor`].
//!
//! Checked against real ciphertexts (`heinfer run`): the prediction is within a small
//! factor of the measured max logit error (see docs/ARCHITECTURE.md).

use model::ir::{Node, Op, PlainVec};

/// Reference scale of the noise simulation (noise ≪ signal: linear regime).
pub const S_REF: u32 = 40;
const SIGMA: f64 = 3.2;

/// What the analysis found, per calibration sample: the output error from the noise
/// that does not depend on the key-switching split (`a`), the error from key-switch
/// noise of N per event (`b`, to be multiplied by [`ks_factor`]), and the sample's
/// top-1 tolerance (half the gap between its two best outputs; |y| with one output).
#[derive(Clone, Debug, Default)]
pub struct NoiseEstimate {
    pub samples: Vec<(f64, f64, f64)>,
    pub safety: f64,
}

/// Key-switch noise per event, in units of N: σ·√(dnum/12)·(largest digit / P), plus
/// the ModDown rounding. A P larger than the digits makes the first term vanish; it is
/// not floored at 1 since the base conversions became exact (a biased conversion's
/// error did not shrink with P).
pub fn ks_factor(dnum: usize, digit_over_p: f64) -> f64 {
    SIGMA * (dnum as f64 / 12.0).sqrt() * digit_over_p + 0.25
}

impl NoiseEstimate {
    /// The estimate for a ring 2^k times larger (rescale and key-switch noise grow
    /// with N, encryption noise with √N: scaling all by 2^k is conservative).
    pub fn for_larger_ring(&self, k: u32) -> NoiseEstimate {
        let f = 2f64.powi(k as i32);
        NoiseEstimate {
            samples: self.samples.iter().map(|&(a, b, t)| (a * f, b * f, t)).collect(),
            safety: self.safety,
        }
    }
    fn err_ref(&self, i: usize, ks: f64) -> f64 {
        let (a, b, _) = self.samples[i];
        (a * a + (ks * b) * (ks * b)).sqrt()
    }
    /// The smallest scale bits at which `quantile` of the samples keep their top-1
    /// class under `safety` × the modelled noise, for key-switch factor `ks`.
    pub fn min_scale_bits(&self, quantile: f64, ks: f64) -> u32 {
        let mut v: Vec<f64> = (0..self.samples.len())
            .filter(|&i| self.samples[i].2 > 0.0)
            .map(|i| S_REF as f64 + (self.safety * self.err_ref(i, ks) / self.samples[i].2).log2())
            .collect();
        if v.is_empty() {
            return 0;
        }
        v.sort_by(f64::total_cmp);
        let i = ((quantile * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        v[i].ceil().max(0.0) as u32
    }
    /// Predicted max output error at scale 2^s (without the safety factor).
    pub fn max_err_at(&self, s: u32, ks: f64) -> f64 {
        let m = (0..self.samples.len()).map(|i| self.err_ref(i, ks)).fold(0.0, f64::max);
        m * 2f64.powi(S_REF as i32 - s as i32)
    }
}

/// Uniform doubles and Gaussians (a table of 4096 normal quantiles, picked at random:
/// ample for a noise estimate and ~20× cheaper than Box–Muller per slot).
struct Rng(u64, Vec<f64>);
impl Rng {
    fn new(seed: u64) -> Self {
        let mut r = Rng(seed, vec![]);
        let mut t: Vec<f64> = (0..2048)
            .flat_map(|_| {
                let (u, v) = (r.next(), r.next());
                let m = (-2.0 * u.ln()).sqrt();
                let a = 2.0 * std::f64::consts::PI * v;
                [m * a.cos(), m * a.sin()]
            })
            .collect();
        t.sort_by(f64::total_cmp);
        r.1 = t;
        r
    }
    fn next(&mut self) -> f64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((v >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn gauss(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        self.1[(v >> 52) as usize]
    }
}

/// Runs `nodes` on one input slot vector three times — clean, with the noise that
/// does not depend on key switching, with key-switch noise only (N per event) — and
/// returns the three output vectors. Values are freed after their last use.
#[allow(clippy::too_many_arguments)]
fn run_three(
    nodes: &[Node],
    plains: &[PlainVec],
    last_use: &[usize],
    input: &[f64],
    out: usize,
    slots: usize,
    log_n: u32,
    input_keyswitches: f64,
    rng: &mut Rng,
) -> [Vec<f64>; 3] {
    let n = (1u64 << log_n) as f64;
    let round = (n * (1.0 + 2.0 * n / 3.0) / 12.0).sqrt();
    let enc = SIGMA * n.sqrt() + (n / 12.0).sqrt();
    let pt = (n / 12.0).sqrt();
    let mut vals: Vec<Option<[Vec<f64>; 3]>> = Vec::with_capacity(nodes.len());
    let plain = |p: u32| -> Vec<f64> {
        let mut v = plains[p as usize].values.clone();
        v.resize(slots, 0.0);
        v
    };
    fn get(vals: &[Option<[Vec<f64>; 3]>], a: u32) -> &[Vec<f64>; 3] {
        vals[a as usize].as_ref().expect("value used after its last use")
    }
    for (i, node) in nodes.iter().enumerate() {
        let sc = node.scale;
        let map1 = |x: &[Vec<f64>; 3], f: &dyn Fn(f64) -> f64| -> [Vec<f64>; 3] {
            [0, 1, 2].map(|i| x[i].iter().map(|&v| f(v)).collect())
        };
        let map2 = |x: &[Vec<f64>; 3], y: &[Vec<f64>; 3], f: &dyn Fn(f64, f64) -> f64| -> [Vec<f64>; 3] {
            [0, 1, 2].map(|i| x[i].iter().zip(&y[i]).map(|(&p, &q)| f(p, q)).collect())
        };
        // (values, non-key-switch noise std, key-switch noise std)
        let (mut v, e_other, e_ks): ([Vec<f64>; 3], f64, f64) = match node.op {
            Op::Input { .. } => {
                let mut v = input.to_vec();
                v.resize(slots, 0.0);
                ([v.clone(), v.clone(), v], enc / sc, n * input_keyswitches.sqrt() / sc)
            }
            Op::Add { a, b } => (map2(get(&vals, a), get(&vals, b), &|x, y| x + y), 0.0, 0.0),
            Op::Sub { a, b } => (map2(get(&vals, a), get(&vals, b), &|x, y| x - y), 0.0, 0.0),
            Op::AddPlain { a, pt: p } => {
                let w = plain(p);
                let x = get(&vals, a);
                let g = |x: &Vec<f64>| -> Vec<f64> { x.iter().zip(&w).map(|(x, y)| x + y).collect() };
                ([g(&x[0]), g(&x[1]), g(&x[2])], pt / sc, 0.0)
            }
            Op::MulPlain { a, pt: p } => {
                let w = plain(p);
                let e = pt / plains[p as usize].scale;
                let [x0, x1, x2] = get(&vals, a);
                let c: Vec<f64> = x0.iter().zip(&w).map(|(x, y)| x * y).collect();
                let z1: Vec<f64> = x1.iter().zip(&w).map(|(x, y)| x * (y + e * rng.gauss())).collect();
                let z2: Vec<f64> = x2.iter().zip(&w).map(|(x, y)| x * y).collect();
                ([c, z1, z2], 0.0, 0.0)
            }
            Op::AddConst { a, c: k } => (map1(get(&vals, a), &|x| x + k), 0.0, 0.0),
            Op::MulConst { a, c: k, .. } => (map1(get(&vals, a), &|x| x * k), 0.0, 0.0),
            Op::MulRelin { a, b } => (map2(get(&vals, a), get(&vals, b), &|x, y| x * y), 0.0, n / sc),
            Op::Square { a } => (map1(get(&vals, a), &|x| x * x), 0.0, n / sc),
            Op::Rescale { a } => (get(&vals, a).clone(), round / sc, 0.0),
            Op::DropLevel { a, .. } => (get(&vals, a).clone(), 0.0, 0.0),
            Op::Rotate { a, step } => {
                let k = step.rem_euclid(slots as i64) as usize;
                (map1x(get(&vals, a), |v| v[k..].iter().chain(&v[..k]).copied().collect()), 0.0, n / sc)
            }
        };
        if e_other > 0.0 {
            for x in v[1].iter_mut() {
                *x += e_other * rng.gauss();
            }
        }
        if e_ks > 0.0 {
            for x in v[2].iter_mut() {
                *x += e_ks * rng.gauss();
            }
        }
        vals.push(Some(v));
        // Free operands whose last use this was.
        for a in operands(&node.op) {
            if last_use[a as usize] == i && a as usize != out {
                vals[a as usize] = None;
            }
        }
    }
    vals[out].take().expect("output computed")
}

fn map1x(x: &[Vec<f64>; 3], f: impl Fn(&Vec<f64>) -> Vec<f64>) -> [Vec<f64>; 3] {
    [f(&x[0]), f(&x[1]), f(&x[2])]
}

fn operands(op: &Op) -> Vec<u32> {
    match *op {
        Op::Input { .. } => vec![],
        Op::Add { a, b } | Op::Sub { a, b } | Op::MulRelin { a, b } => vec![a, b],
        Op::AddPlain { a, .. }
        | Op::MulPlain { a, .. }
        | Op::AddConst { a, .. }
        | Op::MulConst { a, .. }
        | Op::Square { a }
        | Op::Rescale { a }
        | Op::DropLevel { a, .. }
        | Op::Rotate { a, .. } => vec![a],
    }
}

/// Key-switch events, in variance, a compact query's packing (`rlwe::packing`, then the
/// real part) leaves in each slot, for a period of `period` slots on a ring of degree n.
/// The tree's merges of width w are amplified (in variance) 2× by each later step: the
/// sum is ≈ period·n/3 events, doubled by the conjugate's addition. Against
/// `cargo test -p ckks --release --test compact_query`, which measures a max slot error
/// of ~2^22.5 at n = 2^13, period 64, this model (N per event) predicts a σ of 2^22.2:
/// conservative by the same factor as its other key switches.
pub fn compact_input_keyswitches(period: usize, log_n: u32) -> f64 {
    2.0 * period as f64 * (1u64 << log_n) as f64 / 3.0
}

/// The noise analysis of a program built with every prime and the scale at 2^S_REF.
/// `inputs`: packed input slot vectors of calibration samples; `out_slots`: the slot
/// of each output; `input_keyswitches`: key-switch events (in variance) the input
/// already carries — a compact query's packing ([`compact_input_keyswitches`]), 0 for
/// a ciphertext.
#[allow(clippy::too_many_arguments)]
pub fn analyse(
    nodes: &[Node],
    plains: &[PlainVec],
    out: usize,
    inputs: &[Vec<f64>],
    out_slots: &[usize],
    slots: usize,
    log_n: u32,
    safety: f64,
    input_keyswitches: f64,
) -> NoiseEstimate {
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut last_use = vec![usize::MAX; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for a in operands(&n.op) {
            last_use[a as usize] = i;
        }
    }
    let mut samples = vec![];
    for x in inputs {
        let [c, z1, z2] = run_three(nodes, plains, &last_use, x, out, slots, log_n, input_keyswitches, &mut rng);
        let y: Vec<f64> = out_slots.iter().map(|&s| c[s]).collect();
        let e1 = out_slots.iter().map(|&s| (c[s] - z1[s]).abs()).fold(0.0, f64::max);
        let e2 = out_slots.iter().map(|&s| (c[s] - z2[s]).abs()).fold(0.0, f64::max);
        let tol = if y.len() == 1 {
            y[0].abs()
        } else {
            let mut s = y.clone();
            s.sort_by(|a, b| b.total_cmp(a));
            (s[0] - s[1]) / 2.0
        };
        samples.push((e1, e2, tol));
    }
    NoiseEstimate { samples, safety }
}
