//! AVX-512 negacyclic NTT, eight butterflies per instruction stream.
//!
//! Two multipliers: IFMA (52-bit fused multiply-add) for primes below 2^50, where
//! Harvey's lazy values (< 4q) fit the 52-bit inputs; and plain AVX-512F/DQ with a
//! 64×64→128 high product built from 32-bit multiplies for primes up to 2^61.
//! Same twiddles, same output order as the scalar transform, which stays the
//! reference (tests compare the two bit for bit). Chosen at run time by CPU detection.

use std::arch::x86_64::*;

use crate::arith::Modulus;

#[derive(Clone, Debug)]
pub(crate) struct SimdTable {
    ifma: bool,
    q: u64,
    n: usize,
    fwd: Vec<u64>,
    fwd_p: Vec<u64>,
    inv: Vec<u64>,
    inv_p: Vec<u64>,
    /// per-butterfly twiddles of the stages with t = 4, 2, 1 (index log2 t), in lane order
    fwd_exp: [(Vec<u64>, Vec<u64>); 3],
    inv_exp: [(Vec<u64>, Vec<u64>); 3],
    n_inv: u64,
    n_inv_p: u64,
}

/// Lanes of a 16-word chunk that are butterfly inputs X and Y, for t = 1, 2, 4.
const X_IDX: [[i64; 8]; 3] = [[0, 2, 4, 6, 8, 10, 12, 14], [0, 1, 4, 5, 8, 9, 12, 13], [0, 1, 2, 3, 8, 9, 10, 11]];
const Y_IDX: [[i64; 8]; 3] = [[1, 3, 5, 7, 9, 11, 13, 15], [2, 3, 6, 7, 10, 11, 14, 15], [4, 5, 6, 7, 12, 13, 14, 15]];
/// Lanes of (X, Y) that rebuild the two halves of the chunk.
const LO_IDX: [[i64; 8]; 3] = [[0, 8, 1, 9, 2, 10, 3, 11], [0, 1, 8, 9, 2, 3, 10, 11], [0, 1, 2, 3, 8, 9, 10, 11]];
const HI_IDX: [[i64; 8]; 3] =
    [[4, 12, 5, 13, 6, 14, 7, 15], [4, 5, 12, 13, 6, 7, 14, 15], [4, 5, 6, 7, 12, 13, 14, 15]];

fn detected(ifma: bool) -> bool {
    if ifma {
        crate::isa::Ifma::get().is_some()
    } else {
        crate::isa::Avx512::get().is_some()
    }
}

impl SimdTable {
    pub fn new(m: &Modulus, fwd: &[u64], inv: &[u64], n_inv: u64) -> Option<Self> {
        let n = fwd.len();
        let q = m.value();
        let ifma = q < (1 << 50);
        if n < 16 || !detected(ifma) {
            return None;
        }
        let shoup = |w: u64| -> u64 {
            if ifma {
                (((w as u128) << 52) / q as u128) as u64
            } else {
                m.shoup(w)
            }
        };
        let expand = |table: &[u64], forward: bool| -> [(Vec<u64>, Vec<u64>); 3] {
            std::array::from_fn(|s| {
                let t = 1usize << s;
                let base = n / (2 * t); // m (forward) or h (inverse): blocks in the stage
                let _ = forward;
                let w: Vec<u64> = (0..n / 16)
                    .flat_map(|c| X_IDX[s].iter().map(move |&x| table[base + (16 * c + x as usize) / (2 * t)]))
                    .collect();
                let wp = w.iter().map(|&x| shoup(x)).collect();
                (w, wp)
            })
        };
        Some(Self {
            ifma,
            q,
            n,
            fwd: fwd.to_vec(),
            fwd_p: fwd.iter().map(|&w| shoup(w)).collect(),
            inv: inv.to_vec(),
            inv_p: inv.iter().map(|&w| shoup(w)).collect(),
            fwd_exp: expand(fwd, true),
            inv_exp: expand(inv, false),
            n_inv,
            n_inv_p: shoup(n_inv),
        })
    }

    pub fn forward(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n);
        // SAFETY: the table exists only when `detected` found the features these
        // functions are compiled for; `a` has exactly n words, checked above.
        unsafe {
            if self.ifma {
                forward_ifma(self, a)
            } else {
                forward_avx512(self, a)
            }
        }
    }

    pub fn inverse(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n);
        // SAFETY: as in `forward`.
        unsafe {
            if self.ifma {
                inverse_ifma(self, a)
            } else {
                inverse_avx512(self, a)
            }
        }
    }
}

use super::mul_shoup52 as mul_shoup_ifma;

/// a·w mod q in [0, 2q) with 64-bit lanes: q < 2^62.
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn mul_shoup_avx512(a: __m512i, w: __m512i, wp: __m512i, q: __m512i) -> __m512i {
    super::mul_shoup_lazy(a, w, wp, q)
}

/// Reduces lanes from [0, 2b) to [0, b) (b = q or 2q): min(x, x - b) unsigned.
#[inline]
#[target_feature(enable = "avx512f")]
fn reduce_once(x: __m512i, b: __m512i) -> __m512i {
    _mm512_min_epu64(x, _mm512_sub_epi64(x, b))
}

macro_rules! simd_ntt {
    ($fwd:ident, $inv:ident, $features:literal, $mul:ident, $mulc:expr) => {
        /// # Safety
        /// The CPU must support the target features above (the caller holds the matching `crate::isa` token); pointer and length
        /// requirements are as stated above (lengths are asserted where the body checks them).
        #[target_feature(enable = $features)]
        unsafe fn $fwd(t: &SimdTable, a: &mut [u64]) {
            // SAFETY: the preconditions of this function (its `# Safety` section) hold.
            unsafe {
                let n = t.n;
                let p = a.as_mut_ptr();
                let q = _mm512_set1_epi64(t.q as i64);
                let two_q = _mm512_set1_epi64(2 * t.q as i64);
                let mc = $mulc(t.q);
                let mut gap = n;
                let mut m = 1;
                while m < n {
                    gap >>= 1;
                    if gap >= 8 {
                        for i in 0..m {
                            let w = _mm512_set1_epi64(t.fwd[m + i] as i64);
                            let wp = _mm512_set1_epi64(t.fwd_p[m + i] as i64);
                            let j1 = 2 * i * gap;
                            for j in (j1..j1 + gap).step_by(8) {
                                // SAFETY: j + gap + 8 <= j1 + 2·gap <= n.
                                let x = _mm512_loadu_si512(p.add(j) as *const _);
                                let y = _mm512_loadu_si512(p.add(j + gap) as *const _);
                                let x = reduce_once(x, two_q);
                                let v = $mul(y, w, wp, mc);
                                _mm512_storeu_si512(p.add(j) as *mut _, _mm512_add_epi64(x, v));
                                _mm512_storeu_si512(
                                    p.add(j + gap) as *mut _,
                                    _mm512_sub_epi64(_mm512_add_epi64(x, two_q), v),
                                );
                            }
                        }
                    } else {
                        let s = gap.trailing_zeros() as usize;
                        let (xi, yi) = (
                            _mm512_loadu_si512(X_IDX[s].as_ptr() as *const _),
                            _mm512_loadu_si512(Y_IDX[s].as_ptr() as *const _),
                        );
                        let (li, hi) = (
                            _mm512_loadu_si512(LO_IDX[s].as_ptr() as *const _),
                            _mm512_loadu_si512(HI_IDX[s].as_ptr() as *const _),
                        );
                        let (ws, wps) = (&t.fwd_exp[s].0, &t.fwd_exp[s].1);
                        for c in 0..n / 16 {
                            // SAFETY: 16c + 16 <= n, and the expanded tables hold n/2 words.
                            let lo = _mm512_loadu_si512(p.add(16 * c) as *const _);
                            let hg = _mm512_loadu_si512(p.add(16 * c + 8) as *const _);
                            let x = _mm512_permutex2var_epi64(lo, xi, hg);
                            let y = _mm512_permutex2var_epi64(lo, yi, hg);
                            let w = _mm512_loadu_si512(ws.as_ptr().add(8 * c) as *const _);
                            let wp = _mm512_loadu_si512(wps.as_ptr().add(8 * c) as *const _);
                            let x = reduce_once(x, two_q);
                            let v = $mul(y, w, wp, mc);
                            let nx = _mm512_add_epi64(x, v);
                            let ny = _mm512_sub_epi64(_mm512_add_epi64(x, two_q), v);
                            _mm512_storeu_si512(p.add(16 * c) as *mut _, _mm512_permutex2var_epi64(nx, li, ny));
                            _mm512_storeu_si512(p.add(16 * c + 8) as *mut _, _mm512_permutex2var_epi64(nx, hi, ny));
                        }
                    }
                    m <<= 1;
                }
                for j in (0..n).step_by(8) {
                    // SAFETY: j + 8 <= n.
                    let x = _mm512_loadu_si512(p.add(j) as *const _);
                    let x = reduce_once(reduce_once(x, two_q), q);
                    _mm512_storeu_si512(p.add(j) as *mut _, x);
                }
            }
        }

        /// # Safety
        /// The CPU must support the target features above (the caller holds the matching `crate::isa` token); pointer and length
        /// requirements are as stated above (lengths are asserted where the body checks them).
        #[target_feature(enable = $features)]
        unsafe fn $inv(t: &SimdTable, a: &mut [u64]) {
            // SAFETY: the preconditions of this function (its `# Safety` section) hold.
            unsafe {
                let n = t.n;
                let p = a.as_mut_ptr();
                let q = _mm512_set1_epi64(t.q as i64);
                let two_q = _mm512_set1_epi64(2 * t.q as i64);
                let mc = $mulc(t.q);
                let mut gap = 1;
                let mut m = n;
                while m > 1 {
                    let h = m >> 1;
                    if gap >= 8 {
                        for i in 0..h {
                            let w = _mm512_set1_epi64(t.inv[h + i] as i64);
                            let wp = _mm512_set1_epi64(t.inv_p[h + i] as i64);
                            let j1 = 2 * i * gap;
                            for j in (j1..j1 + gap).step_by(8) {
                                // SAFETY: j + gap + 8 <= j1 + 2·gap <= n.
                                let x = _mm512_loadu_si512(p.add(j) as *const _);
                                let y = _mm512_loadu_si512(p.add(j + gap) as *const _);
                                let s = reduce_once(_mm512_add_epi64(x, y), two_q);
                                let d = _mm512_sub_epi64(_mm512_add_epi64(x, two_q), y);
                                _mm512_storeu_si512(p.add(j) as *mut _, s);
                                _mm512_storeu_si512(p.add(j + gap) as *mut _, $mul(d, w, wp, mc));
                            }
                        }
                    } else {
                        let s = gap.trailing_zeros() as usize;
                        let (xi, yi) = (
                            _mm512_loadu_si512(X_IDX[s].as_ptr() as *const _),
                            _mm512_loadu_si512(Y_IDX[s].as_ptr() as *const _),
                        );
                        let (li, hi) = (
                            _mm512_loadu_si512(LO_IDX[s].as_ptr() as *const _),
                            _mm512_loadu_si512(HI_IDX[s].as_ptr() as *const _),
                        );
                        let (ws, wps) = (&t.inv_exp[s].0, &t.inv_exp[s].1);
                        for c in 0..n / 16 {
                            // SAFETY: 16c + 16 <= n, and the expanded tables hold n/2 words.
                            let lo = _mm512_loadu_si512(p.add(16 * c) as *const _);
                            let hg = _mm512_loadu_si512(p.add(16 * c + 8) as *const _);
                            let x = _mm512_permutex2var_epi64(lo, xi, hg);
                            let y = _mm512_permutex2var_epi64(lo, yi, hg);
                            let w = _mm512_loadu_si512(ws.as_ptr().add(8 * c) as *const _);
                            let wp = _mm512_loadu_si512(wps.as_ptr().add(8 * c) as *const _);
                            let s = reduce_once(_mm512_add_epi64(x, y), two_q);
                            let d = $mul(_mm512_sub_epi64(_mm512_add_epi64(x, two_q), y), w, wp, mc);
                            _mm512_storeu_si512(p.add(16 * c) as *mut _, _mm512_permutex2var_epi64(s, li, d));
                            _mm512_storeu_si512(p.add(16 * c + 8) as *mut _, _mm512_permutex2var_epi64(s, hi, d));
                        }
                    }
                    gap <<= 1;
                    m = h;
                }
                let w = _mm512_set1_epi64(t.n_inv as i64);
                let wp = _mm512_set1_epi64(t.n_inv_p as i64);
                for j in (0..n).step_by(8) {
                    // SAFETY: j + 8 <= n.
                    let x = _mm512_loadu_si512(p.add(j) as *const _);
                    let x = reduce_once($mul(x, w, wp, mc), q);
                    _mm512_storeu_si512(p.add(j) as *mut _, x);
                }
            }
        }
    };
}

simd_ntt!(forward_ifma, inverse_ifma, "avx512f,avx512dq,avx512ifma", mul_shoup_ifma, |q: u64| _mm512_set1_epi64(
    ((1u64 << 52) - q) as i64
));
simd_ntt!(forward_avx512, inverse_avx512, "avx512f,avx512dq", mul_shoup_avx512, |q: u64| _mm512_set1_epi64(q as i64));
