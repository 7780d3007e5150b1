//! Homomorphic evaluation on ciphertexts. Operands must share parameters, level and
//! (for additions) scale; mismatches are errors, never silent fixes.
//!
//! Key switching is hybrid: the component to switch is split into `dnum` digits of
//! about α primes, each raised to the basis Q·P (exact, centered base conversion), multiplied
//! by the key and brought back by dividing by P. Hoisted rotations share the costly
//! split-and-raise among many Galois elements: in NTT form an automorphism σ is a
//! permutation, and Σ σ(d_j)·k_j = σ(Σ d_j·σ⁻¹(k_j)), so Galois keys are kept
//! permuted by σ⁻¹ in memory and σ is applied once, to the two result polynomials,
//! instead of to every raised digit.

use rayon::prelude::*;

use crate::arith::Modulus;
use crate::encoding::{check_scale, Plaintext, PreparedPlaintext};
use crate::encryption::Ciphertext;
use crate::error::{Error, Result};
use crate::keys::{EvaluationKeys, GaloisKeys, KeySwitchKey, RelinKey};
use crate::params::{Context, GaloisPerm, Parameters};
use crate::poly::Poly;
use crate::simd;

/// Relative tolerance under which two scales count as equal.
const SCALE_TOLERANCE: f64 = 1e-9;

/// Evaluates operations under one parameter set. Holds no key: it is given the
/// public evaluation keys per call, so one evaluator serves any number of clients.
#[derive(Clone, Debug)]
pub struct Evaluator {
    params: Parameters,
}

/// The component to key-switch, split into digits and raised to Q·P (NTT form).
pub struct Decomposed<'a> {
    level: usize,
    /// Digit j's limbs over every prime but its own, in the order of its converter's
    /// targets (`modup[level][j].to`); the inner product reads its own primes' limbs
    /// from `source`.
    digits: Vec<Poly>,
    /// The component itself (NTT form, over Q at `level`), borrowed: no copy.
    source: &'a Poly,
}

impl Evaluator {
    pub fn new(params: &Parameters) -> Self {
        Self { params: params.clone() }
    }

    pub fn params(&self) -> &Parameters {
        &self.params
    }

    fn ctx(&self) -> &Context {
        self.params.ctx()
    }

    fn q_moduli(&self, level: usize) -> Vec<&Modulus> {
        self.ctx().moduli[..=level].iter().collect()
    }

    fn check_params(&self, p: &Parameters) -> Result<()> {
        if self.params.same(p) {
            Ok(())
        } else {
            Err(Error::ParamsMismatch)
        }
    }

    fn check_pair(&self, a: &Ciphertext, b: &Ciphertext) -> Result<()> {
        self.check_params(&a.params)?;
        self.check_params(&b.params)?;
        if a.level() != b.level() {
            return Err(Error::LevelMismatch { left: a.level(), right: b.level() });
        }
        Ok(())
    }

    fn check_scales(a: f64, b: f64) -> Result<()> {
        if ((a - b) / a).abs() > SCALE_TOLERANCE {
            return Err(Error::ScaleMismatch { left: a.log2(), right: b.log2() });
        }
        Ok(())
    }

    fn check_mul_scale(&self, scale: f64, level: usize) -> Result<()> {
        let log_q = self.params.log_q_at(level);
        if scale.log2() >= log_q - 1.0 {
            return Err(Error::ScaleOverflow { log_scale: scale.log2(), log_q });
        }
        Ok(())
    }

    // ---- additive operations -------------------------------------------------

    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        let mut r = a.clone();
        self.add_assign(&mut r, b)?;
        Ok(r)
    }

    pub fn add_assign(&self, a: &mut Ciphertext, b: &Ciphertext) -> Result<()> {
        self.check_pair(a, b)?;
        Self::check_scales(a.scale, b.scale)?;
        let m = self.q_moduli(a.level());
        a.c0.add_assign(&b.c0, &m);
        a.c1.add_assign(&b.c1, &m);
        Ok(())
    }

    pub fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.check_pair(a, b)?;
        Self::check_scales(a.scale, b.scale)?;
        let m = self.q_moduli(a.level());
        let mut r = a.clone();
        r.c0.sub_assign(&b.c0, &m);
        r.c1.sub_assign(&b.c1, &m);
        Ok(r)
    }

    pub fn neg(&self, a: &Ciphertext) -> Result<Ciphertext> {
        self.check_params(&a.params)?;
        let m = self.q_moduli(a.level());
        let mut r = a.clone();
        r.c0.neg_assign(&m);
        r.c1.neg_assign(&m);
        Ok(r)
    }

    fn check_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<()> {
        self.check_params(&ct.params)?;
        self.check_params(&pt.params)?;
        // A plaintext encoded at a higher level serves every lower one: its extra limbs are ignored.
        if pt.level() < ct.level() {
            return Err(Error::LevelMismatch { left: ct.level(), right: pt.level() });
        }
        Ok(())
    }

    pub fn add_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        self.check_plain(ct, pt)?;
        Self::check_scales(ct.scale, pt.scale)?;
        let mut r = ct.clone();
        r.c0.add_assign(&pt.poly, &self.q_moduli(ct.level()));
        Ok(r)
    }

    pub fn sub_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        self.check_plain(ct, pt)?;
        Self::check_scales(ct.scale, pt.scale)?;
        let mut r = ct.clone();
        r.c0.sub_assign(&pt.poly, &self.q_moduli(ct.level()));
        Ok(r)
    }

    /// Adds the real constant c to every slot.
    pub fn add_const(&self, ct: &Ciphertext, c: f64) -> Result<Ciphertext> {
        self.check_params(&ct.params)?;
        let v = Self::scaled_integer(c, ct.scale)?;
        let m = self.q_moduli(ct.level());
        let consts: Vec<u64> = m.iter().map(|m| signed_mod(v, m)).collect();
        let mut r = ct.clone();
        // A constant polynomial is the same constant at every NTT point.
        r.c0.add_scalar_assign(&consts, &m);
        Ok(r)
    }

    // ---- multiplicative operations ------------------------------------------

    /// Slot-wise product with a plaintext; the scales multiply.
    pub fn mul_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        self.check_plain(ct, pt)?;
        let scale = ct.scale * pt.scale;
        self.check_mul_scale(scale, ct.level())?;
        let m = self.q_moduli(ct.level());
        let mut r = ct.clone();
        r.c0.mul_assign(&pt.poly, &m);
        r.c1.mul_assign(&pt.poly, &m);
        r.scale = scale;
        Ok(r)
    }

    /// ct + ct2 · pt, without the intermediate ciphertext (the inner loop of a
    /// matrix–vector product). Scales must agree after the product.
    pub fn mul_plain_add_assign(&self, acc: &mut Ciphertext, ct: &Ciphertext, pt: &Plaintext) -> Result<()> {
        self.check_plain(ct, pt)?;
        self.check_pair(acc, ct)?;
        Self::check_scales(acc.scale, ct.scale * pt.scale)?;
        let m = self.q_moduli(ct.level());
        acc.c0.mul_add_assign(&ct.c0, &pt.poly, &m);
        acc.c1.mul_add_assign(&ct.c1, &pt.poly, &m);
        Ok(())
    }

    /// Slot-wise product with a prepared plaintext; the scales multiply.
    pub fn mul_prepared(&self, ct: &Ciphertext, pp: &PreparedPlaintext) -> Result<Ciphertext> {
        self.check_plain(ct, &pp.pt)?;
        let scale = ct.scale * pp.pt.scale;
        self.check_mul_scale(scale, ct.level())?;
        let mut r = Ciphertext {
            params: self.params.clone(),
            c0: Poly::zero(ct.c0.n, ct.level() + 1),
            c1: Poly::zero(ct.c0.n, ct.level() + 1),
            scale,
        };
        self.accumulate_prepared(&mut r, ct, pp);
        Ok(r)
    }

    /// acc += ct · pp (the inner loop of a matrix–vector product).
    pub fn mul_prepared_add_assign(&self, acc: &mut Ciphertext, ct: &Ciphertext, pp: &PreparedPlaintext) -> Result<()> {
        self.check_plain(ct, &pp.pt)?;
        self.check_pair(acc, ct)?;
        Self::check_scales(acc.scale, ct.scale * pp.pt.scale)?;
        self.accumulate_prepared(acc, ct, pp);
        Ok(())
    }

    fn accumulate_prepared(&self, acc: &mut Ciphertext, ct: &Ciphertext, pp: &PreparedPlaintext) {
        let ctx = self.ctx();
        let n = ctx.n;
        let w = &pp.pt.poly;
        let wp = &pp.companions;
        for (dst, src) in [(&mut acc.c0, &ct.c0), (&mut acc.c1, &ct.c1)] {
            dst.data.par_chunks_mut(n).enumerate().for_each(|(i, d)| {
                let m = &ctx.moduli[i];
                simd::mul_shoup_acc(d, src.limb(i), w.limb(i), wp.limb(i), m);
                simd::reduce_2q(d, m);
            });
        }
    }

    /// Multiplies every slot by the real constant c. The constant is encoded at the
    /// scale of the top prime q_level, so a following rescale restores the scale exactly.
    pub fn mul_const(&self, ct: &Ciphertext, c: f64) -> Result<Ciphertext> {
        self.check_params(&ct.params)?;
        self.mul_const_scaled(ct, c, self.params.q()[ct.level()] as f64)
    }

    /// Multiplies every slot by the real constant c encoded at `const_scale`; the
    /// result's scale is the product of the two.
    pub fn mul_const_scaled(&self, ct: &Ciphertext, c: f64, const_scale: f64) -> Result<Ciphertext> {
        self.check_params(&ct.params)?;
        check_scale(const_scale)?;
        let level = ct.level();
        let v = Self::scaled_integer(c, const_scale)?;
        let scale = ct.scale * const_scale;
        self.check_mul_scale(scale, level)?;
        let m = self.q_moduli(level);
        let consts: Vec<u64> = m.iter().map(|m| signed_mod(v, m)).collect();
        let mut r = ct.clone();
        r.c0.mul_scalar_assign(&consts, &m);
        r.c1.mul_scalar_assign(&consts, &m);
        r.scale = scale;
        Ok(r)
    }

    /// Multiplies every slot by an integer; the scale is unchanged.
    pub fn mul_int(&self, ct: &Ciphertext, k: i64) -> Result<Ciphertext> {
        self.check_params(&ct.params)?;
        let m = self.q_moduli(ct.level());
        let consts: Vec<u64> = m.iter().map(|m| signed_mod(k as i128, m)).collect();
        let mut r = ct.clone();
        r.c0.mul_scalar_assign(&consts, &m);
        r.c1.mul_scalar_assign(&consts, &m);
        Ok(r)
    }

    fn scaled_integer(c: f64, scale: f64) -> Result<i128> {
        if !c.is_finite() {
            return Err(Error::NotFinite(c));
        }
        let v = (c * scale).round();
        if v.abs() >= 2f64.powi(120) {
            return Err(Error::ValueTooLarge { value: c, log_scale: scale.log2() });
        }
        Ok(v as i128)
    }

    /// Ciphertext product with relinearization; the scales multiply (rescale after).
    pub fn mul_relin(&self, a: &Ciphertext, b: &Ciphertext, rk: &RelinKey) -> Result<Ciphertext> {
        self.check_pair(a, b)?;
        self.check_params(&rk.0.params)?;
        let scale = a.scale * b.scale;
        self.check_mul_scale(scale, a.level())?;
        let m = self.q_moduli(a.level());
        let d2 = Poly::product(&a.c1, &b.c1, &m);
        // d0 = a0·b0 and d1 = a0·b1 + a1·b0 are computed in the key switch's last step,
        // never stored.
        let add = [Addend::Products(&[(&a.c0, &b.c0)]), Addend::Products(&[(&a.c0, &b.c1), (&a.c1, &b.c0)])];
        let dec = self.decompose_poly(&d2, a.level());
        let (c0, c1) = self.switch_finish(&dec, &rk.0, add, None);
        Ok(Ciphertext { params: self.params.clone(), c0, c1, scale })
    }

    /// The same as `mul_relin(a, a, rk)`, one product cheaper.
    pub fn square_relin(&self, a: &Ciphertext, rk: &RelinKey) -> Result<Ciphertext> {
        self.check_params(&a.params)?;
        self.check_params(&rk.0.params)?;
        let scale = a.scale * a.scale;
        self.check_mul_scale(scale, a.level())?;
        let m = self.q_moduli(a.level());
        let d2 = Poly::product(&a.c1, &a.c1, &m);
        let add = [Addend::Products(&[(&a.c0, &a.c0)]), Addend::Products(&[(&a.c0, &a.c1), (&a.c1, &a.c0)])];
        let dec = self.decompose_poly(&d2, a.level());
        let (c0, c1) = self.switch_finish(&dec, &rk.0, add, None);
        Ok(Ciphertext { params: self.params.clone(), c0, c1, scale })
    }

    // ---- levels ---------------------------------------------------------------

    /// Divides by the top prime q_level, rounding: one level down, scale / q_level.
    pub fn rescale(&self, ct: &Ciphertext) -> Result<Ciphertext> {
        self.check_params(&ct.params)?;
        let level = ct.level();
        if level == 0 {
            return Err(Error::LevelExhausted);
        }
        let mut r = ct.clone();
        let (c0, c1) = (&mut r.c0, &mut r.c1);
        rayon::join(|| self.rescale_poly(c0, level), || self.rescale_poly(c1, level));
        r.scale /= self.params.q()[level] as f64;
        Ok(r)
    }

    fn rescale_poly(&self, p: &mut Poly, level: usize) {
        let ctx = self.ctx();
        let n = ctx.n;
        let mut last = Poly::scratch(n, 1);
        last.data.copy_from_slice(p.limb(level));
        ctx.ntt[level].inverse(&mut last.data);
        let q_top = ctx.moduli[level];
        let half = q_top.value() / 2;
        // Rounding division: shift by q_top/2 before the exact floor division, and back after.
        for v in last.data.iter_mut() {
            *v = q_top.add(*v, half);
        }
        let inv = &ctx.rescale_inv[level];
        p.truncate(level);
        p.data.par_chunks_mut(n).enumerate().for_each(|(i, x)| {
            let m = &ctx.moduli[i];
            let mut t = Poly::scratch(n, 1);
            simd::dot_const_bounded(&mut t.data, &[&last.data], &[(1, m.shoup(1))], m, q_top.value());
            simd::sub_const(&mut t.data, m.reduce(half), m);
            ctx.ntt[i].forward(&mut t.data);
            let (w, ws) = inv[i];
            simd::sub_mul_const(x, &t.data, w, ws, m);
        });
    }

    /// Drops primes to reach `level` (no division: the scale is unchanged).
    pub fn drop_level(&self, ct: &Ciphertext, level: usize) -> Result<Ciphertext> {
        self.check_params(&ct.params)?;
        if level > ct.level() {
            return Err(Error::LevelRaise { from: ct.level(), to: level });
        }
        let mut r = ct.clone();
        r.c0.truncate(level + 1);
        r.c1.truncate(level + 1);
        Ok(r)
    }

    // ---- rotations ------------------------------------------------------------

    /// Cyclic left rotation of the N/2 slots by `step` (negative: right).
    pub fn rotate(&self, ct: &Ciphertext, step: i64, keys: &GaloisKeys) -> Result<Ciphertext> {
        self.check_params(&ct.params)?;
        if step.rem_euclid(self.params.slots() as i64) == 0 {
            return Ok(ct.clone());
        }
        let g = self.params.galois_element(step);
        let key = keys.get(g).ok_or_else(|| Error::MissingGaloisKey { what: format!("rotation by {step}") })?;
        self.apply_galois(ct, g, key)
    }

    /// Complex conjugation of every slot.
    pub fn conjugate(&self, ct: &Ciphertext, keys: &GaloisKeys) -> Result<Ciphertext> {
        self.check_params(&ct.params)?;
        let g = self.params.conjugation_element();
        let key = keys.get(g).ok_or_else(|| Error::MissingGaloisKey { what: "conjugation".into() })?;
        self.apply_galois(ct, g, key)
    }

    fn apply_galois(&self, ct: &Ciphertext, g: u64, key: &KeySwitchKey) -> Result<Ciphertext> {
        self.check_params(&key.params)?;
        let dec = self.decompose_poly(&ct.c1, ct.level());
        Ok(self.finish_galois(ct, &dec, g, key))
    }

    /// (σ(c0 + k0), σ(k1)) where (k0, k1) switches the decomposed c1 with the σ⁻¹-permuted key.
    fn finish_galois(&self, ct: &Ciphertext, dec: &Decomposed, g: u64, key: &KeySwitchKey) -> Ciphertext {
        let level = ct.level();
        debug_assert_eq!(dec.level, level);
        let perm = self.ctx().galois_perm(g);
        // c0 is added before σ.
        let (c0, c1) = self.switch_finish(dec, key, [Addend::Poly(&ct.c0), Addend::Products(&[])], Some(&perm));
        Ciphertext { params: self.params.clone(), c0, c1, scale: ct.scale }
    }

    /// Splits and raises c1 once, for any number of rotations of `ct` (see `rotate_decomposed`).
    pub fn decompose<'a>(&self, ct: &'a Ciphertext) -> Result<Decomposed<'a>> {
        self.check_params(&ct.params)?;
        Ok(self.decompose_poly(&ct.c1, ct.level()))
    }

    /// A rotation of `ct` reusing its decomposition: the cost of the split and of the
    /// raise to Q·P is paid once for all the steps (hoisting).
    pub fn rotate_decomposed(
        &self,
        ct: &Ciphertext,
        dec: &Decomposed,
        step: i64,
        keys: &GaloisKeys,
    ) -> Result<Ciphertext> {
        self.check_params(&ct.params)?;
        if dec.level != ct.level() {
            return Err(Error::LevelMismatch { left: ct.level(), right: dec.level });
        }
        if step.rem_euclid(self.params.slots() as i64) == 0 {
            return Ok(ct.clone());
        }
        let g = self.params.galois_element(step);
        let key = keys.get(g).ok_or_else(|| Error::MissingGaloisKey { what: format!("rotation by {step}") })?;
        self.check_params(&key.params)?;
        Ok(self.finish_galois(ct, dec, g, key))
    }

    /// Rotations of one ciphertext by many steps, hoisted.
    pub fn rotate_hoisted(&self, ct: &Ciphertext, steps: &[i64], keys: &GaloisKeys) -> Result<Vec<Ciphertext>> {
        let dec = self.decompose(ct)?;
        steps.iter().map(|&s| self.rotate_decomposed(ct, &dec, s, keys)).collect()
    }

    /// Every slot becomes the sum of all slots (needs the power-of-two rotation keys).
    pub fn sum_slots(&self, ct: &Ciphertext, keys: &GaloisKeys) -> Result<Ciphertext> {
        let mut acc = ct.clone();
        let mut step = 1;
        while step < self.params.slots() {
            let r = self.rotate(&acc, step as i64, keys)?;
            self.add_assign(&mut acc, &r)?;
            step *= 2;
        }
        Ok(acc)
    }

    /// Checks that a key bundle is usable here.
    pub fn check_keys(&self, keys: &EvaluationKeys) -> Result<()> {
        self.check_params(&keys.params)
    }

    // ---- key switching -----------------------------------------------------------

    /// The prime (index into the moduli list) of position `pos` of a polynomial over Q·P
    /// at `level`: the q chain up to `level`, then the special primes.
    fn ext_prime(&self, pos: usize, level: usize) -> usize {
        if pos <= level {
            pos
        } else {
            self.params.q().len() + pos - level - 1
        }
    }

    fn decompose_poly<'a>(&self, d: &'a Poly, level: usize) -> Decomposed<'a> {
        let ctx = self.ctx();
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
                let mut targets: Vec<&mut [u64]> = ext.data.chunks_mut(n).collect();
                // Pooled: a fresh buffer each time was freshly faulted pages, zeroed twice.
                let mut scratch = Poly::scratch(n, conv.from.len());
                // Limbs of primes the floating-point kernels serve stay doubles from the
                // conversion through the transform to the inner product (no round trips).
                let f64_out: Vec<bool> = conv.to.iter().map(|&t| f64_limb(ctx, t)).collect();
                // A digit of one prime b: its centered value is already the answer for every
                // FMA-served target above b/2, and the transform reads it straight from the
                // digit's coefficients (no conversion, no copy).
                let b = ctx.moduli[conv.from[0]].value();
                let direct: Vec<bool> = conv
                    .to
                    .iter()
                    .zip(&f64_out)
                    .map(|(&t, &f)| f && conv.from.len() == 1 && direct_ok(b, ctx.moduli[t].value()))
                    .collect();
                {
                    let mut converted: Vec<&mut [u64]> =
                        targets.iter_mut().zip(&direct).map(|(c, &d)| if d { &mut [][..] } else { &mut **c }).collect();
                    conv.convert(&ctx.moduli, &input, &mut converted, &mut scratch.data, &f64_out);
                }
                targets.par_iter_mut().zip(conv.to.par_iter().zip(direct.par_iter())).for_each(|(c, (&t, &d))| {
                    #[cfg(target_arch = "x86_64")]
                    if d {
                        let f = ctx.ntt[t].fma().expect("direct targets are FMA-served");
                        f.forward_f64_centered(coeff.limb(conv.from[0]), b, c);
                        return;
                    }
                    debug_assert!(!d, "direct targets are FMA-served");
                    forward_limb(ctx, t, c)
                });
                ext
            })
            .collect();
        Decomposed { level, digits, source: d }
    }

    /// The key switch's second half: the inner product Σ_digits raised_digit · key over
    /// Q·P, divided by P with rounding (ModDown), plus an addend per half, then permuted by
    /// `perm` (out[k] = in[perm[k]]). Returns both halves over Q.
    ///
    /// Memory traffic is what this order saves (at N = 2^14 a key switch streams ~50 MB,
    /// and on a shared machine its time follows the memory's): the inner product's limbs
    /// over Q go through one reused, cache-resident pair of buffers instead of two
    /// polynomials written and read back; each limb of the conversion of its P limbs is
    /// transformed just before it is used; and a product addend (the tensor product's
    /// d0, d1) is computed in the last step rather than stored first.
    fn switch_finish(
        &self,
        dec: &Decomposed,
        key: &KeySwitchKey,
        add: [Addend; 2],
        perm: Option<&GaloisPerm>,
    ) -> (Poly, Poly) {
        let ctx = self.ctx();
        let n = ctx.n;
        let level = dec.level;
        let k = self.params.p().len();
        let digits = dec.digits.len();
        let convs = &ctx.modup[level];
        let dot = |pos: usize, o0: &mut [u64], o1: &mut [u64]| {
            let prime = self.ext_prime(pos, level);
            // A digit's limb of one of its own primes is the component's (words); the
            // others are raised limbs, doubles where the FMA kernels serve the prime.
            let (src, src_f64): (Vec<&[u64]>, Vec<bool>) = dec
                .digits
                .iter()
                .zip(convs)
                .map(|(d, conv)| match conv.to.iter().position(|&t| t == prime) {
                    Some(slot) => (d.limb(slot), f64_limb(ctx, prime)),
                    None => (dec.source.limb(pos), false), // one of the digit's own primes
                })
                .unzip();
            let (b, bp) = (limbs_of(&key.b[..digits], prime), limbs_of(&key.bp[..digits], prime));
            let (a, ap) = (limbs_of(&key.a[..digits], prime), limbs_of(&key.ap[..digits], prime));
            simd::key_dot(o0, o1, &src, &src_f64, &b, &bp, &a, &ap, &ctx.moduli[prime]);
        };
        // The P limbs, whole (their conversion needs all of them); key_dot writes every word.
        let mut xp0 = Poly::scratch(n, k);
        let mut xp1 = Poly::scratch(n, k);
        xp0.data.par_chunks_mut(n).zip(xp1.data.par_chunks_mut(n)).enumerate().for_each(|(j, (o0, o1))| {
            dot(level + 1 + j, o0, o1);
        });
        // As in ModUp, limbs of FMA-served primes stay doubles from the conversion through
        // the transform into the last step, which writes words.
        let f64_out: Vec<bool> = (0..=level).map(|i| f64_limb(ctx, i)).collect();
        let (mut conv0, mut conv1) =
            rayon::join(|| self.convert_down(xp0, level, &f64_out), || self.convert_down(xp1, level, &f64_out));
        let limbs: Vec<(usize, &mut [u64], &mut [u64])> = conv0
            .data
            .chunks_mut(n)
            .zip(conv1.data.chunks_mut(n))
            .enumerate()
            .map(|(i, (c0, c1))| (i, c0, c1))
            .collect();
        limbs.into_par_iter().for_each(|(i, c0, c1)| {
            let m = &ctx.moduli[i];
            let (w, ws) = ctx.p_inv_mod_q[i];
            // The inner product's limb i (pooled buffers: the same ones from limb to limb).
            let mut t = Poly::scratch(n, 3);
            let (t0, rest) = t.data.split_at_mut(n);
            let (t1, scratch) = rest.split_at_mut(n);
            dot(i, t0, t1);
            for (h, (c, t)) in [(&mut *c0, &*t0), (&mut *c1, &*t1)].into_iter().enumerate() {
                // Transformed here, just before the last step reads it: still in cache.
                forward_limb(ctx, i, c);
                match add[h] {
                    Addend::Poly(e) => simd::sub_from_mul_const_add(c, t, w, ws, e.limb(i), m, f64_out[i]),
                    Addend::Products(ps) => {
                        let ps: Vec<(&[u64], &[u64])> = ps.iter().map(|(a, b)| (a.limb(i), b.limb(i))).collect();
                        simd::sub_from_mul_const_add_products(c, t, w, ws, &ps, m, f64_out[i], scratch);
                    }
                }
            }
            if let Some(perm) = perm {
                // Through the (cache-resident) scratch and back: the result stays in the
                // conversion's buffers, with no fresh output polynomials to fault in.
                for (c, t) in [(c0, &mut *t0), (c1, &mut *t1)] {
                    simd::permute_into(t, c, perm);
                    c.copy_from_slice(t);
                }
            }
        });
        (conv0, conv1)
    }

    /// ModDown's first half: the P limbs `x` (NTT form) to coefficients, converted exactly
    /// to every prime of Q up to `level` (as doubles where `f64_out`), not yet transformed.
    fn convert_down(&self, mut x: Poly, level: usize, f64_out: &[bool]) -> Poly {
        let ctx = self.ctx();
        let n = ctx.n;
        let l = self.params.q().len();
        let k = self.params.p().len();
        x.data.par_chunks_mut(n).zip(ctx.ntt[l..l + k].par_iter()).for_each(|(c, t)| t.inverse(c));
        let mut conv = Poly::scratch(n, level + 1); // every limb is a conversion output
        let input: Vec<&[u64]> = x.data.chunks(n).collect();
        let mut slices: Vec<&mut [u64]> = conv.data.chunks_mut(n).collect();
        let mut scratch = Poly::scratch(n, k);
        ctx.moddown.convert(&ctx.moduli, &input, &mut slices, &mut scratch.data, f64_out);
        drop(slices);
        conv
    }
}

/// What a key switch adds to one half of its result before σ: a polynomial, or products
/// of polynomials (none, one or two) computed as the last step goes.
#[derive(Clone, Copy)]
enum Addend<'a> {
    Poly(&'a Poly),
    Products(&'a [(&'a Poly, &'a Poly)]),
}

/// Whether a one-prime digit's centered value (modulo b) can go straight into the
/// floating-point transform of prime q: exact as a double, and |x| ≤ b/2 below q.
fn direct_ok(b: u64, q: u64) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        b < crate::fma::MAX_Q && b / 2 < q
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (b, q);
        false
    }
}

/// The forward transform of a key-switching limb of `prime`: on doubles (`forward_f64`)
/// exactly where `f64_limb` says the limb is kept as doubles, else on words.
fn forward_limb(ctx: &Context, prime: usize, c: &mut [u64]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(f) = ctx.ntt[prime].fma() {
        f.forward_f64(c);
        return;
    }
    ctx.ntt[prime].forward(c)
}

/// Whether a raised digit keeps its limb of `prime` as doubles (see `decompose_poly`):
/// exactly where the floating-point transform serves the prime.
fn f64_limb(ctx: &Context, prime: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        ctx.ntt[prime].fma().is_some()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ctx, prime);
        false
    }
}

/// Limb `i` of each polynomial.
fn limbs_of(polys: &[Poly], i: usize) -> Vec<&[u64]> {
    polys.iter().map(|p| p.limb(i)).collect()
}

fn signed_mod(v: i128, m: &Modulus) -> u64 {
    let r = m.reduce_u128(v.unsigned_abs());
    if v < 0 {
        m.neg(r)
    } else {
        r
    }
}
