//! The server's side: k scores Σ_i v_ji·ct_i + bias_j on a seeded query, then the modulus
//! switch to the answer modulus. No key is involved.

use crate::error::LweError;
use crate::params::{expand_a, mask, Params};
use crate::wire::{Answer, Query};

/// The k encrypted scores of the integer affine map (`weights`: k rows of d, `bias`: k,
/// both in the scale the client spec states) on `query`, switched to q' = 2^`answer_log_q`.
/// The query must be under `params` (the model's) and hold d values.
pub fn evaluate(
    params: Params,
    query: &Query,
    weights: &[Vec<i64>],
    bias: &[i64],
    answer_log_q: u32,
) -> Result<Answer, LweError> {
    if query.params != params {
        return Err(LweError::ParamsMismatch {
            what: "query",
            found_log_n: query.params.log_n(),
            found_log_q: query.params.log_q(),
            want_log_n: params.log_n(),
            want_log_q: params.log_q(),
        });
    }
    let d = weights.first().map_or(0, Vec::len);
    if weights.is_empty() || bias.len() != weights.len() || weights.iter().any(|r| r.len() != d) {
        return Err(LweError::Invalid { field: "model", detail: "need k ≥ 1 rows of d weights and k biases".into() });
    }
    if query.b.len() != d {
        return Err(LweError::Dimension { expected: d, found: query.b.len() });
    }
    let out = Params::new(params.log_n(), answer_log_q)?;
    if answer_log_q > params.log_q() {
        return Err(LweError::Invalid {
            field: "answer modulus",
            detail: format!("2^{answer_log_q} is above the query's 2^{}", params.log_q()),
        });
    }
    let n = params.n();
    // Wrapping u64 arithmetic is arithmetic modulo 2^64, hence modulo q = 2^log_q after masking.
    let mut acc: Vec<Vec<u64>> = weights.iter().map(|_| vec![0u64; n + 1]).collect();
    expand_a(params, query.seed, d, |i, a| {
        for (row, ct) in weights.iter().zip(acc.iter_mut()) {
            let w = row[i] as u64;
            if w == 0 {
                continue;
            }
            for (c, &x) in ct[..n].iter_mut().zip(a) {
                *c = c.wrapping_add(w.wrapping_mul(x));
            }
            ct[n] = ct[n].wrapping_add(w.wrapping_mul(query.b[i]));
        }
    });
    let shift = params.log_q() - answer_log_q;
    for (ct, &b) in acc.iter_mut().zip(bias) {
        ct[n] = ct[n].wrapping_add(b as u64);
        for c in ct.iter_mut() {
            *c = switch(*c & params.mask(), shift) & mask(answer_log_q);
        }
    }
    Ok(Answer { params: out, key_id: query.key_id, cts: acc })
}

/// round(x / 2^shift): the modulus switch of one word from q to q / 2^shift.
fn switch(x: u64, shift: u32) -> u64 {
    if shift == 0 {
        x
    } else {
        (x >> shift) + ((x >> (shift - 1)) & 1)
    }
}
