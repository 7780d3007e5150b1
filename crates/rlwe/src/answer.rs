//! Compact answers: the ciphertext a server returns, cut to the part that holds the
//! outputs and switched to the smallest modulus that keeps their precision.
//!
//! An answer at level 0 is (c0, c1) over N coefficients of one prime q0. Two cuts:
//!
//! - **Fold to a subring.** When the answer's slots repeat with a period dividing N'/2,
//!   its message lies (up to noise) in the subring Z[X^d], d = N/N': a slot vector fixed
//!   by the rotation by N'/2 is fixed by X → X^k for every k ≡ 1 mod 2N', and that ring
//!   is spanned by the powers of X^d. Switched (one hybrid key switch, [`AnswerKey`]) to
//!   a key s'(X^d) of the subring itself, the answer's coefficients at the multiples of d
//!   are a ciphertext of degree N' under s' on their own: in c1·s'(X^d) a coefficient
//!   j·d reads only c1's coefficients at multiples of d. The client decodes N'/2 slots,
//!   the first period of the N/2 the server computed. s' is derived from the client's
//!   secret (SHA-256 of it, then ChaCha20): nothing more to store.
//! - **Switch the modulus** from q0 to 2^log_q: each coefficient rounded to
//!   round(c·2^log_q/q0), the scale multiplied by 2^log_q/q0 (Δ' = Δ·2^log_q/q0). The
//!   rounding adds noise of about sqrt(N'/18) at the new scale; the compiler picks
//!   log_q so that this stays below the output precision it reports.
//!
//! Security. The key is an RLWE sample in degree N with a secret of the subring, which
//! is d samples of RLWE in degree N' with secret s', at the key's modulus q0·P; the
//! answer is one at 2^log_q. Both moduli must pass the 128-bit bound at N'
//! ([`AnswerShape::check`]), which is what sets N' (2^12 holds 106 bits).

use crate::encryption::Ciphertext;
use crate::error::{Error, Result};
use crate::keys::AnswerKey;
use crate::keyswitch::{self, Addend};
use crate::params::Parameters;
use crate::security::max_log_qp;

/// Where an answer is cut to: its ring degree and modulus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerShape {
    /// log2 N' (at most the parameters' log2 N). Below it the answer is folded, which
    /// needs an [`AnswerKey`] and slots that repeat with a period dividing N'/2.
    pub log_n: u32,
    /// The answer's modulus is 2^log_q.
    pub log_q: u32,
}

impl AnswerShape {
    /// Whether the answer is folded into a subring (and so needs an [`AnswerKey`]).
    pub fn folds(&self, params: &Parameters) -> bool {
        self.log_n < params.log_n()
    }

    /// The degree N'.
    pub fn n(&self) -> usize {
        1 << self.log_n
    }

    /// The scale of an answer whose level-0 scale is `scale`: Δ·2^log_q/q0.
    pub fn scale(&self, params: &Parameters, scale: f64) -> f64 {
        scale * 2f64.powi(self.log_q as i32) / params.q()[0] as f64
    }

    /// log2 of the modulus q0·P an [`AnswerKey`] lives at.
    pub fn key_log_qp(params: &Parameters) -> f64 {
        (params.q()[0] as f64).log2() + params.p().iter().map(|&p| (p as f64).log2()).sum::<f64>()
    }

    /// The smallest N' (as log2) whose 128-bit bound holds the answer key's modulus:
    /// the smallest an answer of these parameters can be folded to.
    pub fn min_log_n(params: &Parameters) -> u32 {
        let need = Self::key_log_qp(params);
        (10..params.log_n()).find(|&l| max_log_qp(l).is_some_and(|b| need <= b as f64)).unwrap_or(params.log_n())
    }

    /// Refuses a shape these parameters cannot give with 128-bit security, or that would
    /// not be smaller.
    pub fn check(&self, params: &Parameters) -> Result<()> {
        let shape = |detail: String| Error::Shape { what: "compact answer", detail };
        let q0_bits = 64 - params.q()[0].leading_zeros();
        if self.log_n > params.log_n() || self.log_n < 10 {
            return Err(shape(format!(
                "degree 2^{} outside 2^10..=2^{} (the parameters' N)",
                self.log_n,
                params.log_n()
            )));
        }
        if self.log_q < 8 || self.log_q >= q0_bits {
            return Err(shape(format!(
                "modulus 2^{} outside 2^8..2^{} (below the last prime, {q0_bits} bits)",
                self.log_q,
                q0_bits - 1
            )));
        }
        let bound = max_log_qp(self.log_n).unwrap_or(0) as f64;
        if self.log_q as f64 > bound {
            return Err(shape(format!(
                "modulus 2^{} is above the 128-bit bound 2^{bound} for degree 2^{}",
                self.log_q, self.log_n
            )));
        }
        if self.folds(params) && Self::key_log_qp(params) > bound {
            return Err(shape(format!(
                "the answer key's modulus q0·P (2^{:.1}) is above the 128-bit bound 2^{bound} for degree 2^{}: \
                 fold to 2^{} at least",
                Self::key_log_qp(params),
                self.log_n,
                Self::min_log_n(params)
            )));
        }
        Ok(())
    }
}

/// An answer cut to [`AnswerShape`]: c0 and c1 of degree N', coefficient form, modulo
/// 2^log_q, at scale Δ'.
#[derive(Clone, Debug, PartialEq)]
pub struct CompactAnswer {
    pub(crate) params: Parameters,
    pub(crate) shape: AnswerShape,
    pub(crate) scale: f64,
    pub(crate) c0: Vec<u64>,
    pub(crate) c1: Vec<u64>,
}

impl CompactAnswer {
    /// The shape it was cut to.
    pub fn shape(&self) -> AnswerShape {
        self.shape
    }
    /// Δ' = Δ·2^log_q/q0.
    pub fn scale(&self) -> f64 {
        self.scale
    }
    /// The parameter set of the ciphertext it was cut from.
    pub fn params(&self) -> &Parameters {
        &self.params
    }

    /// Cuts `ct` to `shape`: down to level 0, folded with `key` if the shape asks for a
    /// smaller degree, then switched to 2^log_q.
    pub fn from_ciphertext(ct: &Ciphertext, shape: AnswerShape, key: Option<&AnswerKey>) -> Result<Self> {
        let params = ct.params().clone();
        shape.check(&params)?;
        let ctx = params.ctx();
        let t0 = &ctx.ntt[0];
        let (c0, c1) = ct.parts();
        // Level 0 is limb 0 of each half: dropping levels is dropping limbs.
        let mut d0 = ring::Poly::zero(ctx.n, 1);
        let mut d1 = ring::Poly::zero(ctx.n, 1);
        d0.limb_mut(0).copy_from_slice(c0.limb(0));
        d1.limb_mut(0).copy_from_slice(c1.limb(0));
        if shape.folds(&params) {
            let key = key.ok_or_else(|| Error::Shape {
                what: "compact answer",
                detail: format!("folding to degree 2^{} needs the client's answer key", shape.log_n),
            })?;
            if !key.key.params.same(&params) {
                return Err(Error::ParamsMismatch);
            }
            if key.log_n != shape.log_n {
                return Err(Error::Shape {
                    what: "answer key",
                    detail: format!("it folds to degree 2^{}, the model's answers to 2^{}", key.log_n, shape.log_n),
                });
            }
            let dec = keyswitch::decompose(&params, &d1, 0);
            let (s0, s1) =
                keyswitch::switch(&params, &dec, &key.key, [Addend::Poly(&d0), Addend::Products(&[])], None)?;
            d0 = s0;
            d1 = s1;
        }
        t0.inverse(d0.limb_mut(0));
        t0.inverse(d1.limb_mut(0));
        let d = ctx.n >> shape.log_n;
        let q0 = params.q()[0];
        let switch = |c: &[u64]| -> Vec<u64> {
            let mask = (1u64 << shape.log_q) - 1;
            c.iter()
                .step_by(d)
                .map(|&x| {
                    // round(x·2^k/q0) for x in [0, q0): exact in 128 bits; x ≡ x − q0 after the
                    // switch since q0·2^k/q0 = 2^k vanishes modulo 2^k.
                    let r = ((x as u128) << shape.log_q).wrapping_add(q0 as u128 / 2) / q0 as u128;
                    r as u64 & mask
                })
                .collect()
        };
        let (a0, a1) = (switch(d0.limb(0)), switch(d1.limb(0)));
        Ok(CompactAnswer { scale: shape.scale(&params, ct.scale()), shape, c0: a0, c1: a1, params })
    }
}

/// The subring secret s' of degree N' = 2^log_n derived from the client's secret: a
/// ternary polynomial from ChaCha20 seeded by SHA-256 of a label, log_n and s.
#[cfg(feature = "secret-key")]
pub(crate) fn subring_secret(sk: &crate::keys::SecretKey, log_n: u32) -> zeroize::Zeroizing<Vec<i64>> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"heinfer answer subring secret v1");
    h.update([log_n as u8]);
    let mut bytes: zeroize::Zeroizing<Vec<u8>> = zeroize::Zeroizing::new(sk.coeffs.iter().map(|&c| c as u8).collect());
    h.update(&bytes[..]);
    zeroize::Zeroize::zeroize(&mut *bytes);
    let mut seed: [u8; 32] = h.finalize().into();
    let s = ring::Sampler::from_seed(seed).ternary(1 << log_n);
    zeroize::Zeroize::zeroize(&mut seed);
    zeroize::Zeroizing::new(s)
}

#[cfg(feature = "secret-key")]
impl crate::encryption::Decryptor<'_> {
    /// The phase c0 + c1·s' of a compact answer, centered modulo 2^log_q: the message
    /// times Δ', plus noise. Coefficient i of a folded answer is coefficient i·N/N' of
    /// the full one.
    pub fn decrypt_answer(&self, answer: &CompactAnswer) -> Result<Vec<i64>> {
        if !self.sk.params.same(&answer.params) {
            return Err(Error::ParamsMismatch);
        }
        let shape = answer.shape;
        let own;
        let s: &[i64] = if shape.folds(&answer.params) {
            own = subring_secret(self.sk, shape.log_n);
            &own
        } else {
            &self.sk.coeffs
        };
        let mut phase = ring::ternary::mul_ternary(&answer.c1, s);
        let k = shape.log_q;
        let out = phase
            .iter()
            .zip(&answer.c0)
            .map(|(&p, &c)| {
                let x = p.wrapping_add(c) & ((1u64 << k) - 1);
                // centered: [−2^(k−1), 2^(k−1))
                (x as i64) - (((x >> (k - 1)) as i64) << k)
            })
            .collect();
        zeroize::Zeroize::zeroize(&mut phase);
        Ok(out)
    }
}

#[cfg(feature = "secret-key")]
impl crate::keys::KeyGenerator {
    /// The key that folds answers into degree 2^log_n (see the module's text), for
    /// ciphertexts at level 0.
    pub fn answer_key(&mut self, sk: &crate::keys::SecretKey, log_n: u32) -> Result<AnswerKey> {
        let params = sk.params.clone();
        AnswerShape { log_n, log_q: 8 }.check(&params).map_err(|e| match e {
            Error::Shape { detail, .. } => Error::Shape { what: "answer key", detail },
            e => e,
        })?;
        if log_n >= params.log_n() {
            return Err(Error::Shape {
                what: "answer key",
                detail: format!("degree 2^{log_n} is not below the parameters' 2^{}", params.log_n()),
            });
        }
        let d = params.n() >> log_n;
        let sub = subring_secret(sk, log_n);
        let mut embedded = vec![0i64; params.n()];
        for (j, &v) in sub.iter().enumerate() {
            embedded[j * d] = v;
        }
        // The key decrypts under the subring secret to P·s: it switches s → s'(X^d).
        let target = crate::keys::SecretKey::from_coeffs(&params, embedded);
        // Always in the set itself, never a key basis: answers are switched under it.
        let key = crate::keys::keyswitch_key_in(&params, self.sampler_mut(), &target, &sk.ntt, 0);
        Ok(AnswerKey { log_n, key })
    }
}
