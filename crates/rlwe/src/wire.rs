//! The versioned little-endian wire format.
//!
//! Every object: magic `HEIN`, format version (u16), kind (u8), flags (u8, zero),
//! the SHA-256 fingerprint of its parameters, then its body. Polynomials are stored
//! in NTT form, limb by limb, each value in exactly as many bits as its prime has.
//! Seeded objects store 32 bytes in place of their uniform half. Readers compute the
//! exact size from the parameters and the header before allocating anything, check
//! every value against its modulus, and return `WireError`, never panic.

use crate::answer::{AnswerShape, CompactAnswer};
use crate::encryption::{Ciphertext, SeededCiphertext};
use crate::error::WireError;
#[cfg(feature = "secret-key")]
use crate::keys::SecretKey;
use crate::keys::{
    expand_keyswitch_a, key_primes, AnswerKey, EvaluationKeys, GaloisKeys, KeySwitchKey, PublicKey, RelinKey,
};
use crate::multiparty::{DecryptionShare, PublicKeyShare};
#[cfg(feature = "secret-key")]
use crate::multiparty::{ShamirShare, ThresholdKey};
use crate::packing::LweQuery;
use crate::params::{hex, Parameters};
use ring::Poly;
use ring::Sampler;

/// The first four bytes of every object.
pub const MAGIC: [u8; 4] = *b"HEIN";
/// The format version this build writes, and the only one it reads.
pub const VERSION: u16 = 1;
/// Bytes of the header: magic, version, kind, flags, fingerprint.
pub const HEADER_LEN: usize = 4 + 2 + 1 + 1 + 32;
/// level (u16), scale (f64), polynomial count (u8)
pub const CIPHERTEXT_META_LEN: usize = 2 + 8 + 1;
/// level (u16), scale (f64), value count (u32)
pub const LWE_QUERY_META_LEN: usize = 2 + 8 + 4;
/// Galois element (u64), digit count (u16), seed
pub(crate) const KEY_META_LEN: usize = 8 + 2 + 32;

/// Sizes on the wire, from the parameters alone (servers size requests before reading them).
impl Parameters {
    /// Bytes of a serialized ciphertext at `level` (two polynomials, or one and a seed).
    pub fn ciphertext_bytes(&self, level: usize, seeded: bool) -> usize {
        let poly = self.poly_bytes(0..=level);
        HEADER_LEN + CIPHERTEXT_META_LEN + if seeded { poly + 32 } else { 2 * poly }
    }
    /// Bytes of a serialized LWE query of `count` values at `level` (`packing`).
    pub fn lwe_query_bytes(&self, level: usize, count: usize) -> usize {
        HEADER_LEN + LWE_QUERY_META_LEN + 32 + words_bytes(self, 0..=level, count)
    }
    /// Bytes of one serialized decryption share of a ciphertext at `level`, for a set of
    /// `participants` (member, count, ids, digest, level, h).
    pub fn decryption_share_bytes(&self, level: usize, participants: usize) -> usize {
        HEADER_LEN + 4 + 2 + 4 * participants + 32 + 2 + self.poly_bytes(0..=level)
    }
    /// Bytes of one serialized key-switching key (relinearization or one Galois key), seeded.
    pub fn keyswitch_key_bytes(&self) -> usize {
        self.keyswitch_key_bytes_at(self.max_level())
    }
    /// Bytes of an answer key in a bundle (its degree byte, then a one-digit key for level
    /// 0, always in the set itself).
    pub fn answer_key_bytes(&self) -> usize {
        1 + basis_tag_len(self) + key_record_bytes(self, 0)
    }
    /// Bytes of one serialized key-switching key that serves levels up to `level` only.
    /// In a set with key bases, a key for a level that has one is made in it
    /// (`Parameters::key_basis_at`), and every key record names its basis in one byte.
    pub fn keyswitch_key_bytes_at(&self, level: usize) -> usize {
        basis_tag_len(self) + key_record_bytes(self.key_basis_at(level).unwrap_or(self), level)
    }
}

/// Bytes of a key record's body in `kp` (the set or a key basis) serving up to `level`.
fn key_record_bytes(kp: &Parameters, level: usize) -> usize {
    let digits = crate::keys::digits_for_level(kp, level);
    KEY_META_LEN + digits * kp.poly_bytes(key_primes(kp, digits).into_iter())
}

/// The byte naming a key record's basis: only in sets that have key bases (the others'
/// records are byte for byte what they were).
fn basis_tag_len(params: &Parameters) -> usize {
    usize::from(!params.key_bases().is_empty())
}

/// Bytes of `n` values per prime over `primes`, each in its prime's bits, limb by limb.
fn words_bytes(params: &Parameters, primes: impl Iterator<Item = usize>, n: usize) -> usize {
    primes.map(|i| (n * params.ctx().moduli[i].bits() as usize).div_ceil(8)).sum()
}

/// What a serialized object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A ciphertext: both halves.
    Ciphertext = 1,
    /// A fresh symmetric ciphertext: c0 and the seed of c1.
    SeededCiphertext = 2,
    /// A public key: b and the seed of a.
    PublicKey = 3,
    /// A relinearization key.
    RelinKey = 4,
    /// A set of Galois keys.
    GaloisKeys = 5,
    /// An evaluation-key bundle: the relinearization key, if any, and Galois keys.
    EvaluationKeys = 6,
    /// A secret key (its owner's own file only).
    SecretKey = 7,
    /// A committee member's decryption share of one ciphertext (`multiparty`).
    DecryptionShare = 8,
    /// A party's part of a collective public key (`multiparty`).
    PublicKeyShare = 9,
    /// A Shamir share of a party's secret, for one member (secret: a private channel only).
    ShamirShare = 10,
    /// A committee member's threshold key and the ciphertexts it has shared (its own file only).
    ThresholdKey = 11,
    /// Seeded LWE ciphertexts: one word per value per prime, and the seed (`packing`).
    LweQuery = 12,
    /// A ring query: the same layout, the values' halves shifts of one seeded a (`packing`).
    RingQuery = 13,
    /// A compact answer: c0 and c1 of degree N' modulo 2^log_q (`answer`).
    CompactAnswer = 14,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ciphertext => "ciphertext",
            Kind::SeededCiphertext => "seeded ciphertext",
            Kind::PublicKey => "public key",
            Kind::RelinKey => "relinearization key",
            Kind::GaloisKeys => "Galois key set",
            Kind::EvaluationKeys => "evaluation key bundle",
            Kind::SecretKey => "secret key",
            Kind::DecryptionShare => "decryption share",
            Kind::PublicKeyShare => "public-key share",
            Kind::ShamirShare => "Shamir share",
            Kind::ThresholdKey => "threshold key",
            Kind::LweQuery => "LWE query",
            Kind::RingQuery => "ring query",
            Kind::CompactAnswer => "compact answer",
        }
    }
}

/// The header of a serialized object, readable without its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The kind byte: a [`Kind`], unless the object is of an unknown kind (not checked here).
    pub kind: u8,
    /// The fingerprint of the object's parameters (`Parameters::fingerprint`).
    pub fingerprint: [u8; 32],
}

/// Reads the header alone (e.g. to route an object to its parameter set).
pub fn peek_header(bytes: &[u8]) -> Result<Header, WireError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let magic = r.take(4)?;
    if magic != MAGIC {
        return Err(WireError::BadMagic);
    }
    let version = r.u16()?;
    if version != VERSION {
        return Err(WireError::Version { found: version, supported: VERSION });
    }
    let kind = r.u8()?;
    let flags = r.u8()?;
    if flags != 0 {
        return Err(WireError::OutOfRange { field: "flags", detail: format!("{flags} (must be 0)") });
    }
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(r.take(32)?);
    Ok(Header { kind, fingerprint })
}

/// Content address of a serialized evaluation-key bundle: its SHA-256. Servers name
/// a registered bundle by it; registering the same bytes twice is the same key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 32]);

impl KeyId {
    /// The id of a serialized bundle (`EvaluationKeys::to_bytes`).
    pub fn of_bundle(bytes: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        KeyId(Sha256::digest(bytes).into())
    }

    /// Parses exactly 64 hexadecimal digits (either case): no sign, no whitespace, no
    /// prefix — one key has one spelling per case, so a store keyed by it is not fooled.
    pub fn parse(s: &str) -> Result<Self, WireError> {
        let bad = || WireError::OutOfRange {
            field: "key id",
            detail: format!("{:?} is not 64 hexadecimal digits", s.chars().take(80).collect::<String>()),
        };
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(KeyId(out))
    }

    /// The 64 lower-case hexadecimal digits (as `Display` writes them).
    pub fn hex(&self) -> String {
        hex(&self.0)
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({})", self.hex())
    }
}

// ---- writing ------------------------------------------------------------------

struct Writer {
    out: Vec<u8>,
}

impl Writer {
    fn new(params: &Parameters, kind: Kind, capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.push(kind as u8);
        out.push(0);
        out.extend_from_slice(params.fingerprint());
        Self { out }
    }

    /// Packs each limb's values in `bits(q_i)` bits, least significant first.
    fn poly(&mut self, params: &Parameters, p: &Poly, primes: impl Iterator<Item = usize>) {
        let ctx = params.ctx();
        for (limb, prime) in primes.enumerate() {
            let bits = ctx.moduli[prime].bits();
            let mut acc: u128 = 0;
            let mut filled = 0u32;
            for &v in p.limb(limb) {
                acc |= (v as u128) << filled;
                filled += bits;
                while filled >= 8 {
                    self.out.push(acc as u8);
                    acc >>= 8;
                    filled -= 8;
                }
            }
            if filled > 0 {
                self.out.push(acc as u8);
            }
        }
    }
}

// ---- reading ------------------------------------------------------------------

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let available = self.buf.len() - self.pos;
        if n > available {
            return Err(WireError::Truncated { needed: self.pos + n, available: self.buf.len() });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn f64(&mut self) -> Result<f64, WireError> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn seed(&mut self) -> Result<[u8; 32], WireError> {
        Ok(self.take(32)?.try_into().unwrap())
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Opens an object of `kind` under `params`: checks magic, version, kind and fingerprint.
    fn open(buf: &'a [u8], params: &Parameters, kind: Kind) -> Result<Self, WireError> {
        let h = peek_header(buf)?;
        if h.kind != kind as u8 {
            return Err(WireError::WrongKind { expected: kind.name(), found: h.kind });
        }
        if &h.fingerprint != params.fingerprint() {
            return Err(WireError::ForeignParameters {
                found: hex(&h.fingerprint),
                expected: params.fingerprint_hex(),
            });
        }
        Ok(Self { buf, pos: HEADER_LEN })
    }

    /// Fails unless exactly `n` bytes remain: checked before any allocation.
    fn expect_exact(&self, n: usize) -> Result<(), WireError> {
        let rem = self.remaining();
        match rem.cmp(&n) {
            std::cmp::Ordering::Less => Err(WireError::Truncated { needed: self.pos + n, available: self.buf.len() }),
            std::cmp::Ordering::Greater => Err(WireError::Trailing { extra: rem - n }),
            std::cmp::Ordering::Equal => Ok(()),
        }
    }

    fn poly(&mut self, params: &Parameters, primes: &[usize]) -> Result<Poly, WireError> {
        self.words(params, primes, params.n())
    }

    /// `n` values per prime, limb-major, each in its prime's bits (`Writer::poly`).
    fn words(&mut self, params: &Parameters, primes: &[usize], n: usize) -> Result<Poly, WireError> {
        let ctx = params.ctx();
        let bytes = words_bytes(params, primes.iter().copied(), n);
        let src = self.take(bytes)?;
        let mut p = Poly::zero(n, primes.len());
        let mut at = 0usize;
        for (limb, &prime) in primes.iter().enumerate() {
            let m = &ctx.moduli[prime];
            let bits = m.bits();
            let mask = (1u128 << bits) - 1;
            let mut acc: u128 = 0;
            let mut filled = 0u32;
            for v in p.limb_mut(limb) {
                while filled < bits {
                    acc |= (src[at] as u128) << filled;
                    at += 1;
                    filled += 8;
                }
                let x = (acc & mask) as u64;
                acc >>= bits;
                filled -= bits;
                if x >= m.value() {
                    return Err(WireError::Coefficient { value: x, modulus: m.value() });
                }
                *v = x;
            }
            if acc != 0 {
                return Err(WireError::OutOfRange { field: "padding", detail: "non-zero padding bits".into() });
            }
        }
        Ok(p)
    }

    fn level_and_scale(&mut self, params: &Parameters) -> Result<(usize, f64), WireError> {
        let level = self.u16()? as usize;
        if level > params.max_level() {
            return Err(WireError::OutOfRange {
                field: "level",
                detail: format!("{level} above the chain's top level {}", params.max_level()),
            });
        }
        let scale = self.f64()?;
        if !(scale.is_finite() && (1.0..=2f64.powi(120)).contains(&scale)) {
            return Err(WireError::OutOfRange { field: "scale", detail: format!("{scale}") });
        }
        Ok((level, scale))
    }
}

// ---- ciphertexts -------------------------------------------------------------------

impl Ciphertext {
    /// Serializes both halves: `Parameters::ciphertext_bytes(level, false)` bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let p = &self.params;
        let level = self.level();
        let mut w = Writer::new(p, Kind::Ciphertext, p.ciphertext_bytes(level, false));
        w.out.extend_from_slice(&(level as u16).to_le_bytes());
        w.out.extend_from_slice(&self.scale.to_le_bytes());
        w.out.push(2);
        w.poly(p, &self.c0, 0..=level);
        w.poly(p, &self.c1, 0..=level);
        w.out
    }

    /// Reads a ciphertext made under `params`; the input must be exactly one object.
    pub fn from_bytes(params: &Parameters, bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::open(bytes, params, Kind::Ciphertext)?;
        let (level, scale) = r.level_and_scale(params)?;
        let polys = r.u8()?;
        if polys != 2 {
            return Err(WireError::OutOfRange { field: "polynomial count", detail: format!("{polys} (must be 2)") });
        }
        r.expect_exact(2 * params.poly_bytes(0..=level))?;
        let primes: Vec<usize> = (0..=level).collect();
        let c0 = r.poly(params, &primes)?;
        let c1 = r.poly(params, &primes)?;
        Ok(Ciphertext { params: params.clone(), c0, c1, scale })
    }
}

impl SeededCiphertext {
    /// Serializes c0 and the seed of c1: about half the bytes of a ciphertext.
    pub fn to_bytes(&self) -> Vec<u8> {
        let p = &self.params;
        let level = self.level();
        let mut w = Writer::new(p, Kind::SeededCiphertext, p.ciphertext_bytes(level, true));
        w.out.extend_from_slice(&(level as u16).to_le_bytes());
        w.out.extend_from_slice(&self.scale.to_le_bytes());
        w.out.push(1);
        w.poly(p, &self.c0, 0..=level);
        w.out.extend_from_slice(&self.seed);
        w.out
    }

    /// Reads a seeded ciphertext made under `params` (`expand` gives its c1).
    pub fn from_bytes(params: &Parameters, bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::open(bytes, params, Kind::SeededCiphertext)?;
        let (level, scale) = r.level_and_scale(params)?;
        let polys = r.u8()?;
        if polys != 1 {
            return Err(WireError::OutOfRange { field: "polynomial count", detail: format!("{polys} (must be 1)") });
        }
        r.expect_exact(params.poly_bytes(0..=level) + 32)?;
        let primes: Vec<usize> = (0..=level).collect();
        let c0 = r.poly(params, &primes)?;
        let seed = r.seed()?;
        Ok(SeededCiphertext { params: params.clone(), c0, seed, scale })
    }
}

impl LweQuery {
    /// Serializes the words and the seed: `Parameters::lwe_query_bytes(level, count)` bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let p = &self.params;
        let kind = if self.ring { Kind::RingQuery } else { Kind::LweQuery };
        let mut w = Writer::new(p, kind, p.lwe_query_bytes(self.level, self.count()));
        w.out.extend_from_slice(&(self.level as u16).to_le_bytes());
        w.out.extend_from_slice(&self.scale.to_le_bytes());
        w.out.extend_from_slice(&(self.count() as u32).to_le_bytes());
        w.out.extend_from_slice(&self.seed);
        w.poly(p, &self.b, 0..=self.level);
        w.out
    }

    /// Reads a query made under `params`, of at most `max_values` values (the packing
    /// key's reach); lengths are checked before anything is allocated.
    pub fn from_bytes(params: &Parameters, bytes: &[u8], max_values: usize) -> Result<Self, WireError> {
        Self::read(params, bytes, max_values, Kind::LweQuery)
    }

    /// [`Self::from_bytes`] for a ring query (kind 13; an LWE query is refused).
    pub fn ring_from_bytes(params: &Parameters, bytes: &[u8], max_values: usize) -> Result<Self, WireError> {
        Self::read(params, bytes, max_values, Kind::RingQuery)
    }

    fn read(params: &Parameters, bytes: &[u8], max_values: usize, kind: Kind) -> Result<Self, WireError> {
        let mut r = Reader::open(bytes, params, kind)?;
        let (level, scale) = r.level_and_scale(params)?;
        let count = r.u32()? as usize;
        let limit = max_values.min(crate::packing::max_query_values(params));
        if count == 0 || count > limit {
            return Err(WireError::OutOfRange {
                field: "value count",
                detail: format!("{count} (1..={limit} allowed)"),
            });
        }
        let seed = r.seed()?;
        let primes: Vec<usize> = (0..=level).collect();
        r.expect_exact(words_bytes(params, primes.iter().copied(), count))?;
        let b = r.words(params, &primes, count)?;
        Ok(LweQuery { params: params.clone(), level, scale, seed, b, ring: kind == Kind::RingQuery })
    }
}

impl AnswerShape {
    /// Bytes of a serialized compact answer of this shape.
    pub fn bytes(&self) -> usize {
        HEADER_LEN + 2 + 8 + 2 * (self.n() * self.log_q as usize).div_ceil(8)
    }
}

/// Packs values below 2^bits, least significant first.
fn pack_bits(out: &mut Vec<u8>, values: &[u64], bits: u32) {
    let mut acc: u128 = 0;
    let mut filled = 0u32;
    for &v in values {
        acc |= (v as u128) << filled;
        filled += bits;
        while filled >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            filled -= 8;
        }
    }
    if filled > 0 {
        out.push(acc as u8);
    }
}

/// Unpacks `n` values of `bits` bits (`pack_bits`); the caller checked the length.
fn unpack_bits(src: &[u8], n: usize, bits: u32) -> Result<Vec<u64>, WireError> {
    let mask = (1u128 << bits) - 1;
    let (mut acc, mut filled, mut at) = (0u128, 0u32, 0usize);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        while filled < bits {
            acc |= (src[at] as u128) << filled;
            at += 1;
            filled += 8;
        }
        out.push((acc & mask) as u64);
        acc >>= bits;
        filled -= bits;
    }
    if acc != 0 {
        return Err(WireError::OutOfRange { field: "padding", detail: "non-zero padding bits".into() });
    }
    Ok(out)
}

impl CompactAnswer {
    /// Serializes log2 N', log_q, the scale, then c0 and c1 in log_q bits each:
    /// `AnswerShape::bytes` bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(&self.params, Kind::CompactAnswer, self.shape.bytes());
        w.out.push(self.shape.log_n as u8);
        w.out.push(self.shape.log_q as u8);
        w.out.extend_from_slice(&self.scale.to_le_bytes());
        pack_bits(&mut w.out, &self.c0, self.shape.log_q);
        pack_bits(&mut w.out, &self.c1, self.shape.log_q);
        w.out
    }

    /// Reads a compact answer made under `params`, of exactly the shape `expected` (the
    /// model's client spec says which); the length is checked before anything is allocated.
    pub fn from_bytes(params: &Parameters, bytes: &[u8], expected: AnswerShape) -> Result<Self, WireError> {
        let mut r = Reader::open(bytes, params, Kind::CompactAnswer)?;
        let shape = AnswerShape { log_n: r.u8()? as u32, log_q: r.u8()? as u32 };
        if shape != expected {
            return Err(WireError::OutOfRange {
                field: "answer shape",
                detail: format!(
                    "degree 2^{} modulo 2^{}, but this model's answers are degree 2^{} modulo 2^{}",
                    shape.log_n, shape.log_q, expected.log_n, expected.log_q
                ),
            });
        }
        expected.check(params).map_err(|e| WireError::OutOfRange { field: "answer shape", detail: e.to_string() })?;
        let scale = r.f64()?;
        if !(scale.is_finite() && (1.0..=2f64.powi(120)).contains(&scale)) {
            return Err(WireError::OutOfRange { field: "scale", detail: format!("{scale}") });
        }
        let half = (shape.n() * shape.log_q as usize).div_ceil(8);
        r.expect_exact(2 * half)?;
        let c0 = unpack_bits(r.take(half)?, shape.n(), shape.log_q)?;
        let c1 = unpack_bits(r.take(half)?, shape.n(), shape.log_q)?;
        Ok(CompactAnswer { params: params.clone(), shape, scale, c0, c1 })
    }
}

/// Reads either ciphertext form, expanding a seeded one.
pub fn read_any_ciphertext(params: &Parameters, bytes: &[u8]) -> Result<Ciphertext, WireError> {
    read_any_ciphertext_limited(params, bytes, None)
}

/// Like `read_any_ciphertext`, refusing (before allocating) a level above `max_level`:
/// a server knows the level its inputs come at.
pub fn read_any_ciphertext_limited(
    params: &Parameters,
    bytes: &[u8],
    max_level: Option<usize>,
) -> Result<Ciphertext, WireError> {
    if let Some(max) = max_level {
        let h = peek_header(bytes)?;
        // Foreign parameters first: that is the mistake to report, not its level.
        if &h.fingerprint != params.fingerprint() {
            return Err(WireError::ForeignParameters {
                found: hex(&h.fingerprint),
                expected: params.fingerprint_hex(),
            });
        }
        if bytes.len() >= HEADER_LEN + 2 && (h.kind == Kind::Ciphertext as u8 || h.kind == Kind::SeededCiphertext as u8)
        {
            let level = u16::from_le_bytes([bytes[HEADER_LEN], bytes[HEADER_LEN + 1]]) as usize;
            if level > max {
                return Err(WireError::OutOfRange {
                    field: "level",
                    detail: format!("{level}, above the expected {max}"),
                });
            }
        }
    }
    match peek_header(bytes)?.kind {
        k if k == Kind::SeededCiphertext as u8 => Ok(SeededCiphertext::from_bytes(params, bytes)?.expand()),
        _ => Ciphertext::from_bytes(params, bytes),
    }
}

// ---- keys -------------------------------------------------------------------------------

impl PublicKey {
    /// Serializes b and the seed of a.
    pub fn to_bytes(&self) -> Vec<u8> {
        let p = &self.params;
        let levels = p.q().len();
        let mut w = Writer::new(p, Kind::PublicKey, HEADER_LEN + 32 + p.poly_bytes(0..levels));
        w.out.extend_from_slice(&self.seed);
        w.poly(p, &self.b, 0..levels);
        w.out
    }

    /// Reads a public key made under `params`, re-deriving a from its seed.
    pub fn from_bytes(params: &Parameters, bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::open(bytes, params, Kind::PublicKey)?;
        r.expect_exact(public_key_body_len(params))?;
        read_public_key_body(&mut r, params)
    }
}

/// Bytes of a public key after its header: the seed of a, then b over every q prime.
fn public_key_body_len(params: &Parameters) -> usize {
    32 + params.poly_bytes(0..params.q().len())
}

/// A public key's body (seed, b), its length checked before anything is allocated.
fn read_public_key_body(r: &mut Reader, params: &Parameters) -> Result<PublicKey, WireError> {
    let need = public_key_body_len(params);
    if r.remaining() < need {
        return Err(WireError::Truncated { needed: r.pos + need, available: r.buf.len() });
    }
    let levels = params.q().len();
    let seed = r.seed()?;
    let primes: Vec<usize> = (0..levels).collect();
    let b = r.poly(params, &primes)?;
    let moduli: Vec<_> = params.ctx().moduli[..levels].iter().collect();
    let a = Sampler::from_seed(seed).uniform(params.n(), &moduli);
    Ok(PublicKey { params: params.clone(), b, a, seed })
}

/// Bytes of the smallest key record (one digit): what a count of records is bounded by.
fn min_key_record_len(params: &Parameters) -> usize {
    let body = params.key_bases().iter().map(|b| key_record_bytes(b, 0)).fold(key_record_bytes(params, 0), usize::min);
    basis_tag_len(params) + body
}

fn record_len(params: &Parameters, k: &KeySwitchKey) -> usize {
    basis_tag_len(params) + key_record_bytes(&k.params, k.max_level())
}

/// Writes a key record; `perm`, if given, is applied to each b first. A key that stops
/// below the top level has fewer digits, each over its own primes (`key_primes`).
fn write_key(w: &mut Writer, params: &Parameters, element: u64, k: &KeySwitchKey, perm: Option<&[u32]>) {
    if basis_tag_len(params) == 1 {
        // 0: the set itself; i: its key basis i − 1.
        let i = params.key_bases().iter().position(|b| b.same(&k.params)).map_or(0, |i| i + 1);
        debug_assert!(i > 0 || k.params.same(params), "a key of a foreign set");
        w.out.push(i as u8);
    }
    let params = &k.params;
    let primes = key_primes(params, k.b.len());
    w.out.extend_from_slice(&element.to_le_bytes());
    w.out.extend_from_slice(&(k.b.len() as u16).to_le_bytes());
    w.out.extend_from_slice(&k.seed);
    for b in &k.b {
        match perm {
            Some(p) => w.poly(params, &b.permute(p), primes.iter().copied()),
            None => w.poly(params, b, primes.iter().copied()),
        }
    }
}

fn read_key(r: &mut Reader, params: &Parameters) -> Result<(u64, KeySwitchKey), WireError> {
    let params = if basis_tag_len(params) == 1 {
        match r.u8()? as usize {
            0 => params,
            i => params.key_bases().get(i - 1).ok_or_else(|| WireError::OutOfRange {
                field: "key basis",
                detail: format!("{i} (these parameters have key bases 1 to {})", params.key_bases().len()),
            })?,
        }
    } else {
        params
    };
    let element = r.u64()?;
    let digits = r.u16()? as usize;
    let want = params.q().len().div_ceil(params.ctx().alpha);
    if digits == 0 || digits > want {
        return Err(WireError::OutOfRange {
            field: "digits",
            detail: format!("{digits} (these parameters use 1 to {want})"),
        });
    }
    let seed = r.seed()?;
    let primes = key_primes(params, digits);
    // The whole record must be there before any of it is allocated.
    let need = digits * params.poly_bytes(primes.iter().copied());
    if r.remaining() < need {
        return Err(WireError::Truncated { needed: r.pos + need, available: r.buf.len() });
    }
    let b = (0..digits).map(|_| r.poly(params, &primes)).collect::<Result<Vec<_>, _>>()?;
    let a = expand_keyswitch_a(params, seed, digits);
    Ok((element, KeySwitchKey::new(params, b, a, seed)))
}

/// An answer key's record: log2 N', then a one-digit key for level 0.
fn read_answer_key(r: &mut Reader, params: &Parameters) -> Result<AnswerKey, WireError> {
    let log_n = r.u8()? as u32;
    if AnswerShape::min_log_n(params) > log_n || log_n >= params.log_n() {
        return Err(WireError::OutOfRange {
            field: "answer key degree",
            detail: format!(
                "2^{log_n} (these parameters fold answers to 2^{}..2^{} with 128-bit security)",
                AnswerShape::min_log_n(params),
                params.log_n() - 1
            ),
        });
    }
    let (e, key) = read_key(r, params)?;
    if !key.params.same(params) {
        return Err(WireError::OutOfRange {
            field: "answer key",
            detail: "it must be made in the set itself, not a key basis".into(),
        });
    }
    if e != 0 || key.b.len() != 1 {
        return Err(WireError::OutOfRange {
            field: "answer key",
            detail: format!("element {e}, {} digits (must be 0 and one digit: it serves level 0)", key.b.len()),
        });
    }
    Ok(AnswerKey { log_n, key })
}

fn check_galois_element(params: &Parameters, g: u64) -> Result<(), WireError> {
    let two_n = 2 * params.n() as u64;
    if g.is_multiple_of(2) || g >= two_n || g == 1 {
        return Err(WireError::OutOfRange {
            field: "Galois element",
            detail: format!("{g} is not an odd unit below 2N other than 1"),
        });
    }
    Ok(())
}

impl RelinKey {
    /// Serializes each digit's b and the seed of the a's: `Parameters::keyswitch_key_bytes` plus the header.
    pub fn to_bytes(&self) -> Vec<u8> {
        let p = &self.0.params;
        let mut w = Writer::new(p, Kind::RelinKey, HEADER_LEN + record_len(p, &self.0));
        write_key(&mut w, p, 0, &self.0, None);
        w.out
    }

    /// Reads a relinearization key made under `params`.
    pub fn from_bytes(params: &Parameters, bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::open(bytes, params, Kind::RelinKey)?;
        let (element, k) = read_key(&mut r, params)?;
        r.expect_exact(0)?;
        if element != 0 {
            return Err(WireError::OutOfRange {
                field: "element",
                detail: "a relinearization key has element 0".into(),
            });
        }
        Ok(RelinKey(k))
    }
}

fn write_galois(w: &mut Writer, params: &Parameters, g: &GaloisKeys) {
    w.out.extend_from_slice(&(g.keys.len() as u32).to_le_bytes());
    for (&e, k) in &g.keys {
        // Memory holds σ⁻¹(key); the wire holds the key itself.
        write_key(w, params, e, k, Some(&params.ctx().galois_perm_transient(e)));
    }
}

fn read_galois(r: &mut Reader, params: &Parameters) -> Result<GaloisKeys, WireError> {
    let count = r.u32()? as usize;
    // Bounded by what the buffer can hold before anything is allocated (each record's own
    // length is checked as it is read, and nothing may follow the last).
    let need = count
        .checked_mul(min_key_record_len(params))
        .ok_or(WireError::OutOfRange { field: "key count", detail: format!("{count}") })?;
    if r.remaining() < need {
        return Err(WireError::Truncated { needed: r.pos + need, available: r.buf.len() });
    }
    let mut keys = std::collections::BTreeMap::new();
    for _ in 0..count {
        let (e, k) = read_key(r, params)?;
        check_galois_element(params, e)?;
        let ctx = params.ctx();
        let k = k.permuted(&ctx.galois_perm_transient(ctx.galois_inverse(e)));
        if keys.insert(e, k).is_some() {
            return Err(WireError::OutOfRange { field: "Galois element", detail: format!("{e} appears twice") });
        }
    }
    r.expect_exact(0)?;
    Ok(GaloisKeys { keys })
}

impl GaloisKeys {
    /// Serializes the keys in canonical form (memory holds them permuted by σ⁻¹) under
    /// `params`, which the set does not record.
    pub fn to_bytes(&self, params: &Parameters) -> Vec<u8> {
        let len = HEADER_LEN + 4 + self.keys.values().map(|k| record_len(params, k)).sum::<usize>();
        let mut w = Writer::new(params, Kind::GaloisKeys, len);
        write_galois(&mut w, params, self);
        w.out
    }

    /// Reads Galois keys made under `params`, refusing a Galois element that is even,
    /// 1, not below 2N, or repeated.
    pub fn from_bytes(params: &Parameters, bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::open(bytes, params, Kind::GaloisKeys)?;
        read_galois(&mut r, params)
    }
}

impl EvaluationKeys {
    /// Serialized size, without serializing.
    pub fn serialized_len(&self) -> usize {
        let p = &self.params;
        HEADER_LEN
            + 1
            + self.relin.as_ref().map_or(0, |k| record_len(p, &k.0))
            + self.public.as_ref().map_or(0, |_| public_key_body_len(p))
            + self.answer.as_ref().map_or(0, |a| 1 + record_len(p, &a.key))
            + 4
            + self.galois.keys.values().map(|k| record_len(p, k)).sum::<usize>()
    }

    /// Serializes the bundle a client registers; its [`KeyId`] is the SHA-256 of these bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let p = &self.params;
        let mut w = Writer::new(p, Kind::EvaluationKeys, self.serialized_len());
        // The contents byte: bit 0 a relinearization key, bit 1 a public key (circuit
        // privacy), bit 2 an answer key (compact answers). Bundles without the later
        // parts are byte for byte what they were.
        w.out.push(
            u8::from(self.relin.is_some())
                | u8::from(self.public.is_some()) << 1
                | u8::from(self.answer.is_some()) << 2,
        );
        if let Some(rk) = &self.relin {
            write_key(&mut w, p, 0, &rk.0, None);
        }
        if let Some(pk) = &self.public {
            w.out.extend_from_slice(&pk.seed);
            w.poly(p, &pk.b, 0..p.q().len());
        }
        if let Some(a) = &self.answer {
            w.out.push(a.log_n as u8);
            write_key(&mut w, p, 0, &a.key, None);
        }
        write_galois(&mut w, p, &self.galois);
        w.out
    }

    /// Reads a bundle made under `params`. It does not check that the set is secure:
    /// servers call `Parameters::require_secure` on the sets they accept.
    pub fn from_bytes(params: &Parameters, bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::open(bytes, params, Kind::EvaluationKeys)?;
        let contents = r.u8()?;
        if contents > 7 {
            return Err(WireError::OutOfRange {
                field: "bundle contents",
                detail: format!("{contents} (bit 0: relinearization key, bit 1: public key, bit 2: answer key)"),
            });
        }
        let relin = if contents & 1 == 1 {
            let (e, k) = read_key(&mut r, params)?;
            if e != 0 {
                return Err(WireError::OutOfRange {
                    field: "element",
                    detail: "relinearization key element must be 0".into(),
                });
            }
            Some(RelinKey(k))
        } else {
            None
        };
        let public = if contents & 2 == 2 { Some(read_public_key_body(&mut r, params)?) } else { None };
        let answer = if contents & 4 == 4 { Some(read_answer_key(&mut r, params)?) } else { None };
        let galois = read_galois(&mut r, params)?;
        Ok(EvaluationKeys { params: params.clone(), relin, galois, public, answer })
    }
}

#[cfg(feature = "secret-key")]
impl SecretKey {
    /// For the owner's own key file only: 2 bits per coefficient.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let p = &self.params;
        let mut w = Writer::new(p, Kind::SecretKey, HEADER_LEN + p.n() / 4);
        for chunk in self.coeffs.chunks(4) {
            let mut b = 0u8;
            for (i, &c) in chunk.iter().enumerate() {
                let code = match c {
                    0 => 0u8,
                    1 => 1,
                    _ => 2,
                };
                b |= code << (2 * i);
            }
            w.out.push(b);
        }
        zeroize::Zeroizing::new(w.out)
    }

    /// Reads the owner's key file written by `to_bytes`; wiping `bytes` is the caller's part.
    pub fn from_bytes(params: &Parameters, bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::open(bytes, params, Kind::SecretKey)?;
        r.expect_exact(params.n() / 4)?;
        let src = r.take(params.n() / 4)?;
        let mut coeffs = zeroize::Zeroizing::new(Vec::with_capacity(params.n()));
        for &b in src {
            for i in 0..4 {
                coeffs.push(match (b >> (2 * i)) & 3 {
                    0 => 0,
                    1 => 1,
                    2 => -1,
                    _ => return Err(WireError::OutOfRange { field: "secret coefficient", detail: "code 3".into() }),
                });
            }
        }
        Ok(SecretKey::from_coeffs(params, std::mem::take(&mut *coeffs)))
    }
}

// ---- decryption shares ---------------------------------------------------------

/// Participants a share may name: a committee is small, and the count is read before
/// the ids are.
const MAX_PARTICIPANTS: usize = 1024;

impl DecryptionShare {
    /// Serializes the member, the participant set, the ciphertext's digest and h.
    pub fn to_bytes(&self) -> Vec<u8> {
        let p = &self.params;
        let level = self.h.limbs() - 1;
        let mut w = Writer::new(p, Kind::DecryptionShare, p.decryption_share_bytes(level, self.participants.len()));
        w.out.extend_from_slice(&self.member.to_le_bytes());
        w.out.extend_from_slice(&(self.participants.len() as u16).to_le_bytes());
        for m in &self.participants {
            w.out.extend_from_slice(&m.to_le_bytes());
        }
        w.out.extend_from_slice(&self.ciphertext);
        w.out.extend_from_slice(&(level as u16).to_le_bytes());
        w.poly(p, &self.h, 0..=level);
        w.out
    }

    /// Reads a share made under `params`; the input must be exactly one object.
    pub fn from_bytes(params: &Parameters, bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::open(bytes, params, Kind::DecryptionShare)?;
        let member = r.u32()?;
        let count = r.u16()? as usize;
        if count == 0 || count > MAX_PARTICIPANTS {
            return Err(WireError::OutOfRange {
                field: "participants",
                detail: format!("{count} (1..={MAX_PARTICIPANTS})"),
            });
        }
        let mut participants = std::collections::BTreeSet::new();
        for _ in 0..count {
            participants.insert(r.u32()?);
        }
        if participants.len() != count || !participants.contains(&member) {
            return Err(WireError::OutOfRange {
                field: "participants",
                detail: "repeated ids, or the member is not among them".into(),
            });
        }
        let ciphertext = r.seed()?;
        let level = r.u16()? as usize;
        if level > params.max_level() {
            return Err(WireError::OutOfRange {
                field: "level",
                detail: format!("{level} above the chain's top level {}", params.max_level()),
            });
        }
        r.expect_exact(params.poly_bytes(0..=level))?;
        let primes: Vec<usize> = (0..=level).collect();
        let h = r.poly(params, &primes)?;
        Ok(DecryptionShare { params: params.clone(), member, participants, ciphertext, h })
    }
}

// ---- key generation with a committee ------------------------------------------------

/// Reads a committee id list: count (u16, at most `MAX_PARTICIPANTS`), then the ids.
#[cfg(feature = "secret-key")]
fn read_members(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<u32>, WireError> {
    let count = r.u16()? as usize;
    if count == 0 || count > MAX_PARTICIPANTS || r.remaining() < 4 * count {
        return Err(WireError::OutOfRange { field, detail: format!("{count} members (1..={MAX_PARTICIPANTS})") });
    }
    (0..count).map(|_| r.u32()).collect()
}

impl PublicKeyShare {
    /// Serializes the party and b_i (over the q chain).
    pub fn to_bytes(&self) -> Vec<u8> {
        let p = &self.params;
        let levels = p.q().len();
        let mut w = Writer::new(p, Kind::PublicKeyShare, HEADER_LEN + 4 + p.poly_bytes(0..levels));
        w.out.extend_from_slice(&self.party.to_le_bytes());
        w.poly(p, &self.b, 0..levels);
        w.out
    }

    /// Reads a public-key share made under `params`.
    pub fn from_bytes(params: &Parameters, bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::open(bytes, params, Kind::PublicKeyShare)?;
        let party = r.u32()?;
        let levels = params.q().len();
        r.expect_exact(params.poly_bytes(0..levels))?;
        let primes: Vec<usize> = (0..levels).collect();
        let b = r.poly(params, &primes)?;
        Ok(PublicKeyShare { params: params.clone(), party, b })
    }
}

#[cfg(feature = "secret-key")]
impl ShamirShare {
    /// Serializes f_i(j) for its recipient's private channel (wiped when dropped).
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let p = &self.params;
        let levels = p.q().len();
        let mut w = Writer::new(p, Kind::ShamirShare, HEADER_LEN + 8 + p.poly_bytes(0..levels));
        w.out.extend_from_slice(&self.from.to_le_bytes());
        w.out.extend_from_slice(&self.to.to_le_bytes());
        w.poly(p, &self.poly, 0..levels);
        zeroize::Zeroizing::new(w.out)
    }

    /// Reads a Shamir share made under `params`; wiping `bytes` is the caller's part.
    pub fn from_bytes(params: &Parameters, bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::open(bytes, params, Kind::ShamirShare)?;
        let from = r.u32()?;
        let to = r.u32()?;
        let levels = params.q().len();
        r.expect_exact(params.poly_bytes(0..levels))?;
        let primes: Vec<usize> = (0..levels).collect();
        let poly = r.poly(params, &primes)?;
        Ok(ShamirShare { params: params.clone(), from, to, poly })
    }
}

#[cfg(feature = "secret-key")]
use zeroize::Zeroize;

/// Ciphertexts a threshold-key file may list as shared (32 bytes each): 2^20, 32 MB.
#[cfg(feature = "secret-key")]
const MAX_SHARED: usize = 1 << 20;

#[cfg(feature = "secret-key")]
impl ThresholdKey {
    /// For the member's own key file only: id, threshold, committee, s'_j, and the
    /// digests of every ciphertext it has shared (so a second share stays refused).
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let p = &self.params;
        let levels = p.q().len();
        let cap = HEADER_LEN + 8 + 4 * self.committee.len() + p.poly_bytes(0..levels) + 4 + 32 * self.shared.len();
        let mut w = Writer::new(p, Kind::ThresholdKey, cap);
        w.out.extend_from_slice(&self.id.to_le_bytes());
        w.out.extend_from_slice(&(self.threshold as u16).to_le_bytes());
        w.out.extend_from_slice(&(self.committee.len() as u16).to_le_bytes());
        for m in &self.committee {
            w.out.extend_from_slice(&m.to_le_bytes());
        }
        w.poly(p, &self.share, 0..levels);
        let mut shared: Vec<&[u8; 32]> = self.shared.iter().collect();
        shared.sort();
        w.out.extend_from_slice(&(shared.len() as u32).to_le_bytes());
        for d in shared {
            w.out.extend_from_slice(d);
        }
        zeroize::Zeroizing::new(w.out)
    }

    /// Reads a member's key file written by `to_bytes`; wiping `bytes` is the caller's part.
    pub fn from_bytes(params: &Parameters, bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::open(bytes, params, Kind::ThresholdKey)?;
        let id = r.u32()?;
        let threshold = r.u16()? as usize;
        let committee = read_members(&mut r, "committee")?;
        if threshold == 0 || threshold > committee.len() || !committee.contains(&id) {
            return Err(WireError::OutOfRange {
                field: "threshold key",
                detail: format!("member {id}, threshold {threshold} of {committee:?}"),
            });
        }
        let levels = params.q().len();
        if r.remaining() < params.poly_bytes(0..levels) + 4 {
            return Err(WireError::Truncated {
                needed: r.pos + params.poly_bytes(0..levels) + 4,
                available: bytes.len(),
            });
        }
        let primes: Vec<usize> = (0..levels).collect();
        let mut share = r.poly(params, &primes)?;
        let mut digests = || -> Result<std::collections::HashSet<[u8; 32]>, WireError> {
            let count = r.u32()? as usize;
            if count > MAX_SHARED {
                return Err(WireError::OutOfRange {
                    field: "shared",
                    detail: format!("{count} (at most {MAX_SHARED})"),
                });
            }
            r.expect_exact(32 * count)?;
            (0..count).map(|_| r.seed()).collect()
        };
        let shared = match digests() {
            Ok(d) => d,
            Err(e) => {
                share.zeroize();
                return Err(e);
            }
        };
        Ok(ThresholdKey {
            params: params.clone(),
            id,
            threshold,
            committee,
            share,
            shared,
            sampler: Sampler::os_seeded(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::KeyId;

    /// `u8::from_str_radix` takes a leading '+': "+f" would parse, and one key would have
    /// many spellings. Only the 64 digits themselves are a key id.
    #[test]
    fn key_ids_are_exactly_64_hex_digits() {
        let id = KeyId::of_bundle(b"bundle");
        let hex = id.hex();
        assert_eq!(KeyId::parse(&hex).unwrap(), id);
        assert_eq!(KeyId::parse(&hex.to_uppercase()).unwrap(), id);
        let plus = format!("+{}", &hex[1..]);
        assert!(KeyId::parse(&plus).is_err(), "{plus}");
        let plus_mid = format!("{}+{}", &hex[..10], &hex[11..]);
        assert!(KeyId::parse(&plus_mid).is_err());
        assert!(KeyId::parse(&format!(" {}", &hex[1..])).is_err());
        assert!(KeyId::parse(&format!("{hex}\n")).is_err());
        assert!(KeyId::parse(&format!("0x{}", &hex[2..])).is_err());
    }
}

#[cfg(test)]
mod cache_tests {
    use crate::keys::{EvaluationKeys, KeyGenerator};
    use crate::params::Parameters;

    /// A bundle names its Galois elements; reading one (as a server does for any client's
    /// upload) must not keep a permutation per element, or a few bundles with thousands of
    /// elements would hold gigabytes outside every bound at N = 2^16.
    #[test]
    fn reading_keys_does_not_grow_the_permutation_cache() {
        let params = Parameters::builder().log_n(12).q_bits(&[30, 25]).p_bits(&[30]).build().unwrap();
        let mut kg = KeyGenerator::new(&params);
        let sk = kg.secret_key();
        let steps: Vec<i64> = (1..=12).collect();
        let bytes = kg.evaluation_keys(&sk, &steps, true, false).to_bytes();
        // A fresh parameter object, as a server has: key generation above filled its own cache.
        let server = Parameters::from_spec(params.spec()).unwrap();
        let before = server.ctx().automorphisms.cached();
        let keys = EvaluationKeys::from_bytes(&server, &bytes).unwrap();
        assert_eq!(keys.galois.len(), 13);
        assert_eq!(server.ctx().automorphisms.cached(), before, "reading keys kept permutations");
        // Writing them back (canonical form) keeps none either, and gives the same bytes.
        assert_eq!(keys.to_bytes(), bytes);
        assert_eq!(server.ctx().automorphisms.cached(), before);
    }
}

#[cfg(test)]
mod lwe_query_tests {
    use super::{HEADER_LEN, LWE_QUERY_META_LEN};
    use crate::encryption::Decryptor;
    use crate::keys::KeyGenerator;
    use crate::packing::LweQuery;
    use crate::params::Parameters;

    fn setup() -> (Parameters, crate::keys::SecretKey) {
        let params =
            Parameters::builder().log_n(10).q_bits(&[45, 35, 35]).p_bits(&[50]).build_insecure_for_testing().unwrap();
        let sk = KeyGenerator::new(&params).secret_key();
        (params, sk)
    }

    /// The wire form is one word per value per prime plus the seed, reads back equal,
    /// and a query with more values than the reader allows, cut short, or under other
    /// parameters is refused before anything is allocated.
    #[test]
    fn wire_form_is_a_word_per_value_and_checks_what_it_reads() {
        let (params, sk) = setup();
        let q = Decryptor::new(&sk).encrypt_lwe(&[1, -2, 3, 4, 5], 1, 2f64.powi(30)).unwrap();
        let bytes = q.to_bytes();
        assert_eq!(bytes.len(), params.lwe_query_bytes(1, 5));
        assert_eq!(
            bytes.len(),
            HEADER_LEN + LWE_QUERY_META_LEN + 32 + (5 * 45usize).div_ceil(8) + (5 * 35usize).div_ceil(8)
        );
        assert_eq!(LweQuery::from_bytes(&params, &bytes, 8).unwrap(), q);
        assert!(matches!(
            LweQuery::from_bytes(&params, &bytes, 4),
            Err(crate::error::WireError::OutOfRange { field: "value count", .. })
        ));
        assert!(LweQuery::from_bytes(&params, &bytes[..bytes.len() - 1], 8).is_err());
        let mut big = bytes.clone();
        let at = HEADER_LEN + 10;
        big[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(LweQuery::from_bytes(&params, &big, usize::MAX).is_err());
        let other = Parameters::builder().log_n(11).q_bits(&[45, 35, 35]).p_bits(&[50]).build_insecure_for_testing();
        assert!(matches!(
            LweQuery::from_bytes(&other.unwrap(), &bytes, 8),
            Err(crate::error::WireError::ForeignParameters { .. })
        ));
    }
}
