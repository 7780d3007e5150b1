//! Products in Z_q[X]/(X^n + 1) by a ternary polynomial, for q a power of two (at most
//! 2^64): LWE re-randomisation (`lwe`) and the decryption of compact answers (`rlwe::answer`)
//! need them. There is no NTT modulo a power of two; but every
//! coefficient of a·u is an integer below n·2^64 in magnitude, so the product is computed
//! *exactly* with two 50-bit NTT primes (their product, ~2^100, holds it for any n up to
//! 2^17) and brought back by CRT: a few transforms of n words instead of the schoolbook's
//! (2/3)·n² additions, which were 40 % of a linear model's answer. The transform does not
//! branch on u (the schoolbook skipped zeros and chose add or subtract by sign).

use std::sync::OnceLock;

use crate::{Modulus, NttTable};

/// Two NTT primes of 50 bits for degree n and what CRT needs.
struct Crt {
    tables: [NttTable; 2],
    /// p1⁻¹ mod p2
    p1_inv: u64,
}

impl Crt {
    fn for_degree(n: usize) -> &'static Crt {
        static CACHE: [OnceLock<Crt>; 18] = [const { OnceLock::new() }; 18];
        let log_n = n.trailing_zeros() as usize;
        assert!(n.is_power_of_two() && log_n < CACHE.len(), "ring degree {n}");
        CACHE[log_n].get_or_init(|| {
            let p = crate::primes::ntt_primes(50, n, 2, &[]).expect("50-bit NTT primes exist for n ≤ 2^17");
            let table = |q: u64| NttTable::new(Modulus::new(q), n).expect("an NTT prime");
            let p1_inv = Modulus::new(p[1]).inv(p[0] % p[1]);
            Crt { tables: [table(p[0]), table(p[1])], p1_inv }
        })
    }
}

/// a·u in Z_{2^64}[X]/(X^n + 1) (callers mask to q), u ternary, n a power of two ≤ 2^17.
pub fn mul_ternary(a: &[u64], u: &[i64]) -> Vec<u64> {
    let n = a.len();
    debug_assert_eq!(u.len(), n);
    debug_assert!(u.iter().all(|v| v.abs() <= 1));
    let crt = Crt::for_degree(n);
    let residues = |t: &NttTable| -> Vec<u64> {
        let m = t.modulus();
        let mut x: Vec<u64> = a.iter().map(|&v| m.reduce(v)).collect();
        let mut y: Vec<u64> = u.iter().map(|&v| if v < 0 { m.value() - 1 } else { v as u64 }).collect();
        t.forward(&mut x);
        t.forward(&mut y);
        for (xi, &yi) in x.iter_mut().zip(&y) {
            *xi = m.mul(*xi, yi);
        }
        zeroize::Zeroize::zeroize(&mut y);
        t.inverse(&mut x);
        x
    };
    let (c1, c2) = (residues(&crt.tables[0]), residues(&crt.tables[1]));
    let (m1, m2) = (crt.tables[0].modulus(), crt.tables[1].modulus());
    let (p1, p2) = (m1.value() as u128, m2.value() as u128);
    let half = p1 * p2 / 2;
    c1.iter()
        .zip(&c2)
        .map(|(&r1, &r2)| {
            // c = r1 + p1·((r2 − r1)·p1⁻¹ mod p2) in [0, p1·p2), then centered.
            let t = m2.mul(m2.sub(r2, m2.reduce(r1)), crt.p1_inv);
            let c = r1 as u128 + p1 * t as u128;
            if c > half {
                (c as u64).wrapping_sub((p1 * p2) as u64)
            } else {
                c as u64
            }
        })
        .collect()
}

/// Coefficient 0 of a·u (the only one of the b-part an extracted sample needs): n terms.
pub fn constant_of_product(a: &[u64], u: &[i64]) -> u64 {
    let n = a.len();
    let mut acc = a[0].wrapping_mul(u[0] as u64);
    for k in 1..n {
        // X^k·X^(n−k) = X^n = −1
        acc = acc.wrapping_sub(a[n - k].wrapping_mul(u[k] as u64));
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: Σ a_i u_k X^(i+k), X^n = −1.
    fn naive(a: &[u64], u: &[i64]) -> Vec<u64> {
        let n = a.len();
        let mut out = vec![0u64; n];
        for i in 0..n {
            for k in 0..n {
                let t = a[i].wrapping_mul(u[k] as u64);
                if i + k < n {
                    out[i + k] = out[i + k].wrapping_add(t);
                } else {
                    out[i + k - n] = out[i + k - n].wrapping_sub(t);
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition() {
        let n = 16;
        let a: Vec<u64> = (0..n as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
        let u: Vec<i64> = (0..n as i64).map(|i| (i * 7 % 3) - 1).collect();
        let want = naive(&a, &u);
        assert_eq!(mul_ternary(&a, &u), want);
        assert_eq!(constant_of_product(&a, &u), want[0]);
    }

    /// At the real degree with full 64-bit words (coefficients up to n·2^64 before
    /// wrapping, where a CRT with too small a product, or a wrong centering, goes wrong).
    #[test]
    fn matches_the_definition_at_full_size() {
        let n = 2048;
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..3 {
            let a: Vec<u64> = (0..n).map(|_| if round == 0 { u64::MAX } else { next() }).collect();
            let u: Vec<i64> = (0..n).map(|_| if round == 0 { 1 } else { (next() % 3) as i64 - 1 }).collect();
            assert_eq!(mul_ternary(&a, &u), naive(&a, &u), "round {round}");
        }
    }
}
