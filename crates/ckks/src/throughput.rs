//! Layout T (throughput, CryptoNets): ciphertext i holds input feature i of up to N/2
//! samples, one sample per slot. Every weight is then a scalar: a linear layer is a sum
//! of ciphertext × integer products over the features, evaluated with one modular
//! reduction per output coefficient (`ring::kernels::weighted_sums`), and needs no
//! rotation, so no Galois key. A square is three products per ciphertext, left
//! unrelinearised (three components): the linear layer after it is linear in every
//! component, so only its outputs are relinearised — 100 key switches in CryptoNets
//! instead of 845.
//!
//! Scales: a layer's weights are rounded to integers at the scale that brings the
//! result back to the caller's target after the layer's one rescale
//! (w_scale = target · q_top / input scale), so scales never drift and the primes of the
//! chain can be small (≈ 2^20 for linear layers, ≈ Δ for squares). Every prime must be
//! below 2^31 (the kernel's signed 32-bit products).

use rayon::prelude::*;
use ring::int_sums::{MAX_PRIME, MAX_WEIGHTED_MAGNITUDE};
use ring::{kernels, Poly};
use rlwe::keyswitch::{self, Addend};
use rlwe::{Ciphertext, Error, Parameters, RelinKey, Result};

/// A batch in layout T: one ciphertext per feature, all at one level and scale; each
/// is `degree + 1` polynomials over q_0..q_level in NTT form (degree 2 after a square,
/// until a relinearisation).
#[derive(Clone, Debug)]
pub struct Batch {
    level: usize,
    scale: f64,
    cts: Vec<Vec<Poly>>,
}

impl Batch {
    /// The batch of these ciphertexts (feature i = ciphertext i): they must share level
    /// and scale.
    pub fn from_ciphertexts(params: &Parameters, cts: Vec<Ciphertext>) -> Result<Self> {
        let first = cts.first().ok_or(Error::Shape { what: "a layout-T batch", detail: "no ciphertext".into() })?;
        let (level, scale) = (first.level(), first.scale());
        let mut out = Vec::with_capacity(cts.len());
        for ct in cts {
            if !ct.params().same(params) {
                return Err(Error::ParamsMismatch);
            }
            if ct.level() != level {
                return Err(Error::LevelMismatch { left: level, right: ct.level() });
            }
            if ct.scale() != scale {
                return Err(Error::ScaleMismatch { left: scale.log2(), right: ct.scale().log2() });
            }
            let (c0, c1) = ct.parts();
            out.push(vec![c0.clone(), c1.clone()]);
        }
        Ok(Self { level, scale, cts: out })
    }

    /// The ciphertexts (relinearise first if the batch is of degree 2).
    pub fn into_ciphertexts(self, params: &Parameters) -> Result<Vec<Ciphertext>> {
        let scale = self.scale;
        self.cts
            .into_iter()
            .map(|mut c| {
                if c.len() != 2 {
                    return Err(Error::Shape {
                        what: "a layout-T output",
                        detail: format!("{} components; relinearise before decrypting", c.len()),
                    });
                }
                let c1 = c.pop().expect("two");
                let c0 = c.pop().expect("two");
                Ciphertext::from_parts(params, c0, c1, scale)
            })
            .collect()
    }

    /// Ciphertexts (features) in the batch.
    pub fn len(&self) -> usize {
        self.cts.len()
    }

    /// Whether the batch holds no feature.
    pub fn is_empty(&self) -> bool {
        self.cts.is_empty()
    }

    /// The level every ciphertext is at.
    pub fn level(&self) -> usize {
        self.level
    }

    /// The scale every ciphertext carries.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Components per ciphertext minus one (1, or 2 after an unrelinearised square).
    pub fn degree(&self) -> usize {
        self.cts.first().map_or(1, |c| c.len() - 1)
    }
}

/// A group of outputs of a linear layer that read the same inputs (a Dense layer's
/// rows, or a Conv's maps at one position): the unit of work of one thread.
#[derive(Clone, Debug)]
pub struct LinearGroup {
    /// Output features written by the group.
    pub outputs: Vec<usize>,
    /// Input features read by the group.
    pub inputs: Vec<usize>,
    /// Row-major weights, one row of `inputs.len()` per output.
    pub weights: Vec<f64>,
}

/// A linear layer (Gemm/MatMul, or a Conv written as its groups) over features.
#[derive(Clone, Debug)]
pub struct Linear {
    /// Input features the layer reads.
    pub inputs: usize,
    /// Its output groups; together they cover every output once.
    pub groups: Vec<LinearGroup>,
    /// One bias per output.
    pub bias: Vec<f64>,
}

impl Linear {
    /// A dense layer from row-major `weights` (`bias.len()` rows of `inputs`), in groups
    /// of `ring::int_sums::GROUP` rows (the kernel's pass over the inputs).
    pub fn dense(weights: &[f64], bias: &[f64], inputs: usize) -> Self {
        let groups = (0..bias.len())
            .collect::<Vec<_>>()
            .chunks(ring::int_sums::GROUP)
            .map(|rows| LinearGroup {
                outputs: rows.to_vec(),
                inputs: (0..inputs).collect(),
                weights: rows.iter().flat_map(|&r| weights[r * inputs..(r + 1) * inputs].iter().copied()).collect(),
            })
            .collect();
        Self { inputs, groups, bias: bias.to_vec() }
    }

    /// Output features.
    pub fn outputs(&self) -> usize {
        self.bias.len()
    }
}

/// Evaluates layout-T layers under one parameter set (no key held; the relinearisation
/// key is passed per call).
#[derive(Clone, Debug)]
pub struct ThroughputEvaluator {
    params: Parameters,
}

impl ThroughputEvaluator {
    /// An evaluator for `params`; every prime of its chain must be below 2^31.
    pub fn new(params: &Parameters) -> Result<Self> {
        if params.q().iter().any(|&q| q >= MAX_PRIME) {
            return Err(Error::Shape {
                what: "layout-T parameters",
                detail: "every q prime must be below 2^31 (choose q_bits of 30 or fewer)".into(),
            });
        }
        Ok(Self { params: params.clone() })
    }

    /// The layer: Σ w·x + b over features, weights rounded to integers at the scale that
    /// makes the result's scale `target_scale` after the one rescale this performs.
    /// Degree-2 inputs give degree-2 outputs: to relinearise them, call [`Self::linear_sums`],
    /// [`Self::relinearize`] and [`Self::rescale`] instead (the key switch's noise is then
    /// divided by the top prime too).
    pub fn linear(&self, x: &Batch, layer: &Linear, target_scale: f64) -> Result<Batch> {
        let y = self.linear_sums(x, layer, target_scale, 1)?;
        self.rescale(y)
    }

    /// The layer without its rescales: the result is at `x`'s level, at the scale that
    /// `rescales` rescales bring to `target_scale` (two after an unrescaled square: its
    /// prime and the layer's).
    pub fn linear_sums(&self, x: &Batch, layer: &Linear, target_scale: f64, rescales: usize) -> Result<Batch> {
        if x.len() != layer.inputs {
            return Err(Error::Shape {
                what: "a layout-T linear layer",
                detail: format!("{} input ciphertexts for a layer of {} inputs", x.len(), layer.inputs),
            });
        }
        let level = x.level;
        if rescales == 0 || level < rescales {
            return Err(Error::LevelExhausted);
        }
        let mut covered = vec![0u32; layer.outputs()];
        for g in &layer.groups {
            if g.weights.len() != g.outputs.len() * g.inputs.len() || g.inputs.iter().any(|&i| i >= x.len()) {
                return Err(Error::Shape {
                    what: "a layout-T linear group",
                    detail: "weights, inputs and outputs disagree".into(),
                });
            }
            for &o in &g.outputs {
                *covered.get_mut(o).ok_or(Error::Shape {
                    what: "a layout-T linear group",
                    detail: format!("output {o} beyond the bias"),
                })? += 1;
            }
        }
        if covered.iter().any(|&c| c != 1) {
            return Err(Error::Shape {
                what: "a layout-T linear layer",
                detail: "every output must belong to exactly one group".into(),
            });
        }
        let ctx = self.params.ctx();
        let q = self.params.q();
        let dropped: f64 = (0..rescales).map(|i| q[level - i] as f64).product();
        let w_scale = target_scale * dropped / x.scale;
        let out_scale = x.scale * w_scale;
        let comps = x.degree() + 1;
        let n = ctx.n;
        let q_max = q[..=level].iter().copied().max().unwrap_or(1) as u128;
        // Round every group's weights once; refuse a layer whose integers would overflow
        // the kernel's accumulators (the chain's linear primes are then too large).
        let int_groups: Vec<Vec<i32>> = layer
            .groups
            .iter()
            .map(|g| {
                let k = g.inputs.len();
                let w: Vec<i64> = g.weights.iter().map(|&v| (v * w_scale).round() as i64).collect();
                for row in w.chunks(k.max(1)) {
                    let mag: u128 = row.iter().map(|v| v.unsigned_abs() as u128).sum::<u128>() * q_max;
                    if mag >= MAX_WEIGHTED_MAGNITUDE || row.iter().any(|v| v.unsigned_abs() >= 1 << 31) {
                        return Err(Error::Shape {
                            what: "a layout-T linear layer",
                            detail: format!(
                                "weights at scale 2^{:.1} overflow the lazy sums; use a smaller prime for this layer's rescale",
                                w_scale.log2()
                            ),
                        });
                    }
                }
                Ok(w.into_iter().map(|v| v as i32).collect())
            })
            .collect::<Result<_>>()?;
        let mut out: Vec<Vec<Poly>> =
            (0..layer.outputs()).map(|_| (0..comps).map(|_| Poly::scratch(n, level + 1)).collect()).collect();
        // One task per (component, limb), each over every output: its inputs' blocks of
        // CHUNK coefficients stay in L2 while every group reads them (group by group over
        // whole limbs streamed every input from memory once per group).
        let tasks_n = comps * (level + 1);
        let mut table: Vec<Vec<Option<&mut [u64]>>> =
            (0..tasks_n).map(|_| (0..layer.outputs()).map(|_| None).collect()).collect();
        for (o, cts) in out.iter_mut().enumerate() {
            for (c, p) in cts.iter_mut().enumerate() {
                for (l, limb) in p.data_mut().chunks_mut(n).enumerate() {
                    table[c * (level + 1) + l][o] = Some(limb);
                }
            }
        }
        // Per task, per group, the group's output limbs (each output in exactly one group:
        // checked above, so every word is written).
        let tasks: Vec<Vec<Vec<&mut [u64]>>> = table
            .into_iter()
            .map(|mut row| {
                layer
                    .groups
                    .iter()
                    .map(|g| g.outputs.iter().map(|&o| row[o].take().expect("one group per output")).collect())
                    .collect()
            })
            .collect();
        const CHUNK: usize = 128;
        tasks.into_par_iter().enumerate().for_each(|(t, mut groups)| {
            let (c, l) = (t / (level + 1), t % (level + 1));
            let m = &ctx.moduli[l];
            for start in (0..n).step_by(CHUNK) {
                let end = (start + CHUNK).min(n);
                for ((g, w), outs) in layer.groups.iter().zip(&int_groups).zip(groups.iter_mut()) {
                    let xs: Vec<&[u64]> = g.inputs.iter().map(|&i| &x.cts[i][c].limb(l)[start..end]).collect();
                    let mut o: Vec<&mut [u64]> = outs.iter_mut().map(|s| &mut s[start..end]).collect();
                    kernels::weighted_sums(&mut o, &xs, w, m);
                }
            }
        });
        // A constant in every slot is the constant polynomial: the same value at every NTT
        // position of c0.
        let moduli: Vec<_> = ctx.moduli[..=level].iter().collect();
        out.par_iter_mut().zip(layer.bias.par_iter()).for_each(|(p, &b)| {
            let b = (b * out_scale).round() as i128;
            let consts: Vec<u64> = moduli.iter().map(|m| m.reduce_i128(b)).collect();
            p[0].add_scalar_assign(&consts, &moduli);
        });
        Ok(Batch { level, scale: out_scale, cts: out })
    }

    /// Divides every component by the top prime (one level down, scale / q_level).
    /// Relinearise first: a degree-2 rescale leaves its rounding error times s².
    pub fn rescale(&self, mut x: Batch) -> Result<Batch> {
        let level = x.level;
        if level == 0 {
            return Err(Error::LevelExhausted);
        }
        let ctx = self.params.ctx();
        x.cts.par_iter_mut().flat_map_iter(|c| c.iter_mut()).for_each(|p| ctx.divide_by_top(p, level));
        x.level = level - 1;
        x.scale /= self.params.q()[level] as f64;
        Ok(x)
    }

    /// x², ciphertext by ciphertext, in place and left at degree 2 (no key switch):
    /// (c0², 2·c0·c1, c1²), at the same level, scale squared. Not rescaled: a rescale's
    /// rounding error in c2 is multiplied by s² at decryption (2^-8 of Δ at N = 2^13, the
    /// error a 99.5 % agreement cannot afford); the next layer's sums are relinearised and
    /// then rescaled twice ([`Self::linear_sums`] with `rescales` = 2).
    pub fn square(&self, mut x: Batch) -> Result<Batch> {
        if x.degree() != 1 {
            return Err(Error::Shape { what: "a layout-T square", detail: "relinearise the input first".into() });
        }
        let level = x.level;
        let ctx = self.params.ctx();
        let n = ctx.n;
        x.cts.par_iter_mut().for_each(|c| {
            let mut c2 = Poly::scratch(n, level + 1);
            let mut t = vec![0u64; n];
            {
                let (c0, c1) = c.split_at_mut(1);
                let (c0, c1) = (&mut c0[0], &mut c1[0]);
                for l in 0..=level {
                    let m = &ctx.moduli[l];
                    kernels::mul_into(c2.limb_mut(l), c1.limb(l), c1.limb(l), m);
                    kernels::mul_assign(c1.limb_mut(l), c0.limb(l), m);
                    t.copy_from_slice(c1.limb(l));
                    kernels::add_assign(c1.limb_mut(l), &t, m);
                    t.copy_from_slice(c0.limb(l));
                    kernels::mul_assign(c0.limb_mut(l), &t, m);
                }
            }
            c.push(c2);
        });
        x.scale = x.scale * x.scale;
        Ok(x)
    }

    /// Brings a degree-2 batch back to degree 1 (one key switch per ciphertext); a
    /// degree-1 batch is returned as it is.
    pub fn relinearize(&self, mut x: Batch, rk: &RelinKey) -> Result<Batch> {
        // The key's own set: this one, or a key basis of it (the same limbs up to its level).
        let kp = rk.key().params();
        if !self.params.accepts_keys_of(kp) {
            return Err(Error::ParamsMismatch);
        }
        if x.degree() != 2 {
            return Ok(x);
        }
        let level = x.level;
        if level > rk.key().max_level() {
            return Err(Error::KeyBelowLevel { key_level: rk.key().max_level(), level });
        }
        x.cts.par_iter_mut().try_for_each(|c| -> Result<()> {
            let dec = keyswitch::decompose(kp, &c[2], level);
            let (c0, c1) = keyswitch::switch(kp, &dec, rk.key(), [Addend::Poly(&c[0]), Addend::Poly(&c[1])], None)?;
            *c = vec![c0, c1];
            Ok(())
        })?;
        Ok(x)
    }
}
