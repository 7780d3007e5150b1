//! BGV parameter sets: an RLWE set (primes, special primes, the security check) tagged
//! with its plaintext modulus t, and the tables BGV adds: t's own transform and the slot
//! order for batching, t and t⁻¹ modulo every prime, and the exact conversions from the
//! chain to t that decryption ends with.

use std::fmt;
use std::sync::Arc;

use ring::arith::is_prime;
use ring::{BaseConverter, Modulus, NttTable};
use rlwe::{ParamsSpec, Scheme};

use crate::error::{Error, Result};

/// Chooses primes by their sizes, checks security and the plaintext modulus.
#[derive(Clone, Debug, Default)]
pub struct ParametersBuilder {
    inner: rlwe::ParametersBuilder,
    t: u64,
}

impl ParametersBuilder {
    /// log2 of the ring degree N: 12 to 16 (from 4 for sets built for tests).
    pub fn log_n(mut self, log_n: u32) -> Self {
        self.inner = self.inner.log_n(log_n);
        self
    }
    /// Bit sizes of the ciphertext primes, q_0 first (each modulus switch drops the last).
    pub fn q_bits(mut self, bits: &[u32]) -> Self {
        self.inner = self.inner.q_bits(bits);
        self
    }
    /// Bit sizes of the special primes of key switching (default as `rlwe`'s).
    pub fn p_bits(mut self, bits: &[u32]) -> Self {
        self.inner = self.inner.p_bits(bits);
        self
    }
    /// Number of key-switching digits (default as `rlwe`'s).
    pub fn dnum(mut self, dnum: usize) -> Self {
        self.inner = self.inner.dnum(dnum);
        self
    }
    /// The plaintext modulus t: an odd prime below every ciphertext prime; t ≡ 1 (mod 2N)
    /// for batching (65537 serves N up to 2^15).
    pub fn plaintext_modulus(mut self, t: u64) -> Self {
        self.t = t;
        self
    }

    /// Builds the set, refusing it unless it meets 128-bit security.
    pub fn build(&self) -> Result<Parameters> {
        check_t_alone(self.t)?;
        let p = self.inner.clone().scheme(Scheme::Bgv { plaintext_modulus: self.t }).build()?;
        Parameters::new(p)
    }

    /// Builds the set without the security check. For tests and benchmarks only: the
    /// result is marked insecure, and servers refuse it.
    #[cfg(feature = "insecure-test-params")]
    pub fn build_insecure_for_testing(&self) -> Result<Parameters> {
        check_t_alone(self.t)?;
        let p = self.inner.clone().scheme(Scheme::Bgv { plaintext_modulus: self.t }).build_insecure_for_testing()?;
        Parameters::new(p)
    }
}

fn check_t_alone(t: u64) -> Result<()> {
    if !(3..1 << 60).contains(&t) || !is_prime(t) {
        let reason = "it must be an odd prime below 2^60 (so that every modulus switch's factor q⁻¹ mod t exists)";
        return Err(Error::PlaintextModulus { t, reason: reason.into() });
    }
    Ok(())
}

/// A validated BGV parameter set with its tables. Cheap to clone.
#[derive(Clone)]
pub struct Parameters {
    rlwe: rlwe::Parameters,
    tables: Arc<Tables>,
}

pub(crate) struct Tables {
    pub(crate) t: Modulus,
    /// Slot order and t's transform, where t ≡ 1 (mod 2N).
    pub(crate) batching: Option<Batching>,
    /// t mod q_i, with Shoup companion, over the q chain.
    #[cfg_attr(not(feature = "secret-key"), allow(dead_code))] // decryption's: client side
    pub(crate) t_mod_q: Vec<(u64, u64)>,
    /// t⁻¹ mod q_i, with Shoup companion, over the q chain.
    pub(crate) t_inv_mod_q: Vec<(u64, u64)>,
    /// q_i⁻¹ mod t: the factor a switch from level i multiplies the message by.
    pub(crate) q_inv_mod_t: Vec<u64>,
    /// The q chain and then t: the moduli the conversions below index.
    #[cfg_attr(not(feature = "secret-key"), allow(dead_code))] // decryption's: client side
    pub(crate) ext_moduli: Vec<Modulus>,
    /// Exact centered conversion from q_0..q_l to t, per level l.
    #[cfg_attr(not(feature = "secret-key"), allow(dead_code))] // decryption's: client side
    pub(crate) to_t: Vec<BaseConverter>,
}

pub(crate) struct Batching {
    pub(crate) ntt: NttTable,
    /// Slot k (row k / (N/2), column k mod N/2) is the NTT position `slot_pos[k]` of t's
    /// transform: row 0 column j holds m(ψ^{5^j}), row 1 column j holds m(ψ^{-5^j}), so
    /// X → X^{5^k} rotates both rows left by k and X → X^{2N-1} swaps them.
    pub(crate) slot_pos: Vec<u32>,
}

impl Parameters {
    /// A builder that chooses primes by their sizes.
    pub fn builder() -> ParametersBuilder {
        ParametersBuilder::default()
    }

    /// Rebuilds a set from its description and plaintext modulus, refusing it unless secure.
    pub fn from_spec(spec: &ParamsSpec, t: u64) -> Result<Self> {
        check_t_alone(t)?;
        Self::new(rlwe::Parameters::from_spec_for(spec, Scheme::Bgv { plaintext_modulus: t })?)
    }

    /// The BGV view of an RLWE set built for BGV (`Scheme::Bgv`); `Error::NotBgv` otherwise.
    pub fn new(p: rlwe::Parameters) -> Result<Self> {
        let Scheme::Bgv { plaintext_modulus: t } = p.scheme() else {
            return Err(Error::NotBgv);
        };
        check_t_alone(t)?;
        let ctx = p.ctx();
        let n = ctx.n;
        let levels = p.q().len();
        if let Some(&q) = p.q().iter().find(|&&q| q <= t) {
            let reason = format!("it must be below every ciphertext prime, and {q} is not above it");
            return Err(Error::PlaintextModulus { t, reason });
        }
        let tm = Modulus::new(t);
        let batching = (t % (2 * n as u64) == 1).then(|| NttTable::new(tm, n)).flatten().map(|ntt| {
            // Where the transform puts each evaluation point: transform X and read the powers of ψ.
            let mut x = vec![0u64; n];
            x[1] = 1;
            ntt.forward_scalar(&mut x);
            let psi = ntt.psi();
            let psi2 = tm.mul(psi, psi);
            let mut pos_of_exp = vec![u32::MAX; 2 * n];
            let mut value_to_pos = std::collections::HashMap::with_capacity(n);
            for (k, &v) in x.iter().enumerate() {
                value_to_pos.insert(v, k as u32);
            }
            let mut pw = psi;
            for e in (1..2 * n).step_by(2) {
                pos_of_exp[e] = value_to_pos[&pw];
                pw = tm.mul(pw, psi2);
            }
            let half = n / 2;
            let two_n = 2 * n;
            let mut slot_pos = vec![0u32; n];
            let mut g = 1usize;
            for j in 0..half {
                slot_pos[j] = pos_of_exp[g];
                slot_pos[half + j] = pos_of_exp[two_n - g];
                g = g * 5 % two_n;
            }
            Batching { ntt, slot_pos }
        });
        let mut t_mod_q = Vec::with_capacity(levels);
        let mut t_inv_mod_q = Vec::with_capacity(levels);
        let mut q_inv_mod_t = Vec::with_capacity(levels);
        for (i, m) in ctx.moduli[..levels].iter().enumerate() {
            let tq = m.reduce(t);
            let ti = m.inv(tq);
            t_mod_q.push((tq, m.shoup(tq)));
            t_inv_mod_q.push((ti, m.shoup(ti)));
            q_inv_mod_t.push(tm.inv(tm.reduce(p.q()[i])));
        }
        let mut ext_moduli: Vec<Modulus> = ctx.moduli[..levels].to_vec();
        ext_moduli.push(tm);
        let to_t = (0..levels).map(|l| BaseConverter::new(&ext_moduli, (0..=l).collect(), vec![levels])).collect();
        let tables = Tables { t: tm, batching, t_mod_q, t_inv_mod_q, q_inv_mod_t, ext_moduli, to_t };
        Ok(Self { rlwe: p, tables: Arc::new(tables) })
    }

    /// The RLWE set underneath (for keys and the wire format).
    pub fn rlwe(&self) -> &rlwe::Parameters {
        &self.rlwe
    }
    pub(crate) fn tables(&self) -> &Tables {
        &self.tables
    }
    /// The plaintext modulus t.
    pub fn plaintext_modulus(&self) -> u64 {
        self.tables.t.value()
    }
    /// Whether batching is available (t ≡ 1 mod 2N).
    pub fn has_batching(&self) -> bool {
        self.tables.batching.is_some()
    }
    /// Ring degree N: also the number of slots (a 2 × N/2 matrix) and of coefficients.
    pub fn n(&self) -> usize {
        self.rlwe.n()
    }
    /// Slots per row: N/2 (a column rotation by k moves each row left by k).
    pub fn row_size(&self) -> usize {
        self.rlwe.n() / 2
    }
    /// Highest level: the number of ciphertext primes minus one.
    pub fn max_level(&self) -> usize {
        self.rlwe.max_level()
    }
    /// The ciphertext primes, q_0 first.
    pub fn q(&self) -> &[u64] {
        self.rlwe.q()
    }
    /// log2 of the ciphertext modulus at `level`.
    pub fn log_q_at(&self, level: usize) -> f64 {
        self.rlwe.log_q_at(level)
    }
    /// The description a client and a server exchange (with the plaintext modulus).
    pub fn spec(&self) -> &ParamsSpec {
        self.rlwe.spec()
    }
    /// SHA-256 of the description, scheme and t included: every serialized object carries it.
    pub fn fingerprint(&self) -> &[u8; 32] {
        self.rlwe.fingerprint()
    }
    /// Whether the set passed the 128-bit check.
    pub fn is_secure(&self) -> bool {
        self.rlwe.is_secure()
    }
    /// Whether both are the same set.
    pub fn same(&self, other: &Parameters) -> bool {
        self.rlwe.same(&other.rlwe)
    }
    /// The Galois element that rotates both rows left by `step` columns (5^step mod 2N).
    pub fn column_rotation_element(&self, step: i64) -> u64 {
        self.rlwe.galois_element(step)
    }
    /// The Galois element that swaps the two rows (2N − 1).
    pub fn row_swap_element(&self) -> u64 {
        self.rlwe.conjugation_element()
    }
}

impl fmt::Debug for Parameters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("bgv::Parameters")
            .field("t", &self.plaintext_modulus())
            .field("batching", &self.has_batching())
            .field("rlwe", &self.rlwe)
            .finish()
    }
}

impl PartialEq for Parameters {
    fn eq(&self, other: &Self) -> bool {
        self.same(other)
    }
}
