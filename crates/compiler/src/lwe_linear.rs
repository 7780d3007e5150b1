//! Compiling a linear model to seeded LWE (`--scheme lwe`): per-input fixed-point scales
//! sized from the calibration data, integer weights, and the smallest answer modulus that
//! keeps the promised score error.
//!
//! With q = 2^53 and a score bound S (Σ|w_i|·R_i + |b| over inputs within R_i = 4× the
//! calibration's largest |x_i|), scores carry F = 51 − ⌈log2 S⌉ fractional bits; input i is
//! m_i = round(x_i·2^g_i) with |m_i| < 2^B (g_i = B − ⌈log2 R_i⌉) and its weight
//! v_i = round(w_i·2^(F − g_i)). B balances the two roundings against the fresh noise
//! (20·Σ|v_i|); the answer modulus is the smallest that keeps the total error bound within
//! [`TARGET_SCORE_ERROR`] (or within twice the quantization error, if that is larger).

use std::fmt::Write;
use std::path::Path;

use model::report::Accuracy;
use model::{LayerInfo, LinearInput, LinearOutput, LinearSpec, LweSpec, PaillierModel, Scheme};

use crate::affine::Affine;
use crate::import::Imported;
use crate::{verify, CompileError, Data, Options};

/// The score error (real units) the answer modulus is chosen for.
pub const TARGET_SCORE_ERROR: f64 = 1e-4;
const LOG_N: u32 = 11;
const LOG_Q: u32 = 53;
/// Calibration ranges are widened by this factor before inputs are refused.
const RANGE_MARGIN: f64 = 4.0;
/// Answer modulus assumed when costing before compiling.
pub const EST_ANSWER_LOG_Q: usize = 36;

/// Bytes of a query of d values and of an answer of k scores at 2^answer_log_q.
pub fn query_bytes(d: usize) -> usize {
    14 + 64 + (d * LOG_Q as usize).div_ceil(8)
}
/// Bytes of the client's RLWE public key (seed + n words of b at log q bits).
pub const PUBLIC_KEY_BYTES: usize = 14 + 64 + ((1 << LOG_N) * LOG_Q as usize).div_ceil(8);
pub fn answer_bytes(k: usize, answer_log_q: usize) -> usize {
    14 + 32 + (k * ((1 << LOG_N) + 1) * answer_log_q).div_ceil(8)
}

/// Scores an answer carries: rows that are exact negations of an earlier row are left out.
pub fn answered_rows(map: &Affine) -> usize {
    let key = |j: usize, sign: f64| {
        let mut r: Vec<(u32, u64)> = map.rows[j].iter().map(|&(i, w)| (i, (sign * w).to_bits())).collect();
        r.sort();
        (r, (sign * map.bias[j]).to_bits())
    };
    (0..map.n_out()).filter(|&j| !(0..j).any(|i| key(i, 1.0) == key(j, -1.0))).count()
}

struct Plan {
    b_bits: u32,
    f_bits: u32,
    g: Vec<i32>,
    v: Vec<Vec<i64>>,
    bias: Vec<i64>,
    quant_err: f64,
    fresh_err: f64,
}

fn plan(map: &Affine, ranges: &[f64], b_bits: u32) -> Option<Plan> {
    let d = map.n_in;
    let dense: Vec<Vec<f64>> = map
        .rows
        .iter()
        .map(|r| {
            let mut v = vec![0.0; d];
            for &(j, w) in r {
                v[j as usize] += w;
            }
            v
        })
        .collect();
    let s_max = dense
        .iter()
        .zip(&map.bias)
        .map(|(r, b)| r.iter().zip(ranges).map(|(w, r)| (w * r).abs()).sum::<f64>() + b.abs())
        .fold(1e-9, f64::max);
    let f_bits = 51 - s_max.log2().ceil() as i64;
    if !(1..=62).contains(&f_bits) {
        return None;
    }
    let f_bits = f_bits as u32;
    let g: Vec<i32> = ranges.iter().map(|r| b_bits as i32 - r.log2().ceil() as i32).collect();
    if g.iter().any(|x| !(-64..=64).contains(x)) {
        return None;
    }
    let (mut quant_err, mut fresh_err) = (0.0f64, 0.0f64);
    let mut v = Vec::new();
    for row in &dense {
        let mut vr = Vec::with_capacity(d);
        let mut q = 0.0;
        for i in 0..d {
            let scale = 2f64.powi(f_bits as i32 - g[i]);
            let x = (row[i] * scale).round();
            if x.abs() >= 2f64.powi(62) {
                return None;
            }
            // input rounding (±2^-g-1 times |w|) and weight rounding (times |x| < R)
            q += row[i].abs() * 2f64.powi(-g[i] - 1) + (x / scale - row[i]).abs() * ranges[i];
            vr.push(x as i64);
        }
        let l1: f64 = vr.iter().map(|&x| (x as f64).abs()).sum();
        fresh_err = fresh_err.max(lwe::noise::FRESH_BOUND * l1 / 2f64.powi(f_bits as i32));
        quant_err = quant_err.max(q);
        v.push(vr);
    }
    let bias = map.bias.iter().map(|b| (b * 2f64.powi(f_bits as i32)).round() as i64).collect();
    Some(Plan { b_bits, f_bits, g, v, bias, quant_err, fresh_err })
}

pub fn compile_lwe(
    imp: &Imported,
    map: &Affine,
    data: &Data,
    onnx_path: Option<&Path>,
    opts: &Options,
    choice_text: &str,
    progress: &dyn Fn(&str),
) -> Result<(PaillierModel, Accuracy), CompileError> {
    progress("quantizing the linear model for seeded LWE");
    let d = map.n_in;
    let cal = data.calibration;
    let mut ranges = vec![0.0f64; d];
    for r in 0..cal.rows() {
        for (m, x) in ranges.iter_mut().zip(cal.row(r)) {
            *m = m.max(x.abs());
        }
    }
    let ranges: Vec<f64> = ranges.iter().map(|&m| if m > 0.0 { m * RANGE_MARGIN } else { 1.0 }).collect();
    let best = (8..=44)
        .filter_map(|b| plan(map, &ranges, b))
        .min_by(|a, b| (a.quant_err + a.fresh_err).total_cmp(&(b.quant_err + b.fresh_err)))
        .ok_or_else(|| CompileError::Params("no fixed-point scaling fits the LWE modulus q = 2^53".into()))?;
    let n = 1usize << LOG_N;
    let scale = 2f64.powi(best.f_bits as i32);
    let target = TARGET_SCORE_ERROR.max(2.0 * (best.quant_err + best.fresh_err));
    // Re-randomisation (always on): an encryption of zero per score, and a flood of at most
    // half the integer error budget, so the answer holds no bit of a score below the promised
    // precision. The modulus switch gets what is left, which sets q'.
    let budget = (target - best.quant_err) * scale;
    let (flood_bits, answer_log_q) = (0..=(budget / 2.0).log2().floor().clamp(0.0, (LOG_Q - 3) as f64) as u32)
        .rev()
        .find_map(|f| lwe::noise::rerandomized_answer_log_q(&best.v, n, LOG_Q, budget, f).map(|l| (f, l)))
        .ok_or_else(|| CompileError::Params("the fresh noise alone exceeds the score error target".into()))?;
    let lwe_err = best
        .v
        .iter()
        .map(|r| lwe::noise::rerandomized_error_bound(r, n, LOG_Q, answer_log_q, flood_bits) / scale)
        .fold(0.0, f64::max);
    let plain_log_q = lwe::noise::answer_log_q(&best.v, n, LOG_Q, budget).unwrap_or(answer_log_q);
    let error_bound = best.quant_err + lwe_err;

    // A binary classifier's two scores are often exact negations: the answer carries one.
    let mut negated: Vec<[usize; 2]> = Vec::new();
    for j in 0..best.v.len() {
        let twin = (0..j).find(|&i| {
            !negated.iter().any(|p| p[0] == i)
                && best.bias[j] == -best.bias[i]
                && best.v[j].iter().zip(&best.v[i]).all(|(a, b)| *a == -*b)
        });
        if let Some(i) = twin {
            negated.push([j, i]);
        }
    }
    let answered = best.v.len() - negated.len();
    let eval = data.eval.unwrap_or(data.calibration);
    let mut max_fx = 0.0f64;
    let sims: Vec<Vec<f64>> = (0..eval.rows())
        .map(|r| {
            let x = eval.row(r);
            let s: Vec<f64> =
                best.v
                    .iter()
                    .zip(&best.bias)
                    .map(|(row, &b)| {
                        let acc = row.iter().zip(x).zip(&best.g).fold(b as i128, |acc, ((&w, &xi), &g)| {
                            acc + w as i128 * (xi * 2f64.powi(g)).round() as i128
                        });
                        acc as f64 / scale
                    })
                    .collect();
            for (a, b) in s.iter().zip(map.apply(x)) {
                max_fx = max_fx.max((a - b).abs());
            }
            s
        })
        .collect();
    progress("measuring accuracy");
    let (acc, note) = verify::accuracy_of(sims, imp, data, onnx_path, opts)?;
    let k = map.n_out();
    let client = LinearSpec {
        version: model::linear::LINEAR_SPEC_VERSION,
        scheme: Scheme::Lwe,
        model: opts.name.clone(),
        min_modulus_bits: 0,
        input: LinearInput { name: imp.input_name.clone(), shape: imp.input_shape.clone(), frac_bits: 0 },
        output: LinearOutput {
            name: imp.he_output.clone(),
            shape: vec![k],
            frac_bits: best.f_bits,
            final_name: imp.final_output.clone(),
        },
        lwe: Some(LweSpec {
            log_n: LOG_N,
            log_q: LOG_Q,
            answer_log_q,
            input_frac_bits: best.g.clone(),
            input_bound_bits: best.b_bits,
            error_bound,
            negated: negated.clone(),
            rerandomize: true,
            flood_bits,
        }),
        postprocess: imp.postprocess.clone(),
    };
    let mut report = String::new();
    let _ = writeln!(report, "model {} — seeded LWE linear scoring", opts.name);
    let _ = writeln!(
        report,
        "  {d} inputs → {k} score(s); n = 2048, q = 2^53 (128-bit, HE Standard 2024, ternary secret); \
         keys: one seeded RLWE public key per client ({} B, registered once in EVALUATION_KEYS); query {} B; \
         answer {} B at q' = 2^{answer_log_q}",
        PUBLIC_KEY_BYTES,
        query_bytes(d),
        answer_bytes(answered, answer_log_q as usize)
    );
    let _ = writeln!(
        report,
        "  re-randomised answers: each score gets a fresh encryption of zero under the client's public key (its \
         a-part is pseudorandom even to the client, so Σ v_i·a_i no longer gives the weights away) and a flood \
         uniform in ±2^{flood_bits} (half the error budget: no bit below the promised precision is revealed); cost: \
         q' = 2^{answer_log_q} instead of 2^{plain_log_q} ({} B more per answer)",
        answer_bytes(answered, answer_log_q as usize) - answer_bytes(answered, plain_log_q as usize)
    );
    if !negated.is_empty() {
        let _ = writeln!(report, "  answer: {answered} of {k} scores (score j = −score i for [j, i] in {negated:?})");
    }
    let _ = writeln!(
        report,
        "  fixed point: input i as round(x·2^g_i), |x·2^g_i| < 2^{} (inputs up to {RANGE_MARGIN}× the calibration \
         range; others refused by the client), scores with {} fractional bits",
        best.b_bits, best.f_bits
    );
    let _ = writeln!(
        report,
        "  precision: |decrypted score − f64 model| ≤ {error_bound:.2e} = quantization {:.2e} + fresh noise {:.2e} + \
         modulus switch {:.2e} + encryption of zero {:.2e} + flood {:.2e} (noise bounds: 6σ tail cut, Hoeffding \
         at 2^-64); measured fixed-point error on the evaluation data: {max_fx:.2e}",
        best.quant_err,
        best.fresh_err,
        lwe_err - best.fresh_err - (lwe::noise::zero_bound(n) + 2f64.powi(flood_bits as i32)) / scale,
        lwe::noise::zero_bound(n) / scale,
        2f64.powi(flood_bits as i32) / scale
    );
    let fresh_bits = (lwe::noise::FRESH_BOUND
        * best.v.iter().map(|r| r.iter().map(|&w| (w as f64).abs()).sum::<f64>()).fold(0.0, f64::max))
    .log2();
    let _ = writeln!(
        report,
        "  note: the weight-dependent noise Σ v_i·e_i (≤ 2^{fresh_bits:.1}) is not flooded at 2^-40: that would take \
         2^{:.1} of the 2^53 modulus and leave the score no precision. It tells the client nothing new: it drew \
         the e_i itself, and Σ v_i·(m_i + e_i) is the score of an input it could have sent. What the flood does not \
         hide is what any scoring service gives away: d + 1 chosen queries determine a linear model",
        fresh_bits + 40.0
    );
    let _ = writeln!(
        report,
        "  accuracy against {}: {} samples, top-1 agreement {:.2} %, max |error| {:.2e}, mean {:.2e}{}",
        acc.reference,
        acc.samples,
        100.0 * acc.top1_agreement,
        acc.max_abs_error,
        acc.mean_abs_error,
        match (acc.reference_accuracy, acc.simulated_accuracy) {
            (Some(r), Some(s)) => format!("; label accuracy {:.2} % (reference {:.2} %)", 100.0 * s, 100.0 * r),
            _ => String::new(),
        }
    );
    for n in imp.notes.iter().chain(&note) {
        let _ = writeln!(report, "  note: {n}");
    }
    report.push_str(choice_text);
    let model = PaillierModel {
        name: opts.name.clone(),
        client,
        layers: vec![LayerInfo { name: imp.he_output.clone(), kind: format!("linear {d} -> {k} (scalers folded)") }],
        weight_frac_bits: best.f_bits,
        weights: best.v,
        bias: best.bias.iter().map(|b| b.to_string()).collect(),
        report,
    };
    model.validate().map_err(|e| CompileError::Internal(e.to_string()))?;
    Ok((model, acc))
}
