//! The integer-weighted sums of `crate::int_sums` compiled for AVX-512 (eight `vpmuldq`
//! lanes, `vcvtqq2pd` for the reduction's estimate) and for AVX2: the same generic body,
//! so every tier agrees with the portable code bit for bit.

use crate::arith::Modulus;
use crate::int_sums::weighted_sums_body;
use crate::isa::{Avx2, Avx512};

/// # Safety
/// The CPU must support AVX-512 F and DQ.
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn weighted_sums_avx512_unchecked(outs: &mut [&mut [u64]], xs: &[&[u64]], w: &[i32], m: &Modulus) {
    weighted_sums_body(outs, xs, w, m);
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
unsafe fn weighted_sums_avx2_unchecked(outs: &mut [&mut [u64]], xs: &[&[u64]], w: &[i32], m: &Modulus) {
    weighted_sums_body(outs, xs, w, m);
}

/// AVX-512 twin of the portable body; the token proves the features.
pub(crate) fn weighted_sums_avx512(_t: Avx512, outs: &mut [&mut [u64]], xs: &[&[u64]], w: &[i32], m: &Modulus) {
    // SAFETY: the token exists only where AVX-512 F and DQ were detected; the body
    // indexes through checked slices.
    unsafe { weighted_sums_avx512_unchecked(outs, xs, w, m) }
}

/// AVX2 twin of the portable body; the token proves the feature.
pub(crate) fn weighted_sums_avx2(_t: Avx2, outs: &mut [&mut [u64]], xs: &[&[u64]], w: &[i32], m: &Modulus) {
    // SAFETY: the token exists only where AVX2 was detected; the body indexes through
    // checked slices.
    unsafe { weighted_sums_avx2_unchecked(outs, xs, w, m) }
}
