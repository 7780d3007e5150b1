//! The client's secret key: a 32-byte seed from the operating system, from which the
//! ternary secret s is expanded. Encryption of seeded queries, decryption of answers.

use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::LweError;
use crate::params::{expand_a, mask, Params};
use crate::wire::{Answer, Query, MAGIC, VERSION};

const KIND_SECRET: u8 = 3;
const KEY_BYTES: usize = 4 + 2 + 2 + 32;

/// A ternary LWE secret of dimension 2^log_n, wiped when dropped.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretKey {
    seed: [u8; 32],
    s: Vec<i64>,
    #[zeroize(skip)]
    log_n: u32,
}

impl SecretKey {
    /// A fresh key for dimension 2^log_n, seeded by the operating system.
    pub fn generate(params: Params) -> Self {
        Self::from_seed(ring::sampling::fresh_seed(), params.log_n())
    }

    fn from_seed(seed: [u8; 32], log_n: u32) -> Self {
        let s = ring::sampling::Sampler::from_seed(seed).ternary(1 << log_n);
        Self { seed, s, log_n }
    }

    /// The key id: SHA-256 of a domain tag, the dimension and the seed. It names the key in
    /// queries and answers (so a wrong key is noticed) and reveals nothing about s.
    pub fn key_id(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"heinfer lwe key id v1");
        h.update([self.log_n as u8]);
        h.update(self.seed);
        h.finalize().into()
    }

    /// The key's file bytes: "HELW", version, kind 3, log n, 0, then the 32-byte seed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(KEY_BYTES);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[KIND_SECRET, self.log_n as u8]);
        out.extend_from_slice(&self.seed);
        out
    }

    /// Reads a key written by [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LweError> {
        let what = "secret key";
        if bytes.len() < 4 || &bytes[..4] != MAGIC {
            return Err(LweError::BadMagic { what });
        }
        if bytes.len() != KEY_BYTES {
            return Err(LweError::Truncated { what, needed: KEY_BYTES, available: bytes.len() });
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != VERSION {
            return Err(LweError::Version { what, found: version, supported: VERSION });
        }
        if bytes[6] != KIND_SECRET {
            return Err(LweError::WrongKind { expected: what, found: "query or answer" });
        }
        let log_n = bytes[7] as u32;
        Params::new(log_n, 53)?;
        Ok(Self::from_seed(bytes[8..].try_into().expect("32 bytes"), log_n))
    }

    fn check(&self, what: &'static str, p: Params) -> Result<(), LweError> {
        if p.log_n() != self.log_n {
            return Err(LweError::ParamsMismatch {
                what,
                found_log_n: p.log_n(),
                found_log_q: p.log_q(),
                want_log_n: self.log_n,
                want_log_q: p.log_q(),
            });
        }
        Ok(())
    }

    /// The seeded RLWE public key of this secret under `params`, for the server to
    /// re-randomise answers with (`crate::public`); it carries this key's id and is the
    /// same every time (derived from the seed), so a server keeps the first it registers.
    pub fn public_key(&self, params: Params) -> Result<crate::PublicKey, LweError> {
        self.check("public key", params)?;
        Ok(crate::public::generate(params, self.key_id(), &self.seed, &self.s))
    }

    /// Encrypts integers m_i (|m_i| < q/2) as one seeded query: b_i = ⟨a_i, s⟩ + e_i + m_i.
    pub fn encrypt(&self, params: Params, m: &[i64]) -> Result<Query, LweError> {
        self.check("query", params)?;
        if m.is_empty() || m.len() > crate::wire::MAX_COUNT {
            return Err(LweError::Invalid { field: "values", detail: format!("{} values (1..=2^20)", m.len()) });
        }
        let half = 1i64 << (params.log_q() - 1);
        if let Some(v) = m.iter().find(|v| !(-half..half).contains(*v)) {
            return Err(LweError::Invalid {
                field: "value",
                detail: format!("{v} is outside ±2^{}", params.log_q() - 1),
            });
        }
        let seed = ring::sampling::fresh_seed();
        let mut e = ring::sampling::Sampler::new(crate::params::SIGMA).gaussian(m.len());
        let mut b = vec![0u64; m.len()];
        expand_a(params, seed, m.len(), |i, a| {
            b[i] = inner(a, &self.s).wrapping_add(e[i] as u64).wrapping_add(m[i] as u64) & params.mask();
        });
        e.zeroize();
        Ok(Query { params, key_id: self.key_id(), seed, b })
    }

    /// The k phases b' − ⟨a', s⟩ of an answer, centered in (−q'/2, q'/2]: each is the score
    /// times q'/q plus the error [`crate::noise`] bounds.
    pub fn decrypt(&self, answer: &Answer) -> Result<Vec<i64>, LweError> {
        self.check("answer", answer.params)?;
        let id = self.key_id();
        if answer.key_id != id {
            let hex = |b: &[u8]| b[..4].iter().map(|x| format!("{x:02x}")).collect::<String>();
            return Err(LweError::KeyMismatch { expected: hex(&id), found: hex(&answer.key_id) });
        }
        let (n, bits) = (answer.params.n(), answer.params.log_q());
        Ok(answer
            .cts
            .iter()
            .map(|ct| {
                let p = ct[n].wrapping_sub(inner(&ct[..n], &self.s)) & mask(bits);
                // centered: values at or above q'/2 are negative
                ((p << (64 - bits)) as i64) >> (64 - bits)
            })
            .collect())
    }
}

/// ⟨a, s⟩ modulo 2^64 for a ternary s (adds and subtracts only).
fn inner(a: &[u64], s: &[i64]) -> u64 {
    a.iter().zip(s).fold(0u64, |acc, (&x, &si)| acc.wrapping_add(x.wrapping_mul(si as u64)))
}
