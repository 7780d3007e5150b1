//! The client's RLWE public key and what the server does with it: re-randomise answers.
//!
//! Without it, an answer's a-part is Σ v_i·a_i over the query's public a_i, so one answer
//! gives the client d linear equations in the integer weights v_i over Z_q — the weights
//! themselves. With it, the server adds to every score an LWE encryption of zero whose a-part
//! is pseudorandom even to the holder of s, which hides Σ v_i·a_i.
//!
//! - Key: (b, a) with a ∈ Z_q[X]/(X^n + 1) expanded from a 32-byte seed and b = −a·s + e
//!   (s the LWE secret read as a polynomial, e centered binomial, |e| ≤ 21), both derived
//!   from the secret key's seed, so one secret key has one public key. On the wire: the
//!   seed and n words of b (n = 2048, q = 2^53: 13,646 bytes).
//! - Encryption of zero: u ternary, e0, e1 Gaussian, all fresh from the OS-seeded CSPRNG:
//!   c0 = b·u + e0, c1 = a·u + e1, so c0 + c1·s = e·u + e0 + e1·s. Coefficient extraction
//!   reads coefficient 0 as an LWE sample under s: a'_0 = −c1_0, a'_k = c1_(n−k), b' = c0_0.
//!   (a·u + e1, b·u + e0) is RLWE with secret u, so a' is pseudorandom to anyone without u —
//!   the client included. Each score gets its own u: extracting several coefficients of one
//!   encryption would give masks that are rotations of one another, which cancel.
//! - Its phase is bounded by the noise module's `ZERO_BOUND` (every draw is tail-cut at 6σ).

use ring::sampling::Sampler;
use zeroize::Zeroize;

use crate::error::LweError;
pub use crate::noise::PK_ERROR_BOUND;
use crate::params::{expand_a, Params, SIGMA};
use crate::wire::{check_len, header, pack, packed_len, read_header, unpack, HEADER, KIND_PUBLIC};
use ring::ternary::{constant_of_product, mul_ternary};

/// A seeded RLWE public key under the LWE secret: what a client registers once per key id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    /// Dimension and modulus (the model's query parameters).
    pub params: Params,
    /// The LWE key id of the secret it belongs to (queries carry the same id).
    pub key_id: [u8; 32],
    /// Seed of a.
    pub seed: [u8; 32],
    /// b = −a·s + e, n words modulo q.
    pub b: Vec<u64>,
}

impl PublicKey {
    /// The wire bytes: header (kind 4, count n), key id, seed, n words of log q bits.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + 64 + self.b.len() * 7);
        header(&mut out, KIND_PUBLIC, self.params, self.b.len());
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&self.seed);
        pack(&mut out, self.b.iter().copied(), self.params.log_q());
        out
    }

    /// Reads a public key; its count must be the dimension and its length exact, checked
    /// before anything is allocated.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LweError> {
        let (params, count) = read_header(bytes, KIND_PUBLIC)?;
        if count != params.n() {
            return Err(LweError::Invalid {
                field: "public key",
                detail: format!(
                    "{count} words of b for dimension n = {}: make the public key with the model's parameters",
                    params.n()
                ),
            });
        }
        let body = packed_len(count, params.log_q()).and_then(|b| b.checked_add(HEADER + 64));
        check_len("public key", bytes, body)?;
        let key_id = bytes[HEADER..HEADER + 32].try_into().expect("32 bytes");
        let seed = bytes[HEADER + 32..HEADER + 64].try_into().expect("32 bytes");
        let b = unpack(&bytes[HEADER + 64..], count, params.log_q())?;
        Ok(Self { params, key_id, seed, b })
    }

    /// The public key ready for use: a expanded once.
    pub fn expand(self) -> Rerandomizer {
        let mut a = Vec::new();
        expand_a(self.params, self.seed, 1, |_, v| a = v.to_vec());
        Rerandomizer { key: self, a }
    }
}

/// A registered public key with its a expanded: makes fresh LWE encryptions of zero.
#[derive(Clone, Debug)]
pub struct Rerandomizer {
    key: PublicKey,
    a: Vec<u64>,
}

impl Rerandomizer {
    /// The key it was made from.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    /// A fresh LWE encryption of zero under s (n words a', then b'), modulo q.
    pub fn zero(&self, rng: &mut Sampler) -> Vec<u64> {
        let n = self.key.params.n();
        let mut u = rng.ternary(n);
        let mut e1 = rng.gaussian(n);
        let mut e0 = rng.gaussian(1);
        let mut c1 = mul_ternary(&self.a, &u);
        for (c, &e) in c1.iter_mut().zip(&e1) {
            *c = c.wrapping_add(e as u64);
        }
        let c0 = constant_of_product(&self.key.b, &u).wrapping_add(e0[0] as u64);
        let m = self.key.params.mask();
        let mut out = Vec::with_capacity(n + 1);
        out.push(c1[0].wrapping_neg() & m);
        out.extend((1..n).map(|k| c1[n - k] & m));
        out.push(c0 & m);
        u.zeroize();
        e1.zeroize();
        e0.zeroize();
        c1.zeroize();
        out
    }
}

/// The sampler a server uses for encryptions of zero: OS-seeded, σ = [`SIGMA`].
pub fn zero_sampler() -> Sampler {
    Sampler::new(SIGMA)
}

/// Makes b = −a·s + e (client side), deterministically from the secret key's seed: the seed
/// of a and the error are hashes of it under their own domain tags, so one secret key has
/// one public key, and a server can refuse another one registered under its key id. The
/// error is a centered binomial (the Gaussian sampler is OS-seeded only): popcounts of 21
/// random bits minus 21 more, constant time.
#[cfg(feature = "secret-key")]
pub(crate) fn generate(params: Params, key_id: [u8; 32], secret_seed: &[u8; 32], s: &[i64]) -> PublicKey {
    use sha2::{Digest, Sha256};
    let derive = |tag: &[u8]| -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(tag);
        h.update([params.log_n() as u8, params.log_q() as u8]);
        h.update(secret_seed);
        h.finalize().into()
    };
    let seed = derive(b"heinfer lwe public key a v1");
    let mut e_seed = derive(b"heinfer lwe public key e v1");
    let mut a = Vec::new();
    expand_a(params, seed, 1, |_, v| a = v.to_vec());
    let mut rng = Sampler::from_seed(e_seed);
    let mut bytes = vec![0u8; params.n() * 6];
    rng.fill_bytes(&mut bytes);
    let mut e: Vec<i64> = bytes
        .chunks_exact(6)
        .map(|c| {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], 0, 0]);
            (w & 0x1f_ffff).count_ones() as i64 - ((w >> 21) & 0x1f_ffff).count_ones() as i64
        })
        .collect();
    let as_ = mul_ternary(&a, s);
    let b = as_.iter().zip(&e).map(|(&x, &e)| (e as u64).wrapping_sub(x) & params.mask()).collect();
    e.zeroize();
    bytes.zeroize();
    e_seed.zeroize();
    PublicKey { params, key_id, seed, b }
}
