//! # compiler — ONNX in, encrypted-inference model out
//!
//! [`compile`] imports an ONNX model ([`onnx`], [`import`]: linear ops fused, batch
//! norm folded, trailing softmax/argmax moved to the client), replaces activations by
//! polynomials fitted on calibration data ([`approx`]), packs every layer into one
//! ciphertext with few, shared, power-of-two rotations ([`lower`]), picks the smallest
//! secure parameters ([`params`]), checks the program against the f64 model, and
//! reports cost and accuracy (against onnxruntime when Python has it, [`ort`]).
//! [`write_repository`] writes the Triton model directory.

#![forbid(unsafe_code)]

pub mod approx;
pub mod import;
pub mod lower;
pub mod noise;
pub mod npy;
pub mod onnx;
pub mod ort;
pub mod params;
pub mod residual;
pub mod svg;
pub mod triton;

use std::path::{Path, PathBuf};
use std::time::Instant;

use model::report::{Accuracy, ActivationReport, LayerReport, Report};
use model::{ClientSpec, HeModel, InputSpec, LayerInfo, Op, OutputSpec, PostOp};

pub use import::{ActFn, MaxPoolPolicy};
pub use npy::Array;

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("malformed ONNX model: {0}")]
    BadOnnx(String),
    #[error("unsupported: {node} (op {op}): {hint}")]
    Unsupported { node: String, op: String, hint: String },
    #[error("shape: {0}")]
    Shape(String),
    #[error("data: {0}")]
    Data(String),
    #[error("layout: {0}")]
    Layout(String),
    #[error("parameters: {0}")]
    Params(String),
    #[error("activation: {0}")]
    Accuracy(String),
    #[error("internal check failed: {0}")]
    Internal(String),
    #[error("I/O: {0}")]
    Io(String),
}

#[derive(Clone, Debug)]
pub struct Options {
    pub name: String,
    /// Polynomial degree for every non-square activation; None: the smallest meeting `target_agreement`.
    pub degree: Option<usize>,
    pub target_agreement: f64,
    pub max_degree: usize,
    /// Fit range = seen range widened by this fraction of its width on each side.
    pub margin: f64,
    pub maxpool: MaxPoolPolicy,
    pub scale_bits: Option<u32>,
    pub min_log_n: u32,
    pub key_budget_bytes: Option<usize>,
    /// Python with onnxruntime for the reference; None: $HEINFER_PYTHON, then python3.
    pub python: Option<PathBuf>,
    pub use_onnxruntime: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            name: "model".into(),
            degree: None,
            target_agreement: 0.999,
            max_degree: 31,
            margin: 0.1,
            maxpool: MaxPoolPolicy::Refuse,
            scale_bits: None,
            min_log_n: 12,
            key_budget_bytes: None,
            python: None,
            use_onnxruntime: true,
        }
    }
}

/// Data for calibration and the accuracy report.
pub struct Data<'a> {
    pub calibration: &'a Array,
    pub eval: Option<&'a Array>,
    pub labels: Option<&'a Array>,
}

pub struct Compiled {
    pub model: HeModel,
    /// (file name, SVG text) of the activation plots.
    pub plots: Vec<(String, String)>,
}

/// Calibration samples the noise analysis simulates.
const NOISE_SAMPLES: usize = 64;
/// Share of them that must keep their top-1 class under `NOISE_SAFETY` × the modelled noise.
const NOISE_QUANTILE: f64 = 0.99;
const NOISE_SAFETY: f64 = 4.0;
/// Never below this scale, whatever the analysis says (constants and weights lose
/// precision below it).
const MIN_SCALE_BITS: u32 = 24;

/// A stage after approximation, with affine folds applied. As in [`import::Stage`],
/// value 0 is the input and stage `i` produces value `i + 1`; the last stage is the output.
#[derive(Clone, Debug)]
enum LStage {
    Linear {
        name: String,
        kind: String,
        map: import::Affine,
        src: usize,
    },
    Square {
        name: String,
        kind: String,
        src: usize,
    },
    /// A polynomial in its input, by its Chebyshev coefficients (see [`lower::poly`]).
    Poly {
        name: String,
        kind: String,
        cheb: Vec<f64>,
        exact_zero: bool,
        src: usize,
    },
    /// value a ± value b, `n` elements (see [`residual::add`]).
    Add {
        name: String,
        kind: String,
        a: usize,
        b: usize,
        sub: bool,
        n: usize,
    },
}

impl LStage {
    fn apply(&self, vals: &[Vec<f64>]) -> Vec<f64> {
        match self {
            LStage::Linear { map, src, .. } => map.apply(&vals[*src]),
            LStage::Square { src, .. } => vals[*src].iter().map(|x| x * x).collect(),
            LStage::Poly { cheb, src, .. } => vals[*src].iter().map(|&x| approx::cheb_eval(cheb, x)).collect(),
            LStage::Add { a, b, sub, .. } => {
                let sg = if *sub { -1.0 } else { 1.0 };
                vals[*a].iter().zip(&vals[*b]).map(|(x, y)| x + sg * y).collect()
            }
        }
    }
    /// Levels this stage consumes on its path (an upper bound for an addition, which
    /// may re-pack one operand and align scales).
    fn depth(&self) -> u32 {
        match self {
            LStage::Linear { .. } | LStage::Square { .. } => 1,
            LStage::Poly { cheb, .. } => approx::depth_rec(cheb),
            LStage::Add { .. } => residual::MAX_DEPTH,
        }
    }
    fn info(&self) -> LayerInfo {
        let (n, k) = match self {
            LStage::Linear { name, kind, .. }
            | LStage::Square { name, kind, .. }
            | LStage::Poly { name, kind, .. }
            | LStage::Add { name, kind, .. } => (name, kind),
        };
        LayerInfo { name: n.clone(), kind: k.clone() }
    }
}

fn forward(stages: &[LStage], x: &[f64]) -> Vec<f64> {
    let mut vals: Vec<Vec<f64>> = Vec::with_capacity(stages.len() + 1);
    vals.push(x.to_vec());
    for s in stages {
        let v = s.apply(&vals);
        vals.push(v);
    }
    vals.pop().unwrap_or_default()
}

/// Upper bound of the program's depth: the longest path, each addition at its worst.
fn depth_bound(stages: &[LStage]) -> u32 {
    let mut d = vec![0u32; stages.len() + 1];
    for (i, s) in stages.iter().enumerate() {
        let inp = match s {
            LStage::Linear { src, .. } | LStage::Square { src, .. } | LStage::Poly { src, .. } => d[*src],
            LStage::Add { a, b, .. } => d[*a].max(d[*b]),
        };
        d[i + 1] = inp + s.depth();
    }
    d.last().copied().unwrap_or(0)
}

fn top1(post: &[PostOp], v: &[f64]) -> usize {
    let f = model::apply_postprocess(post, v);
    if post.last() == Some(&PostOp::ArgMax) {
        f[0] as usize
    } else {
        model::argmax(&f)
    }
}

/// An activation's fitted polynomial, its function, its node name and its degree.
type FittedActivation = (approx::Fit, ActFn, String, usize);

/// Fits every activation at `degree` and folds normalisations into the neighbouring
/// linear maps — where those maps feed nothing else: a value that also feeds a residual
/// branch is kept as it is, and the normalisation becomes an explicit affine stage.
fn approximate(
    imp: &import::Imported,
    ranges: &[(f64, f64, Vec<f64>)],
    degree: usize,
    margin: f64,
) -> (Vec<LStage>, Vec<FittedActivation>) {
    use import::Stage;
    let uses = imp.uses();
    // Import values read by exactly one stage, a linear one.
    let mut only_linear = vec![false; imp.stages.len() + 1];
    for s in &imp.stages {
        if let Stage::Linear { src, .. } = s {
            only_linear[*src] = uses[*src] == 1;
        }
    }
    let mut out: Vec<LStage> = vec![];
    let mut fits = vec![];
    // Import value → LStage value; and an affine a·v + c still owed to a value's (linear) reader.
    let mut vmap = vec![0usize; imp.stages.len() + 1];
    let mut pending: Vec<Option<(f64, f64)>> = vec![None; imp.stages.len() + 1];
    let mut act_i = 0;
    for (si, st) in imp.stages.iter().enumerate() {
        let iv = si + 1;
        match st {
            Stage::Linear { name, kind, map, src, .. } => {
                let mut map = map.clone();
                if let Some((a, c)) = pending[*src].take() {
                    // W ← a·W, b ← b + c·rowsum(W)
                    for (r, b) in map.rows.iter_mut().zip(map.bias.iter_mut()) {
                        let rs: f64 = r.iter().map(|e| e.1).sum();
                        *b += c * rs;
                        for e in r.iter_mut() {
                            e.1 *= a;
                        }
                    }
                }
                out.push(LStage::Linear { name: name.clone(), kind: kind.clone(), map, src: vmap[*src] });
            }
            Stage::Add { name, a, b, sub, n } => {
                out.push(LStage::Add {
                    name: name.clone(),
                    kind: if *sub { "residual sub".into() } else { "residual add".into() },
                    a: vmap[*a],
                    b: vmap[*b],
                    sub: *sub,
                    n: *n,
                });
            }
            Stage::Act { name, f, src } => {
                let (lo, hi, samples) = &ranges[act_i];
                act_i += 1;
                let s = vmap[*src];
                // The producing linear stage, when this activation is its only reader.
                let prev_linear = s > 0 && uses[*src] == 1 && matches!(out.get(s - 1), Some(LStage::Linear { .. }));
                if *f == ActFn::Square {
                    out.push(LStage::Square { name: name.clone(), kind: "square (exact)".into(), src: s });
                    vmap[iv] = out.len();
                    continue;
                }
                let w = (hi - lo).max(1e-6);
                let (flo, fhi) = (lo - margin * w, hi + margin * w);
                let fit = approx::fit(&|x| f.eval(x), flo, fhi, degree, samples);
                let cx = fit.coef_in_x();
                let kind = format!("{} ~ poly deg {}", f.name(), degree);
                fits.push((fit.clone(), *f, name.clone(), out.len()));
                if degree == 2 && prev_linear && cx[2].abs() > 1e-12 {
                    // p(x) = A (x + h)^2 + c: h into the previous bias, A and c into the next layer.
                    let (a2, b1, c0) = (cx[2], cx[1], cx[0]);
                    let h = b1 / (2.0 * a2);
                    let c = c0 - b1 * b1 / (4.0 * a2);
                    if let Some(LStage::Linear { map, .. }) = out.get_mut(s - 1) {
                        for b in map.bias.iter_mut() {
                            *b += h;
                        }
                    }
                    out.push(LStage::Square { name: name.clone(), kind: kind + " (folded)", src: s });
                    if only_linear[iv] {
                        pending[iv] = Some((a2, c));
                    } else {
                        out.push(LStage::Poly {
                            name: format!("{name} (affine)"),
                            kind: "affine".into(),
                            cheb: vec![c, a2],
                            exact_zero: c == 0.0,
                            src: out.len(),
                        });
                    }
                } else if prev_linear {
                    if let Some(LStage::Linear { map, .. }) = out.get_mut(s - 1) {
                        for (r, b) in map.rows.iter_mut().zip(map.bias.iter_mut()) {
                            for e in r.iter_mut() {
                                e.1 /= fit.radius;
                            }
                            *b = (*b - fit.center) / fit.radius;
                        }
                    }
                    let z = fit.coef[0] == 0.0;
                    out.push(LStage::Poly { name: name.clone(), kind, cheb: fit.cheb.clone(), exact_zero: z, src: s });
                } else if degree <= 3 {
                    let cheb = approx::power_to_cheb(&cx);
                    out.push(LStage::Poly { name: name.clone(), kind, cheb, exact_zero: cx[0] == 0.0, src: s });
                } else {
                    // Normalise explicitly (one level): the power basis in x is unstable at high degree.
                    let c0 = -fit.center / fit.radius;
                    out.push(LStage::Poly {
                        name: format!("{name} (normalise)"),
                        kind: "affine".into(),
                        cheb: vec![c0, 1.0 / fit.radius],
                        exact_zero: c0 == 0.0,
                        src: s,
                    });
                    let z = fit.coef[0] == 0.0;
                    out.push(LStage::Poly {
                        name: name.clone(),
                        kind,
                        cheb: fit.cheb.clone(),
                        exact_zero: z,
                        src: out.len(),
                    });
                }
            }
        }
        vmap[iv] = out.len();
    }
    (out, fits)
}

/// Builds the HE program for `stages` on S slots with primes `q`.
struct Built {
    b: lower::Builder,
    client_map: Vec<i32>,
    out: lower::V,
    out_layout: Vec<i32>,
    input_level: u32,
    input_scale: f64,
    layout_desc: String,
}

fn build(stages: &[LStage], q: &[u64], slots: usize, scale: f64) -> Result<Built, CompileError> {
    let mut b = lower::Builder::new(q.to_vec(), slots);
    let top = q.len() as u32 - 1;
    let x = b.input(0, top, scale);
    let (v0, layout0, client_map, desc) = match stages.first() {
        Some(LStage::Linear { map, src: 0, .. }) => {
            let plan = lower::plan_first(map, slots)?;
            let desc = format!(
                "{} window(s) x {} outputs: output (window w, member c) at slot w + {}*c, period {}; client puts window w's tap t in column w (see slot_map), replicated every {} slots",
                plan.groups.len(),
                plan.cp,
                plan.wp,
                plan.period(),
                plan.period() * plan.rr
            );
            let (v, l, c) = lower::first_layer(&mut b, x, map, &plan);
            (v, l, c, desc)
        }
        _ => {
            return Err(CompileError::Layout("the model must begin with a linear layer (Gemm, MatMul or Conv)".into()))
        }
    };
    // Every value with its layout (the input's is the client's slot map).
    let mut vals: Vec<(lower::V, Vec<i32>)> = Vec::with_capacity(stages.len() + 1);
    vals.push((x, client_map.clone()));
    vals.push((v0, layout0));
    for (i, st) in stages.iter().enumerate().skip(1) {
        b.layer = i as u32;
        let next = match st {
            LStage::Linear { map, src, .. } => {
                let (v, layout) = &vals[*src];
                let plan = lower::plan_dense(map, layout)?;
                lower::dense_layer(&mut b, *v, map, layout, &plan)
            }
            LStage::Square { src, .. } => {
                let (v, layout) = vals[*src].clone();
                if v.level < 1 {
                    return Err(CompileError::Internal("out of levels".into()));
                }
                (b.square_rescale(v), layout)
            }
            LStage::Poly { cheb, exact_zero, src, .. } => {
                let (v, mut layout) = vals[*src].clone();
                if v.level < approx::depth_rec(cheb) {
                    return Err(CompileError::Internal("out of levels".into()));
                }
                let y = lower::poly(&mut b, v, cheb);
                if !exact_zero {
                    for e in layout.iter_mut() {
                        if *e == lower::ZERO {
                            *e = lower::GARBAGE;
                        }
                    }
                }
                (y, layout)
            }
            LStage::Add { name, a, b: bb, sub, n, .. } => {
                let (va, la) = vals[*a].clone();
                let (vb, lb) = vals[*bb].clone();
                residual::add(&mut b, (va, &la), (vb, &lb), *n, *sub)
                    .map_err(|e| CompileError::Layout(format!("residual connection '{name}': {e}")))?
            }
        };
        vals.push(next);
    }
    let (out, out_layout) = vals.pop().expect("at least one stage");
    Ok(Built { b, client_map, out, out_layout, input_level: top, input_scale: scale, layout_desc: desc })
}

fn est_node_ms(op: &Op, level: u32, log_n: u32, dnum: usize, k: usize, l_total: usize) -> f64 {
    let n = (1u64 << log_n) as f64;
    let ntt = n * log_n as f64 * 2.0e-7; // ms per limb NTT (rough, one core)
    let limbs = level as f64 + 1.0;
    let alpha = (l_total as f64 / dnum as f64).ceil();
    let digits = (limbs / alpha).ceil();
    let ks = ntt * (limbs + digits * (limbs + k as f64) + 2.0 * k as f64 + 2.0 * limbs)
        + n * 1e-6 * digits * (limbs + k as f64) * 2.0;
    match op {
        Op::Rotate { .. } => ks,
        Op::MulRelin { .. } | Op::Square { .. } => ks + n * 4e-6 * limbs,
        Op::Rescale { .. } => 2.0 * ntt * (limbs + 1.0),
        Op::MulPlain { .. } | Op::MulConst { .. } => n * 2e-6 * limbs,
        Op::Input { .. } | Op::DropLevel { .. } => 0.0,
        _ => n * 1e-6 * limbs,
    }
}

/// Compiles ONNX bytes. `progress` receives a short message per phase.
pub fn compile(
    onnx_bytes: &[u8],
    onnx_path: Option<&Path>,
    data: &Data,
    opts: &Options,
    progress: &dyn Fn(&str),
) -> Result<Compiled, CompileError> {
    let t0 = Instant::now();
    progress("parsing ONNX");
    let m = onnx::parse_model(onnx_bytes)?;
    let imp = import::import(&m, opts.maxpool)?;
    let numel: usize = imp.input_shape.iter().product();
    let calib = data.calibration;
    if calib.rows() == 0 || calib.data.len() != calib.rows() * numel {
        return Err(CompileError::Data(format!(
            "calibration data has shape {:?}; the model's input '{}' needs rows of {:?} ({numel} values)",
            calib.shape, imp.input_name, imp.input_shape
        )));
    }
    if let Some(e) = data.eval {
        if e.rows() == 0 || e.data.len() != e.rows() * numel {
            return Err(CompileError::Data(format!(
                "evaluation data has shape {:?}; rows of {numel} values needed",
                e.shape
            )));
        }
    }
    if let (Some(l), Some(e)) = (data.labels, data.eval.or(Some(calib))) {
        if l.data.len() != e.rows() {
            return Err(CompileError::Data(format!("{} labels for {} samples", l.data.len(), e.rows())));
        }
    }
    // Ranges seen at every activation's input.
    progress("calibrating activation ranges");
    let n_acts = imp.stages.iter().filter(|s| matches!(s, import::Stage::Act { .. })).count();
    let mut ranges: Vec<(f64, f64, Vec<f64>)> = vec![(f64::INFINITY, f64::NEG_INFINITY, vec![]); n_acts];
    let cal_rows = calib.rows().min(2000);
    let mut ref_cal: Vec<Vec<f64>> = Vec::with_capacity(cal_rows);
    for r in 0..cal_rows {
        let v = imp.run_with(calib.row(r), &mut |a, f, v| {
            let rg = &mut ranges[a];
            for &t in v {
                rg.0 = rg.0.min(t);
                rg.1 = rg.1.max(t);
            }
            if rg.2.len() < 20000 {
                rg.2.extend_from_slice(v);
            }
            v.iter().map(|&t| f.eval(t)).collect()
        });
        ref_cal.push(v);
    }
    // Degree: given, or the smallest meeting the target agreement on calibration data.
    progress("fitting activation polynomials");
    let needs_fit = imp.stages.iter().any(|s| matches!(s, import::Stage::Act { f, .. } if *f != ActFn::Square));
    let mut notes = imp.notes.clone();
    let degrees: Vec<usize> = match (opts.degree, needs_fit) {
        (_, false) => vec![2],
        (Some(d), true) => vec![d.max(1)],
        (None, true) => [2usize, 3, 7, 15, 31].into_iter().filter(|&d| d <= opts.max_degree.max(2)).collect(),
    };
    let mut chosen = None;
    for &d in &degrees {
        let (st, fits) = approximate(&imp, &ranges, d, opts.margin);
        // A sample counts only if the top-1 class agrees with a margin: the reference's
        // gap between its two best outputs exceeds twice this sample's largest output error.
        let agree = (0..cal_rows)
            .filter(|&r| {
                let y = forward(&st, calib.row(r));
                let want = &ref_cal[r];
                if top1(&imp.postprocess, &y) != top1(&imp.postprocess, want) {
                    return false;
                }
                let err = y.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                let mut sorted = want.clone();
                sorted.sort_by(|a, b| b.total_cmp(a));
                sorted.len() < 2 || sorted[0] - sorted[1] > 2.0 * err
            })
            .count() as f64
            / cal_rows as f64;
        let ok = agree >= opts.target_agreement;
        chosen = Some((d, st, fits, agree));
        if ok || opts.degree.is_some() {
            break;
        }
    }
    let (degree, stages, fits, cal_agree) = chosen.expect("at least one degree tried");
    if needs_fit {
        if cal_agree < opts.target_agreement && opts.degree.is_none() {
            notes.push(format!(
                "no degree up to {} reaches {:.2}% agreement on calibration data (best tried: {:.2}% at degree {degree})",
                opts.max_degree,
                100.0 * opts.target_agreement,
                100.0 * cal_agree
            ));
        }
        notes.push(format!(
            "activation degree {degree}: {:.2}% top-1 agreement with margin on calibration data",
            100.0 * cal_agree
        ));
    }
    // Residual additions make the depth depend on the packing: each ring's program is
    // built on a chain long enough for the worst case and its depth measured.
    let depth_ub = depth_bound(&stages);
    let mut depth = depth_ub;
    let max_out = (0..cal_rows)
        .map(|r| forward(&stages, calib.row(r)).iter().fold(0.0f64, |a, v| a.max(v.abs())))
        .fold(1.0f64, f64::max);
    let headroom = (max_out.log2().ceil().max(0.0) as u32 + 4).max(6);

    // Layout feasibility and rotation count on the smallest ring that holds it.
    progress("packing and choosing parameters");
    let mut last_err = None;
    let mut choice = None;
    let mut noise_note = String::new();
    let mut noise_at: Option<(u32, noise::NoiseEstimate)> = None;
    let noise_rows: Vec<usize> = (0..cal_rows).step_by((cal_rows / NOISE_SAMPLES).max(1)).collect();
    for log_n in opts.min_log_n.max(12)..=16 {
        let slots = 1usize << (log_n - 1);
        // Every prime and the scale near 2^S_REF: the program for the noise analysis.
        // The primes differ (by 2^-16 relative) as real ones do, so that scales that
        // will differ under real primes differ here too and get the same alignment.
        let dummy_q: Vec<u64> =
            (0..=depth_ub as u64).map(|i| (1u64 << noise::S_REF) + ((2 * i + 1) << (noise::S_REF - 16)) + 1).collect();
        match build(&stages, &dummy_q, slots, 2f64.powi(noise::S_REF as i32)) {
            Ok(bt) => {
                depth = depth_ub - bt.b.nodes.iter().map(|n| n.level).min().unwrap_or(depth_ub);
                let steps = lower::rotation_steps(&bt.b.nodes);
                let relin = bt.b.nodes.iter().any(|n| matches!(n.op, Op::Square { .. } | Op::MulRelin { .. }));
                let inputs: Vec<Vec<f64>> = noise_rows
                    .iter()
                    .map(|&r| {
                        let x = calib.row(r);
                        bt.client_map.iter().map(|&i| if i >= 0 { x[i as usize] } else { 0.0 }).collect()
                    })
                    .collect();
                let n_out = bt.out_layout.iter().filter(|&&e| e >= 0).map(|&e| e as usize + 1).max().unwrap_or(0);
                let out_slots: Vec<usize> =
                    (0..n_out).filter_map(|o| bt.out_layout.iter().position(|&e| e == o as i32)).collect();
                // Simulated once, on the smallest ring the layout fits; larger rings scale it.
                let est = match &noise_at {
                    Some((k, e)) => noise::NoiseEstimate::for_larger_ring(e, log_n - k),
                    None => {
                        let e = noise::analyse(
                            &bt.b.nodes,
                            &bt.b.plains,
                            bt.out.id as usize,
                            &inputs,
                            &out_slots,
                            slots,
                            log_n,
                            NOISE_SAFETY,
                        );
                        noise_at = Some((log_n, e.clone()));
                        e
                    }
                };
                let req = params::ParamRequest {
                    depth,
                    scale_bits: opts.scale_bits,
                    min_scale_bits: MIN_SCALE_BITS,
                    noise: Some(est.clone()),
                    noise_quantile: NOISE_QUANTILE,
                    headroom_bits: headroom,
                    min_slots: slots,
                    galois_keys: steps.len(),
                    relin,
                    min_log_n: log_n,
                    key_budget_bytes: opts.key_budget_bytes,
                };
                match params::choose(&req) {
                    Ok(c) if c.params.log_n() == log_n => {
                        let s = c.scale_bits;
                        let min_bits = c.needed_scale_bits;
                        noise_note = format!(
                            "scale 2^{s}: CKKS noise (encryption, rescale, key switch) simulated on {} calibration samples needs at least 2^{min_bits} for {:.0}% of them to keep their top-1 class under {NOISE_SAFETY}x the modelled noise; predicted max output error from noise at 2^{s}: {:.2e}",
                            inputs.len(),
                            100.0 * NOISE_QUANTILE,
                            est.max_err_at(s, c.ks_factor)
                        );
                        if s < min_bits {
                            noise_note += &format!(
                                " — below the 2^{min_bits} the noise analysis asks for: expect errors under encryption"
                            );
                        }
                        choice = Some(c);
                        break;
                    }
                    Ok(_) => continue,
                    Err(e) => last_err = Some(e),
                }
            }
            Err(e) => last_err = Some(e),
        }
    }
    let choice = match choice {
        Some(c) => c,
        None => return Err(last_err.unwrap_or_else(|| CompileError::Params("no parameters found".into()))),
    };
    notes.push(noise_note);
    let params = choice.params.clone();
    let slots = params.slots();
    progress("lowering to CKKS operations");
    let bt = build(&stages, params.q(), slots, params.default_scale())?;
    let steps = lower::rotation_steps(&bt.b.nodes);
    let relin = bt.b.nodes.iter().any(|n| matches!(n.op, Op::Square { .. } | Op::MulRelin { .. }));
    let n_out = forward(&stages, calib.row(0)).len();
    let mut out_slots = Vec::with_capacity(n_out);
    for o in 0..n_out {
        let s = bt
            .out_layout
            .iter()
            .position(|&e| e == o as i32)
            .ok_or_else(|| CompileError::Internal(format!("output {o} has no slot")))?;
        out_slots.push((0u32, s as u32));
    }
    let out_node = &bt.b.nodes[bt.out.id as usize];
    let client = ClientSpec {
        version: model::CLIENT_SPEC_VERSION,
        model: opts.name.clone(),
        params: params.spec().clone(),
        input: InputSpec {
            name: imp.input_name.clone(),
            shape: imp.input_shape.clone(),
            level: bt.input_level,
            scale: bt.input_scale,
            slot_map: vec![bt.client_map.clone()],
            layout: bt.layout_desc.clone(),
        },
        rotation_steps: steps.clone(),
        galois_elements: steps.iter().map(|&s| params.galois_element(s)).collect(),
        relinearization: relin,
        output: OutputSpec {
            name: imp.he_output.clone(),
            shape: vec![n_out],
            ciphertexts: 1,
            slots: out_slots,
            multiplier: 1.0,
            level: out_node.level,
            scale: out_node.scale,
            final_name: imp.final_output.clone(),
        },
        postprocess: imp.postprocess.clone(),
    };
    let mut hem = HeModel {
        name: opts.name.clone(),
        client,
        layers: stages.iter().map(|s| s.info()).collect(),
        nodes: bt.b.nodes,
        plaintexts: bt.b.plains,
        outputs: vec![bt.out.id],
        report: None,
    };
    hem.validate().map_err(|e| CompileError::Internal(e.to_string()))?;

    // The program must compute exactly the approximated network.
    progress("checking the program against the f64 network");
    for r in (0..cal_rows).step_by((cal_rows / 8).max(1)) {
        let x = calib.row(r);
        let sim = simulate_one(&hem, x)?;
        let want = forward(&stages, x);
        for (a, b) in sim.iter().zip(&want) {
            if (a - b).abs() > 1e-6 * (1.0 + b.abs()) {
                return Err(CompileError::Internal(format!("packed program differs from the network: {a} vs {b}")));
            }
        }
    }

    // Accuracy against the original model.
    progress("measuring accuracy");
    let eval = data.eval.unwrap_or(calib);
    let sims: Vec<Vec<f64>> = (0..eval.rows()).map(|r| simulate_one(&hem, eval.row(r))).collect::<Result<_, _>>()?;
    let mut reference_name = "heinfer f64 interpreter of the original graph".to_string();
    let mut ref_final: Option<Vec<Vec<f64>>> = None;
    let mut ref_he: Option<Vec<Vec<f64>>> = None;
    if opts.use_onnxruntime {
        if let Some(path) = onnx_path {
            match ort::run(opts.python.as_deref(), path, eval, &imp.input_shape, &imp.final_output, &imp.he_output) {
                Ok(r) => {
                    reference_name = r.version;
                    ref_final = Some(r.final_out);
                    ref_he = r.he_out;
                }
                Err(e) => notes.push(format!("onnxruntime reference unavailable ({e}); using the f64 interpreter")),
            }
        }
    }
    let sim_final: Vec<Vec<f64>> = sims.iter().map(|v| model::apply_postprocess(&imp.postprocess, v)).collect();
    let (ref_cmp, sim_cmp): (Vec<Vec<f64>>, &Vec<Vec<f64>>) = match (&ref_he, &ref_final) {
        (Some(h), _) => (h.clone(), &sims),
        (None, Some(f)) => (f.clone(), &sim_final),
        (None, None) => ((0..eval.rows()).map(|r| imp.reference(eval.row(r))).collect(), &sims),
    };
    let ref_top: Vec<usize> = match &ref_final {
        Some(f) if imp.postprocess.last() == Some(&PostOp::ArgMax) => f.iter().map(|v| v[0] as usize).collect(),
        Some(f) => f.iter().map(|v| model::argmax(v)).collect(),
        None => (0..eval.rows()).map(|r| top1(&imp.postprocess, &imp.reference(eval.row(r)))).collect(),
    };
    let sim_top: Vec<usize> = sims.iter().map(|v| top1(&imp.postprocess, v)).collect();
    let mut max_err = 0.0f64;
    let mut sum_err = 0.0;
    let mut cnt = 0usize;
    for (a, b) in sim_cmp.iter().zip(&ref_cmp) {
        if a.len() != b.len() {
            return Err(CompileError::Internal(format!(
                "reference output has {} values, the model {}",
                b.len(),
                a.len()
            )));
        }
        for (x, y) in a.iter().zip(b) {
            max_err = max_err.max((x - y).abs());
            sum_err += (x - y).abs();
            cnt += 1;
        }
    }
    let agree = sim_top.iter().zip(&ref_top).filter(|(a, b)| a == b).count() as f64 / eval.rows() as f64;
    let (ref_acc, sim_acc) = match data.labels {
        Some(l) => {
            let lab: Vec<usize> = l.data.iter().map(|&v| v as usize).collect();
            let ra = ref_top.iter().zip(&lab).filter(|(a, b)| a == b).count() as f64 / lab.len() as f64;
            let sa = sim_top.iter().zip(&lab).filter(|(a, b)| a == b).count() as f64 / lab.len() as f64;
            (Some(ra), Some(sa))
        }
        None => (None, None),
    };
    let accuracy = Accuracy {
        reference: reference_name,
        samples: eval.rows(),
        top1_agreement: agree,
        max_abs_error: max_err,
        mean_abs_error: sum_err / cnt.max(1) as f64,
        reference_accuracy: ref_acc,
        simulated_accuracy: sim_acc,
    };

    // Report.
    let mut plots = vec![];
    let mut acts = vec![];
    for (i, (fit, f, name, _)) in fits.iter().enumerate() {
        let seen = ranges.iter().filter(|_| true).nth(act_index(&imp, name)).cloned().unwrap_or((0.0, 0.0, vec![]));
        let file = format!("activation_{i}_{}.svg", sanitize(name));
        plots
            .push((file.clone(), svg::plot(&format!("{} ({}) ~ degree {}", name, f.name(), degree), fit, *f, &seen.2)));
        acts.push(ActivationReport {
            layer: name.clone(),
            function: f.name(),
            degree,
            lo: fit.center - fit.radius,
            hi: fit.center + fit.radius,
            seen_lo: seen.0,
            seen_hi: seen.1,
            coefficients: fit.coef_in_x(),
            max_abs_error: fit.max_abs_error,
            plot: Some(file),
        });
    }
    let report = make_report(
        &hem,
        &params,
        choice.key_bytes_each,
        depth,
        acts,
        Some(accuracy),
        notes,
        t0.elapsed().as_secs_f64(),
    );
    hem.report = Some(report);
    Ok(Compiled { model: hem, plots })
}

fn act_index(imp: &import::Imported, name: &str) -> usize {
    imp.stages
        .iter()
        .filter(|s| matches!(s, import::Stage::Act { .. }))
        .position(|s| matches!(s, import::Stage::Act { name: n, .. } if n == name))
        .unwrap_or(0)
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// Client packing + plaintext simulation + unpacking for one sample.
pub fn simulate_one(m: &HeModel, x: &[f64]) -> Result<Vec<f64>, CompileError> {
    let cts = m.client.pack_input(x).map_err(|e| CompileError::Shape(e.to_string()))?;
    let out = model::simulate(m, &cts).map_err(|e| CompileError::Internal(e.to_string()))?;
    m.client.unpack_output(&out).map_err(|e| CompileError::Internal(e.to_string()))
}

#[allow(clippy::too_many_arguments)]
fn make_report(
    m: &HeModel,
    params: &ckks::Parameters,
    key_each: usize,
    depth: u32,
    activations: Vec<ActivationReport>,
    accuracy: Option<Accuracy>,
    notes: Vec<String>,
    secs: f64,
) -> Report {
    let spec = params.spec();
    let l_total = spec.q.len();
    let mut layers: Vec<LayerReport> = m
        .layers
        .iter()
        .map(|l| LayerReport { name: l.name.clone(), kind: l.kind.clone(), ..Default::default() })
        .collect();
    let mut prev_level = m.client.input.level;
    for n in &m.nodes {
        let lr = &mut layers[n.layer as usize];
        let ms = est_node_ms(&n.op, n.level, spec.log_n, spec.dnum, spec.p.len(), l_total);
        lr.est_ms += ms;
        match n.op {
            Op::Rotate { step, .. } => {
                lr.rotations += 1;
                if !lr.rotation_steps.contains(&step) {
                    lr.rotation_steps.push(step);
                }
            }
            Op::MulPlain { .. } => lr.mul_plain += 1,
            Op::MulRelin { .. } | Op::Square { .. } => lr.ct_mults += 1,
            Op::Rescale { .. } => lr.rescales += 1,
            Op::Input { .. } => {}
            _ => lr.other_ops += 1,
        }
        lr.level_out = n.level;
    }
    for lr in layers.iter_mut() {
        lr.depth = prev_level.saturating_sub(lr.level_out);
        prev_level = lr.level_out;
    }
    let steps = m.client.rotation_steps.clone();
    let keys = steps.len() + usize::from(m.client.relinearization);
    let est: f64 = layers.iter().map(|l| l.est_ms).sum();
    Report {
        model: m.name.clone(),
        log_n: spec.log_n,
        slots: params.slots(),
        q_bits: spec.q.iter().map(|&q| (q as f64).log2()).collect(),
        p_bits: spec.p.iter().map(|&q| (q as f64).log2()).collect(),
        dnum: spec.dnum,
        log_qp: params.log_qp(),
        security_bound: ckks::max_log_qp(spec.log_n).unwrap_or(0),
        log_scale: spec.log_scale,
        depth,
        total_rotations: layers.iter().map(|l| l.rotations).sum(),
        layers,
        galois_keys: steps.len(),
        rotation_steps: steps,
        relinearization: m.client.relinearization,
        evaluation_key_bytes: keys * key_each,
        input_ciphertexts: m.client.input.slot_map.len(),
        query_bytes: m.client.input.slot_map.len() * params.ciphertext_bytes(params.max_level(), true),
        response_bytes: m.outputs.len() * params.ciphertext_bytes(m.client.output.level as usize, false),
        plaintext_memory_bytes: m.plaintexts.iter().map(|p| params.n() * (p.level as usize + 1) * 8).sum(),
        est_latency_ms: est,
        activations,
        accuracy,
        notes,
        compile_seconds: secs,
    }
}

/// Writes `<repo>/<name>/config.pbtxt`, `<repo>/<name>/1/model.hem`, the report (text and
/// JSON) and the activation plots. Returns the model directory.
pub fn write_repository(repo: &Path, c: &Compiled) -> Result<PathBuf, CompileError> {
    let dir = repo.join(&c.model.name);
    let io = |e: std::io::Error| CompileError::Io(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir.join("1")).map_err(io)?;
    std::fs::write(dir.join("config.pbtxt"), triton::config_pbtxt(&c.model)).map_err(io)?;
    c.model.write_file(dir.join("1").join("model.hem")).map_err(|e| CompileError::Io(e.to_string()))?;
    if let Some(r) = &c.model.report {
        std::fs::write(dir.join("report.txt"), r.to_text()).map_err(io)?;
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(r).unwrap()).map_err(io)?;
    }
    for (f, svg) in &c.plots {
        std::fs::write(dir.join(f), svg).map_err(io)?;
    }
    Ok(dir)
}
