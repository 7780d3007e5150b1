//! AVX2 negacyclic NTT for CPUs without AVX-512 (four 64-bit lanes).
//!
//! AVX2 has no 64×64-bit multiply, so Shoup's product x·w − ⌊x·w'/2^64⌋·q is built
//! from 32×32→64 multiplies (`vpmuludq`): four for the high word, three for each low
//! word. Memory traffic is what separates a good transform from a slow one here,
//! so layers are merged: the three smallest gaps (4, 2, 1) in one pass over each
//! 8-word chunk in registers (with the final reduction of the forward transform),
//! the rest two layers at a time (radix 4), and the inverse's scaling by 1/N is
//! folded into its last layer's twiddles. Values stay below 4q between layers, and
//! since every prime is below 2^61, every lane value is below 2^63: signed compares
//! and the sign bit (`blendv`) do the conditional subtractions.
//!
//! Same twiddle tables and output order as the scalar transform, and both are fully
//! reduced at the end, so the two agree bit for bit (tested).

use std::arch::x86_64::*;

use crate::isa::Avx2;
use crate::twiddles::Twiddles;

/// Whether the AVX2 transform can run for this prime on this CPU (features read once, off
/// under `HEINFER_NO_SIMD`). It also serves AVX-512 CPUs without IFMA for the primes
/// below 2^50 that the AVX-512 transform declines there: `NttTable` gives AVX-512 precedence.
pub(crate) fn usable(q: u64, n: usize) -> bool {
    q < (1 << 61) && n >= 16 && n.is_power_of_two()
}

/// A twiddle with its Shoup companion, both split for 32-bit multiplies.
#[derive(Clone, Copy)]
pub(crate) struct Tw {
    w: __m256i,
    w_hi: __m256i,
    wp: __m256i,
    wp_hi: __m256i,
}

/// The prime as vectors.
#[derive(Clone, Copy)]
pub(crate) struct Q {
    pub q: __m256i,
    q_hi: __m256i,
    pub two_q: __m256i,
    /// half the bound between layers: 2q, or 4q when FAST (q < 2^60)
    l: __m256i,
}

/// The high 32 bits of each lane, moved into the low half for `vpmuludq` (which reads only
/// the low halves). A swap of the two halves rather than a shift: LLVM recognises shift-based
/// 64-bit high products and "optimises" them into scalar `mul` instructions, lane by lane.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn hi32(x: __m256i) -> __m256i {
    _mm256_shuffle_epi32::<0b10_11_00_01>(x)
}

#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn tw(w: __m256i, wp: __m256i) -> Tw {
    Tw { w, w_hi: hi32(w), wp, wp_hi: hi32(wp) }
}

#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn tw1(w: u64, wp: u64) -> Tw {
    tw(_mm256_set1_epi64x(w as i64), _mm256_set1_epi64x(wp as i64))
}

#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn qv<const FAST: bool>(q: u64) -> Q {
    let v = _mm256_set1_epi64x(q as i64);
    let l = if FAST { 4 * q } else { 2 * q };
    Q { q: v, q_hi: hi32(v), two_q: _mm256_set1_epi64x(2 * q as i64), l: _mm256_set1_epi64x(l as i64) }
}

/// x·w mod q in [0, 4q) for x < 2^63 (Shoup, with a cheaper quotient).
///
/// The quotient estimate drops the low×low partial product and the carries of the two
/// cross products from the high word of x·w': it is at most 2 below Shoup's exact
/// ⌊x·w'/2^64⌋, never above, so x·w − qhat·q lies in [0, 4q). The remainder is computed modulo 2^64, where
/// the cross terms only matter modulo 2^32: one 32-bit `vpmulld` gives both of them.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn mul_shoup(x: __m256i, t: Tw, q: Q) -> __m256i {
    let x_hi = hi32(x);
    let qhat = _mm256_add_epi64(
        _mm256_mul_epu32(x_hi, t.wp_hi),
        _mm256_add_epi64(
            _mm256_srli_epi64::<32>(_mm256_mul_epu32(x, t.wp_hi)),
            _mm256_srli_epi64::<32>(_mm256_mul_epu32(x_hi, t.wp)),
        ),
    );
    // x·w − qhat·q mod 2^64 = (x_lo·w_lo − qhat_lo·q_lo) + (cross mod 2^32)·2^32, where the
    // 32-bit lanes of mullo(x, swap(w)) are x_lo·w_hi and x_hi·w_lo (mod 2^32).
    let lo = _mm256_sub_epi64(_mm256_mul_epu32(x, t.w), _mm256_mul_epu32(qhat, q.q));
    let c = _mm256_sub_epi32(_mm256_mullo_epi32(x, t.w_hi), _mm256_mullo_epi32(qhat, q.q_hi));
    let cross = _mm256_add_epi32(c, _mm256_slli_epi64::<32>(c));
    let cross = _mm256_and_si256(cross, _mm256_set1_epi64x(0xffff_ffff_0000_0000u64 as i64));
    _mm256_add_epi64(lo, cross)
}

/// x·w mod q below L (4q when FAST, else 2q).
#[inline]
#[target_feature(enable = "avx2")]
fn mul_lazy<const FAST: bool>(x: __m256i, t: Tw, q: Q) -> __m256i {
    let r = mul_shoup(x, t, q);
    if FAST {
        r
    } else {
        reduce(r, q.two_q)
    }
}

/// x mod b for x in [0, 2b), b < 2^63 (so x < 2^64 but x − b's sign tells).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn reduce(x: __m256i, b: __m256i) -> __m256i {
    let d = _mm256_sub_epi64(x, b);
    // Every caller has x < 2b ≤ 2^63: then x − b is in [−b, b), and its sign bit is set
    // exactly when x < b, so the blend keeps x there and x − b elsewhere.
    _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(d), _mm256_castsi256_pd(x), _mm256_castsi256_pd(d)))
}

/// Cooley–Tukey butterfly, inputs below 2L, outputs below 2L (L = 2q, or 4q when FAST).
#[inline]
#[target_feature(enable = "avx2")]
fn ct<const FAST: bool>(x: __m256i, y: __m256i, t: Tw, q: Q) -> (__m256i, __m256i) {
    let x = reduce(x, q.l);
    let v = mul_lazy::<FAST>(y, t, q);
    (_mm256_add_epi64(x, v), _mm256_sub_epi64(_mm256_add_epi64(x, q.l), v))
}

/// Gentleman–Sande butterfly, inputs below L, outputs below L.
#[inline]
#[target_feature(enable = "avx2")]
fn gs<const FAST: bool>(x: __m256i, y: __m256i, t: Tw, q: Q) -> (__m256i, __m256i) {
    let s = reduce(_mm256_add_epi64(x, y), q.l);
    let d = mul_lazy::<FAST>(_mm256_sub_epi64(_mm256_add_epi64(x, q.l), y), t, q);
    (s, d)
}

/// # Safety
/// `p` must be valid for reading 32 bytes (four lanes), and the CPU must have the
/// features this file is compiled for.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn ld(p: *const u64) -> __m256i {
    // SAFETY: the caller guarantees four readable words at p.
    unsafe { _mm256_loadu_si256(p as *const __m256i) }
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn st(p: *mut u64, v: __m256i) {
    // SAFETY: the caller guarantees four writable words at p.
    unsafe { _mm256_storeu_si256(p as *mut __m256i, v) }
}

/// Two twiddles (and companions) at p as [w0, w0, w1, w1].
///
/// # Safety
/// The twiddle pointers (or slices at `i`) must be valid for the lanes read, and the
/// CPU must have the features this file is compiled for.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn pairs(w: *const u64, wp: *const u64) -> Tw {
    // SAFETY: the caller guarantees two readable words at w and wp.
    let (a, b) = unsafe {
        (
            _mm256_castsi128_si256(_mm_loadu_si128(w as *const __m128i)),
            _mm256_castsi128_si256(_mm_loadu_si128(wp as *const __m128i)),
        )
    };
    tw(_mm256_permute4x64_epi64::<0b01_01_00_00>(a), _mm256_permute4x64_epi64::<0b01_01_00_00>(b))
}

/// In-place forward transform; input in [0, q), output in [0, q), bit-reversed order.
pub(crate) fn forward(_: Avx2, t: &Twiddles, a: &mut [u64]) {
    assert_eq!(a.len(), t.n);
    assert!(t.n >= 16 && t.m.value() < (1 << 61));
    // SAFETY: the token proves AVX2; the length and the prime's size are asserted above.
    unsafe {
        if t.m.value() < (1 << 60) {
            forward_avx2::<true>(t, a)
        } else {
            forward_avx2::<false>(t, a)
        }
    }
}

/// In-place inverse transform; input in [0, q), output in [0, q), natural order.
pub(crate) fn inverse(_: Avx2, t: &Twiddles, a: &mut [u64]) {
    assert_eq!(a.len(), t.n);
    assert!(t.n >= 16 && t.m.value() < (1 << 61));
    // SAFETY: as in `forward`.
    unsafe {
        if t.m.value() < (1 << 60) {
            inverse_avx2::<true>(t, a)
        } else {
            inverse_avx2::<false>(t, a)
        }
    }
}

/// # Safety
/// The CPU must support AVX2; `a.len() == tab.n`, `tab.n ≥ 16` and q < 2^61 (the safe
/// `forward` asserts all three).
#[target_feature(enable = "avx2")]
unsafe fn forward_avx2<const FAST: bool>(tab: &Twiddles, a: &mut [u64]) {
    let n = tab.n;
    let p = a.as_mut_ptr();
    let q = qv::<FAST>(tab.m.value());
    let (fw, fp) = (&tab.fwd, &tab.fwd_shoup);
    // Layers with gap ≥ 8, from gap n/2 down: two at a time, one alone if their count is odd.
    let big_layers = tab.log_n - 3;
    let mut m = 1usize; // blocks in the current layer
    if big_layers % 2 == 1 {
        let gap = n / 2;
        let w = tw1(fw[1], fp[1]);
        for j in (0..gap).step_by(4) {
            // SAFETY: j + gap + 4 <= n.
            unsafe {
                let (x, y) = ct::<FAST>(ld(p.add(j)), ld(p.add(j + gap)), w, q);
                st(p.add(j), x);
                st(p.add(j + gap), y);
            }
        }
        m = 2;
    }
    while m < n / 8 {
        // layers m (gap 2h) and 2m (gap h)
        let h = n / (4 * m);
        for i in 0..m {
            let w1 = tw1(fw[m + i], fp[m + i]);
            let w2 = tw1(fw[2 * m + 2 * i], fp[2 * m + 2 * i]);
            let w3 = tw1(fw[2 * m + 2 * i + 1], fp[2 * m + 2 * i + 1]);
            let base = 4 * i * h;
            for j in (base..base + h).step_by(4) {
                // SAFETY: j + 3h + 4 <= base + 4h <= n.
                unsafe {
                    let (a0, a2) = ct::<FAST>(ld(p.add(j)), ld(p.add(j + 2 * h)), w1, q);
                    let (a1, a3) = ct::<FAST>(ld(p.add(j + h)), ld(p.add(j + 3 * h)), w1, q);
                    let (a0, a1) = ct::<FAST>(a0, a1, w2, q);
                    let (a2, a3) = ct::<FAST>(a2, a3, w3, q);
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
    // Gaps 4, 2, 1 and the final reduction, one 8-word chunk at a time.
    for c in 0..n / 8 {
        // SAFETY: 8c + 8 <= n; the twiddle reads stay below n (indices n/8 + c, n/4 + 2c + 1, n/2 + 4c + 3).
        unsafe {
            let pc = p.add(8 * c);
            let (x, y) = ct::<FAST>(ld(pc), ld(pc.add(4)), tw1(fw[n / 8 + c], fp[n / 8 + c]), q);
            // gap 2: pairs (0,2) (1,3) (4,6) (5,7) of the chunk
            let u = _mm256_permute2x128_si256::<0x20>(x, y); // 0 1 4 5
            let v = _mm256_permute2x128_si256::<0x31>(x, y); // 2 3 6 7
            let (u, v) = ct::<FAST>(u, v, pairs(fw.as_ptr().add(n / 4 + 2 * c), fp.as_ptr().add(n / 4 + 2 * c)), q);
            // gap 1: pairs (0,1) (2,3) (4,5) (6,7)
            let x = _mm256_unpacklo_epi64(u, v); // 0 2 4 6
            let y = _mm256_unpackhi_epi64(u, v); // 1 3 5 7
            let w = tw(ld(fw.as_ptr().add(n / 2 + 4 * c)), ld(fp.as_ptr().add(n / 2 + 4 * c)));
            let (x, y) = ct::<FAST>(x, y, w, q);
            let (x, y) = if FAST { (reduce(x, q.l), reduce(y, q.l)) } else { (x, y) };
            let x = reduce(reduce(x, q.two_q), q.q);
            let y = reduce(reduce(y, q.two_q), q.q);
            let u = _mm256_unpacklo_epi64(x, y); // 0 1 4 5
            let v = _mm256_unpackhi_epi64(x, y); // 2 3 6 7
            st(pc, _mm256_permute2x128_si256::<0x20>(u, v));
            st(pc.add(4), _mm256_permute2x128_si256::<0x31>(u, v));
        }
    }
}

/// # Safety
/// The CPU must support AVX2; `a.len() == tab.n`, `tab.n ≥ 16` and q < 2^61 (the safe
/// `inverse` asserts all three).
#[target_feature(enable = "avx2")]
unsafe fn inverse_avx2<const FAST: bool>(tab: &Twiddles, a: &mut [u64]) {
    let n = tab.n;
    let p = a.as_mut_ptr();
    let q = qv::<FAST>(tab.m.value());
    let (iw, ip) = (&tab.inv, &tab.inv_shoup);
    // Gaps 1, 2, 4, one 8-word chunk at a time.
    for c in 0..n / 8 {
        // SAFETY: 8c + 8 <= n; twiddle reads as in the forward transform.
        unsafe {
            let pc = p.add(8 * c);
            let (a0, a1) = (ld(pc), ld(pc.add(4)));
            let u = _mm256_permute2x128_si256::<0x20>(a0, a1); // 0 1 4 5
            let v = _mm256_permute2x128_si256::<0x31>(a0, a1); // 2 3 6 7
            let x = _mm256_unpacklo_epi64(u, v); // 0 2 4 6
            let y = _mm256_unpackhi_epi64(u, v); // 1 3 5 7
            let w = tw(ld(iw.as_ptr().add(n / 2 + 4 * c)), ld(ip.as_ptr().add(n / 2 + 4 * c)));
            let (x, y) = gs::<FAST>(x, y, w, q);
            let u = _mm256_unpacklo_epi64(x, y); // 0 1 4 5
            let v = _mm256_unpackhi_epi64(x, y); // 2 3 6 7
            let (u, v) = gs::<FAST>(u, v, pairs(iw.as_ptr().add(n / 4 + 2 * c), ip.as_ptr().add(n / 4 + 2 * c)), q);
            let x = _mm256_permute2x128_si256::<0x20>(u, v); // 0 1 2 3
            let y = _mm256_permute2x128_si256::<0x31>(u, v); // 4 5 6 7
            let (x, y) = gs::<FAST>(x, y, tw1(iw[n / 8 + c], ip[n / 8 + c]), q);
            st(pc, x);
            st(pc.add(4), y);
        }
    }
    // Gaps 8 … n/2, two layers (g, 2g) at a time; with an odd count, gap n/2 goes alone
    // last. The last layer scales by 1/N: its outputs are (x+y)/N and (x−y)·w/N.
    let big_layers = tab.log_n - 3;
    let ninv = tw1(tab.n_inv, tab.n_inv_shoup);
    let wlast = tw1(tab.last_inv, tab.last_inv_shoup);
    let mut g = 8usize;
    let pair_end = if big_layers % 2 == 1 { n / 2 } else { n };
    while g < pair_end {
        let last = 4 * g == n;
        let blocks = n / (2 * g); // blocks in the layer of gap g
        for i in 0..blocks / 2 {
            let w1 = tw1(iw[blocks + 2 * i], ip[blocks + 2 * i]);
            let w2 = tw1(iw[blocks + 2 * i + 1], ip[blocks + 2 * i + 1]);
            let w3 = tw1(iw[blocks / 2 + i], ip[blocks / 2 + i]);
            let base = 4 * g * i;
            for j in (base..base + g).step_by(4) {
                // SAFETY: j + 3g + 4 <= base + 4g <= n.
                unsafe {
                    let (a0, a1) = gs::<FAST>(ld(p.add(j)), ld(p.add(j + g)), w1, q);
                    let (a2, a3) = gs::<FAST>(ld(p.add(j + 2 * g)), ld(p.add(j + 3 * g)), w2, q);
                    let (a0, a2, a1, a3) = if last {
                        let (a0, a2) = gs_last::<FAST>(a0, a2, ninv, wlast, q);
                        let (a1, a3) = gs_last::<FAST>(a1, a3, ninv, wlast, q);
                        (a0, a2, a1, a3)
                    } else {
                        let (a0, a2) = gs::<FAST>(a0, a2, w3, q);
                        let (a1, a3) = gs::<FAST>(a1, a3, w3, q);
                        (a0, a2, a1, a3)
                    };
                    st(p.add(j), a0);
                    st(p.add(j + g), a1);
                    st(p.add(j + 2 * g), a2);
                    st(p.add(j + 3 * g), a3);
                }
            }
        }
        g *= 4;
    }
    if big_layers % 2 == 1 {
        debug_assert_eq!(g, n / 2);
        for j in (0..g).step_by(4) {
            // SAFETY: j + g + 4 <= n.
            unsafe {
                let (x, y) = gs_last::<FAST>(ld(p.add(j)), ld(p.add(j + g)), ninv, wlast, q);
                st(p.add(j), x);
                st(p.add(j + g), y);
            }
        }
    }
}

/// The inverse's last butterfly with the 1/N scaling folded in; inputs below L, outputs in [0, q).
#[inline]
#[target_feature(enable = "avx2")]
fn gs_last<const FAST: bool>(x: __m256i, y: __m256i, ninv: Tw, w_ninv: Tw, q: Q) -> (__m256i, __m256i) {
    let s = mul_shoup(_mm256_add_epi64(x, y), ninv, q);
    let d = mul_shoup(_mm256_sub_epi64(_mm256_add_epi64(x, q.l), y), w_ninv, q);
    (reduce(reduce(s, q.two_q), q.q), reduce(reduce(d, q.two_q), q.q))
}
