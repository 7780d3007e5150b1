//! `kernels::weighted_sums` against exact i128 arithmetic, on whichever instruction
//! set this CPU dispatches to (and the portable body with HEINFER_NO_SIMD=1).

use proptest::prelude::*;
use ring::{kernels, Modulus};

fn naive(xs: &[Vec<u64>], w: &[i32], outs: usize, q: u64) -> Vec<Vec<u64>> {
    let n = xs[0].len();
    (0..outs)
        .map(|o| {
            (0..n)
                .map(|j| {
                    let s: i128 = xs.iter().enumerate().map(|(k, x)| w[o * xs.len() + k] as i128 * x[j] as i128).sum();
                    s.rem_euclid(q as i128) as u64
                })
                .collect()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn matches_exact_sums(seed in any::<u64>(), outs in 1usize..20, k in 1usize..40, wbits in 1u32..24) {
        // Primes just below 2^31 and small ones; weights as large as the bound allows; up
        // to two whole groups of outputs (ring::int_sums::GROUP) and a partial one.
        let q = if seed % 2 == 0 { 2147352577u64 } else { 786433 };
        let m = Modulus::new(q);
        let mut s = seed | 1;
        let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
        let n = 128;
        let xs: Vec<Vec<u64>> = (0..k).map(|_| (0..n).map(|_| next() % q).collect()).collect();
        let cap = ((1u128 << 62) / (q as u128 * k as u128)).min(1 << wbits) as i64;
        let w: Vec<i32> = (0..outs * k).map(|_| ((next() as i64).rem_euclid(2 * cap) - cap) as i32).collect();
        let mut got = vec![vec![0u64; n]; outs];
        {
            let mut o: Vec<&mut [u64]> = got.iter_mut().map(|v| v.as_mut_slice()).collect();
            let x: Vec<&[u64]> = xs.iter().map(|v| v.as_slice()).collect();
            kernels::weighted_sums(&mut o, &x, &w, &m);
        }
        prop_assert_eq!(got, naive(&xs, &w, outs, q));
    }
}

#[test]
fn extreme_accumulators_reduce_exactly() {
    // Every residue q − 1 with the largest weights of one sign: the accumulator at its bound.
    let q = 2147352577u64;
    let m = Modulus::new(q);
    let k = 4;
    let cap = ((1u128 << 62) / (q as u128 * k as u128) - 1) as i32;
    let xs: Vec<Vec<u64>> = (0..k).map(|_| vec![q - 1; 64]).collect();
    for sign in [1, -1] {
        let w = vec![sign * cap; k];
        let mut got = vec![0u64; 64];
        kernels::weighted_sums(&mut [got.as_mut_slice()], &xs.iter().map(|v| v.as_slice()).collect::<Vec<_>>(), &w, &m);
        assert_eq!(got, naive(&xs, &w, 1, q)[0]);
    }
}
