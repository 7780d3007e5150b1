//! Vectorised slice kernels for the hot loops outside the NTT: products by
//! precomputed constants (Shoup), accumulation of key-switching inner products, and
//! Barrett products of two variable operands. Each kernel has a portable scalar
//! twin; the AVX-512 paths are chosen at run time and tested against it.

use crate::arith::Modulus;

/// CPU features, read once. `HEINFER_NO_SIMD=1` forces the portable paths.
#[cfg(target_arch = "x86_64")]
fn features() -> (bool, bool) {
    static F: std::sync::OnceLock<(bool, bool)> = std::sync::OnceLock::new();
    *F.get_or_init(|| {
        let avx512 = std::env::var_os("HEINFER_NO_SIMD").is_none()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512dq");
        (avx512, avx512 && is_x86_feature_detected!("avx512ifma"))
    })
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx512() -> bool {
    features().0
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_ifma() -> bool {
    features().1
}

/// AVX2 kernels serve where AVX-512 does not: every prime is below 2^61.
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    avx2_detected() && !has_avx512()
}

/// AVX2 present (and `HEINFER_NO_SIMD` unset), whatever else the CPU has.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2_detected() -> bool {
    static F: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *F.get_or_init(|| std::env::var_os("HEINFER_NO_SIMD").is_none() && is_x86_feature_detected!("avx2"))
}

/// AVX2 with FMA, for the floating-point kernels (`fma`, `ntt_fma`), where AVX-512 does not serve.
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    static F: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    has_avx2() && *F.get_or_init(|| is_x86_feature_detected!("fma"))
}

/// Whether the floating-point kernels take slices of this length modulo this prime.
#[cfg(target_arch = "x86_64")]
fn fma_for(len: usize, m: &Modulus) -> bool {
    len.is_multiple_of(4) && crate::fma::usable(m.value())
}

/// Whether the AVX2 kernels take slices of this length modulo this prime.
#[cfg(target_arch = "x86_64")]
fn avx2_for(len: usize, m: &Modulus) -> bool {
    has_avx2() && len.is_multiple_of(4) && m.value() < (1 << 61)
}

/// Whether vector Shoup products for this prime use IFMA, whose companions are
/// ⌊w·2^52/q⌋ instead of ⌊w·2^64/q⌋ (see `shoup_companion`).
pub(crate) fn uses_ifma(m: &Modulus) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        m.value() < (1 << 50) && has_ifma()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = m;
        false
    }
}

/// What `key_dot` reads beside each key word w: the word as an f64 bit pattern where the
/// floating-point kernel serves this prime (it needs no quotient constant, and saves the
/// conversion), else its Shoup companion.
pub(crate) fn key_companion(w: u64, m: &Modulus) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if crate::fma::usable(m.value()) {
        return (w as f64).to_bits();
    }
    shoup_companion(w, m)
}

/// The Shoup companion of a constant w that `mul_shoup_acc` expects for this prime.
pub(crate) fn shoup_companion(w: u64, m: &Modulus) -> u64 {
    if uses_ifma(m) {
        (((w as u128) << 52) / m.value() as u128) as u64
    } else {
        m.shoup(w)
    }
}

/// acc = (acc + x·w) mod q, lazily: acc stays in [0, 2q). `w` comes with companions
/// `wp` from `shoup_companion`; x must be below q.
pub(crate) fn mul_shoup_acc(acc: &mut [u64], x: &[u64], w: &[u64], wp: &[u64], m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if uses_ifma(m) && acc.len().is_multiple_of(8) {
        // SAFETY: IFMA checked by uses_ifma; slice lengths asserted inside.
        unsafe { avx512::mul_shoup_acc_ifma(acc, x, w, wp, m.value()) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx512() && acc.len().is_multiple_of(8) {
        // SAFETY: features checked above; all slices are at least acc.len() long (asserted inside).
        unsafe { avx512::mul_shoup_acc(acc, x, w, wp, m.value()) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2_for(acc.len(), m) {
        // SAFETY: AVX2 checked by avx2_for; slice lengths asserted inside.
        unsafe { avx2::mul_shoup_acc(acc, x, w, wp, m.value()) };
        return;
    }
    let q2 = 2 * m.value();
    for (((a, &x), &w), &wp) in acc.iter_mut().zip(x).zip(w).zip(wp) {
        let s = *a + m.mul_shoup_lazy(x, w, wp);
        *a = if s >= q2 { s - q2 } else { s };
    }
}

/// The key-switching inner product of one limb, both halves at once:
/// o0 = Σ_d src_d·b_d, o1 = Σ_d src_d·a_d mod q, fully reduced; o0 and o1 are
/// overwritten. `b`, `a` come with companions `bp`, `ap` from `key_companion`. Sources
/// with `src_f64` set are centered doubles (`ntt_fma`'s `forward_f64` output), the
/// others words below q. Both vector kernels go one digit at a time over the whole limb
/// (long sequential streams: at N = 2^14 the key comes from memory).
#[allow(clippy::too_many_arguments)]
pub(crate) fn key_dot(
    o0: &mut [u64],
    o1: &mut [u64],
    src: &[&[u64]],
    src_f64: &[bool],
    b: &[&[u64]],
    bp: &[&[u64]],
    a: &[&[u64]],
    ap: &[&[u64]],
    m: &Modulus,
) {
    // The key's companions are f64 bit patterns exactly where fma::usable holds
    // (`key_companion`): that alone picks the kernel (lengths are multiples of 4, asserted).
    #[cfg(target_arch = "x86_64")]
    if crate::fma::usable(m.value()) {
        // SAFETY: AVX2 and FMA checked by fma::usable; q < 2^50; lengths asserted inside;
        // the companions are the key words as f64 bit patterns (`key_companion`).
        unsafe { crate::fma::key_dot(o0, o1, src, src_f64, bp, ap, m.value()) };
        return;
    }
    assert!(!src_f64.contains(&true), "sources as doubles only where the floating-point kernel serves the prime");
    #[cfg(target_arch = "x86_64")]
    if avx2_for(o0.len(), m) {
        // SAFETY: AVX2 checked by avx2_for; every slice's length is asserted inside.
        unsafe { avx2::key_dot(o0, o1, src, b, bp, a, ap, m.value()) };
        return;
    }
    o0.fill(0);
    o1.fill(0);
    for d in 0..src.len() {
        mul_shoup_acc(o0, src[d], b[d], bp[d], m);
        mul_shoup_acc(o1, src[d], a[d], ap[d], m);
    }
    reduce_2q(o0, m);
    reduce_2q(o1, m);
}

/// Brings lazily reduced values from [0, 2q) to [0, q).
pub(crate) fn reduce_2q(a: &mut [u64], m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() && a.len().is_multiple_of(8) {
        // SAFETY: features checked above.
        unsafe { avx512::binary(a, None, m.value(), avx512::Op::Reduce) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2_for(a.len(), m) {
        // SAFETY: AVX2 checked by avx2_for.
        unsafe { avx2::binary(a, None, m.value(), avx2::Op::Reduce) };
        return;
    }
    let q = m.value();
    for x in a.iter_mut() {
        *x = (*x).min(x.wrapping_sub(q));
    }
}

/// a = a + b mod q (a, b in [0, q)).
pub(crate) fn add_assign(a: &mut [u64], b: &[u64], m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() && a.len().is_multiple_of(8) {
        // SAFETY: features checked above; b's length is asserted inside.
        unsafe { avx512::binary(a, Some(b), m.value(), avx512::Op::Add) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2_for(a.len(), m) {
        // SAFETY: AVX2 checked by avx2_for; b's length is asserted inside.
        unsafe { avx2::binary(a, Some(b), m.value(), avx2::Op::Add) };
        return;
    }
    for (x, &y) in a.iter_mut().zip(b) {
        *x = m.add(*x, y);
    }
}

/// a = a - c mod q for a constant c < q.
pub(crate) fn sub_const(a: &mut [u64], c: u64, m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() && a.len().is_multiple_of(8) {
        // SAFETY: features checked above.
        unsafe { avx512::sub_const(a, c, m.value()) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2_for(a.len(), m) {
        // SAFETY: AVX2 checked by avx2_for.
        unsafe { avx2::sub_const(a, c, m.value()) };
        return;
    }
    for x in a.iter_mut() {
        *x = m.sub(*x, c);
    }
}

/// a = a - b mod q (a, b in [0, q)).
pub(crate) fn sub_assign(a: &mut [u64], b: &[u64], m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() && a.len().is_multiple_of(8) {
        // SAFETY: features checked above; b's length is asserted inside.
        unsafe { avx512::binary(a, Some(b), m.value(), avx512::Op::Sub) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2_for(a.len(), m) {
        // SAFETY: AVX2 checked by avx2_for; b's length is asserted inside.
        unsafe { avx2::binary(a, Some(b), m.value(), avx2::Op::Sub) };
        return;
    }
    for (x, &y) in a.iter_mut().zip(b) {
        *x = m.sub(*x, y);
    }
}

/// out[i] = Σ_j y_j[i]·c_j mod q for constants c_j (Shoup pairs), all inputs below
/// `bound` (which may exceed q). With inputs and q small enough
/// for IFMA, the constants are taken as (w, ⌊w·2^52/q⌋) instead — see `shoup_companion`.
pub(crate) fn dot_const_bounded(out: &mut [u64], ys: &[&[u64]], cs: &[(u64, u64)], m: &Modulus, bound: u64) {
    #[cfg(target_arch = "x86_64")]
    if bound <= (1 << 52) && uses_ifma(m) && out.len().is_multiple_of(8) {
        let cs52: Vec<(u64, u64)> = cs.iter().map(|&(c, _)| (c, shoup_companion(c, m))).collect();
        // SAFETY: IFMA checked by uses_ifma; slice lengths asserted inside.
        unsafe { avx512::dot_const_ifma(out, ys, &cs52, m.value()) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx512() && out.len().is_multiple_of(8) {
        // SAFETY: features checked above; every ys[j] is out.len() long (asserted inside).
        unsafe { avx512::dot_const(out, ys, cs, m.value()) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if bound <= (1 << 50) && crate::fma::usable(m.value()) && out.len().is_multiple_of(4) {
        let cs: Vec<u64> = cs.iter().map(|&(c, _)| c).collect();
        // SAFETY: AVX2 and FMA checked by fma::usable; q and the inputs below 2^50; lengths asserted inside.
        unsafe { crate::fma::dot_const(out, ys, &cs, m.value()) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if bound <= (1 << 63) && avx2_for(out.len(), m) {
        // SAFETY: AVX2 checked by avx2_for; every ys[j] is out.len() long (asserted inside).
        unsafe { avx2::dot_const(out, ys, cs, m.value()) };
        return;
    }
    let q = m.value();
    let q2 = 2 * q;
    for (i, o) in out.iter_mut().enumerate() {
        let mut acc = 0u64;
        for (y, &(c, cp)) in ys.iter().zip(cs) {
            acc += m.mul_shoup_lazy(y[i], c, cp);
            if acc >= q2 {
                acc -= q2;
            }
        }
        *o = if acc >= q { acc - q } else { acc };
    }
}

/// out = ((x + h) mod q)·c mod q for constants h < q and c < q (Shoup pair); x in [0, q).
pub(crate) fn add_mul_const(out: &mut [u64], x: &[u64], h: u64, c: u64, cp: u64, m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if fma_for(out.len(), m) {
        // SAFETY: fma_for checked the features, q < 2^50 and the length; x's length is asserted inside.
        unsafe { crate::fma::add_mul_const(out, x, h, c, m.value()) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2_for(out.len(), m) {
        // SAFETY: AVX2 checked by avx2_for; x is at least out.len() long (asserted inside).
        unsafe { avx2::add_mul_const(out, x, h, c, cp, m.value()) };
        return;
    }
    for (o, &v) in out.iter_mut().zip(x) {
        *o = m.mul_shoup(m.add(v, h), c, cp);
    }
}

/// u[i] = min(⌊Σ_j ys[j][i]·invs[j]⌋, ys.len()) in f64 (the overflow count of a base
/// conversion, see `rns`): the sum of the products in order j = 0, 1, …, each value
/// converted to the nearest f64, then truncated (the sum is ≥ 0). Every value is below 2^61.
pub(crate) fn overflow_counts(u: &mut [u32], ys: &[&[u64]], invs: &[f64]) {
    let k = ys.len() as u32;
    #[cfg(target_arch = "x86_64")]
    if has_avx2() && u.len().is_multiple_of(4) {
        // SAFETY: AVX2 checked above; every ys[j] is at least u.len() long (asserted inside).
        unsafe { avx2::overflow_counts(u, ys, invs) };
        return;
    }
    for (i, o) in u.iter_mut().enumerate() {
        let mut f = 0.0f64;
        for (y, &inv) in ys.iter().zip(invs) {
            // y < 2^61: the signed conversion rounds the same as the unsigned one.
            f += (y[i] as i64) as f64 * inv;
        }
        *o = (f as u32).min(k);
    }
}

/// a[i] = a[i] − table[u[i]] mod q (a and the table in [0, q)).
pub(crate) fn sub_table(a: &mut [u64], u: &[u32], table: &[u64], m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if avx2_for(a.len(), m) {
        // SAFETY: AVX2 checked by avx2_for; lengths and indices are asserted inside.
        unsafe { avx2::sub_table(a, u, table, m.value()) };
        return;
    }
    for (x, &i) in a.iter_mut().zip(u) {
        *x = m.sub(*x, table[i as usize]);
    }
}

/// x = (x - y)·w mod q for a constant w (Shoup pair); x, y in [0, q).
pub(crate) fn sub_mul_const(x: &mut [u64], y: &[u64], w: u64, wp: u64, m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() && x.len().is_multiple_of(8) {
        // SAFETY: features checked above; y is at least x.len() long (asserted inside).
        unsafe { avx512::sub_mul_const(x, y, w, wp, m.value()) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if fma_for(x.len(), m) {
        // SAFETY: fma_for checked the features, q < 2^50 and the length; y's length is asserted inside.
        unsafe { crate::fma::sub_mul_const(x, y, w, m.value()) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2_for(x.len(), m) {
        // SAFETY: AVX2 checked by avx2_for; y is at least x.len() long (asserted inside).
        unsafe { avx2::sub_mul_const(x, y, w, wp, m.value()) };
        return;
    }
    for (a, &b) in x.iter_mut().zip(y) {
        *a = m.mul_shoup(m.sub(*a, b), w, wp);
    }
}

/// dst[k] = src[perm[k]] for every position: by blocks of four where the permutation has
/// its block form (see `GaloisPerm`), else word by word.
pub(crate) fn permute_into(dst: &mut [u64], src: &[u64], perm: &crate::params::GaloisPerm) {
    let n = dst.len();
    assert!(src.len() == n && perm.len() == n, "a permutation of every position");
    let Some(blocks) = perm.blocks() else {
        for (o, &p) in dst.iter_mut().zip(perm.iter()) {
            *o = src[p as usize];
        }
        return;
    };
    #[cfg(target_arch = "x86_64")]
    if avx2_detected() {
        // SAFETY: AVX2 detected; lengths checked above, block indices inside.
        unsafe { avx2::permute_blocks(dst, src, blocks) };
        return;
    }
    for (o, &e) in dst.chunks_exact_mut(4).zip(blocks) {
        let s = &src[(e >> 8) as usize * 4..][..4];
        for (t, o) in o.iter_mut().enumerate() {
            *o = s[(e >> (2 * t) & 3) as usize];
        }
    }
}

/// y = (x − y)·w + Σ a_k·b_k mod q for a constant w (Shoup pair) and no, one or two
/// products: ModDown's last step with the addend computed as it goes. `scratch` (at
/// least y.len() words, any contents) holds the addend where no fused kernel serves q.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sub_from_mul_const_add_products(
    y: &mut [u64],
    x: &[u64],
    w: u64,
    wp: u64,
    prods: &[(&[u64], &[u64])],
    m: &Modulus,
    y_f64: bool,
    scratch: &mut [u64],
) {
    assert!(prods.len() <= 2, "at most two products");
    #[cfg(target_arch = "x86_64")]
    if fma_for(y.len(), m) {
        // SAFETY: fma_for checked the features, q < 2^50 and the length; the rest is asserted inside.
        unsafe {
            if y_f64 {
                crate::fma::sub_from_mul_const_add_products::<true>(y, x, w, prods, m.value())
            } else {
                crate::fma::sub_from_mul_const_add_products::<false>(y, x, w, prods, m.value())
            }
        };
        return;
    }
    let e = &mut scratch[..y.len()];
    match prods {
        [] => {
            // Nothing to add: (x − y)·w = (y − x)·(q − w), in place in y.
            assert!(!y_f64, "doubles only where the floating-point kernels serve the prime");
            let w_neg = m.neg(w);
            return sub_mul_const(y, x, w_neg, m.shoup(w_neg), m);
        }
        [(a, b)] => mul_into(e, a, b, m),
        [(a, b), (c, d)] => mul_add_into(e, a, b, c, d, m),
        _ => unreachable!(),
    }
    sub_from_mul_const_add(y, x, w, wp, e, m, y_f64);
}

/// y = (x − y)·w + e mod q for a constant w (Shoup pair), the result in y's buffer:
/// ModDown's last step with the addend folded in (one pass over the limb, not two).
pub(crate) fn sub_from_mul_const_add(y: &mut [u64], x: &[u64], w: u64, wp: u64, e: &[u64], m: &Modulus, y_f64: bool) {
    #[cfg(target_arch = "x86_64")]
    assert!(!y_f64 || fma_for(y.len(), m), "doubles only where the floating-point kernels serve the prime");
    #[cfg(not(target_arch = "x86_64"))]
    assert!(!y_f64, "doubles only where the floating-point kernels serve the prime");
    #[cfg(target_arch = "x86_64")]
    if fma_for(y.len(), m) {
        // SAFETY: fma_for checked the features, q < 2^50 and the length; the others' lengths are asserted inside.
        unsafe {
            if y_f64 {
                crate::fma::sub_from_mul_const_add::<true>(y, x, w, e, m.value())
            } else {
                crate::fma::sub_from_mul_const_add::<false>(y, x, w, e, m.value())
            }
        };
        return;
    }
    let _ = wp;
    // (x − y)·w = (y − x)·(q − w): the vectorised kernels of the other orientation.
    let w_neg = m.neg(w);
    sub_mul_const(y, x, w_neg, m.shoup(w_neg), m);
    add_assign(y, e, m);
}

/// out = a·b mod q (a, b in [0, q)), without first copying a into out.
pub(crate) fn mul_into(out: &mut [u64], a: &[u64], b: &[u64], m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        out.copy_from_slice(a);
        mul_assign(out, b, m);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if fma_for(out.len(), m) {
        // SAFETY: fma_for checked the features, q < 2^50 and the length; the others' lengths are asserted inside.
        unsafe { crate::fma::mul_into(out, a, b, m.value()) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2_for(out.len(), m) {
        // SAFETY: AVX2 checked by avx2_for, which also guarantees q < 2^61 and a length
        // that is a multiple of 4; the slice lengths are asserted inside.
        unsafe { avx2::mul_barrett(out, Some(a), b, None, m) };
        return;
    }
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = m.mul(x, y);
    }
}

/// out = a·b + c·d mod q (all in [0, q)): one reduction for the two products.
pub(crate) fn mul_add_into(out: &mut [u64], a: &[u64], b: &[u64], c: &[u64], d: &[u64], m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        out.copy_from_slice(a);
        mul_assign(out, b, m);
        // c·d through a stack block: no heap buffer per limb of every product.
        let mut t = [0u64; 512];
        for ((o, c), d) in out.chunks_mut(512).zip(c.chunks(512)).zip(d.chunks(512)) {
            let t = &mut t[..o.len()];
            t.copy_from_slice(c);
            mul_assign(t, d, m);
            add_assign(o, t, m);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if fma_for(out.len(), m) {
        // SAFETY: fma_for checked the features, q < 2^50 and the length; the others' lengths are asserted inside.
        unsafe { crate::fma::mul_add_into(out, a, b, c, d, m.value()) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2_for(out.len(), m) {
        // SAFETY: AVX2 checked by avx2_for, which also guarantees q < 2^61 and a length
        // that is a multiple of 4; the slice lengths are asserted inside.
        unsafe { avx2::mul_barrett(out, Some(a), b, Some((c, d)), m) };
        return;
    }
    for ((((o, &x), &y), &z), &w) in out.iter_mut().zip(a).zip(b).zip(c).zip(d) {
        *o = m.reduce_product_sum(x as u128 * y as u128 + z as u128 * w as u128);
    }
}

/// a = a·b mod q, both variable, a and b in [0, q).
pub(crate) fn mul_assign(a: &mut [u64], b: &[u64], m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if m.value() < (1 << 50) && has_ifma() && a.len().is_multiple_of(8) {
        // SAFETY: features checked above; b is at least a.len() long (asserted inside).
        unsafe { avx512::mul_barrett_ifma(a, b, m) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx512() && a.len().is_multiple_of(8) {
        // SAFETY: features checked above; b is at least a.len() long (asserted inside).
        unsafe { avx512::mul_montgomery(a, b, m) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2_for(a.len(), m) {
        // SAFETY: AVX2 checked by avx2_for, which also guarantees q < 2^61 and a length
        // that is a multiple of 4; the slice lengths are asserted inside.
        unsafe { avx2::mul_barrett(a, None, b, None, m) };
        return;
    }
    for (x, &y) in a.iter_mut().zip(b) {
        *x = m.mul(*x, y);
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use std::arch::x86_64::*;

    use crate::arith::Modulus;

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

    #[target_feature(enable = "avx512f,avx512dq")]
    pub unsafe fn mul_shoup_acc(acc: &mut [u64], x: &[u64], w: &[u64], wp: &[u64], q: u64) {
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

    #[derive(Clone, Copy, PartialEq)]
    pub enum Op {
        Add,
        Sub,
        Reduce,
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn binary(a: &mut [u64], b: Option<&[u64]>, q: u64, op: Op) {
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

    #[target_feature(enable = "avx512f")]
    pub unsafe fn sub_const(a: &mut [u64], c: u64, q: u64) {
        let qv = _mm512_set1_epi64(q as i64);
        let cv = _mm512_set1_epi64(c as i64);
        for i in (0..a.len()).step_by(8) {
            // SAFETY: i + 8 <= a.len().
            let d = _mm512_sub_epi64(_mm512_loadu_si512(a.as_ptr().add(i) as *const _), cv);
            _mm512_storeu_si512(a.as_mut_ptr().add(i) as *mut _, _mm512_min_epu64(d, _mm512_add_epi64(d, qv)));
        }
    }

    #[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
    pub unsafe fn mul_shoup_acc_ifma(acc: &mut [u64], x: &[u64], w: &[u64], wp: &[u64], q: u64) {
        let n = acc.len();
        assert!(x.len() >= n && w.len() >= n && wp.len() >= n);
        let q2 = _mm512_set1_epi64(2 * q as i64);
        let negq = _mm512_set1_epi64(((1u64 << 52) - q) as i64);
        let mask = _mm512_set1_epi64((1i64 << 52) - 1);
        let zero = _mm512_setzero_si512();
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= every slice's length.
            let a = _mm512_loadu_si512(acc.as_ptr().add(i) as *const _);
            let xv = _mm512_loadu_si512(x.as_ptr().add(i) as *const _);
            let wv = _mm512_loadu_si512(w.as_ptr().add(i) as *const _);
            let pv = _mm512_loadu_si512(wp.as_ptr().add(i) as *const _);
            let qhat = _mm512_madd52hi_epu64(zero, pv, xv);
            let t = _mm512_madd52lo_epu64(zero, wv, xv);
            let t = _mm512_and_si512(_mm512_madd52lo_epu64(t, qhat, negq), mask);
            let s = reduce_once(_mm512_add_epi64(a, t), q2);
            _mm512_storeu_si512(acc.as_mut_ptr().add(i) as *mut _, s);
        }
    }

    #[target_feature(enable = "avx512f,avx512dq")]
    pub unsafe fn dot_const(out: &mut [u64], ys: &[&[u64]], cs: &[(u64, u64)], q: u64) {
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

    #[target_feature(enable = "avx512f,avx512dq")]
    pub unsafe fn sub_mul_const(x: &mut [u64], y: &[u64], w: u64, wp: u64, q: u64) {
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

    #[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
    pub unsafe fn dot_const_ifma(out: &mut [u64], ys: &[&[u64]], cs: &[(u64, u64)], q: u64) {
        let n = out.len();
        assert!(ys.len() == cs.len() && ys.iter().all(|y| y.len() >= n));
        let qv = _mm512_set1_epi64(q as i64);
        let q2 = _mm512_set1_epi64(2 * q as i64);
        let negq = _mm512_set1_epi64(((1u64 << 52) - q) as i64);
        let mask = _mm512_set1_epi64((1i64 << 52) - 1);
        let zero = _mm512_setzero_si512();
        let consts: Vec<(__m512i, __m512i)> =
            cs.iter().map(|&(c, cp)| (_mm512_set1_epi64(c as i64), _mm512_set1_epi64(cp as i64))).collect();
        for i in (0..n).step_by(8) {
            let mut acc = zero;
            for (y, &(c, cp)) in ys.iter().zip(&consts) {
                // SAFETY: i + 8 <= n <= y.len().
                let yv = _mm512_loadu_si512(y.as_ptr().add(i) as *const _);
                let qhat = _mm512_madd52hi_epu64(zero, cp, yv);
                let t = _mm512_madd52lo_epu64(zero, c, yv);
                let t = _mm512_and_si512(_mm512_madd52lo_epu64(t, qhat, negq), mask);
                acc = reduce_once(_mm512_add_epi64(acc, t), q2);
            }
            _mm512_storeu_si512(out.as_mut_ptr().add(i) as *mut _, reduce_once(acc, qv));
        }
    }

    /// a·b mod q for q < 2^62 with 64-bit lanes: a Montgomery product (a·b·2^-64),
    /// then a Shoup product by 2^64 mod q to undo the Montgomery factor.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub unsafe fn mul_montgomery(a: &mut [u64], b: &[u64], m: &Modulus) {
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

    /// Barrett product with IFMA for q < 2^50 (L = bit length of q):
    /// x = a·b as 52-bit halves; qhat = ⌊⌊x / 2^(L-1)⌋ · ⌊2^(L+51)/q⌋ / 2^52⌋ ≥ ⌊x/q⌋ - 2.
    #[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
    pub unsafe fn mul_barrett_ifma(a: &mut [u64], b: &[u64], m: &Modulus) {
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

/// AVX2 twins of the kernels above (four lanes; primes below 2^61, so every lazy value
/// here is below 2^63 and signed compares and sign-bit blends are exact). The Shoup
/// product is the NTT's (`ntt_avx2::mul_shoup`, result in [0, 4q)).
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    use crate::arith::Modulus;
    use crate::ntt_avx2::{hi32, mul_shoup, qv, reduce, tw, tw1};

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
    #[target_feature(enable = "avx2")]
    pub unsafe fn mul_barrett(
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

    #[target_feature(enable = "avx2")]
    pub unsafe fn mul_shoup_acc(acc: &mut [u64], x: &[u64], w: &[u64], wp: &[u64], q: u64) {
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

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2")]
    pub unsafe fn key_dot(
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
    #[target_feature(enable = "avx2")]
    pub unsafe fn permute_blocks(dst: &mut [u64], src: &[u64], blocks: &[u32]) {
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

    #[derive(Clone, Copy, PartialEq)]
    pub enum Op {
        Add,
        Sub,
        Reduce,
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn binary(a: &mut [u64], b: Option<&[u64]>, q: u64, op: Op) {
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
                    (Op::Sub, Some(b)) => add_if_negative(
                        _mm256_sub_epi64(x, _mm256_loadu_si256(b.as_ptr().add(i) as *const __m256i)),
                        qv,
                    ),
                    _ => reduce(x, qv),
                };
                _mm256_storeu_si256(a.as_mut_ptr().add(i) as *mut __m256i, r);
            }
        }
    }

    /// d + q where d (read as signed) is negative, d elsewhere.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn add_if_negative(d: __m256i, q: __m256i) -> __m256i {
        let t = _mm256_add_epi64(d, q);
        _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(d), _mm256_castsi256_pd(t), _mm256_castsi256_pd(d)))
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn sub_const(a: &mut [u64], c: u64, q: u64) {
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

    /// Inputs below 2^63, constants below q with 64-bit Shoup companions.
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_const(out: &mut [u64], ys: &[&[u64]], cs: &[(u64, u64)], q: u64) {
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

    #[target_feature(enable = "avx2")]
    pub unsafe fn add_mul_const(out: &mut [u64], x: &[u64], h: u64, c: u64, cp: u64, q: u64) {
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

    /// See `super::overflow_counts`. u64 → f64 without AVX-512: the high and low 32-bit
    /// halves become exact doubles (2^84 + hi·2^32 and 2^52 + lo, by their bit patterns),
    /// whose difference with the offsets and sum round once, as the scalar conversion does.
    #[target_feature(enable = "avx2")]
    pub unsafe fn overflow_counts(u: &mut [u32], ys: &[&[u64]], invs: &[f64]) {
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

    #[target_feature(enable = "avx2")]
    pub unsafe fn sub_table(a: &mut [u64], u: &[u32], table: &[u64], q: u64) {
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

    #[target_feature(enable = "avx2")]
    pub unsafe fn sub_mul_const(x: &mut [u64], y: &[u64], w: u64, wp: u64, q: u64) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, q: u64, seed: u64) -> Vec<u64> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % q
            })
            .collect()
    }

    #[test]
    fn kernels_agree_with_scalar_arithmetic() {
        for q in [1099511922689u64, 1125899906826241, 1152921504606584833] {
            let m = Modulus::new(q);
            let n = 64;
            let (a, b, c) = (data(n, q, 1), data(n, q, 2), data(n, q, 3));
            let mut prod = a.clone();
            mul_assign(&mut prod, &b, &m);
            for i in 0..n {
                assert_eq!(prod[i], m.mul(a[i], b[i]), "q {q}");
            }
            let mut prod2 = vec![0; n];
            mul_into(&mut prod2, &a, &b, &m);
            assert_eq!(prod2, prod);
            mul_add_into(&mut prod2, &a, &b, &c, &a, &m);
            for i in 0..n {
                assert_eq!(prod2[i], m.add(m.mul(a[i], b[i]), m.mul(c[i], a[i])), "q {q}");
            }
            let bp: Vec<u64> = b.iter().map(|&w| shoup_companion(w, &m)).collect();
            let mut acc = c.clone();
            mul_shoup_acc(&mut acc, &a, &b, &bp, &m);
            reduce_2q(&mut acc, &m);
            for i in 0..n {
                assert_eq!(acc[i], m.add(c[i], m.mul(a[i], b[i])));
            }
            let mut s = a.clone();
            add_assign(&mut s, &b, &m);
            let mut d2 = a.clone();
            sub_assign(&mut d2, &b, &m);
            let mut c2 = a.clone();
            sub_const(&mut c2, 12345 % q, &m);
            for i in 0..n {
                assert_eq!(c2[i], m.sub(a[i], 12345 % q));
            }
            let mut r2: Vec<u64> = a.iter().map(|x| x + q).collect();
            reduce_2q(&mut r2, &m);
            for i in 0..n {
                assert_eq!(s[i], m.add(a[i], b[i]));
                assert_eq!(d2[i], m.sub(a[i], b[i]));
                assert_eq!(r2[i], a[i]);
            }
            let mut d = a.clone();
            sub_mul_const(&mut d, &b, 7, m.shoup(7), &m);
            for i in 0..n {
                assert_eq!(d[i], m.mul(m.sub(a[i], b[i]), 7));
            }
            let big: Vec<u64> = a.iter().map(|x| x | (1 << 61)).collect();
            let cs = [(5u64, m.shoup(5)), (q - 1, m.shoup(q - 1))];
            let mut out = vec![0; n];
            dot_const_bounded(&mut out, &[&big, &b], &cs, &m, u64::MAX);
            for i in 0..n {
                let want = m.add(m.mul(m.reduce(big[i]), 5), m.mul(b[i], q - 1));
                assert_eq!(out[i], want);
            }
            let small: Vec<u64> = a.iter().map(|x| x & ((1 << 50) - 1)).collect();
            dot_const_bounded(&mut out, &[&small, &b], &cs, &m, 1 << 50);
            for i in 0..n {
                let want = m.add(m.mul(m.reduce(small[i]), 5), m.mul(b[i], q - 1));
                assert_eq!(out[i], want);
            }
        }
    }

    /// The AVX2 product of two variables against u128 arithmetic on many random values
    /// and the extremes (0, 1, q − 1, 2^32 ± 1), for primes of every size from 20 to 61 bits.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_variable_products_agree_with_scalar() {
        if !is_x86_feature_detected!("avx2") {
            return;
        }
        for bits in [20u32, 31, 32, 33, 40, 47, 50, 55, 59, 60, 61] {
            let q = crate::primes::ntt_primes(bits, 8, 1, &[]).unwrap()[0];
            let m = Modulus::new(q);
            let n = 4096;
            let edge = [0, 1, q - 1, q - 2, (1u64 << 32) % q, ((1u64 << 32) + 1) % q, ((1u64 << 32) - 1) % q, q / 2];
            let mk = |seed: u64| -> Vec<u64> {
                data(n, q, seed)
                    .iter()
                    .enumerate()
                    .map(|(i, &r)| if i % 5 == 0 { edge[(i / 5) % 8] } else { r })
                    .collect()
            };
            let (a, b, c, d) = (mk(21), mk(22), mk(23), mk(24));
            // Every pair of edges too.
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            for &x in &edge {
                for &y in &edge {
                    ea.push(x);
                    eb.push(y);
                }
            }
            for (a, b, c, d) in [(&a, &b, &c, &d), (&ea, &eb, &eb, &ea)] {
                let n = a.len();
                let (mut r, mut r2) = (vec![0; n], vec![0; n]);
                // SAFETY: AVX2 detected above; every slice is n long, n a multiple of 4, q < 2^61.
                unsafe {
                    avx2::mul_barrett(&mut r, Some(a), b, None, &m);
                    avx2::mul_barrett(&mut r2, Some(a), b, Some((c, d)), &m);
                }
                for i in 0..n {
                    assert_eq!(r[i], (a[i] as u128 * b[i] as u128 % q as u128) as u64, "q {q} {} {}", a[i], b[i]);
                    let x = a[i] as u128 * b[i] as u128 + c[i] as u128 * d[i] as u128;
                    assert_eq!(r2[i], (x % q as u128) as u64, "q {q}");
                }
            }
        }
    }

    /// The AVX2 kernels against scalar arithmetic, called directly (whatever the dispatch
    /// picks on this CPU), on random values and the edges of each lazy range: 0, 1, q − 1,
    /// 2q − 1 accumulators, Shoup inputs up to 8q − 1 and 2^63 − 1, base-conversion inputs
    /// near 2^62.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_kernels_agree_with_scalar_on_edges() {
        use std::arch::x86_64::*;
        if !is_x86_feature_detected!("avx2") {
            return;
        }
        for q in [65537u64, 1099511922689, 1125899906826241, 1152921504606584833, 2305843009213554689] {
            assert!(q < 1 << 61);
            let m = Modulus::new(q);
            let n = 64;
            let edges = |i: usize, top: u64| [0, 1, q - 1, q - 2, top - 1, top / 2][i % 6];
            let mix = |seed: u64, top: u64| -> Vec<u64> {
                data(n, q, seed).iter().enumerate().map(|(i, &r)| if i % 3 == 0 { edges(i, top) } else { r }).collect()
            };
            let (a, b) = (mix(1, q), mix(2, q));
            let w: Vec<u64> = mix(3, q);
            let wp: Vec<u64> = w.iter().map(|&x| m.shoup(x)).collect();
            // Shoup product on the widest inputs the NTT feeds it.
            let xs: Vec<u64> = (0..n as u64)
                .map(|i| {
                    [0, 1, 4 * q - 1, 8 * q - 1, (1 << 63) - 1, i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 1]
                        [i as usize % 6]
                })
                .collect();
            for c in (0..n).step_by(4) {
                let mut out = [0u64; 4];
                // SAFETY: AVX2 detected above; four words read and written at each pointer.
                unsafe {
                    let qs = crate::ntt_avx2::qv::<false>(q);
                    let t = crate::ntt_avx2::tw(
                        _mm256_loadu_si256(w.as_ptr().add(c) as *const __m256i),
                        _mm256_loadu_si256(wp.as_ptr().add(c) as *const __m256i),
                    );
                    let x = _mm256_loadu_si256(xs.as_ptr().add(c) as *const __m256i);
                    _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, crate::ntt_avx2::mul_shoup(x, t, qs));
                }
                for k in 0..4 {
                    let want = ((xs[c + k] as u128 * w[c + k] as u128) % q as u128) as u64;
                    assert!(out[k] < 4 * q && out[k] % q == want, "q {q} x {} w {}", xs[c + k], w[c + k]);
                }
            }
            // SAFETY (all calls below): AVX2 detected above; every slice is n long, n a multiple of 4.
            let acc0: Vec<u64> = mix(4, 2 * q);
            let mut acc = acc0.clone();
            unsafe { avx2::mul_shoup_acc(&mut acc, &a, &w, &wp, q) };
            for i in 0..n {
                assert!(acc[i] < 2 * q);
                assert_eq!(acc[i] % q, (acc0[i] % q + m.mul(a[i], w[i])) % q);
            }
            let (mut k0, mut k1) = (vec![7; n], vec![7; n]);
            let c = mix(6, q);
            let cp: Vec<u64> = c.iter().map(|&x| m.shoup(x)).collect();
            unsafe { avx2::key_dot(&mut k0, &mut k1, &[&a, &b], &[&w, &c], &[&wp, &cp], &[&c, &w], &[&cp, &wp], q) };
            for i in 0..n {
                assert_eq!(k0[i], m.add(m.mul(a[i], w[i]), m.mul(b[i], c[i])));
                assert_eq!(k1[i], m.add(m.mul(a[i], c[i]), m.mul(b[i], w[i])));
            }
            // overflow counts: both paths, values near 2^61 and 0, and sub_table.
            let y0: Vec<u64> = mix(8, 1 << 61);
            let y1: Vec<u64> = mix(9, q);
            let invs = [1.0 / q as f64, 1.0 / 1099511922689f64];
            let mut u_avx = vec![0u32; n];
            unsafe { avx2::overflow_counts(&mut u_avx, &[&y0, &y1], &invs) };
            for i in 0..n {
                let f = (y0[i] as f64) * invs[0] + (y1[i] as f64) * invs[1];
                assert_eq!(u_avx[i], (f.floor() as u32).min(2), "{} {}", y0[i], y1[i]);
            }
            let table = [3 % q, q - 1, q / 2];
            let mut r = a.clone();
            unsafe { avx2::sub_table(&mut r, &u_avx, &table, q) };
            for i in 0..n {
                assert_eq!(r[i], m.sub(a[i], table[u_avx[i] as usize]));
            }
            // Tables of every length up to the blend path's 8 entries, and the gather beyond.
            for len in 1..=10usize {
                let table: Vec<u64> = (0..len as u64).map(|j| [0, q - 1, 1, q / 2][j as usize % 4] ^ (j & 1)).collect();
                let table: Vec<u64> = table.iter().map(|&t| t % q).collect();
                let u: Vec<u32> = (0..n).map(|i| ((i * 7 + i / 5) % len) as u32).collect();
                let mut r = a.clone();
                unsafe { avx2::sub_table(&mut r, &u, &table, q) };
                for i in 0..n {
                    assert_eq!(r[i], m.sub(a[i], table[u[i] as usize]), "len {len}");
                }
            }
            for (op, f) in [(avx2::Op::Add, 0), (avx2::Op::Sub, 1)] {
                let mut r = a.clone();
                unsafe { avx2::binary(&mut r, Some(&b), q, op) };
                for i in 0..n {
                    assert_eq!(r[i], if f == 0 { m.add(a[i], b[i]) } else { m.sub(a[i], b[i]) });
                }
            }
            let mut r = acc0.clone();
            unsafe { avx2::binary(&mut r, None, q, avx2::Op::Reduce) };
            assert!(r.iter().zip(&acc0).all(|(&r, &x)| r == x % q));
            let mut r = a.clone();
            unsafe { avx2::sub_const(&mut r, q - 1, q) };
            assert!(r.iter().zip(&a).all(|(&r, &x)| r == m.sub(x, q - 1)));
            let mut r = vec![0; n];
            unsafe { avx2::add_mul_const(&mut r, &a, q - 1, w[4], wp[4], q) };
            for i in 0..n {
                assert_eq!(r[i], m.mul(m.add(a[i], q - 1), w[4]));
            }
            let mut r = a.clone();
            unsafe { avx2::sub_mul_const(&mut r, &b, w[5], wp[5], q) };
            for i in 0..n {
                assert_eq!(r[i], m.mul(m.sub(a[i], b[i]), w[5]));
            }
            // Products of two variables: out of place, in place, and the sum of two products,
            // against u128 arithmetic and the scalar Barrett.
            let (c, d) = (mix(10, q), mix(11, q));
            let mut r = vec![0; n];
            unsafe { avx2::mul_barrett(&mut r, Some(&a), &b, None, &m) };
            let mut r_in = a.clone();
            unsafe { avx2::mul_barrett(&mut r_in, None, &b, None, &m) };
            let mut r2 = vec![0; n];
            unsafe { avx2::mul_barrett(&mut r2, Some(&a), &b, Some((&c, &d)), &m) };
            for i in 0..n {
                let want = (a[i] as u128 * b[i] as u128 % q as u128) as u64;
                assert_eq!((r[i], r_in[i]), (want, want), "q {q} a {} b {}", a[i], b[i]);
                assert_eq!(r[i], m.mul(a[i], b[i]));
                let x = a[i] as u128 * b[i] as u128 + c[i] as u128 * d[i] as u128;
                assert_eq!(r2[i], (x % q as u128) as u64, "q {q}");
                assert_eq!(r2[i], m.reduce_product_sum(x));
            }
            let big: Vec<u64> = mix(5, 1 << 62).iter().map(|&x| x | (1 << 61)).collect();
            let cs = [(q - 1, m.shoup(q - 1)), (1, m.shoup(1)), (w[7], wp[7])];
            let mut out = vec![0; n];
            unsafe { avx2::dot_const(&mut out, &[&big, &a, &b], &cs, q) };
            for i in 0..n {
                let want = m.add(m.add(m.mul(m.reduce(big[i]), q - 1), a[i]), m.mul(b[i], w[7]));
                assert_eq!(out[i], want, "q {q}");
            }
        }
    }
}
