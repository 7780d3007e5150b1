//! Hybrid key switching (Han–Ki): the component to switch is split into `dnum` digits
//! of about α primes, each raised to the basis Q·P (exact, centered base conversion),
//! multiplied by the key and brought back by dividing by P. Scheme evaluators build
//! relinearisation and rotations on [`decompose`] and [`switch`]; hoisted rotations
//! share one decomposition among many Galois elements: in NTT form an automorphism σ is
//! a permutation, and Σ σ(d_j)·k_j = σ(Σ d_j·σ⁻¹(k_j)), so Galois keys are kept permuted
//! by σ⁻¹ in memory and σ is applied once, to the two result polynomials.

use rayon::prelude::*;

use ring::{kernels, GaloisPerm, Poly};

use crate::error::{Error, Result};
use crate::keys::KeySwitchKey;
use crate::params::{Context, Parameters};

/// The component to key-switch, split into digits and raised to Q·P (NTT form).
pub struct Decomposed<'a> {
    /// The set it was raised in (a set, or one of its key bases): keys must match it.
    params: Parameters,
    level: usize,
    /// Digit j's limbs over every prime but its own, in the order of its converter's
    /// targets (`modup[level][j].to`); the inner product reads its own primes' limbs
    /// from `source`.
    digits: Vec<Poly>,
    /// The component itself (NTT form, over Q at `level`), borrowed: no copy.
    source: &'a Poly,
}

impl Decomposed<'_> {
    /// The level of the decomposed component.
    pub fn level(&self) -> usize {
        self.level
    }
    /// The set it was raised in: a key switch takes keys made in this set only.
    pub fn params(&self) -> &Parameters {
        &self.params
    }
}

/// The prime (index into the moduli list) of position `pos` of a polynomial over Q·P
/// at `level`: the q chain up to `level`, then the special primes.
fn ext_prime(params: &Parameters, pos: usize, level: usize) -> usize {
    if pos <= level {
        pos
    } else {
        params.q().len() + pos - level - 1
    }
}

/// Splits `d` (NTT form over Q at `level`) into digits and raises each to Q·P: the
/// first half of a key switch, shared by every rotation of one ciphertext (hoisting).
pub fn decompose<'a>(params: &Parameters, d: &'a Poly, level: usize) -> Decomposed<'a> {
    let ctx = params.ctx();
    let n = ctx.n;
    let coeff = Poly::intt_of(d, &ctx.ntt[..=level].iter().collect::<Vec<_>>());
    let digits = ctx.modup[level]
        .par_iter()
        .map(|conv| {
            // The raised digit's limbs over every other prime, in the order of `conv.to`
            // (its own primes' limbs are d's). Converted straight into them, then
            // transformed in place; every limb is written.
            let mut ext = Poly::scratch(n, conv.to.len());
            let input: Vec<&[u64]> = conv.from.iter().map(|&i| coeff.limb(i)).collect();
            let mut targets: Vec<&mut [u64]> = ext.data_mut().chunks_mut(n).collect();
            // Pooled: a fresh buffer each time was freshly faulted pages, zeroed twice.
            let mut scratch = Poly::scratch(n, conv.from.len());
            // Limbs of primes the floating-point kernels serve stay doubles from the
            // conversion through the transform to the inner product (no round trips).
            let f64_out: Vec<bool> = conv.to.iter().map(|&t| f64_limb(ctx, t)).collect();
            // A digit of one prime b: its centered value is already the answer for every
            // target the ring carries as doubles (NttTable::carries_f64) above b/2, and the transform reads it straight from the
            // digit's coefficients (no conversion, no copy).
            let b = ctx.moduli[conv.from[0]].value();
            let direct: Vec<bool> =
                conv.to.iter().map(|&t| conv.from.len() == 1 && ctx.ntt[t].takes_centered_from(b)).collect();
            {
                let mut converted: Vec<&mut [u64]> =
                    targets.iter_mut().zip(&direct).map(|(c, &d)| if d { &mut [][..] } else { &mut **c }).collect();
                conv.convert(&ctx.moduli, &input, &mut converted, scratch.data_mut(), &f64_out);
            }
            targets.par_iter_mut().zip(conv.to.par_iter().zip(direct.par_iter())).for_each(|(c, (&t, &d))| {
                if d {
                    ctx.ntt[t].forward_centered_from(coeff.limb(conv.from[0]), b, c);
                } else {
                    ctx.ntt[t].forward_for_kernels(c);
                }
            });
            ext
        })
        .collect();
    Decomposed { params: params.clone(), level, digits, source: d }
}

/// The key switch's second half: the inner product Σ_digits raised_digit · key over
/// Q·P, divided by P with rounding (ModDown), plus an addend per half, then permuted by
/// `perm` (`out[k] = in[perm[k]]`). Returns both halves over Q, or
/// `Error::KeyBelowLevel` if the key stops below the component's level, or
/// `Error::ParamsMismatch` unless the key and the decomposition are of `params` (a key
/// basis's keys are switched with the basis as `params`: `KeySwitchKey::params`).
///
/// Memory traffic is what this order saves (at N = 2^14 a key switch streams ~50 MB,
/// and on a shared machine its time follows the memory's): the inner product's limbs
/// over Q go through one reused, cache-resident pair of buffers instead of two
/// polynomials written and read back; each limb of the conversion of its P limbs is
/// transformed just before it is used; and a product addend (the tensor product's
/// d0, d1) is computed in the last step rather than stored first.
pub fn switch(
    params: &Parameters,
    dec: &Decomposed,
    key: &KeySwitchKey,
    add: [Addend; 2],
    perm: Option<&GaloisPerm>,
) -> Result<(Poly, Poly)> {
    let ctx = params.ctx();
    let n = ctx.n;
    let level = dec.level;
    if !(dec.params.same(params) && key.params.same(params)) {
        return Err(Error::ParamsMismatch);
    }
    if level > key.max_level() {
        return Err(Error::KeyBelowLevel { key_level: key.max_level(), level });
    }
    let k = params.p().len();
    let digits = dec.digits.len();
    let convs = &ctx.modup[level];
    let dot = |pos: usize, o0: &mut [u64], o1: &mut [u64]| {
        let prime = ext_prime(params, pos, level);
        // A digit's limb of one of its own primes is the component's (words); the
        // others are raised limbs, doubles where the ring carries the prime as doubles.
        let (src, src_f64): (Vec<&[u64]>, Vec<bool>) = dec
            .digits
            .iter()
            .zip(convs)
            .map(|(d, conv)| match conv.to.iter().position(|&t| t == prime) {
                Some(slot) => (d.limb(slot), f64_limb(ctx, prime)),
                None => (dec.source.limb(pos), false), // one of the digit's own primes
            })
            .unzip();
        let kl = key.limb_of(prime);
        let (b, bp) = (limbs_of(&key.b[..digits], kl), limbs_of(&key.bp[..digits], kl));
        let (a, ap) = (limbs_of(&key.a[..digits], kl), limbs_of(&key.ap[..digits], kl));
        kernels::key_dot(o0, o1, &src, &src_f64, &b, &bp, &a, &ap, &ctx.moduli[prime]);
    };
    // The P limbs, whole (their conversion needs all of them); key_dot writes every word.
    let mut xp0 = Poly::scratch(n, k);
    let mut xp1 = Poly::scratch(n, k);
    xp0.data_mut().par_chunks_mut(n).zip(xp1.data_mut().par_chunks_mut(n)).enumerate().for_each(|(j, (o0, o1))| {
        dot(level + 1 + j, o0, o1);
    });
    // As in ModUp, limbs of primes carried as doubles stay doubles from the conversion through
    // the transform into the last step, which writes words.
    let f64_out: Vec<bool> = (0..=level).map(|i| f64_limb(ctx, i)).collect();
    let (mut conv0, mut conv1) =
        rayon::join(|| convert_down(params, xp0, level, &f64_out), || convert_down(params, xp1, level, &f64_out));
    let limbs: Vec<(usize, &mut [u64], &mut [u64])> = conv0
        .data_mut()
        .chunks_mut(n)
        .zip(conv1.data_mut().chunks_mut(n))
        .enumerate()
        .map(|(i, (c0, c1))| (i, c0, c1))
        .collect();
    limbs.into_par_iter().for_each(|(i, c0, c1)| {
        let m = &ctx.moduli[i];
        let (w, ws) = ctx.p_inv_mod_q[i];
        // The inner product's limb i (pooled buffers: the same ones from limb to limb).
        let mut t = Poly::scratch(n, 3);
        let (t0, rest) = t.data_mut().split_at_mut(n);
        let (t1, scratch) = rest.split_at_mut(n);
        dot(i, t0, t1);
        for (h, (c, t)) in [(&mut *c0, &*t0), (&mut *c1, &*t1)].into_iter().enumerate() {
            // Transformed here, just before the last step reads it: still in cache.
            ctx.ntt[i].forward_for_kernels(c);
            match add[h] {
                Addend::Poly(e) => kernels::sub_from_mul_const_add(c, t, w, ws, e.limb(i), m, f64_out[i]),
                Addend::Products(ps) => {
                    let ps: Vec<(&[u64], &[u64])> = ps.iter().map(|(a, b)| (a.limb(i), b.limb(i))).collect();
                    kernels::sub_from_mul_const_add_products(c, t, w, ws, &ps, m, f64_out[i], scratch);
                }
            }
        }
        if let Some(perm) = perm {
            // Through the (cache-resident) scratch and back: the result stays in the
            // conversion's buffers, with no fresh output polynomials to fault in.
            for (c, t) in [(c0, &mut *t0), (c1, &mut *t1)] {
                perm.apply_into(t, c);
                c.copy_from_slice(t);
            }
        }
    });
    Ok((conv0, conv1))
}

/// ModDown's first half: the P limbs `x` (NTT form) to coefficients, converted exactly
/// to every prime of Q up to `level` (as doubles where `f64_out`), not yet transformed.
fn convert_down(params: &Parameters, mut x: Poly, level: usize, f64_out: &[bool]) -> Poly {
    let ctx = params.ctx();
    let n = ctx.n;
    let l = params.q().len();
    let k = params.p().len();
    x.data_mut().par_chunks_mut(n).zip(ctx.ntt[l..l + k].par_iter()).for_each(|(c, t)| t.inverse(c));
    let mut conv = Poly::scratch(n, level + 1); // every limb is a conversion output
    let input: Vec<&[u64]> = x.data().chunks(n).collect();
    let mut slices: Vec<&mut [u64]> = conv.data_mut().chunks_mut(n).collect();
    let mut scratch = Poly::scratch(n, k);
    ctx.moddown.convert(&ctx.moduli, &input, &mut slices, scratch.data_mut(), f64_out);
    drop(slices);
    conv
}

/// What a key switch adds to one half of its result before σ: a polynomial, or products
/// of polynomials (none, one or two) computed as the last step goes.
#[derive(Clone, Copy)]
pub enum Addend<'a> {
    /// A polynomial over Q.
    Poly(&'a Poly),
    /// Σ a·b over the pairs (none, one or two).
    Products(&'a [(&'a Poly, &'a Poly)]),
}

/// Whether a raised digit keeps its limb of `prime` as doubles (see `decompose`):
/// exactly where the ring's transform for that prime works on doubles.
fn f64_limb(ctx: &Context, prime: usize) -> bool {
    ctx.ntt[prime].carries_f64()
}

/// Limb `i` of each polynomial.
fn limbs_of(polys: &[Poly], i: usize) -> Vec<&[u64]> {
    polys.iter().map(|p| p.limb(i)).collect()
}
