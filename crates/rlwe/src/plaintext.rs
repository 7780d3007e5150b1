//! Plaintexts: encoded messages as ring elements in NTT form, with their level and scale.
//! Encoders (the schemes') make them; encryption and evaluation take them.

use ring::Poly;

use crate::error::{Error, ParamError, Result};
use crate::params::Parameters;

/// An encoded message: a ring element in NTT form at a level, with its scale.
#[derive(Clone, Debug)]
pub struct Plaintext {
    pub(crate) params: Parameters,
    pub(crate) poly: Poly,
    pub(crate) scale: f64,
}

impl Plaintext {
    /// A plaintext from a polynomial in NTT form over q_0..q_level; the scale is checked.
    pub fn new(params: &Parameters, poly: Poly, scale: f64) -> Result<Self> {
        check_scale(scale)?;
        if poly.n() != params.n() || poly.limbs() == 0 || poly.limbs() > params.q().len() {
            let detail = format!(
                "{} limbs of degree {} (need 1..={} limbs of degree {})",
                poly.limbs(),
                poly.n(),
                params.q().len(),
                params.n()
            );
            return Err(Error::Shape { what: "a plaintext", detail });
        }
        Ok(Self { params: params.clone(), poly, scale })
    }
    /// The polynomial (NTT form).
    pub fn poly(&self) -> &Poly {
        &self.poly
    }
    /// The polynomial, taken out (no copy).
    pub fn into_poly(self) -> Poly {
        self.poly
    }
    /// Number of rescales left.
    pub fn level(&self) -> usize {
        self.poly.limbs() - 1
    }
    /// The scale Δ the message was multiplied by.
    pub fn scale(&self) -> f64 {
        self.scale
    }
    /// The parameter set.
    pub fn params(&self) -> &Parameters {
        &self.params
    }
}

/// A plaintext with the Shoup companion of every value, for repeated products:
/// each multiplication then costs two multiply-highs per value instead of a Barrett
/// reduction (the weights of a model are multiplied by every request).
#[derive(Clone, Debug)]
pub struct PreparedPlaintext {
    pub(crate) pt: Plaintext,
    pub(crate) companions: Poly,
}

impl PreparedPlaintext {
    /// Computes the companions of `pt`.
    pub fn new(pt: Plaintext) -> Self {
        let ctx = pt.params.ctx();
        let mut companions = pt.poly.clone();
        for (i, m) in ctx.moduli[..=pt.level()].iter().enumerate() {
            for x in companions.limb_mut(i) {
                *x = ring::kernels::shoup_companion(*x, m);
            }
        }
        Self { pt, companions }
    }
    /// The Shoup companion of every value (`ring::kernels::shoup_companion`).
    pub fn companions(&self) -> &Poly {
        &self.companions
    }
    /// The plaintext.
    pub fn plaintext(&self) -> &Plaintext {
        &self.pt
    }
    /// Number of rescales left.
    pub fn level(&self) -> usize {
        self.pt.level()
    }
    /// The scale.
    pub fn scale(&self) -> f64 {
        self.pt.scale
    }
    /// Bytes held in memory.
    pub fn memory_bytes(&self) -> usize {
        16 * self.pt.poly.data().len()
    }
}

/// A scale must be finite and within [1, 2^120].
pub fn check_scale(scale: f64) -> Result<()> {
    if !scale.is_finite() || scale < 1.0 || scale > 2f64.powi(120) {
        return Err(Error::Param(ParamError::Scale { log_scale: scale.log2() }));
    }
    Ok(())
}
