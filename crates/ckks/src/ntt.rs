//! Negacyclic number-theoretic transform over Z_q[X]/(X^N + 1).
//!
//! Forward: Cooley–Tukey, natural order in, bit-reversed order out; inverse:
//! Gentleman–Sande back to natural order (Longa–Naehrig layout). Butterflies are
//! Harvey's lazy ones with Shoup constants: values stay below 4q between layers,
//! so each butterfly costs one high multiply and no division. Where the CPU has
//! AVX-512 IFMA and q < 2^50, the 52-bit multiplier does eight butterflies at once.

use crate::arith::{bit_reverse, primitive_root_of_unity, Modulus};

/// Precomputed twiddles for one prime and one ring degree.
#[derive(Clone, Debug)]
pub struct NttTable {
    pub(crate) m: Modulus,
    pub(crate) n: usize,
    pub(crate) log_n: u32,
    /// ψ^{brev(i)}, ψ a primitive 2N-th root of unity, and its Shoup companions.
    pub(crate) fwd: Vec<u64>,
    pub(crate) fwd_shoup: Vec<u64>,
    /// ψ^{-brev(i)}, with Shoup companions.
    pub(crate) inv: Vec<u64>,
    pub(crate) inv_shoup: Vec<u64>,
    pub(crate) n_inv: u64,
    pub(crate) n_inv_shoup: u64,
    /// inv[1] / N: the inverse's last twiddle with the final scaling folded in.
    pub(crate) last_inv: u64,
    pub(crate) last_inv_shoup: u64,
    /// the chosen ψ
    pub(crate) psi: u64,
    #[cfg(target_arch = "x86_64")]
    simd: Option<crate::ntt_simd::SimdTable>,
    /// The floating-point transform, where AVX-512 does not serve and q < 2^50.
    #[cfg(target_arch = "x86_64")]
    fma: Option<crate::ntt_fma::FmaTable>,
    /// Whether the integer AVX2 transform serves this table (neither of the above, AVX2 present).
    #[cfg(target_arch = "x86_64")]
    pub(crate) avx2: bool,
}

impl NttTable {
    /// `q` must be a prime ≡ 1 (mod 2N).
    pub fn new(m: Modulus, n: usize) -> Option<Self> {
        let log_n = n.trailing_zeros();
        let psi = primitive_root_of_unity(&m, 2 * n as u64)?;
        // Take the smallest primitive root among the odd powers so the table is canonical.
        let psi2 = m.mul(psi, psi);
        let mut best = psi;
        let mut cur = psi;
        for _ in 0..n {
            if cur < best {
                best = cur;
            }
            cur = m.mul(cur, psi2);
        }
        let psi = best;
        let psi_inv = m.inv(psi);
        let mut fwd = vec![0u64; n];
        let mut inv = vec![0u64; n];
        let mut p = 1u64;
        let mut pi = 1u64;
        for i in 0..n {
            fwd[bit_reverse(i, log_n)] = p;
            inv[bit_reverse(i, log_n)] = pi;
            p = m.mul(p, psi);
            pi = m.mul(pi, psi_inv);
        }
        let fwd_shoup = fwd.iter().map(|&w| m.shoup(w)).collect();
        let inv_shoup = inv.iter().map(|&w| m.shoup(w)).collect();
        let n_inv = m.inv(n as u64);
        #[cfg(target_arch = "x86_64")]
        let simd = crate::ntt_simd::SimdTable::new(&m, &fwd, &inv, n_inv);
        let last_inv = m.mul(inv[1], n_inv);
        #[cfg(target_arch = "x86_64")]
        let fma = if simd.is_none() { crate::ntt_fma::FmaTable::new(&m, &fwd, &inv, n_inv, last_inv) } else { None };
        #[cfg(target_arch = "x86_64")]
        let avx2 = simd.is_none() && fma.is_none() && crate::ntt_avx2::usable(m.value(), n);
        Some(Self {
            m,
            n,
            log_n,
            fwd,
            fwd_shoup,
            inv,
            inv_shoup,
            n_inv,
            n_inv_shoup: m.shoup(n_inv),
            last_inv,
            last_inv_shoup: m.shoup(last_inv),
            psi,
            #[cfg(target_arch = "x86_64")]
            simd,
            #[cfg(target_arch = "x86_64")]
            fma,
            #[cfg(target_arch = "x86_64")]
            avx2,
        })
    }

    /// The floating-point transform, where it serves this prime (see `ntt_fma`).
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn fma(&self) -> Option<&crate::ntt_fma::FmaTable> {
        self.fma.as_ref()
    }

    pub fn modulus(&self) -> &Modulus {
        &self.m
    }

    /// In-place forward transform; input and output in [0, q).
    pub fn forward(&self, a: &mut [u64]) {
        debug_assert_eq!(a.len(), self.n);
        #[cfg(target_arch = "x86_64")]
        if let Some(t) = &self.simd {
            t.forward(a);
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(t) = &self.fma {
            t.forward(a);
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            crate::ntt_avx2::forward(self, a);
            return;
        }
        self.forward_scalar(a)
    }

    /// In-place inverse transform; input and output in [0, q).
    pub fn inverse(&self, a: &mut [u64]) {
        debug_assert_eq!(a.len(), self.n);
        #[cfg(target_arch = "x86_64")]
        if let Some(t) = &self.simd {
            t.inverse(a);
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(t) = &self.fma {
            t.inverse(a);
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            crate::ntt_avx2::inverse(self, a);
            return;
        }
        self.inverse_scalar(a)
    }

    /// The inverse transform of `src` into `dst`, both in [0, q): saves the copy of an
    /// in-place transform where the input must be kept (the floating-point transform reads
    /// `src` in its first pass).
    pub fn inverse_into(&self, src: &[u64], dst: &mut [u64]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(t) = &self.fma {
            t.inverse_into(src, dst);
            return;
        }
        dst.copy_from_slice(src);
        self.inverse(dst);
    }

    /// The portable transform, always available (and the reference for the SIMD one).
    pub fn forward_scalar(&self, a: &mut [u64]) {
        let q = self.m.value();
        let two_q = 2 * q;
        let n = self.n;
        let mut t = n;
        let mut m = 1;
        while m < n {
            t >>= 1;
            for i in 0..m {
                let w = self.fwd[m + i];
                let ws = self.fwd_shoup[m + i];
                let j1 = 2 * i * t;
                let (lo, hi) = a[j1..j1 + 2 * t].split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    let mut u = *x;
                    if u >= two_q {
                        u -= two_q;
                    }
                    let v = self.m.mul_shoup_lazy(*y, w, ws);
                    *x = u + v;
                    *y = u + two_q - v;
                }
            }
            m <<= 1;
        }
        for x in a.iter_mut() {
            let mut v = *x;
            if v >= two_q {
                v -= two_q;
            }
            if v >= q {
                v -= q;
            }
            *x = v;
        }
    }

    pub fn inverse_scalar(&self, a: &mut [u64]) {
        let q = self.m.value();
        let two_q = 2 * q;
        let n = self.n;
        let mut t = 1;
        let mut m = n;
        while m > 1 {
            let h = m >> 1;
            for i in 0..h {
                let w = self.inv[h + i];
                let ws = self.inv_shoup[h + i];
                let j1 = 2 * i * t;
                let (lo, hi) = a[j1..j1 + 2 * t].split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    let u = *x;
                    let v = *y;
                    let mut s = u + v;
                    if s >= two_q {
                        s -= two_q;
                    }
                    *x = s;
                    *y = self.m.mul_shoup_lazy(u + two_q - v, w, ws);
                }
            }
            t <<= 1;
            m = h;
        }
        for x in a.iter_mut() {
            let v = self.m.mul_shoup_lazy(*x, self.n_inv, self.n_inv_shoup);
            *x = if v >= q { v - q } else { v };
        }
    }

    pub fn log_n(&self) -> u32 {
        self.log_n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primes::ntt_primes;

    fn naive_negacyclic(a: &[u64], b: &[u64], m: &Modulus) -> Vec<u64> {
        let n = a.len();
        let mut c = vec![0u64; n];
        for i in 0..n {
            for j in 0..n {
                let p = m.mul(a[i], b[j]);
                if i + j < n {
                    c[i + j] = m.add(c[i + j], p);
                } else {
                    c[i + j - n] = m.sub(c[i + j - n], p);
                }
            }
        }
        c
    }

    #[test]
    fn ntt_multiplies_negacyclically_and_inverts() {
        for bits in [30u32, 40, 49, 55, 60] {
            let n = 64;
            let q = ntt_primes(bits, n, 1, &[]).unwrap()[0];
            let m = Modulus::new(q);
            let t = NttTable::new(m, n).unwrap();
            let a: Vec<u64> = (0..n as u64).map(|i| (i * 7919 + 13) % q).collect();
            let b: Vec<u64> = (0..n as u64).map(|i| (i * i * 104729 + 5) % q).collect();
            let want = naive_negacyclic(&a, &b, &m);
            for scalar in [true, false] {
                let (mut fa, mut fb) = (a.clone(), b.clone());
                if scalar {
                    t.forward_scalar(&mut fa);
                    t.forward_scalar(&mut fb);
                } else {
                    t.forward(&mut fa);
                    t.forward(&mut fb);
                }
                let mut fc: Vec<u64> = fa.iter().zip(&fb).map(|(&x, &y)| m.mul(x, y)).collect();
                if scalar {
                    t.inverse_scalar(&mut fc);
                } else {
                    t.inverse(&mut fc);
                }
                assert_eq!(fc, want, "bits {bits} scalar {scalar}");
            }
        }
    }

    #[test]
    fn simd_and_scalar_agree_at_full_size() {
        for bits in [36u32, 40, 49, 50, 60] {
            let n = 1 << 13;
            let q = ntt_primes(bits, n, 1, &[]).unwrap()[0];
            let t = NttTable::new(Modulus::new(q), n).unwrap();
            let a: Vec<u64> = (0..n as u64).map(|i| (i.wrapping_mul(0x9e3779b97f4a7c15)) % q).collect();
            let (mut x, mut y) = (a.clone(), a.clone());
            t.forward(&mut x);
            t.forward_scalar(&mut y);
            assert_eq!(x, y);
            t.inverse(&mut x);
            t.inverse_scalar(&mut y);
            assert_eq!(x, a);
            assert_eq!(y, a);
        }
    }

    /// Every size from 16 up, primes of every width up to 61 bits, random inputs and
    /// inputs at the edges (0, 1, q − 1): the dispatched transform (AVX2 or AVX-512 where
    /// present) must equal the scalar one exactly and invert it.
    #[test]
    fn dispatched_transform_matches_scalar_on_edges_and_random() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for log_n in 4..=14u32 {
            let n = 1usize << log_n;
            for bits in [30u32, 40, 46, 47, 48, 50, 52, 59, 60, 61] {
                let Ok(qs) = ntt_primes(bits, n, 1, &[]) else { continue };
                let q = qs[0];
                let t = NttTable::new(Modulus::new(q), n).unwrap();
                let inputs: [Vec<u64>; 4] = [
                    (0..n).map(|_| next() % q).collect(),
                    (0..n).map(|i| [0, 1, q - 1, q - 2][i % 4]).collect(),
                    vec![q - 1; n],
                    // Where centering turns: q/2 stays, q/2 + 1 becomes negative.
                    (0..n).map(|i| [q / 2, q / 2 + 1, q / 2 - 1, q - 1][i % 4]).collect(),
                ];
                for a in inputs {
                    let (mut x, mut y) = (a.clone(), a.clone());
                    t.forward(&mut x);
                    t.forward_scalar(&mut y);
                    assert_eq!(x, y, "forward n {n} bits {bits}");
                    let (mut u, mut v) = (a.clone(), a.clone());
                    t.inverse(&mut u);
                    t.inverse_scalar(&mut v);
                    assert_eq!(u, v, "inverse n {n} bits {bits}");
                    let mut z = vec![u64::MAX; n];
                    t.inverse_into(&a, &mut z);
                    assert_eq!(z, v, "inverse_into n {n} bits {bits}");
                    // The transform on doubles: centered outputs congruent to the words'.
                    #[cfg(target_arch = "x86_64")]
                    if let Some(f) = t.fma() {
                        // Centered inputs (negative half of them), as the conversion leaves them.
                        let c = |x: u64| if x > q / 2 { x as f64 - q as f64 } else { x as f64 };
                        let mut d: Vec<u64> = a.iter().map(|&x| c(x).to_bits()).collect();
                        f.forward_f64(&mut d);
                        let back: Vec<u64> = d
                            .iter()
                            .map(|&w| {
                                let x = f64::from_bits(w);
                                assert!(x.abs() <= (q / 2 + 1) as f64 && x.fract() == 0.0);
                                (x as i64).rem_euclid(q as i64) as u64
                            })
                            .collect();
                        assert_eq!(back, y, "forward_f64 n {n} bits {bits}");
                        // Straight from words modulo b, centered on the way in: b = q gives the
                        // same doubles; so does a smaller b against its centered copy.
                        let mut e = vec![u64::MAX; n];
                        f.forward_f64_centered(&a, q, &mut e);
                        assert_eq!(e, d, "forward_f64_centered n {n} bits {bits}");
                        // From a smaller prime b, and from one just above q (b/2 < q < b),
                        // whose centered values reach ±q/2: at b/2 and b/2 + 1 too.
                        let above = ntt_primes(bits, 16, 8, &[q]).unwrap().into_iter().find(|&b| b > q && b < 2 * q);
                        for b in [ntt_primes(29, 16, 1, &[]).unwrap()[0]].into_iter().chain(above) {
                            if b >= crate::fma::MAX_Q {
                                continue;
                            }
                            let mut src: Vec<u64> = a.iter().map(|&x| x % b).collect();
                            src[..4].copy_from_slice(&[b / 2, b / 2 + 1, 0, b - 1]);
                            let cb = |x: u64| if x > b / 2 { x as f64 - b as f64 } else { x as f64 };
                            let mut want: Vec<u64> = src.iter().map(|&x| cb(x).to_bits()).collect();
                            f.forward_f64(&mut want);
                            f.forward_f64_centered(&src, b, &mut e);
                            assert_eq!(e, want, "forward_f64_centered from b = {b}, n {n} bits {bits}");
                        }
                    }
                    t.inverse(&mut x);
                    assert_eq!(x, a, "round trip n {n} bits {bits}");
                }
            }
        }
    }
}
