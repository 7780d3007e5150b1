//! Floating-point negacyclic NTT for primes below 2^50, on AVX2 CPUs with FMA: each
//! twiddle product is `fma::mul_mod` (four double operations instead of seven 32-bit
//! multiplies), with |y·w mod q| ≤ q·(1/2 + |y|·2^-52), centered.
//!
//! Because the product is centered, a
//! Cooley–Tukey butterfly (x + r, x − r) grows its bound by about q/2 per layer, never
//! doubling it: for q < 2^47, after 16 layers every value is below 20·q < 2^52, and the
//! forward transform needs no reduction between layers at all. For q in [2^47, 2^50)
//! ("wide"), x is reduced (three operations) before each butterfly, which holds every
//! value below 1.4·q. The inverse's Gentleman–Sande sums do double, so they are reduced
//! in the layers where the bound would pass 2^50. Values are kept in the caller's buffer
//! as f64 bit patterns between the first and last pass; both ends convert exactly.
//!
//! Same twiddles (ψ^brev(i)), layer order and output order as the scalar transform, and
//! the output is fully reduced to [0, q), so the two agree bit for bit (tested).

use std::arch::x86_64::*;

use crate::arith::Modulus;
use crate::fma::*;

/// Primes below this need no reduction in the forward transform.
const NARROW_Q: u64 = 1 << 47;
/// Largest ring degree the forward transform's no-reduction bound covers (20q < 2^52).
const MAX_LOG_N: u32 = 16;
/// Bound the inverse keeps its sums under (differences then stay below 2^51).
const SUM_LIMIT: f64 = (1u64 << 50) as f64;

/// Whether this transform can run for this prime and size on this CPU.
pub(crate) fn usable(q: u64, n: usize) -> bool {
    crate::fma::usable(q) && n >= 16 && n.trailing_zeros() <= MAX_LOG_N
}

/// The twiddles as doubles, each with w/q for the quotient.
#[derive(Clone, Debug)]
pub(crate) struct FmaTable {
    n: usize,
    log_n: u32,
    q: f64,
    /// q ≥ 2^47: reduce before every forward butterfly and every sum of the first inverse layers
    wide: bool,
    fwd: Vec<f64>,
    fwd_q: Vec<f64>,
    inv: Vec<f64>,
    inv_q: Vec<f64>,
    n_inv: (f64, f64),
    last_inv: (f64, f64),
}

impl FmaTable {
    /// From the integer tables (`fwd[i]` = ψ^brev(i), `inv[i]` = ψ^-brev(i)); None unless usable.
    pub(crate) fn new(m: &Modulus, fwd: &[u64], inv: &[u64], n_inv: u64, last_inv: u64) -> Option<Self> {
        let n = fwd.len();
        if !usable(m.value(), n) {
            return None;
        }
        let q = m.value() as f64;
        let pair = |w: u64| (w as f64, w as f64 / q);
        Some(Self {
            n,
            log_n: n.trailing_zeros(),
            q,
            wide: m.value() >= NARROW_Q,
            fwd: fwd.iter().map(|&w| w as f64).collect(),
            fwd_q: fwd.iter().map(|&w| w as f64 / q).collect(),
            inv: inv.iter().map(|&w| w as f64).collect(),
            inv_q: inv.iter().map(|&w| w as f64 / q).collect(),
            n_inv: pair(n_inv),
            last_inv: pair(last_inv),
        })
    }

    /// In-place forward transform; input and output in [0, q), output bit-reversed.
    pub(crate) fn forward(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n);
        // SAFETY: a table exists only where `usable` detected AVX2 and FMA; the length is checked.
        unsafe {
            if self.wide {
                forward_fma::<true>(self, a)
            } else {
                forward_fma::<false>(self, a)
            }
        }
    }

    /// In-place inverse transform; input in [0, q) bit-reversed, output in [0, q).
    pub(crate) fn inverse(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n);
        // SAFETY: as in `forward`.
        unsafe {
            if self.wide {
                inverse_fma::<true>(self, a)
            } else {
                inverse_fma::<false>(self, a)
            }
        }
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn ct<const WIDE: bool>(x: __m256d, y: __m256d, t: Tw, q: Q) -> (__m256d, __m256d) {
    let x = if WIDE { reduce(x, q) } else { x };
    let r = mul_mod(y, t, q);
    (_mm256_add_pd(x, r), _mm256_sub_pd(x, r))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn gs<const RED: bool>(x: __m256d, y: __m256d, t: Tw, q: Q) -> (__m256d, __m256d) {
    let s = _mm256_add_pd(x, y);
    let s = if RED { reduce(s, q) } else { s };
    (s, mul_mod(_mm256_sub_pd(x, y), t, q))
}

#[target_feature(enable = "avx2,fma")]
unsafe fn forward_fma<const WIDE: bool>(tab: &FmaTable, a: &mut [u64]) {
    let n = tab.n;
    let q = Q { q: _mm256_set1_pd(tab.q), q_inv: _mm256_set1_pd(1.0 / tab.q) };
    let (fw, fq) = (&tab.fwd, &tab.fwd_q);
    // The words become doubles in place (the same 8 bytes): the first layer converts as it loads.
    let p = a.as_mut_ptr() as *mut f64;
    let pi = a.as_ptr() as *const __m256i;
    let big_layers = tab.log_n - 3;
    let mut m = 1usize;
    if big_layers % 2 == 1 {
        let gap = n / 2;
        let w = tw1(fw[1], fq[1]);
        for j in (0..gap).step_by(4) {
            // SAFETY: j + gap + 4 <= n.
            unsafe {
                let x = to_f64(_mm256_loadu_si256(pi.add(j / 4)));
                let y = to_f64(_mm256_loadu_si256(pi.add((j + gap) / 4)));
                let (x, y) = ct::<WIDE>(x, y, w, q);
                st(p.add(j), x);
                st(p.add(j + gap), y);
            }
        }
        m = 2;
    } else {
        for j in (0..n).step_by(4) {
            // SAFETY: j + 4 <= n.
            unsafe { st(p.add(j), to_f64(_mm256_loadu_si256(pi.add(j / 4)))) };
        }
    }
    while m < n / 8 {
        // layers m (gap 2h) and 2m (gap h)
        let h = n / (4 * m);
        for i in 0..m {
            let w1 = tw1(fw[m + i], fq[m + i]);
            let w2 = tw1(fw[2 * m + 2 * i], fq[2 * m + 2 * i]);
            let w3 = tw1(fw[2 * m + 2 * i + 1], fq[2 * m + 2 * i + 1]);
            let base = 4 * i * h;
            for j in (base..base + h).step_by(4) {
                // SAFETY: j + 3h + 4 <= base + 4h <= n.
                unsafe {
                    let (a0, a2) = ct::<WIDE>(ld(p.add(j)), ld(p.add(j + 2 * h)), w1, q);
                    let (a1, a3) = ct::<WIDE>(ld(p.add(j + h)), ld(p.add(j + 3 * h)), w1, q);
                    let (a0, a1) = ct::<WIDE>(a0, a1, w2, q);
                    let (a2, a3) = ct::<WIDE>(a2, a3, w3, q);
                    st(p.add(j), a0);
                    st(p.add(j + h), a1);
                    st(p.add(j + 2 * h), a2);
                    st(p.add(j + 3 * h), a3);
                }
            }
        }
        m *= 4;
    }
    debug_assert_eq!(m, n / 8);
    let pw = a.as_mut_ptr() as *mut __m256i;
    // Gaps 4, 2, 1 and the final reduction, one 8-word chunk at a time.
    for c in 0..n / 8 {
        // SAFETY: 8c + 8 <= n; twiddle reads are slice-checked.
        unsafe {
            let pc = p.add(8 * c);
            let (x, y) = ct::<WIDE>(ld(pc), ld(pc.add(4)), tw1(fw[n / 8 + c], fq[n / 8 + c]), q);
            let u = _mm256_permute2f128_pd::<0x20>(x, y); // 0 1 4 5
            let v = _mm256_permute2f128_pd::<0x31>(x, y); // 2 3 6 7
            let (u, v) = ct::<WIDE>(u, v, pairs(fw, fq, n / 4 + 2 * c), q);
            let x = _mm256_unpacklo_pd(u, v); // 0 2 4 6
            let y = _mm256_unpackhi_pd(u, v); // 1 3 5 7
            let k = n / 2 + 4 * c;
            let w = Tw { w: _mm256_loadu_pd(fw[k..k + 4].as_ptr()), wq: _mm256_loadu_pd(fq[k..k + 4].as_ptr()) };
            let (x, y) = ct::<WIDE>(x, y, w, q);
            let u = _mm256_unpacklo_pd(x, y); // 0 1 4 5
            let v = _mm256_unpackhi_pd(x, y); // 2 3 6 7
            let lo = _mm256_permute2f128_pd::<0x20>(u, v);
            let hi = _mm256_permute2f128_pd::<0x31>(u, v);
            _mm256_storeu_si256(pw.add(2 * c), to_u64(lo, q));
            _mm256_storeu_si256(pw.add(2 * c + 1), to_u64(hi, q));
        }
    }
}

/// Bound on the inverse's values after a layer entered with bound `b`, and whether its
/// sums must be reduced to stay under `SUM_LIMIT`.
fn gs_layer(b: f64, q: f64) -> (f64, bool) {
    let diff = q * (0.5 + 2.0 * b / MAGIC) + 1.0;
    if 2.0 * b > SUM_LIMIT {
        (diff.max(q * 0.5 + 2.0 * b / MAGIC + 1.0), true)
    } else {
        (diff.max(2.0 * b), false)
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn inverse_fma<const WIDE: bool>(tab: &FmaTable, a: &mut [u64]) {
    let n = tab.n;
    let q = Q { q: _mm256_set1_pd(tab.q), q_inv: _mm256_set1_pd(1.0 / tab.q) };
    let (iw, iq) = (&tab.inv, &tab.inv_q);
    let p = a.as_mut_ptr() as *mut f64;
    let pi = a.as_ptr() as *const __m256i;
    // Gaps 1, 2, 4, one 8-word chunk at a time, converting as it loads. Inputs below q,
    // so sums stay below 8q < 2^50 for narrow primes; wide ones reduce every sum here.
    for c in 0..n / 8 {
        // SAFETY: 8c + 8 <= n; twiddle reads are slice-checked.
        unsafe {
            let pc = p.add(8 * c);
            let a0 = to_f64(_mm256_loadu_si256(pi.add(2 * c)));
            let a1 = to_f64(_mm256_loadu_si256(pi.add(2 * c + 1)));
            let u = _mm256_permute2f128_pd::<0x20>(a0, a1); // 0 1 4 5
            let v = _mm256_permute2f128_pd::<0x31>(a0, a1); // 2 3 6 7
            let x = _mm256_unpacklo_pd(u, v); // 0 2 4 6
            let y = _mm256_unpackhi_pd(u, v); // 1 3 5 7
            let k = n / 2 + 4 * c;
            let w = Tw { w: _mm256_loadu_pd(iw[k..k + 4].as_ptr()), wq: _mm256_loadu_pd(iq[k..k + 4].as_ptr()) };
            let (x, y) = gs::<WIDE>(x, y, w, q);
            let u = _mm256_unpacklo_pd(x, y); // 0 1 4 5
            let v = _mm256_unpackhi_pd(x, y); // 2 3 6 7
            let (u, v) = gs::<WIDE>(u, v, pairs(iw, iq, n / 4 + 2 * c), q);
            let x = _mm256_permute2f128_pd::<0x20>(u, v); // 0 1 2 3
            let y = _mm256_permute2f128_pd::<0x31>(u, v); // 4 5 6 7
            let (x, y) = gs::<WIDE>(x, y, tw1(iw[n / 8 + c], iq[n / 8 + c]), q);
            st(pc, x);
            st(pc.add(4), y);
        }
    }
    // Every value is now below 8q (narrow), or below q + 2 (wide: sums reduced, differences
    // |x − y| ≤ 2q give products below q·(1/2 + 2q·2^-52) < q).
    let mut bound = if WIDE { 2.0 * tab.q } else { 8.0 * tab.q };
    // Gaps 8 … n/2, two layers (g, 2g) at a time; with an odd count, gap n/2 goes alone
    // last. The last layer scales by 1/N and reduces fully.
    let big_layers = tab.log_n - 3;
    let ninv = tw1(tab.n_inv.0, tab.n_inv.1);
    let wlast = tw1(tab.last_inv.0, tab.last_inv.1);
    let mut g = 8usize;
    let pair_end = if big_layers % 2 == 1 { n / 2 } else { n };
    while g < pair_end {
        let last = 4 * g == n;
        let (b1, red1) = gs_layer(bound, tab.q);
        let (b2, red2) = gs_layer(b1, tab.q);
        bound = b2;
        // SAFETY: the features are enabled in this function; indices are in bounds (inside).
        unsafe {
            match (last, red1, red2) {
                (true, false, _) => gs_pair::<false, false, true>(tab, p, g, ninv, wlast, q),
                (true, true, _) => gs_pair::<true, false, true>(tab, p, g, ninv, wlast, q),
                (false, false, false) => gs_pair::<false, false, false>(tab, p, g, ninv, wlast, q),
                (false, true, false) => gs_pair::<true, false, false>(tab, p, g, ninv, wlast, q),
                (false, false, true) => gs_pair::<false, true, false>(tab, p, g, ninv, wlast, q),
                (false, true, true) => gs_pair::<true, true, false>(tab, p, g, ninv, wlast, q),
            }
        }
        g *= 4;
    }
    if big_layers % 2 == 1 {
        debug_assert_eq!(g, n / 2);
        for j in (0..g).step_by(4) {
            // SAFETY: j + g + 4 <= n.
            unsafe {
                let (x, y) = gs_last(ld(p.add(j)), ld(p.add(j + g)), ninv, wlast, q);
                st(p.add(j), x);
                st(p.add(j + g), y);
            }
        }
    }
    debug_assert!(bound < SUM_LIMIT);
    // The last layer left centered values below q·(1 + 2^-2): to residues in [0, q).
    let pw = a.as_mut_ptr() as *mut __m256i;
    for j in (0..n).step_by(4) {
        // SAFETY: j + 4 <= n.
        unsafe { _mm256_storeu_si256(pw.add(j / 4), to_u64(ld(p.add(j)), q)) };
    }
}

/// Layers of gaps g and 2g; RED1/RED2 reduce their sums; LAST makes the second the final layer.
#[target_feature(enable = "avx2,fma")]
unsafe fn gs_pair<const RED1: bool, const RED2: bool, const LAST: bool>(
    tab: &FmaTable,
    p: *mut f64,
    g: usize,
    ninv: Tw,
    wlast: Tw,
    q: Q,
) {
    let (iw, iq) = (&tab.inv, &tab.inv_q);
    let blocks = tab.n / (2 * g); // blocks in the layer of gap g
    for i in 0..blocks / 2 {
        let w1 = tw1(iw[blocks + 2 * i], iq[blocks + 2 * i]);
        let w2 = tw1(iw[blocks + 2 * i + 1], iq[blocks + 2 * i + 1]);
        let w3 = tw1(iw[blocks / 2 + i], iq[blocks / 2 + i]);
        let base = 4 * g * i;
        for j in (base..base + g).step_by(4) {
            // SAFETY: j + 3g + 4 <= base + 4g <= n, the caller's buffer length.
            unsafe {
                let (a0, a1) = gs::<RED1>(ld(p.add(j)), ld(p.add(j + g)), w1, q);
                let (a2, a3) = gs::<RED1>(ld(p.add(j + 2 * g)), ld(p.add(j + 3 * g)), w2, q);
                let ((a0, a2), (a1, a3)) = if LAST {
                    (gs_last(a0, a2, ninv, wlast, q), gs_last(a1, a3, ninv, wlast, q))
                } else {
                    (gs::<RED2>(a0, a2, w3, q), gs::<RED2>(a1, a3, w3, q))
                };
                st(p.add(j), a0);
                st(p.add(j + g), a1);
                st(p.add(j + 2 * g), a2);
                st(p.add(j + 3 * g), a3);
            }
        }
    }
}

/// The inverse's last butterfly with 1/N folded in: ((x + y)/N, (x − y)·w/N), centered.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn gs_last(x: __m256d, y: __m256d, ninv: Tw, w_ninv: Tw, q: Q) -> (__m256d, __m256d) {
    (mul_mod(_mm256_add_pd(x, y), ninv, q), mul_mod(_mm256_sub_pd(x, y), w_ninv, q))
}
