//! Encryption (public-key, and seeded symmetric), decryption, key generation, and the
//! measured noise the tests hold the estimates to.
//!
//! A plaintext m is encrypted as the RLWE encryption of t⁻¹·m (mod Q): multiplied by t,
//! c0 + c1·s is m + t·e, the BGV relation, with the keys and encryption of `rlwe`.

use ring::Poly;

use crate::ciphertext::Ciphertext;
#[cfg(feature = "secret-key")]
use crate::ciphertext::SeededCiphertext;
use crate::encoding::Plaintext;
use crate::error::Result;
use crate::noise;
use crate::params::Parameters;

/// t⁻¹·m over q_0..q_level (NTT form), as an RLWE plaintext.
fn scaled_down(params: &Parameters, pt: &Plaintext) -> Result<rlwe::Plaintext> {
    let mut poly = pt.lifted_at(pt.level).into_owned();
    mul_consts(params, &mut poly, &params.tables().t_inv_mod_q);
    Ok(rlwe::Plaintext::new(params.rlwe(), poly, 1.0)?)
}

/// Multiplies limb i by the constant `c[i]` (with Shoup companion).
pub(crate) fn mul_consts(params: &Parameters, p: &mut Poly, c: &[(u64, u64)]) {
    let ctx = params.rlwe().ctx();
    let n = ctx.n;
    for (i, limb) in p.data_mut().chunks_mut(n).enumerate() {
        let m = &ctx.moduli[i];
        let (w, ws) = c[i];
        for x in limb.iter_mut() {
            *x = m.mul_shoup(*x, w, ws);
        }
    }
}

/// x = t·phase mod Q_l in coefficient form, from a phase c0 + c1·s (NTT form).
fn phase_to_noisy(params: &Parameters, mut x: Poly, level: usize) -> Poly {
    mul_consts(params, &mut x, &params.tables().t_mod_q);
    let ctx = params.rlwe().ctx();
    x.intt(&ctx.ntt[..=level].iter().collect::<Vec<_>>());
    x
}

/// x mod t (x centered modulo Q_l, exactly), divided by the factor f.
fn noisy_to_plaintext(params: &Parameters, x: &Poly, level: usize, factor: u64) -> Plaintext {
    let tb = params.tables();
    let n = params.n();
    let input: Vec<&[u64]> = x.data().chunks(n).collect();
    let mut out = vec![0u64; n];
    let mut scratch = Poly::scratch(n, level + 1);
    tb.to_t[level].convert(&tb.ext_moduli, &input, &mut [&mut out[..]], scratch.data_mut(), &[]);
    let t = &tb.t;
    let f_inv = t.inv(factor);
    let f_inv_s = t.shoup(f_inv);
    for v in out.iter_mut() {
        *v = t.mul_shoup(*v, f_inv, f_inv_s);
    }
    let l1 = out.iter().map(|&c| crate::encoding::center(c, t.value()).unsigned_abs() as f64).sum();
    Plaintext { params: params.clone(), coeffs: out, level, lifted: None, l1 }
}

/// The plaintext of a ciphertext with factor `factor` from its phase c0 + c1·s (NTT form,
/// its level read from its limbs) computed without any one secret key — the combination
/// of a committee's decryption shares (`rlwe::multiparty`), whose smudging noise u adds
/// t·u to x and so vanishes modulo t as long as x + t·u stays below Q_l/2 (the shares'
/// width is sized for that).
pub fn decrypt_from_phase(params: &Parameters, phase: &rlwe::Plaintext, factor: u64) -> Result<Plaintext> {
    if !params.rlwe().same(phase.params()) {
        return Err(rlwe::Error::ParamsMismatch.into());
    }
    let limbs = phase.poly().data().len() / params.n();
    if limbs == 0 || limbs > params.max_level() + 1 || factor == 0 || factor >= params.plaintext_modulus() {
        return Err(rlwe::Error::ParamsMismatch.into());
    }
    let x = phase_to_noisy(params, phase.poly().clone(), limbs - 1);
    Ok(noisy_to_plaintext(params, &x, limbs - 1, factor))
}

fn check_params(a: &Parameters, b: &Parameters) -> Result<()> {
    if a.same(b) {
        Ok(())
    } else {
        Err(rlwe::Error::ParamsMismatch.into())
    }
}

/// Public-key encryption: anyone holding the public key can encrypt.
pub struct Encryptor {
    params: Parameters,
    inner: rlwe::Encryptor,
}

impl Encryptor {
    /// An encryptor under `pk`, its randomness from the operating system.
    pub fn new(params: &Parameters, pk: &rlwe::PublicKey) -> Result<Self> {
        if !params.rlwe().same(pk.params()) {
            return Err(rlwe::Error::ParamsMismatch.into());
        }
        Ok(Self { params: params.clone(), inner: rlwe::Encryptor::new(pk) })
    }

    /// Encrypts `pt` at its level; the noise bound is t·(v·e + e0 + e1·s) + ‖m‖.
    pub fn encrypt(&mut self, pt: &Plaintext) -> Result<Ciphertext> {
        check_params(&self.params, &pt.params)?;
        let ct = self.inner.encrypt(&scaled_down(&self.params, pt)?)?;
        let log_noise = noise::log_add(noise::fresh_public(&self.params), pt.l1.max(1.0).log2());
        Ok(Ciphertext::new(&self.params, ct, 1, log_noise))
    }
}

/// Generates the keys of a BGV set: they are `rlwe`'s (BGV needs nothing else of them).
#[cfg(feature = "secret-key")]
pub struct KeyGenerator {
    inner: rlwe::KeyGenerator,
}

#[cfg(feature = "secret-key")]
impl KeyGenerator {
    /// A generator for keys under `params`.
    pub fn new(params: &Parameters) -> Self {
        Self { inner: rlwe::KeyGenerator::new(params.rlwe()) }
    }
    /// A fresh uniform ternary secret.
    pub fn secret_key(&mut self) -> rlwe::SecretKey {
        self.inner.secret_key()
    }
    /// The public key of `sk`.
    pub fn public_key(&mut self, sk: &rlwe::SecretKey) -> rlwe::PublicKey {
        self.inner.public_key(sk)
    }
    /// The relinearisation key, which ciphertext products need.
    pub fn relin_key(&mut self, sk: &rlwe::SecretKey) -> rlwe::RelinKey {
        self.inner.relin_key(sk)
    }
    /// Galois keys for column rotations by each of `steps` (left; negative: right) and,
    /// if `row_swap`, for swapping the rows.
    pub fn galois_keys(&mut self, sk: &rlwe::SecretKey, steps: &[i64], row_swap: bool) -> rlwe::GaloisKeys {
        self.inner.galois_keys(sk, steps, row_swap)
    }
    /// The bundle a client registers with a server.
    pub fn evaluation_keys(
        &mut self,
        sk: &rlwe::SecretKey,
        steps: &[i64],
        row_swap: bool,
        relin: bool,
    ) -> rlwe::EvaluationKeys {
        self.inner.evaluation_keys(sk, steps, row_swap, relin)
    }
}

/// Decryption, symmetric encryption and the measured noise, with the secret key.
#[cfg(feature = "secret-key")]
pub struct Decryptor<'a> {
    params: Parameters,
    inner: rlwe::Decryptor<'a>,
}

#[cfg(feature = "secret-key")]
impl<'a> Decryptor<'a> {
    /// A decryptor with `sk`, borrowed.
    pub fn new(params: &Parameters, sk: &'a rlwe::SecretKey) -> Result<Self> {
        if !params.rlwe().same(sk.params()) {
            return Err(rlwe::Error::ParamsMismatch.into());
        }
        Ok(Self { params: params.clone(), inner: rlwe::Decryptor::new(sk) })
    }

    /// x = t·(c0 + c1·s) mod Q_l, in coefficient form.
    fn noisy_coeffs(&self, ct: &Ciphertext) -> Result<Poly> {
        check_params(&self.params, &ct.params)?;
        Ok(phase_to_noisy(&self.params, self.inner.decrypt(&ct.inner)?.into_poly(), ct.level()))
    }

    /// The plaintext: x mod t (x taken centered modulo Q_l, exactly), divided by the factor.
    pub fn decrypt(&self, ct: &Ciphertext) -> Result<Plaintext> {
        let x = self.noisy_coeffs(ct)?;
        Ok(noisy_to_plaintext(&self.params, &x, ct.level(), ct.factor))
    }

    /// Symmetric encryption: c1 drawn from a fresh seed and kept as the seed, so the
    /// result is half the size of a public-key ciphertext; the noise bound is t·e + ‖m‖.
    pub fn encrypt_symmetric(&mut self, pt: &Plaintext) -> Result<SeededCiphertext> {
        check_params(&self.params, &pt.params)?;
        let inner = self.inner.encrypt_symmetric(&scaled_down(&self.params, pt)?)?;
        let log_noise = noise::log_add(noise::fresh_symmetric(&self.params), pt.l1.max(1.0).log2());
        Ok(SeededCiphertext { params: self.params.clone(), inner, log_noise })
    }

    /// The noise budget measured with the secret key: log2(Q_l / 2) − log2 ‖x‖_∞, x the
    /// exact centered value of t·(c0 + c1·s) mod Q_l. Never below what
    /// [`Ciphertext::noise_budget_bits`] estimates (the estimate bounds ‖x‖ from above).
    pub fn measured_noise_budget(&self, ct: &Ciphertext) -> Result<f64> {
        use num_bigint::BigUint;
        use num_traits::{ToPrimitive, Zero};
        let x = self.noisy_coeffs(ct)?;
        let level = ct.level();
        let q = &self.params.q()[..=level];
        let big_q: BigUint = q.iter().map(|&p| BigUint::from(p)).product();
        let half = &big_q >> 1u32;
        // CRT: x = Σ_i x_i·(Q/q_i)·[(Q/q_i)⁻¹]_{q_i} mod Q.
        let consts: Vec<BigUint> = q
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let m = &self.params.rlwe().ctx().moduli[i];
                let hat = &big_q / p;
                let hat_mod = (&hat % p).to_u64().unwrap_or(0);
                hat * m.inv(hat_mod)
            })
            .collect();
        let n = self.params.n();
        let mut max = BigUint::zero();
        for k in 0..n {
            let mut v = BigUint::zero();
            for (i, c) in consts.iter().enumerate() {
                v += c * x.limb(i)[k];
            }
            v %= &big_q;
            let centered = if v > half { &big_q - v } else { v };
            if centered > max {
                max = centered;
            }
        }
        let log_max = if max.is_zero() { 0.0 } else { max.to_f64().unwrap_or(f64::INFINITY).log2() };
        Ok(self.params.log_q_at(level) - 1.0 - log_max)
    }
}
