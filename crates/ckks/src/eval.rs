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
use ring::{kernels, Modulus, Poly};
use rlwe::keyswitch::{self, Addend, Decomposed};
use rlwe::params::Context;
use rlwe::{
    check_scale, Ciphertext, Error, EvaluationKeys, GaloisKeys, KeySwitchKey, Parameters, Plaintext, PreparedPlaintext,
    RelinKey, Result,
};

/// Relative tolerance under which two scales count as equal.
const SCALE_TOLERANCE: f64 = 1e-9;

/// Evaluates operations under one parameter set. Holds no key: it is given the
/// public evaluation keys per call, so one evaluator serves any number of clients.
#[derive(Clone, Debug)]
pub struct Evaluator {
    params: Parameters,
}

impl Evaluator {
    /// An evaluator for `params`.
    pub fn new(params: &Parameters) -> Self {
        Self { params: params.clone() }
    }

    /// The parameter set.
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

    /// A key of this set or of one of its key bases, serving `level`: the set to switch in.
    fn key_set<'k>(&self, key: &'k KeySwitchKey, level: usize) -> Result<&'k Parameters> {
        if !self.params.accepts_keys_of(key.params()) {
            return Err(Error::ParamsMismatch);
        }
        if level > key.max_level() {
            return Err(Error::KeyBelowLevel { key_level: key.max_level(), level });
        }
        Ok(key.params())
    }

    fn check_pair(&self, a: &Ciphertext, b: &Ciphertext) -> Result<()> {
        self.check_params(a.params())?;
        self.check_params(b.params())?;
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

    /// a + b, slot-wise; the operands must share level and scale.
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        let mut r = a.clone();
        self.add_assign(&mut r, b)?;
        Ok(r)
    }

    /// a += b (see `add`).
    pub fn add_assign(&self, a: &mut Ciphertext, b: &Ciphertext) -> Result<()> {
        self.check_pair(a, b)?;
        Self::check_scales(a.scale(), b.scale())?;
        let m = self.q_moduli(a.level());
        a.parts_mut().0.add_assign(b.parts().0, &m);
        a.parts_mut().1.add_assign(b.parts().1, &m);
        Ok(())
    }

    /// a − b, slot-wise; the operands must share level and scale.
    pub fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.check_pair(a, b)?;
        Self::check_scales(a.scale(), b.scale())?;
        let m = self.q_moduli(a.level());
        let mut r = a.clone();
        r.parts_mut().0.sub_assign(b.parts().0, &m);
        r.parts_mut().1.sub_assign(b.parts().1, &m);
        Ok(r)
    }

    /// −a, slot-wise.
    pub fn neg(&self, a: &Ciphertext) -> Result<Ciphertext> {
        self.check_params(a.params())?;
        let m = self.q_moduli(a.level());
        let mut r = a.clone();
        r.parts_mut().0.neg_assign(&m);
        r.parts_mut().1.neg_assign(&m);
        Ok(r)
    }

    fn check_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<()> {
        self.check_params(ct.params())?;
        self.check_params(pt.params())?;
        // A plaintext encoded at a higher level serves every lower one: its extra limbs are ignored.
        if pt.level() < ct.level() {
            return Err(Error::LevelMismatch { left: ct.level(), right: pt.level() });
        }
        Ok(())
    }

    /// ct + pt, slot-wise, at the same scale. The plaintext may be at a higher level than
    /// the ciphertext (its extra limbs are ignored), not a lower one.
    pub fn add_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        self.check_plain(ct, pt)?;
        Self::check_scales(ct.scale(), pt.scale())?;
        let mut r = ct.clone();
        r.parts_mut().0.add_assign(pt.poly(), &self.q_moduli(ct.level()));
        Ok(r)
    }

    /// ct − pt, slot-wise (see `add_plain`).
    pub fn sub_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        self.check_plain(ct, pt)?;
        Self::check_scales(ct.scale(), pt.scale())?;
        let mut r = ct.clone();
        r.parts_mut().0.sub_assign(pt.poly(), &self.q_moduli(ct.level()));
        Ok(r)
    }

    /// Adds the real constant c to every slot.
    pub fn add_const(&self, ct: &Ciphertext, c: f64) -> Result<Ciphertext> {
        self.check_params(ct.params())?;
        let v = Self::scaled_integer(c, ct.scale())?;
        let m = self.q_moduli(ct.level());
        let consts: Vec<u64> = m.iter().map(|m| signed_mod(v, m)).collect();
        let mut r = ct.clone();
        // A constant polynomial is the same constant at every NTT point.
        r.parts_mut().0.add_scalar_assign(&consts, &m);
        Ok(r)
    }

    // ---- multiplicative operations ------------------------------------------

    /// Slot-wise product with a plaintext; the scales multiply.
    pub fn mul_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        self.check_plain(ct, pt)?;
        let scale = ct.scale() * pt.scale();
        self.check_mul_scale(scale, ct.level())?;
        let m = self.q_moduli(ct.level());
        let mut r = ct.clone();
        r.parts_mut().0.mul_assign(pt.poly(), &m);
        r.parts_mut().1.mul_assign(pt.poly(), &m);
        r.set_scale(scale)?;
        Ok(r)
    }

    /// ct + ct2 · pt, without the intermediate ciphertext (the inner loop of a
    /// matrix–vector product). Scales must agree after the product.
    pub fn mul_plain_add_assign(&self, acc: &mut Ciphertext, ct: &Ciphertext, pt: &Plaintext) -> Result<()> {
        self.check_plain(ct, pt)?;
        self.check_pair(acc, ct)?;
        Self::check_scales(acc.scale(), ct.scale() * pt.scale())?;
        let m = self.q_moduli(ct.level());
        acc.parts_mut().0.mul_add_assign(ct.parts().0, pt.poly(), &m);
        acc.parts_mut().1.mul_add_assign(ct.parts().1, pt.poly(), &m);
        Ok(())
    }

    /// Slot-wise product with a prepared plaintext; the scales multiply.
    pub fn mul_prepared(&self, ct: &Ciphertext, pp: &PreparedPlaintext) -> Result<Ciphertext> {
        self.check_plain(ct, pp.plaintext())?;
        let scale = ct.scale() * pp.plaintext().scale();
        self.check_mul_scale(scale, ct.level())?;
        let (n, limbs) = (self.params.n(), ct.level() + 1);
        let mut r = Ciphertext::from_parts(&self.params, Poly::zero(n, limbs), Poly::zero(n, limbs), scale)?;
        self.accumulate_prepared(&mut r, ct, pp);
        Ok(r)
    }

    /// acc += ct · pp (the inner loop of a matrix–vector product).
    pub fn mul_prepared_add_assign(&self, acc: &mut Ciphertext, ct: &Ciphertext, pp: &PreparedPlaintext) -> Result<()> {
        self.check_plain(ct, pp.plaintext())?;
        self.check_pair(acc, ct)?;
        Self::check_scales(acc.scale(), ct.scale() * pp.plaintext().scale())?;
        self.accumulate_prepared(acc, ct, pp);
        Ok(())
    }

    fn accumulate_prepared(&self, acc: &mut Ciphertext, ct: &Ciphertext, pp: &PreparedPlaintext) {
        let ctx = self.ctx();
        let n = ctx.n;
        let w = pp.plaintext().poly();
        let wp = pp.companions();
        let (a0, a1) = acc.parts_mut();
        let (c0, c1) = ct.parts();
        for (dst, src) in [(a0, c0), (a1, c1)] {
            dst.data_mut().par_chunks_mut(n).enumerate().for_each(|(i, d)| {
                let m = &ctx.moduli[i];
                kernels::mul_shoup_acc(d, src.limb(i), w.limb(i), wp.limb(i), m);
                kernels::reduce_2q(d, m);
            });
        }
    }

    /// Multiplies every slot by the real constant c. The constant is encoded at the
    /// scale of the top prime q_level, so a following rescale restores the scale exactly.
    pub fn mul_const(&self, ct: &Ciphertext, c: f64) -> Result<Ciphertext> {
        self.check_params(ct.params())?;
        self.mul_const_scaled(ct, c, self.params.q()[ct.level()] as f64)
    }

    /// Multiplies every slot by the real constant c encoded at `const_scale`; the
    /// result's scale is the product of the two.
    pub fn mul_const_scaled(&self, ct: &Ciphertext, c: f64, const_scale: f64) -> Result<Ciphertext> {
        self.check_params(ct.params())?;
        check_scale(const_scale)?;
        let level = ct.level();
        let v = Self::scaled_integer(c, const_scale)?;
        let scale = ct.scale() * const_scale;
        self.check_mul_scale(scale, level)?;
        let m = self.q_moduli(level);
        let consts: Vec<u64> = m.iter().map(|m| signed_mod(v, m)).collect();
        let mut r = ct.clone();
        r.parts_mut().0.mul_scalar_assign(&consts, &m);
        r.parts_mut().1.mul_scalar_assign(&consts, &m);
        r.set_scale(scale)?;
        Ok(r)
    }

    /// Multiplies every slot by an integer; the scale is unchanged.
    pub fn mul_int(&self, ct: &Ciphertext, k: i64) -> Result<Ciphertext> {
        self.check_params(ct.params())?;
        let m = self.q_moduli(ct.level());
        let consts: Vec<u64> = m.iter().map(|m| signed_mod(k as i128, m)).collect();
        let mut r = ct.clone();
        r.parts_mut().0.mul_scalar_assign(&consts, &m);
        r.parts_mut().1.mul_scalar_assign(&consts, &m);
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
        let kp = self.key_set(rk.key(), a.level())?;
        let scale = a.scale() * b.scale();
        self.check_mul_scale(scale, a.level())?;
        let m = self.q_moduli(a.level());
        let d2 = Poly::product(a.parts().1, b.parts().1, &m);
        // d0 = a0·b0 and d1 = a0·b1 + a1·b0 are computed in the key switch's last step,
        // never stored.
        let add = [
            Addend::Products(&[(a.parts().0, b.parts().0)]),
            Addend::Products(&[(a.parts().0, b.parts().1), (a.parts().1, b.parts().0)]),
        ];
        let dec = keyswitch::decompose(kp, &d2, a.level());
        let (c0, c1) = keyswitch::switch(kp, &dec, rk.key(), add, None)?;
        Ciphertext::from_parts(&self.params, c0, c1, scale)
    }

    /// The same as `mul_relin(a, a, rk)`, one product cheaper.
    pub fn square_relin(&self, a: &Ciphertext, rk: &RelinKey) -> Result<Ciphertext> {
        self.check_params(a.params())?;
        let kp = self.key_set(rk.key(), a.level())?;
        let scale = a.scale() * a.scale();
        self.check_mul_scale(scale, a.level())?;
        let m = self.q_moduli(a.level());
        let d2 = Poly::product(a.parts().1, a.parts().1, &m);
        let add = [
            Addend::Products(&[(a.parts().0, a.parts().0)]),
            Addend::Products(&[(a.parts().0, a.parts().1), (a.parts().1, a.parts().0)]),
        ];
        let dec = keyswitch::decompose(kp, &d2, a.level());
        let (c0, c1) = keyswitch::switch(kp, &dec, rk.key(), add, None)?;
        Ciphertext::from_parts(&self.params, c0, c1, scale)
    }

    // ---- levels ---------------------------------------------------------------

    /// Divides by the top prime q_level, rounding: one level down, scale / q_level.
    pub fn rescale(&self, ct: &Ciphertext) -> Result<Ciphertext> {
        self.check_params(ct.params())?;
        let level = ct.level();
        if level == 0 {
            return Err(Error::LevelExhausted);
        }
        let mut r = ct.clone();
        let (c0, c1) = r.parts_mut();
        rayon::join(|| self.ctx().divide_by_top(c0, level), || self.ctx().divide_by_top(c1, level));
        let scale = r.scale() / self.params.q()[level] as f64;
        r.set_scale(scale)?;
        Ok(r)
    }

    /// Drops primes to reach `level` (no division: the scale is unchanged).
    pub fn drop_level(&self, ct: &Ciphertext, level: usize) -> Result<Ciphertext> {
        self.check_params(ct.params())?;
        if level > ct.level() {
            return Err(Error::LevelRaise { from: ct.level(), to: level });
        }
        let mut r = ct.clone();
        r.parts_mut().0.truncate(level + 1);
        r.parts_mut().1.truncate(level + 1);
        Ok(r)
    }

    // ---- rotations ------------------------------------------------------------

    /// Cyclic left rotation of the N/2 slots by `step` (negative: right).
    pub fn rotate(&self, ct: &Ciphertext, step: i64, keys: &GaloisKeys) -> Result<Ciphertext> {
        self.check_params(ct.params())?;
        if step.rem_euclid(self.params.slots() as i64) == 0 {
            return Ok(ct.clone());
        }
        let g = self.params.galois_element(step);
        let key = keys.get(g).ok_or_else(|| Error::MissingGaloisKey { what: format!("rotation by {step}") })?;
        self.apply_galois(ct, g, key)
    }

    /// The ciphertext of a compact query: `query` holds the client's
    /// [`crate::encoding::compact_query_coefficients`] for a period of `period` slots, and
    /// `keys` the packing keys (`rlwe::packing_elements`) and the conjugation key, up to the
    /// query's level. Slot j of the result holds value j mod `period` at the query's scale.
    /// Cost: period + log2(N/period) key switches (the packing, then the real part).
    pub fn unpack_query(&self, query: &rlwe::LweQuery, period: usize, keys: &GaloisKeys) -> Result<Ciphertext> {
        self.check_params(query.params())?;
        let n = self.params.n();
        if !period.is_power_of_two() || period < 2 || query.count() > period || 2 * period > n {
            let detail = format!("{} values for a period of {period} slots (a power of two, 2..=N/2)", query.count());
            return Err(Error::Shape { what: "a compact query", detail });
        }
        if keys.get(self.params.conjugation_element()).is_none() {
            return Err(Error::MissingGaloisKey { what: "conjugation (a compact query's real part)".into() });
        }
        let ct = rlwe::pack(query, period, keys)?;
        self.real_part_periodic(ct, period, keys)
    }

    /// A compact ring query's first linear layer, packed: `layer` holds the layer's
    /// matrix composed with [`crate::encoding::compact_query_transform`] for `period`
    /// (one row per coefficient of the period), as integers at the scale of the prime the
    /// final rescale drops. Slot j of the result holds output j mod `period` of the layer
    /// (without its bias) at the query's scale, one level below the query. The packing
    /// runs at the product's scale, so its key-switch noise is q_top times smaller than a
    /// compact query's. Cost: one product per row, period + log2(N/period) key switches
    /// and one rescale.
    pub fn unpack_linear(
        &self,
        query: &rlwe::LweQuery,
        layer: &rlwe::LinearLeaves,
        period: usize,
        keys: &GaloisKeys,
    ) -> Result<Ciphertext> {
        self.check_params(query.params())?;
        let n = self.params.n();
        if !period.is_power_of_two() || period < 2 || layer.outputs() > period || 2 * period > n {
            let detail =
                format!("{} outputs for a period of {period} slots (a power of two, 2..=N/2)", layer.outputs());
            return Err(Error::Shape { what: "a linear layer before packing", detail });
        }
        if query.level() == 0 {
            return Err(Error::LevelExhausted);
        }
        if keys.get(self.params.conjugation_element()).is_none() {
            return Err(Error::MissingGaloisKey { what: "conjugation (a compact query's real part)".into() });
        }
        let ct = rlwe::pack_linear(query, layer, period, keys)?;
        let ct = self.real_part_periodic(ct, period, keys)?;
        self.rescale(&ct)
    }

    /// A packed real c(Z), Z = X^{N/period}, → slots j holding value j mod `period`:
    /// times 1 + X^{N/(2·period)} (exact, no level, no scale), plus the conjugate.
    fn real_part_periodic(&self, mut ct: Ciphertext, period: usize, keys: &GaloisKeys) -> Result<Ciphertext> {
        let n = self.params.n();
        let level = ct.level();
        let ctx = self.ctx();
        let moduli: Vec<&Modulus> = ctx.moduli[..=level].iter().collect();
        let mut c = vec![0i64; n];
        c[0] = 1;
        c[n / (2 * period)] = 1;
        let mut factor = Poly::from_signed(&c, &moduli);
        factor.ntt(&ctx.ntt[..=level].iter().collect::<Vec<_>>());
        {
            let (c0, c1) = ct.parts_mut();
            c0.mul_assign(&factor, &moduli);
            c1.mul_assign(&factor, &moduli);
        }
        let conj = self.conjugate(&ct, keys)?;
        self.add(&ct, &conj)
    }

    /// Complex conjugation of every slot.
    pub fn conjugate(&self, ct: &Ciphertext, keys: &GaloisKeys) -> Result<Ciphertext> {
        self.check_params(ct.params())?;
        let g = self.params.conjugation_element();
        let key = keys.get(g).ok_or_else(|| Error::MissingGaloisKey { what: "conjugation".into() })?;
        self.apply_galois(ct, g, key)
    }

    fn apply_galois(&self, ct: &Ciphertext, g: u64, key: &KeySwitchKey) -> Result<Ciphertext> {
        let kp = self.key_set(key, ct.level())?;
        let dec = keyswitch::decompose(kp, ct.parts().1, ct.level());
        self.finish_galois(ct, &dec, g, key)
    }

    /// (σ(c0 + k0), σ(k1)) where (k0, k1) switches the decomposed c1 with the σ⁻¹-permuted key.
    fn finish_galois(&self, ct: &Ciphertext, dec: &Decomposed, g: u64, key: &KeySwitchKey) -> Result<Ciphertext> {
        let level = ct.level();
        debug_assert_eq!(dec.level(), level);
        let perm = self.ctx().galois_perm(g);
        // c0 is added before σ.
        let (c0, c1) = keyswitch::switch(
            dec.params(),
            dec,
            key,
            [Addend::Poly(ct.parts().0), Addend::Products(&[])],
            Some(&perm),
        )?;
        Ciphertext::from_parts(&self.params, c0, c1, ct.scale())
    }

    /// Splits and raises c1 once, for any number of rotations of `ct` (see `rotate_decomposed`).
    pub fn decompose<'a>(&self, ct: &'a Ciphertext) -> Result<Decomposed<'a>> {
        self.check_params(ct.params())?;
        Ok(keyswitch::decompose(&self.params, ct.parts().1, ct.level()))
    }

    /// [`Evaluator::decompose`] in the set `key` was made in (this set or a key basis of
    /// it): what rotations by keys of that set share.
    pub fn decompose_for<'a>(&self, ct: &'a Ciphertext, key: &KeySwitchKey) -> Result<Decomposed<'a>> {
        self.check_params(ct.params())?;
        let kp = self.key_set(key, ct.level())?;
        Ok(keyswitch::decompose(kp, ct.parts().1, ct.level()))
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
        self.check_params(ct.params())?;
        if dec.level() != ct.level() {
            return Err(Error::LevelMismatch { left: ct.level(), right: dec.level() });
        }
        if step.rem_euclid(self.params.slots() as i64) == 0 {
            return Ok(ct.clone());
        }
        let g = self.params.galois_element(step);
        let key = keys.get(g).ok_or_else(|| Error::MissingGaloisKey { what: format!("rotation by {step}") })?;
        let kp = self.key_set(key, ct.level())?;
        if !kp.same(dec.params()) {
            // A key of another basis than the decomposition's: raised again, in its own.
            return self.apply_galois(ct, g, key);
        }
        self.finish_galois(ct, dec, g, key)
    }

    /// Rotations of one ciphertext by many steps, hoisted.
    pub fn rotate_hoisted(&self, ct: &Ciphertext, steps: &[i64], keys: &GaloisKeys) -> Result<Vec<Ciphertext>> {
        // One decomposition per set among the keys (this set, or its key bases).
        let mut decs: Vec<Decomposed> = vec![self.decompose(ct)?];
        for key in steps.iter().filter_map(|&s| keys.get(self.params.galois_element(s))) {
            if !decs.iter().any(|d| d.params().same(key.params())) {
                decs.push(self.decompose_for(ct, key)?);
            }
        }
        steps
            .iter()
            .map(|&s| {
                let key = keys.get(self.params.galois_element(s));
                let dec = key.and_then(|k| decs.iter().find(|d| d.params().same(k.params()))).unwrap_or(&decs[0]);
                self.rotate_decomposed(ct, dec, s, keys)
            })
            .collect()
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
}

fn signed_mod(v: i128, m: &Modulus) -> u64 {
    let r = m.reduce_u128(v.unsigned_abs());
    if v < 0 {
        m.neg(r)
    } else {
        r
    }
}
