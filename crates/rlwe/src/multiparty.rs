//! Multiparty RLWE: a public key whose secret no single party holds, and decryption by
//! any t of the n committee members (shaped like Lattigo's `multiparty`: each step is a
//! share a party makes, an aggregation anyone can do, and a finalisation).
//!
//! 1. **Collective public key.** From a common random seed (the CRS) every party i
//!    draws the same uniform a and publishes b_i = −a·s_i + e_i; the sum Σ b_i with a is
//!    a public key for s = Σ s_i ([`collective_public_key`]).
//! 2. **Threshold.** Each party Shamir-shares its s_i among the committee with a random
//!    polynomial of degree t − 1 over R_q ([`Party::shamir_shares`]); member j keeps
//!    s'_j = Σ_i f_i(j) ([`ThresholdKey::combine`]). Any t members T then hold additive
//!    shares λ_j·s'_j of s (λ_j the Lagrange coefficients of T at 0).
//! 3. **Decryption shares.** For a ciphertext (c0, c1), member j sends
//!    h_j = λ_j·s'_j·c1 + u_j with u_j uniform in [−B', B'] ("smudging": B' = 2^λ·N·B
//!    for a ciphertext noise bound B, so h_j is within 2^-λ of a value that depends on
//!    the plaintext alone); c0 + Σ h_j = m + e + Σ u_j ([`combine_decryption_shares`],
//!    which needs no secret). A member makes at most one share per ciphertext: two
//!    shares of one ciphertext with fresh smudging would let their difference be
//!    averaged away, so [`ThresholdKey::decryption_share`] refuses a second one.
//!
//! Secrets (s_i, Shamir shares, s'_j) exist only with feature `secret-key`.

use std::collections::BTreeSet;
#[cfg(feature = "secret-key")]
use std::collections::HashSet;

#[cfg(feature = "secret-key")]
use ring::Modulus;
use ring::{Poly, Sampler};
use sha2::{Digest, Sha256};
#[cfg(feature = "secret-key")]
use zeroize::Zeroize;

use crate::encryption::Ciphertext;
use crate::error::{Error, Result};
use crate::keys::PublicKey;
#[cfg(feature = "secret-key")]
use crate::keys::{KeyGenerator, SecretKey};
use crate::params::{Parameters, ERROR_STDDEV};
use crate::plaintext::Plaintext;

/// The uniform half a of the collective public key, over the q chain, from the CRS.
fn crs_poly(params: &Parameters, crs: &[u8; 32]) -> Poly {
    let ctx = params.ctx();
    let moduli: Vec<_> = ctx.moduli[..params.q().len()].iter().collect();
    Sampler::from_seed(*crs).uniform(ctx.n, &moduli)
}

/// One party's part of the collective public key: b_i = −a·s_i + e_i.
#[derive(Clone, Debug)]
pub struct PublicKeyShare {
    pub(crate) params: Parameters,
    pub(crate) party: u32,
    pub(crate) b: Poly,
}

impl PublicKeyShare {
    /// The party that made it.
    pub fn party(&self) -> u32 {
        self.party
    }
}

/// Σ b_i with the CRS's a: a public key for the sum of the parties' secrets. Every party
/// must have contributed exactly once.
pub fn collective_public_key(params: &Parameters, crs: &[u8; 32], shares: &[PublicKeyShare]) -> Result<PublicKey> {
    if shares.is_empty() {
        return Err(shape("public-key shares", "none given"));
    }
    let mut seen = BTreeSet::new();
    let levels = params.q().len();
    let moduli: Vec<_> = params.ctx().moduli[..levels].iter().collect();
    let mut b = Poly::zero(params.n(), levels);
    for s in shares {
        if !params.same(&s.params) {
            return Err(Error::ParamsMismatch);
        }
        if !seen.insert(s.party) {
            return Err(shape("public-key shares", &format!("party {} contributed twice", s.party)));
        }
        b.add_assign(&s.b, &moduli);
    }
    Ok(PublicKey { params: params.clone(), b, a: crs_poly(params, crs), seed: *crs })
}

/// A party of the key generation: its own ternary secret s_i.
#[cfg(feature = "secret-key")]
pub struct Party {
    id: u32,
    sk: SecretKey,
    sampler: Sampler,
}

#[cfg(feature = "secret-key")]
impl Party {
    /// Party `id` (≥ 1: it is also its Shamir evaluation point) with a fresh secret.
    pub fn new(params: &Parameters, id: u32) -> Result<Self> {
        if id == 0 {
            return Err(shape("party id", "0 is the point where the secret sits; number parties from 1"));
        }
        Ok(Self { id, sk: KeyGenerator::new(params).secret_key(), sampler: Sampler::new(ERROR_STDDEV) })
    }

    /// This party's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// b_i = −a·s_i + e_i for the CRS's a.
    pub fn public_key_share(&mut self, crs: &[u8; 32]) -> PublicKeyShare {
        let params = self.sk.params.clone();
        let ctx = params.ctx();
        let levels = params.q().len();
        let moduli: Vec<_> = ctx.moduli[..levels].iter().collect();
        let tables: Vec<_> = ctx.ntt[..levels].iter().collect();
        let mut b = self.sampler.small_poly(ctx.n, &moduli, false);
        b.ntt(&tables);
        let mut s = self.sk.ntt.clone();
        s.truncate(levels);
        let mut a = crs_poly(&params, crs);
        a.mul_assign(&s, &moduli);
        s.zeroize();
        b.sub_assign(&a, &moduli);
        a.zeroize(); // a·s_i
        PublicKeyShare { params, party: self.id, b }
    }

    /// Shamir shares of s_i for the committee: f(j) for each member j, with f of degree
    /// `threshold` − 1, f(0) = s_i and the other coefficients uniform over R_q. Member j
    /// must receive f(j) over a private channel (not this crate's business).
    pub fn shamir_shares(&mut self, committee: &[u32], threshold: usize) -> Result<Vec<ShamirShare>> {
        let params = self.sk.params.clone();
        check_committee(&params, committee, threshold)?;
        let ctx = params.ctx();
        let levels = params.q().len();
        let moduli: Vec<_> = ctx.moduli[..levels].iter().collect();
        let mut s = self.sk.ntt.clone();
        s.truncate(levels);
        let mut coeffs = vec![s];
        for _ in 1..threshold {
            coeffs.push(self.sampler.uniform(ctx.n, &moduli));
        }
        let shares = committee
            .iter()
            .map(|&j| {
                // Horner in the NTT domain: the evaluation point j is a scalar.
                let mut acc = Poly::zero(ctx.n, levels);
                for c in coeffs.iter().rev() {
                    scalar_mul_assign(&mut acc, j as u64, &moduli);
                    acc.add_assign(c, &moduli);
                }
                ShamirShare { params: params.clone(), from: self.id, to: j, poly: acc }
            })
            .collect();
        for c in &mut coeffs {
            c.zeroize();
        }
        Ok(shares)
    }
}

/// f_i(j): what party i sends member j. Wiped on drop.
#[cfg(feature = "secret-key")]
pub struct ShamirShare {
    pub(crate) params: Parameters,
    pub(crate) from: u32,
    pub(crate) to: u32,
    pub(crate) poly: Poly,
}

#[cfg(feature = "secret-key")]
impl ShamirShare {
    /// The party that made it.
    pub fn from(&self) -> u32 {
        self.from
    }
    /// The member it is for.
    pub fn to(&self) -> u32 {
        self.to
    }
}

#[cfg(feature = "secret-key")]
impl Drop for ShamirShare {
    fn drop(&mut self) {
        self.poly.zeroize();
    }
}

/// How wide the smudging noise of a decryption share is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Smudging {
    /// Statistical security λ: each share is within 2^-λ of one that depends on the
    /// plaintext alone.
    pub security_bits: u32,
    /// A bound on |e| per coefficient of the ciphertexts to be decrypted (see
    /// [`sum_noise_bound`]); an underestimate voids the guarantee.
    pub noise_bound: u64,
}

#[cfg(feature = "secret-key")]
impl Smudging {
    /// log2 B', B' ≥ 2^λ · N · B a power of two, or an error when it does not fit the
    /// modulus at `level` with room for `shares` of them and the message.
    fn bits(&self, params: &Parameters, level: usize, shares: usize) -> Result<u32> {
        let bits = self.security_bits as f64 + (params.n() as f64).log2() + (self.noise_bound.max(1) as f64).log2();
        let bits = bits.ceil();
        let total = bits + (shares.max(1) as f64).log2();
        if bits > 120.0 || total + 2.0 > params.log_q_at(level) {
            return Err(shape(
                "smudging",
                &format!(
                    "2^-{} against noise {} needs shares of 2^{bits:.1} noise, beyond the modulus at level {level} \
                     (2^{:.1}); decrypt at a higher level, or use parameters with a larger modulus",
                    self.security_bits,
                    self.noise_bound,
                    params.log_q_at(level)
                ),
            ));
        }
        Ok(bits as u32)
    }
}

/// A high-probability bound on the noise of a sum of `contributions` fresh public-key
/// encryptions under a collective key of `parties` parties: each coefficient of
/// v·e + e0 + e1·s has variance about N·(2/3)·parties·σ²·2 + σ², summed over
/// contributions; 12 standard deviations (a tail below 2^-100 per coefficient).
pub fn sum_noise_bound(params: &Parameters, parties: usize, contributions: usize) -> u64 {
    let var = params.n() as f64 * (2.0 / 3.0) * parties as f64 * ERROR_STDDEV * ERROR_STDDEV * 2.0
        + ERROR_STDDEV * ERROR_STDDEV;
    (12.0 * (var * contributions as f64).sqrt()).ceil() as u64
}

/// A committee member's share of the collective secret, s'_j = Σ_i f_i(j), and the
/// ciphertexts it has already made a decryption share for.
#[cfg(feature = "secret-key")]
pub struct ThresholdKey {
    pub(crate) params: Parameters,
    pub(crate) id: u32,
    pub(crate) threshold: usize,
    pub(crate) committee: Vec<u32>,
    pub(crate) share: Poly,
    pub(crate) shared: HashSet<[u8; 32]>,
    pub(crate) sampler: Sampler,
}

#[cfg(feature = "secret-key")]
impl Drop for ThresholdKey {
    fn drop(&mut self) {
        self.share.zeroize();
    }
}

#[cfg(feature = "secret-key")]
impl ThresholdKey {
    /// Member `id`'s key from the Shamir shares every party sent it (one from each).
    pub fn combine(
        params: &Parameters,
        id: u32,
        committee: &[u32],
        threshold: usize,
        received: &[ShamirShare],
    ) -> Result<Self> {
        check_committee(params, committee, threshold)?;
        if !committee.contains(&id) {
            return Err(shape("threshold key", &format!("member {id} is not in the committee {committee:?}")));
        }
        let levels = params.q().len();
        let moduli: Vec<_> = params.ctx().moduli[..levels].iter().collect();
        let mut from = BTreeSet::new();
        let mut share = Poly::zero(params.n(), levels);
        for r in received {
            if !params.same(&r.params) {
                return Err(Error::ParamsMismatch);
            }
            if r.to != id {
                return Err(shape("Shamir share", &format!("made for member {}, not {id}", r.to)));
            }
            if !from.insert(r.from) {
                return Err(shape("Shamir share", &format!("party {} sent two", r.from)));
            }
            share.add_assign(&r.poly, &moduli);
        }
        if received.is_empty() {
            return Err(shape("Shamir share", "none received"));
        }
        Ok(Self {
            params: params.clone(),
            id,
            threshold,
            committee: committee.to_vec(),
            share,
            shared: HashSet::new(),
            sampler: Sampler::os_seeded(),
        })
    }

    /// This member's id.
    pub fn id(&self) -> u32 {
        self.id
    }
    /// The committee, in order.
    pub fn committee(&self) -> &[u32] {
        &self.committee
    }
    /// Shares needed to decrypt.
    pub fn threshold(&self) -> usize {
        self.threshold
    }
    /// Whether this member has made a decryption share of the ciphertext with this
    /// digest: its key file records each one, so the refusal of a second share survives
    /// a restart of the member's process.
    pub fn has_shared(&self, digest: &[u8; 32]) -> bool {
        self.shared.contains(digest)
    }

    /// h_j = λ_j·s'_j·c1 + u_j for the members `participants` (this one among them, at
    /// least `threshold` of the committee) — at most once per ciphertext.
    pub fn decryption_share(
        &mut self,
        ct: &Ciphertext,
        participants: &[u32],
        smudging: &Smudging,
    ) -> Result<DecryptionShare> {
        if !self.params.same(ct.params()) {
            return Err(Error::ParamsMismatch);
        }
        let set: BTreeSet<u32> = participants.iter().copied().collect();
        if set.len() != participants.len() || !set.contains(&self.id) {
            return Err(shape("participants", "must be distinct and include this member"));
        }
        if set.len() < self.threshold || !set.iter().all(|p| self.committee.contains(p)) {
            return Err(shape(
                "participants",
                &format!("need at least {} members of the committee {:?}", self.threshold, self.committee),
            ));
        }
        let digest = ciphertext_digest(ct);
        if self.shared.contains(&digest) {
            return Err(Error::SecondShare { member: self.id });
        }
        let level = ct.level();
        let ctx = self.params.ctx();
        let moduli: Vec<_> = ctx.moduli[..=level].iter().collect();
        let tables: Vec<_> = ctx.ntt[..=level].iter().collect();
        let bits = smudging.bits(&self.params, level, set.len())?;
        let mut s = self.share.clone();
        s.truncate(level + 1);
        for (i, m) in moduli.iter().enumerate() {
            let lambda = lagrange_at_zero(m, self.id, &set);
            for x in s.limb_mut(i) {
                *x = m.mul(*x, lambda);
            }
        }
        let (_, c1) = ct.parts();
        let mut h = c1.clone();
        h.mul_assign(&s, &moduli);
        s.zeroize();
        let mut u = self.sampler.uniform_signed(ctx.n, bits);
        let mut noise = Poly::from_signed_wide(&u, &moduli);
        u.zeroize();
        noise.ntt(&tables);
        h.add_assign(&noise, &moduli);
        noise.zeroize();
        self.shared.insert(digest);
        Ok(DecryptionShare { params: self.params.clone(), member: self.id, participants: set, ciphertext: digest, h })
    }
}

/// One member's decryption share of one ciphertext, for one set of participants.
#[derive(Clone, Debug)]
pub struct DecryptionShare {
    pub(crate) params: Parameters,
    pub(crate) member: u32,
    pub(crate) participants: BTreeSet<u32>,
    pub(crate) ciphertext: [u8; 32],
    pub(crate) h: Poly,
}

impl DecryptionShare {
    /// The member that made it.
    pub fn member(&self) -> u32 {
        self.member
    }
    /// SHA-256 of the wire form of the ciphertext it decrypts.
    pub fn ciphertext(&self) -> &[u8; 32] {
        &self.ciphertext
    }
    /// The participants whose Lagrange coefficients it was made with.
    pub fn participants(&self) -> impl Iterator<Item = u32> + '_ {
        self.participants.iter().copied()
    }
}

/// c0 + Σ h_j = m + e + Σ u_j: the plaintext, from the shares of exactly the
/// participants they were made for (each once). Needs no secret: the server runs it.
pub fn combine_decryption_shares(ct: &Ciphertext, shares: &[DecryptionShare]) -> Result<Plaintext> {
    let first = shares.first().ok_or_else(|| shape("decryption shares", "none given"))?;
    let digest = ciphertext_digest(ct);
    let params = ct.params();
    let level = ct.level();
    let moduli: Vec<_> = params.ctx().moduli[..=level].iter().collect();
    let mut members = BTreeSet::new();
    let (c0, _) = ct.parts();
    let mut m = c0.clone();
    for s in shares {
        if !params.same(&s.params) {
            return Err(Error::ParamsMismatch);
        }
        if s.ciphertext != digest {
            return Err(shape("decryption share", &format!("member {} shared another ciphertext", s.member)));
        }
        if s.participants != first.participants {
            return Err(shape("decryption shares", "made for different sets of participants"));
        }
        if !members.insert(s.member) {
            return Err(Error::SecondShare { member: s.member });
        }
        m.add_assign(&s.h, &moduli);
    }
    if members != first.participants {
        let missing: Vec<_> = first.participants.difference(&members).collect();
        return Err(shape(
            "decryption shares",
            &format!("missing the shares of {missing:?}: the Lagrange coefficients need all of them"),
        ));
    }
    Plaintext::new(params, m, ct.scale())
}

/// SHA-256 of a ciphertext's wire form: how shares name what they decrypt.
pub fn ciphertext_digest(ct: &Ciphertext) -> [u8; 32] {
    Sha256::digest(ct.to_bytes()).into()
}

#[cfg(feature = "secret-key")]
fn check_committee(params: &Parameters, committee: &[u32], threshold: usize) -> Result<()> {
    let set: BTreeSet<u32> = committee.iter().copied().collect();
    if set.len() != committee.len() || set.contains(&0) {
        return Err(shape("committee", "members must be distinct and numbered from 1"));
    }
    if threshold == 0 || threshold > committee.len() {
        return Err(shape("threshold", &format!("{threshold} of {} members", committee.len())));
    }
    // Every difference of evaluation points must be invertible mod each prime.
    if let Some(&max) = set.last() {
        if params.q().iter().any(|&q| max as u64 >= q) {
            return Err(shape("committee", "member ids must be below every prime"));
        }
    }
    Ok(())
}

#[cfg(feature = "secret-key")]
/// λ_j = Π_{k ∈ T, k ≠ j} k / (k − j) mod q.
fn lagrange_at_zero(m: &Modulus, j: u32, set: &BTreeSet<u32>) -> u64 {
    let (mut num, mut den) = (1u64, 1u64);
    for &k in set.iter().filter(|&&k| k != j) {
        num = m.mul(num, k as u64);
        den = m.mul(den, m.sub(k as u64, j as u64));
    }
    m.mul(num, m.inv(den))
}

#[cfg(feature = "secret-key")]
fn scalar_mul_assign(p: &mut Poly, c: u64, moduli: &[&Modulus]) {
    for (i, m) in moduli.iter().enumerate() {
        let c = m.reduce(c);
        for x in p.limb_mut(i) {
            *x = m.mul(*x, c);
        }
    }
}

fn shape(what: &'static str, detail: &str) -> Error {
    Error::Protocol { what, detail: detail.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encryption::{Decryptor, Encryptor};

    fn params() -> Parameters {
        // Two 60-bit primes: sums decrypt at the top level (2^120), where smudging has room.
        Parameters::builder().log_n(13).q_bits(&[60, 60]).p_bits(&[60]).build().unwrap()
    }

    /// Integer vectors as polynomial coefficients times Δ.
    fn encode(params: &Parameters, v: &[i64], delta: u128) -> Plaintext {
        let ctx = params.ctx();
        let level = params.max_level();
        let moduli: Vec<_> = ctx.moduli[..=level].iter().collect();
        let mut p = Poly::zero(params.n(), level + 1);
        for (i, m) in moduli.iter().enumerate() {
            for (o, &x) in p.limb_mut(i).iter_mut().zip(v) {
                *o = m.mul(m.reduce_i64(x), m.reduce_u128(delta));
            }
        }
        p.ntt(&ctx.ntt[..=level].iter().collect::<Vec<_>>());
        Plaintext::new(params, p, delta as f64).unwrap()
    }

    /// Coefficients of a plaintext over two primes, divided by Δ and rounded.
    fn decode(params: &Parameters, pt: &Plaintext, delta: u128, len: usize) -> Vec<i64> {
        let ctx = params.ctx();
        let mut p = pt.poly().clone();
        p.intt(&ctx.ntt[..=pt.level()].iter().collect::<Vec<_>>());
        // CRT of the first two limbs is enough: |m·Δ + noise| < q0·q1/2.
        let (q0, q1) = (&ctx.moduli[0], &ctx.moduli[1]);
        let inv = q1.inv(q1.reduce(q0.value()));
        (0..len)
            .map(|k| {
                let (a, b) = (p.limb(0)[k], p.limb(1)[k]);
                let t = q1.mul(q1.sub(b, q1.reduce(a)), inv);
                let big = a as i128 + q0.value() as i128 * t as i128;
                let qq = q0.value() as i128 * q1.value() as i128;
                let c = if big > qq / 2 { big - qq } else { big };
                ((c as f64) / delta as f64).round() as i64
            })
            .collect()
    }

    struct World {
        params: Parameters,
        pk: PublicKey,
        members: Vec<ThresholdKey>,
    }

    fn world(n: u32, t: usize) -> World {
        let params = params();
        let crs = [9u8; 32];
        let mut parties: Vec<Party> = (1..=n).map(|i| Party::new(&params, i).unwrap()).collect();
        let shares: Vec<_> = parties.iter_mut().map(|p| p.public_key_share(&crs)).collect();
        let pk = collective_public_key(&params, &crs, &shares).unwrap();
        let committee: Vec<u32> = (1..=n).collect();
        let mut inbox: Vec<Vec<ShamirShare>> = (0..n).map(|_| Vec::new()).collect();
        for p in &mut parties {
            for s in p.shamir_shares(&committee, t).unwrap() {
                inbox[s.to() as usize - 1].push(s);
            }
        }
        let members = inbox
            .iter()
            .enumerate()
            .map(|(j, got)| ThresholdKey::combine(&params, j as u32 + 1, &committee, t, got).unwrap())
            .collect();
        World { params, pk, members }
    }

    /// The ceremony through the wire, as separate processes would run it: public-key
    /// shares and Shamir shares as bytes, each member's key saved and read back — and a
    /// member read back after sharing a ciphertext still refuses a second share of it.
    #[test]
    fn the_ceremony_and_the_member_files_go_through_the_wire() {
        let params = params();
        let crs = [4u8; 32];
        let committee = [1u32, 2, 3];
        let mut parties: Vec<Party> = committee.iter().map(|&i| Party::new(&params, i).unwrap()).collect();
        let pk_bytes: Vec<Vec<u8>> = parties.iter_mut().map(|p| p.public_key_share(&crs).to_bytes()).collect();
        let pk_shares: Vec<_> = pk_bytes.iter().map(|b| PublicKeyShare::from_bytes(&params, b).unwrap()).collect();
        assert!(PublicKeyShare::from_bytes(&params, &pk_bytes[0][..pk_bytes[0].len() - 1]).is_err());
        let pk = collective_public_key(&params, &crs, &pk_shares).unwrap();
        let mut mail: Vec<Vec<zeroize::Zeroizing<Vec<u8>>>> = vec![Vec::new(); 3];
        for p in &mut parties {
            for sh in p.shamir_shares(&committee, 2).unwrap() {
                mail[sh.to() as usize - 1].push(sh.to_bytes());
            }
        }
        let mut files: Vec<zeroize::Zeroizing<Vec<u8>>> = mail
            .iter()
            .enumerate()
            .map(|(j, got)| {
                let got: Vec<_> = got.iter().map(|b| ShamirShare::from_bytes(&params, b).unwrap()).collect();
                ThresholdKey::combine(&params, j as u32 + 1, &committee, 2, &got).unwrap().to_bytes()
            })
            .collect();
        // A Shamir share is not a public-key share, nor the other way round.
        assert!(matches!(PublicKeyShare::from_bytes(&params, &mail[0][0]), Err(crate::WireError::WrongKind { .. })));

        let delta = 1u128 << 90;
        let v: Vec<i64> = (0..32).map(|k| k * 3 - 40).collect();
        let ct = Encryptor::new(&pk).encrypt(&encode(&params, &v, delta)).unwrap();
        let smudging = Smudging { security_bits: 40, noise_bound: sum_noise_bound(&params, 3, 1) };
        let set = [1u32, 3];
        let mut shares = Vec::new();
        for &j in &set {
            let mut key = ThresholdKey::from_bytes(&params, &files[j as usize - 1]).unwrap();
            assert_eq!((key.id(), key.threshold(), key.committee()), (j, 2, &committee[..]));
            shares.push(key.decryption_share(&ct, &set, &smudging).unwrap());
            assert!(key.has_shared(&ciphertext_digest(&ct)));
            files[j as usize - 1] = key.to_bytes();
        }
        let pt = combine_decryption_shares(&ct, &shares).unwrap();
        assert_eq!(decode(&params, &pt, delta, v.len()), v);
        // Read back from its file, member 1 still refuses to share the ciphertext again.
        let mut again = ThresholdKey::from_bytes(&params, &files[0]).unwrap();
        assert!(matches!(again.decryption_share(&ct, &set, &smudging), Err(Error::SecondShare { member: 1 })));
        let f = &files[0];
        assert!(ThresholdKey::from_bytes(&params, &f[..f.len() - 1]).is_err());
    }

    #[test]
    fn any_three_of_five_decrypt_the_exact_sum_and_two_cannot() {
        let w = world(5, 3);
        let delta = 1u128 << 90;
        // 12 contributors; the sum is what the server computes.
        let len = 64;
        let vectors: Vec<Vec<i64>> =
            (0..12).map(|c| (0..len).map(|k| ((c * 37 + k * 11) % 201) as i64 - 100).collect()).collect();
        let mut sum: Option<Ciphertext> = None;
        for v in &vectors {
            let ct = Encryptor::new(&w.pk).encrypt(&encode(&w.params, v, delta)).unwrap();
            sum = Some(match sum {
                None => ct,
                Some(mut s) => {
                    let moduli: Vec<_> = w.params.ctx().moduli[..=s.level()].iter().collect();
                    let (a0, a1) = s.parts_mut();
                    let (b0, b1) = ct.parts();
                    a0.add_assign(b0, &moduli);
                    a1.add_assign(b1, &moduli);
                    s
                }
            });
        }
        let sum = sum.unwrap();
        let expected: Vec<i64> = (0..len).map(|k| vectors.iter().map(|v| v[k as usize]).sum()).collect();
        let smudging = Smudging { security_bits: 40, noise_bound: sum_noise_bound(&w.params, 5, 12) };
        let mut members = w.members;
        for set in [[1u32, 2, 3], [2, 4, 5], [1, 3, 5]] {
            // Fresh ciphertext per set: a member shares a ciphertext once.
            let ct =
                Ciphertext::from_parts(&w.params, sum.parts().0.clone(), sum.parts().1.clone(), delta as f64).unwrap();
            let mut ct = ct;
            // Re-randomise so each set decrypts a distinct ciphertext (what a new round would be).
            let zero = Encryptor::new(&w.pk).encrypt(&encode(&w.params, &[0], delta)).unwrap();
            let moduli: Vec<_> = w.params.ctx().moduli[..=ct.level()].iter().collect();
            let (a0, a1) = ct.parts_mut();
            a0.add_assign(zero.parts().0, &moduli);
            a1.add_assign(zero.parts().1, &moduli);
            let shares: Vec<_> =
                set.iter().map(|&j| members[j as usize - 1].decryption_share(&ct, &set, &smudging).unwrap()).collect();
            // Through the wire and back, as the server receives them.
            let shares: Vec<_> = shares
                .iter()
                .map(|s| {
                    let bytes = s.to_bytes();
                    assert_eq!(bytes.len(), w.params.decryption_share_bytes(ct.level(), set.len()));
                    assert!(DecryptionShare::from_bytes(&w.params, &bytes[..bytes.len() - 1]).is_err());
                    DecryptionShare::from_bytes(&w.params, &bytes).unwrap()
                })
                .collect();
            let pt = combine_decryption_shares(&ct, &shares).unwrap();
            assert_eq!(decode(&w.params, &pt, delta, len as usize), expected, "set {set:?}");
            // A second share of the same ciphertext is refused by the member.
            assert!(matches!(
                members[set[0] as usize - 1].decryption_share(&ct, &set, &smudging),
                Err(Error::SecondShare { .. })
            ));
            // The server refuses a share twice, and an incomplete set.
            let twice = [shares[0].clone(), shares[0].clone(), shares[1].clone()];
            assert!(matches!(combine_decryption_shares(&ct, &twice), Err(Error::SecondShare { .. })));
            assert!(combine_decryption_shares(&ct, &shares[..2]).is_err());
        }
        // Two members are below the threshold: they cannot even make shares for their pair.
        let ct = Encryptor::new(&w.pk).encrypt(&encode(&w.params, &[1], delta)).unwrap();
        assert!(members[0].decryption_share(&ct, &[1, 2], &smudging).is_err());
    }

    #[test]
    fn shares_of_fewer_than_threshold_members_do_not_decrypt() {
        // Two members pretending to be a full set (Lagrange over {1, 2}) with a 3-of-5
        // sharing: the result is noise, not the message.
        let w = world(5, 3);
        let delta = 1u128 << 90;
        let msg: Vec<i64> = (0..32).map(|k| k - 16).collect();
        let ct = Encryptor::new(&w.pk).encrypt(&encode(&w.params, &msg, delta)).unwrap();
        let mut two: Vec<ThresholdKey> = w.members.into_iter().take(2).collect();
        for m in &mut two {
            m.threshold = 2; // a forged threshold: the shares still come from degree-2 polynomials
        }
        let smudging = Smudging { security_bits: 40, noise_bound: sum_noise_bound(&w.params, 5, 1) };
        let shares: Vec<_> = (0..2).map(|i| two[i].decryption_share(&ct, &[1, 2], &smudging).unwrap()).collect();
        let pt = combine_decryption_shares(&ct, &shares).unwrap();
        assert_ne!(decode(&w.params, &pt, delta, 32), msg);
    }

    #[test]
    fn the_collective_key_is_a_key_for_the_sum_of_secrets() {
        // n-of-n: the sum of the parties' own secrets decrypts (checked with a secret key
        // built from that sum, which no real party ever holds).
        let params = params();
        let crs = [3u8; 32];
        let mut parties: Vec<Party> = (1..=3).map(|i| Party::new(&params, i).unwrap()).collect();
        let shares: Vec<_> = parties.iter_mut().map(|p| p.public_key_share(&crs)).collect();
        let pk = collective_public_key(&params, &crs, &shares).unwrap();
        assert!(collective_public_key(&params, &crs, &[shares[0].clone(), shares[0].clone()]).is_err());
        let coeffs: Vec<i64> = (0..params.n()).map(|k| parties.iter().map(|p| p.sk.coeffs[k]).sum()).collect();
        let sk = SecretKey::from_coeffs(&params, coeffs);
        let delta = 1u128 << 50;
        let msg: Vec<i64> = (0..16).map(|k| 3 * k - 20).collect();
        let ct = Encryptor::new(&pk).encrypt(&encode(&params, &msg, delta)).unwrap();
        let pt = Decryptor::new(&sk).decrypt(&ct).unwrap();
        assert_eq!(decode(&params, &pt, delta, 16), msg);
        // The public key's wire form carries the CRS as its seed: it reads back the same.
        let back = PublicKey::from_bytes(&params, &pk.to_bytes()).unwrap();
        assert_eq!(back.b, pk.b);
        assert_eq!(back.a, pk.a);
    }

    #[test]
    fn smudging_that_does_not_fit_is_refused() {
        let w = world(3, 2);
        let mut m = w.members.into_iter().next().unwrap();
        let ct = Encryptor::new(&w.pk).encrypt(&encode(&w.params, &[1], 1 << 40)).unwrap();
        let too_wide = Smudging { security_bits: 80, noise_bound: 1 << 30 };
        assert!(matches!(m.decryption_share(&ct, &[1, 2], &too_wide), Err(Error::Protocol { what: "smudging", .. })));
        // A refused share does not count as made.
        let ok = Smudging { security_bits: 40, noise_bound: 1 << 10 };
        assert!(m.decryption_share(&ct, &[1, 2], &ok).is_ok());
    }
}
