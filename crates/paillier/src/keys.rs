//! Public key, ciphertexts and (client side, feature `secret-key`) the secret key.
//!
//! The scheme is Paillier's with g = 1 + n, so g^m = 1 + m·n mod n² costs one multiplication.

use rug::Integer;

use crate::error::PaillierError;

/// The smallest modulus accepted: 3072 bits, 128-bit security per NIST SP 800-57 Part 1.
pub const MIN_MODULUS_BITS: u32 = 3072;
/// The largest modulus a reader accepts (bounds what a peer can make us allocate and compute).
pub const MAX_MODULUS_BITS: u32 = 8192;

/// Smallest modulus `SecretKey::generate_insecure` (feature `insecure-test-keys`) makes.
#[cfg_attr(not(feature = "insecure-test-keys"), allow(dead_code))]
pub(crate) const INSECURE_FLOOR_BITS: u32 = 512;

/// Checks a modulus size against the 128-bit bound.
pub(crate) fn check_modulus_bits(bits: u32) -> Result<(), PaillierError> {
    check_modulus_bits_from(bits, MIN_MODULUS_BITS)
}

fn check_modulus_bits_from(bits: u32, floor: u32) -> Result<(), PaillierError> {
    if !(floor..=MAX_MODULUS_BITS).contains(&bits) {
        return Err(PaillierError::ModulusSize { bits, min: MIN_MODULUS_BITS, max: MAX_MODULUS_BITS });
    }
    Ok(())
}

/// A Paillier public key: the modulus n. Everything a server needs.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    n: Integer,
    nn: Integer,
}

impl PublicKey {
    /// A key from its modulus: odd, of at least `floor` bits (3072 everywhere but the
    /// insecure test constructor).
    pub(crate) fn from_modulus(n: Integer, floor: u32) -> Result<Self, PaillierError> {
        check_modulus_bits_from(n.significant_bits(), floor)?;
        if n.is_even() || n.is_perfect_square() {
            return Err(PaillierError::InvalidKey("the modulus must be odd and not a square".into()));
        }
        let nn = Integer::from(n.square_ref());
        Ok(Self { n, nn })
    }

    /// Bits of the modulus n.
    pub fn modulus_bits(&self) -> u32 {
        self.n.significant_bits()
    }

    /// Bytes of one serialized ciphertext (n² in fixed width).
    pub fn ciphertext_len(&self) -> usize {
        2 * self.modulus_len()
    }

    /// Bytes of n in fixed width.
    pub(crate) fn modulus_len(&self) -> usize {
        (self.modulus_bits() as usize).div_ceil(8)
    }

    pub(crate) fn n(&self) -> &Integer {
        &self.n
    }

    pub(crate) fn nn(&self) -> &Integer {
        &self.nn
    }

    /// Checks that `c` is a ciphertext of this key at all: 0 < c < n² and gcd(c, n) = 1.
    pub(crate) fn check(&self, c: &Integer, index: usize) -> Result<(), PaillierError> {
        if *c >= self.nn || *c < 0 {
            return Err(PaillierError::CiphertextOutOfRange { index });
        }
        if Integer::from(c.gcd_ref(&self.n)) != 1 {
            return Err(PaillierError::CiphertextNotInvertible { index });
        }
        Ok(())
    }

    /// `g^m = 1 + m·n mod n²` for a signed m, |m| < n/2.
    pub(crate) fn g_pow(&self, m: &Integer) -> Integer {
        let mut x = Integer::from(m % &self.n);
        if x < 0 {
            x += &self.n;
        }
        x *= &self.n;
        x += 1;
        x
    }

    /// Refuses plaintexts of n/4 or more in magnitude (they would not decode back signed).
    #[cfg(feature = "secret-key")]
    pub(crate) fn check_plaintext(&self, m: &Integer) -> Result<(), PaillierError> {
        if m.significant_bits() + 1 >= self.modulus_bits() {
            return Err(PaillierError::PlaintextRange {
                detail: format!(
                    "|m| has {} bits; a {}-bit key holds signed values below 2^{}",
                    m.significant_bits(),
                    self.modulus_bits(),
                    self.modulus_bits() - 2
                ),
            });
        }
        Ok(())
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} bits)", self.modulus_bits())
    }
}

/// One Paillier ciphertext: an element of Z*_{n²} (checked when read from the wire).
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext(pub(crate) Integer);

impl std::fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ciphertext({} bits)", self.0.significant_bits())
    }
}

#[cfg(feature = "secret-key")]
pub use secret::SecretKey;

#[cfg(feature = "secret-key")]
mod secret {
    use rand_core::{CryptoRng, RngCore};
    use rug::integer::IsPrime;
    use rug::Integer;

    use super::{check_modulus_bits, check_modulus_bits_from, Ciphertext, PublicKey, MIN_MODULUS_BITS};
    use crate::bigint::{random_below, random_bits, wipe, FixedBase};
    use crate::error::PaillierError;

    /// Window of the secret fixed-base tables: 2 × 256 windows × 63 entries of p² at 3072 bits
    /// (≈ 12 MB), one multiplication mod p² per window.
    const ENCRYPT_WINDOW: u32 = 6;

    /// Per prime: everything encryption and decryption modulo p² need.
    struct Half {
        p: Integer,
        pp: Integer,
        p_minus_1: Integer,
        /// L_p((1+n)^(p-1) mod p²)^-1 mod p.
        h: Integer,
        /// A generator of the order-(p-1) subgroup of Z*_{p²} (the n-th residues mod p²).
        g: FixedBase,
    }

    impl Half {
        fn new(p: &Integer, n: &Integer, rng: &mut (impl RngCore + CryptoRng)) -> Result<Self, PaillierError> {
            let pp = Integer::from(p.square_ref());
            let p_minus_1 = Integer::from(p - 1u32);
            let half_order = Integer::from(&p_minus_1 >> 1);
            // (1+n)^(p-1) = 1 + (p-1)·n mod p², so L_p of it is ((p-1)·n mod p²)/p.
            let l = Integer::from(&p_minus_1 * n) % &pp / p;
            let h = l.invert(p).map_err(|_| PaillierError::InvalidKey("n is not invertible modulo a prime".into()))?;
            // a^p lands in the subgroup of order p-1 = 2p'; it generates it unless its order is 1, 2 or p'.
            let gen = loop {
                let a = random_below(rng, &pp);
                let g = Integer::from(a.pow_mod_ref(p, &pp).expect("non-negative exponent"));
                let g2 = Integer::from(g.square_ref()) % &pp;
                let gq = Integer::from(g.pow_mod_ref(&half_order, &pp).expect("non-negative exponent"));
                if g2 != 1 && gq != 1 {
                    break g;
                }
            };
            let g = FixedBase::new(&gen, &pp, p_minus_1.significant_bits(), ENCRYPT_WINDOW, true);
            Ok(Self { p: p.clone(), pp, p_minus_1, h, g })
        }

        /// c mod p² for plaintext m (already reduced mod n) with uniform randomness.
        fn encrypt(&self, m_n_plus_1: &Integer, rng: &mut (impl RngCore + CryptoRng)) -> Integer {
            let mut e = random_below(rng, &self.p_minus_1);
            let mut c = self.g.pow(&e);
            wipe(&mut e);
            c *= Integer::from(m_n_plus_1 % &self.pp);
            c %= &self.pp;
            c
        }

        /// m mod p.
        fn decrypt(&self, c: &Integer) -> Integer {
            let x = Integer::from(c % &self.pp);
            let mut u = x.pow_mod(&self.p_minus_1, &self.pp).expect("non-negative exponent");
            u -= 1;
            u /= &self.p;
            u *= &self.h;
            u %= &self.p;
            u
        }
    }

    impl Drop for Half {
        fn drop(&mut self) {
            for x in [&mut self.p, &mut self.pp, &mut self.p_minus_1, &mut self.h] {
                wipe(x);
            }
        }
    }

    /// A Paillier secret key (the factors of n) with its precomputed tables. Wiped on drop;
    /// never serialized except by [`SecretKey::to_bytes`], which the client stores itself.
    pub struct SecretKey {
        public: PublicKey,
        hp: Half,
        hq: Half,
        /// (p²)^-1 mod q², to join ciphertext halves.
        pp_inv: Integer,
        /// q^-1 mod p, to join plaintext halves.
        q_inv: Integer,
    }

    impl SecretKey {
        /// A fresh 3072-bit key from the operating system's CSPRNG.
        pub fn generate() -> Result<Self, PaillierError> {
            Self::generate_with(&mut rand_core::OsRng, super::MIN_MODULUS_BITS)
        }

        /// A fresh key of `bits` (≥ 3072 unless built with `insecure-test-keys`) from `rng`:
        /// two safe primes of bits/2 bits each, so the n-th residues modulo p² are cyclic
        /// and their generator can be checked, which the fixed-base encryption needs.
        pub fn generate_with(rng: &mut (impl RngCore + CryptoRng), bits: u32) -> Result<Self, PaillierError> {
            check_modulus_bits(bits)?;
            Self::generate_from(rng, bits, MIN_MODULUS_BITS)
        }

        /// A key below the 128-bit bound (at least 512 bits), for fast tests only. Its public
        /// key cannot be read back by [`PublicKey::from_bytes`].
        #[cfg(feature = "insecure-test-keys")]
        pub fn generate_insecure(rng: &mut (impl RngCore + CryptoRng), bits: u32) -> Result<Self, PaillierError> {
            Self::generate_from(rng, bits, super::INSECURE_FLOOR_BITS)
        }

        fn generate_from(rng: &mut (impl RngCore + CryptoRng), bits: u32, floor: u32) -> Result<Self, PaillierError> {
            check_modulus_bits_from(bits, floor)?;
            if bits & 1 == 1 {
                return Err(PaillierError::InvalidKey("the modulus size must be even".into()));
            }
            let mut p = safe_prime(rng, bits / 2);
            let mut q = loop {
                let q = safe_prime(rng, bits / 2);
                if q != p {
                    break q;
                }
            };
            let key = Self::from_primes_with(&p, &q, rng, floor);
            wipe(&mut p);
            wipe(&mut q);
            key
        }

        /// Rebuilds a key from its primes (both safe primes of equal size).
        pub fn from_primes(p: &Integer, q: &Integer) -> Result<Self, PaillierError> {
            Self::from_primes_with(p, q, &mut rand_core::OsRng, MIN_MODULUS_BITS)
        }

        fn from_primes_with(
            p: &Integer,
            q: &Integer,
            rng: &mut (impl RngCore + CryptoRng),
            floor: u32,
        ) -> Result<Self, PaillierError> {
            check_modulus_bits_from(2 * p.significant_bits(), floor)?;
            let bad = |s: &str| PaillierError::InvalidKey(s.into());
            if p == q || p.significant_bits() != q.significant_bits() {
                return Err(bad("p and q must be distinct primes of the same size"));
            }
            for x in [p, q] {
                let half = Integer::from(x >> 1);
                if x.is_probably_prime(30) == IsPrime::No || half.is_probably_prime(30) == IsPrime::No {
                    return Err(bad("p and q must be safe primes (p = 2p'+1 with p' prime)"));
                }
            }
            let public = PublicKey::from_modulus(Integer::from(p * q), floor)?;
            if public.modulus_bits() != 2 * p.significant_bits() {
                return Err(bad("n must have exactly twice the bits of p"));
            }
            let hp = Half::new(p, public.n(), rng)?;
            let hq = Half::new(q, public.n(), rng)?;
            let pp_inv = Integer::from(hp.pp.invert_ref(&hq.pp).ok_or_else(|| bad("p² not invertible mod q²"))?);
            let q_inv = Integer::from(q.invert_ref(p).ok_or_else(|| bad("q not invertible mod p"))?);
            Ok(Self { public, hp, hq, pp_inv, q_inv })
        }

        /// The public key to send to the server.
        pub fn public_key(&self) -> &PublicKey {
            &self.public
        }

        pub(crate) fn primes(&self) -> (&Integer, &Integer) {
            (&self.hp.p, &self.hq.p)
        }

        /// Encrypts a signed integer (|m| < n/4). Uses the factorization: the randomness r^n is
        /// drawn as g_p^a mod p² and g_q^b mod q² from fixed-base tables, exactly the
        /// distribution of r^n for uniform r in Z*_n, at a fraction of the cost.
        pub fn encrypt(&self, m: &Integer, rng: &mut (impl RngCore + CryptoRng)) -> Result<Ciphertext, PaillierError> {
            self.public.check_plaintext(m)?;
            let gm = self.public.g_pow(m);
            let cp = self.hp.encrypt(&gm, rng);
            let cq = self.hq.encrypt(&gm, rng);
            // c = cp + p²·((cq - cp)·(p²)^-1 mod q²)
            let mut t = cq - &cp;
            t *= &self.pp_inv;
            t %= &self.hq.pp;
            if t < 0 {
                t += &self.hq.pp;
            }
            t *= &self.hp.pp;
            t += cp;
            Ok(Ciphertext(t))
        }

        /// Decrypts to the signed plaintext in (-n/2, n/2) (CRT over p and q).
        pub fn decrypt(&self, c: &Ciphertext) -> Result<Integer, PaillierError> {
            self.public.check(&c.0, 0)?;
            let mp = self.hp.decrypt(&c.0);
            let mq = self.hq.decrypt(&c.0);
            // m = mq + q·((mp - mq)·q^-1 mod p)
            let mut t = mp - &mq;
            t *= &self.q_inv;
            t %= &self.hp.p;
            if t < 0 {
                t += &self.hp.p;
            }
            t *= &self.hq.p;
            t += mq;
            let half = Integer::from(self.public.n() >> 1);
            if t > half {
                t -= self.public.n();
            }
            Ok(t)
        }

        /// Decrypts a plaintext the caller knows to satisfy |m| < 2^bound_bits (bound_bits at
        /// most bits(p) − 2), from the p half alone: half the work of [`Self::decrypt`]. A value
        /// outside the bound decrypts to a wrong number, so state a bound that holds.
        pub fn decrypt_bounded(&self, c: &Ciphertext, bound_bits: u32) -> Result<Integer, PaillierError> {
            if bound_bits + 2 > self.hp.p.significant_bits() {
                return Err(PaillierError::PlaintextRange {
                    detail: format!("a bound of 2^{bound_bits} needs the full decryption (use decrypt)"),
                });
            }
            self.public.check(&c.0, 0)?;
            let mut m = self.hp.decrypt(&c.0);
            let half = Integer::from(&self.hp.p >> 1);
            if m > half {
                m -= &self.hp.p;
            }
            Ok(m)
        }
    }

    impl Drop for SecretKey {
        fn drop(&mut self) {
            wipe(&mut self.pp_inv);
            wipe(&mut self.q_inv);
        }
    }

    impl std::fmt::Debug for SecretKey {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SecretKey({} bits, redacted)", self.public.modulus_bits())
        }
    }

    /// Odd primes below 2^15, for the sieve.
    fn small_primes() -> Vec<u32> {
        const LIMIT: usize = 1 << 15;
        let mut composite = vec![false; LIMIT];
        let mut out = Vec::new();
        for i in 3..LIMIT {
            if !composite[i] && i % 2 == 1 {
                out.push(i as u32);
                let mut j = i * i;
                while j < LIMIT {
                    composite[j] = true;
                    j += i;
                }
            }
        }
        out
    }

    /// A random safe prime p = 2p'+1 of exactly `bits` bits (top two bits set, so that n = pq
    /// has exactly 2·bits bits). Sieves 2^16 consecutive odd p' at a time against small primes
    /// dividing p' or 2p'+1, then tests the survivors (Fermat base 2 first, then GMP's
    /// Baillie–PSW plus Miller–Rabin rounds on both).
    fn safe_prime(rng: &mut (impl RngCore + CryptoRng), bits: u32) -> Integer {
        const SPAN: usize = 1 << 16;
        let primes = small_primes();
        let two = Integer::from(2);
        loop {
            let mut s = random_bits(rng, bits - 1);
            s.set_bit(bits - 2, true);
            s.set_bit(bits - 3, true);
            s.set_bit(0, true);
            // candidate k is s + 2k
            let mut dead = vec![false; SPAN];
            for &l in &primes {
                let r = s.mod_u(l) as u64;
                let l64 = l as u64;
                let inv2 = l64.div_ceil(2);
                // s + 2k ≡ 0 and s + 2k ≡ (l-1)/2 (so that 2(s+2k)+1 ≡ 0), mod l
                for target in [0, (l64 - 1) / 2] {
                    let mut k = ((target + l64 - r) % l64 * inv2 % l64) as usize;
                    while k < SPAN {
                        dead[k] = true;
                        k += l as usize;
                    }
                }
            }
            for (k, &d) in dead.iter().enumerate() {
                if d {
                    continue;
                }
                let half = Integer::from(&s + 2 * k as u32);
                let p = Integer::from(&half << 1) + 1u32;
                if p.significant_bits() != bits {
                    break;
                }
                let pm1 = Integer::from(&p - 1u32);
                if Integer::from(two.pow_mod_ref(&pm1, &p).expect("non-negative")) != 1 {
                    continue;
                }
                if half.is_probably_prime(25) != IsPrime::No && p.is_probably_prime(25) != IsPrime::No {
                    return p;
                }
            }
        }
    }
}
