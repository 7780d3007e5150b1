//! Automorphisms X → X^g of Z_q[X]/(X^N + 1) in NTT form, where each is a permutation of
//! the evaluation points: their positions are read off once, and each Galois element's
//! permutation is built on first use and kept.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::kernels;
use crate::ntt::NttTable;

/// A Galois automorphism as a permutation of NTT positions (out[k] = in[perm[k]]; derefs
/// to `perm`), with its block form when it has one: in the bit-reversed order, positions
/// that differ only in their two lowest bits hold exponents that differ by multiples of
/// N/2, and multiplying by g keeps that, so aligned blocks of four go to aligned blocks of
/// four, each in one of a few orders. Gathering by blocks (one load, one shuffle, one
/// store per four words) is what makes a rotation's permutation cheap.
#[derive(Debug)]
pub struct GaloisPerm {
    perm: Vec<u32>,
    /// Per output block b: (source block << 8) | the four source offsets, two bits each.
    blocks: Option<Vec<u32>>,
}

impl GaloisPerm {
    /// From the word permutation (out[k] = in[perm[k]]); finds the block form if any.
    pub fn new(perm: Vec<u32>) -> Self {
        let blocks = (perm.len().is_multiple_of(4) && perm.len() < 1 << 26)
            .then(|| {
                perm.chunks(4)
                    .map(|c| {
                        let block = c[0] / 4;
                        c.iter().all(|&p| p / 4 == block).then(|| {
                            (block << 8) | c.iter().enumerate().fold(0, |acc, (t, &p)| acc | (p % 4) << (2 * t))
                        })
                    })
                    .collect::<Option<Vec<u32>>>()
            })
            .flatten();
        Self { perm, blocks }
    }

    /// The block form (see the type), if the permutation has one.
    pub fn blocks(&self) -> Option<&[u32]> {
        self.blocks.as_deref()
    }

    /// dst[k] = src[perm[k]], by blocks where the permutation has the form.
    pub fn apply_into(&self, dst: &mut [u64], src: &[u64]) {
        kernels::permute_into(dst, src, &self.perm, self.blocks())
    }
}

impl std::ops::Deref for GaloisPerm {
    type Target = [u32];
    fn deref(&self) -> &[u32] {
        &self.perm
    }
}

/// The automorphisms of one ring degree: where each evaluation point sits in the NTT
/// output, and the permutations built so far.
pub struct Automorphisms {
    n: usize,
    /// NTT output position k holds a(ψ^{exponent[k]})
    ntt_exponent: Vec<u32>,
    /// position of odd exponent e (indexed by e/2)
    ntt_position: Vec<u32>,
    cache: RwLock<HashMap<u64, Arc<GaloisPerm>>>,
}

impl Automorphisms {
    /// Locates each evaluation point of `table`'s transform: transform the polynomial X
    /// and read off the exponents. The positions depend only on N and the bit-reversed
    /// order, so one table serves every prime of a chain.
    pub fn new(table: &NttTable) -> Self {
        let n = table.n;
        let m0 = table.modulus();
        let mut x = vec![0u64; n];
        if n > 1 {
            x[1] = 1;
        }
        table.forward_scalar(&mut x);
        let mut exp_of = HashMap::with_capacity(n);
        let mut pw = table.psi();
        let psi2 = m0.mul(pw, pw);
        for e in (1..2 * n as u32).step_by(2) {
            exp_of.insert(pw, e);
            pw = m0.mul(pw, psi2);
        }
        let ntt_exponent: Vec<u32> = x.iter().map(|v| exp_of[v]).collect();
        let mut ntt_position = vec![0u32; n];
        for (k, &e) in ntt_exponent.iter().enumerate() {
            ntt_position[(e / 2) as usize] = k as u32;
        }
        Self { n, ntt_exponent, ntt_position, cache: RwLock::new(HashMap::new()) }
    }

    /// g⁻¹ in Z_2N^* (a group of order N, so g⁻¹ = g^(N-1)).
    pub fn galois_inverse(&self, g: u64) -> u64 {
        let two_n = 2 * self.n as u64;
        let (mut r, mut b, mut e) = (1u64, g % two_n, self.n as u64 - 1);
        while e > 0 {
            if e & 1 == 1 {
                r = r * b % two_n;
            }
            b = b * b % two_n;
            e >>= 1;
        }
        r
    }

    /// The automorphism X → X^g as a permutation of NTT positions: out[k] = in[perm[k]].
    /// `g` must be odd (an element of Z_2N^*); callers check elements from the wire.
    pub fn perm(&self, g: u64) -> Arc<GaloisPerm> {
        if let Some(p) = self.cache.read().unwrap_or_else(|e| e.into_inner()).get(&g) {
            return p.clone();
        }
        let perm = Arc::new(self.build(g));
        self.cache.write().unwrap_or_else(|e| e.into_inner()).insert(g, perm.clone());
        perm
    }

    /// The permutation of `g`: the kept one if there is one, else built and not kept.
    /// For elements that come from outside (a key bundle's), which must not grow the cache:
    /// at N = 2^16 each permutation is 320 KB, and a bundle can name thousands.
    pub fn perm_transient(&self, g: u64) -> Arc<GaloisPerm> {
        if let Some(p) = self.cache.read().unwrap_or_else(|e| e.into_inner()).get(&g) {
            return p.clone();
        }
        Arc::new(self.build(g))
    }

    /// How many permutations are kept.
    pub fn cached(&self) -> usize {
        self.cache.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The permutation of `g` without keeping it (for elements no model asked for).
    pub fn build(&self, g: u64) -> GaloisPerm {
        let two_n = 2 * self.n as u64;
        GaloisPerm::new(
            self.ntt_exponent.iter().map(|&e| self.ntt_position[((g * e as u64 % two_n) / 2) as usize]).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arith::Modulus;
    use crate::primes::ntt_primes;

    fn galois_element(n: usize, step: usize) -> u64 {
        let two_n = 2 * n as u64;
        (0..step).fold(1u64, |g, _| g * 5 % two_n)
    }

    /// Every rotation's and the conjugation's permutation has the block form, and the
    /// block gather gives the word-by-word one's result.
    #[test]
    fn galois_permutations_go_by_blocks_of_four() {
        for log_n in [12u32, 13] {
            let n = 1usize << log_n;
            let q = ntt_primes(30, n, 1, &[]).unwrap()[0];
            let auto = Automorphisms::new(&NttTable::new(Modulus::new(q), n).unwrap());
            let src: Vec<u64> = (0..n as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
            let steps = [1usize, n / 2 - 1, 2, 5, 64, n / 4 - 1];
            let gs = steps.iter().map(|&s| galois_element(n, s)).chain([2 * n as u64 - 1]);
            for g in gs {
                let perm = auto.perm(g);
                assert!(perm.blocks().is_some(), "g = {g}, N = {n}: no block form");
                let mut by_blocks = vec![0u64; n];
                perm.apply_into(&mut by_blocks, &src);
                let by_words: Vec<u64> = perm.iter().map(|&p| src[p as usize]).collect();
                assert_eq!(by_blocks, by_words, "g = {g}, N = {n}");
                let inv = auto.perm(auto.galois_inverse(g));
                let back: Vec<u64> = inv.iter().map(|&p| by_words[p as usize]).collect();
                assert_eq!(back, src, "σ⁻¹ undoes σ (g = {g})");
            }
        }
        // A permutation without the form falls back to words.
        let odd = GaloisPerm::new(vec![1, 4, 2, 3, 0, 5, 6, 7]);
        assert!(odd.blocks().is_none());
        let mut out = vec![0u64; 8];
        odd.apply_into(&mut out, &[10, 11, 12, 13, 14, 15, 16, 17]);
        assert_eq!(out, [11, 14, 12, 13, 10, 15, 16, 17]);
    }
}
