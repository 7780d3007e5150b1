//! AVX2: the NTT (`ntt`, which also holds the four-lane Shoup product the others share)
//! and the slice kernels (`kernels`).

pub(crate) mod kernels;
pub(crate) mod transform;
