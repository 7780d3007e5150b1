//! Integer-weighted sums of residue vectors with one reduction per output: the linear
//! layers of the throughput layout (one ciphertext per feature, weights as scalars).
//!
//! out_o[j] = Σ_k w[o][k] · x_k[j] mod q, for residues x_k[j] in [0, q), q < 2^31, and
//! signed 32-bit weights with Σ_k |w[o][k]| · q < 2^62. Each product is a signed 32×32→64
//! multiply (`vpmuldq` once vectorised) added into an `i64` accumulator; nothing is
//! reduced until the sum is complete (a CryptoNets dense layer sums 845 products per
//! output: one reduction instead of 845). The body here is generic: the `x86_64`
//! wrappers compile it with vector features enabled, the dispatch in `kernels` picks one.

use crate::arith::Modulus;

/// Coefficients per block: the accumulators of one group of outputs stay in L1.
pub const BLOCK: usize = 64;

/// Outputs summed in one pass over the inputs: each block of an input is read once per
/// group. Eight accumulators of a block take 4 KB of L1; a CryptoNets dense layer ran
/// 20 % faster with 8 than with 4 (16 gave nothing more: `bench/peers.sh cryptonets`).
pub const GROUP: usize = 8;

/// The largest prime the kernel accepts: residues must be non-negative as `i32`.
pub const MAX_PRIME: u64 = 1 << 31;

/// The bound on Σ_k |w[o][k]| · q that keeps every partial sum inside an `i64` with
/// room for the reduction's estimate.
pub const MAX_WEIGHTED_MAGNITUDE: u128 = 1 << 62;

/// Reduces one block of signed accumulators (|a| < 2^62) into [0, q): the quotient is
/// estimated in double precision and truncated (a vector conversion; `round` is a libm
/// call per lane), which leaves the remainder within (−q·(1 + 2^−9), q·(1 + 2^−9)) for
/// q ≥ 2^12 (the f64 product's error is below 2^10 / q quotients); three conditional
/// corrections bring it into [0, q).
#[inline(always)]
fn reduce_block(out: &mut [u64], acc: &[i64; BLOCK], q: u64) {
    let qi = q as i64;
    let inv = 1.0 / q as f64;
    for (o, &a) in out.iter_mut().zip(acc.iter()) {
        let quo = (a as f64 * inv) as i64;
        let mut r = a.wrapping_sub(quo.wrapping_mul(qi));
        r += if r < 0 { qi } else { 0 };
        r += if r < 0 { qi } else { 0 };
        r -= if r >= qi { qi } else { 0 };
        *o = r as u64;
    }
}

/// Adds w · x[j] to acc[j] over one block (x as non-negative i32 residues).
#[inline(always)]
fn madd_block(acc: &mut [i64; BLOCK], x: &[u64; BLOCK], w: i32) {
    let w = w as i64;
    for (a, &v) in acc.iter_mut().zip(x.iter()) {
        *a += (v as u32 as i32 as i64) * w;
    }
}

/// The kernel body (see the module's description); `w` is row-major, one row of
/// `xs.len()` weights per output. Lengths and bounds are checked by the dispatch.
#[inline(always)]
pub(crate) fn weighted_sums_body(outs: &mut [&mut [u64]], xs: &[&[u64]], w: &[i32], m: &Modulus) {
    let k = xs.len();
    let n = outs.first().map_or(0, |o| o.len());
    let q = m.value();
    for (g, outs) in outs.chunks_mut(GROUP).enumerate() {
        let rows = &w[g * GROUP * k..];
        for start in (0..n).step_by(BLOCK) {
            let mut acc = [[0i64; BLOCK]; GROUP];
            for (i, x) in xs.iter().enumerate() {
                let x: &[u64; BLOCK] = x[start..start + BLOCK].try_into().expect("whole blocks");
                for (o, acc) in acc.iter_mut().enumerate().take(outs.len()) {
                    let wk = rows[o * k + i];
                    if wk != 0 {
                        madd_block(acc, x, wk);
                    }
                }
            }
            for (out, acc) in outs.iter_mut().zip(acc.iter()) {
                reduce_block(&mut out[start..start + BLOCK], acc, q);
            }
        }
    }
}
