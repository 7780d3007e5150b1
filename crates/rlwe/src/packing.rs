//! Compact queries: seeded LWE ciphertexts, one word per value, that a server packs into
//! one RLWE ciphertext (Chen–Dai–Kim–Song 2020, "Efficient homomorphic conversion
//! between (ring) LWE ciphertexts", Alg. 2 and the field trace).
//!
//! Why: a fresh RLWE ciphertext is N words whatever it holds, so a client with 64
//! values sends 8192. An LWE ciphertext under the RLWE secret's coefficient vector is
//! the constant coefficient of an RLWE ciphertext: its uniform half comes from a shared
//! seed, so the client sends b = m + e − ⟨a, s⟩ alone, one word (over every prime of
//! its level) per value.
//!
//! The server turns value i into the RLWE ciphertext (b_i, a_i), whose constant
//! coefficient decrypts to m_i and whose other coefficients are garbage, and merges
//! 2^ℓ of them in a tree: (E + X^{N/2^ℓ}·O) + τ_{2^ℓ+1}(E − X^{N/2^ℓ}·O) puts the odd
//! half between the even half's values and cancels the garbage of the positions it
//! leaves. A trace over the remaining automorphisms τ_{2^k+1} then zeroes every
//! coefficient but the packed positions i·N/2^ℓ. Each step doubles the message, so the
//! inputs are first multiplied by N⁻¹ mod Q (exact): the result holds m_i, plus
//! key-switch noise that the tree amplifies up to about N times (the caller encodes at
//! a scale that leaves room for it).
//!
//! Keys: one Galois key per element 2^k + 1, k = 1..=log2 N ([`packing_elements`]),
//! made like the rotation keys and registered with them.
//!
//! A *ring* query ([`Decryptor::encrypt_ring_query`](crate::encryption::Decryptor)) is the
//! same on the wire but for its kind: the client encrypts its values at coefficients
//! 0..count of one seeded RLWE ciphertext (b, a) and sends b's first `count`
//! coefficients. Coefficient i of (b, a) is the LWE ciphertext (b_i, a·X^{-i}), so the
//! uniform halves are shifts of one ring element. That structure lets a server apply a
//! linear layer *before* packing, keylessly ([`pack_linear`]): Σ_i M_ri·(b_i, a·X^{-i}) =
//! (Σ_i M_ri·b_i, a·W_r) with W_r = Σ_i M_ri·X^{-i}, one product per output in NTT form
//! (Cheetah-style coefficient encoding: the inner product lands in the constant
//! coefficient). The tree then packs the layer's outputs, not its inputs.

use crate::encryption::Ciphertext;
use crate::error::{Error, Result};
use crate::keys::GaloisKeys;
use crate::keyswitch::{self, Addend};
use crate::params::Parameters;
use ring::{Poly, Sampler};

/// The Galois elements packing uses: 2^k + 1 for k = 1..=log2 N (mod 2N).
pub fn packing_elements(params: &Parameters) -> Vec<u64> {
    let two_n = 2 * params.n() as u64;
    (1..=params.log_n()).map(|k| ((1u64 << k) + 1) % two_n).collect()
}

/// `count` seeded LWE ciphertexts at one level: value i's uniform half is the i-th
/// polynomial drawn from `seed` (NTT form, as `SeededCiphertext` draws its c1), and
/// only b_i, one residue per prime, travels.
#[derive(Clone, Debug, PartialEq)]
pub struct LweQuery {
    pub(crate) params: Parameters,
    pub(crate) level: usize,
    pub(crate) scale: f64,
    pub(crate) seed: [u8; 32],
    /// Limb-major: limb l holds b_i mod q_l for every i (a `Poly` of `count` "coefficients").
    pub(crate) b: Poly,
    /// A ring query: the values' halves are a·X^{-i} for one a drawn from the seed
    /// (wire kind 13), not one stream each (kind 12).
    pub(crate) ring: bool,
}

/// Most values one query may carry (the packing tree covers at most N).
pub fn max_query_values(params: &Parameters) -> usize {
    params.n()
}

impl LweQuery {
    /// The parameter set.
    pub fn params(&self) -> &Parameters {
        &self.params
    }
    /// The level of the values (and of the packed ciphertext).
    pub fn level(&self) -> usize {
        self.level
    }
    /// The scale the values were encoded at.
    pub fn scale(&self) -> f64 {
        self.scale
    }
    /// Number of values.
    pub fn count(&self) -> usize {
        self.b.n()
    }
    /// Whether this is a ring query (the values are coefficients of one RLWE ciphertext).
    pub fn is_ring(&self) -> bool {
        self.ring
    }

    /// A ring query's a: stream 0 of the seed (NTT form over the level's primes).
    fn ring_half(params: &Parameters, seed: [u8; 32], level: usize) -> Poly {
        let ctx = params.ctx();
        let moduli: Vec<_> = ctx.moduli[..=level].iter().collect();
        Sampler::from_seed_stream(seed, 0).uniform(ctx.n, &moduli)
    }

    /// Value i's uniform half, as the constant coefficient's (NTT form): its own stream,
    /// or a·X^{-i} for a ring query (`ring_a` is a).
    fn leaf_half(&self, i: usize, ring_a: Option<&Poly>) -> Poly {
        match ring_a {
            None => Self::uniform_half(&self.params, self.seed, self.level, i),
            Some(a) => {
                let mut shifted = monomial_inverse(&self.params, self.level, i);
                let ctx = self.params.ctx();
                let moduli: Vec<_> = ctx.moduli[..=self.level].iter().collect();
                shifted.mul_assign(a, &moduli);
                shifted
            }
        }
    }

    /// Value i's uniform half: the seed's ChaCha20 stream i + 1 (NTT form over the
    /// level's primes), so that client and server draw the values' halves in parallel.
    fn uniform_half(params: &Parameters, seed: [u8; 32], level: usize, i: usize) -> Poly {
        let ctx = params.ctx();
        let moduli: Vec<_> = ctx.moduli[..=level].iter().collect();
        Sampler::from_seed_stream(seed, i as u64 + 1).uniform(ctx.n, &moduli)
    }
}

/// What every query a client makes must satisfy: a scale, a level of the chain, 1..=N values.
#[cfg(feature = "secret-key")]
fn check_query(params: &Parameters, count: usize, level: usize, scale: f64, what: &'static str) -> Result<()> {
    crate::plaintext::check_scale(scale)?;
    if level > params.max_level() {
        return Err(Error::LevelRaise { from: params.max_level(), to: level });
    }
    if count == 0 || count > max_query_values(params) {
        let detail = format!("{count} values (1..={} allowed)", max_query_values(params));
        return Err(Error::Shape { what, detail });
    }
    Ok(())
}

#[cfg(feature = "secret-key")]
impl crate::encryption::Decryptor<'_> {
    /// Encrypts each of `messages` (integers: the scheme's encoding of the values at
    /// `scale`) as a seeded LWE ciphertext at `level` under this secret key.
    ///
    /// ⟨a, s⟩ is the constant coefficient of a·s, which is 1/N times the sum of a·s's
    /// NTT values: one inner product per prime, no transform.
    pub fn encrypt_lwe(&mut self, messages: &[i128], level: usize, scale: f64) -> Result<LweQuery> {
        let params = self.sk.params.clone();
        check_query(&params, messages.len(), level, scale, "an LWE query")?;
        let ctx = params.ctx();
        let count = messages.len();
        let n = ctx.n;
        let seed = ring::fresh_seed();
        use rayon::prelude::*;
        let noise = self.sampler.gaussian(count);
        let s = &self.sk.ntt;
        // Per value, b_i mod each prime (the values in parallel, each its own stream).
        let words: Vec<Vec<u64>> = (0..count)
            .into_par_iter()
            .map(|i| {
                let a = LweQuery::uniform_half(&params, seed, level, i);
                (0..=level)
                    .map(|l| {
                        let m = &ctx.moduli[l];
                        let sum = a.limb(l).iter().zip(s.limb(l)).fold(0u64, |acc, (&x, &y)| m.add(acc, m.mul(x, y)));
                        let dot = m.mul(sum, m.inv(n as u64 % m.value()));
                        m.sub(m.add(m.reduce_i128(messages[i]), m.reduce_i64(noise[i])), dot)
                    })
                    .collect()
            })
            .collect();
        let mut b = Poly::zero(count, level + 1);
        for (i, w) in words.iter().enumerate() {
            for (l, &v) in w.iter().enumerate() {
                b.limb_mut(l)[i] = v;
            }
        }
        Ok(LweQuery { params, level, scale, seed, b, ring: false })
    }

    /// Encrypts `messages` (integers, as [`Self::encrypt_lwe`]) at coefficients 0..count of
    /// one seeded RLWE ciphertext (b, a) at `level` and keeps b's first `count`
    /// coefficients: a ring query, the same size as an LWE query, made with one product
    /// and two transforms instead of `count` inner products. Dropping coefficients of b
    /// only withholds RLWE samples; the rest is a fresh symmetric encryption.
    pub fn encrypt_ring_query(&mut self, messages: &[i128], level: usize, scale: f64) -> Result<LweQuery> {
        let params = self.sk.params.clone();
        check_query(&params, messages.len(), level, scale, "a ring query")?;
        let ctx = params.ctx();
        let count = messages.len();
        let n = ctx.n;
        let moduli: Vec<_> = ctx.moduli[..=level].iter().collect();
        let tables: Vec<_> = ctx.ntt[..=level].iter().collect();
        let seed = ring::fresh_seed();
        let mut as_ = LweQuery::ring_half(&params, seed, level);
        let mut m = vec![0i128; n];
        m[..count].copy_from_slice(messages);
        let mut full = Poly::from_signed_wide(&m, &moduli);
        full.add_assign(&self.sampler.small_poly(n, &moduli, false), &moduli);
        full.ntt(&tables);
        as_.mul_assign(&self.sk.ntt, &moduli);
        full.sub_assign(&as_, &moduli);
        zeroize::Zeroize::zeroize(&mut as_); // a·s
        full.intt(&tables);
        let mut b = Poly::zero(count, level + 1);
        for l in 0..=level {
            b.limb_mut(l).copy_from_slice(&full.limb(l)[..count]);
        }
        Ok(LweQuery { params, level, scale, seed, b, ring: true })
    }
}

/// Packs a query into one ciphertext at its level and scale whose coefficient
/// `i·N/slots` holds value i (i < count), every other coefficient zero up to the noise.
/// `slots` is a power of two ≥ count (values count..slots are zero).
///
/// Cost: slots − 1 + log2(N/slots) key switches at the query's level.
pub fn pack(query: &LweQuery, slots: usize, keys: &GaloisKeys) -> Result<Ciphertext> {
    let params = &query.params;
    let ctx = params.ctx();
    let level = query.level;
    let moduli: Vec<_> = ctx.moduli[..=level].iter().collect();
    let n_inv: Vec<u64> = moduli.iter().map(|m| m.inv(ctx.n as u64 % m.value())).collect();
    let ring_a = query.ring.then(|| LweQuery::ring_half(params, query.seed, level));
    // Leaf i: (b_i, a_i)·N⁻¹ in NTT form (a constant's NTT is itself in every position).
    let leaf = |i: usize| -> Option<(Poly, Poly)> {
        if i >= query.count() {
            return None;
        }
        let mut a = query.leaf_half(i, ring_a.as_ref());
        a.mul_scalar_assign(&n_inv, &moduli);
        let mut b = Poly::zero(ctx.n, level + 1);
        for (l, m) in moduli.iter().enumerate() {
            b.limb_mut(l).fill(m.mul(query.b.limb(l)[i], n_inv[l]));
        }
        Some((b, a))
    };
    pack_tree(params, level, query.scale, query.count(), slots, keys, leaf)
}

/// A linear layer y = M·x that [`pack_linear`] applies to a ring query's values before
/// packing: M's integer entries modulo each prime of the query's level, and each row as
/// N⁻¹·Σ_i M_ri·X^{-i} in NTT form (made once per model, used by every query).
pub struct LinearLeaves {
    params: Parameters,
    level: usize,
    inputs: usize,
    /// Limb-major: limb l holds M_ri mod q_l at r·inputs + i.
    m: Vec<Vec<u64>>,
    /// Per output r: N⁻¹·W_r, W_r = Σ_i M_ri·X^{-i}, NTT form.
    w: Vec<Poly>,
    scale: f64,
}

impl LinearLeaves {
    /// `m`: `outputs` rows of `inputs` integers (the weights at `scale`), row-major, for
    /// queries at `level`.
    pub fn new(params: &Parameters, level: usize, inputs: usize, m: &[i64], scale: f64) -> Result<Self> {
        let ctx = params.ctx();
        let n = ctx.n;
        if level > params.max_level() {
            return Err(Error::LevelRaise { from: params.max_level(), to: level });
        }
        if inputs == 0 || inputs > n || m.is_empty() || !m.len().is_multiple_of(inputs) || m.len() / inputs > n {
            let detail = format!("{} weights for {inputs} inputs (rows of 1..=N inputs, at most N rows)", m.len());
            return Err(Error::Shape { what: "a linear layer before packing", detail });
        }
        crate::plaintext::check_scale(scale)?;
        let moduli: Vec<_> = ctx.moduli[..=level].iter().collect();
        let tables: Vec<_> = ctx.ntt[..=level].iter().collect();
        let n_inv: Vec<u64> = moduli.iter().map(|q| q.inv(n as u64 % q.value())).collect();
        let residues = |l: usize| -> Vec<u64> { m.iter().map(|&v| moduli[l].reduce_i64(v)).collect() };
        use rayon::prelude::*;
        let w = m
            .par_chunks(inputs)
            .map(|row| {
                let mut c = vec![0i64; n];
                c[0] = row[0];
                for (i, &v) in row.iter().enumerate().skip(1) {
                    c[n - i] = -v; // X^{-i} = −X^{N−i}
                }
                let mut p = Poly::from_signed(&c, &moduli);
                p.ntt(&tables);
                p.mul_scalar_assign(&n_inv, &moduli);
                p
            })
            .collect();
        Ok(Self { params: params.clone(), level, inputs, m: (0..=level).map(residues).collect(), w, scale })
    }
    /// Rows of M (the values packed).
    pub fn outputs(&self) -> usize {
        self.w.len()
    }
    /// Columns of M (the values a query must carry).
    pub fn inputs(&self) -> usize {
        self.inputs
    }
    /// Bytes held: the rows in NTT form and the residues.
    pub fn memory_bytes(&self) -> usize {
        8 * (self.w.len() * self.params.n() * (self.level + 1) + self.m.iter().map(Vec::len).sum::<usize>())
    }
}

/// Packs y = M·x of a ring query's values x: coefficient r·N/slots of the result holds
/// y_r (r < M's rows), at the query's scale times the layer's. No key is used before
/// the tree: each output's LWE ciphertext is (Σ_i M_ri·b_i, a·W_r).
///
/// Cost: one product per output, then slots − 1 + log2(N/slots) key switches.
pub fn pack_linear(query: &LweQuery, lin: &LinearLeaves, slots: usize, keys: &GaloisKeys) -> Result<Ciphertext> {
    let params = &query.params;
    if !params.same(&lin.params) {
        return Err(Error::ParamsMismatch);
    }
    if !query.ring || query.level != lin.level || query.count() != lin.inputs {
        let detail = format!(
            "a{} query of {} values at level {} for a layer of {} inputs at level {}",
            if query.ring { " ring" } else { "n LWE" },
            query.count(),
            query.level,
            lin.inputs,
            lin.level
        );
        return Err(Error::Shape { what: "a linear layer before packing", detail });
    }
    let ctx = params.ctx();
    let level = query.level;
    let moduli: Vec<_> = ctx.moduli[..=level].iter().collect();
    let n_inv: Vec<u64> = moduli.iter().map(|m| m.inv(ctx.n as u64 % m.value())).collect();
    let a = LweQuery::ring_half(params, query.seed, level);
    let k = lin.inputs;
    let leaf = |r: usize| -> Option<(Poly, Poly)> {
        let w = lin.w.get(r)?;
        let mut c1 = w.clone();
        c1.mul_assign(&a, &moduli);
        let mut c0 = Poly::zero(ctx.n, level + 1);
        for (l, m) in moduli.iter().enumerate() {
            let row = &lin.m[l][r * k..(r + 1) * k];
            let dot = row.iter().zip(query.b.limb(l)).fold(0u64, |acc, (&x, &y)| m.add(acc, m.mul(x, y)));
            c0.limb_mut(l).fill(m.mul(dot, n_inv[l]));
        }
        Some((c0, c1))
    };
    pack_tree(params, level, query.scale * lin.scale, lin.outputs(), slots, keys, leaf)
}

/// Chen–Dai–Kim–Song's tree over `count` leaves (`leaf(i)`: value i's RLWE ciphertext in
/// NTT form, already times N⁻¹, whose constant coefficient holds it), then the trace.
fn pack_tree<L>(
    params: &Parameters,
    level: usize,
    scale: f64,
    count: usize,
    slots: usize,
    keys: &GaloisKeys,
    leaf: L,
) -> Result<Ciphertext>
where
    L: Fn(usize) -> Option<(Poly, Poly)> + Sync,
{
    let ctx = params.ctx();
    let n = ctx.n;
    if !slots.is_power_of_two() || slots < count || slots > n {
        let detail = format!("{count} values into {slots} positions (a power of two from the count to N = {n})");
        return Err(Error::Shape { what: "an LWE packing", detail });
    }
    let moduli: Vec<_> = ctx.moduli[..=level].iter().collect();
    let elements = packing_elements(params);
    for (k, &g) in elements.iter().enumerate() {
        // The tree uses k + 1 ≤ log2(slots) and the trace the rest: every element.
        let key = keys
            .get(g)
            .ok_or_else(|| Error::MissingGaloisKey { what: format!("packing (element {g} = 2^{} + 1)", k + 1) })?;
        if !params.accepts_keys_of(key.params()) {
            return Err(Error::ParamsMismatch);
        }
        if key.max_level() < level {
            return Err(Error::KeyBelowLevel { key_level: key.max_level(), level });
        }
    }
    let tables: Vec<_> = ctx.ntt[..=level].iter().collect();
    let galois = |c0: &Poly, c1: &Poly, g: u64| -> Result<(Poly, Poly)> {
        let key = keys.get(g).expect("checked above");
        // In the key's own set (the set itself, or a key basis: the same limbs up to `level`).
        let kp = key.params();
        let dec = keyswitch::decompose(kp, c1, level);
        keyswitch::switch(kp, &dec, key, [Addend::Poly(c0), Addend::Products(&[])], Some(&ctx.galois_perm(g)))
    };
    // Alg. 2 depth first (`width` values r, r + slots/width, ...: the even half and the odd
    // half, merged), the halves in parallel: a few ciphertexts per thread are alive at a
    // time, not one per value.
    fn node<L, G>(r: usize, width: usize, slots: usize, ctx: &Ctx<'_, L, G>) -> Result<Option<(Poly, Poly)>>
    where
        L: Fn(usize) -> Option<(Poly, Poly)> + Sync,
        G: Fn(&Poly, &Poly, u64) -> Result<(Poly, Poly)> + Sync,
    {
        if width == 1 {
            return Ok((ctx.leaf)(r));
        }
        let (even, odd) =
            rayon::join(|| node(r, width / 2, slots, ctx), || node(r + slots / width, width / 2, slots, ctx));
        let (e, o) = (even?, odd?);
        if e.is_none() && o.is_none() {
            return Ok(None);
        }
        let (n, limbs) = (ctx.n, ctx.moduli.len());
        let zero = || (Poly::zero(n, limbs), Poly::zero(n, limbs));
        let (e0, e1) = e.unwrap_or_else(zero);
        let (mut o0, mut o1) = o.unwrap_or_else(zero);
        let shift = &ctx.shifts[width.trailing_zeros() as usize];
        o0.mul_assign(shift, ctx.moduli);
        o1.mul_assign(shift, ctx.moduli);
        // sum = E + X^m·O, diff = E − X^m·O; result = sum + τ_{width+1}(diff).
        let (mut s0, mut s1) = (e0.clone(), e1.clone());
        s0.add_assign(&o0, ctx.moduli);
        s1.add_assign(&o1, ctx.moduli);
        let (mut d0, mut d1) = (e0, e1);
        d0.sub_assign(&o0, ctx.moduli);
        d1.sub_assign(&o1, ctx.moduli);
        let (t0, t1) = (ctx.galois)(&d0, &d1, (width as u64 + 1) % (2 * n as u64))?;
        s0.add_assign(&t0, ctx.moduli);
        s1.add_assign(&t1, ctx.moduli);
        Ok(Some((s0, s1)))
    }
    // X^{N/width} in NTT form for each width of the tree (index log2 width), made once.
    let shifts: Vec<Poly> = (0..=slots.trailing_zeros())
        .map(|k| {
            if k == 0 {
                return Poly::zero(n, moduli.len()); // width 1: leaves, never merged
            }
            let mut c = vec![0i64; n];
            c[n >> k] = 1;
            let mut p = Poly::from_signed(&c, &moduli);
            p.ntt(&tables);
            p
        })
        .collect();
    let c = Ctx { leaf, galois: &galois, n, moduli: &moduli, shifts: &shifts };
    let root = node(0, slots, slots, &c)?;
    let (mut c0, mut c1) = root.expect("count ≥ 1: the root holds a value");
    // Trace down to the packed positions: c + τ_{2^k+1}(c) for the remaining k.
    let mut k = slots.trailing_zeros() + 1;
    while (1usize << k) <= n {
        let g = ((1u64 << k) + 1) % (2 * n as u64);
        let (t0, t1) = galois(&c0, &c1, g)?;
        c0.add_assign(&t0, &moduli);
        c1.add_assign(&t1, &moduli);
        k += 1;
    }
    Ciphertext::from_parts(params, c0, c1, scale)
}

/// What the packing tree's nodes share.
struct Ctx<'a, L, G> {
    leaf: L,
    galois: &'a G,
    n: usize,
    moduli: &'a [&'a ring::Modulus],
    /// X^{N/width} in NTT form, by log2 width.
    shifts: &'a [Poly],
}

/// X^{-i} in NTT form over the primes up to `level` (X^{-i} = −X^{N−i}).
fn monomial_inverse(params: &Parameters, level: usize, i: usize) -> Poly {
    let ctx = params.ctx();
    let n = ctx.n;
    let moduli: Vec<_> = ctx.moduli[..=level].iter().collect();
    let mut c = vec![0i64; n];
    if i == 0 {
        c[0] = 1;
    } else {
        c[n - i] = -1;
    }
    let mut p = Poly::from_signed(&c, &moduli);
    p.ntt(&ctx.ntt[..=level].iter().collect::<Vec<_>>());
    p
}

#[cfg(all(test, feature = "secret-key"))]
mod tests {
    use super::*;
    use crate::encryption::Decryptor;
    use crate::keys::KeyGenerator;

    fn setup() -> (Parameters, crate::keys::SecretKey, GaloisKeys) {
        let params =
            Parameters::builder().log_n(10).q_bits(&[45, 35, 35]).p_bits(&[50]).build_insecure_for_testing().unwrap();
        let mut kg = KeyGenerator::new(&params);
        let sk = kg.secret_key();
        let top = params.max_level();
        let at: Vec<(u64, usize)> = packing_elements(&params).into_iter().map(|g| (g, top)).collect();
        let keys = kg.galois_keys_with(&sk, &[], None, &at);
        (params, sk, keys)
    }

    /// Centered coefficients of the decryption.
    fn decrypt_coeffs(sk: &crate::keys::SecretKey, ct: &Ciphertext) -> Vec<i64> {
        let params = sk.params();
        let pt = Decryptor::new(sk).decrypt(ct).unwrap();
        let m = &params.ctx().moduli[0];
        let coeff = Poly::intt_of(pt.poly(), &[&params.ctx().ntt[0]]);
        coeff.limb(0).iter().map(|&x| m.center(x)).collect()
    }

    /// Every value lands at its position i·N/slots and every other coefficient is
    /// zero up to the noise: a wrong tree order, a missing N⁻¹ or a trace that stops
    /// early each break one of the two.
    #[test]
    fn packed_values_sit_at_their_positions_and_the_rest_is_clean() {
        let (params, sk, keys) = setup();
        let n = params.n();
        let msgs: Vec<i128> = (0..5).map(|i| (i as i128 - 2) * (1 << 30) + 12345 * i as i128).collect();
        let q = Decryptor::new(&sk).encrypt_lwe(&msgs, params.max_level(), 2f64.powi(30)).unwrap();
        for slots in [8usize, 16] {
            let ct = pack(&q, slots, &keys).unwrap();
            let c = decrypt_coeffs(&sk, &ct);
            let stride = n / slots;
            let mut worst_other = 0i64;
            for (k, &v) in c.iter().enumerate() {
                if k % stride == 0 && k / stride < msgs.len() {
                    let want = msgs[k / stride] as i64;
                    assert!((v - want).abs() < 1 << 20, "slots {slots}: position {k}: {v} against {want}");
                } else {
                    worst_other = worst_other.max(v.abs());
                }
            }
            assert!(worst_other < 1 << 20, "slots {slots}: a non-packed coefficient is {worst_other}");
        }
    }

    /// A ring query packs like an LWE query (each value at its position, the rest clean):
    /// a wrong shift direction in a·X^{-i} or a dropped b coefficient breaks it.
    #[test]
    fn ring_query_packs_like_an_lwe_query() {
        let (params, sk, keys) = setup();
        let n = params.n();
        let msgs: Vec<i128> = (0..7).map(|i| (i as i128 - 3) * (1 << 29) + 777 * i as i128).collect();
        let q = Decryptor::new(&sk).encrypt_ring_query(&msgs, params.max_level(), 2f64.powi(30)).unwrap();
        assert!(q.is_ring() && q.count() == 7);
        let back = LweQuery::ring_from_bytes(&params, &q.to_bytes(), 64).unwrap();
        assert_eq!(back, q);
        assert!(LweQuery::from_bytes(&params, &q.to_bytes(), 64).is_err(), "a ring query is not an LWE query");
        let ct = pack(&q, 8, &keys).unwrap();
        let c = decrypt_coeffs(&sk, &ct);
        let stride = n / 8;
        for (k, &v) in c.iter().enumerate() {
            let want = if k % stride == 0 && k / stride < msgs.len() { msgs[k / stride] as i64 } else { 0 };
            assert!((v - want).abs() < 1 << 20, "position {k}: {v} against {want}");
        }
    }

    /// The layer applied before packing: position r·N/slots holds Σ_i M_ri·x_i exactly up
    /// to the noise, for every row (a transposed M, or c0 and c1 from different rows,
    /// each put a wrong value somewhere).
    #[test]
    fn linear_layer_before_packing_lands_its_outputs() {
        let (params, sk, keys) = setup();
        let n = params.n();
        let (inputs, outputs) = (5usize, 6usize);
        let x: Vec<i128> = (0..inputs).map(|i| (i as i128 * 37 - 70) << 16).collect();
        let m: Vec<i64> = (0..outputs * inputs).map(|k| ((k * 7919) % 23) as i64 - 11).collect();
        let q = Decryptor::new(&sk).encrypt_ring_query(&x, params.max_level(), 2f64.powi(16)).unwrap();
        let lin = LinearLeaves::new(&params, params.max_level(), inputs, &m, 1.0).unwrap();
        assert_eq!((lin.inputs(), lin.outputs()), (inputs, outputs));
        let ct = pack_linear(&q, &lin, 8, &keys).unwrap();
        let c = decrypt_coeffs(&sk, &ct);
        let stride = n / 8;
        for (k, &v) in c.iter().enumerate() {
            let want = if k % stride == 0 && k / stride < outputs {
                let r = k / stride;
                (0..inputs).map(|i| m[r * inputs + i] as i128 * x[i]).sum::<i128>() as i64
            } else {
                0
            };
            assert!((v - want).abs() < 1 << 20, "position {k}: {v} against {want}");
        }
        // An LWE query, or one of the wrong length, is refused by shape.
        let lwe = Decryptor::new(&sk).encrypt_lwe(&x, params.max_level(), 2f64.powi(16)).unwrap();
        assert!(matches!(pack_linear(&lwe, &lin, 8, &keys), Err(Error::Shape { .. })));
        let short = Decryptor::new(&sk).encrypt_ring_query(&x[..3], params.max_level(), 2f64.powi(16)).unwrap();
        assert!(matches!(pack_linear(&short, &lin, 8, &keys), Err(Error::Shape { .. })));
        assert!(matches!(pack_linear(&q, &lin, 4, &keys), Err(Error::Shape { .. })));
    }

    /// A missing packing key or a packing into fewer positions than values is a typed
    /// error, not a panic.
    #[test]
    fn missing_keys_and_bad_shapes_are_errors() {
        let (params, sk, keys) = setup();
        let q = Decryptor::new(&sk).encrypt_lwe(&[1, 2, 3], params.max_level(), 2f64.powi(30)).unwrap();
        assert!(matches!(pack(&q, 2, &keys), Err(Error::Shape { .. })));
        assert!(matches!(pack(&q, 6, &keys), Err(Error::Shape { .. })));
        let mut kg = KeyGenerator::new(&params);
        let rot_only = kg.galois_keys(&sk, &[1, 2], false);
        assert!(matches!(pack(&q, 4, &rot_only), Err(Error::MissingGaloisKey { .. })));
        let low: Vec<(u64, usize)> = packing_elements(&params).into_iter().map(|g| (g, 0)).collect();
        let low_keys = kg.galois_keys_with(&sk, &[], None, &low);
        assert!(matches!(pack(&q, 4, &low_keys), Err(Error::KeyBelowLevel { .. })));
        assert!(pack(&q, 4, &keys).is_ok());
    }
}
