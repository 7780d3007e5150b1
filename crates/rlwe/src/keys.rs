//! Keys: the ternary secret (client only), the public key, and key-switching keys
//! (relinearization, Galois) in the hybrid form of Han–Ki: `dnum` digits over the
//! basis Q·P, each digit's uniform half drawn from a 32-byte seed.

use std::collections::BTreeMap;

#[cfg(feature = "secret-key")]
use zeroize::Zeroize;

use crate::params::Parameters;
#[cfg(feature = "secret-key")]
use crate::params::ERROR_STDDEV;
#[cfg(feature = "secret-key")]
use ring::fresh_seed;
use ring::{Poly, Sampler};

/// The secret key: a uniform ternary polynomial. Zeroized on drop, never serialized
/// except to the owner's own file (see `wire`).
#[cfg(feature = "secret-key")]
pub struct SecretKey {
    pub(crate) params: Parameters,
    /// coefficients in {-1, 0, 1}
    pub(crate) coeffs: Vec<i64>,
    /// NTT form over every prime, q chain then special primes
    pub(crate) ntt: Poly,
}

#[cfg(feature = "secret-key")]
impl Drop for SecretKey {
    fn drop(&mut self) {
        self.coeffs.zeroize();
        self.ntt.zeroize();
    }
}

#[cfg(feature = "secret-key")]
impl SecretKey {
    pub(crate) fn from_coeffs(params: &Parameters, coeffs: Vec<i64>) -> Self {
        let ctx = params.ctx();
        let moduli: Vec<_> = ctx.moduli.iter().collect();
        let mut ntt = Poly::from_signed(&coeffs, &moduli);
        ntt.ntt(&ctx.ntt.iter().collect::<Vec<_>>());
        Self { params: params.clone(), coeffs, ntt }
    }
    /// The parameter set.
    pub fn params(&self) -> &Parameters {
        &self.params
    }
    /// The same secret under `params`, a set of the same ring (`Parameters::same_ring`):
    /// one secret for the residues of a plan in several plaintext moduli.
    pub fn under(&self, params: &Parameters) -> Result<Self, crate::Error> {
        same_ring(&self.params, params)?;
        Ok(Self { params: params.clone(), coeffs: self.coeffs.clone(), ntt: self.ntt.clone() })
    }
}

/// `ParamsMismatch` unless `to` has `from`'s ring, chain, special primes and digits.
fn same_ring(from: &Parameters, to: &Parameters) -> Result<(), crate::Error> {
    if from.same_ring(to) {
        Ok(())
    } else {
        Err(crate::Error::ParamsMismatch)
    }
}

#[cfg(feature = "secret-key")]
impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Public key (b, a) = (-a·s + e, a) over the q chain.
#[derive(Clone, Debug, PartialEq)]
pub struct PublicKey {
    pub(crate) params: Parameters,
    pub(crate) b: Poly,
    pub(crate) a: Poly,
    pub(crate) seed: [u8; 32],
}

impl PublicKey {
    /// The parameter set.
    pub fn params(&self) -> &Parameters {
        &self.params
    }
    /// The same key under `params`, a set of the same ring (`Parameters::same_ring`).
    pub fn under(&self, params: &Parameters) -> Result<Self, crate::Error> {
        same_ring(&self.params, params)?;
        Ok(Self { params: params.clone(), ..self.clone() })
    }
}

/// Switches a ciphertext component from some key s' to the secret s.
///
/// A key may stop below the top level: with d digits it covers the first min(d·α, L) q
/// primes and the special primes (its limbs, in that order; `key_primes`), and serves
/// ciphertexts up to level min(d·α, L) − 1. A client makes each key only as high as the
/// model uses it, which is most of the bytes it uploads for keys used deep in a network.
#[derive(Clone, Debug, PartialEq)]
pub struct KeySwitchKey {
    pub(crate) params: Parameters,
    /// per digit, over the key's primes (`key_primes`), NTT form
    pub(crate) b: Vec<Poly>,
    pub(crate) a: Vec<Poly>,
    /// What `key_dot` reads beside b and a (`ring::kernels::key_companion`: Shoup companions, or the
    /// words as doubles for primes the ring carries as doubles); memory only, re-derived on load
    pub(crate) bp: Vec<Poly>,
    pub(crate) ap: Vec<Poly>,
    pub(crate) seed: [u8; 32],
}

impl KeySwitchKey {
    pub(crate) fn new(params: &Parameters, b: Vec<Poly>, a: Vec<Poly>, seed: [u8; 32]) -> Self {
        let ctx = params.ctx();
        let primes = key_primes(params, b.len());
        let companions = |polys: &[Poly]| -> Vec<Poly> {
            polys
                .iter()
                .map(|p| {
                    let mut c = p.clone();
                    for (i, m) in primes.iter().map(|&j| &ctx.moduli[j]).enumerate() {
                        for x in c.limb_mut(i) {
                            *x = ring::kernels::key_companion(*x, m);
                        }
                    }
                    c
                })
                .collect()
        };
        let (bp, ap) = (companions(&b), companions(&a));
        Self { params: params.clone(), b, a, bp, ap, seed }
    }

    /// The parameter set.
    pub fn params(&self) -> &Parameters {
        &self.params
    }
    /// Number of digits: ⌈L/α⌉ for L ciphertext primes and α per digit, which can be
    /// fewer than `dnum` (5 primes with dnum = 4 make α = 2 and 3 digits).
    pub fn digits(&self) -> usize {
        self.b.len()
    }
    /// The highest ciphertext level the key can switch: min(digits·α, L) − 1.
    pub fn max_level(&self) -> usize {
        key_q_limbs(&self.params, self.b.len()) - 1
    }
    /// Index among the key's limbs of `prime` (an index into the parameters' moduli: q chain
    /// then special primes); `prime` must be one of `key_primes`.
    pub(crate) fn limb_of(&self, prime: usize) -> usize {
        let l = self.params.q().len();
        if prime < l {
            prime
        } else {
            prime - l + key_q_limbs(&self.params, self.b.len())
        }
    }

    /// The same key with every polynomial (and companion) permuted.
    pub(crate) fn permuted(&self, perm: &[u32]) -> Self {
        let p = |v: &[Poly]| v.iter().map(|x| x.permute(perm)).collect();
        Self {
            params: self.params.clone(),
            b: p(&self.b),
            a: p(&self.a),
            bp: p(&self.bp),
            ap: p(&self.ap),
            seed: self.seed,
        }
    }
}

/// Relinearization key: switches s² to s.
#[derive(Clone, Debug, PartialEq)]
pub struct RelinKey(pub(crate) KeySwitchKey);

impl RelinKey {
    /// The key-switching key s² → s.
    pub fn key(&self) -> &KeySwitchKey {
        &self.0
    }
    /// The same key under `params`, a set of the same ring (`Parameters::same_ring`): the
    /// key depends only on the secret and the primes.
    pub fn under(&self, params: &Parameters) -> Result<Self, crate::Error> {
        same_ring(&self.0.params, params)?;
        Ok(Self(KeySwitchKey { params: params.clone(), ..self.0.clone() }))
    }
}

/// Galois keys, by Galois element. In memory each key is held permuted by σ⁻¹
/// (see `eval`); the wire form is the canonical one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GaloisKeys {
    pub(crate) keys: BTreeMap<u64, KeySwitchKey>,
}

impl GaloisKeys {
    /// The key of a Galois element (`Parameters::galois_element`), held permuted by σ⁻¹.
    pub fn get(&self, element: u64) -> Option<&KeySwitchKey> {
        self.keys.get(&element)
    }
    /// The Galois elements held, in increasing order.
    pub fn elements(&self) -> impl Iterator<Item = u64> + '_ {
        self.keys.keys().copied()
    }
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The hybrid key that switches a level-0 answer from the client's secret s to
/// s'(X^{N/N'}) (made by `KeyGenerator::answer_key`, sent in the evaluation-key bundle;
/// what it is for: `answer`).
#[derive(Clone, Debug, PartialEq)]
pub struct AnswerKey {
    pub(crate) log_n: u32,
    pub(crate) key: KeySwitchKey,
}

impl AnswerKey {
    /// log2 N' of the subring this key folds into.
    pub fn log_n(&self) -> u32 {
        self.log_n
    }
    /// The parameter set.
    pub fn params(&self) -> &Parameters {
        &self.key.params
    }
}

/// Everything a server needs to evaluate for one client: the public evaluation keys.
#[derive(Clone, Debug, PartialEq)]
pub struct EvaluationKeys {
    /// The set the keys were made under.
    pub params: Parameters,
    /// The relinearization key, if the client asked for ciphertext products.
    pub relin: Option<RelinKey>,
    /// The rotation and conjugation keys.
    pub galois: GaloisKeys,
    /// The client's public key, for models compiled with circuit privacy: the server
    /// encrypts zero under it to flood the answer's noise. None otherwise.
    pub public: Option<PublicKey>,
    /// The key that folds answers into a subring, for models compiled with compact
    /// answers of a smaller degree (`answer`). None otherwise.
    pub answer: Option<AnswerKey>,
}

impl EvaluationKeys {
    /// Bytes held in memory (both halves of every key and their companions).
    pub fn memory_bytes(&self) -> usize {
        let per_key = |k: &KeySwitchKey| {
            k.b.iter().chain(&k.a).chain(&k.bp).chain(&k.ap).map(|p| p.data().len() * 8).sum::<usize>()
        };
        let public = self.public.as_ref().map_or(0, |pk| (pk.a.data().len() + pk.b.data().len()) * 8);
        self.relin.as_ref().map_or(0, |r| per_key(&r.0))
            + self.galois.keys.values().map(per_key).sum::<usize>()
            + public
            + self.answer.as_ref().map_or(0, |a| per_key(&a.key))
    }

    /// Whether the bundle can rotate by `step` slots.
    pub fn has_rotation(&self, step: i64) -> bool {
        step.rem_euclid(self.params.slots() as i64) == 0 || self.galois.get(self.params.galois_element(step)).is_some()
    }
}

/// Generates keys from a CSPRNG seeded by the operating system.
#[cfg(feature = "secret-key")]
pub struct KeyGenerator {
    params: Parameters,
    sampler: Sampler,
}

#[cfg(feature = "secret-key")]
impl KeyGenerator {
    /// A generator for keys under `params`.
    pub fn new(params: &Parameters) -> Self {
        Self { params: params.clone(), sampler: Sampler::new(ERROR_STDDEV) }
    }

    pub(crate) fn sampler_mut(&mut self) -> &mut Sampler {
        &mut self.sampler
    }

    /// A fresh uniform ternary secret.
    pub fn secret_key(&mut self) -> SecretKey {
        let coeffs = self.sampler.ternary(self.params.n());
        SecretKey::from_coeffs(&self.params, coeffs)
    }

    /// The public key of `sk`; its uniform half comes from a fresh seed.
    pub fn public_key(&mut self, sk: &SecretKey) -> PublicKey {
        let ctx = self.params.ctx();
        let levels = self.params.q().len();
        let moduli: Vec<_> = ctx.moduli[..levels].iter().collect();
        let tables: Vec<_> = ctx.ntt[..levels].iter().collect();
        let seed = fresh_seed();
        let a = Sampler::from_seed(seed).uniform(ctx.n, &moduli);
        let mut b = self.sampler.small_poly(ctx.n, &moduli, false);
        b.ntt(&tables);
        let mut as_ = a.clone();
        let mut s = sk.ntt.clone();
        s.truncate(levels);
        as_.mul_assign(&s, &moduli);
        s.zeroize();
        b.sub_assign(&as_, &moduli);
        as_.zeroize(); // a·s
        PublicKey { params: self.params.clone(), b, a, seed }
    }

    /// The relinearization key of `sk` (s² → s), which ciphertext products need.
    pub fn relin_key(&mut self, sk: &SecretKey) -> RelinKey {
        self.relin_key_at(sk, self.params.max_level())
    }

    /// A relinearization key for products at levels up to `level` only (fewer bytes).
    pub fn relin_key_at(&mut self, sk: &SecretKey, level: usize) -> RelinKey {
        let square = |s: &SecretKey| {
            let moduli: Vec<_> = s.params.ctx().moduli.iter().collect();
            let mut s2 = s.ntt.clone();
            s2.mul_assign(&s.ntt, &moduli);
            s2
        };
        RelinKey(self.keyswitch_key(sk, level.min(self.params.max_level()), square))
    }

    /// Galois keys for left rotations by each of `steps` (negative: right) and, if
    /// asked, for complex conjugation. Steps that are multiples of N/2 need none.
    pub fn galois_keys(&mut self, sk: &SecretKey, steps: &[i64], conjugation: bool) -> GaloisKeys {
        let top = self.params.max_level();
        let at: Vec<(i64, usize)> = steps.iter().map(|&s| (s, top)).collect();
        self.galois_keys_at(sk, &at, conjugation.then_some(top))
    }

    /// Galois keys for left rotations by `(step, level)`, each serving ciphertexts up to
    /// its level only (a step listed twice gets the higher), and for conjugation up to a
    /// level if asked.
    pub fn galois_keys_at(&mut self, sk: &SecretKey, steps: &[(i64, usize)], conjugation: Option<usize>) -> GaloisKeys {
        self.galois_keys_with(sk, steps, conjugation, &[])
    }

    /// [`KeyGenerator::galois_keys_at`], plus keys for Galois elements named directly
    /// (`(element, level)`, e.g. `packing::packing_elements` for compact queries).
    pub fn galois_keys_with(
        &mut self,
        sk: &SecretKey,
        steps: &[(i64, usize)],
        conjugation: Option<usize>,
        elements_at: &[(u64, usize)],
    ) -> GaloisKeys {
        let top = self.params.max_level();
        let mut elements: BTreeMap<u64, usize> = BTreeMap::new();
        let wanted = steps
            .iter()
            .filter(|(s, _)| s.rem_euclid(self.params.slots() as i64) != 0)
            .map(|&(s, l)| (self.params.galois_element(s), l))
            .chain(conjugation.map(|l| (self.params.conjugation_element(), l)))
            .chain(elements_at.iter().copied().filter(|&(g, _)| g != 1));
        for (g, l) in wanted {
            let e = elements.entry(g).or_insert(0);
            *e = (*e).max(l.min(top));
        }
        let mut keys = BTreeMap::new();
        for (g, level) in elements {
            let params = self.params.clone();
            let ctx = params.ctx();
            // The permutation depends on N alone: the same in every key basis.
            let perm = ctx.galois_perm(g);
            let canonical = self.keyswitch_key(sk, level, |s| s.ntt.permute(&perm));
            keys.insert(g, canonical.permuted(&ctx.galois_perm(ctx.galois_inverse(g))));
        }
        GaloisKeys { keys }
    }

    /// The bundle a client registers with a server.
    pub fn evaluation_keys(&mut self, sk: &SecretKey, steps: &[i64], conjugation: bool, relin: bool) -> EvaluationKeys {
        EvaluationKeys {
            params: self.params.clone(),
            relin: relin.then(|| self.relin_key(sk)),
            galois: self.galois_keys(sk, steps, conjugation),
            public: None,
            answer: None,
        }
    }

    /// Key switching s' → `sk` for ciphertexts up to `level`, with s' = `s_prime(sk)` in
    /// NTT form over every prime of the set the key is made in: the key basis of `level`
    /// where the set has one (`Parameters::key_basis_at`), else this set.
    pub(crate) fn keyswitch_key(
        &mut self,
        sk: &SecretKey,
        level: usize,
        s_prime: impl Fn(&SecretKey) -> Poly,
    ) -> KeySwitchKey {
        match self.params.key_basis_at(level).cloned() {
            Some(basis) => {
                // The same secret, its residues over the basis's primes.
                let sk_b = SecretKey::from_coeffs(&basis, sk.coeffs.clone());
                let mut sp = s_prime(&sk_b);
                let k = keyswitch_key_in(&basis, &mut self.sampler, &sk_b, &sp, level);
                sp.zeroize();
                k
            }
            None => {
                let mut sp = s_prime(sk);
                let k = keyswitch_key_in(&self.params, &mut self.sampler, sk, &sp, level);
                sp.zeroize();
                k
            }
        }
    }
}

/// Key switching s' → `sk` under `params` for ciphertexts up to `level`, with s' in NTT
/// form over every prime of `params`.
#[cfg(feature = "secret-key")]
pub(crate) fn keyswitch_key_in(
    params: &Parameters,
    sampler: &mut Sampler,
    sk: &SecretKey,
    s_prime: &Poly,
    level: usize,
) -> KeySwitchKey {
    {
        let ctx = params.ctx();
        let levels = params.q().len();
        let moduli: Vec<_> = ctx.moduli.iter().collect();
        let tables: Vec<_> = ctx.ntt.iter().collect();
        let digits = digits_for_level(params, level);
        let primes = key_primes(params, digits);
        let seed = fresh_seed();
        // Computed over every prime (the secret is), then cut to the key's primes.
        let mut stream = Sampler::from_seed(seed);
        let mut bs = Vec::with_capacity(digits);
        let mut a = Vec::with_capacity(digits);
        for d in 0..digits {
            let a_d = stream.uniform(ctx.n, &moduli);
            let mut b = sampler.small_poly(ctx.n, &moduli, false);
            b.ntt(&tables);
            let mut as_ = a_d.clone();
            as_.mul_assign(&sk.ntt, &moduli);
            b.sub_assign(&as_, &moduli);
            as_.zeroize(); // a·s
            for i in d * ctx.alpha..((d + 1) * ctx.alpha).min(levels) {
                let m = &ctx.moduli[i];
                let (pm, pms) = ctx.p_mod_q[i];
                let src = s_prime.limb(i);
                for (o, &s) in b.limb_mut(i).iter_mut().zip(src) {
                    *o = m.add(*o, m.mul_shoup(s, pm, pms));
                }
            }
            bs.push(select_limbs(&b, &primes));
            a.push(select_limbs(&a_d, &primes));
        }
        KeySwitchKey::new(params, bs, a, seed)
    }
}

/// Digits of a key serving ciphertexts up to `level`: ⌈(level + 1)/α⌉, at most the full count.
pub fn digits_for_level(params: &Parameters, level: usize) -> usize {
    let l = params.q().len();
    (level + 1).min(l).div_ceil(params.ctx().alpha)
}

/// Number of q primes a key of `digits` digits covers.
pub(crate) fn key_q_limbs(params: &Parameters, digits: usize) -> usize {
    (digits * params.ctx().alpha).min(params.q().len())
}

/// The primes (indices into the moduli) of a key of `digits` digits, in limb order: its q
/// primes, then every special prime.
pub(crate) fn key_primes(params: &Parameters, digits: usize) -> Vec<usize> {
    let l = params.q().len();
    (0..key_q_limbs(params, digits)).chain(l..l + params.p().len()).collect()
}

/// The limbs of `p` (over every prime) at `primes`.
fn select_limbs(p: &Poly, primes: &[usize]) -> Poly {
    let mut out = Poly::zero(p.n(), primes.len());
    for (i, &j) in primes.iter().enumerate() {
        out.limb_mut(i).copy_from_slice(p.limb(j));
    }
    out
}

/// The uniform halves of a key-switching key of `digits` digits, re-derived from its seed
/// (always drawn over every prime, then cut to the key's primes: one stream per seed).
pub(crate) fn expand_keyswitch_a(params: &Parameters, seed: [u8; 32], digits: usize) -> Vec<Poly> {
    let ctx = params.ctx();
    let moduli: Vec<_> = ctx.moduli.iter().collect();
    let primes = key_primes(params, digits);
    let mut stream = Sampler::from_seed(seed);
    (0..digits).map(|_| select_limbs(&stream.uniform(ctx.n, &moduli), &primes)).collect()
}
