//! Layout T (throughput, CryptoNets) for networks of linear layers and squares: one
//! ciphertext per input feature, one sample per slot, weights as integer scalars
//! (`ckks::throughput`). This module decides whether the approximated network fits,
//! chooses the layout's own parameters for the batch (the smallest N whose slots hold
//! the batch and whose chain at the network's depth passes the 128-bit check), the
//! scales from the calibration samples' magnitudes, and what a request costs.
//!
//! The chain, top down: one prime per layer (linear: 20 bits, the rounding of its
//! integer weights; square: as large as the hidden scale Δ, dropped by the next linear
//! layer), then the 30-bit base q_0. The answer keeps q_0 and the last layer's prime:
//! it is at level 1 with scale Δ_out·q_1.

use model::{LayoutCost, ThroughputLayer, ThroughputProgram, ThroughputSpec, THROUGHPUT_VERSION};

use crate::calibrate::Calibration;
use crate::network::LStage;
use crate::CompileError;

const LINEAR_BITS: u32 = 20;
const BASE_BITS: u32 = 30;
/// Hidden scales tried, largest (most precise) first.
const DELTA_BITS: [u32; 4] = [28, 26, 24, 22];
/// Magnitudes seen on calibration samples are multiplied by this before the headroom
/// checks (unseen samples may exceed them).
const MARGIN: f64 = 4.0;

/// Layout T for one model: the program (server), the spec (client), its cost.
pub(crate) struct Built {
    pub program: ThroughputProgram,
    pub spec: ThroughputSpec,
    pub cost: LayoutCost,
    pub note: String,
}

/// Why a network has no layout T (the `auto` layout then skips it).
pub(crate) fn unfit(net: &[LStage]) -> Option<String> {
    let mut prev_square = true;
    for (i, s) in net.iter().enumerate() {
        match s {
            LStage::Linear { src, .. } if *src == i => prev_square = false,
            LStage::Square { src, .. } if *src == i && !prev_square => prev_square = true,
            LStage::Square { name, .. } => return Some(format!("{name}: a square must follow a linear layer")),
            other => {
                return Some(format!(
                    "{}: only linear layers and squares in a chain run in layout T (no polynomial \
                     activations or residual additions yet); compile with --layout L",
                    other.info().name
                ))
            }
        }
    }
    prev_square.then(|| "the network must end in a linear layer".to_string())
}

/// Largest |value| of each stage's output (and of the input, first) on the calibration
/// samples.
fn magnitudes(net: &[LStage], cal: &Calibration) -> Vec<f64> {
    let mut mags = vec![0.0f64; net.len() + 1];
    for r in 0..cal.rows {
        let mut vals: Vec<Vec<f64>> = vec![cal.data.row(r).to_vec()];
        for s in net {
            let v = s.apply(&vals);
            vals.push(v);
        }
        for (m, v) in mags.iter_mut().zip(&vals) {
            *m = v.iter().fold(*m, |a, x| a.max(x.abs()));
        }
    }
    mags
}

/// Layout T for `net`, for batches of up to `batch` samples, or why it does not fit.
pub(crate) fn build(net: &[LStage], cal: &Calibration, n_in: usize, batch: usize) -> Result<Built, CompileError> {
    if let Some(why) = unfit(net) {
        return Err(CompileError::Layout(format!("layout T: {why}")));
    }
    let mags = magnitudes(net, cal);
    let out_mag = mags.last().copied().unwrap_or(1.0).max(1e-3) * MARGIN;
    // The answer at scale Δ_out·q_1 over q_0·q_1, and every step before it, needs
    // Δ_out·|y| < q_0/2 (see the module note): Δ_out as large as that allows, ≤ 2^26.
    let out_bits = ((BASE_BITS - 1) as f64 - out_mag.log2()).floor().min(26.0);
    if out_bits < 12.0 {
        return Err(CompileError::Layout(format!(
            "layout T: outputs up to {out_mag:.3e} leave the answer under 12 bits of precision; scale the last layer down"
        )));
    }
    let delta_out = 2f64.powf(out_bits);
    let mut last_err = String::new();
    for &db in &DELTA_BITS {
        let delta = 2f64.powi(db as i32);
        // q bits bottom up: the base, then the layers' primes in reverse order.
        let mut top_down: Vec<u32> =
            net.iter().map(|s| if matches!(s, LStage::Square { .. }) { db } else { LINEAR_BITS }).collect();
        top_down.push(BASE_BITS);
        let q_bits: Vec<u32> = top_down.iter().rev().copied().collect();
        // Headroom: a square's output Δ²·m² stays below half the modulus at its level.
        let mut ok = true;
        let mut level_bits: f64 = q_bits.iter().map(|&b| b as f64).sum();
        for (i, s) in net.iter().enumerate() {
            let m = mags[i + 1] * MARGIN;
            if matches!(s, LStage::Square { .. }) && 2.0 * delta.log2() + m.max(1.0).log2() + 1.0 >= level_bits {
                ok = false;
                last_err = format!("{} overflows at Δ = 2^{db}", s.info().name);
            }
            if matches!(s, LStage::Linear { .. }) && delta.log2() + m.max(1.0).log2() + 1.0 >= level_bits {
                ok = false;
            }
            level_bits -= q_bits[q_bits.len() - 1 - i] as f64;
        }
        if !ok {
            continue;
        }
        let min_log_n = (batch.max(2) as f64).log2().ceil() as u32 + 1;
        for log_n in min_log_n.max(10)..=16 {
            let Ok(params) = ckks::Parameters::builder().log_n(log_n).q_bits(&q_bits).log_scale(db as f64).build()
            else {
                continue;
            };
            if params.q().iter().any(|&q| q >= 1 << 31) {
                continue;
            }
            return Ok(assemble(net, &params, n_in, delta, delta_out, db));
        }
        last_err = format!("no ring degree passes the 128-bit check for the chain {q_bits:?}");
    }
    Err(CompileError::Layout(format!("layout T: {last_err}")))
}

fn assemble(
    net: &[LStage],
    params: &ckks::Parameters,
    n_in: usize,
    delta: f64,
    delta_out: f64,
    delta_bits: u32,
) -> Built {
    let last = net.len() - 1;
    let mut layers = Vec::with_capacity(net.len());
    let mut width = n_in;
    let (mut macs, mut relins) = (0f64, 0usize);
    let mut level = params.max_level();
    let mut degree2 = false;
    for (i, s) in net.iter().enumerate() {
        match s {
            LStage::Linear { map, .. } => {
                let rows: Vec<Vec<(u32, f64)>> = map.rows.clone();
                let nnz: usize = rows.iter().map(Vec::len).sum();
                macs += (nnz * (if degree2 { 3 } else { 2 }) * (level + 1)) as f64;
                if degree2 {
                    relins += rows.len();
                }
                let target_scale = if i == last { delta_out } else { delta };
                layers.push(ThroughputLayer::Linear {
                    inputs: width as u32,
                    rows,
                    bias: map.bias.clone(),
                    target_scale,
                });
                width = map.bias.len();
                level -= if degree2 { 2 } else { 1 };
                degree2 = false;
            }
            LStage::Square { .. } => {
                layers.push(ThroughputLayer::Square);
                macs += (3 * width * (level + 1)) as f64;
                degree2 = true;
            }
            _ => unreachable!("checked by unfit"),
        }
    }
    // The last layer keeps its own prime: the answer is at level 1, scale Δ_out·q_1.
    let q = params.q();
    let n = params.n() as f64;
    let spec = ThroughputSpec {
        version: THROUGHPUT_VERSION,
        params: params.spec().clone(),
        features: n_in as u32,
        input_level: params.max_level() as u32,
        input_scale: delta,
        outputs: width as u32,
        output_level: 1,
        output_scale: delta_out * q[1] as f64,
        max_batch: params.slots() as u32,
    };
    // Estimated seconds on 2 cores: ~0.25 ns per coefficient multiply-add in the
    // weighted sums, a key switch ≈ 60 NTT-sized passes over its limbs.
    let ks = 60.0 * n * (params.max_level() + 1) as f64 * 0.5e-9;
    let latency_s = macs * n * 0.25e-9 + relins as f64 * ks;
    let request_bytes = n_in * params.ciphertext_bytes(params.max_level(), true);
    let answer_bytes = width * params.ciphertext_bytes(1, false);
    let batch = params.slots();
    let key_bytes = params.keyswitch_key_bytes();
    let cost = LayoutCost {
        layout: "T".into(),
        latency_s,
        request_bytes,
        answer_bytes,
        request_bytes_per_sample: request_bytes as f64 / batch as f64,
        answer_bytes_per_sample: answer_bytes as f64 / batch as f64,
        cost_s_per_sample: latency_s / batch as f64,
        key_bytes,
        keys: "relinearisation only (no Galois keys)".into(),
        max_batch: batch,
    };
    let note = format!(
        "layout T: N = 2^{} ({} samples per request), q = {:?} bits, log2(QP) = {:.1}, Δ = 2^{delta_bits}, answer at \
         2^{:.0}·q_1; {} ciphertexts in ({:.1} MB), {} out; relinearisation key only",
        params.spec().log_n,
        batch,
        q.iter().map(|&v| (v as f64).log2().round() as i64).collect::<Vec<_>>(),
        params.log_qp(),
        delta_out.log2(),
        n_in,
        request_bytes as f64 / 1e6,
        width
    );
    Built { program: ThroughputProgram { version: THROUGHPUT_VERSION, layers }, spec, cost, note }
}

/// The L layout's cost, from its report's figures (one sample per request).
pub(crate) fn latency_cost(hem: &model::HeModel, r: &model::Report) -> LayoutCost {
    let packing = hem.client.input.compact.as_ref().map_or(0, |c| c.galois_elements.len());
    LayoutCost {
        layout: "L".into(),
        latency_s: r.est_latency_ms / 1e3,
        request_bytes: r.query_bytes,
        answer_bytes: r.response_bytes,
        request_bytes_per_sample: r.query_bytes as f64,
        answer_bytes_per_sample: r.response_bytes as f64,
        cost_s_per_sample: r.est_latency_ms / 1e3,
        key_bytes: r.evaluation_key_bytes,
        keys: format!(
            "{}{} Galois keys{}",
            if r.relinearization { "relinearisation + " } else { "" },
            r.galois_keys,
            if packing > 0 { format!(" + {packing} for the compact query's packing") } else { String::new() }
        ),
        max_batch: 1,
    }
}

/// Which layouts `compile` emits (`heinfer compile --layout`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LayoutRequest {
    /// Every layout that fits (L always; T when the network and options allow it).
    #[default]
    Auto,
    /// The latency layout only (one sample per request).
    L,
    /// L and T; an error if T does not fit.
    T,
    /// L and M (`crate::multi`); an error if M does not fit.
    M,
}

impl std::str::FromStr for LayoutRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "L" | "l" => Ok(Self::L),
            "T" | "t" => Ok(Self::T),
            "M" | "m" => Ok(Self::M),
            _ => Err(format!("unknown layout {s:?}: choose auto, L, M or T")),
        }
    }
}

/// Adds layout T to a compiled model when `opts.layout` asks for it and it fits, and
/// the per-layout costs to its client spec and report.
pub(crate) fn attach(
    hem: &mut model::HeModel,
    net: &[LStage],
    cal: &Calibration,
    n_in: usize,
    opts: &crate::Options,
) -> Result<(), CompileError> {
    let mut costs: Vec<LayoutCost> = hem.report.as_ref().map(|r| latency_cost(hem, r)).into_iter().collect();
    let blocker = if opts.output_dp.is_some() || opts.circuit_privacy.is_some() || opts.public_features.is_some() {
        Some("output DP, circuit privacy and public features are layout-L mechanisms".to_string())
    } else {
        unfit(net)
    };
    let built = match (opts.layout, blocker) {
        (LayoutRequest::L | LayoutRequest::M, _) => None,
        (LayoutRequest::T, Some(why)) => return Err(CompileError::Layout(format!("layout T: {why}"))),
        (LayoutRequest::Auto, Some(why)) => {
            if let Some(r) = hem.report.as_mut() {
                r.notes.push(format!("no layout T: {why}"));
            }
            None
        }
        (req, None) => match build(net, cal, n_in, opts.throughput_batch) {
            Ok(b) => Some(b),
            Err(e) if req == LayoutRequest::Auto => {
                if let Some(r) = hem.report.as_mut() {
                    r.notes.push(format!("no {e}"));
                }
                None
            }
            Err(e) => return Err(e),
        },
    };
    if let Some(b) = built {
        check(&b.program, net, cal)?;
        costs.push(b.cost);
        hem.throughput = Some(b.program);
        hem.client.throughput = Some(b.spec);
        if let Some(r) = hem.report.as_mut() {
            r.notes.push(b.note);
        }
    }
    hem.client.layouts = costs.clone();
    if let Some(r) = hem.report.as_mut() {
        r.layouts = costs;
    }
    hem.validate().map_err(|e| CompileError::Internal(format!("layout T: {e}")))
}

/// The layout-T program in f64, for one sample.
fn simulate(p: &ThroughputProgram, x: &[f64]) -> Vec<f64> {
    let mut v = x.to_vec();
    for l in &p.layers {
        v = match l {
            ThroughputLayer::Square => v.iter().map(|a| a * a).collect(),
            ThroughputLayer::Linear { rows, bias, .. } => {
                rows.iter().zip(bias).map(|(r, b)| b + r.iter().map(|&(i, w)| w * v[i as usize]).sum::<f64>()).collect()
            }
        };
    }
    v
}

/// The program computes the network (in f64, on the calibration samples): a compiler
/// bug here would otherwise only show as wrong decryptions.
fn check(p: &ThroughputProgram, net: &[LStage], cal: &Calibration) -> Result<(), CompileError> {
    for r in 0..cal.rows.min(64) {
        let x = cal.data.row(r);
        let want = crate::network::forward(net, x);
        let got = simulate(p, x);
        let scale = want.iter().fold(1.0f64, |a, v| a.max(v.abs()));
        if got.len() != want.len() || got.iter().zip(&want).any(|(g, w)| (g - w).abs() > 1e-9 * scale) {
            return Err(CompileError::Internal(format!(
                "layout T: the program differs from the network on calibration sample {r}"
            )));
        }
    }
    Ok(())
}
