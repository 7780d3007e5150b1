//! Vectorised slice kernels for the hot loops outside the NTT: products by
//! precomputed constants (Shoup), accumulation of key-switching inner products, and
//! Barrett products of two variable operands. Each kernel has a portable scalar
//! twin; the AVX-512 paths are chosen at run time and tested against it.

use crate::arith::Modulus;
use crate::isa;
#[cfg(target_arch = "x86_64")]
use crate::x86_64::{avx2::kernels as avx2, avx512, fma};

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    isa::Avx512::get().is_some()
}

#[cfg(target_arch = "x86_64")]
fn has_ifma() -> bool {
    isa::Ifma::get().is_some()
}

/// The AVX-512 kernels' token, where they take slices of this length.
#[cfg(target_arch = "x86_64")]
fn avx512_for(len: usize) -> Option<isa::Avx512> {
    isa::Avx512::get().filter(|_| len.is_multiple_of(8))
}

/// The IFMA kernels' token, where they take slices of this length modulo this prime.
#[cfg(target_arch = "x86_64")]
fn ifma_for(len: usize, m: &Modulus) -> Option<isa::Ifma> {
    isa::Ifma::get().filter(|_| len.is_multiple_of(8) && m.value() < (1 << 50))
}

/// The floating-point kernels' token, where they take slices of this length modulo this prime.
#[cfg(target_arch = "x86_64")]
fn fma_for(len: usize, m: &Modulus) -> Option<isa::Fma> {
    fma::token(m.value()).filter(|_| len.is_multiple_of(4))
}

/// The AVX2 kernels' token, where they take slices of this length modulo this prime.
#[cfg(target_arch = "x86_64")]
fn avx2_for(len: usize, m: &Modulus) -> Option<isa::Avx2> {
    isa::avx2_tier().filter(|_| len.is_multiple_of(4) && m.value() < (1 << 61))
}

/// Whether vector Shoup products for this prime use IFMA, whose companions are
/// ⌊w·2^52/q⌋ instead of ⌊w·2^64/q⌋ (see `shoup_companion`).
pub fn uses_ifma(m: &Modulus) -> bool {
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
pub fn key_companion(w: u64, m: &Modulus) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if fma::usable(m.value()) {
        return (w as f64).to_bits();
    }
    shoup_companion(w, m)
}

/// The Shoup companion of a constant w that `mul_shoup_acc` expects for this prime.
pub fn shoup_companion(w: u64, m: &Modulus) -> u64 {
    if uses_ifma(m) {
        (((w as u128) << 52) / m.value() as u128) as u64
    } else {
        m.shoup(w)
    }
}

/// acc = (acc + x·w) mod q, lazily: acc stays in [0, 2q). `w` comes with companions
/// `wp` from `shoup_companion`; x must be below q.
pub fn mul_shoup_acc(acc: &mut [u64], x: &[u64], w: &[u64], wp: &[u64], m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = ifma_for(acc.len(), m) {
        avx512::mul_shoup_acc_ifma(t, acc, x, w, wp, m.value());
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx512_for(acc.len()) {
        avx512::mul_shoup_acc(t, acc, x, w, wp, m.value());
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx2_for(acc.len(), m) {
        avx2::mul_shoup_acc(t, acc, x, w, wp, m.value());
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
/// with `src_f64` set are centered doubles (`NttTable::forward_for_kernels` output), the
/// others words below q. Both vector kernels go one digit at a time over the whole limb
/// (long sequential streams: at N = 2^14 the key comes from memory).
#[allow(clippy::too_many_arguments)]
pub fn key_dot(
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
    if let Some(t) = fma::token(m.value()) {
        fma::key_dot(t, o0, o1, src, src_f64, bp, ap, m.value());
        return;
    }
    assert!(!src_f64.contains(&true), "sources as doubles only where the floating-point kernel serves the prime");
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx2_for(o0.len(), m) {
        avx2::key_dot(t, o0, o1, src, b, bp, a, ap, m.value());
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
pub fn reduce_2q(a: &mut [u64], m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx512_for(a.len()) {
        avx512::binary(t, a, None, m.value(), avx512::Op::Reduce);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx2_for(a.len(), m) {
        avx2::binary(t, a, None, m.value(), avx2::Op::Reduce);
        return;
    }
    let q = m.value();
    for x in a.iter_mut() {
        *x = (*x).min(x.wrapping_sub(q));
    }
}

/// a = a + b mod q (a, b in [0, q)).
pub fn add_assign(a: &mut [u64], b: &[u64], m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx512_for(a.len()) {
        avx512::binary(t, a, Some(b), m.value(), avx512::Op::Add);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx2_for(a.len(), m) {
        avx2::binary(t, a, Some(b), m.value(), avx2::Op::Add);
        return;
    }
    for (x, &y) in a.iter_mut().zip(b) {
        *x = m.add(*x, y);
    }
}

/// a = a - c mod q for a constant c < q.
pub fn sub_const(a: &mut [u64], c: u64, m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx512_for(a.len()) {
        avx512::sub_const(t, a, c, m.value());
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx2_for(a.len(), m) {
        avx2::sub_const(t, a, c, m.value());
        return;
    }
    for x in a.iter_mut() {
        *x = m.sub(*x, c);
    }
}

/// a = a - b mod q (a, b in [0, q)).
pub fn sub_assign(a: &mut [u64], b: &[u64], m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx512_for(a.len()) {
        avx512::binary(t, a, Some(b), m.value(), avx512::Op::Sub);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx2_for(a.len(), m) {
        avx2::binary(t, a, Some(b), m.value(), avx2::Op::Sub);
        return;
    }
    for (x, &y) in a.iter_mut().zip(b) {
        *x = m.sub(*x, y);
    }
}

/// out[i] = Σ_j y_j[i]·c_j mod q for constants c_j (Shoup pairs), all inputs below
/// `bound` (which may exceed q). With inputs and q small enough
/// for IFMA, the constants are taken as (w, ⌊w·2^52/q⌋) instead — see `shoup_companion`.
pub fn dot_const_bounded(out: &mut [u64], ys: &[&[u64]], cs: &[(u64, u64)], m: &Modulus, bound: u64) {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = ifma_for(out.len(), m).filter(|_| bound <= (1 << 52)) {
        let cs52: Vec<(u64, u64)> = cs.iter().map(|&(c, _)| (c, shoup_companion(c, m))).collect();
        avx512::dot_const_ifma(t, out, ys, &cs52, m.value());
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx512_for(out.len()) {
        avx512::dot_const(t, out, ys, cs, m.value());
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = fma_for(out.len(), m).filter(|_| bound <= (1 << 50)) {
        let cs: Vec<u64> = cs.iter().map(|&(c, _)| c).collect();
        fma::dot_const(t, out, ys, &cs, m.value());
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx2_for(out.len(), m).filter(|_| bound <= (1 << 63)) {
        avx2::dot_const(t, out, ys, cs, m.value());
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

/// a = a·c mod q in place, for a constant c < q (Shoup pair: `m.shoup(c)`); a in [0, q).
pub fn mul_const_assign(a: &mut [u64], c: u64, cp: u64, m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = ifma_for(a.len(), m) {
        avx512::mul_const_assign_ifma(t, a, c, shoup_companion(c, m), m.value());
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx512_for(a.len()).filter(|_| m.value() < (1 << 61)) {
        avx512::mul_const_assign(t, a, c, cp, m.value());
        return;
    }
    for x in a.iter_mut() {
        *x = m.mul_shoup(*x, c, cp);
    }
}

/// out = ((x + h) mod q)·c mod q for constants h < q and c < q (Shoup pair); x in [0, q).
pub fn add_mul_const(out: &mut [u64], x: &[u64], h: u64, c: u64, cp: u64, m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = ifma_for(out.len(), m) {
        avx512::add_mul_const_ifma(t, out, x, h, c, shoup_companion(c, m), m.value());
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx512_for(out.len()).filter(|_| m.value() < (1 << 61)) {
        avx512::add_mul_const(t, out, x, h, c, cp, m.value());
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = fma_for(out.len(), m) {
        fma::add_mul_const(t, out, x, h, c, m.value());
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx2_for(out.len(), m) {
        avx2::add_mul_const(t, out, x, h, c, cp, m.value());
        return;
    }
    for (o, &v) in out.iter_mut().zip(x) {
        *o = m.mul_shoup(m.add(v, h), c, cp);
    }
}

/// u[i] = min(⌊Σ_j ys[j][i]·invs[j]⌋, ys.len()) in f64 (the overflow count of a base
/// conversion, see `rns`): the sum of the products in order j = 0, 1, …, each value
/// converted to the nearest f64, then truncated (the sum is ≥ 0). Every value is below 2^61.
pub fn overflow_counts(u: &mut [u32], ys: &[&[u64]], invs: &[f64]) {
    let k = ys.len() as u32;
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx512_for(u.len()) {
        avx512::overflow_counts(t, u, ys, invs);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = isa::avx2_tier().filter(|_| u.len().is_multiple_of(4)) {
        avx2::overflow_counts(t, u, ys, invs);
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

/// One target of an exact base conversion (the `rns` module's): out = Σ_j ys[j]·cs[j] mod q, less
/// `table[u[i]]` (the overflow correction) — [`dot_const_bounded`] then [`sub_table`], in one
/// pass on AVX-512. `from[j]` bounds `ys[j]` (its source prime); `cs` are Shoup pairs
/// (64-bit companions) below q.
#[allow(clippy::too_many_arguments)] // the conversion's tables for one target, as they are
pub fn convert_target(
    out: &mut [u64],
    ys: &[&[u64]],
    cs: &[(u64, u64)],
    from: &[u64],
    u: &[u32],
    table: &[u64],
    m: &Modulus,
) {
    #[cfg(target_arch = "x86_64")]
    if (1..=8).contains(&table.len()) {
        if let Some(t) = ifma_for(out.len(), m) {
            // A source above 2^52 is split into 52-bit halves (see the kernel): its high
            // half's constant is c·2^52 mod q.
            let two52 = m.reduce(1 << 52);
            let wide: Vec<bool> = from.iter().map(|&b| b > (1 << 52)).collect();
            let cs52: Vec<(u64, u64)> = cs.iter().map(|&(c, _)| (c, shoup_companion(c, m))).collect();
            let c_hi: Vec<(u64, u64)> = cs
                .iter()
                .map(|&(c, _)| {
                    let h = m.mul(c, two52);
                    (h, shoup_companion(h, m))
                })
                .collect();
            avx512::convert_target_ifma(t, out, ys, &cs52, &c_hi, &wide, u, table, m.value());
            return;
        }
        if let Some(t) = avx512_for(out.len()).filter(|_| m.value() < (1 << 61)) {
            avx512::convert_target(t, out, ys, cs, u, table, m.value());
            return;
        }
    }
    let bound = from.iter().copied().max().unwrap_or(0);
    dot_const_bounded(out, ys, cs, m, bound);
    sub_table(out, u, table, m);
}

/// a[i] = a[i] − table[u[i]] mod q (a and the table in [0, q)).
pub fn sub_table(a: &mut [u64], u: &[u32], table: &[u64], m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx2_for(a.len(), m) {
        avx2::sub_table(t, a, u, table, m.value());
        return;
    }
    for (x, &i) in a.iter_mut().zip(u) {
        *x = m.sub(*x, table[i as usize]);
    }
}

/// x = (x - y)·w mod q for a constant w (Shoup pair); x, y in [0, q).
pub fn sub_mul_const(x: &mut [u64], y: &[u64], w: u64, wp: u64, m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx512_for(x.len()) {
        avx512::sub_mul_const(t, x, y, w, wp, m.value());
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = fma_for(x.len(), m) {
        fma::sub_mul_const(t, x, y, w, m.value());
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx2_for(x.len(), m) {
        avx2::sub_mul_const(t, x, y, w, wp, m.value());
        return;
    }
    for (a, &b) in x.iter_mut().zip(y) {
        *a = m.mul_shoup(m.sub(*a, b), w, wp);
    }
}

/// dst[k] = src[perm[k]] for every position: by blocks of four where the permutation has
/// its block form (see `GaloisPerm`), else word by word.
pub fn permute_into(dst: &mut [u64], src: &[u64], perm: &[u32], blocks: Option<&[u32]>) {
    let n = dst.len();
    assert!(src.len() == n && perm.len() == n, "a permutation of every position");
    let Some(blocks) = blocks else {
        for (o, &p) in dst.iter_mut().zip(perm.iter()) {
            *o = src[p as usize];
        }
        return;
    };
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = isa::Avx2::get() {
        avx2::permute_blocks(t, dst, src, blocks);
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
pub fn sub_from_mul_const_add_products(
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
    if let Some(t) = fma_for(y.len(), m) {
        if y_f64 {
            fma::sub_from_mul_const_add_products::<true>(t, y, x, w, prods, m.value())
        } else {
            fma::sub_from_mul_const_add_products::<false>(t, y, x, w, prods, m.value())
        }
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
pub fn sub_from_mul_const_add(y: &mut [u64], x: &[u64], w: u64, wp: u64, e: &[u64], m: &Modulus, y_f64: bool) {
    #[cfg(target_arch = "x86_64")]
    assert!(!y_f64 || fma_for(y.len(), m).is_some(), "doubles only where the floating-point kernels serve the prime");
    #[cfg(not(target_arch = "x86_64"))]
    assert!(!y_f64, "doubles only where the floating-point kernels serve the prime");
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = fma_for(y.len(), m) {
        if y_f64 {
            fma::sub_from_mul_const_add::<true>(t, y, x, w, e, m.value())
        } else {
            fma::sub_from_mul_const_add::<false>(t, y, x, w, e, m.value())
        }
        return;
    }
    let _ = wp;
    // (x − y)·w = (y − x)·(q − w): the vectorised kernels of the other orientation.
    let w_neg = m.neg(w);
    sub_mul_const(y, x, w_neg, m.shoup(w_neg), m);
    add_assign(y, e, m);
}

/// out = a·b mod q (a, b in [0, q)), without first copying a into out.
pub fn mul_into(out: &mut [u64], a: &[u64], b: &[u64], m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        out.copy_from_slice(a);
        mul_assign(out, b, m);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = fma_for(out.len(), m) {
        fma::mul_into(t, out, a, b, m.value());
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx2_for(out.len(), m) {
        avx2::mul_barrett(t, out, Some(a), b, None, m);
        return;
    }
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = m.mul(x, y);
    }
}

/// out = a·b + c·d mod q (all in [0, q)): one reduction for the two products.
pub fn mul_add_into(out: &mut [u64], a: &[u64], b: &[u64], c: &[u64], d: &[u64], m: &Modulus) {
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
    if let Some(t) = fma_for(out.len(), m) {
        fma::mul_add_into(t, out, a, b, c, d, m.value());
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx2_for(out.len(), m) {
        avx2::mul_barrett(t, out, Some(a), b, Some((c, d)), m);
        return;
    }
    for ((((o, &x), &y), &z), &w) in out.iter_mut().zip(a).zip(b).zip(c).zip(d) {
        *o = m.reduce_product_sum(x as u128 * y as u128 + z as u128 * w as u128);
    }
}

/// a = a·b mod q, both variable, a and b in [0, q).
pub fn mul_assign(a: &mut [u64], b: &[u64], m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = ifma_for(a.len(), m) {
        avx512::mul_barrett_ifma(t, a, b, m);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx512_for(a.len()) {
        avx512::mul_montgomery(t, a, b, m);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx2_for(a.len(), m) {
        avx2::mul_barrett(t, a, None, b, None, m);
        return;
    }
    for (x, &y) in a.iter_mut().zip(b) {
        *x = m.mul(*x, y);
    }
}

/// Integer-weighted sums with one reduction per output (the throughput layout's linear
/// layers): `outs[o][j] = Σ_k w[o·K + k] · xs[k][j] mod q` with K = `xs.len()`, residues
/// in [0, q), q < 2^31 and Σ_k |w[o·K + k]| · q < 2^62 (see [`crate::int_sums`]).
/// Every slice is one length, a multiple of [`crate::int_sums::BLOCK`].
///
/// # Panics
/// If the prime, a weight row's magnitude or a length breaks the contract above: the
/// callers size the weights once per layer, so a panic here is a bug, not bad input.
pub fn weighted_sums(outs: &mut [&mut [u64]], xs: &[&[u64]], w: &[i32], m: &Modulus) {
    use crate::int_sums::{BLOCK, MAX_PRIME, MAX_WEIGHTED_MAGNITUDE};
    let q = m.value();
    assert!((1 << 12..MAX_PRIME).contains(&q), "weighted_sums takes primes in [2^12, 2^31)");
    let k = xs.len();
    assert_eq!(w.len(), outs.len() * k, "one row of weights per output");
    let n = outs.first().map_or(0, |o| o.len());
    assert!(n.is_multiple_of(BLOCK), "lengths in whole blocks");
    assert!(outs.iter().all(|o| o.len() == n) && xs.iter().all(|x| x.len() == n));
    for row in w.chunks(k.max(1)) {
        let mag: u128 = row.iter().map(|&v| v.unsigned_abs() as u128).sum::<u128>() * q as u128;
        assert!(mag < MAX_WEIGHTED_MAGNITUDE, "weights too large for one lazy sum");
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = isa::Avx512::get() {
        crate::x86_64::int_sums::weighted_sums_avx512(t, outs, xs, w, m);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = isa::Avx2::get() {
        crate::x86_64::int_sums::weighted_sums_avx2(t, outs, xs, w, m);
        return;
    }
    crate::int_sums::weighted_sums_body(outs, xs, w, m);
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
            let mut k = a.clone();
            mul_const_assign(&mut k, b[0], m.shoup(b[0]), &m);
            for i in 0..n {
                assert_eq!(k[i], m.mul(a[i], b[0]), "q {q}");
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
        // SAFETY: AVX2 detected just above.
        let tok = unsafe { crate::isa::Avx2::assume() };
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
                avx2::mul_barrett(tok, &mut r, Some(a), b, None, &m);
                avx2::mul_barrett(tok, &mut r2, Some(a), b, Some((c, d)), &m);
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
        // SAFETY: AVX2 detected just above.
        let tok = unsafe { crate::isa::Avx2::assume() };
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
                    let qs = crate::x86_64::avx2::transform::qv::<false>(q);
                    let t = crate::x86_64::avx2::transform::tw(
                        _mm256_loadu_si256(w.as_ptr().add(c) as *const __m256i),
                        _mm256_loadu_si256(wp.as_ptr().add(c) as *const __m256i),
                    );
                    let x = _mm256_loadu_si256(xs.as_ptr().add(c) as *const __m256i);
                    _mm256_storeu_si256(
                        out.as_mut_ptr() as *mut __m256i,
                        crate::x86_64::avx2::transform::mul_shoup(x, t, qs),
                    );
                }
                for k in 0..4 {
                    let want = ((xs[c + k] as u128 * w[c + k] as u128) % q as u128) as u64;
                    assert!(out[k] < 4 * q && out[k] % q == want, "q {q} x {} w {}", xs[c + k], w[c + k]);
                }
            }
            // SAFETY (all calls below): AVX2 detected above; every slice is n long, n a multiple of 4.
            let acc0: Vec<u64> = mix(4, 2 * q);
            let mut acc = acc0.clone();
            avx2::mul_shoup_acc(tok, &mut acc, &a, &w, &wp, q);
            for i in 0..n {
                assert!(acc[i] < 2 * q);
                assert_eq!(acc[i] % q, (acc0[i] % q + m.mul(a[i], w[i])) % q);
            }
            let (mut k0, mut k1) = (vec![7; n], vec![7; n]);
            let c = mix(6, q);
            let cp: Vec<u64> = c.iter().map(|&x| m.shoup(x)).collect();
            avx2::key_dot(tok, &mut k0, &mut k1, &[&a, &b], &[&w, &c], &[&wp, &cp], &[&c, &w], &[&cp, &wp], q);
            for i in 0..n {
                assert_eq!(k0[i], m.add(m.mul(a[i], w[i]), m.mul(b[i], c[i])));
                assert_eq!(k1[i], m.add(m.mul(a[i], c[i]), m.mul(b[i], w[i])));
            }
            // overflow counts: both paths, values near 2^61 and 0, and sub_table.
            let y0: Vec<u64> = mix(8, 1 << 61);
            let y1: Vec<u64> = mix(9, q);
            let invs = [1.0 / q as f64, 1.0 / 1099511922689f64];
            let mut u_avx = vec![0u32; n];
            avx2::overflow_counts(tok, &mut u_avx, &[&y0, &y1], &invs);
            for i in 0..n {
                let f = (y0[i] as f64) * invs[0] + (y1[i] as f64) * invs[1];
                assert_eq!(u_avx[i], (f.floor() as u32).min(2), "{} {}", y0[i], y1[i]);
            }
            let table = [3 % q, q - 1, q / 2];
            let mut r = a.clone();
            avx2::sub_table(tok, &mut r, &u_avx, &table, q);
            for i in 0..n {
                assert_eq!(r[i], m.sub(a[i], table[u_avx[i] as usize]));
            }
            // Tables of every length up to the blend path's 8 entries, and the gather beyond.
            for len in 1..=10usize {
                let table: Vec<u64> = (0..len as u64).map(|j| [0, q - 1, 1, q / 2][j as usize % 4] ^ (j & 1)).collect();
                let table: Vec<u64> = table.iter().map(|&t| t % q).collect();
                let u: Vec<u32> = (0..n).map(|i| ((i * 7 + i / 5) % len) as u32).collect();
                let mut r = a.clone();
                avx2::sub_table(tok, &mut r, &u, &table, q);
                for i in 0..n {
                    assert_eq!(r[i], m.sub(a[i], table[u[i] as usize]), "len {len}");
                }
            }
            for (op, f) in [(avx2::Op::Add, 0), (avx2::Op::Sub, 1)] {
                let mut r = a.clone();
                avx2::binary(tok, &mut r, Some(&b), q, op);
                for i in 0..n {
                    assert_eq!(r[i], if f == 0 { m.add(a[i], b[i]) } else { m.sub(a[i], b[i]) });
                }
            }
            let mut r = acc0.clone();
            avx2::binary(tok, &mut r, None, q, avx2::Op::Reduce);
            assert!(r.iter().zip(&acc0).all(|(&r, &x)| r == x % q));
            let mut r = a.clone();
            avx2::sub_const(tok, &mut r, q - 1, q);
            assert!(r.iter().zip(&a).all(|(&r, &x)| r == m.sub(x, q - 1)));
            let mut r = vec![0; n];
            avx2::add_mul_const(tok, &mut r, &a, q - 1, w[4], wp[4], q);
            for i in 0..n {
                assert_eq!(r[i], m.mul(m.add(a[i], q - 1), w[4]));
            }
            let mut r = a.clone();
            avx2::sub_mul_const(tok, &mut r, &b, w[5], wp[5], q);
            for i in 0..n {
                assert_eq!(r[i], m.mul(m.sub(a[i], b[i]), w[5]));
            }
            // Products of two variables: out of place, in place, and the sum of two products,
            // against u128 arithmetic and the scalar Barrett.
            let (c, d) = (mix(10, q), mix(11, q));
            let mut r = vec![0; n];
            avx2::mul_barrett(tok, &mut r, Some(&a), &b, None, &m);
            let mut r_in = a.clone();
            avx2::mul_barrett(tok, &mut r_in, None, &b, None, &m);
            let mut r2 = vec![0; n];
            avx2::mul_barrett(tok, &mut r2, Some(&a), &b, Some((&c, &d)), &m);
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
            avx2::dot_const(tok, &mut out, &[&big, &a, &b], &cs, q);
            for i in 0..n {
                let want = m.add(m.add(m.mul(m.reduce(big[i]), q - 1), a[i]), m.mul(b[i], w[7]));
                assert_eq!(out[i], want, "q {q}");
            }
        }
    }
}
