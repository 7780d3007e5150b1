//! Parameter selection: the smallest ring degree whose 128-bit bound holds the prime
//! chain the depth and precision need, and the key-switching split (dnum, special
//! primes) that makes the evaluation keys smallest.

use ckks::{max_log_qp, Parameters};

use crate::noise::{ks_factor, NoiseEstimate};
use crate::CompileError;

#[derive(Clone, Debug)]
pub struct ParamRequest {
    pub depth: u32,
    /// log2 of the scale (bits of every rescaling prime).
    pub scale_bits: Option<u32>,
    /// Smallest scale bits whatever the noise analysis says, when not fixed.
    pub min_scale_bits: u32,
    /// CKKS noise analysis: a set is taken only if its scale keeps `noise_quantile` of
    /// the calibration samples' top-1 class under its key-switching split's noise.
    pub noise: Option<NoiseEstimate>,
    pub noise_quantile: f64,
    /// Bits of q0 above the scale (room for the output's magnitude).
    pub headroom_bits: u32,
    pub min_slots: usize,
    pub galois_keys: usize,
    pub relin: bool,
    pub min_log_n: u32,
}

#[derive(Clone, Debug)]
pub struct Choice {
    pub params: Parameters,
    pub scale_bits: u32,
    pub key_bytes_each: usize,
    /// Key-switch noise factor of this set (see [`crate::noise::ks_factor`]).
    pub ks_factor: f64,
    /// Scale bits the noise analysis asks for with this set's key switching.
    pub needed_scale_bits: u32,
}

/// Scale bits tried, best precision first, when the user does not fix them (from
/// `min_scale_bits` up; q0 = scale + headroom must stay within 60 bits).
const SCALE_RANGE: std::ops::RangeInclusive<u32> = 20..=50;

pub fn choose(req: &ParamRequest) -> Result<Choice, CompileError> {
    let mut why = String::new();
    for log_n in req.min_log_n.max(12)..=16 {
        let slots = 1usize << (log_n - 1);
        if slots < req.min_slots {
            continue;
        }
        let bound = max_log_qp(log_n).unwrap_or(0);
        let scales: Vec<u32> = match req.scale_bits {
            Some(s) => vec![s],
            None => SCALE_RANGE.rev().filter(|&s| s >= req.min_scale_bits && s + req.headroom_bits <= 60).collect(),
        };
        // Candidates from bit sizes alone (building a parameter set costs its NTT
        // tables): per scale, the split with the smallest evaluation keys.
        struct Cand {
            s: u32,
            bytes: f64,
            q_bits: Vec<u32>,
            p_bits: Vec<u32>,
            dnum: usize,
            ks: f64,
            needed: u32,
        }
        let mut found: Vec<Cand> = vec![];
        for s in scales {
            let q0 = (s + req.headroom_bits).min(60);
            let l = req.depth as usize + 1;
            let mut q_bits = vec![q0];
            q_bits.extend(std::iter::repeat_n(s, req.depth as usize));
            let log_q: u32 = q_bits.iter().sum();
            let mut best: Option<Cand> = None;
            // P a little above the largest digit divides every key switch's noise by
            // 2^(P − digit) for a few bits of the security budget: let the noise decide.
            for (dnum, extra) in (1..=l).flat_map(|d| [0u32, 3, 6, 10].map(|e| (d, e))) {
                let alpha = l.div_ceil(dnum);
                if l.div_ceil(alpha) != dnum {
                    continue;
                }
                let digit: u32 = q_bits.chunks(alpha).map(|c| c.iter().sum::<u32>()).max().unwrap();
                let p_total = (digit.saturating_sub(1) + extra).max(20);
                let k = p_total.div_ceil(60) as usize;
                let each = p_total.div_ceil(k as u32).max(20);
                let p_bits = vec![each; k];
                if log_q + each * k as u32 > bound {
                    continue;
                }
                // Noise: the largest digit over P scales every key switch's noise.
                let ks = ks_factor(dnum, 2f64.powi(digit as i32 - (each * k as u32) as i32));
                let needed = req
                    .noise
                    .as_ref()
                    .map(|n| n.min_scale_bits(req.noise_quantile, ks))
                    .unwrap_or(0)
                    .max(req.min_scale_bits);
                if req.scale_bits.is_none() && s < needed {
                    why = format!("CKKS noise needs a scale of 2^{needed} with dnum {dnum}");
                    continue;
                }
                let keys = req.galois_keys + usize::from(req.relin);
                let bytes = (keys * dnum) as f64 * (1u64 << log_n) as f64 * (log_q + each * k as u32) as f64 / 8.0;
                // A fixed scale below what noise asks for: the least noisy split first.
                let rank = |needed: u32, bytes: f64| (if req.scale_bits.is_some() { needed.max(s) } else { 0 }, bytes);
                if best.as_ref().map(|c| rank(needed, bytes) < rank(c.needed, c.bytes)).unwrap_or(true) {
                    best = Some(Cand { s, bytes, q_bits: q_bits.clone(), p_bits, dnum, ks, needed });
                }
            }
            found.extend(best);
        }
        // Precision against key size: the largest scale whose keys stay within 1.5× the smallest.
        while let Some(min) = found.iter().map(|f| f.bytes).min_by(f64::total_cmp) {
            let i = (0..found.len()).filter(|&i| found[i].bytes <= min * 1.5).max_by_key(|&i| found[i].s).unwrap();
            let c = found.swap_remove(i);
            let built = Parameters::builder()
                .log_n(log_n)
                .q_bits(&c.q_bits)
                .p_bits(&c.p_bits)
                .dnum(c.dnum)
                .log_scale(c.s as f64)
                .build();
            let params = match built {
                Ok(p) => p,
                Err(e) => {
                    why = e.to_string();
                    continue;
                }
            };
            let each = params.keyswitch_key_bytes();
            return Ok(Choice {
                params,
                scale_bits: c.s,
                key_bytes_each: each,
                ks_factor: c.ks,
                needed_scale_bits: c.needed,
            });
        }
        if why.is_empty() {
            why = format!("depth {} does not fit 2^{log_n}'s bound of {bound} bits", req.depth);
        }
    }
    Err(CompileError::Params(format!(
        "no 128-bit secure parameter set holds depth {} with {} slots at a scale of at least 2^{} ({why}); lower the depth (smaller activation degree, fewer layers) or the precision",
        req.depth, req.min_slots, req.scale_bits.unwrap_or(req.min_scale_bits)
    )))
}

/// `p` with a key basis for each of `levels` where one saves at least 5 % of that key's
/// bytes (`Parameters::with_key_bases`): per level, the split (digits, special primes)
/// with the fewest bytes under the 128-bit bound whose key-switch noise factor is within
/// `ks_max` (the set's own, which the noise analysis chose the scale for). Why: the set's
/// P is sized for the top level, where the bound leaves little room, so a key for a lower
/// level is cut into more digits than its primes need; a P of its own, as large as the
/// bound allows there, needs fewer (often one). Returns `p` unchanged when no level gains.
pub(crate) fn with_key_bases(p: &Parameters, levels: &[usize], ks_max: f64) -> Parameters {
    let bound = max_log_qp(p.log_n()).unwrap_or(0) as f64;
    let q_bits: Vec<f64> = p.q().iter().map(|&q| (q as f64).log2()).collect();
    let q_bytes: Vec<usize> = p.q().iter().map(|&q| (p.n() * (64 - q.leading_zeros() as usize)).div_ceil(8)).collect();
    let mut levels = levels.to_vec();
    levels.sort_unstable();
    levels.dedup();
    let mut bases = vec![];
    for level in levels {
        let l = level + 1;
        let log_q: f64 = q_bits[..l].iter().sum();
        let own = p.keyswitch_key_bytes_at(level);
        let mut best: Option<(usize, Vec<u32>, usize)> = None;
        for dnum in 1..=l {
            let alpha = l.div_ceil(dnum);
            if l.div_ceil(alpha) != dnum {
                continue;
            }
            let digit = q_bits[..l].chunks(alpha).map(|c| c.iter().sum::<f64>()).fold(0.0, f64::max);
            // The smallest P (whole bits) whose noise is within the set's, in primes below
            // 2^50: the ring's fast transforms and key-switch kernels take only those (61-bit
            // ones made these keys ~30 % slower), and bytes go by bits, not by primes.
            let fits = (digit.floor() as u32..digit.ceil() as u32 + 12).find_map(|total| {
                let k = total.div_ceil(50).max(1);
                let each = total.div_ceil(k).clamp(20, 50);
                let log_p = (each * k) as f64;
                (ks_factor(dnum, 2f64.powf(digit - log_p)) <= ks_max).then_some((k, each, log_p))
            });
            let Some((k, each, log_p)) = fits else { continue };
            // Primes are drawn just below 2^bits: half a bit of margin for the bound.
            if log_q + log_p + 0.5 > bound {
                continue;
            }
            let p_bytes = k as usize * (p.n() * each as usize).div_ceil(8);
            let bytes = dnum * (q_bytes[..l].iter().sum::<usize>() + p_bytes);
            if best.as_ref().is_none_or(|b| bytes < b.0) {
                best = Some((bytes, vec![each; k as usize], dnum));
            }
        }
        if let Some((bytes, p_bits, dnum)) = best {
            if (bytes as f64) < 0.95 * own as f64 {
                bases.push((level, p_bits, dnum));
            }
        }
    }
    if bases.is_empty() {
        return p.clone();
    }
    // A basis whose drawn primes miss the bound after all is left out, not the others.
    match p.with_key_bases(&bases) {
        Ok(with) => with,
        Err(_) => {
            let ok: Vec<_> = bases.into_iter().filter(|b| p.with_key_bases(std::slice::from_ref(b)).is_ok()).collect();
            p.with_key_bases(&ok).unwrap_or_else(|_| p.clone())
        }
    }
}
