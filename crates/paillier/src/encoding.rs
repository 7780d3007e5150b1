//! Fixed-point encoding of reals as signed integers (negative values become n − |v| under
//! encryption, two's complement modulo n).

use rug::Integer;

use crate::error::PaillierError;

/// Most fractional bits a [`FixedPoint`] takes (a score's are the input's plus the weight's).
pub const MAX_FRAC_BITS: u32 = 128;
/// Encoded magnitudes stay below 2^MAX_ENCODED_BITS, so that sums of products stay far below n/2.
pub const MAX_ENCODED_BITS: u32 = 126;

/// Reals as integers scaled by 2^frac_bits and rounded to nearest: `x ≈ v / 2^frac_bits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedPoint {
    frac_bits: u32,
}

impl FixedPoint {
    /// An encoding with `frac_bits` fractional bits (at most [`MAX_FRAC_BITS`]).
    pub fn new(frac_bits: u32) -> Result<Self, PaillierError> {
        if frac_bits > MAX_FRAC_BITS {
            return Err(PaillierError::Invalid {
                field: "fractional bits",
                detail: format!("{frac_bits} is more than the {MAX_FRAC_BITS} supported"),
            });
        }
        Ok(Self { frac_bits })
    }

    /// Fractional bits.
    pub fn frac_bits(&self) -> u32 {
        self.frac_bits
    }

    /// The step between consecutive representable values, 2^-frac_bits; encoding rounds to
    /// nearest, so a value is off by at most half of it.
    pub fn precision(&self) -> f64 {
        (-(self.frac_bits as f64)).exp2()
    }

    /// `round(x · 2^frac_bits)`, refusing non-finite values and magnitudes of 2^126 or more.
    pub fn encode(&self, x: f64) -> Result<Integer, PaillierError> {
        let err = |detail| PaillierError::Encoding { what: "value", value: x, frac_bits: self.frac_bits, detail };
        if !x.is_finite() {
            return Err(err("it is not finite"));
        }
        let scaled = x * (self.frac_bits as f64).exp2();
        if scaled.abs() >= (MAX_ENCODED_BITS as f64).exp2() {
            return Err(err("its magnitude reaches 2^126 once scaled"));
        }
        Ok(Integer::from_f64(scaled.round()).expect("finite"))
    }

    /// `i64` form of [`Self::encode`], for weights (exponents of the evaluator).
    pub fn encode_i64(&self, x: f64) -> Result<i64, PaillierError> {
        let v = self.encode(x)?;
        v.to_i64().ok_or(PaillierError::Encoding {
            what: "weight",
            value: x,
            frac_bits: self.frac_bits,
            detail: "it does not fit 63 bits once scaled; use fewer fractional bits",
        })
    }

    /// `v / 2^frac_bits`, rounded once to the nearest f64.
    pub fn decode(&self, v: &Integer) -> f64 {
        // to_f64 truncates; scale by an exact power of two afterwards.
        let bits = v.significant_bits();
        if bits <= 1000 {
            v.to_f64() * (-(self.frac_bits as f64)).exp2()
        } else {
            let shift = bits - 60;
            Integer::from(v >> shift).to_f64() * ((shift as f64) - self.frac_bits as f64).exp2()
        }
    }
}
