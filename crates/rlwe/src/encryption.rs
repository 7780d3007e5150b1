//! Ciphertexts, encryption (public-key, and seeded symmetric) and decryption of ring
//! elements (plaintexts the schemes' encoders made).

use crate::error::{Error, Result};
use crate::keys::PublicKey;
#[cfg(feature = "secret-key")]
use crate::keys::SecretKey;
use crate::params::{Parameters, ERROR_STDDEV};
use crate::plaintext::{check_scale, Plaintext};
#[cfg(feature = "secret-key")]
use ring::fresh_seed;
use ring::Poly;
use ring::Sampler;
use zeroize::Zeroize;

/// A ciphertext (c0, c1) in NTT form: it knows its parameters, level and scale.
#[derive(Clone, Debug, PartialEq)]
pub struct Ciphertext {
    pub(crate) params: Parameters,
    pub(crate) c0: Poly,
    pub(crate) c1: Poly,
    pub(crate) scale: f64,
}

impl Ciphertext {
    /// Number of rescales left.
    pub fn level(&self) -> usize {
        self.c0.limbs() - 1
    }
    /// The scale Δ the message was multiplied by.
    pub fn scale(&self) -> f64 {
        self.scale
    }
    /// The parameter set.
    pub fn params(&self) -> &Parameters {
        &self.params
    }
    /// A ciphertext from its two halves (NTT form over q_0..q_level). Both must have the
    /// same number of limbs, at most the chain's, and the set's ring degree.
    pub fn from_parts(params: &Parameters, c0: Poly, c1: Poly, scale: f64) -> Result<Self> {
        check_scale(scale)?;
        let limbs = c0.limbs();
        if c1.limbs() != limbs || limbs == 0 || limbs > params.q().len() || c0.n() != params.n() || c1.n() != params.n()
        {
            let detail = format!(
                "halves of {} and {} limbs and degrees {} and {} (need equal limbs, 1..={}, degree {})",
                limbs,
                c1.limbs(),
                c0.n(),
                c1.n(),
                params.q().len(),
                params.n()
            );
            return Err(Error::Shape { what: "a ciphertext", detail });
        }
        Ok(Self { params: params.clone(), c0, c1, scale })
    }
    /// The two halves (c0, c1).
    pub fn parts(&self) -> (&Poly, &Poly) {
        (&self.c0, &self.c1)
    }
    /// The two halves, writable. Callers keep both at the same number of limbs.
    pub fn parts_mut(&mut self) -> (&mut Poly, &mut Poly) {
        (&mut self.c0, &mut self.c1)
    }
    /// Overrides the recorded scale (e.g. after multiplying by a known integer factor).
    pub fn set_scale(&mut self, scale: f64) -> Result<()> {
        check_scale(scale)?;
        self.scale = scale;
        Ok(())
    }
}

/// A fresh symmetric ciphertext whose c1 is the expansion of a 32-byte seed:
/// half the size on the wire.
#[derive(Clone, Debug, PartialEq)]
pub struct SeededCiphertext {
    pub(crate) params: Parameters,
    pub(crate) c0: Poly,
    pub(crate) seed: [u8; 32],
    pub(crate) scale: f64,
}

impl SeededCiphertext {
    /// Number of rescales left.
    pub fn level(&self) -> usize {
        self.c0.limbs() - 1
    }
    /// The scale Δ the message was multiplied by.
    pub fn scale(&self) -> f64 {
        self.scale
    }
    /// Re-derives c1 from the seed.
    pub fn expand(&self) -> Ciphertext {
        let ctx = self.params.ctx();
        let moduli: Vec<_> = ctx.moduli[..=self.level()].iter().collect();
        let c1 = Sampler::from_seed(self.seed).uniform(ctx.n, &moduli);
        Ciphertext { params: self.params.clone(), c0: self.c0.clone(), c1, scale: self.scale }
    }
}

/// Public-key encryption: anyone holding the public key can encrypt.
pub struct Encryptor {
    pk: PublicKey,
    sampler: Sampler,
}

impl Encryptor {
    /// An encryptor under `pk`, its randomness from the operating system.
    pub fn new(pk: &PublicKey) -> Self {
        Self { pk: pk.clone(), sampler: Sampler::new(ERROR_STDDEV) }
    }

    /// (v·b + e0 + m, v·a + e1) with v ternary and e0, e1 Gaussian.
    pub fn encrypt(&mut self, pt: &Plaintext) -> Result<Ciphertext> {
        let params = &self.pk.params;
        if !params.same(&pt.params) {
            return Err(Error::ParamsMismatch);
        }
        let ctx = params.ctx();
        let level = pt.level();
        let moduli: Vec<_> = ctx.moduli[..=level].iter().collect();
        let tables: Vec<_> = ctx.ntt[..=level].iter().collect();
        let n = ctx.n;
        let mut v = self.sampler.small_poly(n, &moduli, true);
        let mut c0 = self.sampler.small_poly(n, &moduli, false);
        let mut c1 = self.sampler.small_poly(n, &moduli, false);
        rayon::join(|| v.ntt(&tables), || rayon::join(|| c0.ntt(&tables), || c1.ntt(&tables)));
        c0.mul_add_assign(&v, &self.pk.b, &moduli);
        c0.add_assign(&pt.poly, &moduli);
        c1.mul_add_assign(&v, &self.pk.a, &moduli);
        // v alone would decrypt the message from the ciphertext: wiped before its buffer is pooled.
        v.zeroize();
        Ok(Ciphertext { params: params.clone(), c0, c1, scale: pt.scale })
    }
}

/// Decryption, and symmetric encryption, with the secret key.
#[cfg(feature = "secret-key")]
pub struct Decryptor<'a> {
    pub(crate) sk: &'a SecretKey,
    pub(crate) sampler: Sampler,
}

#[cfg(feature = "secret-key")]
impl<'a> Decryptor<'a> {
    /// A decryptor with `sk`, borrowed: the key is not copied.
    pub fn new(sk: &'a SecretKey) -> Self {
        Self { sk, sampler: Sampler::new(ERROR_STDDEV) }
    }

    /// m ≈ c0 + c1·s
    pub fn decrypt(&self, ct: &Ciphertext) -> Result<Plaintext> {
        let params = &self.sk.params;
        if !params.same(&ct.params) {
            return Err(Error::ParamsMismatch);
        }
        let moduli: Vec<_> = params.ctx().moduli[..=ct.level()].iter().collect();
        let mut m = ct.c0.clone();
        m.mul_add_assign(&ct.c1, &self.sk.ntt, &moduli);
        Ok(Plaintext { params: params.clone(), poly: m, scale: ct.scale })
    }

    /// Symmetric encryption (-a·s + e + m, a) with a drawn from a fresh seed, kept in
    /// place of a: the result is half the size of a public-key ciphertext.
    pub fn encrypt_symmetric(&mut self, pt: &Plaintext) -> Result<SeededCiphertext> {
        let params = &self.sk.params;
        if !params.same(&pt.params) {
            return Err(Error::ParamsMismatch);
        }
        let ctx = params.ctx();
        let level = pt.level();
        let moduli: Vec<_> = ctx.moduli[..=level].iter().collect();
        let tables: Vec<_> = ctx.ntt[..=level].iter().collect();
        let seed = fresh_seed();
        let mut a = Sampler::from_seed(seed).uniform(ctx.n, &moduli);
        let mut c0 = self.sampler.small_poly(ctx.n, &moduli, false);
        c0.ntt(&tables);
        c0.add_assign(&pt.poly, &moduli);
        a.mul_assign(&self.sk.ntt, &moduli);
        c0.sub_assign(&a, &moduli);
        a.zeroize(); // a·s
        Ok(SeededCiphertext { params: params.clone(), c0, seed, scale: pt.scale })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scheme crates build ciphertexts from parts: halves that disagree with each other or
    /// with the parameters are a typed `Shape` error, never a ciphertext whose level lies.
    #[test]
    fn from_parts_refuses_halves_that_do_not_fit() {
        let params = Parameters::builder().log_n(12).q_bits(&[30, 25]).p_bits(&[30]).build().unwrap();
        let n = params.n();
        let ok = Ciphertext::from_parts(&params, Poly::zero(n, 2), Poly::zero(n, 2), 2f64.powi(20)).unwrap();
        assert_eq!(ok.level(), 1);
        for (c0, c1) in [
            (Poly::zero(n, 2), Poly::zero(n, 1)),
            (Poly::zero(n, 3), Poly::zero(n, 3)),
            (Poly::zero(n / 2, 2), Poly::zero(n / 2, 2)),
        ] {
            let err = Ciphertext::from_parts(&params, c0, c1, 2f64.powi(20)).unwrap_err();
            assert!(matches!(err, Error::Shape { what: "a ciphertext", .. }), "{err}");
        }
        let err = Plaintext::new(&params, Poly::zero(n, 3), 2f64.powi(20)).unwrap_err();
        assert!(matches!(err, Error::Shape { what: "a plaintext", .. }), "{err}");
    }
}
