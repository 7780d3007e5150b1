//! Parameter selection: the smallest ring degree whose 128-bit bound holds the prime
//! chain the depth and precision need, and the key-switching split (dnum, special
//! primes) that makes the evaluation keys smallest.

use ckks::{max_log_qp, Parameters};

use crate::CompileError;

#[derive(Clone, Debug)]
pub struct ParamRequest {
    pub depth: u32,
    /// log2 of the scale (bits of every rescaling prime).
    pub scale_bits: Option<u32>,
    /// Bits of q0 above the scale (room for the output's magnitude).
    pub headroom_bits: u32,
    pub min_slots: usize,
    pub galois_keys: usize,
    pub relin: bool,
    pub min_log_n: u32,
    pub key_budget_bytes: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct Choice {
    pub params: Parameters,
    pub scale_bits: u32,
    pub key_bytes_each: usize,
}

/// Scale bits tried, best precision first, when the user does not fix them.
const SCALE_RANGE: std::ops::RangeInclusive<u32> = 22..=30;

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
            None => SCALE_RANGE.rev().collect(),
        };
        let mut found: Vec<(u32, usize, Parameters)> = vec![];
        for s in scales {
            let q0 = (s + req.headroom_bits).min(60);
            let l = req.depth as usize + 1;
            let mut q_bits = vec![q0];
            q_bits.extend(std::iter::repeat_n(s, req.depth as usize));
            let log_q: u32 = q_bits.iter().sum();
            let mut best: Option<(usize, Parameters)> = None;
            for dnum in 1..=l {
                let alpha = l.div_ceil(dnum);
                if l.div_ceil(alpha) != dnum {
                    continue;
                }
                let digit: u32 = q_bits.chunks(alpha).map(|c| c.iter().sum::<u32>()).max().unwrap();
                let p_total = digit.saturating_sub(1).max(20);
                let k = p_total.div_ceil(60) as usize;
                let each = p_total.div_ceil(k as u32).max(20);
                let p_bits = vec![each; k];
                if log_q + each * k as u32 > bound {
                    continue;
                }
                let built = Parameters::builder()
                    .log_n(log_n)
                    .q_bits(&q_bits)
                    .p_bits(&p_bits)
                    .dnum(dnum)
                    .log_scale(s as f64)
                    .build();
                let params = match built {
                    Ok(p) => p,
                    Err(e) => {
                        why = e.to_string();
                        continue;
                    }
                };
                let keys = req.galois_keys + usize::from(req.relin);
                let total = keys * params.keyswitch_key_bytes();
                if let Some(b) = req.key_budget_bytes {
                    if total > b {
                        why = format!("evaluation keys {total} bytes exceed the budget {b}");
                        continue;
                    }
                }
                if best.as_ref().map(|(t, _)| total < *t).unwrap_or(true) {
                    best = Some((total, params));
                }
            }
            if let Some((total, params)) = best {
                found.push((s, total, params));
            }
        }
        // Precision against key size: the largest scale whose keys stay within 1.5× the smallest.
        if let Some(min) = found.iter().map(|f| f.1).min() {
            let (s, _, params) = found.into_iter().filter(|f| f.1 * 2 <= min * 3).max_by_key(|f| f.0).unwrap();
            let each = params.keyswitch_key_bytes();
            return Ok(Choice { params, scale_bits: s, key_bytes_each: each });
        }
        if why.is_empty() {
            why = format!("depth {} does not fit 2^{log_n}'s bound of {bound} bits", req.depth);
        }
    }
    Err(CompileError::Params(format!(
        "no 128-bit secure parameter set holds depth {} with {} slots ({why}); lower the depth (smaller activation degree, fewer layers) or the precision",
        req.depth, req.min_slots
    )))
}
