//! Choosing the scheme (`heinfer compile --scheme auto|ckks|bgv|paillier`) and compiling
//! linear models to Paillier.
//!
//! Every scheme that can run the model is costed — estimated latency of one query, the
//! bytes of the query, the answer and the keys, and whether the result is exact — and
//! `auto` picks by the rule DESIGN.md states: a linear model scored one sample at a time
//! goes to Paillier (no evaluation keys: a 396-byte public key against megabytes, a
//! ~0.8 KB answer, exact in fixed point) unless seeded LWE (`lwe_linear`) sends fewer bytes
//! (no keys, ~0.3 KB query, ~8 KB answer for one score), as it does for small models;
//! everything else to CKKS. BGV is costed as not
//! available for a float model without `--quantize`.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use model::report::Accuracy;
use model::{LayerInfo, LinearInput, LinearOutput, LinearSpec, PaillierModel, Scheme};
use paillier::{FixedPoint, LinearModel};
use serde::Serialize;

use crate::affine::Affine;
use crate::import::{Imported, Stage};
use crate::lwe_linear;
use crate::{calibrate, import, onnx, passes, verify, CompileError, Compiled, Data, Options};

/// Fractional bits of a Paillier model's inputs: free (inputs are never exponents), and far
/// more than float inputs carry.
pub const PAILLIER_INPUT_FRAC_BITS: u32 = 48;
/// Fractional bits of its weights, at most: each costs a squaring per score.
pub const PAILLIER_WEIGHT_FRAC_BITS: u32 = 36;
/// Bytes of one Paillier ciphertext at the minimum modulus (an element of Z_{n²}).
const PAILLIER_CT_BYTES: usize = 2 * (model::linear::MIN_PAILLIER_BITS as usize / 8);
/// Public key on the wire: header, bit count, n.
const PAILLIER_KEY_BYTES: usize = 8 + 4 + model::linear::MIN_PAILLIER_BITS as usize / 8;
/// A ciphertext batch's framing: header, key id, count.
const PAILLIER_BATCH_BYTES: usize = 8 + 32 + 4;

/// What `--scheme` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemeRequest {
    Auto,
    Ckks,
    Bgv,
    Paillier,
    Lwe,
}

impl std::str::FromStr for SchemeRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "ckks" => Ok(Self::Ckks),
            "bgv" => Ok(Self::Bgv),
            "paillier" => Ok(Self::Paillier),
            "lwe" => Ok(Self::Lwe),
            _ => Err(format!("unknown scheme {s:?}: auto, ckks, bgv, paillier or lwe")),
        }
    }
}

/// One scheme's costs for this model, or why it cannot run it.
#[derive(Clone, Debug, Serialize)]
pub struct Candidate {
    pub scheme: Scheme,
    /// None when the scheme can run the model.
    pub cannot: Option<String>,
    pub est_latency_ms: f64,
    pub query_bytes: usize,
    pub answer_bytes: usize,
    /// What the client sends once (evaluation keys, or a public key).
    pub key_bytes: usize,
    pub exact: String,
}

/// The costs of every scheme and the one chosen, with the reason.
#[derive(Clone, Debug, Serialize)]
pub struct Choice {
    pub chosen: Scheme,
    pub requested: String,
    pub reason: String,
    pub candidates: Vec<Candidate>,
}

impl Choice {
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "scheme: {} (asked: {})", self.chosen, self.requested);
        let _ = writeln!(
            s,
            "  {:<9} {:>12} {:>12} {:>12} {:>12}  result",
            "scheme", "latency ms", "query B", "answer B", "keys B"
        );
        for c in &self.candidates {
            match &c.cannot {
                Some(why) => {
                    let _ = writeln!(s, "  {:<9} cannot run this model: {why}", c.scheme.name());
                }
                None => {
                    let _ = writeln!(
                        s,
                        "  {:<9} {:>12.1} {:>12} {:>12} {:>12}  {}",
                        c.scheme.name(),
                        c.est_latency_ms,
                        c.query_bytes,
                        c.answer_bytes,
                        c.key_bytes,
                        c.exact
                    );
                }
            }
        }
        let _ = writeln!(s, "  why: {}", self.reason);
        s
    }
}

/// A compiled Paillier model and its accuracy.
pub struct CompiledLinear {
    pub model: PaillierModel,
    pub accuracy: Accuracy,
}

/// A compiled model of either scheme.
#[allow(clippy::large_enum_variant)] // one per compilation
pub enum CompiledAny {
    Ckks(Compiled),
    Paillier(CompiledLinear),
    Bgv(crate::quantize::CompiledBgv),
}

impl CompiledAny {
    pub fn name(&self) -> &str {
        match self {
            CompiledAny::Ckks(c) => &c.model.name,
            CompiledAny::Paillier(c) => &c.model.name,
            CompiledAny::Bgv(c) => &c.model.name,
        }
    }

    /// The report as text: the model's own and the scheme choice.
    pub fn report_text(&self) -> String {
        match self {
            CompiledAny::Ckks(c) => c.model.report.as_ref().map(|r| r.to_text()).unwrap_or_default(),
            CompiledAny::Paillier(c) => c.model.report.clone(),
            CompiledAny::Bgv(c) => c.model.report.clone(),
        }
    }
}

/// The model as one affine map, when it is one (every stage linear, each reading the last):
/// scalers, matrix products and biases folded. The refusal says what a linear-only scheme
/// cannot run; [`linear_only`] puts the scheme's name in front of it.
fn as_affine(imp: &Imported) -> Result<Affine, String> {
    let mut acc: Option<Affine> = None;
    for (i, s) in imp.stages.iter().enumerate() {
        match s {
            Stage::Linear { map, src, .. } if *src == i => {
                acc = Some(match acc {
                    None => map.clone(),
                    Some(inner) => map.compose(&inner),
                });
            }
            Stage::Linear { name, .. } | Stage::Act { name, .. } | Stage::Add { name, .. } => {
                let what = match s {
                    Stage::Act { f, .. } => format!("activation {f:?}"),
                    Stage::Add { .. } => "a residual addition".into(),
                    _ => "a branch".into(),
                };
                return Err(format!(
                    "adds ciphertexts and multiplies them by plaintexts only, so it runs linear models \
                     (scores Σ w·x + b); layer {name} is {what}: use --scheme ckks"
                ));
            }
        }
    }
    acc.ok_or_else(|| "the model has no layers".into())
}

/// Weight fractional bits: [`PAILLIER_WEIGHT_FRAC_BITS`], fewer when the largest weight
/// would not fit 62 bits.
/// Why `scheme` (Paillier or LWE, which only add and scale) cannot run a non-affine model.
fn linear_only(scheme: Scheme, why: &str) -> String {
    let name = match scheme {
        Scheme::Paillier => "Paillier",
        Scheme::Lwe => "seeded LWE (--scheme lwe)",
        _ => "this scheme",
    };
    format!("{name} {why}")
}

fn weight_frac_bits(map: &Affine) -> u32 {
    let max = map.rows.iter().flatten().map(|&(_, w)| w.abs()).fold(0.0f64, f64::max);
    let int_bits = if max >= 1.0 { max.log2().floor() as i64 + 1 } else { 0 };
    (61 - int_bits).clamp(0, PAILLIER_WEIGHT_FRAC_BITS as i64) as u32
}

/// The quantized model the server will run, and the exact fixed-point computation of one
/// sample (what the client decrypts, decoded).
pub struct Quantized {
    pub linear: LinearModel,
    pub input: FixedPoint,
    pub score: FixedPoint,
}

impl Quantized {
    fn new(map: &Affine) -> Result<Self, CompileError> {
        let d = map.n_in;
        let dense: Vec<Vec<f64>> = map
            .rows
            .iter()
            .map(|r| {
                let mut v = vec![0.0; d];
                for &(j, w) in r {
                    v[j as usize] = w;
                }
                v
            })
            .collect();
        let err = |e: paillier::PaillierError| CompileError::Params(format!("Paillier fixed point: {e}"));
        let input = FixedPoint::new(PAILLIER_INPUT_FRAC_BITS).map_err(err)?;
        let weight = FixedPoint::new(weight_frac_bits(map)).map_err(err)?;
        let linear = LinearModel::quantize(&dense, &map.bias, input, weight).map_err(err)?;
        let score = linear.score_encoding();
        Ok(Self { linear, input, score })
    }

    /// The decrypted scores of sample `x`, computed in the clear.
    pub fn scores(&self, x: &[f64]) -> Result<Vec<f64>, CompileError> {
        let enc = x
            .iter()
            .map(|&v| self.input.encode(v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CompileError::Data(format!("an input cannot be encoded in fixed point: {e}")))?;
        let s = self.linear.evaluate_plain(&enc).map_err(|e| CompileError::Internal(e.to_string()))?;
        Ok(s.iter().map(|v| self.score.decode(v)).collect())
    }
}

fn paillier_candidate(d: usize, k: usize) -> Candidate {
    // Per-operation costs measured by `bench/peers.sh paillier` (3072-bit keys, ms): encryption
    // 2.6 per value, a score's multi-exponentiation 0.22 per input plus 10 for its
    // re-randomizer, decryption 12.3 per score.
    let est = 2.6 * d as f64 + k as f64 * (0.22 * d as f64 + 10.0) + 12.3 * k as f64;
    Candidate {
        scheme: Scheme::Paillier,
        cannot: None,
        est_latency_ms: est,
        query_bytes: PAILLIER_BATCH_BYTES + d * PAILLIER_CT_BYTES,
        answer_bytes: PAILLIER_BATCH_BYTES + k * PAILLIER_CT_BYTES,
        key_bytes: PAILLIER_KEY_BYTES,
        exact: format!(
            "exact in fixed point (inputs 2^-{PAILLIER_INPUT_FRAC_BITS}, weights ≤ 2^-{PAILLIER_WEIGHT_FRAC_BITS})"
        ),
    }
}

fn lwe_candidate(d: usize, k: usize) -> Candidate {
    // ≈ 16 µs per input and score, encryption included: 1 ms for the breast-cancer LR (30 inputs,
    // one score sent) in `bench/peers.sh concrete`, on a loaded machine.
    Candidate {
        scheme: Scheme::Lwe,
        cannot: None,
        est_latency_ms: 0.016 * (d * (k + 1)) as f64,
        query_bytes: lwe_linear::query_bytes(d),
        answer_bytes: lwe_linear::answer_bytes(k, lwe_linear::EST_ANSWER_LOG_Q),
        key_bytes: lwe_linear::PUBLIC_KEY_BYTES,
        exact: format!(
            "approximate: score error ≤ {:.0e} (bounded), fixed-point inputs",
            lwe_linear::TARGET_SCORE_ERROR
        ),
    }
}

fn ckks_candidate(c: &Result<Compiled, CompileError>) -> Candidate {
    match c {
        Ok(c) => {
            let r = c.model.report.as_ref().expect("compile makes a report");
            let err = r.accuracy.as_ref().map(|a| a.max_abs_error).unwrap_or(f64::NAN);
            Candidate {
                scheme: Scheme::Ckks,
                cannot: None,
                est_latency_ms: r.est_latency_ms,
                query_bytes: r.query_bytes,
                answer_bytes: r.response_bytes,
                key_bytes: r.evaluation_key_bytes,
                exact: format!("approximate (max |error| {err:.1e} against the reference)"),
            }
        }
        Err(e) => not_run(Scheme::Ckks, e.to_string()),
    }
}

fn bgv_candidate(c: &crate::quantize::CompiledBgv) -> Candidate {
    let k = &c.costs;
    Candidate {
        scheme: Scheme::Bgv,
        cannot: None,
        est_latency_ms: k.est_ms,
        query_bytes: k.query_bytes,
        answer_bytes: k.answer_bytes,
        key_bytes: k.key_bytes,
        exact: format!("exact integers; one request is a batch of up to {} samples (figures per batch)", k.batch),
    }
}

fn not_run(scheme: Scheme, why: String) -> Candidate {
    Candidate {
        scheme,
        cannot: Some(why),
        est_latency_ms: 0.0,
        query_bytes: 0,
        answer_bytes: 0,
        key_bytes: 0,
        exact: String::new(),
    }
}

/// The BGV refusal for a float model (no integer path is wired yet for ONNX models).
fn bgv_refusal(quantize: Option<u32>) -> String {
    match quantize {
        None => "a float model cannot run under BGV without --quantize BITS (BGV computes exactly on integers: \
                 weights and inputs must be scaled and rounded first, or come from a quantized model's \
                 QuantizeLinear/DequantizeLinear or DynamicQuantizeLinear/MatMulInteger); use --scheme ckks for approximate arithmetic on reals, or \
                 paillier for a linear model"
            .into(),
        Some(b) => format!(
            "not costed by auto: pass --scheme bgv --quantize {b} to compile it (exact integers, square or \
             identity activations only)"
        ),
    }
}

/// Compiles for the scheme asked (or the one `auto` picks) and says why.
pub fn compile_with_scheme(
    onnx_bytes: &[u8],
    onnx_path: Option<&Path>,
    data: &Data,
    opts: &Options,
    req: SchemeRequest,
    quantize: Option<u32>,
    progress: &dyn Fn(&str),
) -> Result<(CompiledAny, Choice), CompileError> {
    if opts.public_features.is_some() && req != SchemeRequest::Ckks {
        return Err(CompileError::Params(
            "--public-features splits a CKKS program's first layer: use it with --scheme ckks".into(),
        ));
    }
    if opts.split_at.is_some() && req != SchemeRequest::Ckks {
        return Err(CompileError::Params(
            "--split-at compiles the suffix as a CKKS program (the prefix's outputs are real-valued): use it \
             with --scheme ckks"
                .into(),
        ));
    }
    // Output DP and the slot mask are CKKS mechanisms: asked for, they decide the scheme
    // (auto must not drop a protection the owner asked for).
    let ckks_only = [(opts.output_dp.is_some(), "--output-dp"), (opts.mask_unused_slots, "--mask-unused-slots")]
        .into_iter()
        .find_map(|(on, flag)| on.then_some(flag));
    if let (Some(flag), SchemeRequest::Paillier | SchemeRequest::Lwe) = (ckks_only, req) {
        return Err(CompileError::Params(format!(
            "{flag} is built for CKKS models only: use it with --scheme ckks (or auto), or drop it"
        )));
    }
    // Circuit privacy: CKKS floods at a λ its precision allows, BGV at 2^-λ with exact
    // outputs (`bgv::circuit`), and Paillier's answers are always re-randomised (within
    // 2^-128 of a fresh encryption). Seeded LWE hides its a-part but not the weighted noise.
    let lwe_no_cp = "--circuit-privacy: seeded LWE answers are re-randomised, but the weights' share of their noise \
                     (Σ w·e) is not hidden at 2^-λ (docs/privacy.md): use --scheme paillier (answers within 2^-128 of a \
                     fresh encryption of the exact score) or --scheme bgv";
    if opts.circuit_privacy.is_some() && req == SchemeRequest::Lwe {
        return Err(CompileError::Params(lwe_no_cp.into()));
    }
    progress("parsing ONNX");
    let mut m = onnx::parse_model(onnx_bytes)?;
    passes::run(&mut m.graph);
    let imp = import::import(&m, opts.maxpool)?;
    calibrate::check_data(&imp, data)?;
    if req == SchemeRequest::Bgv {
        use crate::quantize::Grid;
        // A QDQ model brings its own integers; a float model needs --quantize.
        let (grid, reason) = match (quantize, imp.brings_integers()) {
            (Some(bits), _) => (Grid::Bits(bits), format!("asked for (--scheme bgv --quantize {bits})")),
            (None, true) => (Grid::Model, "asked for (--scheme bgv on a quantized model: its own integers)".into()),
            (None, false) => return Err(CompileError::Params(bgv_refusal(None))),
        };
        // BGV floods its own answers (`bgv::circuit`); its layout mixes no slots, so there is
        // nothing to mask. Output DP stays CKKS's.
        if let Some(flag) = ckks_only {
            return Err(CompileError::Params(format!(
                "{flag} is built for CKKS models only: drop it to compile for BGV, or use --scheme ckks"
            )));
        }
        let choice = Choice {
            chosen: Scheme::Bgv,
            requested: "bgv".into(),
            reason: format!("{reason}: exact integer results"),
            candidates: Vec::new(),
        };
        let c = crate::quantize::compile_bgv(&imp, grid, data, onnx_path, opts, &choice.to_text(), progress)?;
        return Ok((CompiledAny::Bgv(c), choice));
    }
    let affine = as_affine(&imp);
    let d: usize = imp.input_shape.iter().product();
    let linear_cand = match &affine {
        Ok(a) => paillier_candidate(d, a.n_out()),
        Err(why) => not_run(Scheme::Paillier, linear_only(Scheme::Paillier, why)),
    };
    if let (SchemeRequest::Paillier | SchemeRequest::Lwe, Err(why)) = (&req, &affine) {
        let scheme = if matches!(req, SchemeRequest::Lwe) { Scheme::Lwe } else { Scheme::Paillier };
        return Err(CompileError::Unsupported {
            node: imp.he_output.clone(),
            op: "non-linear".into(),
            hint: linear_only(scheme, why),
        });
    }
    // CKKS is compiled whenever it may be chosen or is costed beside Paillier: its report's
    // figures are the comparison.
    let ckks = crate::compile(onnx_bytes, onnx_path, data, opts, progress);
    // BGV is costed when the model brings integers (QDQ) or --quantize asks for them.
    let bgv = match (quantize, imp.brings_integers()) {
        _ if ckks_only.is_some() => None,
        (Some(bits), _) => Some(crate::quantize::Grid::Bits(bits)),
        (None, true) => Some(crate::quantize::Grid::Model),
        (None, false) => None,
    }
    .map(|grid| crate::quantize::compile_bgv(&imp, grid, data, onnx_path, opts, "", progress));
    let lwe_cand = match &affine {
        _ if opts.circuit_privacy.is_some() => not_run(Scheme::Lwe, lwe_no_cp.into()),
        Ok(a) => lwe_candidate(d, lwe_linear::answered_rows(a)),
        Err(why) => not_run(Scheme::Lwe, linear_only(Scheme::Lwe, why)),
    };
    let candidates = vec![
        ckks_candidate(&ckks),
        match &bgv {
            Some(Ok(c)) => bgv_candidate(c),
            Some(Err(e)) => not_run(Scheme::Bgv, e.to_string()),
            None => not_run(
                Scheme::Bgv,
                match ckks_only {
                    Some(flag) => format!("{flag} is built for CKKS models only"),
                    None => bgv_refusal(quantize),
                },
            ),
        },
        linear_cand.clone(),
        lwe_cand.clone(),
    ];
    let total = |c: &Candidate| c.query_bytes + c.answer_bytes + c.key_bytes;
    let bgv_costs = bgv.as_ref().and_then(|b| b.as_ref().ok()).map(|c| &c.costs);
    let (chosen, reason) = match (req, &affine) {
        (SchemeRequest::Ckks, _) => (Scheme::Ckks, "asked for (--scheme ckks)".to_string()),
        (SchemeRequest::Paillier, _) => (Scheme::Paillier, "asked for (--scheme paillier)".to_string()),
        (SchemeRequest::Lwe, _) => (Scheme::Lwe, "asked for (--scheme lwe)".to_string()),
        _ if ckks_only.is_some() => {
            (Scheme::Ckks, format!("{} asked for: only CKKS models carry it", ckks_only.unwrap_or_default()))
        }
        (_, Ok(_)) if lwe_cand.cannot.is_none() && total(&lwe_cand) < total(&linear_cand) => (
            Scheme::Lwe,
            format!(
                "a linear model scored one sample at a time: seeded LWE sends the fewest bytes ({} B query + {} B \
                 answer + a {} B public key registered once, against Paillier's {} B + {} B and a {} B public key); \
                 scores are approximate within a stated bound, and answers are re-randomised under the client's \
                 public key so they do not reveal the weights",
                lwe_cand.query_bytes,
                lwe_cand.answer_bytes,
                lwe_cand.key_bytes,
                linear_cand.query_bytes,
                linear_cand.answer_bytes,
                linear_cand.key_bytes
            ),
        ),
        (_, Ok(_)) => {
            let ck = &candidates[0];
            let keys = if ck.cannot.is_none() {
                format!(
                    "{} B of public key against {:.1} MB of CKKS evaluation keys, a {} B answer against {} B",
                    linear_cand.key_bytes,
                    ck.key_bytes as f64 / 1e6,
                    linear_cand.answer_bytes,
                    ck.answer_bytes
                )
            } else {
                "CKKS cannot run it".to_string()
            };
            (
                Scheme::Paillier,
                format!(
                    "a linear model scored one sample at a time: Paillier needs no evaluation keys ({keys}) and its \
                     scores are exact in fixed point; CKKS computes faster per query and batches many samples per \
                     ciphertext — pass --scheme ckks when clients send many samples or latency matters most{}",
                    if opts.circuit_privacy.is_some() {
                        "; circuit privacy asked: Paillier's answers are re-randomised, within 2^-128 of a fresh \
                         encryption of the score"
                    } else {
                        ""
                    }
                ),
            )
        }
        (_, Err(_)) if bgv_costs.is_some() => {
            let (b, ck) = (bgv_costs.expect("the guard checked it"), &candidates[0]);
            let ckks = if ck.cannot.is_none() {
                format!(
                    "CKKS would approximate it (one sample per request: {} B query, {:.1} MB of keys; pass \
                     --scheme ckks for that)",
                    ck.query_bytes,
                    ck.key_bytes as f64 / 1e6
                )
            } else {
                "CKKS cannot run it".into()
            };
            (
                Scheme::Bgv,
                format!(
                    "the model is an integer network ({}): BGV computes its outputs exactly, a batch of up to {} \
                     samples per request ({} B query per sample); {ckks}",
                    if quantize.is_some() { "--quantize asked for" } else { "QDQ-quantized" },
                    b.batch,
                    b.query_bytes / b.batch.max(1),
                ),
            )
        }
        (_, Err(_)) => (
            Scheme::Ckks,
            match &bgv {
                Some(Err(e)) => format!(
                    "the model is not linear (Paillier cannot run it) and BGV cannot run it ({e}): CKKS computes it \
                     approximately on reals"
                ),
                _ => "the model is not linear (Paillier cannot run it) and is a float model (BGV needs --quantize): \
                      CKKS computes it approximately on reals"
                    .to_string(),
            },
        ),
    };
    let choice = Choice {
        chosen,
        requested: match req {
            SchemeRequest::Auto => "auto",
            SchemeRequest::Ckks => "ckks",
            SchemeRequest::Bgv => "bgv",
            SchemeRequest::Paillier => "paillier",
            SchemeRequest::Lwe => "lwe",
        }
        .into(),
        reason,
        candidates,
    };
    let compiled = match chosen {
        Scheme::Paillier => {
            let a = affine.map_err(CompileError::Internal)?;
            CompiledAny::Paillier(compile_linear(&imp, &a, data, onnx_path, opts, &choice, progress)?)
        }
        Scheme::Lwe => {
            let a = affine.map_err(CompileError::Internal)?;
            let (model, accuracy) =
                lwe_linear::compile_lwe(&imp, &a, data, onnx_path, opts, &choice.to_text(), progress)?;
            CompiledAny::Paillier(CompiledLinear { model, accuracy })
        }
        Scheme::Bgv => {
            let mut c = bgv.ok_or_else(|| CompileError::Internal("BGV chosen without a BGV model".into()))??;
            c.model.report.push_str(&choice.to_text());
            CompiledAny::Bgv(c)
        }
        _ => {
            let mut c = ckks?;
            if let Some(r) = c.model.report.as_mut() {
                r.notes.push(choice.to_text().trim_end().to_string());
            }
            CompiledAny::Ckks(c)
        }
    };
    Ok((compiled, choice))
}

fn compile_linear(
    imp: &Imported,
    map: &Affine,
    data: &Data,
    onnx_path: Option<&Path>,
    opts: &Options,
    choice: &Choice,
    progress: &dyn Fn(&str),
) -> Result<CompiledLinear, CompileError> {
    progress("quantizing the linear model for Paillier");
    let q = Quantized::new(map)?;
    let eval = data.eval.unwrap_or(data.calibration);
    let mut max_fx = 0.0f64;
    let sims = (0..eval.rows())
        .map(|r| {
            let s = q.scores(eval.row(r))?;
            for (a, b) in s.iter().zip(map.apply(eval.row(r))) {
                max_fx = max_fx.max((a - b).abs());
            }
            Ok(s)
        })
        .collect::<Result<Vec<_>, CompileError>>()?;
    progress("measuring accuracy");
    let (acc, note) = verify::accuracy_of(sims, imp, data, onnx_path, opts)?;
    let (d, k) = (map.n_in, map.n_out());
    let wbits = q.score.frac_bits() - q.input.frac_bits();
    let client = LinearSpec {
        version: model::linear::LINEAR_SPEC_VERSION,
        scheme: Scheme::Paillier,
        model: opts.name.clone(),
        min_modulus_bits: model::linear::MIN_PAILLIER_BITS,
        input: LinearInput {
            name: imp.input_name.clone(),
            shape: imp.input_shape.clone(),
            frac_bits: q.input.frac_bits(),
        },
        output: LinearOutput {
            name: imp.he_output.clone(),
            shape: vec![k],
            frac_bits: q.score.frac_bits(),
            final_name: imp.final_output.clone(),
        },
        lwe: None,
        postprocess: imp.postprocess.clone(),
    };
    let mut report = String::new();
    let _ = writeln!(report, "model {} — Paillier linear scoring", opts.name);
    let _ = writeln!(
        report,
        "  {d} inputs → {k} score(s); keys ≥ {} bits (128-bit security, NIST SP 800-57); no evaluation keys",
        model::linear::MIN_PAILLIER_BITS
    );
    let _ = writeln!(
        report,
        "  fixed point: inputs round(x·2^{}), weights round(w·2^{wbits}), scores exact integers with {} fractional bits",
        q.input.frac_bits(),
        q.score.frac_bits()
    );
    let _ = writeln!(
        report,
        "  precision: inputs ±2^-{}, weights ±2^-{}; decrypted scores equal the fixed-point computation exactly; \
         its max |score − f64 model| on the evaluation data: {max_fx:.2e}",
        q.input.frac_bits() + 1,
        wbits + 1
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
    report.push_str(&choice.to_text());
    let model = PaillierModel {
        name: opts.name.clone(),
        client,
        layers: vec![LayerInfo { name: imp.he_output.clone(), kind: format!("linear {d} -> {k} (scalers folded)") }],
        weight_frac_bits: wbits,
        weights: (0..k).map(|i| q.linear.row(i).to_vec()).collect(),
        bias: q.linear.bias().iter().map(|b| b.to_string()).collect(),
        report,
    };
    model.validate().map_err(|e| CompileError::Internal(e.to_string()))?;
    Ok(CompiledLinear { model, accuracy: acc })
}

/// Writes the Triton model directory of a model of either scheme (`config.pbtxt` with its
/// client spec, `1/model.hem`, `report.txt`, `scheme.json`).
pub fn write_repository_any(repo: &Path, c: &CompiledAny, choice: &Choice) -> Result<PathBuf, CompileError> {
    let dir = match c {
        CompiledAny::Ckks(c) => crate::write_repository(repo, c)?,
        CompiledAny::Paillier(c) => {
            let dir = repo.join(&c.model.name);
            let io = |e: std::io::Error| CompileError::Io(format!("{}: {e}", dir.display()));
            std::fs::create_dir_all(dir.join("1")).map_err(io)?;
            let cfg = runtime::protocol::config_pbtxt(&c.model.name, &c.model.client.to_json());
            std::fs::write(dir.join("config.pbtxt"), cfg).map_err(io)?;
            std::fs::write(dir.join("1").join("model.hem"), c.model.to_bytes()).map_err(io)?;
            std::fs::write(dir.join("report.txt"), &c.model.report).map_err(io)?;
            dir
        }
        CompiledAny::Bgv(c) => {
            let dir = repo.join(&c.model.name);
            let io = |e: std::io::Error| CompileError::Io(format!("{}: {e}", dir.display()));
            std::fs::create_dir_all(dir.join("1")).map_err(io)?;
            let cfg = runtime::protocol::config_pbtxt(&c.model.name, &c.model.client.to_json());
            std::fs::write(dir.join("config.pbtxt"), cfg).map_err(io)?;
            std::fs::write(dir.join("1").join("model.hem"), c.model.to_bytes()).map_err(io)?;
            std::fs::write(dir.join("report.txt"), &c.model.report).map_err(io)?;
            dir
        }
    };
    let json = serde_json::to_string_pretty(choice).expect("choice serializes");
    std::fs::write(dir.join("scheme.json"), json).map_err(|e| CompileError::Io(format!("{}: {e}", dir.display())))?;
    Ok(dir)
}
