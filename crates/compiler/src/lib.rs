//! # compiler — ONNX in, encrypted-inference model out
//!
//! [`compile`] runs a pipeline of stages, one module each, every one a function from
//! the previous stage's output to its own:
//!
//! 1. **import** — the ONNX protobuf (`onnx`) is rewritten by graph passes (`passes`:
//!    GELU subgraphs fused) and translated op by op through a registry of handlers, one
//!    file per op family (`import::ops`): linear ops fused into affine maps, batch norm
//!    folded, trailing softmax/argmax moved to the client;
//! 2. **calibrate** — the f64 network on calibration data: activation ranges and
//!    reference outputs;
//! 3. **approximate** — activations become Chebyshev fits (`approx`) at the smallest
//!    degree that keeps top-1 decisions; normalisations folded into linear maps;
//! 4. **layout** — the network packed into one ciphertext with few, shared,
//!    power-of-two rotations and lowered to CKKS operations (`lower`, `residual`);
//! 5. **parameters** — the smallest secure ring and prime chain (`params`) under the
//!    noise the program is predicted to accumulate (`noise`);
//! 6. **verify** — the program simulated against the network, then its accuracy against
//!    the original model (onnxruntime when Python has it, `ort`);
//! 7. **report** — cost, sizes, fits and accuracy.
//!
//! [`write_repository`] writes the Triton model directory.

#![forbid(unsafe_code)]

mod activation;
mod affine;
mod answer;
mod approx;
mod approximate;
mod calibrate;
mod cheb;
mod circuit_privacy;
mod client_aided;
mod composite;
mod hybrid;
mod import;
mod layout;
mod lower;
mod lwe_linear;
mod multi;
mod network;
mod noise;
pub mod npy;
mod onnx;
mod ort;
mod output_dp;
mod parameters;
mod params;
mod passes;
mod quantize;
mod report;
mod residual;
pub mod scheme;
mod split;
mod svg;
mod throughput;
mod triton;
mod verify;

use std::path::{Path, PathBuf};
use std::time::Instant;

use model::HeModel;

pub use activation::ActFn;
pub use answer::AnswerRequest;
pub use client_aided::{compile_client_aided, summary as client_aided_summary};
pub use import::MaxPoolPolicy;
pub use npy::Array;
pub use output_dp::OutputDpRequest;
pub use parameters::RotationPolicy;
pub use quantize::{BgvCosts, CompiledBgv};
pub use scheme::{compile_with_scheme, write_repository_any, Choice, CompiledAny, CompiledLinear, SchemeRequest};
pub use throughput::LayoutRequest;
pub use verify::simulate_one;

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
    /// No parameter set's evaluation keys fit `--key-budget-mb` (the rest of the choice held).
    #[error("parameters: {0}")]
    KeyBudget(String),
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
    /// Rotation keys only for powers of this radix (2, 4 or 8; `compile --galois-radix`):
    /// fewer keys to upload for more rotations per sum. None: 2, or under a key budget the
    /// smallest of 2, 4, 8 whose upload fits it.
    pub galois_radix: Option<u32>,
    /// The first layer's replica sum with one Galois key at the top level, where keys cost
    /// the most (`compile --one-top-key`): rr − 1 rotations there instead of log2(rr) keys.
    /// Under a key budget without `--galois-radix`, tried after radix 8.
    pub one_top_key: bool,
    /// Keys for lower levels made with special primes and digits of their own where that
    /// saves bytes (`params::with_key_bases`; `compile --no-key-bases` turns it off).
    pub key_bases: bool,
    /// Python with onnxruntime for the reference; None: $HEINFER_PYTHON, then python3.
    pub python: Option<PathBuf>,
    pub use_onnxruntime: bool,
    /// Differentially private outputs: clamp the outputs and have the server add noise.
    pub output_dp: Option<OutputDpRequest>,
    /// Zero every slot of the answer outside the output layout (one more level); on
    /// whenever `output_dp` is.
    pub mask_unused_slots: bool,
    /// Circuit privacy at statistical distance 2^-λ (`model::circuit`): the server masks
    /// the unused slots and floods each answer's noise; None: off.
    pub circuit_privacy: Option<u32>,
    /// With circuit privacy: flood with exactly 2^B per coefficient instead of the
    /// smallest flood λ needs (refused if smaller). The flood's size is in the client spec
    /// and the compiler sizes it per model, so models meant to be indistinguishable from
    /// one another must be compiled with one fixed flood.
    pub circuit_privacy_flood_bits: Option<u32>,
    /// Input features sent in clear (`--public-features`: index ranges of the flattened
    /// input, e.g. `0-9,15`); their share of the first layer is computed by the server.
    pub public_features: Option<String>,
    /// Layouts to emit (`--layout`): auto = every one that fits.
    pub layout: LayoutRequest,
    /// Samples layout T's parameters are chosen for (its N holds at least this many).
    pub throughput_batch: usize,
    /// Split inference (`--split-at`): the node or tensor where the graph is cut; the
    /// prefix runs in clear on the client, the suffix is what gets compiled (`split`).
    pub split_at: Option<String>,
    /// Where linear layers rotate their products (`--rotations`): before the rescale
    /// (least noise), after it (smaller keys, faster), or auto (the smaller upload).
    pub rotations: RotationPolicy,
    /// The input arrives as a compact query (`--query compact`): one word per input value
    /// instead of a ciphertext, packed by the server with keys the bundle adds.
    pub compact_query: bool,
    /// With a compact query: whether the first layer runs before the packing, on the
    /// query's coefficients (`--first-layer`).
    pub first_layer: FirstLayer,
    /// Where the server cuts each answer (`--answer`, `answer`).
    pub answer: AnswerRequest,
}

/// Where a compact query's first linear layer runs (`--first-layer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstLayer {
    /// Before the packing where that takes fewer key switches (`layout::packs_first_cheaper`).
    Auto,
    /// After it, on the packed input in slots (rotations; the inputs are the tree's leaves).
    Slots,
    /// Before it, on the ring query's coefficients (no key; the outputs are the leaves).
    Coefficients,
}

impl std::str::FromStr for FirstLayer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "slots" => Ok(Self::Slots),
            "coefficients" => Ok(Self::Coefficients),
            _ => Err(format!("unknown first-layer form {s:?}: auto, slots or coefficients")),
        }
    }
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
            galois_radix: None,
            one_top_key: false,
            key_bases: true,
            python: None,
            use_onnxruntime: true,
            output_dp: None,
            mask_unused_slots: false,
            circuit_privacy: None,
            circuit_privacy_flood_bits: None,
            public_features: None,
            layout: LayoutRequest::Auto,
            throughput_batch: 4096,
            split_at: None,
            rotations: RotationPolicy::Auto,
            compact_query: false,
            first_layer: FirstLayer::Auto,
            answer: AnswerRequest::Auto,
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

/// Compiles ONNX bytes. `progress` receives a short message per stage.
pub fn compile(
    onnx_bytes: &[u8],
    onnx_path: Option<&Path>,
    data: &Data,
    opts: &Options,
    progress: &dyn Fn(&str),
) -> Result<Compiled, CompileError> {
    if let Some(r) = opts.galois_radix.filter(|r| !matches!(r, 2 | 4 | 8)) {
        return Err(CompileError::Params(format!(
            "--galois-radix {r}: give 2 (a key per power of two), 4 or 8 (fewer keys, more rotations)"
        )));
    }
    if let Some(at) = &opts.split_at {
        return split::compile_split(onnx_bytes, data, opts, at, progress);
    }
    let t0 = Instant::now();
    progress("parsing ONNX");
    let mut m = onnx::parse_model(onnx_bytes)?;
    passes::run(&mut m.graph);
    let mut imp = import::import(&m, opts.maxpool)?;
    calibrate::check_data(&imp, data)?;
    let dp_clamp =
        opts.output_dp.as_ref().map(|r| output_dp::insert_clamp(&mut imp, data.calibration, r)).transpose()?;
    progress("calibrating activation ranges");
    let cal = calibrate::calibrate(&imp, data.calibration);
    progress("fitting activation polynomials");
    let ap = approximate::approximate(&imp, &cal, opts);
    let n_out = network::forward(&ap.network, cal.data.row(0)).len();
    let dp_for = |ap: &approximate::Approximated| match (&opts.output_dp, dp_clamp) {
        (Some(req), Some(clamp)) => output_dp::configure(ap, req, clamp, n_out).map(Some),
        _ => Ok(None),
    };
    progress("packing and choosing parameters");
    // The noise the server adds must fit in the output level's modulus too.
    // Output DP needs the answer to hold the outputs only: the unused slots are masked.
    let mask_output = opts.mask_unused_slots || opts.output_dp.is_some() || opts.circuit_privacy.is_some();
    // Parameters are chosen for the whole network: its outputs (headroom) and its noise on
    // real samples are what a split program (public features) computes with the public
    // share added (the split program alone would be simulated without it). Its depth is the
    // same and its first layer needs fewer slots and rotations, so what fits the whole fits
    // the split.
    //
    // The radix asked for; under a key budget without one, the first of radix 2, 4, 8 and
    // 8 with one key at the top level whose upload fits (fewer keys for more rotations,
    // only when the budget asks). If none fits at the automatic activation degree, lower
    // degrees (one level fewer per activation each) are tried, largest first.
    let key_options: Vec<(u32, bool)> = match (opts.galois_radix, opts.key_budget_bytes) {
        (Some(r), _) => vec![(r, opts.one_top_key)],
        (None, Some(_)) if opts.one_top_key => vec![(2, true), (4, true), (8, true)],
        (None, Some(_)) => vec![(2, false), (4, false), (8, false), (8, true)],
        (None, None) => vec![(2, opts.one_top_key)],
    };
    let try_keys = |ap: &approximate::Approximated| {
        let dp = dp_for(ap)?;
        let reach = dp.as_ref().map_or(0.0, output_dp::reach);
        let floored = scale_floor(&ap.network, opts);
        let opts_p = floored.as_ref().unwrap_or(opts);
        let mut tried = Err(CompileError::Internal("no radix tried".into()));
        for &(r, one) in &key_options {
            let o = Options { galois_radix: Some(r), one_top_key: one, ..opts_p.clone() };
            tried = circuit_privacy::choose_parameters(&o, |o| {
                parameters::choose(&ap.network, &cal, o, reach, mask_output)
            })
            .map(|c| (c, r, one, dp.clone()));
            if tried.is_ok() {
                break;
            }
        }
        tried
    };
    let auto_degree = ap.degree;
    let mut tried = try_keys(&ap);
    let mut ap = ap;
    let mut degree_note = None;
    if let (None, Some(_), Err(CompileError::KeyBudget(_))) = (opts.degree, opts.key_budget_bytes, &tried) {
        // No key layout fits at the automatic degree: shallower networks, one activation a
        // level lower at a time (the most accurate of each depth first), taking the first
        // whose fitting layout is estimated at most 15 % slower than the model without a
        // budget; if none is, the first that fits (the most accurate).
        let floored = scale_floor(&ap.network, opts);
        let unconstrained = Options {
            key_budget_bytes: None,
            galois_radix: Some(2),
            one_top_key: false,
            ..floored.as_ref().unwrap_or(opts).clone()
        };
        let reach = dp_for(&ap).ok().flatten().as_ref().map_or(0.0, output_dp::reach);
        let yardstick = circuit_privacy::choose_parameters(&unconstrained, |o| {
            parameters::choose(&ap.network, &cal, o, reach, mask_output)
        })
        .map(|c| c.est_ms)
        .ok();
        let within = |ms: f64| yardstick.is_none_or(|y| ms <= 1.15 * y);
        let mut fits = vec![];
        let mut tried_any = false;
        for lower in approximate::lowered(&imp, &cal, opts, &ap) {
            tried_any = true;
            progress(&format!("trying activation degrees {} for --key-budget-mb", degrees_of(&lower)));
            if let Ok(t) = try_keys(&lower) {
                let fast = within(t.0.est_ms);
                fits.push((lower, t));
                if fast {
                    break;
                }
            }
        }
        let pick = fits.iter().position(|(_, t)| within(t.0.est_ms)).or((!fits.is_empty()).then_some(0));
        match pick {
            Some(i) => {
                let tried_degrees: Vec<String> = fits
                    .iter()
                    .map(|(a, t)| {
                        format!(
                            "degrees {}: {} and {:.2} MB",
                            degrees_of(a),
                            fmt_ms(t.0.est_ms),
                            t.0.upload_bytes as f64 / 1e6
                        )
                    })
                    .collect();
                let (lower, t) = fits.swap_remove(i);
                let below = (lower.agreement < opts.target_agreement).then(|| {
                    format!(
                        " Its agreement with margin on calibration data, {:.2}%, is below --target-agreement {:.2}%: \
                         the budget is met at an accuracy cost (a larger budget, or --degree, keeps the degree).",
                        100.0 * lower.agreement,
                        100.0 * opts.target_agreement
                    )
                });
                degree_note = Some(format!(
                    "activation degrees lowered from {auto_degree} to {} for --key-budget-mb: no key layout fits at \
                     {auto_degree}; the accuracy above is at these degrees; estimated latency {} against {} for the \
                     model without a budget at degree {auto_degree} (one activation a level lower at a time, the one \
                     that keeps the most agreement; with the first key layout that fits each, in the order radix 2, \
                     4, 8, 8 with one top key: {}; taken if within 15 %, else the first).{}",
                    degrees_of(&lower),
                    fmt_ms(t.0.est_ms),
                    yardstick.map_or("?".to_string(), fmt_ms),
                    tried_degrees.join("; "),
                    below.unwrap_or_default()
                ));
                ap = lower;
                tried = Ok(t);
            }
            None if tried_any => {
                if let Err(CompileError::KeyBudget(m)) = &tried {
                    tried = Err(CompileError::KeyBudget(format!(
                        "{m} (at degree {auto_degree}; lower activation degrees, down to 7, were tried too and none fits)"
                    )));
                }
            }
            None => {}
        }
    }
    let (chosen, radix, one_top_key, dp) = tried?;
    // Public features: the HE program is built on the network without their columns;
    // verification below checks it, public part added, against the whole network.
    let n_in: usize = imp.input_shape.iter().product();
    let public = opts.public_features.as_deref().map(|s| hybrid::parse(s, n_in, &imp.input_parts)).transpose()?;
    if opts.compact_query && public.is_some() {
        return Err(CompileError::Layout(
            "--query compact with --public-features: the public features' share is added to the first layer's \
             bias, which a compact input's first layer does not have yet; use one or the other"
                .into(),
        ));
    }
    let (he_net, split) = match &public {
        Some(p) => {
            let (net, split) = hybrid::split_first(&ap.network, p)?;
            (std::borrow::Cow::Owned(net), Some(split))
        }
        None => (std::borrow::Cow::Borrowed(&ap.network[..]), None),
    };
    let public_note = public.as_deref().map(|p| hybrid::note(p, n_in, &imp.input_parts));
    let with_radix = Options { galois_radix: Some(radix), one_top_key, ..opts.clone() };
    let opts = &with_radix;
    progress("lowering to CKKS operations");
    let params = &chosen.choice.params;
    let shape = layout::Shape::for_options(chosen.sum_at, opts, &he_net);
    let mut hem = layout::program(&imp, &he_net, params, n_out, &opts.name, mask_output, split, shape)?;
    if dp.is_some() {
        output_dp::check_unused_slots(&hem, data.calibration)?;
    }
    hem.client.output_dp = dp.clone();
    let cp_note = match opts.circuit_privacy {
        Some(lambda) => {
            let max_out = (0..cal.rows)
                .map(|r| network::forward(&ap.network, cal.data.row(r)).iter().fold(0.0f64, |a, v| a.max(v.abs())))
                .fold(0.0f64, f64::max);
            let (cp, note) = circuit_privacy::configure(
                lambda,
                opts.circuit_privacy_flood_bits,
                params,
                &hem,
                chosen.max_err,
                max_out,
            )?;
            hem.client.circuit_privacy = Some(cp);
            Some(note)
        }
        None => None,
    };
    let (answer, answer_note) = answer::configure(opts.answer, params, &hem, chosen.max_err)?;
    hem.client.answer = answer;
    progress("checking the program against the f64 network");
    verify::check_program(&hem, &ap.network, &cal)?;
    let headroom = verify::slot_headroom(&hem, &cal)?;
    let headroom_note = headroom.is_finite().then(|| {
        format!(
            "modulus headroom: every slot of every value (used or not) stays at least {headroom:.1} bits below its \
             level's modulus on the calibration samples simulated"
        )
    });
    progress("measuring accuracy");
    let (accuracy, ort_note) = verify::accuracy(&hem, &imp, data, onnx_path, opts)?;
    let (acts, plots) = report::activations(&imp, &cal.ranges, &ap);
    let dp_note = dp.as_ref().map(|d| output_dp::honest_cost_note(&ap, &cal, &imp, d));
    let mask_note = (mask_output && cp_note.is_none()).then(|| {
        "unused slots of the answer masked to zero (one 0/1 plaintext product and a rescale: one more level); \
         the answer's CKKS noise is not flooded (no circuit privacy for the noise)"
            .to_string()
    });
    let compact_note = hem.client.input.compact.as_ref().map(|c| {
        let level = hem.client.input.level as usize;
        let period = c.period as usize;
        let switches = |p: usize| p + (params.n() / p).trailing_zeros() as usize;
        if let Some(f) = &hem.first_layer {
            let p_in = layout::compact_period(f.n_in as usize);
            return format!(
                "compact ring query: {} words ({} B with the seed and header) instead of a {} B ciphertext; the \
                 server applies the first layer ({} -> {}) to the query's coefficients before packing (one product \
                 per output, no key) and packs its {} outputs: {} key switches, no rotation for the layer (packing \
                 the {} inputs instead: {} key switches plus the layer's rotations; `--first-layer slots`); the \
                 bundle adds {} packing keys made at the input level ({:.2} MB)",
                f.n_in,
                params.lwe_query_bytes(level, f.n_in as usize),
                params.ciphertext_bytes(level, true),
                f.n_in,
                f.n_out,
                period,
                switches(period) + 1,
                f.n_in,
                switches(p_in) + 1,
                c.galois_elements.len(),
                (c.galois_elements.len() * params.keyswitch_key_bytes_at(level)) as f64 / 1e6,
            );
        }
        format!(
            "compact query: {period} words ({} B with the seed and header) instead of a {} B ciphertext; the bundle \
             adds {} packing keys made at the input level ({:.2} MB), and the server unpacks each query with {} key \
             switches before the program; the input's scale is x{} (the packing's noise)",
            params.lwe_query_bytes(level, period),
            params.ciphertext_bytes(level, true),
            c.galois_elements.len(),
            (c.galois_elements.len() * params.keyswitch_key_bytes_at(level)) as f64 / 1e6,
            switches(period),
            layout::COMPACT_INPUT_BOOST
        )
    });
    let radix_note = (radix != 2 || one_top_key).then(|| {
        format!(
            "rotation keys for powers of {radix} only{} ({}): {} Galois keys; a step of another size runs as its \
             base-{radix} digits in rotations ({} rotations in all), fewer keys to upload for more rotations",
            if one_top_key {
                ", the first layer's replicas summed with one key at the top level (a key for their period, \
                 where the first layer replicates its input more than twice and rotates before the rescale; \
                 its own baby and giant steps, if it has them, are not counted)"
            } else {
                ""
            },
            if key_options.len() > 1 {
                "chosen for --key-budget-mb: the first of radix 2, 4, 8 (then 8 with one top key) whose upload fits"
            } else {
                "--galois-radix, --one-top-key"
            },
            hem.client.rotation_steps.len(),
            hem.nodes.iter().filter(|n| matches!(n.op, model::Op::Rotate { .. })).count()
        )
    });
    let notes = imp
        .notes
        .iter()
        .chain(&ap.notes)
        .chain(&degree_note)
        .chain([&chosen.note])
        .chain(&radix_note)
        .chain(&compact_note)
        .chain(&ort_note)
        .chain(&dp_note)
        .chain(&mask_note)
        .chain(&cp_note)
        .chain(&answer_note)
        .chain(&public_note)
        .chain(&headroom_note)
        .cloned()
        .collect();
    let secs = t0.elapsed().as_secs_f64();
    let r = report::make_report(
        &hem,
        params,
        chosen.choice.key_bytes_each,
        chosen.depth,
        acts,
        Some(accuracy),
        notes,
        secs,
    );
    hem.report = Some(r);
    throughput::attach(&mut hem, &ap.network, &cal, n_in, opts)?;
    multi::attach(&mut hem, &he_net, params, shape, chosen.choice.key_bytes_each, chosen.depth, &cal, opts)?;
    Ok(Compiled { model: hem, plots })
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

/// Writes the merged twin of a model with layout M, `<repo>/<name>_merged/`: the same
/// `model.hem` (a hard link where the file system allows) under a `config.pbtxt` with
/// Triton's batch dimension and dynamic batcher (`runtime::protocol::merged_config_pbtxt`).
pub fn write_merged_twin(repo: &Path, c: &Compiled) -> Result<PathBuf, CompileError> {
    let Some(blocks) = c.model.multi.as_ref().map(|m| m.batch as usize) else {
        return Err(CompileError::Io(format!(
            "--merged: model {} has no layout M (merged requests run in it); compile with --layout auto or M",
            c.model.name
        )));
    };
    let name = format!("{}{}", c.model.name, runtime::protocol::MERGED_SUFFIX);
    let dir = repo.join(&name);
    let io = |e: std::io::Error| CompileError::Io(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir.join("1")).map_err(io)?;
    let cfg = runtime::protocol::merged_config_pbtxt(&name, &c.model.client.to_json(), blocks);
    std::fs::write(dir.join("config.pbtxt"), cfg).map_err(io)?;
    let (from, to) = (repo.join(&c.model.name).join("1").join("model.hem"), dir.join("1").join("model.hem"));
    let _ = std::fs::remove_file(&to);
    if std::fs::hard_link(&from, &to).is_err() {
        std::fs::copy(&from, &to).map_err(io)?;
    }
    Ok(dir)
}

/// `opts` with `composite::MIN_SCALE_BITS` when `net` has a composite stage and no scale was given.
fn scale_floor(net: &[network::LStage], opts: &Options) -> Option<Options> {
    let has = net.iter().any(|s| matches!(s, network::LStage::Composite { .. }));
    (has && opts.scale_bits.is_none()).then(|| Options { scale_bits: Some(composite::MIN_SCALE_BITS), ..opts.clone() })
}

/// Each fitted activation's degree, for the report's notes.
fn degrees_of(ap: &approximate::Approximated) -> String {
    let d: Vec<String> = ap.fits.iter().map(|(fit, _, name, _)| format!("{name} {}", fit.cheb.len() - 1)).collect();
    d.join(", ")
}

/// A latency for the report's notes.
fn fmt_ms(ms: f64) -> String {
    format!("{ms:.0} ms")
}
