//! Homomorphic evaluation. Every operation computes its result's noise bound first and
//! refuses (`Error::NoiseBudgetExhausted`) when it could reach the level's limit: a result
//! that might decrypt wrong is never returned. Operands must share parameters and level;
//! their factors are reconciled here (the second operand is multiplied by f_a/f_b mod t).
//!
//! Products, relinearisation, rotations (hoisted too) and modulus switching are the RLWE
//! layer's key switching and CKKS's rounding division in the t⁻¹-scaled representation
//! (see the crate's documentation): a product multiplies one operand by t first.

use ring::{Modulus, Poly};
use rlwe::keyswitch::{self, Addend, Decomposed};
use rlwe::{GaloisKeys, KeySwitchKey, RelinKey};

use crate::ciphertext::Ciphertext;
use crate::encoding::{center, lift, Plaintext};
use crate::encryption::mul_consts;
use crate::error::{Error, Result};
use crate::noise;
use crate::params::Parameters;

/// Evaluates operations under one parameter set. Holds no key: the public evaluation keys
/// are given per call, so one evaluator serves any number of clients.
#[derive(Clone, Debug)]
pub struct Evaluator {
    params: Parameters,
}

fn signed_mod(v: i64, m: &Modulus) -> u64 {
    let r = m.reduce(v.unsigned_abs());
    if v < 0 {
        m.neg(r)
    } else {
        r
    }
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

    fn moduli(&self, level: usize) -> Vec<&Modulus> {
        self.params.rlwe().ctx().moduli[..=level].iter().collect()
    }

    fn check_params(&self, p: &Parameters) -> Result<()> {
        if self.params.same(p) {
            Ok(())
        } else {
            Err(rlwe::Error::ParamsMismatch.into())
        }
    }

    fn check_pair(&self, a: &Ciphertext, b: &Ciphertext) -> Result<()> {
        self.check_params(&a.params)?;
        self.check_params(&b.params)?;
        if a.level() != b.level() {
            return Err(rlwe::Error::LevelMismatch { left: a.level(), right: b.level() }.into());
        }
        Ok(())
    }

    fn check_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<()> {
        self.check_params(&ct.params)?;
        self.check_params(&pt.params)?;
        Ok(())
    }

    /// Refuses a result whose noise bound passes its level's limit.
    fn admit(&self, op: &'static str, log_noise: f64, level: usize) -> Result<f64> {
        let limit = noise::limit(&self.params, level);
        if log_noise.is_nan() || log_noise > limit {
            return Err(Error::NoiseBudgetExhausted { op, bound_bits: log_noise, limit_bits: limit, level });
        }
        Ok(log_noise)
    }

    fn t(&self) -> &Modulus {
        &self.params.tables().t
    }

    /// Multiplies both halves by the integer k (reduced into each prime).
    fn scale_by(&self, ct: &mut rlwe::Ciphertext, k: i64) {
        let level = ct.level();
        let m = self.moduli(level);
        let consts: Vec<u64> = m.iter().map(|m| signed_mod(k, m)).collect();
        let (c0, c1) = ct.parts_mut();
        c0.mul_scalar_assign(&consts, &m);
        c1.mul_scalar_assign(&consts, &m);
    }

    /// b's halves and noise with its factor made a's: multiplied by f_a/f_b mod t (centered).
    fn aligned<'a>(&self, a: &Ciphertext, b: &'a Ciphertext) -> (std::borrow::Cow<'a, rlwe::Ciphertext>, f64) {
        if a.factor == b.factor {
            return (std::borrow::Cow::Borrowed(&b.inner), b.log_noise);
        }
        let t = self.t();
        let k = center(t.mul(a.factor, t.inv(b.factor)), t.value());
        let mut r = b.inner.clone();
        self.scale_by(&mut r, k);
        (std::borrow::Cow::Owned(r), b.log_noise + (k.unsigned_abs() as f64).log2())
    }

    // ---- additive operations -------------------------------------------------

    /// a + b, slot-wise (modulo t).
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.add_sub(a, b, false)
    }

    /// a − b, slot-wise.
    pub fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.add_sub(a, b, true)
    }

    fn add_sub(&self, a: &Ciphertext, b: &Ciphertext, sub: bool) -> Result<Ciphertext> {
        self.check_pair(a, b)?;
        let (bi, nb) = self.aligned(a, b);
        let log_noise = self.admit(if sub { "sub" } else { "add" }, noise::log_add(a.log_noise, nb), a.level())?;
        let m = self.moduli(a.level());
        let mut r = a.inner.clone();
        let (r0, r1) = r.parts_mut();
        let (b0, b1) = bi.parts();
        if sub {
            r0.sub_assign(b0, &m);
            r1.sub_assign(b1, &m);
        } else {
            r0.add_assign(b0, &m);
            r1.add_assign(b1, &m);
        }
        Ok(Ciphertext::new(&self.params, r, a.factor, log_noise))
    }

    /// −a, slot-wise.
    pub fn neg(&self, a: &Ciphertext) -> Result<Ciphertext> {
        self.check_params(&a.params)?;
        let m = self.moduli(a.level());
        let mut r = a.inner.clone();
        r.parts_mut().0.neg_assign(&m);
        r.parts_mut().1.neg_assign(&m);
        Ok(Ciphertext::new(&self.params, r, a.factor, a.log_noise))
    }

    /// t⁻¹·[f·m]_t over the ciphertext's level (NTT form), and ‖[f·m]_t‖_1.
    fn plain_addend(&self, ct: &Ciphertext, pt: &Plaintext) -> (Poly, f64) {
        let level = ct.level();
        let (mut p, l1) = if ct.factor == 1 {
            let mut p = pt.lifted_at(level).into_owned();
            p.truncate(level + 1);
            (p, pt.l1)
        } else {
            let t = self.t();
            let (f, fs) = (ct.factor, t.shoup(ct.factor));
            let scaled: Vec<u64> = pt.coeffs.iter().map(|&c| t.mul_shoup(c, f, fs)).collect();
            lift(&self.params, &scaled, level)
        };
        mul_consts(&self.params, &mut p, &self.params.tables().t_inv_mod_q);
        (p, l1)
    }

    /// ct + pt, slot-wise. The plaintext may be at any level (it is lifted as needed).
    pub fn add_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        self.add_sub_plain(ct, pt, false)
    }

    /// ct − pt, slot-wise.
    pub fn sub_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        self.add_sub_plain(ct, pt, true)
    }

    fn add_sub_plain(&self, ct: &Ciphertext, pt: &Plaintext, sub: bool) -> Result<Ciphertext> {
        self.check_plain(ct, pt)?;
        let (p, l1) = self.plain_addend(ct, pt);
        let op = if sub { "sub_plain" } else { "add_plain" };
        let log_noise = self.admit(op, noise::log_add(ct.log_noise, l1.max(1.0).log2()), ct.level())?;
        let m = self.moduli(ct.level());
        let mut r = ct.inner.clone();
        if sub {
            r.parts_mut().0.sub_assign(&p, &m);
        } else {
            r.parts_mut().0.add_assign(&p, &m);
        }
        Ok(Ciphertext::new(&self.params, r, ct.factor, log_noise))
    }

    /// Adds the integer k (mod t) to every slot (batching) — to the constant coefficient
    /// under coefficient encoding.
    pub fn add_scalar(&self, ct: &Ciphertext, k: i64) -> Result<Ciphertext> {
        self.check_params(&ct.params)?;
        let t = self.t();
        let kt = (k as i128).rem_euclid(t.value() as i128) as u64;
        let c = center(t.mul(kt, ct.factor), t.value());
        let log_noise = self.admit(
            "add_scalar",
            noise::log_add(ct.log_noise, (c.unsigned_abs() as f64).max(1.0).log2()),
            ct.level(),
        )?;
        let m = self.moduli(ct.level());
        let tinv = &self.params.tables().t_inv_mod_q;
        // A constant polynomial is the same constant at every NTT point.
        let consts: Vec<u64> =
            m.iter().enumerate().map(|(i, m)| m.mul_shoup(signed_mod(c, m), tinv[i].0, tinv[i].1)).collect();
        let mut r = ct.inner.clone();
        r.parts_mut().0.add_scalar_assign(&consts, &m);
        Ok(Ciphertext::new(&self.params, r, ct.factor, log_noise))
    }

    // ---- multiplicative operations ------------------------------------------

    /// Multiplies every slot by the integer k (mod t): the noise grows by |k| (centered).
    pub fn mul_scalar(&self, ct: &Ciphertext, k: i64) -> Result<Ciphertext> {
        self.check_params(&ct.params)?;
        let t = self.t();
        let c = center((k as i128).rem_euclid(t.value() as i128) as u64, t.value());
        let log_noise =
            self.admit("mul_scalar", ct.log_noise + (c.unsigned_abs() as f64).max(1.0).log2(), ct.level())?;
        let mut r = ct.inner.clone();
        self.scale_by(&mut r, c);
        Ok(Ciphertext::new(&self.params, r, ct.factor, log_noise))
    }

    /// Slot-wise product with a plaintext: the noise grows by the plaintext's ℓ1 norm.
    pub fn mul_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        self.check_plain(ct, pt)?;
        let log_noise = self.admit("mul_plain", ct.log_noise + pt.l1.max(1.0).log2(), ct.level())?;
        let p = pt.lifted_at(ct.level());
        let m = self.moduli(ct.level());
        let mut r = ct.inner.clone();
        r.parts_mut().0.mul_assign(&p, &m);
        r.parts_mut().1.mul_assign(&p, &m);
        Ok(Ciphertext::new(&self.params, r, ct.factor, log_noise))
    }

    /// Ciphertext product with relinearisation: slot-wise a·b. Noise ‖x_a‖·‖x_b‖ plus a
    /// key switch's; switch the operands' modulus down first to keep it small.
    pub fn mul_relin(&self, a: &Ciphertext, b: &Ciphertext, rk: &RelinKey) -> Result<Ciphertext> {
        self.check_pair(a, b)?;
        self.product(a, Some(b), rk)
    }

    /// The same as `mul_relin(a, a, rk)`, one product cheaper.
    pub fn square_relin(&self, a: &Ciphertext, rk: &RelinKey) -> Result<Ciphertext> {
        self.check_params(&a.params)?;
        self.product(a, None, rk)
    }

    fn product(&self, a: &Ciphertext, b: Option<&Ciphertext>, rk: &RelinKey) -> Result<Ciphertext> {
        if !self.params.rlwe().same(rk.key().params()) {
            return Err(rlwe::Error::ParamsMismatch.into());
        }
        let level = a.level();
        let nb = b.map_or(a.log_noise, |b| b.log_noise);
        let log_noise =
            self.admit("mul_relin", noise::log_add(a.log_noise + nb, noise::key_switch(&self.params, level)), level)?;
        let t = self.t();
        let factor = t.mul(a.factor, b.map_or(a.factor, |b| b.factor));
        // (t·a) ⊗ b: c0 + c1·s = t⁻¹·x each, so the tensor of t·a with b is t⁻¹·x_a·x_b.
        let mut ta = a.inner.clone();
        self.scale_by(&mut ta, t.value() as i64);
        let (a0, a1) = ta.parts();
        let (b0, b1) = b.map_or(a.inner.parts(), |b| b.inner.parts());
        let m = self.moduli(level);
        let d2 = Poly::product(a1, b1, &m);
        let add = [Addend::Products(&[(a0, b0)]), Addend::Products(&[(a0, b1), (a1, b0)])];
        let dec = keyswitch::decompose(self.params.rlwe(), &d2, level);
        let (c0, c1) = keyswitch::switch(self.params.rlwe(), &dec, rk.key(), add, None)?;
        let r = rlwe::Ciphertext::from_parts(self.params.rlwe(), c0, c1, 1.0)?;
        Ok(Ciphertext::new(&self.params, r, factor, log_noise))
    }

    // ---- levels ---------------------------------------------------------------

    /// Switches to the next modulus: divides by the top prime q_l (rounding, which in
    /// this representation is BGV's correction δ ≡ 0 mod t), one level down. The noise
    /// becomes ‖x‖/q_l + t·‖r0 + r1·s‖; the factor is multiplied by q_l⁻¹ mod t.
    pub fn mod_switch(&self, ct: &Ciphertext) -> Result<Ciphertext> {
        self.check_params(&ct.params)?;
        let level = ct.level();
        if level == 0 {
            return Err(rlwe::Error::LevelExhausted.into());
        }
        let log_q = (self.params.q()[level] as f64).log2();
        let log_noise =
            self.admit("mod_switch", noise::log_add(ct.log_noise - log_q, noise::mod_switch(&self.params)), level - 1)?;
        let mut r = ct.inner.clone();
        let (c0, c1) = r.parts_mut();
        rayon::join(
            || self.params.rlwe().ctx().divide_by_top(c0, level),
            || self.params.rlwe().ctx().divide_by_top(c1, level),
        );
        let factor = self.t().mul(ct.factor, self.params.tables().q_inv_mod_t[level]);
        Ok(Ciphertext::new(&self.params, r, factor, log_noise))
    }

    /// Modulus switches down to `level`.
    pub fn mod_switch_to(&self, ct: &Ciphertext, level: usize) -> Result<Ciphertext> {
        if level > ct.level() {
            return Err(rlwe::Error::LevelRaise { from: ct.level(), to: level }.into());
        }
        let mut r = ct.clone();
        while r.level() > level {
            r = self.mod_switch(&r)?;
        }
        Ok(r)
    }

    /// Drops primes down to `level` without dividing: cheap, but the noise stays as it is
    /// while the modulus shrinks (refused if it no longer fits).
    pub fn drop_level(&self, ct: &Ciphertext, level: usize) -> Result<Ciphertext> {
        self.check_params(&ct.params)?;
        if level > ct.level() {
            return Err(rlwe::Error::LevelRaise { from: ct.level(), to: level }.into());
        }
        let log_noise = self.admit("drop_level", ct.log_noise, level)?;
        let mut r = ct.inner.clone();
        r.parts_mut().0.truncate(level + 1);
        r.parts_mut().1.truncate(level + 1);
        Ok(Ciphertext::new(&self.params, r, ct.factor, log_noise))
    }

    // ---- rotations ------------------------------------------------------------

    /// Rotates both rows left by `step` columns (negative: right).
    pub fn rotate_columns(&self, ct: &Ciphertext, step: i64, keys: &GaloisKeys) -> Result<Ciphertext> {
        self.check_params(&ct.params)?;
        if step.rem_euclid(self.params.row_size() as i64) == 0 {
            return Ok(ct.clone());
        }
        let g = self.params.column_rotation_element(step);
        let key =
            keys.get(g).ok_or_else(|| rlwe::Error::MissingGaloisKey { what: format!("column rotation by {step}") })?;
        let dec = keyswitch::decompose(self.params.rlwe(), ct.inner.parts().1, ct.level());
        self.finish_galois(ct, &dec, g, key)
    }

    /// Swaps the two rows.
    pub fn rotate_rows(&self, ct: &Ciphertext, keys: &GaloisKeys) -> Result<Ciphertext> {
        self.check_params(&ct.params)?;
        let g = self.params.row_swap_element();
        let key = keys.get(g).ok_or_else(|| rlwe::Error::MissingGaloisKey { what: "row swap".into() })?;
        let dec = keyswitch::decompose(self.params.rlwe(), ct.inner.parts().1, ct.level());
        self.finish_galois(ct, &dec, g, key)
    }

    /// Splits and raises c1 once, for any number of column rotations of `ct` (hoisting).
    pub fn decompose<'a>(&self, ct: &'a Ciphertext) -> Result<Decomposed<'a>> {
        self.check_params(&ct.params)?;
        Ok(keyswitch::decompose(self.params.rlwe(), ct.inner.parts().1, ct.level()))
    }

    /// A column rotation of `ct` reusing its decomposition (`decompose`).
    pub fn rotate_columns_decomposed(
        &self,
        ct: &Ciphertext,
        dec: &Decomposed,
        step: i64,
        keys: &GaloisKeys,
    ) -> Result<Ciphertext> {
        self.check_params(&ct.params)?;
        if dec.level() != ct.level() {
            return Err(rlwe::Error::LevelMismatch { left: ct.level(), right: dec.level() }.into());
        }
        if step.rem_euclid(self.params.row_size() as i64) == 0 {
            return Ok(ct.clone());
        }
        let g = self.params.column_rotation_element(step);
        let key =
            keys.get(g).ok_or_else(|| rlwe::Error::MissingGaloisKey { what: format!("column rotation by {step}") })?;
        self.finish_galois(ct, dec, g, key)
    }

    /// The row swap of `ct` reusing its decomposition (`decompose`): with
    /// `rotate_columns_decomposed`, every rotation of the 2 × N/2 matrix from one split.
    pub fn rotate_rows_decomposed(&self, ct: &Ciphertext, dec: &Decomposed, keys: &GaloisKeys) -> Result<Ciphertext> {
        self.check_params(&ct.params)?;
        if dec.level() != ct.level() {
            return Err(rlwe::Error::LevelMismatch { left: ct.level(), right: dec.level() }.into());
        }
        let g = self.params.row_swap_element();
        let key = keys.get(g).ok_or_else(|| rlwe::Error::MissingGaloisKey { what: "row swap".into() })?;
        self.finish_galois(ct, dec, g, key)
    }

    /// Column rotations of one ciphertext by many steps, hoisted: one decomposition.
    pub fn rotate_columns_hoisted(&self, ct: &Ciphertext, steps: &[i64], keys: &GaloisKeys) -> Result<Vec<Ciphertext>> {
        let dec = self.decompose(ct)?;
        steps.iter().map(|&s| self.rotate_columns_decomposed(ct, &dec, s, keys)).collect()
    }

    /// (σ(c0 + k0), σ(k1)), (k0, k1) the switch of the decomposed c1 with the σ⁻¹-permuted key.
    fn finish_galois(&self, ct: &Ciphertext, dec: &Decomposed, g: u64, key: &KeySwitchKey) -> Result<Ciphertext> {
        if !self.params.rlwe().same(key.params()) {
            return Err(rlwe::Error::ParamsMismatch.into());
        }
        let level = ct.level();
        let log_noise =
            self.admit("rotation", noise::log_add(ct.log_noise, noise::key_switch(&self.params, level)), level)?;
        let perm = self.params.rlwe().ctx().galois_perm(g);
        let (c0, c1) = keyswitch::switch(
            self.params.rlwe(),
            dec,
            key,
            [Addend::Poly(ct.inner.parts().0), Addend::Products(&[])],
            Some(&perm),
        )?;
        let r = rlwe::Ciphertext::from_parts(self.params.rlwe(), c0, c1, 1.0)?;
        Ok(Ciphertext::new(&self.params, r, ct.factor, log_noise))
    }
}
