//! Linear models over encrypted inputs: k scores Σ_j w_ij·x_j + b_i from d ciphertexts.

use rand_core::{CryptoRng, RngCore};
use rug::Integer;

use crate::bigint::{multi_pow, random_below, random_bits, FixedBase};
use crate::encoding::FixedPoint;
use crate::error::PaillierError;
use crate::keys::{Ciphertext, PublicKey};

/// A plaintext linear model in fixed point: integer weights (k × d, scaled by 2^weight_frac)
/// and biases scaled by 2^(input_frac + weight_frac), so that a score is exact in integers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinearModel {
    rows: usize,
    cols: usize,
    weights: Vec<i64>,
    bias: Vec<Integer>,
    input: FixedPoint,
    weight: FixedPoint,
}

impl LinearModel {
    /// A model from integer weights (rows of equal length) and biases, with the encodings
    /// they are in.
    pub fn new(
        weights: Vec<Vec<i64>>,
        bias: Vec<Integer>,
        input: FixedPoint,
        weight: FixedPoint,
    ) -> Result<Self, PaillierError> {
        let rows = weights.len();
        let cols = weights.first().map_or(0, Vec::len);
        if rows == 0 || cols == 0 || weights.iter().any(|r| r.len() != cols) || bias.len() != rows {
            return Err(PaillierError::Invalid {
                field: "linear model",
                detail: format!(
                    "need k ≥ 1 rows of d ≥ 1 weights each and k biases (got {rows} rows, {} biases)",
                    bias.len()
                ),
            });
        }
        if input.frac_bits() + weight.frac_bits() > crate::encoding::MAX_FRAC_BITS {
            return Err(PaillierError::Invalid {
                field: "fractional bits",
                detail: format!(
                    "inputs at {} and weights at {} make scores with more than {} fractional bits",
                    input.frac_bits(),
                    weight.frac_bits(),
                    crate::encoding::MAX_FRAC_BITS
                ),
            });
        }
        if bias.iter().any(|b| b.significant_bits() > 2 * crate::encoding::MAX_ENCODED_BITS) {
            return Err(PaillierError::Invalid { field: "bias", detail: "magnitude of 2^252 or more".into() });
        }
        Ok(Self { rows, cols, weights: weights.concat(), bias, input, weight })
    }

    /// Quantizes real weights and biases: w → round(w·2^weight_frac), b → round(b·2^(input_frac+weight_frac)).
    pub fn quantize(
        weights: &[Vec<f64>],
        bias: &[f64],
        input: FixedPoint,
        weight: FixedPoint,
    ) -> Result<Self, PaillierError> {
        let w = weights
            .iter()
            .map(|r| r.iter().map(|&x| weight.encode_i64(x)).collect::<Result<Vec<_>, _>>())
            .collect::<Result<Vec<_>, _>>()?;
        let score = FixedPoint::new(input.frac_bits() + weight.frac_bits())?; // refused if over the maximum
        let b = bias.iter().map(|&x| score.encode(x)).collect::<Result<Vec<_>, _>>()?;
        Self::new(w, b, input, weight)
    }

    /// Number of scores k.
    pub fn outputs(&self) -> usize {
        self.rows
    }

    /// Number of inputs d.
    pub fn inputs(&self) -> usize {
        self.cols
    }

    /// Row i's integer weights.
    pub fn row(&self, i: usize) -> &[i64] {
        &self.weights[i * self.cols..(i + 1) * self.cols]
    }

    /// Integer biases (scaled by 2^(input_frac + weight_frac)).
    pub fn bias(&self) -> &[Integer] {
        &self.bias
    }

    /// Encoding the inputs must be in.
    pub fn input_encoding(&self) -> FixedPoint {
        self.input
    }

    /// Encoding of the scores: input_frac + weight_frac fractional bits.
    pub fn score_encoding(&self) -> FixedPoint {
        FixedPoint::new(self.input.frac_bits() + self.weight.frac_bits()).expect("checked in new")
    }

    /// The bits of the largest |score| for inputs with |x| < 2^input_bits (encoded integers):
    /// what `SecretKey::decrypt_bounded` (feature `secret-key`) may be told.
    pub fn score_bound_bits(&self, input_bits: u32) -> u32 {
        (0..self.rows)
            .map(|i| {
                let mut s: Integer = self.row(i).iter().map(|&w| Integer::from(w.unsigned_abs())).sum();
                s <<= input_bits;
                s += self.bias[i].clone().abs();
                s.significant_bits() + 1
            })
            .max()
            .unwrap_or(0)
    }

    /// The same computation on plaintext integers: the exact reference for the decrypted scores.
    pub fn evaluate_plain(&self, x: &[Integer]) -> Result<Vec<Integer>, PaillierError> {
        if x.len() != self.cols {
            return Err(PaillierError::Dimension { expected: self.cols, found: x.len() });
        }
        Ok((0..self.rows)
            .map(|i| {
                let mut s = self.bias[i].clone();
                for (w, v) in self.row(i).iter().zip(x) {
                    s += Integer::from(v * *w);
                }
                s
            })
            .collect())
    }
}

/// How answers are re-randomized before they leave the server. Without it the answer's
/// randomness is Π r_j^{w_ij}, which a client that kept its r_j could test weights against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rerandomize {
    /// No re-randomization: only for a trusted client (or measurement).
    Off,
    /// Multiply by (h^n)^e · (−1)^s, e uniform over 2^(bits(n)+128), s a random bit, h a fixed
    /// unit with Jacobi symbol −1: from a fixed-base table, ~5× cheaper than a fresh r^n.
    /// Uniform over the n-th residues when n is a product of safe primes (as keys made here are).
    FixedBase,
    /// Multiply by a fresh r^n, r uniform in Z*_n: uniform for any modulus, full cost.
    Fresh,
}

/// Window of the server's re-randomization table (≈ 15 MB per 3072-bit key).
const RERANDOMIZE_WINDOW: u32 = 5;

/// Evaluates linear models under one public key (the server side).
pub struct Evaluator {
    key: PublicKey,
    mode: Rerandomize,
    table: Option<FixedBase>,
    /// Re-randomizers computed ahead of requests (offline/online split), each used once.
    pool: std::sync::Mutex<Vec<Integer>>,
}

impl Evaluator {
    /// An evaluator for `key`; [`Rerandomize::FixedBase`] builds its table here (tens of ms),
    /// once per registered key.
    pub fn new(key: PublicKey, mode: Rerandomize, rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let table = (mode == Rerandomize::FixedBase).then(|| {
            let n = key.n();
            let h = loop {
                let h = random_below(rng, n);
                if h.jacobi(n) == -1 {
                    break h;
                }
            };
            let hn = Integer::from(h.pow_mod_ref(n, key.nn()).expect("non-negative exponent"));
            FixedBase::new(&hn, key.nn(), key.modulus_bits() + 128, RERANDOMIZE_WINDOW, false)
        });
        Self { key, mode, table, pool: Default::default() }
    }

    /// Computes `count` re-randomizers now (e.g. while the server is idle) so that as many
    /// later answers take one multiplication for theirs; each is used once, then evaluation
    /// computes them inline again. Nothing to do with [`Rerandomize::Off`].
    pub fn precompute(&self, count: usize, rng: &mut (impl RngCore + CryptoRng)) {
        let fresh: Vec<Integer> = (0..count).filter_map(|_| self.compute_rerandomizer(rng)).collect();
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).extend(fresh);
    }

    /// Re-randomizers waiting in the pool.
    pub fn precomputed(&self) -> usize {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The key this evaluator works under.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    /// The re-randomization applied to answers.
    pub fn mode(&self) -> Rerandomize {
        self.mode
    }

    /// The k encrypted scores of `model` on the encrypted inputs `x`. Each score is a
    /// multi-exponentiation (Bos–Coster) over the positive weights divided by one over the
    /// negative weights' magnitudes, times g^{b_i}, times the re-randomizer (taken from the
    /// pool [`Self::precompute`] filled, when it has one).
    pub fn evaluate(
        &self,
        model: &LinearModel,
        x: &[Ciphertext],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<Ciphertext>, PaillierError> {
        if x.len() != model.inputs() {
            return Err(PaillierError::Dimension { expected: model.inputs(), found: x.len() });
        }
        for (i, c) in x.iter().enumerate() {
            self.key.check(&c.0, i)?;
        }
        let nn = self.key.nn();
        let mut out = Vec::with_capacity(model.outputs());
        for i in 0..model.outputs() {
            // Π_{w>0} c^w · (Π_{w<0} c^|w|)^-1: one inversion per score, not one per negative weight.
            let row = model.row(i);
            let part = |negative: bool| {
                let (bases, exps): (Vec<Integer>, Vec<u64>) = row
                    .iter()
                    .zip(x)
                    .filter(|&(&w, _)| w != 0 && (w < 0) == negative)
                    .map(|(&w, c)| (c.0.clone(), w.unsigned_abs()))
                    .unzip();
                multi_pow(bases, &exps, nn)
            };
            let mut c = part(false);
            let neg = part(true);
            if neg != 1 {
                c *= neg.invert(nn).expect("a product of units is a unit");
                c %= nn;
            }
            c *= self.key.g_pow(&model.bias()[i]);
            c %= nn;
            if let Some(r) = self.rerandomizer(rng) {
                c *= r;
                c %= nn;
            }
            out.push(Ciphertext(c));
        }
        Ok(out)
    }

    fn rerandomizer(&self, rng: &mut (impl RngCore + CryptoRng)) -> Option<Integer> {
        if self.mode == Rerandomize::Off {
            return None;
        }
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        pooled.or_else(|| self.compute_rerandomizer(rng))
    }

    fn compute_rerandomizer(&self, rng: &mut (impl RngCore + CryptoRng)) -> Option<Integer> {
        let (n, nn) = (self.key.n(), self.key.nn());
        match self.mode {
            Rerandomize::Off => None,
            Rerandomize::FixedBase => {
                let table = self.table.as_ref().expect("built in new");
                let e = random_bits(rng, table.exp_bits());
                let mut r = table.pow(&e);
                if rng.next_u32() & 1 == 1 {
                    r = nn - r;
                }
                Some(r)
            }
            Rerandomize::Fresh => {
                let r = loop {
                    let r = random_below(rng, n);
                    if Integer::from(r.gcd_ref(n)) == 1 {
                        break r;
                    }
                };
                Some(r.pow_mod(n, nn).expect("non-negative exponent"))
            }
        }
    }
}
