//! Big-integer helpers on GMP (through `rug`): byte conversion, sampling from a CSPRNG,
//! wiping, fixed-base exponentiation tables and simultaneous multi-exponentiation.

use rand_core::{CryptoRng, RngCore};
use rug::integer::Order;
use rug::Integer;
use zeroize::Zeroize;

/// Reads a little-endian unsigned integer.
pub(crate) fn from_le(bytes: &[u8]) -> Integer {
    Integer::from_digits(bytes, Order::Lsf)
}

/// Appends `x` (non-negative, at most `len` bytes) as exactly `len` little-endian bytes.
pub(crate) fn push_le(out: &mut Vec<u8>, x: &Integer, len: usize) {
    debug_assert!(x.significant_digits::<u8>() <= len && *x >= 0);
    let start = out.len();
    out.resize(start + len, 0);
    x.write_digits(&mut out[start..], Order::Lsf);
}

/// A uniform integer in `[0, bound)`, up to a statistical distance of 2^-128: 128 more random
/// bits than the bound has, reduced. The random bytes come from `rng`, never from GMP's
/// own (non-cryptographic) generators.
pub(crate) fn random_below(rng: &mut (impl RngCore + CryptoRng), bound: &Integer) -> Integer {
    let bytes = (bound.significant_bits() as usize + 128).div_ceil(8);
    let mut buf = vec![0u8; bytes];
    rng.fill_bytes(&mut buf);
    let mut x = from_le(&buf);
    buf.zeroize();
    x %= bound;
    x
}

/// `bits` random bits.
pub(crate) fn random_bits(rng: &mut (impl RngCore + CryptoRng), bits: u32) -> Integer {
    let mut buf = vec![0u8; (bits as usize).div_ceil(8)];
    rng.fill_bytes(&mut buf);
    let mut x = from_le(&buf);
    buf.zeroize();
    x.keep_bits_mut(bits);
    x
}

/// Overwrites the limbs GMP allocated for `x` with zeros, in place (`mpz_import` writes into
/// the existing allocation when it is large enough), then leaves `x` = 0. Temporaries GMP made
/// inside earlier operations are beyond reach; this clears what the key holds.
pub(crate) fn wipe(x: &mut Integer) {
    let limbs = x.capacity() / 64;
    if limbs > 0 {
        x.assign_digits(&vec![0u64; limbs], Order::Lsf);
    }
}

/// `base^e mod m` for a fixed base and exponents below `2^exp_bits`, by a table of
/// `base^(d·2^(w·i))` for every window `i` and digit `d` in `1..2^w`: one modular
/// multiplication per non-zero window and no squarings.
pub(crate) struct FixedBase {
    modulus: Integer,
    window: u32,
    windows: usize,
    table: Vec<Integer>,
    secret: bool,
}

impl FixedBase {
    pub(crate) fn new(base: &Integer, modulus: &Integer, exp_bits: u32, window: u32, secret: bool) -> Self {
        let per = (1usize << window) - 1;
        let windows = (exp_bits as usize).div_ceil(window as usize);
        let mut table = Vec::with_capacity(windows * per);
        let mut b = Integer::from(base % modulus);
        for _ in 0..windows {
            let mut acc = b.clone();
            table.push(acc.clone());
            for _ in 2..=per {
                acc *= &b;
                acc %= modulus;
                table.push(acc.clone());
            }
            // b^(2^w) = b^(2^w - 1) · b
            acc *= &b;
            acc %= modulus;
            if secret {
                wipe(&mut b);
            }
            b = acc;
        }
        if secret {
            wipe(&mut b);
        }
        Self { modulus: modulus.clone(), window, windows, table, secret }
    }

    /// The largest exponent size the table covers.
    pub(crate) fn exp_bits(&self) -> u32 {
        (self.windows as u32) * self.window
    }

    pub(crate) fn pow(&self, e: &Integer) -> Integer {
        assert!(*e >= 0 && e.significant_bits() <= self.exp_bits(), "exponent outside the table");
        let mut limbs = e.to_digits::<u64>(Order::Lsf);
        let per = (1usize << self.window) - 1;
        let mut acc = Integer::from(1);
        for i in 0..self.windows {
            let d = digit(&limbs, i * self.window as usize, self.window);
            if d != 0 {
                acc *= &self.table[i * per + d - 1];
                acc %= &self.modulus;
            }
        }
        limbs.zeroize();
        acc
    }
}

impl Drop for FixedBase {
    fn drop(&mut self) {
        if self.secret {
            self.table.iter_mut().for_each(wipe);
            wipe(&mut self.modulus);
        }
    }
}

/// The `w`-bit digit of a little-endian limb array starting at bit `pos`.
fn digit(limbs: &[u64], pos: usize, w: u32) -> usize {
    let (i, s) = (pos / 64, pos % 64);
    let lo = limbs.get(i).copied().unwrap_or(0) >> s;
    let hi = if s + w as usize > 64 && s > 0 { limbs.get(i + 1).copied().unwrap_or(0) << (64 - s) } else { 0 };
    ((lo | hi) & ((1u64 << w) - 1)) as usize
}

/// `Π bases[j]^exps[j] mod m` by Bos–Coster: while two or more exponents are non-zero, take
/// the largest e1 (base x1) and the next e2 (base x2), write e1 = q·e2 + r and use
/// x1^e1·x2^e2 = x1^r·(x2·x1^q)^e2 — usually q = 1, one multiplication that shrinks e1. For
/// d ≈ 30 exponents of ≈ 50 bits this needs about half the multiplications of interleaved
/// sliding windows (whose per-base tables alone cost 8d), and no squarings until one term
/// is left.
pub(crate) fn multi_pow(mut bases: Vec<Integer>, exps: &[u64], modulus: &Integer) -> Integer {
    use std::collections::BinaryHeap;
    let mut heap: BinaryHeap<(u64, usize)> =
        exps.iter().copied().enumerate().filter(|&(_, e)| e != 0).map(|(j, e)| (e, j)).collect();
    loop {
        let Some((e1, i1)) = heap.pop() else {
            return Integer::from(1);
        };
        let Some(&(e2, i2)) = heap.peek() else {
            return Integer::from(bases[i1].pow_mod_ref(&Integer::from(e1), modulus).expect("non-negative exponent"));
        };
        let (q, r) = (e1 / e2, e1 % e2);
        let f = if q == 1 {
            bases[i1].clone()
        } else {
            Integer::from(bases[i1].pow_mod_ref(&Integer::from(q), modulus).expect("non-negative exponent"))
        };
        bases[i2] *= f;
        bases[i2] %= modulus;
        if r != 0 {
            heap.push((r, i1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn fixed_base_and_multi_pow_match_pow_mod() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let m = random_bits(&mut rng, 700) | Integer::from(1);
        let b = random_below(&mut rng, &m);
        let fb = FixedBase::new(&b, &m, 300, 5, false);
        for _ in 0..10 {
            let e = random_bits(&mut rng, 300);
            assert_eq!(fb.pow(&e), Integer::from(b.pow_mod_ref(&e, &m).unwrap()));
        }
        let bases: Vec<Integer> = (0..7).map(|_| random_below(&mut rng, &m)).collect();
        for round in 0..40u64 {
            let mut exps: Vec<u64> =
                (0..7u64).map(|j| if j == round % 7 { 0 } else { rng.next_u64() >> (round % 64) }).collect();
            if round % 5 == 0 {
                exps[1] = exps[2]; // equal exponents
            }
            if round == 39 {
                exps = vec![0; 7];
            }
            let mut want = Integer::from(1);
            for (x, &e) in bases.iter().zip(&exps) {
                want *= Integer::from(x.pow_mod_ref(&Integer::from(e), &m).unwrap());
                want %= &m;
            }
            assert_eq!(multi_pow(bases.clone(), &exps, &m), want);
        }
    }

    #[test]
    fn wipe_zeroes_the_value() {
        let mut x = Integer::from(12345678u64) << 3000;
        wipe(&mut x);
        assert_eq!(x, 0);
    }
}
