//! CKKS parameter sets: the prime chain, special primes, their security check and
//! every constant precomputed from them.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use ring::arith::is_prime;
use ring::primes::ntt_primes;
use ring::{Automorphisms, BaseConverter, GaloisPerm, Modulus, NttTable};

use crate::error::ParamError;
pub use crate::security::{max_log_qp, MAX_LOG_N, MIN_LOG_N};

/// Standard deviation of the discrete Gaussian error.
pub const ERROR_STDDEV: f64 = 3.2;

/// The serializable description of a parameter set: exactly what a client and a
/// server must agree on. `Parameters::from_spec` rebuilds every precomputation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamsSpec {
    /// log2 of the ring degree N.
    pub log_n: u32,
    /// ciphertext primes q_0 (the base, kept last) … q_L (dropped first by rescale)
    pub q: Vec<u64>,
    /// special primes for hybrid key switching
    pub p: Vec<u64>,
    /// number of key-switching digits the chain is split into
    pub dnum: usize,
    /// log2 of the default encoding scale
    pub log_scale: f64,
    /// Key bases: keys serving ciphertexts up to a level made with special primes and
    /// digits of their own (see [`KeyBasisSpec`]); none by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_bases: Vec<KeyBasisSpec>,
}

/// The key-switching split of keys that serve ciphertexts up to `level` only.
///
/// Why: a key's bytes are its digits times its primes, and the set's special primes P
/// are sized for the top level, where the 128-bit bound leaves little room for them, so
/// the top-level chain is cut into many digits. A key used no higher than `level` sees
/// only q_0..q_level, which leaves room under the same bound for a larger P of its own
/// and so fewer digits (often one): the same security, less than half the bytes. Such
/// a key lives in its own set (the q chain cut at `level`, these special primes, these
/// digits); ciphertexts at or below `level` are the same polynomials in both sets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyBasisSpec {
    /// The highest ciphertext level (index of the last q prime) its keys serve.
    pub level: usize,
    /// Its special primes.
    pub p: Vec<u64>,
    /// Its digits over q_0..q_level.
    pub dnum: usize,
}

/// The scheme a parameter set serves. It is part of the set's fingerprint, so an object
/// made under one scheme is never read under another that happens to use the same primes
/// (a BGV ciphertext offered as a CKKS one is refused as foreign, and the other way round).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scheme {
    /// CKKS: approximate arithmetic on complex slots (the fingerprint of every set made
    /// before schemes were told apart).
    #[default]
    Ckks,
    /// BGV: exact arithmetic modulo the plaintext modulus t.
    Bgv {
        /// The plaintext modulus t.
        plaintext_modulus: u64,
    },
}

/// Chooses primes by their sizes and checks security.
#[derive(Clone, Debug, Default)]
pub struct ParametersBuilder {
    log_n: u32,
    q_bits: Vec<u32>,
    p_bits: Option<Vec<u32>>,
    dnum: Option<usize>,
    log_scale: Option<f64>,
    scheme: Scheme,
}

impl ParametersBuilder {
    /// log2 of the ring degree N: 12 to 16 (from 4 for sets built for tests).
    pub fn log_n(mut self, log_n: u32) -> Self {
        self.log_n = log_n;
        self
    }
    /// Bit sizes of the ciphertext primes, base prime first (e.g. `[60, 40, 40]`).
    pub fn q_bits(mut self, bits: &[u32]) -> Self {
        self.q_bits = bits.to_vec();
        self
    }
    /// Bit sizes of the special primes. Default: as many primes as a digit holds,
    /// each as large as the largest ciphertext prime.
    pub fn p_bits(mut self, bits: &[u32]) -> Self {
        self.p_bits = Some(bits.to_vec());
        self
    }
    /// Number of key-switching digits. Default: derived from the special primes
    /// (one ciphertext prime per special prime per digit), else one digit per prime.
    pub fn dnum(mut self, dnum: usize) -> Self {
        self.dnum = Some(dnum);
        self
    }
    /// log2 of the default scale. Default: the size of the second prime (or of q_0 if alone).
    pub fn log_scale(mut self, log_scale: f64) -> Self {
        self.log_scale = Some(log_scale);
        self
    }

    /// The scheme the set serves (default CKKS); it enters the fingerprint.
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    fn spec(&self) -> Result<ParamsSpec, ParamError> {
        if !(4..=MAX_LOG_N).contains(&self.log_n) {
            return Err(ParamError::RingDegree { log_n: self.log_n, min: MIN_LOG_N, max: MAX_LOG_N });
        }
        let n = 1usize << self.log_n;
        let levels = self.q_bits.len();
        if levels == 0 {
            return Err(ParamError::EmptyChain);
        }
        let (dnum, p_bits) = match (&self.p_bits, self.dnum) {
            (Some(p), Some(d)) => (d, p.clone()),
            (Some(p), None) => {
                if p.is_empty() {
                    return Err(ParamError::NoSpecialPrimes);
                }
                (levels.div_ceil(p.len()), p.clone())
            }
            (None, d) => {
                let d = d.unwrap_or(levels);
                if d == 0 || d > levels {
                    return Err(ParamError::Dnum { dnum: d, levels });
                }
                (d, default_special_primes(&self.q_bits, d))
            }
        };
        if p_bits.is_empty() {
            return Err(ParamError::NoSpecialPrimes);
        }
        // Draw every prime from one pool so that no two coincide.
        let mut all: Vec<u64> = Vec::new();
        let mut q = Vec::with_capacity(levels);
        for &b in &self.q_bits {
            let p = ntt_primes(b, n, 1, &all)?[0];
            all.push(p);
            q.push(p);
        }
        let mut p = Vec::with_capacity(p_bits.len());
        for &b in &p_bits {
            let pr = ntt_primes(b, n, 1, &all)?[0];
            all.push(pr);
            p.push(pr);
        }
        let log_scale = self.log_scale.unwrap_or(*self.q_bits.get(1).unwrap_or(&self.q_bits[0]) as f64);
        Ok(ParamsSpec { log_n: self.log_n, q, p, dnum, log_scale, key_bases: vec![] })
    }

    /// Builds the set, refusing it unless it meets 128-bit security.
    pub fn build(&self) -> Result<Parameters, ParamError> {
        Parameters::build(&self.spec()?, true, self.scheme)
    }

    /// Builds the set without the security check. For tests only: the result is
    /// marked insecure, and servers refuse it.
    #[cfg(feature = "insecure-test-params")]
    pub fn build_insecure_for_testing(&self) -> Result<Parameters, ParamError> {
        Parameters::build(&self.spec()?, false, self.scheme)
    }
}

/// Special primes whose product covers the largest key-switching digit. Primes below
/// 2^50 run on the IFMA multiplier (about 3× faster transforms), so they are used when
/// they need no more primes than 61-bit ones would; each extra prime costs a limb.
fn default_special_primes(q_bits: &[u32], dnum: usize) -> Vec<u32> {
    let alpha = q_bits.len().div_ceil(dnum);
    let digit: u32 = q_bits.chunks(alpha).map(|c| c.iter().sum()).max().unwrap_or(0);
    let (k61, k50) = (digit.div_ceil(61), digit.div_ceil(50));
    let k = if k50 == k61 { k50 } else { k61 }.max(1);
    vec![digit.div_ceil(k).clamp(20, 61); k as usize]
}

/// A validated parameter set with all its precomputed tables. Cheap to clone.
#[derive(Clone)]
pub struct Parameters(Arc<Context>);

/// Every table precomputed from a parameter set, shared (`Arc`) by all its objects.
/// Public for the scheme crates built on this one; nothing here is secret.
pub struct Context {
    /// The description the tables were built from.
    pub spec: ParamsSpec,
    /// Ring degree N.
    pub n: usize,
    /// log2 N.
    pub log_n: u32,
    /// q_0..q_L then p_0..p_{K-1}
    pub moduli: Vec<Modulus>,
    /// Transform tables, one per prime, in the order of `moduli`.
    pub ntt: Vec<NttTable>,
    /// SHA-256 of the description (see `Parameters::fingerprint`).
    pub fingerprint: [u8; 32],
    /// log2(Q·P), in bits.
    pub log_qp: f64,
    /// Whether the set passed the 128-bit check.
    pub secure: bool,
    /// primes per key-switching digit
    pub alpha: usize,
    /// `rescale_inv[l][i]` = q_l^{-1} mod q_i (i < l), with Shoup companion
    pub rescale_inv: Vec<Vec<(u64, u64)>>,
    /// P mod q_i and P^{-1} mod q_i (Shoup pairs), i over the q chain; the first serves key generation only
    pub p_mod_q: Vec<(u64, u64)>,
    /// P^{-1} mod q_i (Shoup pairs), i over the q chain: ModDown's division by P.
    pub p_inv_mod_q: Vec<(u64, u64)>,
    /// mod-up converters, `modup[level][digit]`
    pub modup: Vec<Vec<BaseConverter>>,
    /// P basis to the whole q chain (a prefix of the targets serves lower levels)
    pub moddown: BaseConverter,
    /// Galois automorphisms as permutations of NTT positions
    pub automorphisms: Automorphisms,
    /// The scheme the set serves (part of the fingerprint).
    pub scheme: Scheme,
    /// The sets of `spec.key_bases`, in their order (each a set of its own, without bases).
    pub key_bases: Vec<Parameters>,
}

impl Context {
    /// p ← round(p / q_level) over q_0..q_{level−1}, in NTT form: CKKS's rescale and
    /// BGV's modulus switch (whose t-correction this rounding already is, in the scaled
    /// representation the `bgv` crate keeps).
    pub fn divide_by_top(&self, p: &mut ring::Poly, level: usize) {
        use rayon::prelude::*;
        use ring::{kernels, Poly};
        let n = self.n;
        let mut last = Poly::scratch(n, 1);
        last.data_mut().copy_from_slice(p.limb(level));
        self.ntt[level].inverse(last.data_mut());
        let q_top = self.moduli[level];
        let half = q_top.value() / 2;
        // Rounding division: shift by q_top/2 before the exact floor division, and back after.
        for v in last.data_mut().iter_mut() {
            *v = q_top.add(*v, half);
        }
        let inv = &self.rescale_inv[level];
        p.truncate(level);
        p.data_mut().par_chunks_mut(n).enumerate().for_each(|(i, x)| {
            let m = &self.moduli[i];
            let mut t = Poly::scratch(n, 1);
            kernels::dot_const_bounded(t.data_mut(), &[last.data()], &[(1, m.shoup(1))], m, q_top.value());
            kernels::sub_const(t.data_mut(), m.reduce(half), m);
            self.ntt[i].forward(t.data_mut());
            let (w, ws) = inv[i];
            kernels::sub_mul_const(x, t.data(), w, ws, m);
        });
    }

    /// g⁻¹ in Z_2N^*.
    pub fn galois_inverse(&self, g: u64) -> u64 {
        self.automorphisms.galois_inverse(g)
    }

    /// The automorphism X → X^g as a permutation of NTT positions (kept for reuse).
    pub fn galois_perm(&self, g: u64) -> Arc<GaloisPerm> {
        self.automorphisms.perm(g)
    }

    /// The permutation of `g` without keeping it (unless it is kept already): for
    /// elements named by serialized keys, which must not grow the cache beyond what
    /// evaluation asks for.
    pub fn galois_perm_transient(&self, g: u64) -> Arc<GaloisPerm> {
        self.automorphisms.perm_transient(g)
    }
}

impl Parameters {
    /// A builder that chooses primes by their sizes.
    pub fn builder() -> ParametersBuilder {
        ParametersBuilder::default()
    }

    /// Rebuilds a parameter set from its description, refusing it unless secure.
    pub fn from_spec(spec: &ParamsSpec) -> Result<Self, ParamError> {
        Self::build(spec, true, Scheme::Ckks)
    }

    /// Like `from_spec`, for a set serving `scheme` (`from_spec` is `Scheme::Ckks`).
    pub fn from_spec_for(spec: &ParamsSpec, scheme: Scheme) -> Result<Self, ParamError> {
        Self::build(spec, true, scheme)
    }

    /// Like `from_spec` but without the security check; test builds only.
    #[cfg(feature = "insecure-test-params")]
    pub fn from_spec_insecure_for_testing(spec: &ParamsSpec) -> Result<Self, ParamError> {
        Self::build(spec, false, Scheme::Ckks)
    }

    /// Like `from_spec_for` but without the security check; test builds only.
    #[cfg(feature = "insecure-test-params")]
    pub fn from_spec_insecure_for_testing_for(spec: &ParamsSpec, scheme: Scheme) -> Result<Self, ParamError> {
        Self::build(spec, false, scheme)
    }

    fn build(spec: &ParamsSpec, enforce: bool, scheme: Scheme) -> Result<Self, ParamError> {
        let log_n = spec.log_n;
        let min = if enforce { MIN_LOG_N } else { 4 };
        if !(min..=MAX_LOG_N).contains(&log_n) {
            return Err(ParamError::RingDegree { log_n, min: MIN_LOG_N, max: MAX_LOG_N });
        }
        let n = 1usize << log_n;
        if spec.q.is_empty() {
            return Err(ParamError::EmptyChain);
        }
        if spec.p.is_empty() {
            return Err(ParamError::NoSpecialPrimes);
        }
        let levels = spec.q.len();
        if spec.dnum == 0 || spec.dnum > levels {
            return Err(ParamError::Dnum { dnum: spec.dnum, levels });
        }
        let all: Vec<u64> = spec.q.iter().chain(&spec.p).copied().collect();
        for (i, &q) in all.iter().enumerate() {
            let ok = q < (1 << 61) && q > 2 && q % (2 * n as u64) == 1 && is_prime(q) && !all[..i].contains(&q);
            if !ok {
                return Err(ParamError::BadModulus { q, n });
            }
        }
        let log_qp: f64 = all.iter().map(|&q| (q as f64).log2()).sum();
        // Hybrid key switching divides the digit-sized error by P: a P smaller than a
        // digit multiplies the noise of every relinearization and rotation.
        let alpha = levels.div_ceil(spec.dnum);
        let log_p: f64 = spec.p.iter().map(|&p| (p as f64).log2()).sum();
        let log_digit =
            spec.q.chunks(alpha).map(|d| d.iter().map(|&q| (q as f64).log2()).sum::<f64>()).fold(0.0, f64::max);
        if log_p + 2.0 < log_digit {
            return Err(ParamError::SpecialPrimesTooSmall { log_p, log_digit });
        }
        let secure = match max_log_qp(log_n) {
            Some(bound) if log_qp <= bound as f64 => true,
            Some(bound) => {
                if enforce {
                    return Err(ParamError::Insecure { n, log_qp, bound });
                }
                false
            }
            None => false,
        };
        if !spec.log_scale.is_finite() || spec.log_scale < 1.0 || spec.log_scale > 60.0 {
            return Err(ParamError::Scale { log_scale: spec.log_scale });
        }
        let moduli: Vec<Modulus> = all.iter().map(|&q| Modulus::new(q)).collect();
        let ntt: Vec<NttTable> = moduli
            .iter()
            .map(|&m| NttTable::new(m, n).ok_or(ParamError::BadModulus { q: m.value(), n }))
            .collect::<Result<_, _>>()?;

        let rescale_inv = (0..levels)
            .map(|l| {
                (0..l)
                    .map(|i| {
                        let m = &moduli[i];
                        let v = m.inv(m.reduce(spec.q[l]));
                        (v, m.shoup(v))
                    })
                    .collect()
            })
            .collect();
        let mut p_mod_q = Vec::with_capacity(levels);
        let mut p_inv_mod_q = Vec::with_capacity(levels);
        for m in &moduli[..levels] {
            let pm = spec.p.iter().fold(1u64, |acc, &p| m.mul(acc, m.reduce(p)));
            let pinv = m.inv(pm);
            p_mod_q.push((pm, m.shoup(pm)));
            p_inv_mod_q.push((pinv, m.shoup(pinv)));
        }
        let p_idx: Vec<usize> = (levels..all.len()).collect();
        let modup = (0..levels)
            .map(|level| {
                (0..levels.div_ceil(alpha))
                    .filter(|d| d * alpha <= level)
                    .map(|d| {
                        let from: Vec<usize> = (d * alpha..((d + 1) * alpha).min(level + 1)).collect();
                        let to: Vec<usize> =
                            (0..=level).filter(|i| !from.contains(i)).chain(p_idx.iter().copied()).collect();
                        BaseConverter::new(&moduli, from, to)
                    })
                    .collect()
            })
            .collect();
        let moddown = BaseConverter::new(&moduli, p_idx.clone(), (0..levels).collect());

        let automorphisms = Automorphisms::new(&ntt[0]);
        let key_bases = key_bases(spec, enforce, scheme)?;

        let fingerprint = fingerprint_of(spec, scheme);
        Ok(Self(Arc::new(Context {
            spec: spec.clone(),
            n,
            log_n,
            moduli,
            ntt,
            fingerprint,
            log_qp,
            secure,
            alpha,
            rescale_inv,
            p_mod_q,
            p_inv_mod_q,
            modup,
            moddown,
            automorphisms,
            scheme,
            key_bases,
        })))
    }

    /// The key bases (`ParamsSpec::key_bases`), each a set of its own.
    pub fn key_bases(&self) -> &[Parameters] {
        &self.0.key_bases
    }

    /// The key basis whose keys serve exactly up to `level`, if the set has one: where
    /// keys made for that level live (`KeyGenerator`).
    pub fn key_basis_at(&self, level: usize) -> Option<&Parameters> {
        self.0.spec.key_bases.iter().position(|b| b.level == level).map(|i| &self.0.key_bases[i])
    }

    /// Whether `key_params` is this set or one of its key bases: a key made under it
    /// switches this set's ciphertexts (up to the basis's level).
    pub fn accepts_keys_of(&self, key_params: &Parameters) -> bool {
        self.same(key_params) || self.0.key_bases.iter().any(|b| b.same(key_params))
    }

    /// This set with `bases` added as its key bases: per basis, the highest level it
    /// serves, the bits of its special primes (drawn distinct from q_0..q_level) and its
    /// digits. Each basis must itself pass the 128-bit check.
    pub fn with_key_bases(&self, bases: &[(usize, Vec<u32>, usize)]) -> Result<Self, ParamError> {
        let spec = self.spec();
        let n = self.n();
        let mut out = spec.clone();
        out.key_bases = bases
            .iter()
            .map(|(level, p_bits, dnum)| {
                let mut taken: Vec<u64> = spec.q.iter().take(level + 1).copied().collect();
                let mut p = Vec::with_capacity(p_bits.len());
                for &b in p_bits {
                    let pr = ntt_primes(b, n, 1, &taken)?[0];
                    taken.push(pr);
                    p.push(pr);
                }
                Ok(KeyBasisSpec { level: *level, p, dnum: *dnum })
            })
            .collect::<Result<_, ParamError>>()?;
        Self::build(&out, self.0.secure, self.0.scheme)
    }

    /// The description a client and a server exchange (`from_spec` rebuilds the set).
    pub fn spec(&self) -> &ParamsSpec {
        &self.0.spec
    }
    /// Ring degree N.
    pub fn n(&self) -> usize {
        self.0.n
    }
    /// log2 N.
    pub fn log_n(&self) -> u32 {
        self.0.log_n
    }
    /// Complex slots per ciphertext: N/2.
    pub fn slots(&self) -> usize {
        self.0.n / 2
    }
    /// Highest level: the number of ciphertext primes minus one.
    pub fn max_level(&self) -> usize {
        self.0.spec.q.len() - 1
    }
    /// The ciphertext primes, q_0 (the base) first.
    pub fn q(&self) -> &[u64] {
        &self.0.spec.q
    }
    /// The special primes of hybrid key switching.
    pub fn p(&self) -> &[u64] {
        &self.0.spec.p
    }
    /// Number of key-switching digits asked for (a key may need fewer: `KeySwitchKey::digits`).
    pub fn dnum(&self) -> usize {
        self.0.spec.dnum
    }
    /// The default encoding scale, 2^log_scale.
    pub fn default_scale(&self) -> f64 {
        2f64.powf(self.0.spec.log_scale)
    }
    /// log2(Q·P), the quantity the security standard bounds.
    pub fn log_qp(&self) -> f64 {
        self.0.log_qp
    }
    /// log2 of the ciphertext modulus at `level`.
    pub fn log_q_at(&self, level: usize) -> f64 {
        self.0.spec.q[..=level].iter().map(|&q| (q as f64).log2()).sum()
    }
    /// Whether the set passed the 128-bit check (false only for test-built sets).
    pub fn is_secure(&self) -> bool {
        self.0.secure
    }
    /// The scheme the set serves.
    pub fn scheme(&self) -> Scheme {
        self.0.scheme
    }
    /// Fails unless the set is secure; servers call this on every set they accept.
    pub fn require_secure(&self) -> Result<(), ParamError> {
        if self.0.secure {
            Ok(())
        } else {
            Err(ParamError::InsecureRefused)
        }
    }
    /// SHA-256 of the canonical description; every serialized object carries it.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.0.fingerprint
    }
    /// The fingerprint in lower-case hexadecimal, as errors show it.
    pub fn fingerprint_hex(&self) -> String {
        hex(&self.0.fingerprint)
    }

    /// Bytes of the given limbs of one polynomial on the wire.
    pub fn poly_bytes(&self, limbs: impl Iterator<Item = usize>) -> usize {
        limbs.map(|i| (self.0.n * self.0.moduli[i].bits() as usize).div_ceil(8)).sum()
    }

    /// The precomputed tables (for scheme crates).
    pub fn ctx(&self) -> &Context {
        &self.0
    }

    /// Whether both are the same set (same object, or same fingerprint).
    pub fn same(&self, other: &Parameters) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.fingerprint == other.0.fingerprint
    }

    /// Whether both sets share the ring, the prime chain, the special primes and the digits,
    /// whatever their scheme or scale: a key of one is then, bit for bit, a key of the other
    /// (see `SecretKey::under`), as BGV sets that differ only in t are (residue plans).
    pub fn same_ring(&self, other: &Parameters) -> bool {
        let (a, b) = (&self.0.spec, &other.0.spec);
        a.log_n == b.log_n && a.q == b.q && a.p == b.p && a.dnum == b.dnum && a.key_bases == b.key_bases
    }

    /// Galois element for a left rotation by `step` slots (negative: right).
    pub fn galois_element(&self, step: i64) -> u64 {
        let two_n = 2 * self.0.n as u64;
        let mut k = step.rem_euclid(self.slots() as i64) as u64;
        let (mut g, mut base) = (1u64, 5u64);
        while k > 0 {
            if k & 1 == 1 {
                g = g * base % two_n;
            }
            base = base * base % two_n;
            k >>= 1;
        }
        g
    }

    /// Galois element of complex conjugation.
    pub fn conjugation_element(&self) -> u64 {
        2 * self.0.n as u64 - 1
    }
}

impl fmt::Debug for Parameters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.0;
        f.debug_struct("Parameters")
            .field("n", &c.n)
            .field("q_bits", &c.moduli[..c.spec.q.len()].iter().map(|m| m.bits()).collect::<Vec<_>>())
            .field("p_bits", &c.moduli[c.spec.q.len()..].iter().map(|m| m.bits()).collect::<Vec<_>>())
            .field("dnum", &c.spec.dnum)
            .field("log_qp", &c.log_qp)
            .field("secure", &c.secure)
            .finish()
    }
}

impl PartialEq for Parameters {
    fn eq(&self, other: &Self) -> bool {
        self.same(other)
    }
}

fn fingerprint_of(spec: &ParamsSpec, scheme: Scheme) -> [u8; 32] {
    let mut h = Sha256::new();
    match scheme {
        // Unchanged since v1: every CKKS object ever written keeps its fingerprint.
        Scheme::Ckks => h.update(b"heinfer/ckks/params/v1;ternary;sigma=3.2;"),
        Scheme::Bgv { plaintext_modulus } => {
            h.update(b"heinfer/bgv/params/v1;ternary;sigma=3.2;t=");
            h.update(plaintext_modulus.to_le_bytes());
            h.update(b";");
        }
    }
    h.update(spec.log_n.to_le_bytes());
    h.update((spec.q.len() as u32).to_le_bytes());
    for q in &spec.q {
        h.update(q.to_le_bytes());
    }
    h.update((spec.p.len() as u32).to_le_bytes());
    for p in &spec.p {
        h.update(p.to_le_bytes());
    }
    h.update((spec.dnum as u32).to_le_bytes());
    // Only sets with key bases hash them: every set without keeps its fingerprint.
    if !spec.key_bases.is_empty() {
        h.update(b";key-bases;");
        h.update((spec.key_bases.len() as u32).to_le_bytes());
        for b in &spec.key_bases {
            h.update((b.level as u32).to_le_bytes());
            h.update((b.p.len() as u32).to_le_bytes());
            for p in &b.p {
                h.update(p.to_le_bytes());
            }
            h.update((b.dnum as u32).to_le_bytes());
        }
    }
    h.finalize().into()
}

/// The sets of `spec.key_bases`: the q chain cut at each basis's level, its own special
/// primes and digits, each checked as any set is (128-bit bound, primes, P against the
/// largest digit). Levels strictly increasing, below the top of the chain or at it.
fn key_bases(spec: &ParamsSpec, enforce: bool, scheme: Scheme) -> Result<Vec<Parameters>, ParamError> {
    if !spec.key_bases.is_empty() && scheme != Scheme::Ckks {
        // BGV's evaluator switches every key in the set itself (and its noise bounds
        // assume the set's P): a basis there would only make keys it refuses.
        return Err(ParamError::KeyBasis { detail: "only CKKS sets take key bases".into() });
    }
    let mut last = None;
    spec.key_bases
        .iter()
        .map(|b| {
            if b.level >= spec.q.len() || last.is_some_and(|l| b.level <= l) {
                return Err(ParamError::KeyBasis {
                    detail: format!(
                        "level {} (levels must increase and stay below the chain's {} primes)",
                        b.level,
                        spec.q.len()
                    ),
                });
            }
            last = Some(b.level);
            let sub = ParamsSpec {
                log_n: spec.log_n,
                q: spec.q[..=b.level].to_vec(),
                p: b.p.clone(),
                dnum: b.dnum,
                log_scale: spec.log_scale,
                key_bases: vec![],
            };
            Parameters::build(&sub, enforce, scheme)
        })
        .collect()
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_sets_over_the_2024_bound_and_names_the_numbers() {
        // TenSEAL's usual 218-bit modulus at N = 8192 passes 2018's table, not 2024's.
        let err = Parameters::builder().log_n(13).q_bits(&[60, 40, 40, 60]).p_bits(&[60]).build();
        match err {
            Err(ParamError::Insecure { n, bound, log_qp }) => {
                assert_eq!(n, 8192);
                assert_eq!(bound, 214);
                assert!(log_qp > 214.0);
                let msg = ParamError::Insecure { n, bound, log_qp }.to_string();
                assert!(msg.contains("8192") && msg.contains("214"), "{msg}");
            }
            other => panic!("expected Insecure, got {other:?}"),
        }
        let ok = Parameters::builder().log_n(13).q_bits(&[60, 40, 40]).p_bits(&[60]).build().unwrap();
        assert!(ok.is_secure());
        assert!(ok.log_qp() <= 214.0);
        assert_eq!(ok.dnum(), 3);
        // Defaults: one 60-bit special prime for 60-bit digits; two IFMA-sized ones for 100-bit digits.
        let d = Parameters::builder().log_n(13).q_bits(&[60, 40, 40]).build().unwrap();
        assert_eq!(d.p().len(), 1);
        let d = Parameters::builder().log_n(14).q_bits(&[60, 40, 40, 40, 40, 40, 40]).dnum(4).build().unwrap();
        assert_eq!(d.p().len(), 2);
        assert!(d.p().iter().all(|&p| p < 1 << 50));
        assert!(d.is_secure());
    }

    #[test]
    fn primes_are_ntt_friendly_distinct_and_of_the_asked_size() {
        let p =
            Parameters::builder().log_n(14).q_bits(&[60, 40, 40, 40, 40, 40, 40]).p_bits(&[60, 60]).build().unwrap();
        let all: Vec<u64> = p.q().iter().chain(p.p()).copied().collect();
        for (i, &q) in all.iter().enumerate() {
            assert!(is_prime(q));
            assert_eq!(q % (2 * 16384), 1);
            assert!(!all[..i].contains(&q));
        }
        assert_eq!(64 - p.q()[1].leading_zeros(), 40);
        assert_eq!(p.dnum(), 4);
        assert_eq!(p.ctx().alpha, 2);
    }

    #[test]
    fn fingerprint_and_spec_round_trip() {
        let a = Parameters::builder().log_n(12).q_bits(&[36, 30]).build().unwrap();
        let b = Parameters::from_spec(&a.spec().clone()).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let mut other = a.spec().clone();
        let used: Vec<u64> = other.q.iter().chain(&other.p).copied().collect();
        other.p = ntt_primes(36, 4096, 1, &used).unwrap();
        let c = Parameters::from_spec(&other).unwrap();
        assert_ne!(a.fingerprint(), c.fingerprint());
        let mut bad = a.spec().clone();
        bad.q[0] += 2;
        assert!(matches!(Parameters::from_spec(&bad), Err(ParamError::BadModulus { .. })));
    }

    /// The scheme is part of the fingerprint: the same primes under BGV (with any t) and
    /// CKKS are three sets, while CKKS's fingerprint is the one it always had.
    #[test]
    fn the_scheme_enters_the_fingerprint() {
        let b = Parameters::builder().log_n(12).q_bits(&[36, 30]);
        let ckks = b.clone().build().unwrap();
        let bgv = b.clone().scheme(Scheme::Bgv { plaintext_modulus: 65537 }).build().unwrap();
        let bgv2 = Parameters::from_spec_for(ckks.spec(), Scheme::Bgv { plaintext_modulus: 40961 }).unwrap();
        assert_eq!(ckks.spec(), bgv.spec());
        assert_ne!(ckks.fingerprint(), bgv.fingerprint());
        assert_ne!(bgv.fingerprint(), bgv2.fingerprint());
        assert!(!ckks.same(&bgv));
        assert_eq!(Parameters::from_spec(ckks.spec()).unwrap().fingerprint(), ckks.fingerprint());
        assert_eq!(bgv.scheme(), Scheme::Bgv { plaintext_modulus: 65537 });
    }

    #[test]
    fn special_primes_smaller_than_a_digit_are_refused() {
        let r = Parameters::builder().log_n(13).q_bits(&[60, 40, 40]).p_bits(&[40]).dnum(3).build();
        assert!(matches!(r, Err(ParamError::SpecialPrimesTooSmall { .. })), "{r:?}");
        assert!(r.unwrap_err().to_string().contains("dnum"));
    }

    #[test]
    fn small_rings_are_refused_without_the_test_constructor() {
        let r = Parameters::builder().log_n(10).q_bits(&[20]).build();
        assert!(matches!(r, Err(ParamError::RingDegree { .. })), "{r:?}");
    }
}
