//! Queries and answers on the wire: a 14-byte header, the 32-byte key id, (a query's
//! 32-byte seed,) then the words bit-packed at log q bits each, little-endian.
//!
//! ```text
//! magic "HELW" | version u16 | kind u8 (1 query, 2 answer) | log n u8 | log q u8 | 0 u8
//! | count u32 (query: values d; answer: ciphertexts k) | key id 32 B | (query) seed 32 B
//! | query: d words b_i | answer: k × (n words a, 1 word b)
//! ```
//!
//! Readers check the parameters (128-bit or refused), compute the exact length with checked
//! arithmetic and compare it before allocating anything.

use crate::error::LweError;
use crate::params::{mask, Params};

/// First bytes of every LWE object.
pub const MAGIC: &[u8; 4] = b"HELW";
/// Wire format version.
pub const VERSION: u16 = 1;
/// Most values or ciphertexts one object may hold (bounds what a reader allocates).
pub const MAX_COUNT: usize = 1 << 20;
const KIND_QUERY: u8 = 1;
const KIND_ANSWER: u8 = 2;
/// Kind byte of a public key (the public-key module); 3 is the secret-key file.
pub(crate) const KIND_PUBLIC: u8 = 4;
pub(crate) const HEADER: usize = 14;

/// A seeded encrypted input: d values under one key, their a_i expanded from `seed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Dimension and modulus.
    pub params: Params,
    /// Id of the secret key (SHA-256 of a domain tag and its seed): echoed by the answer.
    pub key_id: [u8; 32],
    /// Seed of the public halves a_i.
    pub seed: [u8; 32],
    /// b_i = ⟨a_i, s⟩ + e_i + m_i mod q.
    pub b: Vec<u64>,
}

/// k encrypted scores, each n words a' and one word b' modulo q' = 2^log_q.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Dimension and the answer modulus.
    pub params: Params,
    /// The key id of the query it answers.
    pub key_id: [u8; 32],
    /// Per score: a' (n words) then b'.
    pub cts: Vec<Vec<u64>>,
}

fn kind_name(k: u8) -> &'static str {
    match k {
        KIND_QUERY => "query",
        KIND_ANSWER => "answer",
        KIND_PUBLIC => "public key",
        _ => "unknown object",
    }
}

pub(crate) fn header(out: &mut Vec<u8>, kind: u8, p: Params, count: usize) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&[kind, p.log_n() as u8, p.log_q() as u8, 0]);
    out.extend_from_slice(&(count as u32).to_le_bytes());
}

/// Reads and checks a header; returns the parameters and the count.
pub(crate) fn read_header(bytes: &[u8], kind: u8) -> Result<(Params, usize), LweError> {
    let what = kind_name(kind);
    if bytes.len() < 4 || &bytes[..4] != MAGIC {
        return Err(LweError::BadMagic { what });
    }
    if bytes.len() < HEADER + 32 {
        return Err(LweError::Truncated { what, needed: HEADER + 32, available: bytes.len() });
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != VERSION {
        return Err(LweError::Version { what, found: version, supported: VERSION });
    }
    if bytes[6] != kind {
        return Err(LweError::WrongKind { expected: what, found: kind_name(bytes[6]) });
    }
    if bytes[9] != 0 {
        return Err(LweError::Invalid { field: "header", detail: "reserved byte is not zero".into() });
    }
    let params = Params::new(bytes[7] as u32, bytes[8] as u32)?;
    let count = u32::from_le_bytes(bytes[10..14].try_into().expect("4 bytes")) as usize;
    if count == 0 || count > MAX_COUNT {
        return Err(LweError::Invalid { field: "count", detail: format!("{count} is outside 1..={MAX_COUNT}") });
    }
    Ok((params, count))
}

/// Bytes that `words` words of `bits` bits take.
pub(crate) fn packed_len(words: usize, bits: u32) -> Option<usize> {
    words.checked_mul(bits as usize).map(|b| b.div_ceil(8))
}

pub(crate) fn pack(out: &mut Vec<u8>, words: impl Iterator<Item = u64>, bits: u32) {
    let (mut acc, mut have) = (0u128, 0u32);
    for w in words {
        acc |= ((w & mask(bits)) as u128) << have;
        have += bits;
        while have >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            have -= 8;
        }
    }
    if have > 0 {
        out.push(acc as u8);
    }
}

pub(crate) fn unpack(bytes: &[u8], count: usize, bits: u32) -> Result<Vec<u64>, LweError> {
    let mut out = Vec::with_capacity(count);
    let (mut acc, mut have, mut it) = (0u128, 0u32, bytes.iter());
    for _ in 0..count {
        while have < bits {
            acc |= (*it.next().expect("length checked") as u128) << have;
            have += 8;
        }
        out.push(acc as u64 & mask(bits));
        acc >>= bits;
        have -= bits;
    }
    if acc != 0 {
        return Err(LweError::Invalid { field: "padding", detail: "the last byte's unused bits are not zero".into() });
    }
    Ok(out)
}

pub(crate) fn check_len(what: &'static str, bytes: &[u8], needed: Option<usize>) -> Result<(), LweError> {
    let needed = needed.ok_or(LweError::Invalid { field: "count", detail: "size overflows".into() })?;
    match bytes.len() {
        l if l < needed => Err(LweError::Truncated { what, needed, available: l }),
        l if l > needed => Err(LweError::TrailingBytes { what, count: l - needed }),
        _ => Ok(()),
    }
}

impl Query {
    /// The wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + 64 + self.b.len() * 8);
        header(&mut out, KIND_QUERY, self.params, self.b.len());
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&self.seed);
        pack(&mut out, self.b.iter().copied(), self.params.log_q());
        out
    }

    /// Reads a query, its length checked before anything is allocated.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LweError> {
        let (params, d) = read_header(bytes, KIND_QUERY)?;
        let body = packed_len(d, params.log_q()).and_then(|b| b.checked_add(HEADER + 64));
        check_len("query", bytes, body)?;
        let key_id = bytes[HEADER..HEADER + 32].try_into().expect("32 bytes");
        let seed = bytes[HEADER + 32..HEADER + 64].try_into().expect("32 bytes");
        let b = unpack(&bytes[HEADER + 64..], d, params.log_q())?;
        Ok(Self { params, key_id, seed, b })
    }
}

impl Answer {
    /// The wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        header(&mut out, KIND_ANSWER, self.params, self.cts.len());
        out.extend_from_slice(&self.key_id);
        pack(&mut out, self.cts.iter().flatten().copied(), self.params.log_q());
        out
    }

    /// Reads an answer, its length checked before anything is allocated.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LweError> {
        let (params, k) = read_header(bytes, KIND_ANSWER)?;
        let words = k.checked_mul(params.n() + 1);
        let body = words.and_then(|w| packed_len(w, params.log_q())).and_then(|b| b.checked_add(HEADER + 32));
        check_len("answer", bytes, body)?;
        let key_id = bytes[HEADER..HEADER + 32].try_into().expect("32 bytes");
        let all = unpack(&bytes[HEADER + 32..], k * (params.n() + 1), params.log_q())?;
        Ok(Self { params, key_id, cts: all.chunks_exact(params.n() + 1).map(<[u64]>::to_vec).collect() })
    }
}
