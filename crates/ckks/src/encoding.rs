//! CKKS encoding: complex slot vectors to ring elements through the canonical
//! embedding (a "special" FFT over the orbit of 5 in Z_2N^*), scaled and rounded.
//!
//! Slot j holds m(ζ^{5^j}) with ζ = e^{iπ/N}, so the automorphism X → X^{5^k}
//! rotates the slots left by k, and X → X^{2N-1} conjugates them.

use std::sync::OnceLock;

use num_complex::Complex64;
use ring::Poly;
use rlwe::{check_scale, Error, Parameters, Plaintext, Result};

/// The FFT tables of each ring degree, built on first use and kept: they depend on N
/// alone, so every parameter set of one degree shares them.
fn tables(log_n: u32) -> &'static EncodingTables {
    static TABLES: [OnceLock<EncodingTables>; 17] = [const { OnceLock::new() }; 17];
    TABLES[log_n as usize].get_or_init(|| EncodingTables::new(1 << log_n))
}

struct EncodingTables {
    /// 5^j mod 2N
    rot_group: Vec<u64>,
    /// e^{2πi k / 2N}, k = 0..=2N
    ksi: Vec<Complex64>,
}

impl EncodingTables {
    pub fn new(n: usize) -> Self {
        let m = 2 * n as u64;
        let mut rot_group = Vec::with_capacity(n / 2);
        let mut g = 1u64;
        for _ in 0..n / 2 {
            rot_group.push(g);
            g = g * 5 % m;
        }
        let ksi = (0..=m)
            .map(|k| {
                let a = 2.0 * std::f64::consts::PI * k as f64 / m as f64;
                Complex64::new(a.cos(), a.sin())
            })
            .collect();
        Self { rot_group, ksi }
    }

    /// Evaluates at the slot points: coefficient-side values to slot values.
    fn fft_special(&self, vals: &mut [Complex64]) {
        let size = vals.len();
        let m = self.ksi.len() as u64 - 1;
        bit_reverse_permute(vals);
        let mut len = 2;
        while len <= size {
            let lenh = len / 2;
            let lenq = (len * 4) as u64;
            let gap = m / lenq;
            for i in (0..size).step_by(len) {
                for j in 0..lenh {
                    let idx = ((self.rot_group[j] % lenq) * gap) as usize;
                    let u = vals[i + j];
                    let v = vals[i + j + lenh] * self.ksi[idx];
                    vals[i + j] = u + v;
                    vals[i + j + lenh] = u - v;
                }
            }
            len *= 2;
        }
    }

    /// Inverse of `fft_special`.
    fn fft_special_inv(&self, vals: &mut [Complex64]) {
        let size = vals.len();
        let m = self.ksi.len() as u64 - 1;
        let mut len = size;
        while len >= 2 {
            let lenh = len / 2;
            let lenq = (len * 4) as u64;
            let gap = m / lenq;
            for i in (0..size).step_by(len) {
                for j in 0..lenh {
                    let idx = ((lenq - self.rot_group[j] % lenq) * gap) as usize;
                    let u = vals[i + j] + vals[i + j + lenh];
                    let v = (vals[i + j] - vals[i + j + lenh]) * self.ksi[idx];
                    vals[i + j] = u;
                    vals[i + j + lenh] = v;
                }
            }
            len /= 2;
        }
        bit_reverse_permute(vals);
        let inv = 1.0 / size as f64;
        for v in vals.iter_mut() {
            *v *= inv;
        }
    }
}

fn bit_reverse_permute<T>(v: &mut [T]) {
    let n = v.len();
    let bits = n.trailing_zeros();
    for i in 0..n {
        let j = ring::arith::bit_reverse(i, bits);
        if i < j {
            v.swap(i, j);
        }
    }
}

/// The integers a client sends as a compact query (`rlwe::packing`) for `values`
/// repeated with period `period` (a power of two ≥ 2 and ≥ the number of values).
///
/// The server packs them at coefficients k·N/period (`rlwe::pack`): a real polynomial
/// c(Z), Z = X^{N/period}, whose `period`/2 complex slots are `period` reals. It then
/// multiplies by 1 + Y, Y = X^{N/(2·period)}, and adds the conjugate
/// ([`crate::Evaluator::unpack_query`]): slot j of the result is
/// 2·Re((1 + w_j)·c(w_j²)) with w_j = e^{iπ·r_j/(2·period)}, r_j = 5^j mod 4·period.
/// Slots j and j + period/2 share c's slot z and have opposite w, so the two real
/// equations Re((1 ± w)·z) = targets fix z (their determinant is 2·Im w ≠ 0). Every
/// slot j then holds `scale·values[j mod period]`: `period` words on the wire, half of
/// what a full encoding of `period` slots needs, and a packing tree of `period` leaves.
pub fn compact_query_coefficients(values: &[f64], period: usize, scale: f64) -> Result<Vec<i128>> {
    check_scale(scale)?;
    let limit = 2f64.powi(120);
    compact_query_transform(values, period, scale)?
        .into_iter()
        .map(|part| {
            let v = part.round();
            if v.abs() >= limit {
                return Err(Error::ValueTooLarge { value: part / scale, log_scale: scale.log2() });
            }
            Ok(v as i128)
        })
        .collect()
}

/// [`compact_query_coefficients`] before rounding: a linear map of `values` (times
/// `scale`), so a server can fold it into a linear layer that it applies before packing
/// (`rlwe::pack_linear`, [`crate::Evaluator::unpack_linear`]).
pub fn compact_query_transform(values: &[f64], period: usize, scale: f64) -> Result<Vec<f64>> {
    if !period.is_power_of_two() || period < 2 || values.len() > period {
        return Err(Error::TooManySlots { given: values.len(), max: period });
    }
    if let Some(&v) = values.iter().find(|v| !v.is_finite()) {
        return Err(Error::NotFinite(v));
    }
    let n = period;
    let half = n / 2;
    let target = |j: usize| values.get(j).copied().unwrap_or(0.0) * scale / 2.0;
    let four_n = 4 * n as u64;
    let mut z = vec![Complex64::new(0.0, 0.0); half];
    let mut r = 1u64; // 5^i mod 4n
    for (i, zi) in z.iter_mut().enumerate() {
        let angle = std::f64::consts::PI * r as f64 / (2 * n) as f64;
        let (a, b) = (angle.cos(), angle.sin());
        let (ta, tb) = (target(i), target(i + half));
        let u = (ta + tb) / 2.0;
        *zi = Complex64::new(u, ((1.0 + a) * u - ta) / b);
        r = r * 5 % four_n;
    }
    tables(n.trailing_zeros()).fft_special_inv(&mut z);
    let mut coeffs = vec![0f64; n];
    for (i, zi) in z.iter().enumerate() {
        coeffs[i] = zi.re;
        coeffs[i + half] = zi.im;
    }
    Ok(coeffs)
}

/// Encodes real or complex vectors of up to N/2 values into plaintexts, and back.
#[derive(Clone)]
pub struct Encoder {
    params: Parameters,
}

impl Encoder {
    /// An encoder for `params`. The FFT tables depend on N alone: built on first use
    /// and shared by every encoder of that degree.
    pub fn new(params: &Parameters) -> Self {
        Self { params: params.clone() }
    }

    /// Encodes reals (zero-padded to N/2 slots) at `level` and `scale`.
    pub fn encode(&self, values: &[f64], level: usize, scale: f64) -> Result<Plaintext> {
        let z: Vec<Complex64> = values.iter().map(|&v| Complex64::new(v, 0.0)).collect();
        self.encode_complex(&z, level, scale)
    }

    /// Encodes complex values (zero-padded to N/2 slots) at `level` and `scale`. Every
    /// coefficient (the inverse FFT of the values) times the scale must stay below 2^120.
    pub fn encode_complex(&self, values: &[Complex64], level: usize, scale: f64) -> Result<Plaintext> {
        let p = &self.params;
        let slots = p.slots();
        if values.len() > slots {
            return Err(Error::TooManySlots { given: values.len(), max: slots });
        }
        if level > p.max_level() {
            return Err(Error::LevelRaise { from: p.max_level(), to: level });
        }
        check_scale(scale)?;
        for v in values {
            if !v.re.is_finite() || !v.im.is_finite() {
                return Err(Error::NotFinite(if v.re.is_finite() { v.im } else { v.re }));
            }
        }
        let mut u = vec![Complex64::new(0.0, 0.0); slots];
        u[..values.len()].copy_from_slice(values);
        tables(p.log_n()).fft_special_inv(&mut u);
        let n = p.n();
        let mut coeffs = vec![0i128; n];
        let limit = 2f64.powi(120);
        for (i, z) in u.iter().enumerate() {
            for (k, part) in [(i, z.re), (i + slots, z.im)] {
                let v = (part * scale).round();
                if v.abs() >= limit {
                    return Err(Error::ValueTooLarge { value: part, log_scale: scale.log2() });
                }
                coeffs[k] = v as i128;
            }
        }
        let poly = self.lift(&coeffs, level);
        Plaintext::new(p, poly, scale)
    }

    /// Reduces signed integer coefficients into every limb up to `level`, in NTT form.
    pub(crate) fn lift(&self, coeffs: &[i128], level: usize) -> Poly {
        let ctx = self.params.ctx();
        let n = coeffs.len();
        let mut poly = Poly::zero(n, level + 1);
        for (i, m) in ctx.moduli[..=level].iter().enumerate() {
            for (o, &c) in poly.limb_mut(i).iter_mut().zip(coeffs) {
                let r = m.reduce_u128(c.unsigned_abs());
                *o = if c < 0 { m.neg(r) } else { r };
            }
        }
        poly.ntt(&ctx.ntt[..=level].iter().collect::<Vec<_>>());
        poly
    }

    /// Decodes into N/2 complex slots.
    pub fn decode_complex(&self, pt: &Plaintext) -> Result<Vec<Complex64>> {
        if !self.params.same(pt.params()) {
            return Err(Error::ParamsMismatch);
        }
        let ctx = self.params.ctx();
        let level = pt.level();
        let mut poly = pt.poly().clone();
        poly.intt(&ctx.ntt[..=level].iter().collect::<Vec<_>>());
        let coeffs = crt_to_f64(&self.params, &poly);
        let slots = self.params.slots();
        let inv = 1.0 / pt.scale();
        let mut u: Vec<Complex64> =
            (0..slots).map(|i| Complex64::new(coeffs[i] * inv, coeffs[i + slots] * inv)).collect();
        tables(self.params.log_n()).fft_special(&mut u);
        Ok(u)
    }

    /// Decodes the real parts of the N/2 slots.
    pub fn decode(&self, pt: &Plaintext) -> Result<Vec<f64>> {
        Ok(self.decode_complex(pt)?.into_iter().map(|z| z.re).collect())
    }
}

/// The real parts of the slots of a ring element of any degree n' (a power of two, at
/// most 2^16) given by its coefficients, divided by `scale`: n'/2 values. A compact
/// answer's phase (`rlwe::answer`) is decoded so, at its own degree.
pub fn decode_coefficients(coeffs: &[f64], scale: f64) -> Result<Vec<f64>> {
    let n = coeffs.len();
    if !n.is_power_of_two() || !(2..=1 << 16).contains(&n) {
        return Err(Error::Shape {
            what: "coefficients to decode",
            detail: format!("{n} is not a power of two in 2..=2^16"),
        });
    }
    check_scale(scale)?;
    let half = n / 2;
    let inv = 1.0 / scale;
    let mut u: Vec<Complex64> = (0..half).map(|i| Complex64::new(coeffs[i] * inv, coeffs[i + half] * inv)).collect();
    tables(n.trailing_zeros()).fft_special(&mut u);
    Ok(u.into_iter().map(|z| z.re).collect())
}

/// Centered lift of each coefficient (coefficient form, limbs q_0..q_l) to f64, by
/// Garner's mixed-radix reconstruction: exact digits, then one rounding to f64.
fn crt_to_f64(params: &Parameters, poly: &Poly) -> Vec<f64> {
    let ctx = params.ctx();
    let limbs = poly.limbs();
    let n = poly.n();
    let mods = &ctx.moduli[..limbs];
    if limbs == 1 {
        return poly.limb(0).iter().map(|&x| mods[0].center(x) as f64).collect();
    }
    // inv[i][j] = q_j^{-1} mod q_i for j < i, with its Shoup companion
    let inv: Vec<Vec<(u64, u64)>> = (0..limbs)
        .map(|i| {
            (0..i)
                .map(|j| {
                    let w = mods[i].inv(mods[j].value());
                    (w, mods[i].shoup(w))
                })
                .collect()
        })
        .collect();
    let qf: Vec<f64> = mods.iter().map(|m| m.value() as f64).collect();
    let mut digits = vec![0u64; limbs];
    (0..n)
        .map(|c| {
            for i in 0..limbs {
                let m = &mods[i];
                let mut t = poly.limb(i)[c];
                for j in 0..i {
                    // (t - d_j)·w = t·w - d_j·w; Shoup accepts a digit d_j ≥ q_i without a division.
                    let (w, wp) = inv[i][j];
                    t = m.sub(m.mul_shoup(t, w, wp), m.mul_shoup(digits[j], w, wp));
                }
                digits[i] = t;
            }
            // x/Q, to decide the sign of the centered representative.
            let mut frac = 0.0;
            for i in 0..limbs {
                frac = (digits[i] as f64 + frac) / qf[i];
            }
            let negative = frac >= 0.5;
            if negative {
                // Q - x in mixed radix: (Q - 1 - x) + 1, digit by digit.
                let mut carry = 1u64;
                for i in 0..limbs {
                    let q = mods[i].value();
                    let d = q - 1 - digits[i] + carry;
                    if d == q {
                        digits[i] = 0;
                        carry = 1;
                    } else {
                        digits[i] = d;
                        carry = 0;
                    }
                }
            }
            let mut v = 0.0;
            for i in (0..limbs).rev() {
                v = v * qf[i] + digits[i] as f64;
            }
            if negative {
                -v
            } else {
                v
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlwe::Parameters;

    fn rand_vec(n: usize, seed: u64) -> Vec<f64> {
        let mut x = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn round_trip_within_2_pow_minus_30_at_scale_2_pow_40() {
        let p = Parameters::builder().log_n(13).q_bits(&[60, 40, 40]).p_bits(&[60]).build().unwrap();
        let enc = Encoder::new(&p);
        let v = rand_vec(p.slots(), 3);
        for level in [0, 2] {
            let pt = enc.encode(&v, level, 2f64.powi(40)).unwrap();
            let back = enc.decode(&pt).unwrap();
            let err = v.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(err < 2f64.powi(-30), "level {level}: max error {err:e}");
        }
        let z: Vec<Complex64> = (0..p.slots()).map(|i| Complex64::new(i as f64 / 7.0, -(i as f64) / 3.0)).collect();
        let back = enc.decode_complex(&enc.encode_complex(&z, 1, 2f64.powi(40)).unwrap()).unwrap();
        let err = z.iter().zip(&back).map(|(a, b)| (a - b).norm() / a.norm().max(1.0)).fold(0.0, f64::max);
        assert!(err < 2f64.powi(-30), "complex round trip error {err:e}");
    }

    #[test]
    fn negative_values_decode_through_several_limbs() {
        let p = Parameters::builder().log_n(12).q_bits(&[36, 30]).build().unwrap();
        let enc = Encoder::new(&p);
        let v: Vec<f64> = (0..p.slots()).map(|i| -1000.0 + i as f64 * 0.5).collect();
        let back = enc.decode(&enc.encode(&v, 1, 2f64.powi(20)).unwrap()).unwrap();
        for (a, b) in v.iter().zip(&back) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let p = Parameters::builder().log_n(12).q_bits(&[36, 30]).build().unwrap();
        let enc = Encoder::new(&p);
        assert!(matches!(enc.encode(&vec![0.0; p.slots() + 1], 0, 1e6), Err(Error::TooManySlots { .. })));
        assert!(matches!(enc.encode(&[f64::NAN], 0, 1e6), Err(Error::NotFinite(_))));
        assert!(matches!(enc.encode(&[1e30], 0, 2f64.powi(100)), Err(Error::ValueTooLarge { .. })));
        assert!(enc.encode(&[1.0], 5, 1e6).is_err());
    }
}
