//! Encoding: integers modulo t to ring elements. Batching puts N values in the slots of a
//! 2 × N/2 matrix (the evaluations of the plaintext polynomial at the primitive 2N-th
//! roots of unity modulo t, ordered so that X → X^{5^k} rotates the rows and X → X^{-1}
//! swaps them); coefficient encoding puts N values in the coefficients.

use ring::Poly;

use crate::error::{Error, Result};
use crate::params::Parameters;

/// A plaintext: N coefficients modulo t, at a level; ready for products as a ring element
/// in NTT form over q_0..q_level (its centered coefficients lifted). Decryption gives one
/// without the lift (only coefficients).
#[derive(Clone, Debug)]
pub struct Plaintext {
    pub(crate) params: Parameters,
    /// coefficients in [0, t)
    pub(crate) coeffs: Vec<u64>,
    pub(crate) level: usize,
    /// the centered coefficients in NTT form over q_0..q_level, if lifted
    pub(crate) lifted: Option<Poly>,
    /// ℓ1 norm of the centered coefficients: a bound on its canonical norm
    pub(crate) l1: f64,
}

impl Plaintext {
    /// The level (the number of primes of its lift, less one).
    pub fn level(&self) -> usize {
        self.level
    }
    /// The coefficients, in [0, t).
    pub fn coeffs(&self) -> &[u64] {
        &self.coeffs
    }
    /// The parameter set.
    pub fn params(&self) -> &Parameters {
        &self.params
    }

    /// A plaintext from coefficients in [0, t), lifted at `level`.
    pub(crate) fn from_coeffs(params: &Parameters, coeffs: Vec<u64>, level: usize) -> Self {
        let (lifted, l1) = lift(params, &coeffs, level);
        Self { params: params.clone(), coeffs, level, lifted: Some(lifted), l1 }
    }

    /// The lift over q_0..q_level (made now if the plaintext has none).
    pub(crate) fn lifted_at(&self, level: usize) -> std::borrow::Cow<'_, Poly> {
        match &self.lifted {
            Some(p) if self.level >= level => std::borrow::Cow::Borrowed(p),
            _ => std::borrow::Cow::Owned(lift(&self.params, &self.coeffs, level).0),
        }
    }
}

/// The centered value of x ∈ [0, t).
pub(crate) fn center(x: u64, t: u64) -> i64 {
    if x > t / 2 {
        x as i64 - t as i64
    } else {
        x as i64
    }
}

/// Centered coefficients in NTT form over q_0..q_level, and their ℓ1 norm.
pub(crate) fn lift(params: &Parameters, coeffs: &[u64], level: usize) -> (Poly, f64) {
    let t = params.plaintext_modulus();
    let ctx = params.rlwe().ctx();
    let signed: Vec<i64> = coeffs.iter().map(|&c| center(c, t)).collect();
    let l1 = signed.iter().map(|&c| c.unsigned_abs() as f64).sum();
    let moduli: Vec<_> = ctx.moduli[..=level].iter().collect();
    let mut p = Poly::from_signed(&signed, &moduli);
    p.ntt(&ctx.ntt[..=level].iter().collect::<Vec<_>>());
    (p, l1)
}

/// Encodes and decodes under one parameter set.
#[derive(Clone, Debug)]
pub struct Encoder {
    params: Parameters,
}

impl Encoder {
    /// An encoder for `params`.
    pub fn new(params: &Parameters) -> Self {
        Self { params: params.clone() }
    }

    fn reduce(&self, values: &[i64]) -> Result<Vec<u64>> {
        let n = self.params.n();
        if values.len() > n {
            return Err(Error::TooManyValues { given: values.len(), max: n });
        }
        let t = self.params.plaintext_modulus() as i128;
        let mut out: Vec<u64> = values.iter().map(|&v| (v as i128).rem_euclid(t) as u64).collect();
        out.resize(n, 0);
        Ok(out)
    }

    fn batching(&self) -> Result<&crate::params::Batching> {
        self.params
            .tables()
            .batching
            .as_ref()
            .ok_or(Error::NoBatching { t: self.params.plaintext_modulus(), two_n: 2 * self.params.n() })
    }

    /// Batching: `values` (at most N, reduced modulo t; missing ones are 0) into the
    /// slots, row 0 first (slot k is row k / (N/2), column k mod N/2), at `level`.
    pub fn encode(&self, values: &[i64], level: usize) -> Result<Plaintext> {
        self.check_level(level)?;
        let b = self.batching()?;
        let slots = self.reduce(values)?;
        let mut coeffs = vec![0u64; self.params.n()];
        for (v, &pos) in slots.iter().zip(&b.slot_pos) {
            coeffs[pos as usize] = *v;
        }
        b.ntt.inverse(&mut coeffs);
        Ok(Plaintext::from_coeffs(&self.params, coeffs, level))
    }

    /// Coefficient encoding: `values` (at most N, reduced modulo t) as the coefficients.
    pub fn encode_coeffs(&self, values: &[i64], level: usize) -> Result<Plaintext> {
        self.check_level(level)?;
        let coeffs = self.reduce(values)?;
        Ok(Plaintext::from_coeffs(&self.params, coeffs, level))
    }

    /// The N slot values of a batched plaintext, in [0, t).
    pub fn decode(&self, pt: &Plaintext) -> Result<Vec<u64>> {
        self.check(pt)?;
        let b = self.batching()?;
        let mut vals = pt.coeffs.clone();
        b.ntt.forward(&mut vals);
        Ok(b.slot_pos.iter().map(|&p| vals[p as usize]).collect())
    }

    /// The slot values centered: in (−t/2, t/2].
    pub fn decode_signed(&self, pt: &Plaintext) -> Result<Vec<i64>> {
        let t = self.params.plaintext_modulus();
        Ok(self.decode(pt)?.into_iter().map(|v| center(v, t)).collect())
    }

    /// The N coefficients of a plaintext, in [0, t).
    pub fn decode_coeffs(&self, pt: &Plaintext) -> Result<Vec<u64>> {
        self.check(pt)?;
        Ok(pt.coeffs.clone())
    }

    fn check(&self, pt: &Plaintext) -> Result<()> {
        if !self.params.same(&pt.params) {
            return Err(rlwe::Error::ParamsMismatch.into());
        }
        Ok(())
    }

    fn check_level(&self, level: usize) -> Result<()> {
        if level > self.params.max_level() {
            return Err(rlwe::Error::LevelRaise { from: self.params.max_level(), to: level }.into());
        }
        Ok(())
    }
}
