//! The server's side: k scores Σ_i v_ji·ct_i + bias_j on a seeded query, then (when the
//! client registered a public key) re-randomisation — a fresh encryption of zero and a
//! flooding term per score — and the modulus switch to the answer modulus.

use crate::error::LweError;
use crate::params::{expand_a, mask, Params};
use crate::public::Rerandomizer;
use crate::wire::{Answer, Query};

/// The k encrypted scores of the integer affine map (`weights`: k rows of d, `bias`: k,
/// both in the scale the client spec states) on `query`, switched to q' = 2^`answer_log_q`.
/// The query must be under `params` (the model's) and hold d values.
///
/// The answer's a-part is Σ v_ji·a_i: the client can solve it for the weights. Use
/// [`evaluate_rerandomized`] wherever the weights must stay with the server.
pub fn evaluate(
    params: Params,
    query: &Query,
    weights: &[Vec<i64>],
    bias: &[i64],
    answer_log_q: u32,
) -> Result<Answer, LweError> {
    evaluate_with(params, query, weights, bias, answer_log_q, None)
}

/// [`evaluate`], then to every score, before the modulus switch, a fresh LWE encryption of
/// zero under the client's registered public key (which hides the a-part Σ v_ji·a_i) and
/// a flooding term uniform in [−2^flood_bits, 2^flood_bits) (none when 0), which hides the
/// score's bits below the precision the model promises. `key` must be the query's key.
pub fn evaluate_rerandomized(
    params: Params,
    query: &Query,
    weights: &[Vec<i64>],
    bias: &[i64],
    answer_log_q: u32,
    key: &Rerandomizer,
    flood_bits: u32,
) -> Result<Answer, LweError> {
    if key.key().params != params {
        return Err(LweError::ParamsMismatch {
            what: "public key",
            found_log_n: key.key().params.log_n(),
            found_log_q: key.key().params.log_q(),
            want_log_n: params.log_n(),
            want_log_q: params.log_q(),
        });
    }
    if key.key().key_id != query.key_id {
        let hex = |b: &[u8]| b[..4].iter().map(|x| format!("{x:02x}")).collect::<String>();
        return Err(LweError::KeyMismatch { expected: hex(&query.key_id), found: hex(&key.key().key_id) });
    }
    if flood_bits + 2 >= params.log_q() {
        return Err(LweError::Invalid {
            field: "flooding width",
            detail: format!("2^{flood_bits} leaves no room for a score modulo 2^{}", params.log_q()),
        });
    }
    evaluate_with(params, query, weights, bias, answer_log_q, Some((key, flood_bits)))
}

fn evaluate_with(
    params: Params,
    query: &Query,
    weights: &[Vec<i64>],
    bias: &[i64],
    answer_log_q: u32,
    rerandomize: Option<(&Rerandomizer, u32)>,
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
    if let Some((key, flood_bits)) = rerandomize {
        let mut rng = crate::public::zero_sampler();
        for ct in acc.iter_mut() {
            for (c, z) in ct.iter_mut().zip(key.zero(&mut rng)) {
                *c = c.wrapping_add(z);
            }
            if flood_bits > 0 {
                ct[n] = ct[n].wrapping_add(rng.uniform_signed(1, flood_bits)[0] as i64 as u64);
            }
        }
    }
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
