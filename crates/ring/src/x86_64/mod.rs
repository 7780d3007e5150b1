//! The x86-64 kernels, one folder per instruction set, side by side: `avx2` (integer,
//! four lanes), `fma` (double precision on AVX2 + FMA, primes below 2^50) and `avx512`
//! (eight lanes; IFMA below 2^50). Each is reached only through a token of
//! [`crate::isa`] or a table built where the detection there allowed it; nothing here
//! reads CPU features itself.

pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod fma;
pub(crate) mod int_sums;
