//! Modular arithmetic in double precision, for primes below 2^50 on AVX2 CPUs with FMA.
//!
//! AVX2 has no 64-bit integer multiply: an integer Shoup product takes seven 32-bit
//! multiplies. For q < 2^50 a double does the same work in four operations. With w < q
//! and an integer-valued y (|y| < 2^52):
//!
//! ```text
//! h = fl(y·w)            the product, rounded
//! l = fma(y, w, −h)      its rounding error, exactly (so y·w = h + l)
//! k = round(y · (w/q))   the quotient to the nearest integer, off by at most 1
//! r = fma(−k, q, h) + l  = y·w − k·q exactly: an integer below 2^53 on both steps
//! ```
//!
//! so r ≡ y·w (mod q) with |r| ≤ q·(1/2 + |y|·2^-52): centered, and small enough that a
//! few can be added before a reduction. Values live in the caller's u64 buffers as f64
//! bit patterns between kernels' first and last passes; both ends convert exactly.

pub(crate) mod transform;

use crate::isa::Fma;

use std::arch::x86_64::*;

/// Primes below this take the floating-point kernels.
pub(crate) const MAX_Q: u64 = 1 << 50;
/// 2^52: adding it to a double in [0, 2^52) puts the integer in the low mantissa bits.
pub(crate) const MAGIC: f64 = 4_503_599_627_370_496.0;

/// Whether the floating-point kernels serve this prime on this CPU.
pub(crate) fn usable(q: u64) -> bool {
    token(q).is_some()
}

/// The token the kernels here take, where they serve this prime on this CPU.
pub(crate) fn token(q: u64) -> Option<Fma> {
    crate::isa::fma_tier().filter(|_| q < MAX_Q)
}

/// A twiddle and its quotient factor w/q, broadcast or per lane.
#[derive(Clone, Copy)]
pub(crate) struct Tw {
    pub w: __m256d,
    pub wq: __m256d,
}

#[derive(Clone, Copy)]
pub(crate) struct Q {
    pub q: __m256d,
    pub q_inv: __m256d,
}

#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn tw1(w: f64, wq: f64) -> Tw {
    Tw { w: _mm256_set1_pd(w), wq: _mm256_set1_pd(wq) }
}

/// y·w mod q, centered: |result| ≤ q·(1/2 + |y|·2^-52) (module comment).
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn mul_mod(y: __m256d, t: Tw, q: Q) -> __m256d {
    let h = _mm256_mul_pd(y, t.w);
    let l = _mm256_fmsub_pd(y, t.w, h);
    let k = _mm256_round_pd::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_pd(y, t.wq));
    _mm256_add_pd(_mm256_fnmadd_pd(k, q.q, h), l)
}

/// x mod q, centered: |result| ≤ q/2 + |x|·2^-52 + 1.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn reduce(x: __m256d, q: Q) -> __m256d {
    let k = _mm256_round_pd::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_pd(x, q.q_inv));
    _mm256_fnmadd_pd(k, q.q, x)
}

/// Any integer-valued |x| < 2^51 to its residue in [0, q) as an integer lane: the centered
/// reduction leaves |r| ≤ q/2 + 1, then q is added where r is negative.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn to_u64(x: __m256d, q: Q) -> __m256i {
    let r = reduce(x, q);
    let r = _mm256_add_pd(r, _mm256_and_pd(_mm256_cmp_pd::<_CMP_LT_OQ>(r, _mm256_setzero_pd()), q.q));
    let m = _mm256_set1_pd(MAGIC);
    _mm256_xor_si256(_mm256_castpd_si256(_mm256_add_pd(r, m)), _mm256_castpd_si256(m))
}

/// Words below 2^52 to doubles, exactly.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn to_f64(x: __m256i) -> __m256d {
    let m = _mm256_set1_pd(MAGIC);
    _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(x, _mm256_castpd_si256(m))), m)
}

/// # Safety
/// `p` must be valid for reading 32 bytes (four lanes), and the CPU must have the
/// features this file is compiled for.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn ld(p: *const f64) -> __m256d {
    // SAFETY: the caller guarantees four readable words at p.
    unsafe { _mm256_loadu_pd(p) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn st(p: *mut f64, v: __m256d) {
    // SAFETY: the caller guarantees four writable words at p.
    unsafe { _mm256_storeu_pd(p, v) }
}

/// Two twiddles at i as [w_i, w_i, w_i+1, w_i+1].
///
/// # Safety
/// The twiddle pointers (or slices at `i`) must be valid for the lanes read, and the
/// CPU must have the features this file is compiled for.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn pairs(w: &[f64], wq: &[f64], i: usize) -> Tw {
    let dup = |v: &[f64]| {
        // SAFETY: the slice index below checked two readable values.
        let lo = unsafe { _mm256_castpd128_pd256(_mm_loadu_pd(v[i..i + 2].as_ptr())) };
        _mm256_permute4x64_pd::<0b01_01_00_00>(lo)
    };
    Tw { w: dup(w), wq: dup(wq) }
}

/// The key-switching inner product of one limb: o0 = Σ_d src_d·b_d, o1 = Σ_d src_d·a_d
/// mod q, fully reduced, with the key words b, a given as f64 bit patterns
/// (`key_companion` in the dispatch). Unlike the integer kernel it needs no Shoup companions (the
/// quotient comes from h/q): three streams per digit instead of five.
///
/// Sources d with `src_f64[d]` are doubles too (|x| < q, as `transform`'s `forward_f64`
/// leaves them); the others words (a digit's limbs of its own primes).
///
/// # Safety
/// The CPU must have AVX2 and FMA; q < 2^50; src words below q (or, where `src_f64`,
/// doubles of integers |x| < q); b, a doubles of integers below q.
#[target_feature(enable = "avx2,fma")]
unsafe fn key_dot_unchecked(
    o0: &mut [u64],
    o1: &mut [u64],
    src: &[&[u64]],
    src_f64: &[bool],
    b: &[&[u64]],
    a: &[&[u64]],
    q: u64,
) {
    let n = o0.len();
    let digits = src.len();
    assert!(o1.len() == n && n.is_multiple_of(4) && q < MAX_Q);
    assert!(b.len() == digits && a.len() == digits && src_f64.len() == digits);
    assert!([src, b, a].iter().all(|v| v.iter().all(|s| s.len() >= n)));
    if digits == 0 {
        o0.fill(0);
        o1.fill(0);
        return;
    }
    let qf = q as f64;
    let qs = Q { q: _mm256_set1_pd(qf), q_inv: _mm256_set1_pd(1.0 / qf) };
    // Each product is below 0.875q + 1 (|src| < q; three roundings put the quotient within
    // 3/8 of its nearest integer); the sums are reduced every `per_group` digits.
    let per_group = terms_per_reduction(0.875 * qf + 1.0, qf);
    let (p0, p1) = (o0.as_mut_ptr() as *mut f64, o1.as_mut_ptr() as *mut f64);
    // One digit at a time over the whole limb, the sums in o0 and o1 (L2): each of the five
    // streams (digit, two key words, two sums) then runs sequentially for the full limb.
    // Blocks of 512 lanes (sums kept in L1) broke every stream into 4 KB bursts that the
    // prefetchers kept losing: at N = 2^14, where the key comes from memory, the
    // whole-limb order made a key switch 5% faster.
    for d in 0..digits {
        let (x, kb, ka) = (src[d].as_ptr(), b[d].as_ptr(), a[d].as_ptr());
        let (red, x_f64) = (d > 0 && d.is_multiple_of(per_group), src_f64[d]);
        for i in (0..n).step_by(4) {
            // SAFETY: i + 4 <= n <= every slice's length (asserted above).
            unsafe {
                let xv = if x_f64 {
                    _mm256_loadu_pd(x.add(i) as *const f64)
                } else {
                    to_f64(_mm256_loadu_si256(x.add(i) as *const __m256i))
                };
                let ldf = |p: *const u64| _mm256_loadu_pd(p.add(i) as *const f64);
                let r0 = mul_mod_q(xv, ldf(kb), qs);
                let r1 = mul_mod_q(xv, ldf(ka), qs);
                let (s0, s1) = if d == 0 {
                    (r0, r1)
                } else {
                    let (a0, a1) = (ld(p0.add(i)), ld(p1.add(i)));
                    let (a0, a1) = if red { (reduce(a0, qs), reduce(a1, qs)) } else { (a0, a1) };
                    (_mm256_add_pd(a0, r0), _mm256_add_pd(a1, r1))
                };
                if d + 1 == digits {
                    _mm256_storeu_si256(p0.add(i) as *mut __m256i, to_u64(s0, qs));
                    _mm256_storeu_si256(p1.add(i) as *mut __m256i, to_u64(s1, qs));
                } else {
                    st(p0.add(i), s0);
                    st(p1.add(i), s1);
                }
            }
        }
    }
}

/// [`key_dot_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) fn key_dot(
    _: Fma,
    o0: &mut [u64],
    o1: &mut [u64],
    src: &[&[u64]],
    src_f64: &[bool],
    b: &[&[u64]],
    a: &[&[u64]],
    q: u64,
) {
    // SAFETY: the token proves the CPU features `key_dot_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { key_dot_unchecked(o0, o1, src, src_f64, b, a, q) }
}

/// out[i] = Σ_j y_j[i]·c_j mod q, fully reduced, for constants c_j < q < 2^50 and inputs
/// y below 2^50 (the base conversions' inner products).
///
/// # Safety
/// The CPU must have AVX2 and FMA; q < 2^50; every input below 2^50.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_const_unchecked(out: &mut [u64], ys: &[&[u64]], cs: &[u64], q: u64) {
    let n = out.len();
    assert!(n.is_multiple_of(4) && q < MAX_Q && cs.len() == ys.len());
    assert!(ys.iter().all(|y| y.len() >= n));
    let qf = q as f64;
    let qs = Q { q: _mm256_set1_pd(qf), q_inv: _mm256_set1_pd(1.0 / qf) };
    // Products below q·(1/2 + 2^50·2^-52) + 1 = 0.75q + 1; sums reduced before they could pass 2^51.
    let product = 0.75 * qf + 1.0;
    let o = out.as_mut_ptr();
    // Groups of inputs whose products can be summed unreduced.
    let per_group = terms_per_reduction(product, qf);
    let tws: Vec<Tw> = cs.iter().map(|&c| tw1(c as f64, c as f64 / qf)).collect();
    for i in (0..n).step_by(4) {
        let mut acc = _mm256_setzero_pd();
        for (g, (chunk, tws)) in ys.chunks(per_group).zip(tws.chunks(per_group)).enumerate() {
            if g > 0 {
                acc = reduce(acc, qs);
            }
            for (y, &t) in chunk.iter().zip(tws) {
                // SAFETY: i + 4 <= n <= y.len() (asserted above).
                let yv = unsafe { to_f64(_mm256_loadu_si256(y.as_ptr().add(i) as *const __m256i)) };
                acc = _mm256_add_pd(acc, mul_mod(yv, t, qs));
            }
        }
        // SAFETY: i + 4 <= n.
        unsafe { _mm256_storeu_si256(o.add(i) as *mut __m256i, to_u64(acc, qs)) };
    }
}

/// [`dot_const_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
pub(crate) fn dot_const(_: Fma, out: &mut [u64], ys: &[&[u64]], cs: &[u64], q: u64) {
    // SAFETY: the token proves the CPU features `dot_const_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { dot_const_unchecked(out, ys, cs, q) }
}

/// How many products (each below `product`) a sum takes between centered reductions, the
/// first group included, so that it stays below 2^51 (each reduction leaves q/2 + 1): the
/// one schedule of `key_dot`, `dot_const` and `convert`.
fn terms_per_reduction(product: f64, q: f64) -> usize {
    ((((1u64 << 51) as f64 - (0.5 * q + 1.0)) / product) as usize).max(1)
}

/// Where `convert` splits an input of 2^50 or more: both halves below 2^35.
const SPLIT: i32 = 26;

/// One output prime of an exact base conversion (see `rns::BaseConverter::convert`).
pub(crate) struct ConvTarget<'a> {
    pub out: &'a mut [u64],
    pub q: u64,
    /// B̂_j mod q, one per input
    pub hat: Vec<u64>,
    /// B mod q and ⌊B/2⌋ mod q: the output is Σ_j y_j·B̂_j − u·B − ⌊B/2⌋
    pub b: u64,
    pub half: u64,
    /// Leave the output as centered doubles (|x| ≤ q/2 + 1, f64 bit patterns) for the
    /// floating-point transform that reads it next, instead of words in [0, q).
    pub f64_out: bool,
}

/// The exact, centered base conversion's inner products for every target at once, with
/// its correction folded in: out = Σ_j y_j·B̂_j − u·B − ⌊B/2⌋ mod q, with the overflow
/// counts u given. Lanes go in blocks that stay in L1 while every target reads them
/// (one target at a time over all N lanes streamed the inputs from L3 once per target).
///
/// Inputs at or above 2^50 (residues of wider primes, below 2^61) are split at bit 26
/// into two exact doubles, y_hi·(2^26·B̂_j) + y_lo·B̂_j: one more product for that input.
///
/// # Safety
/// The CPU must have AVX2 and FMA; every target prime below 2^50; every input below 2^61,
/// and below 2^50 where `wide[j]` is false.
#[target_feature(enable = "avx2,fma")]
unsafe fn convert_unchecked(targets: &mut [ConvTarget], ys: &[&[u64]], wide: &[bool], over: &[u32]) {
    let n = over.len();
    let k = ys.len();
    assert!(n.is_multiple_of(4) && ys.iter().all(|y| y.len() >= n));
    assert!(targets.iter().all(|t| t.q < MAX_Q && t.out.len() >= n && t.hat.len() == k));
    assert!(wide.len() == k);
    struct Prep {
        qs: Q,
        tws: Vec<Tw>,
        /// 2^26·B̂_j for the split inputs
        tws_hi: Vec<Tw>,
        b: Tw,
        half: __m256d,
        per_group: usize,
        /// The sum, minus u·B and ⌊B/2⌋ unreduced, stays below 2^52 (exact): else the
        /// sum is reduced and u·B taken modulo q first.
        direct: bool,
    }
    assert!(k > 0, "a conversion from no primes");
    let terms = k + wide.iter().filter(|&&w| w).count();
    let prep: Vec<Prep> = targets
        .iter()
        .map(|t| {
            let qf = t.q as f64;
            // Products below 0.75q + 1 (inputs below 2^50); a sum is reduced (to q/2 + 1)
            // before the product that could take it past 2^51.
            let product = 0.75 * qf + 1.0;
            let per_group = terms_per_reduction(product, qf);
            let sum =
                if terms <= per_group { terms as f64 * product } else { 0.5 * qf + 1.0 + per_group as f64 * product };
            // u ≤ k, B mod q and ⌊B/2⌋ mod q below q.
            let direct = sum + (k as f64 + 1.0) * qf < MAGIC;
            Prep {
                qs: Q { q: _mm256_set1_pd(qf), q_inv: _mm256_set1_pd(1.0 / qf) },
                tws: t.hat.iter().map(|&c| tw1(c as f64, c as f64 / qf)).collect(),
                tws_hi: t
                    .hat
                    .iter()
                    .map(|&c| {
                        let c = ((c as u128) << SPLIT) % t.q as u128;
                        tw1(c as f64, c as f64 / qf)
                    })
                    .collect(),
                b: tw1(t.b as f64, t.b as f64 / qf),
                half: _mm256_set1_pd(t.half as f64),
                per_group,
                direct,
            }
        })
        .collect();
    let yp: Vec<*const u64> = ys.iter().map(|y| y.as_ptr()).collect();
    // Blocks of lanes that stay in L1 while every target reads them. Within a block the
    // sums go input by input through a small accumulator array: each step is then a short,
    // independent chain (load, product, add), where summing all inputs of four lanes at
    // once made one long chain per lane group and left the FP units waiting on latency.
    const BLOCK: usize = 256;
    let mut acc = [_mm256_setzero_pd(); BLOCK / 4];
    let mask = _mm256_set1_epi64x((1 << SPLIT) - 1);
    for start in (0..n).step_by(BLOCK) {
        let lanes = (start + BLOCK).min(n) - start;
        let acc = &mut acc[..lanes / 4];
        for (t, p) in targets.iter_mut().zip(&prep) {
            let mut done = 0usize;
            for (j, &y) in yp.iter().enumerate() {
                // SAFETY: start + lanes <= n <= the input's length (asserted above).
                let y = unsafe { y.add(start) };
                let halves = if wide[j] { 2 } else { 1 };
                for half in 0..halves {
                    let (first, red) = (done == 0, done > 0 && done.is_multiple_of(p.per_group));
                    done += 1;
                    let tw = if wide[j] && half == 0 { p.tws_hi[j] } else { p.tws[j] };
                    for (v, a) in acc.iter_mut().enumerate() {
                        // SAFETY: 4v + 4 <= lanes words from y.
                        let yv = unsafe { _mm256_loadu_si256(y.add(4 * v) as *const __m256i) };
                        let x = match (wide[j], half) {
                            (false, _) => to_f64(yv),
                            (true, 0) => to_f64(_mm256_srli_epi64::<SPLIT>(yv)),
                            _ => to_f64(_mm256_and_si256(yv, mask)),
                        };
                        let r = mul_mod(x, tw, p.qs);
                        *a = if first {
                            r
                        } else if red {
                            _mm256_add_pd(reduce(*a, p.qs), r)
                        } else {
                            _mm256_add_pd(*a, r)
                        };
                    }
                }
            }
            // SAFETY: start + lanes <= n = over.len() <= out.len().
            let (o, u) = unsafe { (t.out.as_mut_ptr().add(start), over.as_ptr().add(start)) };
            for (v, a) in acc.iter().enumerate() {
                // SAFETY: 4v + 4 <= lanes words at o and u.
                unsafe {
                    let c = _mm256_cvtepi32_pd(_mm_loadu_si128(u.add(4 * v) as *const __m128i));
                    let a = if p.direct {
                        _mm256_sub_pd(_mm256_fnmadd_pd(c, p.b.w, *a), p.half)
                    } else {
                        // Many inputs, or wide targets: every term below 2q first.
                        _mm256_sub_pd(_mm256_sub_pd(reduce(*a, p.qs), mul_mod(c, p.b, p.qs)), p.half)
                    };
                    if t.f64_out {
                        st(o.add(4 * v) as *mut f64, reduce(a, p.qs));
                    } else {
                        _mm256_storeu_si256(o.add(4 * v) as *mut __m256i, to_u64(a, p.qs));
                    }
                }
            }
        }
    }
}

/// [`convert_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
pub(crate) fn convert(_: Fma, targets: &mut [ConvTarget], ys: &[&[u64]], wide: &[bool], over: &[u32]) {
    // SAFETY: the token proves the CPU features `convert_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { convert_unchecked(targets, ys, wide, over) }
}

/// Runs `f` on every group of four lanes i < n, with the inputs' lanes loaded as doubles
/// (converted from words; with Y_F64 the second input holds doubles of integers |x| < q,
/// as `forward_f64` leaves them) and a fully reduced store to `out`, which may be one of the inputs
/// (each group of lanes is read before it is written). The element-wise kernels are this loop.
///
/// # Safety
/// AVX2 and FMA; n a multiple of 4; n words readable at every input and writable at out.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn lanes<const K: usize, const Y_F64: bool>(
    out: *mut u64,
    n: usize,
    ins: [*const u64; K],
    q: u64,
    f: impl Fn(&[__m256d; K], Q) -> __m256d,
) {
    assert!(n.is_multiple_of(4) && q < MAX_Q);
    let qf = q as f64;
    let qs = Q { q: _mm256_set1_pd(qf), q_inv: _mm256_set1_pd(1.0 / qf) };
    for i in (0..n).step_by(4) {
        // SAFETY: i + 4 <= n words at each pointer (the caller's contract).
        unsafe {
            let mut v = [_mm256_setzero_pd(); K];
            for (k, x) in ins.iter().enumerate() {
                // Input 1 (y) is already doubles where Y_F64 says so.
                v[k] = if Y_F64 && k == 1 {
                    _mm256_loadu_pd(x.add(i) as *const f64)
                } else {
                    to_f64(_mm256_loadu_si256(x.add(i) as *const __m256i))
                };
            }
            _mm256_storeu_si256(out.add(i) as *mut __m256i, to_u64(f(&v, qs), qs));
        }
    }
}

/// out = a·b mod q. Products of two variables below q: |each| < 0.875q + 1.
///
/// # Safety
/// The CPU must have AVX2 and FMA; q < 2^50; inputs below q.
#[target_feature(enable = "avx2,fma")]
unsafe fn mul_into_unchecked(out: &mut [u64], a: &[u64], b: &[u64], q: u64) {
    let n = out.len();
    assert!(a.len() >= n && b.len() >= n);
    // SAFETY: lengths checked; the caller guarantees the features and q.
    unsafe { lanes::<_, false>(out.as_mut_ptr(), n, [a.as_ptr(), b.as_ptr()], q, |v, qs| mul_mod_q(v[0], v[1], qs)) };
}

/// [`mul_into_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
pub(crate) fn mul_into(_: Fma, out: &mut [u64], a: &[u64], b: &[u64], q: u64) {
    // SAFETY: the token proves the CPU features `mul_into_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { mul_into_unchecked(out, a, b, q) }
}

/// out = a·b + c·d mod q.
///
/// # Safety
/// As `mul_into`.
#[target_feature(enable = "avx2,fma")]
unsafe fn mul_add_into_unchecked(out: &mut [u64], a: &[u64], b: &[u64], c: &[u64], d: &[u64], q: u64) {
    let n = out.len();
    assert!([a, b, c, d].iter().all(|x| x.len() >= n));
    let ins = [a.as_ptr(), b.as_ptr(), c.as_ptr(), d.as_ptr()];
    let f = |v: &[__m256d; 4], qs| _mm256_add_pd(mul_mod_q(v[0], v[1], qs), mul_mod_q(v[2], v[3], qs));
    // SAFETY: lengths checked; the caller guarantees the features and q.
    unsafe { lanes::<_, false>(out.as_mut_ptr(), n, ins, q, f) };
}

/// [`mul_add_into_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
pub(crate) fn mul_add_into(_: Fma, out: &mut [u64], a: &[u64], b: &[u64], c: &[u64], d: &[u64], q: u64) {
    // SAFETY: the token proves the CPU features `mul_add_into_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { mul_add_into_unchecked(out, a, b, c, d, q) }
}

/// x = (x − y)·w mod q for a constant w < q.
///
/// # Safety
/// As `mul_into`; w < q.
#[target_feature(enable = "avx2,fma")]
unsafe fn sub_mul_const_unchecked(x: &mut [u64], y: &[u64], w: u64, q: u64) {
    let t = tw1(w as f64, w as f64 / q as f64);
    let n = x.len();
    assert!(y.len() >= n);
    let p = x.as_mut_ptr();
    // SAFETY: lengths checked; x is read and written in place (allowed by `lanes`).
    unsafe {
        lanes::<_, false>(p, n, [p as *const u64, y.as_ptr()], q, |v, qs| mul_mod(_mm256_sub_pd(v[0], v[1]), t, qs))
    };
}

/// [`sub_mul_const_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
pub(crate) fn sub_mul_const(_: Fma, x: &mut [u64], y: &[u64], w: u64, q: u64) {
    // SAFETY: the token proves the CPU features `sub_mul_const_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { sub_mul_const_unchecked(x, y, w, q) }
}

/// y = (x − y)·w + e mod q for a constant w < q (the result in y's buffer).
///
/// # Safety
/// As `mul_into`; w < q; with Y_F64, y holds doubles of integers |y| < q.
#[target_feature(enable = "avx2,fma")]
unsafe fn sub_from_mul_const_add_unchecked<const Y_F64: bool>(y: &mut [u64], x: &[u64], w: u64, e: &[u64], q: u64) {
    assert!(x.len() >= y.len() && e.len() >= y.len());
    let p = y.as_mut_ptr();
    // SAFETY: lengths checked; y is read and written in place (allowed by `lanes`).
    unsafe { sub_mul_const_add_raw::<Y_F64>(p, x.as_ptr(), p, e.as_ptr(), y.len(), w, q) }
}

/// [`sub_from_mul_const_add_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
pub(crate) fn sub_from_mul_const_add<const Y_F64: bool>(_: Fma, y: &mut [u64], x: &[u64], w: u64, e: &[u64], q: u64) {
    // SAFETY: the token proves the CPU features `sub_from_mul_const_add_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { sub_from_mul_const_add_unchecked::<Y_F64>(y, x, w, e, q) }
}

/// y = (x − y)·w + Σ a_k·b_k mod q, with no, one or two products (a_k, b_k): ModDown's
/// last step with the tensor product's d0 = a0·b0 or d1 = a0·b1 + a1·b0 computed here
/// instead of being stored by an earlier pass and read back.
///
/// # Safety
/// As `sub_from_mul_const_add`; every product's inputs below q; at most two products.
#[target_feature(enable = "avx2,fma")]
unsafe fn sub_from_mul_const_add_products_unchecked<const Y_F64: bool>(
    y: &mut [u64],
    x: &[u64],
    w: u64,
    prods: &[(&[u64], &[u64])],
    q: u64,
) {
    let n = y.len();
    assert!(x.len() >= n && prods.iter().all(|(a, b)| a.len() >= n && b.len() >= n));
    let t = tw1(w as f64, w as f64 / q as f64);
    let (p, xp) = (y.as_mut_ptr(), x.as_ptr());
    // |(x − y)·w| ≤ q·(1/2 + 2q·2^-52) < q (|x − y| < 2q) and each product below
    // 0.875q + 1: one product leaves the sum below 1.9q + 1 < 2^51 as `to_u64` needs; with
    // two, their sum (up to 1.75q + 2, which could take the total past 2^51 for q near
    // 2^50) is reduced first.
    let head = move |v0: __m256d, v1: __m256d, qs| mul_mod(_mm256_sub_pd(v0, v1), t, qs);
    // SAFETY: (all arms) lengths checked; y read and written in place (allowed by `lanes`).
    unsafe {
        match prods {
            [] => lanes::<_, Y_F64>(p, n, [xp, p as *const u64], q, |v, qs| head(v[0], v[1], qs)),
            [(a, b)] => lanes::<_, Y_F64>(p, n, [xp, p as *const u64, a.as_ptr(), b.as_ptr()], q, |v, qs| {
                _mm256_add_pd(head(v[0], v[1], qs), mul_mod_q(v[2], v[3], qs))
            }),
            [(a, b), (c, d)] => {
                let ins = [xp, p as *const u64, a.as_ptr(), b.as_ptr(), c.as_ptr(), d.as_ptr()];
                lanes::<_, Y_F64>(p, n, ins, q, |v, qs| {
                    let e = reduce(_mm256_add_pd(mul_mod_q(v[2], v[3], qs), mul_mod_q(v[4], v[5], qs)), qs);
                    _mm256_add_pd(head(v[0], v[1], qs), e)
                })
            }
            _ => panic!("at most two products"),
        }
    }
}

/// [`sub_from_mul_const_add_products_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
pub(crate) fn sub_from_mul_const_add_products<const Y_F64: bool>(
    _: Fma,
    y: &mut [u64],
    x: &[u64],
    w: u64,
    prods: &[(&[u64], &[u64])],
    q: u64,
) {
    // SAFETY: the token proves the CPU features `sub_from_mul_const_add_products_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { sub_from_mul_const_add_products_unchecked::<Y_F64>(y, x, w, prods, q) }
}

/// out = (x − y)·w + e mod q, out being x or y or neither.
///
/// # Safety
/// As `lanes`, with x, y, e its inputs.
#[target_feature(enable = "avx2,fma")]
unsafe fn sub_mul_const_add_raw<const Y_F64: bool>(
    out: *mut u64,
    x: *const u64,
    y: *const u64,
    e: *const u64,
    n: usize,
    w: u64,
    q: u64,
) {
    let t = tw1(w as f64, w as f64 / q as f64);
    let f = |v: &[__m256d; 3], qs| _mm256_add_pd(mul_mod(_mm256_sub_pd(v[0], v[1]), t, qs), v[2]);
    // SAFETY: the caller's contract.
    unsafe { lanes::<_, Y_F64>(out, n, [x, y, e], q, f) };
}

/// out = (x + h)·c mod q for constants h, c < q.
///
/// # Safety
/// As `mul_into`; h, c < q.
#[target_feature(enable = "avx2,fma")]
unsafe fn add_mul_const_unchecked(out: &mut [u64], x: &[u64], h: u64, c: u64, q: u64) {
    let t = tw1(c as f64, c as f64 / q as f64);
    let hv = _mm256_set1_pd(h as f64);
    let n = out.len();
    assert!(x.len() >= n);
    // SAFETY: lengths checked; the caller guarantees the features and q.
    unsafe { lanes::<_, false>(out.as_mut_ptr(), n, [x.as_ptr()], q, |v, qs| mul_mod(_mm256_add_pd(v[0], hv), t, qs)) };
}

/// [`add_mul_const_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
#[inline]
pub(crate) fn add_mul_const(_: Fma, out: &mut [u64], x: &[u64], h: u64, c: u64, q: u64) {
    // SAFETY: the token proves the CPU features `add_mul_const_unchecked` is compiled for, and its
    // body asserts every length and bound its memory accesses rely on.
    unsafe { add_mul_const_unchecked(out, x, h, c, q) }
}

/// x·y mod q for two variables below q < 2^50, centered: the quotient from fl(x·y)/q,
/// three roundings from the exact one: |result| ≤ q·(1/2 + 1.5·q·2^-52) + 1 < 0.875q + 1.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn mul_mod_q(x: __m256d, y: __m256d, q: Q) -> __m256d {
    let h = _mm256_mul_pd(x, y);
    let l = _mm256_fmsub_pd(x, y, h);
    let k = _mm256_round_pd::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_pd(h, q.q_inv));
    _mm256_add_pd(_mm256_fnmadd_pd(k, q.q, h), l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arith::Modulus;
    use crate::primes::ntt_primes;

    /// The kernels' own requirement, not the dispatch policy (which turns them off under
    /// HEINFER_NO_SIMD or on AVX-512 CPUs): the tests call them directly.
    fn features() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    fn slices(v: &[Vec<u64>]) -> Vec<&[u64]> {
        v.iter().map(|x| x.as_slice()).collect()
    }

    /// Against u128 arithmetic: primes of 30 to 49 bits (narrow and wide), 1 to 12 digits
    /// (the sums must be reduced on the way for the wide ones), edge values 0, 1, q − 1.
    #[test]
    fn key_dot_matches_exact_arithmetic() {
        if !features() {
            return;
        }
        // SAFETY: AVX2 and FMA detected just above.
        let tok = unsafe { crate::isa::Fma::assume() };
        let n = 1 << 10;
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for bits in [30u32, 40, 46, 47, 49, 50] {
            let q = ntt_primes(bits, n, 1, &[]).unwrap()[0];
            assert!(q < MAX_Q);
            let m = Modulus::new(q);
            let mut vec = |i: usize| -> Vec<u64> {
                (0..n)
                    .map(|j| {
                        s ^= s << 13;
                        s ^= s >> 7;
                        s ^= s << 17;
                        if (i + j).is_multiple_of(5) {
                            [0, 1, q - 1, q - 2][j % 4]
                        } else {
                            s % q
                        }
                    })
                    .collect()
            };
            for digits in [1usize, 2, 3, 5, 12] {
                let src: Vec<Vec<u64>> = (0..digits).map(&mut vec).collect();
                let b: Vec<Vec<u64>> = (0..digits).map(|i| vec(i + 7)).collect();
                let a: Vec<Vec<u64>> = (0..digits).map(|i| vec(i + 3)).collect();
                let sr = slices(&src);
                let (mut o0, mut o1) = (vec![u64::MAX; n], vec![u64::MAX; n]);
                // The key words as the kernel reads them: f64 bit patterns.
                let as_f64 = |v: &[Vec<u64>]| -> Vec<Vec<u64>> {
                    v.iter().map(|l| l.iter().map(|&w| (w as f64).to_bits()).collect()).collect()
                };
                let (bf, af) = (as_f64(&b), as_f64(&a));
                let (br, ar) = (slices(&bf), slices(&af));
                key_dot(tok, &mut o0, &mut o1, &sr, &vec![false; digits], &br, &ar, q);
                let srcf = as_f64(&src);
                let (mut f0, mut f1) = (vec![u64::MAX; n], vec![u64::MAX; n]);
                key_dot(tok, &mut f0, &mut f1, &slices(&srcf), &vec![true; digits], &br, &ar, q);
                assert!(f0 == o0 && f1 == o1, "bits {bits} digits {digits}: f64 sources");
                // Mixed: every other digit as doubles (a digit's own primes stay words).
                let mixed: Vec<&[u64]> =
                    (0..digits).map(|d| if d % 2 == 0 { &srcf[d][..] } else { &src[d][..] }).collect();
                let kinds: Vec<bool> = (0..digits).map(|d| d % 2 == 0).collect();
                key_dot(tok, &mut f0, &mut f1, &mixed, &kinds, &br, &ar, q);
                assert!(f0 == o0 && f1 == o1, "bits {bits} digits {digits}: mixed sources");
                for i in 0..n {
                    let dot = |k: &[Vec<u64>]| (0..digits).fold(0u64, |acc, d| m.add(acc, m.mul(src[d][i], k[d][i])));
                    assert_eq!(o0[i], dot(&b), "bits {bits} digits {digits} i {i}");
                    assert_eq!(o1[i], dot(&a), "bits {bits} digits {digits} i {i}");
                }
            }
        }
    }

    /// Base-conversion products: inputs anywhere below 2^50 (other primes' residues), 1 to
    /// 12 of them (sums reduced on the way), against u128 arithmetic.
    #[test]
    fn dot_const_matches_exact_arithmetic() {
        if !features() {
            return;
        }
        // SAFETY: AVX2 and FMA detected just above.
        let tok = unsafe { crate::isa::Fma::assume() };
        let n = 256;
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for bits in [30u32, 40, 47, 50] {
            let q = ntt_primes(bits, n, 1, &[]).unwrap()[0];
            for k in [1usize, 2, 3, 7, 12] {
                let ys: Vec<Vec<u64>> = (0..k)
                    .map(|j| {
                        (0..n)
                            .map(|i| if (i + j) % 7 == 0 { (1 << 50) - 1 - (i as u64 % 2) } else { next() >> 14 })
                            .collect()
                    })
                    .collect();
                let cs: Vec<u64> = (0..k).map(|j| if j == 0 { q - 1 } else { next() % q }).collect();
                let mut out = vec![u64::MAX; n];
                dot_const(tok, &mut out, &slices(&ys), &cs, q);
                for i in 0..n {
                    let want = (0..k).fold(0u128, |acc, j| (acc + ys[j][i] as u128 * cs[j] as u128) % q as u128);
                    assert_eq!(out[i] as u128, want, "bits {bits} k {k} i {i}");
                }
            }
        }
    }

    /// The element-wise kernels against `Modulus` arithmetic, edges included, in place too.
    #[test]
    fn elementwise_kernels_match_modulus_arithmetic() {
        if !features() {
            return;
        }
        // SAFETY: AVX2 and FMA detected just above.
        let tok = unsafe { crate::isa::Fma::assume() };
        let n = 512;
        for bits in [30u32, 40, 47, 50] {
            let q = ntt_primes(bits, n, 1, &[]).unwrap()[0];
            let m = Modulus::new(q);
            let v = |seed: u64| -> Vec<u64> {
                (0..n as u64)
                    .map(|i| {
                        if i % 5 == 0 {
                            [0, 1, q - 1][(i / 5 % 3) as usize]
                        } else {
                            (i * 0x9e37_79b9 + seed).wrapping_mul(0x2545_f491_4f6c_dd1d) % q
                        }
                    })
                    .collect()
            };
            let (a, b, c, d) = (v(1), v(2), v(3), v(4));
            let mut out = vec![u64::MAX; n];
            // SAFETY (all four): AVX2 and FMA detected above; q < 2^50; inputs below q; equal lengths.
            mul_into(tok, &mut out, &a, &b, q);
            assert!((0..n).all(|i| out[i] == m.mul(a[i], b[i])), "mul_into, {bits} bits");
            mul_add_into(tok, &mut out, &a, &b, &c, &d, q);
            assert!((0..n).all(|i| out[i] == m.add(m.mul(a[i], b[i]), m.mul(c[i], d[i]))), "mul_add_into, {bits} bits");
            for w in [0, 1, q - 1, q / 3] {
                let mut x = a.clone();
                sub_mul_const(tok, &mut x, &b, w, q);
                assert!((0..n).all(|i| x[i] == m.mul(m.sub(a[i], b[i]), w)), "sub_mul_const, {bits} bits");
                let x: Vec<u64> = (0..n).map(|i| m.add(m.mul(m.sub(a[i], b[i]), w), c[i])).collect();
                let mut y = b.clone();
                sub_from_mul_const_add::<false>(tok, &mut y, &a, w, &c, q);
                assert_eq!(y, x, "sub_from_mul_const_add, {bits} bits");
                // y given as centered doubles (as `forward_f64` leaves it).
                let centered = |v: &[u64]| -> Vec<u64> {
                    v.iter().map(|&w| (if w > q / 2 { w as f64 - q as f64 } else { w as f64 }).to_bits()).collect()
                };
                let mut y = centered(&b);
                sub_from_mul_const_add::<true>(tok, &mut y, &a, w, &c, q);
                assert_eq!(y, x, "sub_from_mul_const_add, y doubles, {bits} bits");
                // With the addend computed: no, one or two products (c·d, a·c), y as words
                // and as doubles.
                let head = |i: usize| m.mul(m.sub(a[i], b[i]), w);
                let want: [Vec<u64>; 3] = [
                    (0..n).map(head).collect(),
                    (0..n).map(|i| m.add(head(i), m.mul(c[i], d[i]))).collect(),
                    (0..n).map(|i| m.add(head(i), m.add(m.mul(c[i], d[i]), m.mul(a[i], c[i])))).collect(),
                ];
                let prods: [(&[u64], &[u64]); 2] = [(&c, &d), (&a, &c)];
                for (k, want) in want.iter().enumerate() {
                    let mut y = b.clone();
                    sub_from_mul_const_add_products::<false>(tok, &mut y, &a, w, &prods[..k], q);
                    assert_eq!(&y, want, "{k} products, {bits} bits");
                    let mut y = centered(&b);
                    sub_from_mul_const_add_products::<true>(tok, &mut y, &a, w, &prods[..k], q);
                    assert_eq!(&y, want, "{k} products, y doubles, {bits} bits");
                }
                add_mul_const(tok, &mut out, &a, q - 1 - w % q, w, q);
                assert!((0..n).all(|i| out[i] == m.mul(m.add(a[i], q - 1 - w % q), w)), "add_mul_const, {bits} bits");
            }
        }
    }

    /// Sums at their largest: every product ≡ (q − 1)/2 (centered value q/2), 24 digits,
    /// sources and keys at q − 1 and (q − 1)/2 — a kernel that skipped its reductions
    /// would pass 2^53 and round.
    #[test]
    fn key_dot_sums_of_the_largest_products() {
        if !features() {
            return;
        }
        // SAFETY: AVX2 and FMA detected just above.
        let tok = unsafe { crate::isa::Fma::assume() };
        let n = 64;
        for bits in [40u32, 47, 50] {
            let q = ntt_primes(bits, n, 1, &[]).unwrap()[0];
            let m = Modulus::new(q);
            let digits = 24;
            // (q − 1)·(q − 1)/2 ≡ −(q − 1)/2 ≡ (q + 1)/2: every product as far from 0 as a residue gets.
            let src = vec![vec![q - 1; n]; digits];
            let key = vec![vec![(q - 1) / 2; n]; digits];
            let keyf: Vec<Vec<u64>> = key.iter().map(|l| l.iter().map(|&w| (w as f64).to_bits()).collect()).collect();
            let (mut o0, mut o1) = (vec![0; n], vec![0; n]);
            key_dot(tok, &mut o0, &mut o1, &slices(&src), &[false; 24], &slices(&keyf), &slices(&keyf), q);
            let want = (0..digits).fold(0, |acc, _| m.add(acc, m.mul(q - 1, (q - 1) / 2)));
            assert!(o0.iter().chain(&o1).all(|&x| x == want), "{bits} bits");
            let ys = vec![vec![(1u64 << 50) - 1; n]; 12];
            let cs = vec![q - 1; 12];
            let mut out = vec![0; n];
            dot_const(tok, &mut out, &slices(&ys), &cs, q);
            let want = (0..12).fold(0, |acc, _| m.add(acc, m.mul(m.reduce((1 << 50) - 1), q - 1)));
            assert!(out.iter().all(|&x| x == want), "dot_const, {bits} bits");
        }
    }
}
