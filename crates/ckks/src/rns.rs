//! Residue-number-system helpers: fast base conversion between sets of primes.

use crate::arith::Modulus;
use crate::simd;

/// Converts residues in basis `from` to residues in basis `to` by the fast (approximate)
/// base conversion of Bajard et al.: y = Σ_i [x_i · B̂_i^{-1}]_{b_i} · B̂_i mod t. The
/// result is x + u·B for a small u ≥ 0, an excess that key switching and rescaling absorb.
#[derive(Clone, Debug)]
pub(crate) struct BaseConverter {
    pub from: Vec<usize>,
    pub to: Vec<usize>,
    /// (B̂_i^{-1} mod b_i, Shoup companion)
    hat_inv: Vec<(u64, u64)>,
    /// `hat_mod[t][i]` = B̂_i mod to_t, with Shoup companion
    hat_mod: Vec<Vec<(u64, u64)>>,
}

impl BaseConverter {
    pub fn new(moduli: &[Modulus], from: Vec<usize>, to: Vec<usize>) -> Self {
        let hat_inv = from
            .iter()
            .map(|&i| {
                let m = &moduli[i];
                let hat =
                    from.iter().filter(|&&j| j != i).fold(1u64, |acc, &j| m.mul(acc, m.reduce(moduli[j].value())));
                let inv = m.inv(hat);
                (inv, m.shoup(inv))
            })
            .collect();
        let hat_mod = to
            .iter()
            .map(|&t| {
                let mt = &moduli[t];
                from.iter()
                    .map(|&i| {
                        let c = from
                            .iter()
                            .filter(|&&j| j != i)
                            .fold(1u64, |acc, &j| mt.mul(acc, mt.reduce(moduli[j].value())));
                        (c, mt.shoup(c))
                    })
                    .collect()
            })
            .collect();
        Self { from, to, hat_inv, hat_mod }
    }

    /// `input[k]` holds the coefficients (not NTT values) of residue `from[k]`;
    /// `output[t]` receives those of `to[t]` (a prefix of `to` may be asked for).
    /// `scratch` holds `from.len() * n` words.
    pub fn convert(&self, moduli: &[Modulus], input: &[&[u64]], output: &mut [&mut [u64]], scratch: &mut Vec<u64>) {
        let n = input[0].len();
        let k = self.from.len();
        scratch.clear();
        scratch.resize(k * n, 0);
        for (j, (y, &pair)) in scratch.chunks_mut(n).zip(&self.hat_inv).enumerate() {
            let m = &moduli[self.from[j]];
            simd::dot_const_bounded(y, &[input[j]], &[pair], m, m.value());
        }
        // Every y_j is below its own prime b_j.
        let bound = self.from.iter().map(|&i| moduli[i].value()).max().unwrap_or(0);
        let ys: Vec<&[u64]> = scratch.chunks(n).collect();
        for (t, out) in output.iter_mut().enumerate() {
            simd::dot_const_bounded(out, &ys, &self.hat_mod[t], &moduli[self.to[t]], bound);
        }
    }
}
