//! AVX-512 slice kernels (and the IFMA ones for primes below 2^50).

pub(crate) mod transform;

use std::arch::x86_64::*;

use crate::arith::Modulus;
use crate::isa::{Avx512, Ifma};

/// a·w mod q in [0, 2q) with IFMA, for q < 2^50 and a < 2^52: Shoup's product with a
/// 52-bit companion wp = ⌊w·2^52/q⌋ and negq = 2^52 − q. Every IFMA kernel's multiply.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) fn mul_shoup52(a: __m512i, w: __m512i, wp: __m512i, negq: __m512i) -> __m512i {
    let zero = _mm512_setzero_si512();
    let qhat = _mm512_madd52hi_epu64(zero, wp, a);
    let t = _mm512_madd52lo_epu64(zero, w, a);
    let t = _mm512_madd52lo_epu64(t, qhat, negq);
    _mm512_and_si512(t, _mm512_set1_epi64((1i64 << 52) - 1))
}

/// High 64 bits of a·b, lane-wise, from four 32×32 products.
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn mulhi(a: __m512i, b: __m512i) -> __m512i {
    let a_hi = _mm512_srli_epi64::<32>(a);
    let b_hi = _mm512_srli_epi64::<32>(b);
    let lolo = _mm512_mul_epu32(a, b);
    let lohi = _mm512_mul_epu32(a, b_hi);
    let hilo = _mm512_mul_epu32(a_hi, b);
    let hihi = _mm512_mul_epu32(a_hi, b_hi);
    let mask = _mm512_set1_epi64(0xffff_ffff);
    let mid = _mm512_add_epi64(
        _mm512_srli_epi64::<32>(lolo),
        _mm512_add_epi64(_mm512_and_si512(lohi, mask), _mm512_and_si512(hilo, mask)),
    );
    _mm512_add_epi64(
        _mm512_add_epi64(hihi, _mm512_srli_epi64::<32>(lohi)),
        _mm512_add_epi64(_mm512_srli_epi64::<32>(hilo), _mm512_srli_epi64::<32>(mid)),
    )
}

/// x·w mod q in [0, 2q) for a constant w with its 64-bit Shoup companion wp.
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
pub(crate) fn mul_shoup_lazy(x: __m512i, w: __m512i, wp: __m512i, q: __m512i) -> __m512i {
    _mm512_sub_epi64(_mm512_mullo_epi64(x, w), _mm512_mullo_epi64(mulhi(x, wp), q))
}

#[inline]
#[target_feature(enable = "avx512f")]
fn reduce_once(x: __m512i, b: __m512i) -> __m512i {
    _mm512_min_epu64(x, _mm512_sub_epi64(x, b))
}

/// # Safety
/// The CPU must support avx512f,avx512dq (the caller holds the matching `crate::isa` token); pointer and length
/// requirements are as stated above (lengths are asserted where the body checks them).
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn mul_shoup_acc_unchecked(acc: &mut [u64], x: &[u64], w: &[u64], wp: &[u64], q: u64) {
    // SAFETY: the preconditions of this function (its `# Safety` section) hold.
    unsafe {
        let n = acc.len();
        assert!(x.len() >= n && w.len() >= n && wp.len() >= n);
        let qv = _mm512_set1_epi64(q as i64);
        let q2 = _mm512_set1_epi64(2 * q as i64);
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= every slice's length.
            let a = _mm512_loadu_si512(acc.as_ptr().add(i) as *const _);
            let xv = _mm512_loadu_si512(x.as_ptr().add(i) as *const _);
            let wv = _mm512_loadu_si512(w.as_ptr().add(i) as *const _);
            let pv = _mm512_loadu_si512(wp.as_ptr().add(i) as *const _);
            let s = reduce_once(_mm512_add_epi64(a, mul_shoup_lazy(xv, wv, pv, qv)), q2);
            _mm512_storeu_si512(acc.as_mut_ptr().add(i) as *mut _, s);
        }
    }
}

/// [`mul_shoup_acc_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
/// `acc`'s length must be a multiple of 8 (asserted: the body steps by whole vectors).
#[inline]
pub(crate) fn mul_shoup_acc(_: Avx512, acc: &mut [u64], x: &[u64], w: &[u64], wp: &[u64], q: u64) {
    assert!(acc.len().is_multiple_of(8), "AVX-512 kernels take whole vectors of eight lanes");
    // SAFETY: the token proves the CPU features `mul_shoup_acc_unchecked` is compiled for; the
    // length is a multiple of 8 (above) and its body asserts the other slices' lengths.
    unsafe { mul_shoup_acc_unchecked(acc, x, w, wp, q) }
}

#[derive(Clone, Copy, PartialEq)]
pub enum Op {
    Add,
    Sub,
    Reduce,
}

/// # Safety
/// The CPU must support avx512f (the caller holds the matching `crate::isa` token); pointer and length
/// requirements are as stated above (lengths are asserted where the body checks them).
#[target_feature(enable = "avx512f")]
unsafe fn binary_unchecked(a: &mut [u64], b: Option<&[u64]>, q: u64, op: Op) {
    // SAFETY: the preconditions of this function (its `# Safety` section) hold.
    unsafe {
        let n = a.len();
        assert!(b.is_none_or(|b| b.len() >= n));
        let qv = _mm512_set1_epi64(q as i64);
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= both lengths.
            let x = _mm512_loadu_si512(a.as_ptr().add(i) as *const _);
            let r = match (op, b) {
                (Op::Add, Some(b)) => {
                    let s = _mm512_add_epi64(x, _mm512_loadu_si512(b.as_ptr().add(i) as *const _));
                    reduce_once(s, qv)
                }
                (Op::Sub, Some(b)) => {
                    let d = _mm512_sub_epi64(x, _mm512_loadu_si512(b.as_ptr().add(i) as *const _));
                    _mm512_min_epu64(d, _mm512_add_epi64(d, qv))
                }
                _ => reduce_once(x, qv),
            };
            _mm512_storeu_si512(a.as_mut_ptr().add(i) as *mut _, r);
        }
    }
}

/// [`binary_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
/// `a`'s length must be a multiple of 8 (asserted: the body steps by whole vectors).
#[inline]
pub(crate) fn binary(_: Avx512, a: &mut [u64], b: Option<&[u64]>, q: u64, op: Op) {
    assert!(a.len().is_multiple_of(8), "AVX-512 kernels take whole vectors of eight lanes");
    // SAFETY: the token proves the CPU features `binary_unchecked` is compiled for; the
    // length is a multiple of 8 (above) and its body asserts the other slices' lengths.
    unsafe { binary_unchecked(a, b, q, op) }
}

/// # Safety
/// The CPU must support avx512f (the caller holds the matching `crate::isa` token); pointer and length
/// requirements are as stated above (lengths are asserted where the body checks them).
#[target_feature(enable = "avx512f")]
unsafe fn sub_const_unchecked(a: &mut [u64], c: u64, q: u64) {
    // SAFETY: the preconditions of this function (its `# Safety` section) hold.
    unsafe {
        let qv = _mm512_set1_epi64(q as i64);
        let cv = _mm512_set1_epi64(c as i64);
        for i in (0..a.len()).step_by(8) {
            // SAFETY: i + 8 <= a.len().
            let d = _mm512_sub_epi64(_mm512_loadu_si512(a.as_ptr().add(i) as *const _), cv);
            _mm512_storeu_si512(a.as_mut_ptr().add(i) as *mut _, _mm512_min_epu64(d, _mm512_add_epi64(d, qv)));
        }
    }
}

/// [`sub_const_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
/// `a`'s length must be a multiple of 8 (asserted: the body steps by whole vectors).
#[inline]
pub(crate) fn sub_const(_: Avx512, a: &mut [u64], c: u64, q: u64) {
    assert!(a.len().is_multiple_of(8), "AVX-512 kernels take whole vectors of eight lanes");
    // SAFETY: the token proves the CPU features `sub_const_unchecked` is compiled for; the
    // length is a multiple of 8 (above) and its body asserts the other slices' lengths.
    unsafe { sub_const_unchecked(a, c, q) }
}

/// # Safety
/// The CPU must support avx512f,avx512dq,avx512ifma (the caller holds the matching `crate::isa` token); pointer and length
/// requirements are as stated above (lengths are asserted where the body checks them).
#[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
unsafe fn mul_shoup_acc_ifma_unchecked(acc: &mut [u64], x: &[u64], w: &[u64], wp: &[u64], q: u64) {
    // SAFETY: the preconditions of this function (its `# Safety` section) hold.
    unsafe {
        let n = acc.len();
        assert!(x.len() >= n && w.len() >= n && wp.len() >= n);
        let q2 = _mm512_set1_epi64(2 * q as i64);
        let negq = _mm512_set1_epi64(((1u64 << 52) - q) as i64);
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= every slice's length.
            let a = _mm512_loadu_si512(acc.as_ptr().add(i) as *const _);
            let xv = _mm512_loadu_si512(x.as_ptr().add(i) as *const _);
            let wv = _mm512_loadu_si512(w.as_ptr().add(i) as *const _);
            let pv = _mm512_loadu_si512(wp.as_ptr().add(i) as *const _);
            let s = reduce_once(_mm512_add_epi64(a, mul_shoup52(xv, wv, pv, negq)), q2);
            _mm512_storeu_si512(acc.as_mut_ptr().add(i) as *mut _, s);
        }
    }
}

/// [`mul_shoup_acc_ifma_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
/// `acc`'s length must be a multiple of 8 (asserted: the body steps by whole vectors).
#[inline]
pub(crate) fn mul_shoup_acc_ifma(_: Ifma, acc: &mut [u64], x: &[u64], w: &[u64], wp: &[u64], q: u64) {
    assert!(acc.len().is_multiple_of(8), "AVX-512 kernels take whole vectors of eight lanes");
    // SAFETY: the token proves the CPU features `mul_shoup_acc_ifma_unchecked` is compiled for; the
    // length is a multiple of 8 (above) and its body asserts the other slices' lengths.
    unsafe { mul_shoup_acc_ifma_unchecked(acc, x, w, wp, q) }
}

/// # Safety
/// The CPU must support avx512f,avx512dq (the caller holds the matching `crate::isa` token); pointer and length
/// requirements are as stated above (lengths are asserted where the body checks them).
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn dot_const_unchecked(out: &mut [u64], ys: &[&[u64]], cs: &[(u64, u64)], q: u64) {
    // SAFETY: the preconditions of this function (its `# Safety` section) hold.
    unsafe {
        let n = out.len();
        assert!(ys.len() == cs.len() && ys.iter().all(|y| y.len() >= n));
        let qv = _mm512_set1_epi64(q as i64);
        let q2 = _mm512_set1_epi64(2 * q as i64);
        let consts: Vec<(__m512i, __m512i)> =
            cs.iter().map(|&(c, cp)| (_mm512_set1_epi64(c as i64), _mm512_set1_epi64(cp as i64))).collect();
        for i in (0..n).step_by(8) {
            let mut acc = _mm512_setzero_si512();
            for (y, &(c, cp)) in ys.iter().zip(&consts) {
                // SAFETY: i + 8 <= n <= y.len().
                let yv = _mm512_loadu_si512(y.as_ptr().add(i) as *const _);
                acc = reduce_once(_mm512_add_epi64(acc, mul_shoup_lazy(yv, c, cp, qv)), q2);
            }
            _mm512_storeu_si512(out.as_mut_ptr().add(i) as *mut _, reduce_once(acc, qv));
        }
    }
}

/// [`dot_const_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
/// `out`'s length must be a multiple of 8 (asserted: the body steps by whole vectors).
#[inline]
pub(crate) fn dot_const(_: Avx512, out: &mut [u64], ys: &[&[u64]], cs: &[(u64, u64)], q: u64) {
    assert!(out.len().is_multiple_of(8), "AVX-512 kernels take whole vectors of eight lanes");
    // SAFETY: the token proves the CPU features `dot_const_unchecked` is compiled for; the
    // length is a multiple of 8 (above) and its body asserts the other slices' lengths.
    unsafe { dot_const_unchecked(out, ys, cs, q) }
}

/// # Safety
/// The CPU must support avx512f,avx512dq (the caller holds the matching `crate::isa` token); pointer and length
/// requirements are as stated above (lengths are asserted where the body checks them).
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn sub_mul_const_unchecked(x: &mut [u64], y: &[u64], w: u64, wp: u64, q: u64) {
    // SAFETY: the preconditions of this function (its `# Safety` section) hold.
    unsafe {
        let n = x.len();
        assert!(y.len() >= n);
        let qv = _mm512_set1_epi64(q as i64);
        let wv = _mm512_set1_epi64(w as i64);
        let pv = _mm512_set1_epi64(wp as i64);
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= both lengths.
            let a = _mm512_loadu_si512(x.as_ptr().add(i) as *const _);
            let b = _mm512_loadu_si512(y.as_ptr().add(i) as *const _);
            let d = _mm512_sub_epi64(_mm512_add_epi64(a, qv), b);
            let r = reduce_once(mul_shoup_lazy(d, wv, pv, qv), qv);
            _mm512_storeu_si512(x.as_mut_ptr().add(i) as *mut _, r);
        }
    }
}

/// [`sub_mul_const_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
/// `x`'s length must be a multiple of 8 (asserted: the body steps by whole vectors).
#[inline]
pub(crate) fn sub_mul_const(_: Avx512, x: &mut [u64], y: &[u64], w: u64, wp: u64, q: u64) {
    assert!(x.len().is_multiple_of(8), "AVX-512 kernels take whole vectors of eight lanes");
    // SAFETY: the token proves the CPU features `sub_mul_const_unchecked` is compiled for; the
    // length is a multiple of 8 (above) and its body asserts the other slices' lengths.
    unsafe { sub_mul_const_unchecked(x, y, w, wp, q) }
}

/// # Safety
/// The CPU must support avx512f,avx512dq,avx512ifma (the caller holds the matching `crate::isa` token); pointer and length
/// requirements are as stated above (lengths are asserted where the body checks them).
#[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
unsafe fn dot_const_ifma_unchecked(out: &mut [u64], ys: &[&[u64]], cs: &[(u64, u64)], q: u64) {
    // SAFETY: the preconditions of this function (its `# Safety` section) hold.
    unsafe {
        let n = out.len();
        assert!(ys.len() == cs.len() && ys.iter().all(|y| y.len() >= n));
        let qv = _mm512_set1_epi64(q as i64);
        let q2 = _mm512_set1_epi64(2 * q as i64);
        let negq = _mm512_set1_epi64(((1u64 << 52) - q) as i64);
        let zero = _mm512_setzero_si512();
        let consts: Vec<(__m512i, __m512i)> =
            cs.iter().map(|&(c, cp)| (_mm512_set1_epi64(c as i64), _mm512_set1_epi64(cp as i64))).collect();
        for i in (0..n).step_by(8) {
            let mut acc = zero;
            for (y, &(c, cp)) in ys.iter().zip(&consts) {
                // SAFETY: i + 8 <= n <= y.len().
                let yv = _mm512_loadu_si512(y.as_ptr().add(i) as *const _);
                acc = reduce_once(_mm512_add_epi64(acc, mul_shoup52(yv, c, cp, negq)), q2);
            }
            _mm512_storeu_si512(out.as_mut_ptr().add(i) as *mut _, reduce_once(acc, qv));
        }
    }
}

/// [`dot_const_ifma_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
/// `out`'s length must be a multiple of 8 (asserted: the body steps by whole vectors).
#[inline]
pub(crate) fn dot_const_ifma(_: Ifma, out: &mut [u64], ys: &[&[u64]], cs: &[(u64, u64)], q: u64) {
    assert!(out.len().is_multiple_of(8), "AVX-512 kernels take whole vectors of eight lanes");
    // SAFETY: the token proves the CPU features `dot_const_ifma_unchecked` is compiled for; the
    // length is a multiple of 8 (above) and its body asserts the other slices' lengths.
    unsafe { dot_const_ifma_unchecked(out, ys, cs, q) }
}

/// a·b mod q for q < 2^62 with 64-bit lanes: a Montgomery product (a·b·2^-64),
/// then a Shoup product by 2^64 mod q to undo the Montgomery factor.
///
/// # Safety
/// The CPU must support avx512f,avx512dq (the caller holds the matching `crate::isa` token); pointer and length
/// requirements are as stated above (lengths are asserted where the body checks them).
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn mul_montgomery_unchecked(a: &mut [u64], b: &[u64], m: &Modulus) {
    // SAFETY: the preconditions of this function (its `# Safety` section) hold.
    unsafe {
        let n = a.len();
        assert!(b.len() >= n);
        let q = m.value();
        // -q^{-1} mod 2^64 by Newton's iteration (each step doubles the correct bits).
        let mut inv = q;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(q.wrapping_mul(inv)));
        }
        let r = ((1u128 << 64) % q as u128) as u64;
        let qv = _mm512_set1_epi64(q as i64);
        let qneg = _mm512_set1_epi64(inv.wrapping_neg() as i64);
        let rv = _mm512_set1_epi64(r as i64);
        let rp = _mm512_set1_epi64(m.shoup(r) as i64);
        let one = _mm512_set1_epi64(1);
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= both lengths.
            let av = _mm512_loadu_si512(a.as_ptr().add(i) as *const _);
            let bv = _mm512_loadu_si512(b.as_ptr().add(i) as *const _);
            let lo = _mm512_mullo_epi64(av, bv);
            let hi = mulhi(av, bv);
            let mq_hi = mulhi(_mm512_mullo_epi64(lo, qneg), qv);
            // lo + low(m·q) is 0 or 2^64: it carries exactly when lo != 0.
            let t = _mm512_add_epi64(_mm512_add_epi64(hi, mq_hi), _mm512_min_epu64(lo, one));
            let t = reduce_once(t, qv);
            let t = reduce_once(mul_shoup_lazy(t, rv, rp, qv), qv);
            _mm512_storeu_si512(a.as_mut_ptr().add(i) as *mut _, t);
        }
    }
}

/// [`mul_montgomery_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
/// `a`'s length must be a multiple of 8 (asserted: the body steps by whole vectors).
#[inline]
pub(crate) fn mul_montgomery(_: Avx512, a: &mut [u64], b: &[u64], m: &Modulus) {
    assert!(a.len().is_multiple_of(8), "AVX-512 kernels take whole vectors of eight lanes");
    // SAFETY: the token proves the CPU features `mul_montgomery_unchecked` is compiled for; the
    // length is a multiple of 8 (above) and its body asserts the other slices' lengths.
    unsafe { mul_montgomery_unchecked(a, b, m) }
}

/// Barrett product with IFMA for q < 2^50 (L = bit length of q):
/// x = a·b as 52-bit halves; qhat = ⌊⌊x / 2^(L-1)⌋ · ⌊2^(L+51)/q⌋ / 2^52⌋ ≥ ⌊x/q⌋ - 2.
///
/// # Safety
/// The CPU must support avx512f,avx512dq,avx512ifma (the caller holds the matching `crate::isa` token); pointer and length
/// requirements are as stated above (lengths are asserted where the body checks them).
#[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
unsafe fn mul_barrett_ifma_unchecked(a: &mut [u64], b: &[u64], m: &Modulus) {
    // SAFETY: the preconditions of this function (its `# Safety` section) hold.
    unsafe {
        let n = a.len();
        assert!(b.len() >= n);
        let q = m.value();
        let l = m.bits() as u64;
        let mu = ((1u128 << (l + 51)) / q as u128) as u64;
        let qv = _mm512_set1_epi64(q as i64);
        let q2 = _mm512_set1_epi64(2 * q as i64);
        let muv = _mm512_set1_epi64(mu as i64);
        let mask = _mm512_set1_epi64((1i64 << 52) - 1);
        let zero = _mm512_setzero_si512();
        let sl = _mm_set_epi64x(0, (53 - l) as i64);
        let sr = _mm_set_epi64x(0, (l - 1) as i64);
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= both lengths.
            let av = _mm512_loadu_si512(a.as_ptr().add(i) as *const _);
            let bv = _mm512_loadu_si512(b.as_ptr().add(i) as *const _);
            let lo = _mm512_madd52lo_epu64(zero, av, bv);
            let hi = _mm512_madd52hi_epu64(zero, av, bv);
            let c1 = _mm512_or_si512(_mm512_sll_epi64(hi, sl), _mm512_srl_epi64(lo, sr));
            let c1 = _mm512_and_si512(c1, mask);
            let qhat = _mm512_madd52hi_epu64(zero, c1, muv);
            let r = _mm512_and_si512(_mm512_sub_epi64(lo, _mm512_madd52lo_epu64(zero, qhat, qv)), mask);
            let r = reduce_once(reduce_once(r, q2), qv);
            _mm512_storeu_si512(a.as_mut_ptr().add(i) as *mut _, r);
        }
    }
}

/// [`mul_barrett_ifma_unchecked`] for a caller holding the token: the safe entry the dispatch calls.
/// `a`'s length must be a multiple of 8 (asserted: the body steps by whole vectors).
#[inline]
pub(crate) fn mul_barrett_ifma(_: Ifma, a: &mut [u64], b: &[u64], m: &Modulus) {
    assert!(a.len().is_multiple_of(8), "AVX-512 kernels take whole vectors of eight lanes");
    // SAFETY: the token proves the CPU features `mul_barrett_ifma_unchecked` is compiled for; the
    // length is a multiple of 8 (above) and its body asserts the other slices' lengths.
    unsafe { mul_barrett_ifma_unchecked(a, b, m) }
}

/// One target of an exact base conversion (the `rns` module's), whole: out = Σ_j y_j·c_j − table[u]
/// mod q, the dot product and the overflow correction in one pass over the limb (they were
/// two, and on AVX-512 machines the correction ran four lanes wide).
///
/// IFMA (q < 2^50): a source value y ≥ 2^52 (a source prime above 2^52) is split as
/// hi·2^52 + lo, and hi is multiplied by `c_hi[j]` = c_j·2^52 mod q, so that wide sources
/// stay on the 52-bit multiplier instead of sending the whole target to the 64-bit one.
/// Constants are Shoup pairs with 52-bit companions (`wide[j]` says which sources split).
///
/// # Safety
/// The CPU must support avx512f,avx512dq,avx512ifma (the caller holds the token); lengths are asserted.
#[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
#[allow(clippy::too_many_arguments)] // one kernel per target: the conversion's tables, as they are
unsafe fn convert_target_ifma_unchecked(
    out: &mut [u64],
    ys: &[&[u64]],
    cs: &[(u64, u64)],
    c_hi: &[(u64, u64)],
    wide: &[bool],
    over: &[u32],
    table: &[u64],
    q: u64,
) {
    // SAFETY: the preconditions of this function (its `# Safety` section) hold.
    unsafe {
        let n = out.len();
        assert!(ys.len() == cs.len() && cs.len() == c_hi.len() && cs.len() == wide.len());
        assert!(ys.iter().all(|y| y.len() >= n) && over.len() >= n && n.is_multiple_of(8));
        assert!(!table.is_empty() && table.len() <= 8, "the overflow table has one entry per count (at most 8)");
        debug_assert!(over[..n].iter().all(|&u| (u as usize) < table.len()));
        let qv = _mm512_set1_epi64(q as i64);
        let q2 = _mm512_set1_epi64(2 * q as i64);
        let negq = _mm512_set1_epi64(((1u64 << 52) - q) as i64);
        let mask = _mm512_set1_epi64((1i64 << 52) - 1);
        let zero = _mm512_setzero_si512();
        let mut t8 = [0u64; 8];
        t8[..table.len()].copy_from_slice(table);
        let tv = _mm512_loadu_si512(t8.as_ptr() as *const _);
        let bc = |c: (u64, u64)| (_mm512_set1_epi64(c.0 as i64), _mm512_set1_epi64(c.1 as i64));
        let consts: Vec<_> = cs.iter().zip(c_hi).map(|(&c, &h)| (bc(c), bc(h))).collect();
        let mul = |a: __m512i, (c, cp): (__m512i, __m512i)| mul_shoup52(a, c, cp, negq);
        for i in (0..n).step_by(8) {
            let mut acc = zero;
            for ((y, &(c, h)), &w) in ys.iter().zip(&consts).zip(wide) {
                // SAFETY: i + 8 <= n <= y.len().
                let yv = _mm512_loadu_si512(y.as_ptr().add(i) as *const _);
                if w {
                    let lo = _mm512_and_si512(yv, mask);
                    let hi = _mm512_srli_epi64::<52>(yv);
                    acc = reduce_once(_mm512_add_epi64(acc, mul(lo, c)), q2);
                    acc = reduce_once(_mm512_add_epi64(acc, mul(hi, h)), q2);
                } else {
                    acc = reduce_once(_mm512_add_epi64(acc, mul(yv, c)), q2);
                }
            }
            let x = reduce_once(acc, qv);
            // SAFETY: i + 8 <= n <= over.len().
            let u = _mm512_cvtepu32_epi64(_mm256_loadu_si256(over.as_ptr().add(i) as *const _));
            let f = _mm512_permutexvar_epi64(u, tv);
            // x − f mod q, both in [0, q): add q where the difference wrapped.
            let d = _mm512_sub_epi64(x, f);
            let r = _mm512_min_epu64(d, _mm512_add_epi64(d, qv));
            _mm512_storeu_si512(out.as_mut_ptr().add(i) as *mut _, r);
        }
    }
}

/// [`convert_target_ifma_unchecked`] for a caller holding the token.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) fn convert_target_ifma(
    _: Ifma,
    out: &mut [u64],
    ys: &[&[u64]],
    cs: &[(u64, u64)],
    c_hi: &[(u64, u64)],
    wide: &[bool],
    over: &[u32],
    table: &[u64],
    q: u64,
) {
    // SAFETY: the token proves the CPU features; the body asserts every length it relies on.
    unsafe { convert_target_ifma_unchecked(out, ys, cs, c_hi, wide, over, table, q) }
}

/// [`convert_target_ifma_unchecked`] with 64-bit lanes, for targets up to 2^61 (any
/// source): the dot product of [`dot_const_unchecked`] and the correction in one pass.
///
/// # Safety
/// The CPU must support avx512f,avx512dq (the caller holds the token); lengths are asserted.
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn convert_target_unchecked(
    out: &mut [u64],
    ys: &[&[u64]],
    cs: &[(u64, u64)],
    over: &[u32],
    table: &[u64],
    q: u64,
) {
    // SAFETY: the preconditions of this function (its `# Safety` section) hold.
    unsafe {
        let n = out.len();
        assert!(ys.len() == cs.len() && ys.iter().all(|y| y.len() >= n) && over.len() >= n && n.is_multiple_of(8));
        assert!(!table.is_empty() && table.len() <= 8, "the overflow table has one entry per count (at most 8)");
        debug_assert!(over[..n].iter().all(|&u| (u as usize) < table.len()));
        let qv = _mm512_set1_epi64(q as i64);
        let q2 = _mm512_set1_epi64(2 * q as i64);
        let mut t8 = [0u64; 8];
        t8[..table.len()].copy_from_slice(table);
        let tv = _mm512_loadu_si512(t8.as_ptr() as *const _);
        let consts: Vec<(__m512i, __m512i)> =
            cs.iter().map(|&(c, cp)| (_mm512_set1_epi64(c as i64), _mm512_set1_epi64(cp as i64))).collect();
        for i in (0..n).step_by(8) {
            let mut acc = _mm512_setzero_si512();
            for (y, &(c, cp)) in ys.iter().zip(&consts) {
                // SAFETY: i + 8 <= n <= y.len().
                let yv = _mm512_loadu_si512(y.as_ptr().add(i) as *const _);
                acc = reduce_once(_mm512_add_epi64(acc, mul_shoup_lazy(yv, c, cp, qv)), q2);
            }
            let x = reduce_once(acc, qv);
            // SAFETY: i + 8 <= n <= over.len().
            let u = _mm512_cvtepu32_epi64(_mm256_loadu_si256(over.as_ptr().add(i) as *const _));
            let f = _mm512_permutexvar_epi64(u, tv);
            let d = _mm512_sub_epi64(x, f);
            let r = _mm512_min_epu64(d, _mm512_add_epi64(d, qv));
            _mm512_storeu_si512(out.as_mut_ptr().add(i) as *mut _, r);
        }
    }
}

/// [`convert_target_unchecked`] for a caller holding the token.
#[inline]
pub(crate) fn convert_target(
    _: Avx512,
    out: &mut [u64],
    ys: &[&[u64]],
    cs: &[(u64, u64)],
    over: &[u32],
    table: &[u64],
    q: u64,
) {
    // SAFETY: the token proves the CPU features; the body asserts every length it relies on.
    unsafe { convert_target_unchecked(out, ys, cs, over, table, q) }
}

/// out = ((x + h) mod q)·c mod q (the kernels module's `add_mul_const`), eight lanes: IFMA
/// below 2^50, 64-bit Shoup products above.
///
/// # Safety
/// The CPU must support avx512f,avx512dq, and avx512ifma when `ifma` (the caller holds the
/// token); lengths are asserted.
#[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
unsafe fn add_mul_const_ifma_unchecked(out: &mut [u64], x: &[u64], h: u64, c: u64, cp52: u64, q: u64) {
    // SAFETY: the preconditions of this function (its `# Safety` section) hold.
    unsafe {
        let n = out.len();
        assert!(x.len() >= n && n.is_multiple_of(8) && q < (1 << 50));
        let qv = _mm512_set1_epi64(q as i64);
        let q2 = _mm512_set1_epi64(2 * q as i64);
        let negq = _mm512_set1_epi64(((1u64 << 52) - q) as i64);
        let (hv, cv, pv) = (_mm512_set1_epi64(h as i64), _mm512_set1_epi64(c as i64), _mm512_set1_epi64(cp52 as i64));
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= both lengths.
            // (x + h)·c ≡ ((x + h) mod q)·c: the sum (< 2q < 2^51) goes into the product unreduced.
            let s = _mm512_add_epi64(_mm512_loadu_si512(x.as_ptr().add(i) as *const _), hv);
            let t = mul_shoup52(s, cv, pv, negq);
            _mm512_storeu_si512(out.as_mut_ptr().add(i) as *mut _, reduce_once(reduce_once(t, q2), qv));
        }
    }
}

/// [`add_mul_const_ifma_unchecked`] for a caller holding the token.
#[inline]
pub(crate) fn add_mul_const_ifma(_: Ifma, out: &mut [u64], x: &[u64], h: u64, c: u64, cp52: u64, q: u64) {
    // SAFETY: the token proves the CPU features; the body asserts every length it relies on.
    unsafe { add_mul_const_ifma_unchecked(out, x, h, c, cp52, q) }
}

/// [`add_mul_const_ifma_unchecked`] with 64-bit lanes, q < 2^61.
///
/// # Safety
/// The CPU must support avx512f,avx512dq (the caller holds the token); lengths are asserted.
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn add_mul_const_unchecked(out: &mut [u64], x: &[u64], h: u64, c: u64, cp: u64, q: u64) {
    // SAFETY: the preconditions of this function (its `# Safety` section) hold.
    unsafe {
        let n = out.len();
        assert!(x.len() >= n && n.is_multiple_of(8) && q < (1 << 61));
        let qv = _mm512_set1_epi64(q as i64);
        let q2 = _mm512_set1_epi64(2 * q as i64);
        let (hv, cv, pv) = (_mm512_set1_epi64(h as i64), _mm512_set1_epi64(c as i64), _mm512_set1_epi64(cp as i64));
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= both lengths.
            let s = _mm512_add_epi64(_mm512_loadu_si512(x.as_ptr().add(i) as *const _), hv);
            let t = mul_shoup_lazy(s, cv, pv, qv);
            _mm512_storeu_si512(out.as_mut_ptr().add(i) as *mut _, reduce_once(reduce_once(t, q2), qv));
        }
    }
}

/// [`add_mul_const_unchecked`] for a caller holding the token.
#[inline]
pub(crate) fn add_mul_const(_: Avx512, out: &mut [u64], x: &[u64], h: u64, c: u64, cp: u64, q: u64) {
    // SAFETY: the token proves the CPU features; the body asserts every length it relies on.
    unsafe { add_mul_const_unchecked(out, x, h, c, cp, q) }
}

/// u[i] = min(⌊Σ_j ys[j][i]·invs[j]⌋, ys.len()) (the kernels module's `overflow_counts`):
/// eight lanes, the u64 → f64 conversion of AVX-512DQ (round to nearest, as the scalar
/// cast), each product rounded and then added, in the same order (no fused multiply-add).
///
/// # Safety
/// The CPU must support avx512f,avx512dq (the caller holds the token); lengths are asserted.
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn overflow_counts_unchecked(u: &mut [u32], ys: &[&[u64]], invs: &[f64]) {
    // SAFETY: the preconditions of this function (its `# Safety` section) hold.
    unsafe {
        let n = u.len();
        assert!(ys.len() == invs.len() && ys.iter().all(|y| y.len() >= n) && n.is_multiple_of(8));
        let k = _mm256_set1_epi32(ys.len() as i32);
        for i in (0..n).step_by(8) {
            let mut f = _mm512_setzero_pd();
            for (y, &inv) in ys.iter().zip(invs) {
                // SAFETY: i + 8 <= n <= y.len().
                let v = _mm512_loadu_si512(y.as_ptr().add(i) as *const _);
                f = _mm512_add_pd(f, _mm512_mul_pd(_mm512_cvtepu64_pd(v), _mm512_set1_pd(inv)));
            }
            let t = _mm256_min_epu32(_mm512_cvttpd_epu32(f), k);
            // SAFETY: i + 8 <= n.
            _mm256_storeu_si256(u.as_mut_ptr().add(i) as *mut _, t);
        }
    }
}

/// [`overflow_counts_unchecked`] for a caller holding the token.
#[inline]
pub(crate) fn overflow_counts(_: Avx512, u: &mut [u32], ys: &[&[u64]], invs: &[f64]) {
    // SAFETY: the token proves the CPU features; the body asserts every length it relies on.
    unsafe { overflow_counts_unchecked(u, ys, invs) }
}

/// a = a·c mod q in place, for a constant c < q (Shoup pair, 52-bit companion when `ifma`):
/// IFMA below 2^50, 64-bit products up to 2^61. Inputs and outputs in [0, q).
///
/// # Safety
/// The CPU must support avx512f,avx512dq, and avx512ifma (the caller holds the token); the
/// body asserts the length.
#[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
unsafe fn mul_const_assign_ifma_unchecked(a: &mut [u64], c: u64, cp52: u64, q: u64) {
    // SAFETY: the preconditions of this function (its `# Safety` section) hold.
    unsafe {
        let n = a.len();
        assert!(n.is_multiple_of(8) && q < (1 << 50));
        let qv = _mm512_set1_epi64(q as i64);
        let negq = _mm512_set1_epi64(((1u64 << 52) - q) as i64);
        let (cv, pv) = (_mm512_set1_epi64(c as i64), _mm512_set1_epi64(cp52 as i64));
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n.
            let x = _mm512_loadu_si512(a.as_ptr().add(i) as *const _);
            _mm512_storeu_si512(a.as_mut_ptr().add(i) as *mut _, reduce_once(mul_shoup52(x, cv, pv, negq), qv));
        }
    }
}

/// [`mul_const_assign_ifma_unchecked`] for a caller holding the token.
#[inline]
pub(crate) fn mul_const_assign_ifma(_: Ifma, a: &mut [u64], c: u64, cp52: u64, q: u64) {
    // SAFETY: the token proves the CPU features; the body asserts the length.
    unsafe { mul_const_assign_ifma_unchecked(a, c, cp52, q) }
}

/// [`mul_const_assign_ifma_unchecked`] with 64-bit lanes, q < 2^61.
///
/// # Safety
/// The CPU must support avx512f,avx512dq (the caller holds the token); the body asserts the length.
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn mul_const_assign_unchecked(a: &mut [u64], c: u64, cp: u64, q: u64) {
    // SAFETY: the preconditions of this function (its `# Safety` section) hold.
    unsafe {
        let n = a.len();
        assert!(n.is_multiple_of(8) && q < (1 << 61));
        let qv = _mm512_set1_epi64(q as i64);
        let (cv, pv) = (_mm512_set1_epi64(c as i64), _mm512_set1_epi64(cp as i64));
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n.
            let x = _mm512_loadu_si512(a.as_ptr().add(i) as *const _);
            _mm512_storeu_si512(a.as_mut_ptr().add(i) as *mut _, reduce_once(mul_shoup_lazy(x, cv, pv, qv), qv));
        }
    }
}

/// [`mul_const_assign_unchecked`] for a caller holding the token.
#[inline]
pub(crate) fn mul_const_assign(_: Avx512, a: &mut [u64], c: u64, cp: u64, q: u64) {
    // SAFETY: the token proves the CPU features; the body asserts the length.
    unsafe { mul_const_assign_unchecked(a, c, cp, q) }
}
