//! Residue-number-system helpers: fast base conversion between sets of primes.

use crate::arith::Modulus;
use crate::kernels;

/// Converts residues in basis `from` to residues in basis `to`: the fast base conversion
/// of Bajard et al., y = Σ_i [x_i · B̂_i^{-1}]_{b_i} · B̂_i mod t, with its excess u·B
/// removed and the input centered, so the result is exact (see [`BaseConverter::convert`]).
#[derive(Clone, Debug)]
pub struct BaseConverter {
    /// Indices (into the caller's moduli) of the source primes.
    pub from: Vec<usize>,
    /// Indices of the target primes, in the order of the outputs.
    pub to: Vec<usize>,
    /// (B̂_i^{-1} mod b_i, Shoup companion)
    hat_inv: Vec<(u64, u64)>,
    /// `hat_mod[t][i]` = B̂_i mod to_t, with Shoup companion
    hat_mod: Vec<Vec<(u64, u64)>>,
    /// ⌊B/2⌋ mod each `from` prime (added before a centered conversion)
    half_from: Vec<u64>,
    /// `fix_to[t][u]` = (u·B + ⌊B/2⌋) mod to_t, for u = 0..=from.len(): what a centered,
    /// exact conversion subtracts once it knows the overflow u
    fix_to: Vec<Vec<u64>>,
    /// 1 / b_i, to find the overflow u = ⌊Σ y_i / b_i⌋
    inv_from: Vec<f64>,
}

impl BaseConverter {
    /// The constants for converting from the primes `from` to the primes `to` (indices into `moduli`).
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
        // B is odd, so ⌊B/2⌋ = (B − 1)/2 ≡ (B − 1)·2⁻¹ modulo any odd prime.
        let half_mod = |m: &Modulus| {
            let b = from.iter().fold(1u64, |acc, &j| m.mul(acc, m.reduce(moduli[j].value())));
            m.mul(m.sub(b, 1), m.inv(2))
        };
        let half_from = from.iter().map(|&i| half_mod(&moduli[i])).collect();
        let fix_to = to
            .iter()
            .map(|&t| {
                let m = &moduli[t];
                let b = from.iter().fold(1u64, |acc, &j| m.mul(acc, m.reduce(moduli[j].value())));
                let h = half_mod(m);
                (0..=from.len() as u64).map(|u| m.add(m.mul(m.reduce(u), b), h)).collect()
            })
            .collect();
        let inv_from = from.iter().map(|&i| 1.0 / moduli[i].value() as f64).collect();
        Self { from, to, hat_inv, hat_mod, half_from, fix_to, inv_from }
    }

    /// Exact conversion of the centered representative: `output[t]` receives x mod to_t
    /// for the x ≡ input with |x| ≤ B/2. `input[k]` holds the coefficients (not NTT
    /// values) of residue `from[k]`; a prefix of `to` may be asked for; `scratch` must hold
    /// at least `from.len() * n` words, whose values do not matter (all are overwritten). Key switching needs this rather than the fast
    /// conversion: the fast one's excess u·B (u ∈ [0, k)) and an unsigned lift both
    /// leave every coefficient biased the same way, and a constant bias in every
    /// coefficient is not spread over the slots like noise but piles up in the few slots
    /// near the root 1 — multiplied by the secret, it dominated rotation noise (50× the
    /// rms in the worst slot). The overflow u = ⌊Σ y_i / b_i⌋ is found in floating point,
    /// which is exact except within 2^-40 or so of a boundary, where either
    /// representative is ±B/2 and the error stays bounded.
    ///
    /// Targets t with `f64_out[t]` (a prefix may be given; missing entries are false)
    /// receive centered doubles (f64 bit patterns, integers |x| < q) instead of words in
    /// [0, q): the caller transforms them with `forward_f64` next. Only targets the
    /// floating-point kernels serve may ask for it. An empty output slice skips its target.
    pub fn convert(
        &self,
        moduli: &[Modulus],
        input: &[&[u64]],
        output: &mut [&mut [u64]],
        scratch: &mut [u64],
        f64_out: &[bool],
    ) {
        let n = input[0].len();
        let k = self.from.len();
        if output.iter().all(|o| o.is_empty()) {
            return; // every target filled by the caller: no shift, no overflow counts
        }
        let scratch = &mut scratch[..k * n];
        // y_j = [(x_j + h)·B̂_j⁻¹]_{b_j}: the shift by h = ⌊B/2⌋ makes the lifted value
        // x + h ∈ [0, B), and subtracting h at the end leaves the centered x.
        for (j, y) in scratch.chunks_mut(n).enumerate() {
            let m = &moduli[self.from[j]];
            let (c, cp) = self.hat_inv[j];
            kernels::add_mul_const(y, input[j], self.half_from[j], c, cp, m);
        }
        let ys: Vec<&[u64]> = scratch.chunks(n).collect();
        let mut over = vec![0u32; n];
        kernels::overflow_counts(&mut over, &ys, &self.inv_from);
        let from_q: Vec<u64> = self.from.iter().map(|&i| moduli[i].value()).collect();
        let bound = from_q.iter().copied().max().unwrap_or(0);
        #[cfg(target_arch = "x86_64")]
        let mut fp_targets = Vec::new();
        for (t, out) in output.iter_mut().enumerate() {
            if out.is_empty() {
                continue; // the caller fills this target itself
            }
            let m = &moduli[self.to[t]];
            #[cfg(target_arch = "x86_64")]
            if bound < (1 << 61) && crate::x86_64::fma::usable(m.value()) && n.is_multiple_of(4) {
                let fix = &self.fix_to[t];
                fp_targets.push(crate::x86_64::fma::ConvTarget {
                    out: &mut out[..],
                    q: m.value(),
                    hat: self.hat_mod[t].iter().map(|&(c, _)| c).collect(),
                    b: m.sub(fix[1], fix[0]),
                    half: fix[0],
                    f64_out: f64_out.get(t).copied().unwrap_or(false),
                });
                continue;
            }
            assert!(!f64_out.get(t).copied().unwrap_or(false), "doubles asked of an integer target");
            kernels::convert_target(out, &ys, &self.hat_mod[t], &from_q, &over, &self.fix_to[t], m);
        }
        #[cfg(target_arch = "x86_64")]
        if !fp_targets.is_empty() {
            let wide: Vec<bool> = self.from.iter().map(|&i| moduli[i].value() >= crate::x86_64::fma::MAX_Q).collect();
            // Targets were chosen where the kernels serve their primes, so the token exists.
            let t = crate::isa::fma_tier().expect("floating-point targets only where FMA runs");
            crate::x86_64::fma::convert(t, &mut fp_targets, &ys, &wide, &over);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primes::ntt_primes;

    /// The conversion is exact for the centered representative, on every kernel path: the
    /// floating-point one (inputs and targets below 2^50) and the integer one (a 60-bit
    /// prime on either side). x = ±(B/2 − small) and 0 are in the inputs.
    #[test]
    fn conversion_is_exact_for_the_centered_value() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        // The last two: many inputs (u·B reaches 14·2^50, past what a double holds exactly
        // unreduced), wide ones among them, into 50-bit targets.
        let many = (vec![61u32; 14], vec![50u32; 6]);
        let mixed = (vec![49u32, 61, 49, 61, 49, 61, 49], vec![50u32, 49, 40, 61]);
        for (from_bits, to_bits) in [
            (vec![40u32, 40, 40], vec![50u32, 40, 60]),
            (vec![60, 40], vec![50, 50, 40]),
            (vec![49], vec![40, 60, 50]),
            (vec![40], vec![40, 47, 50, 60, 30]),
            (vec![60], vec![40, 50]),
            many,
            mixed,
        ] {
            let many = from_bits.len() >= 10;
            let n = if many { 1024 } else { 64 };
            let mut used = Vec::new();
            let mut primes = |bits: &[u32]| -> Vec<u64> {
                bits.iter()
                    .map(|&b| {
                        let p = ntt_primes(b, n, 1, &used).unwrap()[0];
                        used.push(p);
                        p
                    })
                    .collect()
            };
            let fp = primes(&from_bits);
            let tp = if many {
                // Targets where B mod q is near q, so that u·B is near its largest.
                let b_mod = |q: u64| {
                    let m = Modulus::new(q);
                    fp.iter().fold(1, |acc, &p| m.mul(acc, m.reduce(p)))
                };
                let cands = ntt_primes(50, n, 600, &fp).unwrap();
                let tp: Vec<u64> = cands.into_iter().filter(|&q| b_mod(q) > q / 100 * 95).take(to_bits.len()).collect();
                assert_eq!(tp.len(), to_bits.len());
                tp
            } else {
                primes(&to_bits)
            };
            let moduli: Vec<Modulus> = fp.iter().chain(&tp).map(|&p| Modulus::new(p)).collect();
            let k = fp.len();
            let conv = BaseConverter::new(&moduli, (0..k).collect(), (k..k + tp.len()).collect());
            // Half of B, capped to what i128 arithmetic checks (the overflow counts u depend
            // on the shifted values, not on the size of x, so small x still give large u).
            let log_b: u32 = from_bits.iter().sum();
            let big_b: u128 = if log_b < 126 { fp.iter().map(|&p| p as u128).product() } else { 1u128 << 125 };
            let xs: Vec<i128> = (0..n)
                .map(|i| {
                    let r = ((next() as u128) << 64 | next() as u128) % (big_b / 2);
                    match i % 8 {
                        0 => 0,
                        // Not within 2^-40·B of ±B/2, where the overflow estimate may take the other representative.
                        1 => (big_b / 2 - big_b / (1 << 30)) as i128,
                        2 => -((big_b / 2 - big_b / (1 << 30)) as i128),
                        _ if i % 2 == 0 => r as i128,
                        _ => -(r as i128),
                    }
                })
                .collect();
            let residues = |p: u64| -> Vec<u64> { xs.iter().map(|&x| x.rem_euclid(p as i128) as u64).collect() };
            let input: Vec<Vec<u64>> = fp.iter().map(|&p| residues(p)).collect();
            let mut out: Vec<Vec<u64>> = tp.iter().map(|_| vec![u64::MAX; n]).collect();
            let mut scratch = vec![0u64; k * n];
            {
                let inp: Vec<&[u64]> = input.iter().map(|v| v.as_slice()).collect();
                let mut outs: Vec<&mut [u64]> = out.iter_mut().map(|v| v.as_mut_slice()).collect();
                conv.convert(&moduli, &inp, &mut outs, &mut scratch, &[]);
            }
            for (t, &p) in tp.iter().enumerate() {
                assert_eq!(out[t], residues(p), "from {from_bits:?} to {p} ({} bits)", to_bits[t]);
            }
            // Centered doubles where the floating-point kernels serve the target.
            #[cfg(target_arch = "x86_64")]
            {
                let f64_out: Vec<bool> = tp.iter().map(|&p| crate::x86_64::fma::usable(p)).collect();
                let inp: Vec<&[u64]> = input.iter().map(|v| v.as_slice()).collect();
                let mut outs: Vec<&mut [u64]> = out.iter_mut().map(|v| v.as_mut_slice()).collect();
                conv.convert(&moduli, &inp, &mut outs, &mut scratch, &f64_out);
                for (t, &p) in tp.iter().enumerate() {
                    if f64_out[t] {
                        let got: Vec<u64> = out[t]
                            .iter()
                            .map(|&w| {
                                let x = f64::from_bits(w);
                                // The contract: integers |x| < q (what `forward_f64` takes).
                                assert!(x.abs() < p as f64 && x.fract() == 0.0);
                                (x as i64).rem_euclid(p as i64) as u64
                            })
                            .collect();
                        assert_eq!(got, residues(p), "doubles, from {from_bits:?} to {p}");
                    } else {
                        assert_eq!(out[t], residues(p));
                    }
                }
            }
        }
    }
}
