//! `--scheme bgv --quantize BITS`: a float model with square (or no) activations becomes an
//! exact integer network under BGV, CryptoNets style — inputs and each linear layer's
//! weights scaled so their largest magnitude is 2^BITS − 1 and rounded, biases rounded at
//! the layer's output scale, and no requantization between layers: the scales multiply
//! (a square squares them) and the plaintext modulus t holds every intermediate value.
//!
//! The bound is proven, not calibrated: interval arithmetic over the integer weights from
//! the input range (the calibration and evaluation data's [min, max], every feature),
//! `bgv::throughput::IntNetwork::bounds`. t is the smallest prime ≡ 1 (mod 2N) above twice
//! it and the chain the smallest secure one the noise schedule fits in
//! (`bgv::throughput::plan`); past any t below 2^60, a residue plan (`plan_crt`: several t
//! whose product holds it, one chain, one key, the outputs recombined by CRT), and past
//! four residues (2^126) the model is refused, naming fewer bits.
//! Consecutive linear ops (Conv, folded BatchNorm, AvgPool, Flatten, Gemm) are composed
//! into one matrix before rounding, as the import already fuses them.
//!
//! A quantize_dynamic model (DynamicQuantizeLinear → MatMulInteger/ConvInteger, int8
//! weights) brings its weights' integers too; its input, quantized per batch by onnxruntime,
//! goes on DynamicQuantizeLinear's uint8 step over the data's range (fixed at compile time).
//!
//! A QDQ model (onnxruntime's `quantize_static`, per-tensor) brings its own integers
//! (`Grid::Model`, `--scheme bgv` without `--quantize`): inputs round(x / s) with the
//! input QuantizeLinear's s (its zero point cancels in the DequantizeLinear after it), each
//! layer's weights the integers its DequantizeLinear folded into floats — recovered as the
//! coarsest grid max|w| / k (k ≤ 255) every weight sits on — and the int32 biases at
//! s_x·s_w. The activations' Q→DQ pairs are not applied: the integers stay exact where
//! onnxruntime rounds them back to 8 bits, which the accuracy line measures.

use std::fmt::Write;
use std::path::Path;

use bgv::throughput::{plan, plan_crt, CrtPlan, IntLayer, IntLinear, IntNetwork, PlanError};
use model::report::Accuracy;
use model::{BgvInput, BgvLayer, BgvModel, BgvOutput, BgvSpec, Scheme};

use crate::activation::ActFn;
use crate::affine::Affine;
use crate::import::{Imported, Stage};
use crate::{verify, CompileError, Data, Options};

/// The most bits `--quantize` takes: beyond, even one layer's products leave t's range.
pub const MAX_QUANTIZE_BITS: u32 = 16;

/// A compiled BGV integer model and its accuracy against the float model.
pub struct CompiledBgv {
    pub model: BgvModel,
    pub accuracy: Accuracy,
    /// What one request costs (a batch of up to `batch` samples): `--scheme auto` compares it.
    pub costs: BgvCosts,
}

/// A BGV model's costs per request.
#[derive(Clone, Debug)]
pub struct BgvCosts {
    /// Estimated evaluation time of one batch (one core, the rough model of the CKKS report).
    pub est_ms: f64,
    pub query_bytes: usize,
    pub answer_bytes: usize,
    pub key_bytes: usize,
    /// Samples one request carries at most (N).
    pub batch: usize,
}

/// Evaluation time of one batch, in the CKKS report's rough model: a scalar multiply-add
/// per weight over the layer's limbs, a product and relinearisation (one key switch) per
/// squared ciphertext.
fn est_batch_ms(net: &IntNetwork, levels: &[usize], log_n: u32, dnum: usize, k: usize, l_total: usize) -> f64 {
    let n = (1u64 << log_n) as f64;
    let mut width = net.inputs();
    let mut ms = 0.0;
    for (layer, &level) in net.layers().iter().zip(levels) {
        let limbs = level as f64 + 1.0;
        match layer {
            IntLayer::Linear(lin) => {
                let macs = lin.weights.iter().filter(|&&w| w != 0).count() as f64;
                ms += macs * n * 3e-6 * limbs;
                width = lin.outputs();
            }
            IntLayer::Square => {
                let ks = crate::report::est_keyswitch_ms(level as u32, log_n, dnum, k, l_total);
                ms += width as f64 * (ks + n * 4e-6 * limbs);
            }
        }
    }
    ms
}

/// The integer network and its scales.
pub struct Quantized {
    pub net: IntNetwork,
    pub names: Vec<String>,
    pub input_scale: f64,
    pub output_scale: f64,
    /// The input range, as integers.
    pub lo: i64,
    pub hi: i64,
}

impl Quantized {
    /// One sample's integers (round(x·scale)).
    pub fn encode(&self, x: &[f64]) -> Vec<i64> {
        x.iter().map(|&v| (v * self.input_scale).round() as i64).collect()
    }
    /// What the decrypted outputs of one sample decode to.
    pub fn outputs(&self, x: &[f64]) -> Result<Vec<f64>, CompileError> {
        let y = self.net.reference(&self.encode(x)).ok_or_else(|| CompileError::Internal("i128 overflow".into()))?;
        Ok(y.iter().map(|&v| v as f64 / self.output_scale).collect())
    }
}

fn levels(bits: u32) -> f64 {
    ((1u64 << bits) - 1) as f64
}

/// Where a model's integers come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grid {
    /// `--quantize BITS`: inputs and each layer's weights scaled so their largest
    /// magnitude is 2^BITS − 1, and rounded.
    Bits(u32),
    /// A QDQ model's own integers (module docs).
    Model,
}

/// The most integer magnitudes a QDQ weight grid may have (uint8 with a zero point).
const MAX_GRID_STEPS: u32 = 255;
/// How far from an integer a weight over its grid step may lie (the DequantizeLinear's
/// f32 scale times an integer, read back in f64).
const GRID_TOLERANCE: f64 = 1e-4;

/// The weight scale 1/step of the coarsest grid max|w| / k, k ≤ 255, that every weight
/// of `map` sits on; None when there is none (per-channel scales, or layers composed).
fn model_grid(map: &Affine) -> Option<f64> {
    let max = map.rows.iter().flatten().map(|&(_, w)| w.abs()).fold(0.0f64, f64::max);
    if max == 0.0 {
        return Some(1.0);
    }
    (1..=MAX_GRID_STEPS).map(|k| k as f64 / max).find(|&s_w| {
        map.rows.iter().flatten().all(|&(_, w)| {
            let v = w * s_w;
            (v - v.round()).abs() <= GRID_TOLERANCE
        })
    })
}

/// Rounds an affine map at its weight scale (`grid`: the one that puts its largest
/// |weight| at 2^bits − 1, or the model's own); the bias at the output scale
/// `s_in · s_w`. Returns the layer and `s_w`.
fn quantize_affine(map: &Affine, grid: Grid, s_in: f64, name: &str) -> Result<(IntLinear, f64), CompileError> {
    let max = map.rows.iter().flatten().map(|&(_, w)| w.abs()).fold(0.0f64, f64::max);
    let s_w = match grid {
        Grid::Bits(bits) => {
            if max > 0.0 {
                levels(bits) / max
            } else {
                1.0
            }
        }
        Grid::Model => model_grid(map).ok_or_else(|| CompileError::Unsupported {
            node: name.into(),
            op: "DequantizeLinear".into(),
            hint: format!(
                "the layer's weights are not on one integer grid of at most {MAX_GRID_STEPS} steps (per-channel \
                 scales, or quantized layers composed with nothing between them), so the model's own integers \
                 cannot be kept exactly: quantize per tensor (quantize_static(..., per_channel=False)), or \
                 compile with --quantize BITS to round the float weights"
            ),
        })?,
    };
    let d = map.n_in;
    let mut weights = vec![0i64; d * map.n_out()];
    for (o, row) in map.rows.iter().enumerate() {
        for &(i, w) in row {
            weights[o * d + i as usize] = (w * s_w).round() as i64;
        }
    }
    let s_out = s_in * s_w;
    let bias = map
        .bias
        .iter()
        .map(|&b| {
            let v = (b * s_out).round();
            // i128 holds it; a residue plan past 2^125 would be refused by the bound anyway.
            if v.abs() >= 2f64.powi(125) {
                let what = match grid {
                    Grid::Bits(_) => "quantize with fewer bits",
                    Grid::Model => {
                        "the model's own integers (8-bit inputs and weights, no requantization between layers) \
                         grow past what four plaintext moduli hold: compile with --quantize BITS (fewer bits), \
                         or --scheme ckks"
                    }
                };
                return Err(CompileError::Params(format!(
                    "layer {name}: a bias of {b} at the output scale 2^{:.1} leaves 125 bits: {what}",
                    s_out.log2()
                )));
            }
            Ok(v as i128)
        })
        .collect::<Result<_, _>>()?;
    Ok((IntLinear { inputs: d, weights, bias }, s_w))
}

/// The integer network of `imp` on `grid`, for inputs in `[lo, hi]` (reals).
pub fn quantize(imp: &Imported, grid: Grid, lo: f64, hi: f64) -> Result<Quantized, CompileError> {
    let input_scale = match grid {
        Grid::Bits(bits) => {
            if !(1..=MAX_QUANTIZE_BITS).contains(&bits) {
                return Err(CompileError::Params(format!("--quantize {bits}: choose 1 to {MAX_QUANTIZE_BITS} bits")));
            }
            let in_max = lo.abs().max(hi.abs());
            if in_max > 0.0 {
                levels(bits) / in_max
            } else {
                1.0
            }
        }
        Grid::Model => match (imp.input_quant_scale, imp.input_dynamic_quant) {
            (Some(s), _) => 1.0 / s,
            // DynamicQuantizeLinear's uint8 step over the data's range (0 included): what it
            // computes for a batch spanning the calibration data; x_q − zero point = round(x / s).
            (None, true) => {
                let span = hi.max(0.0) - lo.min(0.0);
                if span > 0.0 {
                    255.0 / span
                } else {
                    1.0
                }
            }
            (None, false) => {
                return Err(CompileError::Params(
                    "the model has no QuantizeLinear or DynamicQuantizeLinear on its input, so it brings no \
                     integers of its own: compile with --quantize BITS (weights and inputs scaled and rounded)"
                        .into(),
                ))
            }
        },
    };
    let d: usize = imp.input_shape.iter().product();
    let mut scale = input_scale;
    let mut layers = Vec::new();
    let mut names = Vec::new();
    let mut pending: Option<(Affine, String)> = None;
    let flush = |pending: &mut Option<(Affine, String)>,
                 layers: &mut Vec<IntLayer>,
                 names: &mut Vec<String>,
                 scale: &mut f64|
     -> Result<(), CompileError> {
        if let Some((map, name)) = pending.take() {
            let (lin, s_w) = quantize_affine(&map, grid, *scale, &name)?;
            *scale *= s_w;
            layers.push(IntLayer::Linear(lin));
            names.push(name);
        }
        Ok(())
    };
    for (i, s) in imp.stages.iter().enumerate() {
        if s.sources() != [i] {
            return Err(CompileError::Unsupported {
                node: stage_name(s).into(),
                op: "branch".into(),
                hint: "BGV integer models are chains of layers (no residual connection): use --scheme ckks".into(),
            });
        }
        match s {
            Stage::Linear { map, name, .. } => {
                pending = Some(match pending.take() {
                    None => (map.clone(), name.clone()),
                    Some((inner, n)) => (map.compose(&inner), format!("{n}+{name}")),
                });
            }
            Stage::Act { f: ActFn::Square, name, .. } => {
                flush(&mut pending, &mut layers, &mut names, &mut scale)?;
                layers.push(IntLayer::Square);
                names.push(name.clone());
                scale *= scale;
            }
            // A QuantizeLinear whose range starts at 0 right after a square (a QDQ model's
            // x²): its clamp at 0 is the identity on x² ≥ 0, and its top is where the
            // 8-bit activation saturates, which exact integers do not.
            Stage::Act { f: ActFn::Clip(lo, _), .. }
                if *lo <= 0.0 && pending.is_none() && matches!(layers.last(), Some(IntLayer::Square)) => {}
            Stage::Act { f, name, .. } => {
                return Err(CompileError::Unsupported {
                    node: name.clone(),
                    op: format!("{f:?}"),
                    hint: "BGV computes exactly on integers: only square (Mul x x, Pow 2) or identity activations; \
                           use --scheme ckks, which approximates other activations by polynomials"
                        .into(),
                });
            }
            Stage::Add { name, .. } => {
                return Err(CompileError::Unsupported {
                    node: name.clone(),
                    op: "Add".into(),
                    hint: "residual additions are not in BGV integer models: use --scheme ckks".into(),
                })
            }
        }
    }
    flush(&mut pending, &mut layers, &mut names, &mut scale)?;
    let net = IntNetwork::new(d, layers).map_err(|e| CompileError::Internal(e.to_string()))?;
    let (qlo, qhi) = ((lo * input_scale).round() as i64, (hi * input_scale).round() as i64);
    Ok(Quantized { net, names, input_scale, output_scale: scale, lo: qlo, hi: qhi })
}

fn stage_name(s: &Stage) -> &str {
    match s {
        Stage::Linear { name, .. } | Stage::Act { name, .. } | Stage::Add { name, .. } => name,
    }
}

/// The range of every value in the data (calibration and evaluation): the box the bound is proven over.
fn data_range(data: &Data) -> (f64, f64) {
    let mut r = (f64::INFINITY, f64::NEG_INFINITY);
    for a in [Some(data.calibration), data.eval].into_iter().flatten() {
        for i in 0..a.rows() {
            for &v in a.row(i) {
                r = (r.0.min(v), r.1.max(v));
            }
        }
    }
    r
}

/// Compiles `imp` to a BGV integer model on `grid`.
pub fn compile_bgv(
    imp: &Imported,
    grid: Grid,
    data: &Data,
    onnx_path: Option<&Path>,
    opts: &Options,
    choice_text: &str,
    progress: &dyn Fn(&str),
) -> Result<CompiledBgv, CompileError> {
    progress("quantizing for BGV");
    let (lo, hi) = data_range(data);
    if !(lo.is_finite() && hi.is_finite()) {
        return Err(CompileError::Data("no finite input value to take the input range from".into()));
    }
    let q = quantize(imp, grid, lo, hi)?;
    progress("proving the bound and choosing t");
    let flag = match grid {
        Grid::Bits(bits) => format!("--quantize {bits}"),
        Grid::Model => "the model's own integers".into(),
    };
    // One t when one holds the bound; past that, residues (a CRT of several t, one key).
    let lambda = opts.circuit_privacy;
    if let Some(l) = lambda.filter(|l| !(1..=128).contains(l)) {
        return Err(CompileError::Params(format!("circuit privacy at 2^-{l}: give λ between 1 and 128")));
    }
    let (plan, sets) = match plan(&q.net, q.lo, q.hi, lambda) {
        Ok((p, params)) => {
            Ok((CrtPlan { bound: p.bound, ts: vec![p.t], log_n: p.log_n, q_bits: p.q_bits }, vec![params]))
        }
        Err(PlanError::BoundTooLarge { .. }) => plan_crt(&q.net, q.lo, q.hi, lambda),
        Err(e) => Err(e),
    }
    .map_err(|e| CompileError::Params(format!("{flag}: {e}")))?;
    let residues = plan.ts.len();
    // The schedule of the largest t, which plan_crt checked under every t.
    let params = sets.iter().max_by_key(|p| p.plaintext_modulus()).expect("a plan has a t").clone();
    let schedule = q
        .net
        .schedule_with(&params, bgv::throughput::fresh_noise_bits(&params), lambda)
        .map_err(|e| CompileError::Internal(e.to_string()))?;
    let circuit_privacy = match lambda {
        Some(l) => Some(bgv_flood(&q.net, &sets, &schedule, l, opts.circuit_privacy_flood_bits)?),
        None => None,
    };
    progress("measuring accuracy");
    let eval = data.eval.unwrap_or(data.calibration);
    let sims = (0..eval.rows()).map(|r| q.outputs(eval.row(r))).collect::<Result<Vec<_>, _>>()?;
    let (acc, note) = verify::accuracy_of(sims, imp, data, onnx_path, opts)?;
    let (d, k) = (q.net.inputs(), q.net.outputs());
    let n = params.n();
    let top = params.max_level();
    let query = residues * d * params.ciphertext_bytes(top, true);
    let answer = residues * k * params.ciphertext_bytes(schedule.last, false);
    let spec = params.spec();
    // The bundle the client uploads (`client::BgvSession::key_bundle`): one relinearisation
    // key, made for the top level, seeded and packed at each prime's width; with circuit
    // privacy also the public key the flood is encrypted under (b over every prime, a seed).
    let rl = params.rlwe();
    let key_bytes = ckks::wire::HEADER_LEN + 1 + 4 // the bundle's header, contents byte and Galois count
        + rl.keyswitch_key_bytes_at(top)
        + if lambda.is_some() { 32 + rl.poly_bytes(0..=top) } else { 0 };
    let client = BgvSpec {
        version: model::bgv_model::BGV_SPEC_VERSION,
        scheme: Scheme::Bgv,
        model: opts.name.clone(),
        params: spec.clone(),
        plaintext_modulus: plan.ts[0],
        residues: plan.ts[1..].to_vec(),
        input: BgvInput {
            name: imp.input_name.clone(),
            shape: imp.input_shape.clone(),
            scale: q.input_scale,
            lo: q.lo,
            hi: q.hi,
        },
        output: BgvOutput {
            name: imp.he_output.clone(),
            shape: vec![k],
            scale: q.output_scale,
            final_name: imp.final_output.clone(),
            level: schedule.last,
        },
        postprocess: imp.postprocess.clone(),
        circuit_privacy: circuit_privacy.clone(),
    };
    let layers: Vec<BgvLayer> = q
        .net
        .layers()
        .iter()
        .zip(&q.names)
        .map(|(l, name)| match l {
            IntLayer::Linear(lin) => BgvLayer::Linear {
                name: name.clone(),
                inputs: lin.inputs,
                weights: lin.weights.clone(),
                bias: lin.bias.clone(),
            },
            IntLayer::Square => BgvLayer::Square { name: name.clone() },
        })
        .collect();
    let mut r = String::new();
    let _ =
        writeln!(r, "model {} — BGV exact integer model (layout T: one ciphertext per feature, N samples)", opts.name);
    let kinds: Vec<String> = q
        .net
        .layers()
        .iter()
        .map(|l| match l {
            IntLayer::Linear(lin) => format!("linear {}→{}", lin.inputs, lin.outputs()),
            IntLayer::Square => "x²".into(),
        })
        .collect();
    let _ = writeln!(r, "  layers: {}", kinds.join(" → "));
    let weights = match grid {
        Grid::Bits(bits) => format!("{bits} bits — each layer's weights scaled to |w| ≤ {}", (1u64 << bits) - 1),
        Grid::Model if imp.input_quant_scale.is_none() => "the model's own (quantize_dynamic) — each layer's \
                        weights the int8s its MatMulInteger/ConvInteger holds, the input on DynamicQuantizeLinear's \
                        step over the data's range (fixed, where onnxruntime takes it per batch), DynamicQuantizeLinear \
                        of activations not applied"
            .into(),
        Grid::Model => "the model's own (QDQ) — each layer's weights the integers its DequantizeLinear holds, \
                        activation QuantizeLinear/DequantizeLinear pairs not applied"
            .into(),
    };
    let _ = writeln!(
        r,
        "  quantization: {weights}; inputs round(x·{:.4}) in [{}, {}] (data range [{lo}, {hi}]), no \
         requantization; outputs = integer / 2^{:.1}",
        q.input_scale,
        q.lo,
        q.hi,
        q.output_scale.log2()
    );
    let _ = writeln!(
        r,
        "  bound: every intermediate |value| ≤ {} (2^{:.1}), proven by interval arithmetic over the input range",
        plan.bound,
        (plan.bound as f64).log2()
    );
    let t_text = if residues == 1 {
        format!("t = {} (2^{:.1}, prime ≡ 1 mod 2N)", plan.ts[0], (plan.ts[0] as f64).log2())
    } else {
        let product: f64 = plan.ts.iter().map(|&t| (t as f64).log2()).sum();
        format!(
            "{residues} residues t = {:?} (each prime ≡ 1 mod 2N, product 2^{product:.1} > 2·bound: past any one \
             t below 2^60; one key, {residues} evaluations, each output the CRT of its residues)",
            plan.ts
        )
    };
    let _ = writeln!(
        r,
        "  parameters: {}, N = 2^{}, log Q = {:.0} ({} primes of {:?} bits), \
         128-bit secure; levels {:?}, answers at level {}, noise budget left ≥ {:.1} bits",
        t_text,
        plan.log_n,
        params.log_q_at(top),
        plan.q_bits.len(),
        plan.q_bits,
        schedule.before,
        schedule.last,
        schedule.budget_bits
    );
    let _ = writeln!(
        r,
        "  keys: relinearisation only (no rotation){}: {key_bytes} B to upload; per batch of {n} samples: query {query} B, \
         answer {answer} B; per sample {:.0} B + {:.0} B; {} ciphertext products per batch and residue",
        if lambda.is_some() { " and the public key for the flood" } else { "" },
        query as f64 / n as f64,
        answer as f64 / n as f64,
        q.net
            .layers()
            .iter()
            .scan(d, |w, l| {
                Some(match l {
                    IntLayer::Linear(lin) => {
                        *w = lin.outputs();
                        0
                    }
                    IntLayer::Square => *w,
                })
            })
            .sum::<usize>()
    );
    let _ = writeln!(
        r,
        "  exact: decrypted outputs equal the integer computation bit for bit; against {}: {} samples, top-1 \
         agreement {:.2} %, max |error| {:.2e}{}",
        acc.reference,
        acc.samples,
        100.0 * acc.top1_agreement,
        acc.max_abs_error,
        match (acc.reference_accuracy, acc.simulated_accuracy) {
            (Some(a), Some(s)) => format!("; label accuracy {:.2} % (reference {:.2} %)", 100.0 * s, 100.0 * a),
            _ => String::new(),
        }
    );
    if let Some(cp) = &circuit_privacy {
        let pk = 32 + params.rlwe().poly_bytes(0..params.spec().q.len());
        let _ = writeln!(
            r,
            "  circuit privacy: each answer flooded (an encryption of zero under the client's public key, plus t·u \
             with u uniform in [-2^{b}, 2^{b}) per coefficient): any two networks with the same outputs give answers \
             within statistical distance 2^-{l}, given the answers' noise ‖e‖₁ ≤ 2^{e:.1} (the noise bounds' \
             high-probability estimates); the answers' noise bound on the wire is then the flood's, the same for every \
             model with this flood. Cost: no precision (outputs stay exact), modulus: answers at level {last} \
             instead of the lowest that holds them; one public-key encryption per answer ciphertext on the server; \
             the bundle carries the public key (≈ {pk} B more){fixed}",
            b = cp.flood_bits,
            l = cp.lambda,
            e = cp.log2_error_l1,
            last = schedule.last,
            fixed = if opts.circuit_privacy_flood_bits.is_some() {
                "; the flood is fixed (--flood-bits), not sized for this model"
            } else {
                ""
            },
        );
    }
    for n in imp.notes.iter().chain(&note) {
        let _ = writeln!(r, "  note: {n}");
    }
    r.push_str(choice_text);
    let model = BgvModel {
        name: opts.name.clone(),
        client,
        layers,
        levels: schedule.before.clone(),
        bound: plan.bound.to_string(),
        report: r,
    };
    model.validate().map_err(|e| CompileError::Internal(e.to_string()))?;
    let costs = BgvCosts {
        est_ms: residues as f64
            * est_batch_ms(&q.net, &schedule.before, spec.log_n, spec.dnum, spec.p.len(), spec.q.len()),
        query_bytes: query,
        answer_bytes: answer,
        key_bytes,
        batch: n,
    };
    Ok(CompiledBgv { model, accuracy: acc, costs })
}

/// The flood of a circuit-private BGV model: the widest any residue's answers need at
/// `lambda` (one value in the spec, so that every residue looks alike), or the fixed
/// `--flood-bits` if it is at least that; refused when it does not decrypt at the answers'
/// level under some residue.
fn bgv_flood(
    net: &bgv::throughput::IntNetwork,
    sets: &[bgv::Parameters],
    schedule: &bgv::throughput::Schedule,
    lambda: u32,
    fixed: Option<u32>,
) -> Result<model::CircuitPrivacy, CompileError> {
    use bgv::circuit::{error_l1_bits, flood_bits, flooded_noise_bits};
    let mut need = 0;
    let mut l1 = f64::NEG_INFINITY;
    for p in sets {
        let budget = net
            .check_schedule_with(p, bgv::throughput::fresh_noise_bits(p), schedule, None)
            .map_err(|e| CompileError::Internal(e.to_string()))?;
        let nz = bgv::noise::limit(p, schedule.last) - budget;
        need = need.max(flood_bits(p, nz, lambda));
        l1 = l1.max(error_l1_bits(p, nz));
    }
    let b = match fixed {
        Some(b) if b < need => {
            return Err(CompileError::Params(format!(
                "circuit privacy at 2^-{lambda} needs a flood of 2^{need} per coefficient for this model \
                 (‖e‖₁ ≤ 2^{l1:.1}); --flood-bits {b} is too small: give {need} or more, or a smaller λ"
            )))
        }
        Some(b) => b,
        None => need,
    };
    for p in sets {
        let (bound, limit) = (flooded_noise_bits(p, b), bgv::noise::limit(p, schedule.last));
        if bound > limit {
            return Err(CompileError::Params(format!(
                "circuit privacy: a flood of 2^{b} does not decrypt at the answers' level ({bound:.1} bits of \
                 noise against {limit:.1}){}",
                if fixed.is_some() { ": give a smaller --flood-bits" } else { "" }
            )));
        }
    }
    Ok(model::CircuitPrivacy { lambda, log2_error_l1: l1, flood_bits: b, slot_std: 0.0 })
}
