//! RNS polynomials: `limbs` residue vectors of N words, limb-major in one buffer.
//! Which prime each limb belongs to is the caller's knowledge (a ciphertext's limb i
//! is q_i); these helpers take the moduli explicitly.

use rayon::prelude::*;
use zeroize::Zeroize;

use crate::arith::Modulus;
use crate::kernels;
use crate::ntt::NttTable;

/// Work below this many words stays on the calling thread: spawning costs more.
const PAR_MIN_WORDS: usize = 1 << 14;

/// An RNS polynomial: `limbs` residue vectors of N words each, limb-major in one
/// buffer that comes from (and returns to) a per-thread pool.
#[derive(Debug, PartialEq, Eq, Zeroize)]
pub struct Poly {
    pub(crate) data: Vec<u64>,
    pub(crate) n: usize,
}

/// Buffers of dropped polynomials, per thread, for the next ones: fresh megabyte
/// allocations come from the OS as untouched pages, and faulting them in (the kernel
/// zeroes each page) cost a tenth of a key switch.
const POOL_MAX_BUFFERS: usize = 48;
const POOL_MIN_WORDS: usize = 1 << 12;

thread_local! {
    static POOL: std::cell::RefCell<Vec<Vec<u64>>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn take_pooled(len: usize) -> Option<Vec<u64>> {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        // First a buffer whose length already covers the request (`pooled_any` then writes
        // nothing: zero-filling the tail of a truncated buffer on reuse was 2% of a key
        // switch), then the tightest capacity, so that small requests leave the large
        // buffers to large ones.
        let i = (0..p.len())
            .filter(|&i| p[i].capacity() >= len && p[i].capacity() <= 2 * len)
            .min_by_key(|&i| (p[i].len() < len, p[i].capacity()))?;
        // `remove`, not `swap_remove`: the pool stays in order of return, oldest first.
        Some(p.remove(i))
    })
}

/// A zeroed buffer.
fn pooled(len: usize) -> Vec<u64> {
    match take_pooled(len) {
        Some(mut v) => {
            v.clear();
            v.resize(len, 0);
            v
        }
        None => vec![0; len],
    }
}

/// A buffer whose contents are unspecified (stale values of a dropped polynomial, or
/// zeros): for callers that write every word. Saves the memset of `pooled`, which was
/// a tenth of a key switch.
fn pooled_any(len: usize) -> Vec<u64> {
    match take_pooled(len) {
        Some(mut v) => {
            v.truncate(len);
            v.resize(len, 0); // zeroes only words beyond the stale length
            v
        }
        None => vec![0; len],
    }
}

impl Drop for Poly {
    /// Returns the buffer to the pool — unless the polynomial was zeroized (its buffer
    /// is then empty): what held a secret, or a value derived from one, goes back to the
    /// allocator wiped, never to a pool that hands stale words to the next polynomial.
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.data);
        if !v.is_empty() && v.capacity() >= POOL_MIN_WORDS {
            // try_with: the pool may already be gone while a thread exits.
            let _ = POOL.try_with(|p| {
                if let Ok(mut p) = p.try_borrow_mut() {
                    // Full: the buffer that went unused longest makes room. Keeping the
                    // first 48 instead let sizes nothing asks for any more (key generation's)
                    // fill the pool for good, and every key switch then faulted fresh pages
                    // in again (a third of its time in the peer benchmark).
                    if p.len() >= POOL_MAX_BUFFERS {
                        p.remove(0);
                    }
                    p.push(v);
                }
            });
        }
    }
}

impl Clone for Poly {
    fn clone(&self) -> Self {
        let data = match take_pooled(self.data.len()) {
            Some(mut v) => {
                v.clear();
                v.extend_from_slice(&self.data);
                v
            }
            None => self.data.clone(),
        };
        Self { data, n: self.n }
    }
}

impl Poly {
    /// `limbs` zero limbs of degree `n`.
    pub fn zero(n: usize, limbs: usize) -> Self {
        Self { data: pooled(n * limbs), n }
    }
    /// A polynomial with unspecified values, for callers that overwrite every limb.
    pub fn scratch(n: usize, limbs: usize) -> Self {
        Self { data: pooled_any(n * limbs), n }
    }
    #[inline]
    /// Number of limbs (primes).
    pub fn limbs(&self) -> usize {
        self.data.len() / self.n
    }
    #[inline]
    /// Limb i: N residues.
    pub fn limb(&self, i: usize) -> &[u64] {
        &self.data[i * self.n..(i + 1) * self.n]
    }
    #[inline]
    /// Limb i, writable.
    pub fn limb_mut(&mut self, i: usize) -> &mut [u64] {
        &mut self.data[i * self.n..(i + 1) * self.n]
    }
    /// Keeps the first `limbs` limbs (drops the top primes).
    pub fn truncate(&mut self, limbs: usize) {
        self.data.truncate(limbs * self.n);
    }
    /// The ring degree N.
    #[inline]
    pub fn n(&self) -> usize {
        self.n
    }
    /// Every limb, limb-major.
    #[inline]
    pub fn data(&self) -> &[u64] {
        &self.data
    }
    /// Every limb, limb-major, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u64] {
        &mut self.data
    }
    fn chunks_mut(&mut self) -> std::slice::ChunksMut<'_, u64> {
        let n = self.n;
        self.data.chunks_mut(n)
    }

    /// Forward NTT of every limb; `tables[i]` belongs to limb i.
    pub fn ntt(&mut self, tables: &[&NttTable]) {
        let n = self.n;
        self.data.par_chunks_mut(n).zip(tables.par_iter()).for_each(|(c, t)| t.forward(c));
    }
    /// The inverse transform of the first `tables.len()` limbs of `src`, into a new polynomial.
    pub fn intt_of(src: &Poly, tables: &[&NttTable]) -> Poly {
        let n = src.n;
        assert!(src.limbs() >= tables.len());
        // Every limb is written by the transform.
        let mut out = Poly::scratch(n, tables.len());
        out.data.par_chunks_mut(n).zip(src.data.par_chunks(n)).zip(tables.par_iter()).for_each(|((o, i), t)| {
            t.inverse_into(i, o);
        });
        out
    }
    /// Inverse NTT of every limb; `tables[i]` belongs to limb i.
    pub fn intt(&mut self, tables: &[&NttTable]) {
        let n = self.n;
        self.data.par_chunks_mut(n).zip(tables.par_iter()).for_each(|(c, t)| t.inverse(c));
    }

    /// Fills limb i from small signed integers (secret, error or message coefficients).
    pub fn from_signed(values: &[i64], moduli: &[&Modulus]) -> Self {
        let n = values.len();
        let mut p = Self::zero(n, moduli.len());
        for (chunk, m) in p.chunks_mut().zip(moduli) {
            let q = m.value();
            for (o, &v) in chunk.iter_mut().zip(values) {
                *o = if v >= 0 { m.reduce(v as u64) } else { m.neg(m.reduce(v.unsigned_abs())) };
                debug_assert!(*o < q);
            }
        }
        p
    }

    /// Fills limb i from wide signed integers (flooding noise beyond 2^63).
    pub fn from_signed_wide(values: &[i128], moduli: &[&Modulus]) -> Self {
        let n = values.len();
        let mut p = Self::zero(n, moduli.len());
        for (chunk, m) in p.chunks_mut().zip(moduli) {
            for (o, &v) in chunk.iter_mut().zip(values) {
                *o = m.reduce_i128(v);
            }
        }
        p
    }

    /// self += other, limb by limb.
    pub fn add_assign(&mut self, other: &Poly, moduli: &[&Modulus]) {
        self.zip_slices(other, moduli, kernels::add_assign);
    }
    /// self −= other, limb by limb.
    pub fn sub_assign(&mut self, other: &Poly, moduli: &[&Modulus]) {
        self.zip_slices(other, moduli, kernels::sub_assign);
    }
    /// Pointwise product (both operands in NTT form).
    pub fn mul_assign(&mut self, other: &Poly, moduli: &[&Modulus]) {
        self.zip_slices(other, moduli, kernels::mul_assign);
    }
    /// self = −self.
    pub fn neg_assign(&mut self, moduli: &[&Modulus]) {
        for (c, m) in self.chunks_mut().zip(moduli) {
            for x in c.iter_mut() {
                *x = m.neg(*x);
            }
        }
    }
    /// a · b, pointwise, into a new polynomial (no copy of a first).
    pub fn product(a: &Poly, b: &Poly, moduli: &[&Modulus]) -> Poly {
        let n = a.n;
        // The output comes from the pool unzeroed: every limb must be written.
        assert!(a.limbs() >= moduli.len() && b.limbs() >= moduli.len());
        let mut out = Poly::scratch(n, moduli.len());
        type Item<'a> = ((&'a mut [u64], (&'a [u64], &'a [u64])), &'a &'a Modulus);
        let work = |((o, (x, y)), m): Item| kernels::mul_into(o, x, y, m);
        if out.data.len() >= PAR_MIN_WORDS {
            out.data.par_chunks_mut(n).zip(a.data.par_chunks(n).zip(b.data.par_chunks(n))).zip(moduli).for_each(work);
        } else {
            out.data.chunks_mut(n).zip(a.data.chunks(n).zip(b.data.chunks(n))).zip(moduli).for_each(work);
        }
        out
    }
    /// self += a · b, pointwise.
    pub fn mul_add_assign(&mut self, a: &Poly, b: &Poly, moduli: &[&Modulus]) {
        let n = self.n;
        type Item<'a> = ((&'a mut [u64], (&'a [u64], &'a [u64])), &'a &'a Modulus);
        let work = |((o, (x, y)), m): Item| {
            let mut t = Poly::scratch(x.len(), 1);
            t.data.copy_from_slice(x);
            kernels::mul_assign(&mut t.data, y, m);
            kernels::add_assign(o, &t.data, m);
        };
        if self.data.len() >= PAR_MIN_WORDS {
            self.data.par_chunks_mut(n).zip(a.data.par_chunks(n).zip(b.data.par_chunks(n))).zip(moduli).for_each(work);
        } else {
            self.data.chunks_mut(n).zip(a.data.chunks(n).zip(b.data.chunks(n))).zip(moduli).for_each(work);
        }
    }
    /// Multiplies limb i by the constant c_i.
    pub fn mul_scalar_assign(&mut self, consts: &[u64], moduli: &[&Modulus]) {
        for ((c, m), &k) in self.chunks_mut().zip(moduli).zip(consts) {
            crate::kernels::mul_const_assign(c, k, m.shoup(k), m);
        }
    }
    /// Adds the constant c_i to every value of limb i (in NTT form this adds a constant polynomial).
    pub fn add_scalar_assign(&mut self, consts: &[u64], moduli: &[&Modulus]) {
        for ((c, m), &k) in self.chunks_mut().zip(moduli).zip(consts) {
            for x in c.iter_mut() {
                *x = m.add(*x, k);
            }
        }
    }

    fn zip_slices(&mut self, other: &Poly, moduli: &[&Modulus], f: fn(&mut [u64], &[u64], &Modulus)) {
        let n = self.n;
        debug_assert!(other.data.len() >= self.data.len());
        let work = |((a, b), m): ((&mut [u64], &[u64]), &&Modulus)| f(a, b, m);
        if self.data.len() >= PAR_MIN_WORDS {
            self.data.par_chunks_mut(n).zip(other.data.par_chunks(n)).zip(moduli).for_each(work);
        } else {
            self.data.chunks_mut(n).zip(other.data.chunks(n)).zip(moduli).for_each(work);
        }
    }

    /// Applies a permutation of NTT positions to every limb: out[k] = in[perm[k]].
    pub fn permute(&self, perm: &[u32]) -> Poly {
        let n = self.n;
        assert_eq!(perm.len(), n, "a permutation of every position (the output is unzeroed)");
        let mut out = Poly::scratch(n, self.limbs());
        for (o, i) in out.data.chunks_mut(n).zip(self.data.chunks(n)) {
            for (x, &p) in o.iter_mut().zip(perm) {
                *x = i[p as usize];
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pooled_buffers() -> usize {
        POOL.with(|p| p.borrow().len())
    }

    /// A zeroized polynomial (a secret, or a value derived from one) never reaches the
    /// pool; any other large one does.
    #[test]
    fn zeroized_buffers_never_enter_the_pool() {
        let n = POOL_MIN_WORDS;
        let before = pooled_buffers();
        let mut secret = Poly::zero(n, 2);
        secret.data_mut().fill(7);
        secret.zeroize();
        drop(secret);
        assert_eq!(pooled_buffers(), before);
        drop(Poly::zero(n, 2));
        assert_eq!(pooled_buffers(), (before + 1).min(POOL_MAX_BUFFERS));
        // And what the pool hands out next is zeroed or overwritten, never the secret.
        let reused = Poly::zero(n, 2);
        assert!(reused.data().iter().all(|&w| w == 0));
    }
}
