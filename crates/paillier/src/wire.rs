//! Wire formats, in the project's style: `HEPA` magic, u16 version, kind byte, a zero byte,
//! then the body, little-endian and fixed-width; every length checked before it is used,
//! nothing allocated from an unchecked count, and no panics on any input.
//!
//! - public key (kind 1): `bits: u32`, `n` in ⌈bits/8⌉ bytes.
//! - ciphertexts (kind 2): the key id (32 bytes) of the key they were made for, `count: u32`,
//!   then `count` ciphertexts of 2·⌈bits/8⌉ bytes each, each checked `< n²` and invertible.
//! - secret key (kind 3, feature `secret-key`): `bits: u32`, `p` and `q` in ⌈bits/16⌉ bytes.

use crate::bigint::{from_le, push_le};
use crate::error::PaillierError;
use crate::key_id::KeyId;
use crate::keys::{check_modulus_bits, Ciphertext, PublicKey};

/// First four bytes of every Paillier object.
pub const MAGIC: [u8; 4] = *b"HEPA";
/// Format version written and read.
pub const VERSION: u16 = 1;
const HEADER: usize = 8;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Kind {
    PublicKey = 1,
    Ciphertexts = 2,
    #[cfg_attr(not(feature = "secret-key"), allow(dead_code))]
    SecretKey = 3,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::PublicKey => "public key",
            Kind::Ciphertexts => "ciphertext batch",
            Kind::SecretKey => "secret key",
        }
    }
}

fn header(out: &mut Vec<u8>, kind: Kind) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.push(kind as u8);
    out.push(0);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn open(bytes: &'a [u8], kind: Kind) -> Result<Self, PaillierError> {
        let what = kind.name();
        if bytes.len() < HEADER {
            if bytes.len() >= 4 && bytes[..4] != MAGIC {
                return Err(PaillierError::BadMagic { what });
            }
            return Err(PaillierError::Truncated { what, needed: HEADER, available: bytes.len() });
        }
        if bytes[..4] != MAGIC {
            return Err(PaillierError::BadMagic { what });
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != VERSION {
            return Err(PaillierError::Version { what, found: version, supported: VERSION });
        }
        if bytes[6] != kind as u8 {
            let found = match bytes[6] {
                1 => "public key",
                2 => "ciphertext batch",
                3 => "secret key",
                _ => "object of unknown kind",
            };
            return Err(PaillierError::WrongKind { expected: what, found });
        }
        if bytes[7] != 0 {
            return Err(PaillierError::Invalid {
                field: "header",
                detail: format!("reserved byte is {}, not 0", bytes[7]),
            });
        }
        Ok(Self { bytes, pos: HEADER, what })
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], PaillierError> {
        let end = self.pos.checked_add(len).filter(|&e| e <= self.bytes.len()).ok_or(PaillierError::Truncated {
            what: self.what,
            needed: self.pos.saturating_add(len),
            available: self.bytes.len(),
        })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, PaillierError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn finish(self) -> Result<(), PaillierError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(PaillierError::TrailingBytes { what: self.what, count }),
        }
    }
}

impl PublicKey {
    /// The wire bytes; the key id is their SHA-256.
    pub fn to_bytes(&self) -> Vec<u8> {
        let len = self.modulus_len();
        let mut out = Vec::with_capacity(HEADER + 4 + len);
        header(&mut out, Kind::PublicKey);
        out.extend_from_slice(&self.modulus_bits().to_le_bytes());
        push_le(&mut out, self.n(), len);
        out
    }

    /// Reads a public key, refusing moduli under 3072 bits (or over 8192).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PaillierError> {
        let mut r = Reader::open(bytes, Kind::PublicKey)?;
        let bits = r.u32()?;
        check_modulus_bits(bits)?;
        let n = from_le(r.take((bits as usize).div_ceil(8))?);
        r.finish()?;
        if n.significant_bits() != bits {
            return Err(PaillierError::Invalid {
                field: "modulus",
                detail: format!("header says {bits} bits, the modulus has {}", n.significant_bits()),
            });
        }
        Self::from_modulus(n, crate::keys::MIN_MODULUS_BITS)
    }

    /// SHA-256 of [`Self::to_bytes`]: the id a server registers this key under.
    pub fn key_id(&self) -> KeyId {
        KeyId::of_bytes(&self.to_bytes())
    }

    /// Serializes ciphertexts made under this key (with its key id).
    pub fn write_ciphertexts(&self, cts: &[Ciphertext]) -> Vec<u8> {
        let len = self.ciphertext_len();
        let mut out = Vec::with_capacity(HEADER + 36 + cts.len() * len);
        header(&mut out, Kind::Ciphertexts);
        out.extend_from_slice(&self.key_id().0);
        out.extend_from_slice(&(cts.len() as u32).to_le_bytes());
        for c in cts {
            push_le(&mut out, &c.0, len);
        }
        out
    }

    /// Reads ciphertexts, checking they were made for this key and that each is below n² and
    /// invertible.
    pub fn read_ciphertexts(&self, bytes: &[u8]) -> Result<Vec<Ciphertext>, PaillierError> {
        let mut r = Reader::open(bytes, Kind::Ciphertexts)?;
        let id = r.take(32)?;
        let expected = self.key_id();
        if id != expected.0 {
            let mut found = [0u8; 32];
            found.copy_from_slice(id);
            return Err(PaillierError::KeyMismatch { expected: expected.hex(), found: KeyId(found).hex() });
        }
        let count = r.u32()? as usize;
        let len = self.ciphertext_len();
        let needed = count.checked_mul(len).ok_or(PaillierError::Truncated {
            what: "ciphertext batch",
            needed: usize::MAX,
            available: bytes.len(),
        })?;
        if r.remaining() < needed {
            return Err(PaillierError::Truncated {
                what: "ciphertext batch",
                needed: r.pos.saturating_add(needed),
                available: bytes.len(),
            });
        }
        let mut out = Vec::with_capacity(count);
        for index in 0..count {
            let c = from_le(r.take(len)?);
            self.check(&c, index)?;
            out.push(Ciphertext(c));
        }
        r.finish()?;
        Ok(out)
    }
}

#[cfg(feature = "secret-key")]
impl crate::keys::SecretKey {
    /// The primes, for the client's own storage (zeroized when dropped). Never send it.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let bits = self.public_key().modulus_bits();
        let len = (bits as usize).div_ceil(16);
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(HEADER + 4 + 2 * len));
        header(&mut out, Kind::SecretKey);
        out.extend_from_slice(&bits.to_le_bytes());
        let (p, q) = self.primes();
        push_le(&mut out, p, len);
        push_le(&mut out, q, len);
        out
    }

    /// Reads a secret key written by [`Self::to_bytes`] (the primes are re-checked).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PaillierError> {
        let mut r = Reader::open(bytes, Kind::SecretKey)?;
        let bits = r.u32()?;
        check_modulus_bits(bits)?;
        let len = (bits as usize).div_ceil(16);
        let mut p = from_le(r.take(len)?);
        let mut q = from_le(r.take(len)?);
        r.finish()?;
        let key = Self::from_primes(&p, &q);
        crate::bigint::wipe(&mut p);
        crate::bigint::wipe(&mut q);
        let key = key?;
        if key.public_key().modulus_bits() != bits {
            return Err(PaillierError::InvalidKey(format!(
                "header says {bits} bits, the primes make {}",
                key.public_key().modulus_bits()
            )));
        }
        Ok(key)
    }
}
