//! Exact integer networks in layout T (throughput, CryptoNets): ciphertext i holds input
//! feature i of up to N samples, one sample per slot, so every weight is an integer
//! scalar — no rotation, no Galois key, only the relinearisation key of the squares.
//!
//! A network is integer linear layers (Σ w·x + b, the weights and biases already
//! integers: a Conv is its dense matrix in this layout) and squares, with no rescaling
//! between them: the plaintext modulus t holds every intermediate value. [`IntNetwork::bounds`]
//! proves the largest |value| over an input box by interval arithmetic on the integer
//! weights (not by calibration), [`plan`] picks t above twice that bound (so the
//! centered decoding is exact) and the smallest secure chain the noise schedule fits
//! in, and [`IntNetwork::schedule`] says before which layers to switch the modulus down.
//! The evaluator's own noise checks still refuse anything that could decrypt wrong.

use rayon::prelude::*;
use ring::arith::is_prime;
use ring::{Modulus, Poly};
use rlwe::RelinKey;

use crate::ciphertext::Ciphertext;
use crate::error::{Error, Result};
use crate::eval::Evaluator;
use crate::noise;
use crate::params::Parameters;

/// An integer linear layer: `outputs` rows of `inputs` weights (row-major), one bias per row.
#[derive(Clone, Debug, PartialEq)]
pub struct IntLinear {
    /// Input features.
    pub inputs: usize,
    /// Row-major weights, `outputs × inputs`.
    pub weights: Vec<i64>,
    /// One bias per output (i128: at the output scale of a deep network a bias can pass
    /// 2^63 where a residue plan holds it; each evaluation adds it modulo its t).
    pub bias: Vec<i128>,
}

impl IntLinear {
    /// Output features.
    pub fn outputs(&self) -> usize {
        self.bias.len()
    }
    fn row(&self, o: usize) -> &[i64] {
        &self.weights[o * self.inputs..(o + 1) * self.inputs]
    }
}

/// One layer of an integer network.
#[derive(Clone, Debug, PartialEq)]
pub enum IntLayer {
    /// Σ w·x + b.
    Linear(IntLinear),
    /// x², feature-wise.
    Square,
}

/// An integer network over `inputs` features.
#[derive(Clone, Debug, PartialEq)]
pub struct IntNetwork {
    inputs: usize,
    layers: Vec<IntLayer>,
}

fn shape(detail: String) -> Error {
    rlwe::Error::Shape { what: "an integer network", detail }.into()
}

/// Where the network's values are largest, and the t and chain chosen for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The largest |value| any layer can produce (inputs included) over the input box.
    pub bound: u128,
    /// The plaintext modulus: a prime ≡ 1 (mod 2N) above 2·bound.
    pub t: u64,
    /// log2 N.
    pub log_n: u32,
    /// The ciphertext primes' sizes, q_0 first.
    pub q_bits: Vec<u32>,
}

/// The levels a network's evaluation switches to: `before[i]` before layer i, `last`
/// after the last (the answer's level, as low as the noise allows: smaller answers).
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// Level before each layer.
    pub before: Vec<usize>,
    /// Level of the outputs.
    pub last: usize,
    /// Bits of noise budget left in the outputs (estimated, conservative).
    pub budget_bits: f64,
}

impl IntNetwork {
    /// A network of `layers` over `inputs` features; every linear layer's shape must
    /// chain with the previous one's.
    pub fn new(inputs: usize, layers: Vec<IntLayer>) -> Result<Self> {
        if inputs == 0 {
            return Err(shape("no input feature".into()));
        }
        let mut width = inputs;
        for (i, l) in layers.iter().enumerate() {
            if let IntLayer::Linear(lin) = l {
                if lin.inputs != width || lin.weights.len() != lin.inputs * lin.outputs() || lin.outputs() == 0 {
                    return Err(shape(format!(
                        "layer {i}: {} weights and {} biases for {width} inputs",
                        lin.weights.len(),
                        lin.outputs()
                    )));
                }
                width = lin.outputs();
            }
        }
        Ok(Self { inputs, layers })
    }

    /// Input features.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Output features.
    pub fn outputs(&self) -> usize {
        self.layers
            .iter()
            .rev()
            .find_map(|l| match l {
                IntLayer::Linear(lin) => Some(lin.outputs()),
                IntLayer::Square => None,
            })
            .unwrap_or(self.inputs)
    }

    /// The layers.
    pub fn layers(&self) -> &[IntLayer] {
        &self.layers
    }

    /// Squares in the network (each one ciphertext product per feature).
    pub fn squares(&self) -> usize {
        self.layers.iter().filter(|l| matches!(l, IntLayer::Square)).count()
    }

    /// The exact integer computation of one sample; `None` if a value leaves i128.
    pub fn reference(&self, x: &[i64]) -> Option<Vec<i128>> {
        let mut v: Vec<i128> = x.iter().map(|&a| a as i128).collect();
        for l in &self.layers {
            v = match l {
                IntLayer::Square => v.iter().map(|a| a.checked_mul(*a)).collect::<Option<_>>()?,
                IntLayer::Linear(lin) => (0..lin.outputs())
                    .map(|o| {
                        lin.row(o)
                            .iter()
                            .zip(&v)
                            .try_fold(lin.bias[o], |acc, (&w, &a)| acc.checked_add((w as i128).checked_mul(a)?))
                    })
                    .collect::<Option<_>>()?,
            };
        }
        Some(v)
    }

    /// The largest |value| of any layer (inputs included) for inputs in `[lo, hi]`, proven
    /// by interval arithmetic (each output's interval from its inputs' and the integer
    /// weights' signs; a square of [a, b] is within [0 or min², max²]); `None` past i128.
    pub fn bounds(&self, lo: i64, hi: i64) -> Option<u128> {
        let mut iv: Vec<(i128, i128)> = vec![(lo.min(hi) as i128, hi.max(lo) as i128); self.inputs];
        let mag = |iv: &[(i128, i128)]| iv.iter().map(|&(a, b)| a.unsigned_abs().max(b.unsigned_abs())).max();
        let mut best = mag(&iv)?;
        for l in &self.layers {
            iv = match l {
                IntLayer::Square => iv
                    .iter()
                    .map(|&(a, b)| {
                        let (a2, b2) = (a.checked_mul(a)?, b.checked_mul(b)?);
                        let low = if a <= 0 && b >= 0 { 0 } else { a2.min(b2) };
                        Some((low, a2.max(b2)))
                    })
                    .collect::<Option<_>>()?,
                IntLayer::Linear(lin) => (0..lin.outputs())
                    .map(|o| {
                        let b = lin.bias[o];
                        lin.row(o).iter().zip(&iv).try_fold((b, b), |(l, h), (&w, &(a, c))| {
                            let w = w as i128;
                            let (x, y) = (w.checked_mul(a)?, w.checked_mul(c)?);
                            Some((l.checked_add(x.min(y))?, h.checked_add(x.max(y))?))
                        })
                    })
                    .collect::<Option<_>>()?,
            };
            best = best.max(mag(&iv)?);
        }
        Some(best)
    }

    /// The modulus switches of an evaluation under `params`, from inputs whose noise bound
    /// is `fresh_bits` (log2): before each layer, switch down while the switch divides the
    /// noise rather than just adding its own rounding (the product that follows then
    /// squares a smaller noise); after the last, switch down while the outputs still fit.
    /// Refused (`NoiseBudgetExhausted`) where a layer would not fit: more primes needed.
    pub fn schedule(&self, params: &Parameters, fresh_bits: f64) -> Result<Schedule> {
        self.walk(params, fresh_bits, None, None)
    }

    /// [`Self::schedule`] for answers flooded at 2^-`lambda` when `lambda` is given
    /// ([`crate::circuit`]): the answers stop at a level that holds the flood too.
    pub fn schedule_with(&self, params: &Parameters, fresh_bits: f64, lambda: Option<u32>) -> Result<Schedule> {
        self.walk(params, fresh_bits, None, lambda)
    }

    /// Whether `schedule` (made for another plaintext modulus of the same chain, say) holds
    /// under `params`: the same noise formulas along its levels; its budget left if it does.
    pub fn check_schedule(&self, params: &Parameters, fresh_bits: f64, schedule: &Schedule) -> Result<f64> {
        self.check_schedule_with(params, fresh_bits, schedule, None)
    }

    /// [`Self::check_schedule`] with the flood of `lambda`, if given, at the answers' level.
    pub fn check_schedule_with(
        &self,
        params: &Parameters,
        fresh_bits: f64,
        schedule: &Schedule,
        lambda: Option<u32>,
    ) -> Result<f64> {
        if schedule.before.len() != self.layers.len() {
            return Err(shape("a schedule of another network".into()));
        }
        Ok(self.walk(params, fresh_bits, Some(schedule), lambda)?.budget_bits)
    }

    /// The noise walk behind [`Self::schedule`] (levels chosen) and [`Self::check_schedule`]
    /// (levels given; a level above the current one, or past the chain, is refused).
    fn walk(
        &self,
        params: &Parameters,
        fresh_bits: f64,
        given: Option<&Schedule>,
        lambda: Option<u32>,
    ) -> Result<Schedule> {
        let log_q = |l: usize| (params.q()[l] as f64).log2();
        let floor = noise::mod_switch(params);
        let log_t = (params.plaintext_modulus() as f64).log2();
        let mut level = params.max_level();
        let mut nz = fresh_bits;
        let mut before = Vec::with_capacity(self.layers.len());
        let refuse = |op, nz: f64, level| {
            let limit = noise::limit(params, level);
            if nz.is_nan() || nz > limit {
                Err(Error::NoiseBudgetExhausted { op, bound_bits: nz, limit_bits: limit, level })
            } else {
                Ok(())
            }
        };
        let switch_to = |level: &mut usize, nz: &mut f64, target: usize| -> Result<()> {
            if target > *level {
                return Err(shape(format!("a schedule that rises from level {level} to {target}")));
            }
            while *level > target {
                *nz = noise::log_add(*nz - log_q(*level), floor);
                *level -= 1;
            }
            refuse("mod_switch", *nz, *level)
        };
        for (i, l) in self.layers.iter().enumerate() {
            match given {
                Some(g) => switch_to(&mut level, &mut nz, g.before[i])?,
                None => {
                    while level > 0 && nz - log_q(level) >= floor {
                        nz = noise::log_add(nz - log_q(level), floor);
                        level -= 1;
                    }
                }
            }
            before.push(level);
            match l {
                IntLayer::Square => {
                    nz = noise::log_add(2.0 * nz, noise::key_switch(params, level));
                    refuse("mul_relin", nz, level)?;
                }
                IntLayer::Linear(lin) => {
                    let l1 = (0..lin.outputs())
                        .map(|o| lin.row(o).iter().map(|w| w.unsigned_abs() as f64).sum::<f64>())
                        .fold(1.0, f64::max);
                    nz += l1.log2();
                    refuse("weighted_sum", nz, level)?;
                    // add_scalar adds b·f mod t (centered): at most t/2.
                    nz = noise::log_add(nz, log_t - 1.0);
                    refuse("add_scalar", nz, level)?;
                }
            }
        }
        // What the answers must hold at their level: their noise, or the flood that hides it.
        let answer_bound = |nz: f64| match lambda {
            None => nz,
            Some(l) => crate::circuit::flooded_noise_bits(params, crate::circuit::flood_bits(params, nz, l)),
        };
        match given {
            Some(g) => switch_to(&mut level, &mut nz, g.last)?,
            None => {
                while level > 0 {
                    let next = noise::log_add(nz - log_q(level), floor);
                    if answer_bound(next) > noise::limit(params, level - 1) {
                        break;
                    }
                    nz = next;
                    level -= 1;
                }
            }
        }
        if lambda.is_some() {
            refuse("flood", answer_bound(nz), level)?;
        }
        Ok(Schedule { before, last: level, budget_bits: noise::limit(params, level) - nz })
    }

    /// Evaluates the network on a batch (ciphertext i = feature i of every sample, all at
    /// one level and factor), switching the modulus as `schedule` says.
    pub fn evaluate(
        &self,
        eval: &Evaluator,
        rk: &RelinKey,
        schedule: &Schedule,
        x: Vec<Ciphertext>,
    ) -> Result<Vec<Ciphertext>> {
        if x.len() != self.inputs {
            return Err(shape(format!("{} input ciphertexts for {} features", x.len(), self.inputs)));
        }
        if schedule.before.len() != self.layers.len() {
            return Err(shape("a schedule of another network".into()));
        }
        let mut v = x;
        for (l, &level) in self.layers.iter().zip(&schedule.before) {
            v = v.par_iter().map(|c| eval.mod_switch_to(c, level)).collect::<Result<_>>()?;
            v = match l {
                IntLayer::Square => v.par_iter().map(|c| eval.square_relin(c, rk)).collect::<Result<_>>()?,
                IntLayer::Linear(lin) => linear(eval, lin, &v)?,
            };
        }
        v.par_iter().map(|c| eval.mod_switch_to(c, schedule.last)).collect()
    }
}

fn signed_mod(v: i64, m: &Modulus) -> u64 {
    let r = m.reduce(v.unsigned_abs());
    if v < 0 {
        m.neg(r)
    } else {
        r
    }
}

/// Σ w·x + b per output: one modular reduction per coefficient and output (lazy u128
/// sums of Shoup products), then the bias through `add_scalar` (which applies the factor).
fn linear(eval: &Evaluator, lin: &IntLinear, x: &[Ciphertext]) -> Result<Vec<Ciphertext>> {
    let params = eval.params();
    let first = &x[0];
    let (level, factor) = (first.level(), first.factor);
    for c in x {
        if !c.params.same(params) {
            return Err(rlwe::Error::ParamsMismatch.into());
        }
        if c.level() != level {
            return Err(rlwe::Error::LevelMismatch { left: level, right: c.level() }.into());
        }
        if c.factor != factor {
            return Err(shape("input ciphertexts with different factors (switch them alike)".into()));
        }
    }
    let moduli = &params.rlwe().ctx().moduli[..=level];
    let n = params.n();
    let limit = noise::limit(params, level);
    (0..lin.outputs())
        .into_par_iter()
        .map(|o| {
            let row = lin.row(o);
            // Σ |w|·‖x‖ bounds the sum's noise.
            let log_noise = row.iter().zip(x).filter(|(w, _)| **w != 0).fold(f64::NEG_INFINITY, |acc, (w, c)| {
                noise::log_add(acc, c.log_noise + (w.unsigned_abs() as f64).log2())
            });
            if log_noise.is_nan() || log_noise > limit {
                return Err(Error::NoiseBudgetExhausted {
                    op: "weighted_sum",
                    bound_bits: log_noise,
                    limit_bits: limit,
                    level,
                });
            }
            let mut parts = [Poly::zero(n, level + 1), Poly::zero(n, level + 1)];
            let mut acc = vec![0u128; n];
            for (k, part) in parts.iter_mut().enumerate() {
                for (li, m) in moduli.iter().enumerate() {
                    acc.iter_mut().for_each(|a| *a = 0);
                    for (&w, c) in row.iter().zip(x) {
                        if w == 0 {
                            continue;
                        }
                        let (wm, ws) = (signed_mod(w, m), m.shoup(signed_mod(w, m)));
                        let src = if k == 0 { c.inner.parts().0 } else { c.inner.parts().1 };
                        for (a, &s) in acc.iter_mut().zip(src.limb(li)) {
                            *a += m.mul_shoup(s, wm, ws) as u128;
                        }
                    }
                    for (d, &a) in part.limb_mut(li).iter_mut().zip(&acc) {
                        *d = m.reduce_u128(a);
                    }
                }
            }
            let [c0, c1] = parts;
            let inner = rlwe::Ciphertext::from_parts(params.rlwe(), c0, c1, 1.0)?;
            let sum = Ciphertext::new(params, inner, factor, log_noise.max(0.0));
            // The bias modulo t, centered: add_scalar takes it mod t anyway.
            let t = params.plaintext_modulus() as i128;
            let b = lin.bias[o].rem_euclid(t);
            eval.add_scalar(&sum, if b > t / 2 { b - t } else { b } as i64)
        })
        .collect()
}

/// The bound on the plaintext modulus [`plan`] picks: 2^60, the largest t [`Parameters`]
/// accepts (the factor travels on the wire as a u64, exact for any t; the chain's primes,
/// at most 60 bits, must also exceed t, so a t near 2^60 usually ends in `NoChain`).
pub const MAX_PLAN_T: u64 = 1 << 60;

/// The smallest prime t ≡ 1 (mod 2N) above `2·bound`, below 2^60; `None` if none is.
pub fn plaintext_modulus_for(bound: u128, n: usize) -> Option<u64> {
    batching_primes_above(2 * bound, n).next()
}

/// The primes ≡ 1 (mod 2n) above `min`, ascending, below [`MAX_PLAN_T`].
fn batching_primes_above(min: u128, n: usize) -> impl Iterator<Item = u64> {
    let two_n = 2 * n as u128;
    let first = (min / two_n + 1) * two_n + 1;
    (0..)
        .map(move |i| first + i * two_n)
        .take_while(|&c| c < MAX_PLAN_T as u128)
        .map(|c| c as u64)
        .filter(|&c| is_prime(c))
}

/// Why no parameter set holds a network.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The proven bound needs a t past 2^60 ([`plan`]) or residues past 2^126 ([`plan_crt`]),
    /// or leaves i128.
    #[error(
        "the network's values can reach {bound} in magnitude over the input range, and no plaintext modulus \
         below 2^60 (nor a residue plan of up to four) holds twice that: quantize with fewer bits, narrow the \
         input range, or use fewer layers"
    )]
    BoundTooLarge {
        /// The proven bound (u128::MAX: beyond i128).
        bound: u128,
    },
    /// No secure chain up to N = 2^15 fits the noise of the network's products.
    #[error(
        "no 128-bit-secure parameter set up to N = 2^15 holds this network with t = 2^{t_bits:.1} \
         ({squares} squares): quantize with fewer bits (a smaller t) or use fewer square layers"
    )]
    NoChain {
        /// log2 t.
        t_bits: f64,
        /// Squares in the network.
        squares: usize,
    },
}

/// The noise bound of a public-key encryption of any batch (‖m‖_1 ≤ N·t/2).
pub fn fresh_noise_bits(params: &Parameters) -> f64 {
    let m = (params.n() as f64 * params.plaintext_modulus() as f64 / 2.0).log2();
    noise::log_add(noise::fresh_public(params), m)
}

/// Chooses t and the smallest secure chain (smallest N, then fewest bits) for `net` over
/// inputs in `[lo, hi]`; returns the plan and its built parameters.
///
/// With `lambda`, the chain also holds the flood of circuit privacy at 2^-λ at the
/// answers' level ([`crate::circuit`]).
pub fn plan(
    net: &IntNetwork,
    lo: i64,
    hi: i64,
    lambda: Option<u32>,
) -> std::result::Result<(Plan, Parameters), PlanError> {
    let bound = net.bounds(lo, hi).ok_or(PlanError::BoundTooLarge { bound: u128::MAX })?;
    // t < 2^60 (the parameters' limit), and t > 2·bound.
    if bound >= 1 << 59 {
        return Err(PlanError::BoundTooLarge { bound });
    }
    let mut t_bits = 0.0;
    for log_n in 13..=15u32 {
        let n = 1usize << log_n;
        let t =
            plaintext_modulus_for(bound, n).filter(|&t| t < MAX_PLAN_T).ok_or(PlanError::BoundTooLarge { bound })?;
        t_bits = (t as f64).log2();
        if let Some((q_bits, mut sets)) = smallest_chain(net, log_n, &[t], lambda) {
            return Ok((Plan { bound, t, log_n, q_bits }, sets.remove(0)));
        }
    }
    Err(PlanError::NoChain { t_bits, squares: net.squares() })
}

/// A plan in residues (CryptoNets' answer to values past one t): k distinct plaintext
/// moduli t_i ≡ 1 (mod 2N) whose product T exceeds twice the proven bound, all over one
/// ring and chain. The network runs once per t_i under the same secret and relinearisation
/// key (keys do not depend on t here: see `rlwe::RelinKey::under`), and [`crt_combine`]
/// gives back each exact value from its k centered residues.
#[derive(Clone, Debug, PartialEq)]
pub struct CrtPlan {
    /// The largest |value| any layer can produce over the input box.
    pub bound: u128,
    /// The plaintext moduli, ascending; their product is above 2·bound and below 2^127.
    pub ts: Vec<u64>,
    /// log2 N.
    pub log_n: u32,
    /// The ciphertext primes' sizes, q_0 first (one chain for every residue).
    pub q_bits: Vec<u32>,
}

/// The most residues [`plan_crt`] considers: four t below 2^32 already hold 2^126.
pub const MAX_RESIDUES: usize = 4;

/// `k` distinct primes ≡ 1 (mod 2n), as equal as the primes allow, whose product exceeds
/// `2·bound`: consecutive primes from just above the k-th root, the window moved up until
/// the exact product holds (the root rounds in floating point); `None` if that needs a t
/// past 2^60 or a product past 2^127.
fn residue_moduli(bound: u128, n: usize, k: usize) -> Option<Vec<u64>> {
    let root = ((2 * bound + 1) as f64).powf(1.0 / k as f64).ceil() as u128;
    let mut primes = batching_primes_above(root, n);
    let mut ts: Vec<u64> = primes.by_ref().take(k).collect();
    loop {
        if ts.len() < k {
            return None;
        }
        let product = ts.iter().try_fold(1u128, |p, &t| p.checked_mul(t as u128).filter(|&p| p < 1 << 127))?;
        if product > 2 * bound {
            return Some(ts);
        }
        ts.remove(0);
        ts.extend(primes.next());
    }
}

/// Chooses the residues and the one chain for `net` over inputs in `[lo, hi]`: for each N
/// (2^13..2^15, smallest first) and each count k from the fewest that stays below 2^60 per
/// t to [`MAX_RESIDUES`], the smallest chain on which the largest t's schedule holds under
/// every t_i (one schedule for all, [`IntNetwork::check_schedule`]); among the k
/// that fit at the smallest N, the fewest k·(chain bits)² (k evaluations, each dominated by
/// key switches quadratic in the chain). One residue is [`plan`]'s t when it fits.
/// Returns the plan and one parameter set per t_i, in `ts`' order, all of one ring. With
/// `lambda`, as [`plan`].
pub fn plan_crt(
    net: &IntNetwork,
    lo: i64,
    hi: i64,
    lambda: Option<u32>,
) -> std::result::Result<(CrtPlan, Vec<Parameters>), PlanError> {
    let bound = net.bounds(lo, hi).ok_or(PlanError::BoundTooLarge { bound: u128::MAX })?;
    if bound >= 1 << 126 {
        return Err(PlanError::BoundTooLarge { bound });
    }
    let bits_needed = ((2 * bound + 1) as f64).log2();
    let k_min = ((bits_needed / 59.0).ceil() as usize).max(1);
    if k_min > MAX_RESIDUES {
        return Err(PlanError::BoundTooLarge { bound });
    }
    let mut t_bits = 0.0;
    for log_n in 13..=15u32 {
        let n = 1usize << log_n;
        let mut best: Option<(f64, CrtPlan, Vec<Parameters>)> = None;
        for k in k_min..=MAX_RESIDUES {
            let Some(ts) = residue_moduli(bound, n, k) else { continue };
            let t_max = *ts.last().expect("k ≥ 1");
            t_bits = (t_max as f64).log2();
            let Some((q_bits, params)) = smallest_chain(net, log_n, &ts, lambda) else { continue };
            let total: u32 = q_bits.iter().sum();
            let cost = k as f64 * (total as f64).powi(2);
            if best.as_ref().is_none_or(|b| cost < b.0) {
                best = Some((cost, CrtPlan { bound, ts, log_n, q_bits }, params));
            }
        }
        if let Some((_, plan, params)) = best {
            return Ok((plan, params));
        }
    }
    Err(PlanError::NoChain { t_bits, squares: net.squares() })
}

/// The smallest chain at `log_n` (fewest bits, equal primes above every t) on which the
/// largest t's schedule fits under every t in `ts`, with its parameter sets (one per t, one ring).
fn smallest_chain(
    net: &IntNetwork,
    log_n: u32,
    ts: &[u64],
    lambda: Option<u32>,
) -> Option<(Vec<u32>, Vec<Parameters>)> {
    let t_max = *ts.iter().max()?;
    let min_bits = (64 - t_max.leading_zeros()) + 1;
    let mut best: Option<(u32, Vec<u32>, Vec<Parameters>)> = None;
    for bits in [min_bits.max(30), 40, 50, 55, 60].into_iter().filter(|&b| b >= min_bits && b <= 60) {
        for k in 1..=24usize {
            let q_bits = vec![bits; k];
            let Ok(first) = Parameters::builder().log_n(log_n).q_bits(&q_bits).plaintext_modulus(t_max).build() else {
                break; // insecure (or no primes): more primes will not help
            };
            // Every residue on exactly the first set's primes.
            let Ok(sets) =
                ts.iter().map(|&t| Parameters::from_spec(first.spec(), t)).collect::<Result<Vec<Parameters>>>()
            else {
                break;
            };
            // One schedule for every residue (the model stores one): the largest t's, which
            // must hold under each smaller t too (the walk checks it, not an assumption).
            let top = sets.iter().max_by_key(|p| p.plaintext_modulus()).expect("k ≥ 1");
            let fits = net.schedule_with(top, fresh_noise_bits(top), lambda).is_ok_and(|sch| {
                sets.iter().all(|p| net.check_schedule_with(p, fresh_noise_bits(p), &sch, lambda).is_ok())
            });
            if fits {
                let total = bits * k as u32;
                if best.as_ref().is_none_or(|b| total < b.0) {
                    best = Some((total, q_bits, sets));
                }
                break;
            }
        }
    }
    best.map(|(_, q, p)| (q, p))
}

/// The value in (−T/2, T/2] (T = Π ts) congruent to each `residues[i]` modulo `ts[i]`
/// (Garner's mixed-radix recombination); residues may be centered or not. `None` unless the
/// moduli are distinct odd primes below 2^60, as many as the residues, with T below 2^127.
pub fn crt_combine(residues: &[i64], ts: &[u64]) -> Option<i128> {
    if residues.len() != ts.len() || ts.is_empty() {
        return None;
    }
    let mut x: u128 = 0; // in [0, m)
    let mut m: u128 = 1;
    for (&r, &t) in residues.iter().zip(ts) {
        let m_mod = (m % t as u128) as u64;
        if !(3..MAX_PLAN_T).contains(&t) || !is_prime(t) || m_mod == 0 {
            return None;
        }
        let tm = Modulus::new(t);
        let r = signed_mod(r, &tm);
        let diff = tm.sub(r, (x % t as u128) as u64);
        let a = tm.mul(diff, tm.inv(m_mod));
        x = x.checked_add(m.checked_mul(a as u128)?)?;
        m = m.checked_mul(t as u128).filter(|&m| m < 1 << 127)?;
    }
    Some(if x > m / 2 { x as i128 - m as i128 } else { x as i128 })
}
