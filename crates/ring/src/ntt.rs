//! Negacyclic number-theoretic transform over Z_q[X]/(X^N + 1).
//!
//! Forward: Cooley–Tukey, natural order in, bit-reversed order out; inverse:
//! Gentleman–Sande back to natural order (Longa–Naehrig layout). Butterflies are
//! Harvey's lazy ones with Shoup constants: values stay below 4q between layers,
//! so each butterfly costs one high multiply and no division. Where the CPU has
//! AVX-512 IFMA and q < 2^50, the 52-bit multiplier does eight butterflies at once.

use crate::arith::Modulus;
pub use crate::twiddles::Twiddles;

/// Which transform serves a table: chosen once, when the table is built, from the
/// process's instruction set ([`crate::isa`]) and the prime's size.
// One table per prime, built once: the variants' sizes do not matter, one pointer
// chase per transform would.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Backend {
    Scalar,
    /// AVX-512 (IFMA below 2^50, an emulated 64-bit high product above).
    #[cfg(target_arch = "x86_64")]
    Avx512(crate::x86_64::avx512::transform::SimdTable),
    /// Double precision on AVX2 + FMA, for primes below 2^50 where AVX-512 does not serve.
    #[cfg(target_arch = "x86_64")]
    Fma(crate::x86_64::fma::transform::FmaTable),
    /// The integer AVX2 transform.
    #[cfg(target_arch = "x86_64")]
    Avx2(crate::isa::Avx2),
}

/// Precomputed twiddles for one prime and one ring degree, and the transform that serves them.
#[derive(Clone, Debug)]
pub struct NttTable {
    tw: Twiddles,
    backend: Backend,
}

impl std::ops::Deref for NttTable {
    type Target = Twiddles;
    fn deref(&self) -> &Twiddles {
        &self.tw
    }
}

impl NttTable {
    /// `q` must be a prime ≡ 1 (mod 2N); None otherwise.
    pub fn new(m: Modulus, n: usize) -> Option<Self> {
        let tw = Twiddles::new(m, n)?;
        let backend = Self::backend(&tw);
        Some(Self { tw, backend })
    }

    /// The fastest transform for these twiddles on this CPU: AVX-512 first, then the
    /// floating-point one (q < 2^50), then integer AVX2 — which also serves AVX-512 CPUs
    /// without IFMA where the AVX-512 table declines — then the portable one.
    fn backend(tw: &Twiddles) -> Backend {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::x86_64::{avx2, avx512, fma};
            if let Some(t) = avx512::transform::SimdTable::new(&tw.m, &tw.fwd, &tw.inv, tw.n_inv) {
                return Backend::Avx512(t);
            }
            if let Some(t) = fma::transform::FmaTable::new(&tw.m, &tw.fwd, &tw.inv, tw.n_inv, tw.last_inv) {
                return Backend::Fma(t);
            }
            if let Some(tok) = crate::isa::Avx2::get().filter(|_| avx2::transform::usable(tw.m.value(), tw.n)) {
                return Backend::Avx2(tok);
            }
        }
        let _ = tw;
        Backend::Scalar
    }

    /// The floating-point transform, where it serves this prime (see `x86_64::fma::ntt`).
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn fma(&self) -> Option<&crate::x86_64::fma::transform::FmaTable> {
        match &self.backend {
            Backend::Fma(t) => Some(t),
            _ => None,
        }
    }

    /// Whether this prime's transform works on centered doubles: the key-switching
    /// kernels then keep its limbs as doubles from one kernel to the next (no word round
    /// trips). Callers pass such limbs with their `f64` flags set (see the `kernels` module).
    pub fn carries_f64(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self.fma().is_some()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// The forward transform of a key-switching limb, left in the representation the
    /// kernels read next: centered doubles where [`carries_f64`](Self::carries_f64), else
    /// words in [0, q).
    pub fn forward_for_kernels(&self, a: &mut [u64]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(f) = self.fma() {
            f.forward_f64(a);
            return;
        }
        self.forward(a)
    }

    /// Whether [`forward_centered_from`](Self::forward_centered_from) serves residues
    /// modulo `b`: this prime carries doubles, and a centered residue (|x| ≤ b/2) is exact
    /// as a double and already below q.
    pub fn takes_centered_from(&self, b: u64) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self.carries_f64() && b < crate::x86_64::fma::MAX_Q && b / 2 < self.m.value()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = b;
            false
        }
    }

    /// The forward transform (as doubles, see `forward_for_kernels`) of residues `src`
    /// modulo another prime `b`, taken as their centered values: a one-prime digit raised
    /// to this prime with no conversion and no copy. Panics unless
    /// [`takes_centered_from`](Self::takes_centered_from)`(b)`.
    pub fn forward_centered_from(&self, src: &[u64], b: u64, dst: &mut [u64]) {
        assert!(self.takes_centered_from(b), "forward_centered_from: this prime does not take residues modulo {b}");
        #[cfg(target_arch = "x86_64")]
        if let Some(f) = self.fma() {
            f.forward_f64_centered(src, b, dst);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (src, dst);
    }

    /// The prime.
    pub fn modulus(&self) -> &Modulus {
        &self.m
    }

    /// The chosen primitive 2N-th root of unity ψ (the smallest among the candidates).
    pub fn psi(&self) -> u64 {
        self.psi
    }

    /// In-place forward transform; input and output in [0, q).
    pub fn forward(&self, a: &mut [u64]) {
        debug_assert_eq!(a.len(), self.n);
        match &self.backend {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512(t) => t.forward(a),
            #[cfg(target_arch = "x86_64")]
            Backend::Fma(t) => t.forward(a),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2(tok) => crate::x86_64::avx2::transform::forward(*tok, &self.tw, a),
            Backend::Scalar => self.forward_scalar(a),
        }
    }

    /// In-place inverse transform; input and output in [0, q).
    pub fn inverse(&self, a: &mut [u64]) {
        debug_assert_eq!(a.len(), self.n);
        match &self.backend {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512(t) => t.inverse(a),
            #[cfg(target_arch = "x86_64")]
            Backend::Fma(t) => t.inverse(a),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2(tok) => crate::x86_64::avx2::transform::inverse(*tok, &self.tw, a),
            Backend::Scalar => self.inverse_scalar(a),
        }
    }

    /// The inverse transform of `src` into `dst`, both in [0, q): saves the copy of an
    /// in-place transform where the input must be kept (the floating-point transform reads
    /// `src` in its first pass).
    pub fn inverse_into(&self, src: &[u64], dst: &mut [u64]) {
        #[cfg(target_arch = "x86_64")]
        if let Backend::Fma(t) = &self.backend {
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

    /// The portable inverse transform (the reference for the vector ones).
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

    /// log2 N.
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
                            if b >= crate::x86_64::fma::MAX_Q {
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
