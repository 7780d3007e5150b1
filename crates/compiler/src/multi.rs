//! Layout M (multi-sample, `model::multi`): layout L's network built again for N/(2B)
//! slots, so that B samples interleaved in one ciphertext (sample b's slot j at j·B + b)
//! run at once, each seeing cyclic rotations of its own slots. Same parameters as L (the
//! depth is the same; the program must end at L's output level), its own Galois keys
//! (steps × B). B is chosen for the lowest estimated cost per sample; the client picks
//! L, M or T for the batch it holds from the costs in its spec.

use model::{ClientSpec, HeModel, LayoutCost, MultiProgram, Op};

use crate::calibrate::Calibration;
use crate::network::{forward, LStage};
use crate::{layout, lower, report, verify, CompileError, LayoutRequest, Options};

/// Layout M for one model: the program (server), the spec (client), its cost.
pub(crate) struct Built {
    pub program: MultiProgram,
    pub spec: ClientSpec,
    pub cost: LayoutCost,
    /// The model widened as the server will (`HeModel::multi_model`): costed, then checked.
    wide: HeModel,
}

/// Why a compiled model has no layout M, if it cannot have one.
fn blocker(hem: &HeModel, opts: &Options) -> Option<&'static str> {
    let c = &hem.client;
    if opts.output_dp.is_some() || opts.circuit_privacy.is_some() || opts.mask_unused_slots {
        Some("output DP, circuit privacy and masked answers are layout-L mechanisms")
    } else if c.input.compact.is_some() || !c.public_features.is_empty() {
        Some("a compact query or public features take layout L's input")
    } else if c.prefix.is_some() || c.client_aided.is_some() || !c.input.parts.is_empty() {
        Some("split, client-aided and multi-input models run in layout L")
    } else if c.input.slot_map.len() != 1 || hem.outputs.len() != 1 {
        Some("the model takes or returns more than one ciphertext per sample")
    } else {
        None
    }
}

/// Adds layout M to `hem` when `opts.layout` asks for it and the network fits B ≥ 2
/// samples per ciphertext, and its cost to the spec's and report's layouts.
#[allow(clippy::too_many_arguments)] // the compile's figures this layout reuses
pub(crate) fn attach(
    hem: &mut HeModel,
    stages: &[LStage],
    params: &ckks::Parameters,
    shape: layout::Shape,
    key_each: usize,
    depth: u32,
    cal: &Calibration,
    opts: &Options,
) -> Result<(), CompileError> {
    if matches!(opts.layout, LayoutRequest::L | LayoutRequest::T) {
        return Ok(());
    }
    let why = match blocker(hem, opts) {
        None => match best(hem, stages, params, shape, key_each, depth) {
            Ok(b) => {
                check(&b, stages, cal)?;
                let note = format!(
                    "layout M: {} samples per request, interleaved (sample b's slot j at slot j·{0} + b), the \
                     network built on {} slots; est. {:.1} ms per request, {:.2} ms per sample; its own {} Galois \
                     keys ({:.2} MB)",
                    b.program.batch,
                    params.slots() / b.program.batch as usize,
                    b.cost.latency_s * 1e3,
                    b.cost.cost_s_per_sample * 1e3,
                    b.spec.rotation_steps.len(),
                    b.cost.key_bytes as f64 / 1e6
                );
                hem.multi = Some(b.program);
                hem.client.multi = Some(Box::new(b.spec));
                hem.client.layouts.push(b.cost.clone());
                if let Some(r) = hem.report.as_mut() {
                    r.layouts.push(b.cost);
                    r.notes.push(note);
                }
                return hem.validate().map_err(|e| CompileError::Internal(format!("layout M: {e}")));
            }
            Err(e) => e,
        },
        Some(why) => why.to_string(),
    };
    if opts.layout == LayoutRequest::M {
        return Err(CompileError::Layout(format!("layout M: {why}")));
    }
    if let Some(r) = hem.report.as_mut() {
        r.notes.push(format!("no layout M: {why}"));
    }
    Ok(())
}

/// The B with the lowest estimated cost per sample among those the network fits.
fn best(
    hem: &HeModel,
    stages: &[LStage],
    params: &ckks::Parameters,
    shape: layout::Shape,
    key_each: usize,
    depth: u32,
) -> Result<Built, String> {
    let mut best: Option<Built> = None;
    let mut last_err = String::from("the network does not fit half of the slots");
    let mut batch = 2usize;
    while batch <= params.slots() / 2 && batch <= model::MAX_MULTI_BATCH as usize {
        let narrow = params.slots() / batch;
        let bt = match layout::build(stages, params.q(), narrow, params.default_scale(), false, shape) {
            Ok(bt) => bt,
            Err(e) => {
                last_err = format!("{} samples per request: {e}", batch);
                break;
            }
        };
        batch *= 2;
        let b = batch / 2;
        // None also where M's Galois keys would be L's: a bundle tells the server its layout
        // by its keys, and `HeModel::multi_model` refuses such a model.
        let Some(built) = widen(hem, bt, b, params, key_each, depth) else { continue };
        if best.as_ref().is_none_or(|x| built.cost.cost_s_per_sample <= x.cost.cost_s_per_sample) {
            best = Some(built);
        }
    }
    best.ok_or(last_err)
}

/// The network built on N/(2B) slots as layout M; None when it ends at another level
/// than layout L (the parameters were chosen for L's depth).
fn widen(
    hem: &HeModel,
    bt: layout::Built,
    batch: usize,
    params: &ckks::Parameters,
    key_each: usize,
    depth: u32,
) -> Option<Built> {
    let l = &hem.client;
    let out = &bt.b.nodes[bt.out.id as usize];
    if out.level != l.output.level {
        return None;
    }
    let (out_level, out_scale) = (out.level, out.scale);
    let mut nodes = bt.b.nodes;
    for n in &mut nodes {
        if let Op::Rotate { step, .. } = &mut n.op {
            *step = model::multi::widen_step(*step, batch);
        }
    }
    let steps = lower::rotation_steps(&nodes);
    let elems: usize = l.input.shape.iter().product();
    let n_out = l.output.shape.iter().product::<usize>();
    let slot_map: Vec<i32> = bt
        .client_map
        .iter()
        .flat_map(|&i| (0..batch).map(move |b| if i >= 0 { i + (b * elems) as i32 } else { -1 }))
        .collect();
    let mut out_slots = Vec::with_capacity(batch * n_out);
    for b in 0..batch {
        for o in 0..n_out {
            let s = bt.out_layout.iter().position(|&e| e == o as i32)?;
            out_slots.push((0u32, (s * batch + b) as u32));
        }
    }
    let mut shape = l.input.shape.clone();
    match shape.first_mut() {
        Some(d) if *d == 1 => *d = batch,
        _ => shape.insert(0, batch),
    }
    let mut spec = l.clone();
    spec.input.shape = shape;
    spec.input.slot_map = vec![slot_map];
    spec.input.level = bt.input_level;
    spec.input.scale = bt.input_scale;
    spec.input.layout =
        format!("layout M: {batch} samples, sample b's slot j at slot j·{batch} + b; per sample: {}", bt.layout_desc);
    spec.rotation_steps = steps.clone();
    spec.galois_elements = steps.iter().map(|&s| params.galois_element(s)).collect();
    spec.relinearization = nodes.iter().any(|n| matches!(n.op, Op::Square { .. } | Op::MulRelin { .. }));
    spec.key_levels = lower::key_levels(&nodes, &steps);
    spec.output.shape = vec![batch, n_out];
    spec.output.slots = out_slots;
    spec.output.level = out_level;
    spec.output.scale = out_scale;
    spec.layouts = vec![];
    spec.throughput = None;
    spec.multi = None;
    spec.answer = None; // layout M's answers are whole: its runtime does not cut them
    let program = MultiProgram { batch: batch as u32, nodes, outputs: vec![bt.out.id], plaintexts: bt.b.plains };
    let probe = HeModel {
        client: ClientSpec { multi: Some(Box::new(spec.clone())), ..l.clone() },
        multi: Some(program.clone()),
        report: None,
        throughput: None,
        ..hem.clone()
    };
    let wide = probe.multi_model()?.ok()?;
    let r = report::make_report(&wide, params, key_each, depth, vec![], None, vec![], 0.0);
    let latency_s = r.est_latency_ms / 1e3;
    let cost = LayoutCost {
        layout: "M".into(),
        latency_s,
        request_bytes: r.query_bytes,
        answer_bytes: r.response_bytes,
        request_bytes_per_sample: r.query_bytes as f64 / batch as f64,
        answer_bytes_per_sample: r.response_bytes as f64 / batch as f64,
        cost_s_per_sample: latency_s / batch as f64,
        key_bytes: r.evaluation_key_bytes,
        keys: format!(
            "{}{} Galois keys (layout M's own)",
            if r.relinearization { "relinearisation + " } else { "" },
            r.galois_keys
        ),
        max_batch: batch,
    };
    Some(Built { program, spec, cost, wide })
}

/// The widened program computes the network for every sample of a full batch (in f64,
/// on the calibration samples): an interleaving bug would otherwise only show as wrong
/// decryptions.
fn check(b: &Built, stages: &[LStage], cal: &Calibration) -> Result<(), CompileError> {
    let wide = &b.wide;
    let batch = b.program.batch as usize;
    let rows: Vec<usize> = (0..batch).map(|k| k % cal.rows.max(1)).collect();
    let x: Vec<f64> = rows.iter().flat_map(|&r| cal.data.row(r).to_vec()).collect();
    let got = verify::simulate_one(wide, &x)?;
    let n_out = got.len() / batch;
    for (k, &r) in rows.iter().enumerate() {
        let want = forward(stages, cal.data.row(r));
        for (a, w) in got[k * n_out..(k + 1) * n_out].iter().zip(&want) {
            if (a - w).abs() > 1e-6 * (1.0 + w.abs()) {
                return Err(CompileError::Internal(format!(
                    "layout M: sample {k} of the batch differs from the network: {a} vs {w}"
                )));
            }
        }
    }
    Ok(())
}
