//! AVX2 twins of the kernels above (four lanes; primes below 2^61, so every lazy value
//! here is below 2^63 and signed compares and sign-bit blends are exact). The Shoup
//! product is the NTT's (`transform::mul_shoup`, result in [0, 4q)).

use std::arch::x86_64::*;

use super::transform::{hi32, mul_shoup, qv, reduce, tw, tw1};
use crate::arith::Modulus;
use crate::isa::Avx2;

/// The 128-bit product of two lanes below 2^61, as (low 32 bits of the low word in
/// the low half, everything above 2^32 except the top product, the top product):
/// a·b = (p00 mod 2^32) + mid·2^32 + p11·2^64, mid = a0·b1 + a1·b0 + ⌊p00/2^32⌋ < 2^63.
#[inline]
#[target_feature(enable = "avx2")]
fn mul_wide(a: __m256i, b: __m256i) -> (__m256i, __m256i, __m256i) {
    let (a1, b1) = (hi32(a), hi32(b));
    let p00 = _mm256_mul_epu32(a, b);
    let mid = _mm256_add_epi64(_mm256_mul_epu32(a, b1), _mm256_mul_epu32(a1, b));
    let mid = _mm256_add_epi64(mid, _mm256_srli_epi64::<32>(p00));
    (p00, mid, _mm256_mul_epu32(a1, b1))
}

/// out = a·b (+ c·d) mod q, both factors variable, every value in [0, q), q < 2^61
/// (a = None: a is out itself). The scalar `Modulus::reduce_product` lane by lane:
/// t = ⌊x / 2^(bits−2)⌋ < 2^64 (x < 2q²), qhat = ⌊t·mu / 2^64⌋ exactly, from four
/// 32-bit products, then x − qhat·q < 3q mod 2^64 and two conditional subtractions,
/// so both agree bit for bit.
///
/// # Safety
/// The CPU must support AVX2 (the safe twin without the suffix takes the token that
/// proves it); the body asserts every length its accesses rely on.
#[target_feature(enable = "avx2")]
unsafe fn mul_barrett_unchecked(
    out: &mut [u64],
    a: Option<&[u64]>,
    b: &[u64],
    cd: Option<(&[u64], &[u64])>,
    m: &Modulus,
) {
    let n = out.len();
    assert!(a.is_none_or(|a| a.len() >= n) && b.len() >= n && n.is_multiple_of(4));
    assert!(cd.is_none_or(|(c, d)| c.len() >= n && d.len() >= n));
    let q = m.value();
    assert!(q < (1 << 61));
    let s = m.bits() as i64 - 2;
    let (sr, sl) = (_mm_set_epi64x(0, s), _mm_set_epi64x(0, 64 - s));
    let mu = _mm256_set1_epi64x(m.barrett_mu() as i64);
    let mu1 = hi32(mu);
    let qs = qv::<false>(q);
    let q1 = hi32(qs.q);
    let low = _mm256_set1_epi64x(0xffff_ffff);
    let op = out.as_mut_ptr();
    let ap = a.map_or(op as *const u64, |a| a.as_ptr());
    for i in (0..n).step_by(4) {
        // SAFETY: i + 4 <= n <= every slice's length (asserted above); each lane of out is
        // read (when a is None) before it is written, through the same pointer.
        unsafe {
            let ld = |p: *const u64| _mm256_loadu_si256(p.add(i) as *const __m256i);
            let (p00, mid, p11) = mul_wide(ld(ap), ld(b.as_ptr()));
            let (l32, mid, p11) = match cd {
                None => (_mm256_and_si256(p00, low), mid, p11),
                Some((c, d)) => {
                    // Sum the pieces: low halves < 2^33, mids < 2^63 + 2^33, no overflow.
                    let (r00, rmid, r11) = mul_wide(ld(c.as_ptr()), ld(d.as_ptr()));
                    let l = _mm256_add_epi64(_mm256_and_si256(p00, low), _mm256_and_si256(r00, low));
                    let mid = _mm256_add_epi64(_mm256_add_epi64(mid, rmid), _mm256_srli_epi64::<32>(l));
                    (_mm256_and_si256(l, low), mid, _mm256_add_epi64(p11, r11))
                }
            };
            let lo = _mm256_or_si256(l32, _mm256_slli_epi64::<32>(mid));
            let hi = _mm256_add_epi64(p11, _mm256_srli_epi64::<32>(mid));
            // t = x >> s (a shift by 64 when s = 0 gives 0, as wanted).
            let t = _mm256_or_si256(_mm256_srl_epi64(lo, sr), _mm256_sll_epi64(hi, sl));
            // qhat = ⌊t·mu / 2^64⌋: t1·m0 + ⌊t0·m0/2^32⌋ ≤ (2^32−1)² + 2^32 − 1 < 2^64 and
            // t0·m1 < 2^63 (mu ≤ 2^63), so no sum overflows.
            let t1 = hi32(t);
            let m1 = _mm256_add_epi64(_mm256_mul_epu32(t1, mu), _mm256_srli_epi64::<32>(_mm256_mul_epu32(t, mu)));
            let m2 = _mm256_add_epi64(_mm256_and_si256(m1, low), _mm256_mul_epu32(t, mu1));
            let qhat = _mm256_add_epi64(
                _mm256_mul_epu32(t1, mu1),
                _mm256_add_epi64(_mm256_srli_epi64::<32>(m1), _mm256_srli_epi64::<32>(m2)),
            );
            // qhat·q mod 2^64.
            let cross = _mm256_add_epi64(_mm256_mul_epu32(qhat, q1), _mm256_mul_epu32(hi32(qhat), qs.q));
            let qq = _mm256_add_epi64(_mm256_mul_epu32(qhat, qs.q), _mm256_slli_epi64::<32>(cross));
            let r = _mm256_sub_epi64(lo, qq);
            let r = reduce(reduce(r, qs.two_q), qs.q);
            _mm256_storeu_si256(op.add(i) as *mut __m256i, r);
        }
    }
}

/// [`mul_barrett_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
pub(crate) fn mul_barrett(
    _: Avx2,
    out: &mut [u64],
    a: Option<&[u64]>,
    b: &[u64],
    cd: Option<(&[u64], &[u64])>,
    m: &Modulus,
) {
    // SAFETY: the token proves the CPU features `mul_barrett_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { mul_barrett_unchecked(out, a, b, cd, m) }
}

/// # Safety
/// The CPU must support AVX2 (the safe twin without the suffix takes the token that
/// proves it); the body asserts every length its accesses rely on.
#[target_feature(enable = "avx2")]
unsafe fn mul_shoup_acc_unchecked(acc: &mut [u64], x: &[u64], w: &[u64], wp: &[u64], q: u64) {
    let n = acc.len();
    assert!(x.len() >= n && w.len() >= n && wp.len() >= n && n.is_multiple_of(4));
    let qs = qv::<false>(q);
    for i in (0..n).step_by(4) {
        // SAFETY: i + 4 <= n <= every slice's length.
        unsafe {
            let a = _mm256_loadu_si256(acc.as_ptr().add(i) as *const __m256i);
            let xv = _mm256_loadu_si256(x.as_ptr().add(i) as *const __m256i);
            let wv = _mm256_loadu_si256(w.as_ptr().add(i) as *const __m256i);
            let pv = _mm256_loadu_si256(wp.as_ptr().add(i) as *const __m256i);
            let r = reduce(mul_shoup(xv, tw(wv, pv), qs), qs.two_q);
            let s = reduce(_mm256_add_epi64(a, r), qs.two_q);
            _mm256_storeu_si256(acc.as_mut_ptr().add(i) as *mut __m256i, s);
        }
    }
}

/// [`mul_shoup_acc_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
pub(crate) fn mul_shoup_acc(_: Avx2, acc: &mut [u64], x: &[u64], w: &[u64], wp: &[u64], q: u64) {
    // SAFETY: the token proves the CPU features `mul_shoup_acc_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { mul_shoup_acc_unchecked(acc, x, w, wp, q) }
}

/// # Safety
/// The CPU must support AVX2 (the safe twin without the suffix takes the token that
/// proves it); the body asserts every length its accesses rely on.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
unsafe fn key_dot_unchecked(
    o0: &mut [u64],
    o1: &mut [u64],
    src: &[&[u64]],
    b: &[&[u64]],
    bp: &[&[u64]],
    a: &[&[u64]],
    ap: &[&[u64]],
    q: u64,
) {
    let n = o0.len();
    let digits = src.len();
    assert!(o1.len() == n && n.is_multiple_of(4));
    assert!([b, bp, a, ap].iter().all(|v| v.len() == digits));
    assert!([src, b, bp, a, ap].iter().all(|v| v.iter().all(|s| s.len() >= n)));
    let qs = qv::<false>(q);
    // One digit at a time over the whole limb, as in `fma::key_dot` (long sequential
    // streams for the prefetchers: the key comes from memory at N = 2^14).
    for d in 0..digits {
        let (x, b, bp, a, ap) = (src[d], b[d], bp[d], a[d], ap[d]);
        for i in (0..n).step_by(4) {
            // SAFETY: i + 4 <= n <= every slice's length (asserted above).
            unsafe {
                let ld = |s: &[u64]| _mm256_loadu_si256(s.as_ptr().add(i) as *const __m256i);
                let xv = ld(x);
                let r0 = reduce(mul_shoup(xv, tw(ld(b), ld(bp)), qs), qs.two_q);
                let r1 = reduce(mul_shoup(xv, tw(ld(a), ld(ap)), qs), qs.two_q);
                let (s0, s1) = if d == 0 {
                    (r0, r1)
                } else {
                    (reduce(_mm256_add_epi64(ld(o0), r0), qs.two_q), reduce(_mm256_add_epi64(ld(o1), r1), qs.two_q))
                };
                let (s0, s1) = if d + 1 == digits { (reduce(s0, qs.q), reduce(s1, qs.q)) } else { (s0, s1) };
                _mm256_storeu_si256(o0.as_mut_ptr().add(i) as *mut __m256i, s0);
                _mm256_storeu_si256(o1.as_mut_ptr().add(i) as *mut __m256i, s1);
            }
        }
    }
    if digits == 0 {
        o0.fill(0);
        o1.fill(0);
    }
}

/// [`key_dot_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) fn key_dot(
    _: Avx2,
    o0: &mut [u64],
    o1: &mut [u64],
    src: &[&[u64]],
    b: &[&[u64]],
    bp: &[&[u64]],
    a: &[&[u64]],
    ap: &[&[u64]],
    q: u64,
) {
    // SAFETY: the token proves the CPU features `key_dot_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { key_dot_unchecked(o0, o1, src, b, bp, a, ap, q) }
}

/// The 32-bit lane indices that put 64-bit words o0..o3 (two bits each of `e`) in order.
const fn block_indices() -> [[i32; 8]; 256] {
    let mut t = [[0i32; 8]; 256];
    let mut e = 0;
    while e < 256 {
        let mut k = 0;
        while k < 4 {
            let o = ((e >> (2 * k)) & 3) as i32;
            t[e][2 * k] = 2 * o;
            t[e][2 * k + 1] = 2 * o + 1;
            k += 1;
        }
        e += 1;
    }
    t
}
static BLOCK_INDICES: [[i32; 8]; 256] = block_indices();

/// dst by blocks of four: block b is src's block (blocks[b] >> 8), reordered by the two-bit
/// offsets in the low byte (one load, one lane shuffle, one store).
///
/// # Safety
/// The CPU must support AVX2 (the safe twin without the suffix takes the token that
/// proves it); the body asserts every length its accesses rely on.
#[target_feature(enable = "avx2")]
unsafe fn permute_blocks_unchecked(dst: &mut [u64], src: &[u64], blocks: &[u32]) {
    assert!(dst.len() == 4 * blocks.len());
    for (o, &e) in dst.chunks_exact_mut(4).zip(blocks) {
        let s = &src[(e >> 8) as usize * 4..][..4];
        // SAFETY: four words at s and at o (slice-checked); the table has 8 lanes per entry.
        unsafe {
            let idx = _mm256_loadu_si256(BLOCK_INDICES[(e & 0xff) as usize].as_ptr() as *const __m256i);
            let v = _mm256_loadu_si256(s.as_ptr() as *const __m256i);
            _mm256_storeu_si256(o.as_mut_ptr() as *mut __m256i, _mm256_permutevar8x32_epi32(v, idx));
        }
    }
}

/// [`permute_blocks_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
pub(crate) fn permute_blocks(_: Avx2, dst: &mut [u64], src: &[u64], blocks: &[u32]) {
    // SAFETY: the token proves the CPU features `permute_blocks_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { permute_blocks_unchecked(dst, src, blocks) }
}

#[derive(Clone, Copy, PartialEq)]
pub enum Op {
    Add,
    Sub,
    Reduce,
}

/// # Safety
/// The CPU must support AVX2 (the safe twin without the suffix takes the token that
/// proves it); the body asserts every length its accesses rely on.
#[target_feature(enable = "avx2")]
unsafe fn binary_unchecked(a: &mut [u64], b: Option<&[u64]>, q: u64, op: Op) {
    let n = a.len();
    assert!(b.is_none_or(|b| b.len() >= n) && n.is_multiple_of(4));
    let qv = _mm256_set1_epi64x(q as i64);
    for i in (0..n).step_by(4) {
        // SAFETY: i + 4 <= n <= both lengths.
        unsafe {
            let x = _mm256_loadu_si256(a.as_ptr().add(i) as *const __m256i);
            let r = match (op, b) {
                (Op::Add, Some(b)) => {
                    reduce(_mm256_add_epi64(x, _mm256_loadu_si256(b.as_ptr().add(i) as *const __m256i)), qv)
                }
                (Op::Sub, Some(b)) => {
                    add_if_negative(_mm256_sub_epi64(x, _mm256_loadu_si256(b.as_ptr().add(i) as *const __m256i)), qv)
                }
                _ => reduce(x, qv),
            };
            _mm256_storeu_si256(a.as_mut_ptr().add(i) as *mut __m256i, r);
        }
    }
}

/// [`binary_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
pub(crate) fn binary(_: Avx2, a: &mut [u64], b: Option<&[u64]>, q: u64, op: Op) {
    // SAFETY: the token proves the CPU features `binary_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { binary_unchecked(a, b, q, op) }
}

/// d + q where d (read as signed) is negative, d elsewhere.
#[inline]
#[target_feature(enable = "avx2")]
fn add_if_negative(d: __m256i, q: __m256i) -> __m256i {
    let t = _mm256_add_epi64(d, q);
    _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(d), _mm256_castsi256_pd(t), _mm256_castsi256_pd(d)))
}

/// # Safety
/// The CPU must support AVX2 (the safe twin without the suffix takes the token that
/// proves it); the body asserts every length its accesses rely on.
#[target_feature(enable = "avx2")]
unsafe fn sub_const_unchecked(a: &mut [u64], c: u64, q: u64) {
    let qv = _mm256_set1_epi64x(q as i64);
    let cv = _mm256_set1_epi64x(c as i64);
    assert!(a.len().is_multiple_of(4));
    for i in (0..a.len()).step_by(4) {
        // SAFETY: i + 4 <= a.len().
        unsafe {
            let d = _mm256_sub_epi64(_mm256_loadu_si256(a.as_ptr().add(i) as *const __m256i), cv);
            _mm256_storeu_si256(a.as_mut_ptr().add(i) as *mut __m256i, add_if_negative(d, qv));
        }
    }
}

/// [`sub_const_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
pub(crate) fn sub_const(_: Avx2, a: &mut [u64], c: u64, q: u64) {
    // SAFETY: the token proves the CPU features `sub_const_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { sub_const_unchecked(a, c, q) }
}

/// Inputs below 2^63, constants below q with 64-bit Shoup companions.
///
/// # Safety
/// The CPU must support AVX2 (the safe twin without the suffix takes the token that
/// proves it); the body asserts every length its accesses rely on.
#[target_feature(enable = "avx2")]
unsafe fn dot_const_unchecked(out: &mut [u64], ys: &[&[u64]], cs: &[(u64, u64)], q: u64) {
    let n = out.len();
    assert!(ys.len() == cs.len() && ys.iter().all(|y| y.len() >= n) && n.is_multiple_of(4));
    let qs = qv::<false>(q);
    let consts: Vec<_> = cs.iter().map(|&(c, cp)| tw1(c, cp)).collect();
    for i in (0..n).step_by(4) {
        let mut acc = _mm256_setzero_si256();
        for (y, &c) in ys.iter().zip(&consts) {
            // SAFETY: i + 4 <= n <= y.len().
            let yv = unsafe { _mm256_loadu_si256(y.as_ptr().add(i) as *const __m256i) };
            let r = reduce(mul_shoup(yv, c, qs), qs.two_q);
            acc = reduce(_mm256_add_epi64(acc, r), qs.two_q);
        }
        // SAFETY: i + 4 <= n.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(i) as *mut __m256i, reduce(acc, qs.q)) };
    }
}

/// [`dot_const_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
pub(crate) fn dot_const(_: Avx2, out: &mut [u64], ys: &[&[u64]], cs: &[(u64, u64)], q: u64) {
    // SAFETY: the token proves the CPU features `dot_const_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { dot_const_unchecked(out, ys, cs, q) }
}

/// # Safety
/// The CPU must support AVX2 (the safe twin without the suffix takes the token that
/// proves it); the body asserts every length its accesses rely on.
#[target_feature(enable = "avx2")]
unsafe fn add_mul_const_unchecked(out: &mut [u64], x: &[u64], h: u64, c: u64, cp: u64, q: u64) {
    let n = out.len();
    assert!(x.len() >= n && n.is_multiple_of(4));
    let qs = qv::<false>(q);
    let (hv, cv) = (_mm256_set1_epi64x(h as i64), tw1(c, cp));
    for i in (0..n).step_by(4) {
        // SAFETY: i + 4 <= n <= both lengths.
        unsafe {
            // (x + h)·c ≡ ((x + h) mod q)·c: the sum (< 2q) goes into the product unreduced.
            let s = _mm256_add_epi64(_mm256_loadu_si256(x.as_ptr().add(i) as *const __m256i), hv);
            let r = reduce(reduce(mul_shoup(s, cv, qs), qs.two_q), qs.q);
            _mm256_storeu_si256(out.as_mut_ptr().add(i) as *mut __m256i, r);
        }
    }
}

/// [`add_mul_const_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
pub(crate) fn add_mul_const(_: Avx2, out: &mut [u64], x: &[u64], h: u64, c: u64, cp: u64, q: u64) {
    // SAFETY: the token proves the CPU features `add_mul_const_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { add_mul_const_unchecked(out, x, h, c, cp, q) }
}

/// See `super::overflow_counts`. u64 → f64 without AVX-512: the high and low 32-bit
/// halves become exact doubles (2^84 + hi·2^32 and 2^52 + lo, by their bit patterns),
/// whose difference with the offsets and sum round once, as the scalar conversion does.
///
/// # Safety
/// The CPU must support AVX2 (the safe twin without the suffix takes the token that
/// proves it); the body asserts every length its accesses rely on.
#[target_feature(enable = "avx2")]
unsafe fn overflow_counts_unchecked(u: &mut [u32], ys: &[&[u64]], invs: &[f64]) {
    let n = u.len();
    assert!(ys.len() == invs.len() && ys.iter().all(|y| y.len() >= n) && n.is_multiple_of(4));
    let k = _mm_set1_epi32(ys.len() as i32);
    let lo_bits = _mm256_set1_epi64x(0x4330_0000_0000_0000);
    let hi_bits = _mm256_set1_epi64x(0x4530_0000_0000_0000);
    let offset = _mm256_set1_pd(19342813118337666422669312.0); // 2^84 + 2^52
    let low_mask = _mm256_set1_epi64x(0xffff_ffff);
    for i in (0..n).step_by(4) {
        let mut f = _mm256_setzero_pd();
        for (y, &inv) in ys.iter().zip(invs) {
            // SAFETY: i + 4 <= n <= y.len().
            let v = unsafe { _mm256_loadu_si256(y.as_ptr().add(i) as *const __m256i) };
            let lo = _mm256_castsi256_pd(_mm256_or_si256(_mm256_and_si256(v, low_mask), lo_bits));
            let hi = _mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64::<32>(v), hi_bits));
            let d = _mm256_add_pd(_mm256_sub_pd(hi, offset), lo);
            f = _mm256_add_pd(f, _mm256_mul_pd(d, _mm256_set1_pd(inv)));
        }
        let t = _mm_min_epu32(_mm256_cvttpd_epi32(f), k);
        // SAFETY: i + 4 <= n.
        unsafe { _mm_storeu_si128(u.as_mut_ptr().add(i) as *mut __m128i, t) };
    }
}

/// [`overflow_counts_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
pub(crate) fn overflow_counts(_: Avx2, u: &mut [u32], ys: &[&[u64]], invs: &[f64]) {
    // SAFETY: the token proves the CPU features `overflow_counts_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { overflow_counts_unchecked(u, ys, invs) }
}

/// # Safety
/// The CPU must support AVX2 (the safe twin without the suffix takes the token that
/// proves it); the body asserts every length its accesses rely on.
#[target_feature(enable = "avx2")]
unsafe fn sub_table_unchecked(a: &mut [u64], u: &[u32], table: &[u64], q: u64) {
    let n = a.len();
    assert!(u.len() >= n && n.is_multiple_of(4));
    let qv = _mm256_set1_epi64x(q as i64);
    if !table.is_empty() && table.len() <= 8 {
        // A short table (the overflow counts go up to the number of primes) is selected
        // with compares and blends: a gather is far slower on Zen 2. Every index is
        // below the table's length (the callers' counts are capped), checked in tests.
        debug_assert!(u[..n].iter().all(|&i| (i as usize) < table.len()));
        let entries: Vec<__m256i> = table.iter().map(|&t| _mm256_set1_epi64x(t as i64)).collect();
        for i in (0..n).step_by(4) {
            // SAFETY: i + 4 <= n <= both lengths.
            unsafe {
                let idx = _mm256_cvtepu32_epi64(_mm_loadu_si128(u.as_ptr().add(i) as *const __m128i));
                let mut f = entries[0];
                for (j, &e) in entries.iter().enumerate().skip(1) {
                    let hit = _mm256_cmpeq_epi64(idx, _mm256_set1_epi64x(j as i64));
                    f = _mm256_blendv_epi8(f, e, hit);
                }
                let x = _mm256_loadu_si256(a.as_ptr().add(i) as *const __m256i);
                let r = add_if_negative(_mm256_sub_epi64(x, f), qv);
                _mm256_storeu_si256(a.as_mut_ptr().add(i) as *mut __m256i, r);
            }
        }
        return;
    }
    assert!(u[..n].iter().all(|&i| (i as usize) < table.len()));
    for i in (0..n).step_by(4) {
        // SAFETY: i + 4 <= n <= both lengths; every index is inside the table (asserted).
        unsafe {
            let idx = _mm_loadu_si128(u.as_ptr().add(i) as *const __m128i);
            let f = _mm256_i32gather_epi64::<8>(table.as_ptr() as *const i64, idx);
            let x = _mm256_loadu_si256(a.as_ptr().add(i) as *const __m256i);
            _mm256_storeu_si256(a.as_mut_ptr().add(i) as *mut __m256i, add_if_negative(_mm256_sub_epi64(x, f), qv));
        }
    }
}

/// [`sub_table_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
pub(crate) fn sub_table(_: Avx2, a: &mut [u64], u: &[u32], table: &[u64], q: u64) {
    // SAFETY: the token proves the CPU features `sub_table_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { sub_table_unchecked(a, u, table, q) }
}

/// # Safety
/// The CPU must support AVX2 (the safe twin without the suffix takes the token that
/// proves it); the body asserts every length its accesses rely on.
#[target_feature(enable = "avx2")]
unsafe fn sub_mul_const_unchecked(x: &mut [u64], y: &[u64], w: u64, wp: u64, q: u64) {
    let n = x.len();
    assert!(y.len() >= n && n.is_multiple_of(4));
    let qs = qv::<false>(q);
    let c = tw1(w, wp);
    for i in (0..n).step_by(4) {
        // SAFETY: i + 4 <= n <= both lengths.
        unsafe {
            let a = _mm256_loadu_si256(x.as_ptr().add(i) as *const __m256i);
            let b = _mm256_loadu_si256(y.as_ptr().add(i) as *const __m256i);
            let d = _mm256_sub_epi64(_mm256_add_epi64(a, qs.q), b);
            let r = reduce(reduce(mul_shoup(d, c, qs), qs.two_q), qs.q);
            _mm256_storeu_si256(x.as_mut_ptr().add(i) as *mut __m256i, r);
        }
    }
}

/// [`sub_mul_const_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
pub(crate) fn sub_mul_const(_: Avx2, x: &mut [u64], y: &[u64], w: u64, wp: u64, q: u64) {
    // SAFETY: the token proves the CPU features `sub_mul_const_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { sub_mul_const_unchecked(x, y, w, wp, q) }
}
