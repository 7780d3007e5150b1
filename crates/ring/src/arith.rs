//! Word-sized modular arithmetic for NTT-friendly primes below 2^62.
//!
//! Two reductions cover every use: Barrett (variable × variable, and 128-bit
//! accumulators) and Shoup (variable × a constant known in advance, such as a
//! twiddle factor), the latter being what makes Harvey's lazy butterflies cheap.

/// A prime modulus with its precomputed reduction constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modulus {
    q: u64,
    /// bit length of q
    bits: u32,
    /// floor(2^(bits+62) / q) ≤ 2^63, for Barrett on products below q² (`reduce_product`).
    mu: u64,
    /// floor(2^128 / q) split in two words, for reducing any u128.
    ratio_lo: u64,
    ratio_hi: u64,
}

impl Modulus {
    /// `q` must be odd and below 2^62 (the lazy NTT keeps values below 4q).
    pub fn new(q: u64) -> Self {
        assert!(q > 2 && q < (1 << 62) && q & 1 == 1, "modulus out of range");
        let bits = 64 - q.leading_zeros();
        // q ≥ 2^(bits-1), so mu ≤ 2^63: one word, and the quotient is one high product.
        let mu = ((1u128 << (bits + 62)) / q as u128) as u64;
        // floor(2^128 / q) = floor((2^128 - 1) / q) because q is odd (never divides 2^128).
        let ratio = u128::MAX / q as u128;
        Self { q, bits, mu, ratio_lo: ratio as u64, ratio_hi: (ratio >> 64) as u64 }
    }

    #[inline(always)]
    /// The prime q.
    pub fn value(&self) -> u64 {
        self.q
    }

    #[inline(always)]
    /// Bits of q: what one residue takes on the wire.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// ⌊2^(bits+62) / q⌋, the Barrett constant of `reduce_product` (for vector twins).
    pub(crate) fn barrett_mu(&self) -> u64 {
        self.mu
    }

    /// a + b mod q for a, b < q (branch-free: the smaller of s and s - q wins).
    #[inline(always)]
    pub fn add(&self, a: u64, b: u64) -> u64 {
        let s = a + b;
        s.min(s.wrapping_sub(self.q))
    }

    /// a - b mod q for a, b < q (branch-free).
    #[inline(always)]
    pub fn sub(&self, a: u64, b: u64) -> u64 {
        let d = a.wrapping_sub(b);
        d.min(d.wrapping_add(self.q))
    }

    #[inline(always)]
    /// −a mod q, for a in [0, q).
    pub fn neg(&self, a: u64) -> u64 {
        if a == 0 {
            0
        } else {
            self.q - a
        }
    }

    /// a·b mod q for a, b < q.
    #[inline(always)]
    pub fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce_product(a as u128 * b as u128)
    }

    /// x mod q for x < q² (a single product).
    ///
    /// Barrett with t = ⌊x / 2^(bits−2)⌋ < 2^64 and qhat = ⌊t·mu / 2^64⌋: the estimate is
    /// at most 2 below ⌊x/q⌋ (the two truncations cost below 1/2 and 1), so the remainder
    /// is below 3q < 2^64 and two branch-free conditional subtractions finish it.
    /// No variable 128-bit shifts and no branches: data-dependent branches here were
    /// mispredicted about half the time.
    #[inline(always)]
    pub fn reduce_product(&self, x: u128) -> u64 {
        let (lo, hi) = (x as u64, (x >> 64) as u64);
        let s = self.bits - 2; // 0 ≤ s ≤ 59
        let t = ((hi << 1) << (63 - s)) | (lo >> s);
        let qhat = ((t as u128 * self.mu as u128) >> 64) as u64;
        let r = lo.wrapping_sub(qhat.wrapping_mul(self.q));
        let r = r.min(r.wrapping_sub(self.q));
        r.min(r.wrapping_sub(self.q))
    }

    /// x mod q for x < 2q² (a sum of two products). The same Barrett as
    /// `reduce_product`: t = ⌊x / 2^(bits−2)⌋ < 2^(bits+3) still fits a word for
    /// bits ≤ 61 and the estimate is still at most 2 low; wider primes take `reduce_u128`.
    #[inline(always)]
    pub fn reduce_product_sum(&self, x: u128) -> u64 {
        if self.bits <= 61 {
            self.reduce_product(x)
        } else {
            self.reduce_u128(x)
        }
    }

    /// x mod q for any x < 2^128 (sums of many products).
    #[inline(always)]
    pub fn reduce_u128(&self, x: u128) -> u64 {
        let xlo = x as u64;
        let xhi = (x >> 64) as u64;
        let lo_lo = ((xlo as u128 * self.ratio_lo as u128) >> 64) as u64;
        let hi_lo = xhi as u128 * self.ratio_lo as u128;
        let lo_hi = xlo as u128 * self.ratio_hi as u128;
        // Only qhat mod 2^64 matters: the true remainder is below 2^64.
        let mid = hi_lo.wrapping_add(lo_hi).wrapping_add(lo_lo as u128);
        // Carries out of `mid` weigh 2^128 / 2^64 = 2^64 ≡ 0 (mod 2^64), so wrapping is exact here.
        let qhat = xhi.wrapping_mul(self.ratio_hi).wrapping_add((mid >> 64) as u64);
        let mut r = xlo.wrapping_sub(qhat.wrapping_mul(self.q));
        while r >= self.q {
            r -= self.q;
        }
        r
    }

    /// Reduces any u64.
    #[inline(always)]
    pub fn reduce(&self, a: u64) -> u64 {
        if a < self.q {
            a
        } else {
            a % self.q
        }
    }

    /// Reduces a signed integer into [0, q).
    #[inline(always)]
    pub fn reduce_i64(&self, a: i64) -> u64 {
        let r = (a as i128).rem_euclid(self.q as i128);
        r as u64
    }

    /// Reduces a signed 128-bit integer into [0, q).
    #[inline]
    pub fn reduce_i128(&self, a: i128) -> u64 {
        a.rem_euclid(self.q as i128) as u64
    }

    /// base^exp mod q.
    pub fn pow(&self, mut base: u64, mut exp: u64) -> u64 {
        let mut acc = 1u64;
        base = self.reduce(base);
        while exp > 0 {
            if exp & 1 == 1 {
                acc = self.mul(acc, base);
            }
            base = self.mul(base, base);
            exp >>= 1;
        }
        acc
    }

    /// Inverse modulo the prime q (Fermat). `a` must be non-zero mod q.
    pub fn inv(&self, a: u64) -> u64 {
        let a = self.reduce(a);
        debug_assert!(a != 0, "zero has no inverse");
        self.pow(a, self.q - 2)
    }

    /// The Shoup companion of a constant w < q: floor(w · 2^64 / q).
    #[inline(always)]
    pub fn shoup(&self, w: u64) -> u64 {
        (((w as u128) << 64) / self.q as u128) as u64
    }

    /// a·w mod q, result in [0, 2q), for any a < 2^64 and the constant w with its Shoup companion.
    #[inline(always)]
    pub fn mul_shoup_lazy(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        let qhat = ((a as u128 * w_shoup as u128) >> 64) as u64;
        a.wrapping_mul(w).wrapping_sub(qhat.wrapping_mul(self.q))
    }

    /// a·w mod q, fully reduced.
    #[inline(always)]
    pub fn mul_shoup(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        let r = self.mul_shoup_lazy(a, w, w_shoup);
        if r >= self.q {
            r - self.q
        } else {
            r
        }
    }

    /// Centered representative of a in (-q/2, q/2].
    #[inline(always)]
    pub fn center(&self, a: u64) -> i64 {
        if a > self.q / 2 {
            a as i64 - self.q as i64
        } else {
            a as i64
        }
    }
}

/// Deterministic Miller–Rabin for all 64-bit integers.
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    for p in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
        if n.is_multiple_of(p) {
            return n == p;
        }
    }
    let mut d = n - 1;
    let mut s = 0;
    while d.is_multiple_of(2) {
        d /= 2;
        s += 1;
    }
    let mulmod = |a: u64, b: u64| ((a as u128 * b as u128) % n as u128) as u64;
    let powmod = |mut b: u64, mut e: u64| {
        let mut r = 1u64;
        while e > 0 {
            if e & 1 == 1 {
                r = mulmod(r, b);
            }
            b = mulmod(b, b);
            e >>= 1;
        }
        r
    };
    'witness: for a in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
        let mut x = powmod(a, d);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mulmod(x, x);
            if x == n - 1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

/// A primitive `order`-th root of unity modulo the prime q (order a power of two dividing q-1).
pub fn primitive_root_of_unity(m: &Modulus, order: u64) -> Option<u64> {
    let q = m.value();
    if !(q - 1).is_multiple_of(order) {
        return None;
    }
    let cofactor = (q - 1) / order;
    // A candidate g^cofactor has order dividing `order`; it is primitive iff its order/2 power is -1.
    (2..q).take(10_000).find_map(|g| {
        let w = m.pow(g, cofactor);
        (m.pow(w, order / 2) == q - 1).then_some(w)
    })
}

/// Bit-reverses the low `bits` bits of i.
#[inline(always)]
pub fn bit_reverse(i: usize, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        i.reverse_bits() >> (usize::BITS - bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn miller_rabin_agrees_with_trial_division() {
        let slow = |n: u64| n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| !n.is_multiple_of(d));
        for n in 0..5000u64 {
            assert_eq!(is_prime(n), slow(n), "n = {n}");
        }
        assert!(is_prime((1u64 << 61) - 1));
        assert!(!is_prime((1u64 << 61) + 1));
    }

    #[test]
    fn reductions_agree_with_u128_remainder() {
        let mut x = 0x1234_5678_9abc_def1u64;
        for q in [65537u64, 1099511922689, 1152921504606584833, (1 << 61) - 1] {
            let m = Modulus::new(q);
            for _ in 0..2000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let a = x % q;
                let b = x.rotate_left(29) % q;
                assert_eq!(m.mul(a, b), ((a as u128 * b as u128) % q as u128) as u64);
                let (c, d) = (q - 1 - a, q - 1 - b);
                let sum = a as u128 * b as u128 + c as u128 * d as u128;
                assert_eq!(m.reduce_product_sum(sum), (sum % q as u128) as u64);
                let top = 2 * (q as u128 - 1) * (q as u128 - 1);
                assert_eq!(m.reduce_product_sum(top), (top % q as u128) as u64);
                let big = ((x as u128) << 64) | x.rotate_left(7) as u128;
                assert_eq!(m.reduce_u128(big), (big % q as u128) as u64);
                let ws = m.shoup(b);
                assert_eq!(m.mul_shoup(a, b, ws), m.mul(a, b));
                assert_eq!(m.mul(m.inv(a.max(1)), a.max(1)), 1);
            }
        }
    }
}
