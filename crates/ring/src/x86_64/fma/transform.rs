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

use super::*;
use crate::arith::Modulus;

/// Primes below this need no reduction in the forward transform.
const NARROW_Q: u64 = 1 << 47;
/// Largest ring degree the forward transform's no-reduction bound covers (20q < 2^52).
const MAX_LOG_N: u32 = 16;
/// Bound the inverse keeps its sums under (differences then stay below 2^51).
const SUM_LIMIT: f64 = (1u64 << 50) as f64;

/// Whether this transform can run for this prime and size on this CPU.
pub(crate) fn usable(q: u64, n: usize) -> bool {
    super::usable(q) && n >= 16 && n.is_power_of_two() && n.trailing_zeros() <= MAX_LOG_N
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
            let src = Source { words: std::ptr::null(), b: 0.0 };
            if self.wide {
                forward_fma::<true, false, false>(self, a, src)
            } else {
                forward_fma::<false, false, false>(self, a, src)
            }
        }
    }

    /// The forward transform on doubles: `a` holds integers |x| < q as f64 bit patterns
    /// and receives the transform the same way, centered (|x| ≤ q/2 + 1). Key switching
    /// keeps a raised digit's limbs so between the base conversion, this transform and the
    /// inner product: each would otherwise convert to words and back.
    pub(crate) fn forward_f64(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n);
        // SAFETY: as in `forward`.
        unsafe {
            let src = Source { words: std::ptr::null(), b: 0.0 };
            if self.wide {
                forward_fma::<true, true, false>(self, a, src)
            } else {
                forward_fma::<false, true, false>(self, a, src)
            }
        }
    }

    /// `forward_f64` of the centered representatives of `src`'s words, residues modulo b
    /// (x − b where x > b/2), into `dst`: for a digit of one prime b raised to this prime,
    /// whose centered value is already the answer (b/2 < q), with no copy first.
    pub(crate) fn forward_f64_centered(&self, src: &[u64], b: u64, dst: &mut [u64]) {
        assert!(src.len() == self.n && dst.len() == self.n);
        assert!(b < super::MAX_Q && b / 2 < self.q as u64, "|x| ≤ b/2 must be below q");
        let src = Source { words: src.as_ptr(), b: b as f64 };
        // SAFETY: as in `forward`; src holds n words and cannot overlap dst (a &mut borrow).
        unsafe {
            if self.wide {
                forward_fma::<true, true, true>(self, dst, src)
            } else {
                forward_fma::<false, true, true>(self, dst, src)
            }
        }
    }

    /// In-place inverse transform; input in [0, q) bit-reversed, output in [0, q).
    pub(crate) fn inverse(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n);
        // One pointer for both ends: the first pass reads each chunk before writing it.
        let p = a.as_mut_ptr();
        // SAFETY: as in `forward`; n words at p.
        unsafe { self.inverse_raw(p, p) }
    }

    /// The inverse of `src` into `dst` (no copy first: the first pass reads `src`).
    pub(crate) fn inverse_into(&self, src: &[u64], dst: &mut [u64]) {
        assert!(src.len() == self.n && dst.len() == self.n);
        // SAFETY: as in `forward`; both lengths checked.
        unsafe { self.inverse_raw(src.as_ptr(), dst.as_mut_ptr()) }
    }

    /// # Safety
    /// n readable words at `src`, n writable words at `dst`; `src` may be `dst`.
    unsafe fn inverse_raw(&self, src: *const u64, dst: *mut u64) {
        // SAFETY: a table exists only where `usable` detected AVX2 and FMA; the caller's contract.
        unsafe {
            if self.wide {
                inverse_fma::<true>(self, src, dst)
            } else {
                inverse_fma::<false>(self, src, dst)
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

/// Two independent Gentleman–Sande butterflies, interleaved.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn gs2<const RED: bool>(
    (x0, y0, t0): (__m256d, __m256d, Tw),
    (x1, y1, t1): (__m256d, __m256d, Tw),
    q: Q,
) -> ((__m256d, __m256d), (__m256d, __m256d)) {
    let (s0, s1) = (_mm256_add_pd(x0, y0), _mm256_add_pd(x1, y1));
    let (d0, d1) = (_mm256_sub_pd(x0, y0), _mm256_sub_pd(x1, y1));
    let (s0, s1) = if RED { (reduce(s0, q), reduce(s1, q)) } else { (s0, s1) };
    let (h0, h1) = (_mm256_mul_pd(d0, t0.w), _mm256_mul_pd(d1, t1.w));
    let (k0, k1) = (_mm256_mul_pd(d0, t0.wq), _mm256_mul_pd(d1, t1.wq));
    let (l0, l1) = (_mm256_fmsub_pd(d0, t0.w, h0), _mm256_fmsub_pd(d1, t1.w, h1));
    const R: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    let (k0, k1) = (_mm256_round_pd::<R>(k0), _mm256_round_pd::<R>(k1));
    let (r0, r1) = (_mm256_fnmadd_pd(k0, q.q, h0), _mm256_fnmadd_pd(k1, q.q, h1));
    ((s0, _mm256_add_pd(r0, l0)), (s1, _mm256_add_pd(r1, l1)))
}

/// Two independent butterflies, their operations interleaved (see the forward's last pass).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn ct2<const WIDE: bool>(
    (x0, y0, t0): (__m256d, __m256d, Tw),
    (x1, y1, t1): (__m256d, __m256d, Tw),
    q: Q,
) -> ((__m256d, __m256d), (__m256d, __m256d)) {
    let (x0, x1) = if WIDE { (reduce(x0, q), reduce(x1, q)) } else { (x0, x1) };
    let (h0, h1) = (_mm256_mul_pd(y0, t0.w), _mm256_mul_pd(y1, t1.w));
    let (k0, k1) = (_mm256_mul_pd(y0, t0.wq), _mm256_mul_pd(y1, t1.wq));
    let (l0, l1) = (_mm256_fmsub_pd(y0, t0.w, h0), _mm256_fmsub_pd(y1, t1.w, h1));
    const R: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    let (k0, k1) = (_mm256_round_pd::<R>(k0), _mm256_round_pd::<R>(k1));
    let (r0, r1) = (_mm256_fnmadd_pd(k0, q.q, h0), _mm256_fnmadd_pd(k1, q.q, h1));
    let (r0, r1) = (_mm256_add_pd(r0, l0), _mm256_add_pd(r1, l1));
    ((_mm256_add_pd(x0, r0), _mm256_sub_pd(x0, r0)), (_mm256_add_pd(x1, r1), _mm256_sub_pd(x1, r1)))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn gs<const RED: bool>(x: __m256d, y: __m256d, t: Tw, q: Q) -> (__m256d, __m256d) {
    let s = _mm256_add_pd(x, y);
    let s = if RED { reduce(s, q) } else { s };
    (s, mul_mod(_mm256_sub_pd(x, y), t, q))
}

/// `forward_fma`'s input: the buffer itself (words, or doubles with F64), or with CENTERED
/// another buffer's words below b, read as their centered representatives (x − b above b/2).
struct Source {
    words: *const u64,
    b: f64,
}

/// # Safety
/// AVX2 and FMA; a holds n words; with CENTERED, `src.words` points at n readable words
/// below b < 2^50 that do not overlap a, and F64 is set.
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_fma<const WIDE: bool, const F64: bool, const CENTERED: bool>(
    tab: &FmaTable,
    a: &mut [u64],
    src: Source,
) {
    let n = tab.n;
    let q = Q { q: _mm256_set1_pd(tab.q), q_inv: _mm256_set1_pd(1.0 / tab.q) };
    let (fw, fq) = (&tab.fwd, &tab.fwd_q);
    // The words become doubles in place (the same 8 bytes): the first layer converts as it
    // loads. Every access to `a` goes through pointers derived from one `as_mut_ptr`; with
    // CENTERED the first pass reads `src` instead, a separate buffer (only read).
    let base = a.as_mut_ptr();
    let p = base as *mut f64;
    let pi = (if CENTERED { src.words } else { base }) as *const __m256i;
    let (b, half) = (_mm256_set1_pd(src.b), _mm256_set1_pd((src.b / 2.0).floor()));
    // SAFETY: (callers) four words at pi + j/4, inside the input.
    let load = |j: usize| unsafe {
        let v = to_f64(_mm256_loadu_si256(pi.add(j / 4)));
        if CENTERED {
            _mm256_sub_pd(v, _mm256_and_pd(_mm256_cmp_pd::<_CMP_GT_OQ>(v, half), b))
        } else {
            v
        }
    };
    let big_layers = tab.log_n - 3;
    let mut m = 1usize;
    if big_layers % 2 == 1 {
        let gap = n / 2;
        let w = tw1(fw[1], fq[1]);
        for j in (0..gap).step_by(4) {
            // SAFETY: j + gap + 4 <= n.
            unsafe {
                let (x, y) =
                    if F64 && !CENTERED { (ld(p.add(j)), ld(p.add(j + gap))) } else { (load(j), load(j + gap)) };
                let (x, y) = ct::<WIDE>(x, y, w, q);
                st(p.add(j), x);
                st(p.add(j + gap), y);
            }
        }
        m = 2;
    } else if !F64 || CENTERED {
        for j in (0..n).step_by(4) {
            // SAFETY: j + 4 <= n.
            unsafe { st(p.add(j), load(j)) };
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
    let pw = base as *mut __m256i;
    // Gaps 4, 2, 1 and the final reduction, two 8-word chunks at a time: one chunk is a
    // single chain of three dependent butterflies, and a second one interleaved with it
    // keeps the FP units busy while the first waits on its latencies.
    for c in (0..n / 8).step_by(2) {
        // SAFETY: 8c + 16 <= n (n/8 is even, n ≥ 16); twiddle reads are slice-checked.
        unsafe {
            let (p0, p1) = (p.add(8 * c), p.add(8 * c + 8));
            let ((x0, y0), (x1, y1)) = ct2::<WIDE>(
                (ld(p0), ld(p0.add(4)), tw1(fw[n / 8 + c], fq[n / 8 + c])),
                (ld(p1), ld(p1.add(4)), tw1(fw[n / 8 + c + 1], fq[n / 8 + c + 1])),
                q,
            );
            let ((u0, v0), (u1, v1)) = ct2::<WIDE>(
                (
                    _mm256_permute2f128_pd::<0x20>(x0, y0), // 0 1 4 5
                    _mm256_permute2f128_pd::<0x31>(x0, y0), // 2 3 6 7
                    pairs(fw, fq, n / 4 + 2 * c),
                ),
                (
                    _mm256_permute2f128_pd::<0x20>(x1, y1),
                    _mm256_permute2f128_pd::<0x31>(x1, y1),
                    pairs(fw, fq, n / 4 + 2 * c + 2),
                ),
                q,
            );
            let k = n / 2 + 4 * c;
            let w =
                |k: usize| Tw { w: _mm256_loadu_pd(fw[k..k + 4].as_ptr()), wq: _mm256_loadu_pd(fq[k..k + 4].as_ptr()) };
            let ((x0, y0), (x1, y1)) = ct2::<WIDE>(
                (_mm256_unpacklo_pd(u0, v0), _mm256_unpackhi_pd(u0, v0), w(k)), // 0 2 4 6 | 1 3 5 7
                (_mm256_unpacklo_pd(u1, v1), _mm256_unpackhi_pd(u1, v1), w(k + 4)),
                q,
            );
            let (u0, v0) = (_mm256_unpacklo_pd(x0, y0), _mm256_unpackhi_pd(x0, y0)); // 0 1 4 5 | 2 3 6 7
            let (u1, v1) = (_mm256_unpacklo_pd(x1, y1), _mm256_unpackhi_pd(x1, y1));
            let out = [
                _mm256_permute2f128_pd::<0x20>(u0, v0),
                _mm256_permute2f128_pd::<0x31>(u0, v0),
                _mm256_permute2f128_pd::<0x20>(u1, v1),
                _mm256_permute2f128_pd::<0x31>(u1, v1),
            ];
            for (k, v) in out.into_iter().enumerate() {
                if F64 {
                    st(p.add(8 * c + 4 * k), reduce(v, q));
                } else {
                    _mm256_storeu_si256(pw.add(2 * c + k), to_u64(v, q));
                }
            }
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

/// # Safety
/// The CPU must support AVX2 and FMA; `src` and `dst` must be valid for `tab.n` words
/// (they may be the same buffer).
#[target_feature(enable = "avx2,fma")]
unsafe fn inverse_fma<const WIDE: bool>(tab: &FmaTable, src: *const u64, dst: *mut u64) {
    let n = tab.n;
    let q = Q { q: _mm256_set1_pd(tab.q), q_inv: _mm256_set1_pd(1.0 / tab.q) };
    let (iw, iq) = (&tab.inv, &tab.inv_q);
    let p = dst as *mut f64;
    let pi = src as *const __m256i;
    // Gaps 1, 2, 4, two 8-word chunks at a time (interleaved, as in the forward's last
    // pass), converting as it loads. Inputs below q, so sums stay below 8q < 2^50 for
    // narrow primes; wide ones reduce every sum here.
    for c in (0..n / 8).step_by(2) {
        // SAFETY: 8c + 16 <= n (n/8 is even); twiddle reads are slice-checked.
        unsafe {
            let ldc = |i: usize| {
                let (a0, a1) = (to_f64(_mm256_loadu_si256(pi.add(i))), to_f64(_mm256_loadu_si256(pi.add(i + 1))));
                let u = _mm256_permute2f128_pd::<0x20>(a0, a1); // 0 1 4 5
                let v = _mm256_permute2f128_pd::<0x31>(a0, a1); // 2 3 6 7
                (_mm256_unpacklo_pd(u, v), _mm256_unpackhi_pd(u, v)) // 0 2 4 6 | 1 3 5 7
            };
            let ((x0, y0), (x1, y1)) = (ldc(2 * c), ldc(2 * c + 2));
            let k = n / 2 + 4 * c;
            let w =
                |k: usize| Tw { w: _mm256_loadu_pd(iw[k..k + 4].as_ptr()), wq: _mm256_loadu_pd(iq[k..k + 4].as_ptr()) };
            let ((x0, y0), (x1, y1)) = gs2::<WIDE>((x0, y0, w(k)), (x1, y1, w(k + 4)), q);
            let ((u0, v0), (u1, v1)) = gs2::<WIDE>(
                (_mm256_unpacklo_pd(x0, y0), _mm256_unpackhi_pd(x0, y0), pairs(iw, iq, n / 4 + 2 * c)), // 0 1 4 5 | 2 3 6 7
                (_mm256_unpacklo_pd(x1, y1), _mm256_unpackhi_pd(x1, y1), pairs(iw, iq, n / 4 + 2 * c + 2)),
                q,
            );
            let ((x0, y0), (x1, y1)) = gs2::<WIDE>(
                (
                    _mm256_permute2f128_pd::<0x20>(u0, v0), // 0 1 2 3
                    _mm256_permute2f128_pd::<0x31>(u0, v0), // 4 5 6 7
                    tw1(iw[n / 8 + c], iq[n / 8 + c]),
                ),
                (
                    _mm256_permute2f128_pd::<0x20>(u1, v1),
                    _mm256_permute2f128_pd::<0x31>(u1, v1),
                    tw1(iw[n / 8 + c + 1], iq[n / 8 + c + 1]),
                ),
                q,
            );
            let pc = p.add(8 * c);
            st(pc, x0);
            st(pc.add(4), y0);
            st(pc.add(8), x1);
            st(pc.add(12), y1);
        }
    }
    // Every value is now below 8q (narrow), or below q + 2 (wide: sums reduced, differences
    // |x − y| ≤ 2q give products below q·(1/2 + 2q·2^-52) < q).
    let mut bound = if WIDE { tab.q + 2.0 } else { 8.0 * tab.q };
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
                st_u64(p.add(j), x, q);
                st_u64(p.add(j + g), y, q);
            }
        }
    }
    // The last layer's products take sums and differences below 2·bound: below 2^52.
    debug_assert!(2.0 * bound < MAGIC);
}

/// Layers of gaps g and 2g; RED1/RED2 reduce their sums; LAST makes the second the final layer.
///
/// # Safety
/// The CPU must support AVX2 and FMA; every pointer must be valid for the lanes the
/// butterflies read and write.
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
                // The last layer stores residues in [0, q): the words are integers again.
                let put = |at: *mut f64, v| if LAST { st_u64(at, v, q) } else { st(at, v) };
                put(p.add(j), a0);
                put(p.add(j + g), a1);
                put(p.add(j + 2 * g), a2);
                put(p.add(j + 3 * g), a3);
            }
        }
    }
}

/// Stores a centered value (|v| < 2^51) as its residue in [0, q), a u64 word.
///
/// # Safety
/// `p` must be valid for writing four words, and the CPU must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn st_u64(p: *mut f64, v: __m256d, q: Q) {
    // SAFETY: the caller guarantees four writable words at p.
    unsafe { _mm256_storeu_si256(p as *mut __m256i, to_u64(v, q)) }
}

/// The inverse's last butterfly with 1/N folded in: ((x + y)/N, (x − y)·w/N), centered.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn gs_last(x: __m256d, y: __m256d, ninv: Tw, w_ninv: Tw, q: Q) -> (__m256d, __m256d) {
    (mul_mod(_mm256_add_pd(x, y), ninv, q), mul_mod(_mm256_sub_pd(x, y), w_ninv, q))
}
