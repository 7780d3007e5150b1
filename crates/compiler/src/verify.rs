//! Stage: verification. The packed program must compute exactly the approximated
//! network (a packing bug is caught here, not under encryption); then its accuracy is
//! measured against the original model — onnxruntime when Python has it ([`ort`]),
//! else the f64 interpreter of the imported graph.

use std::path::Path;

use model::report::Accuracy;
use model::{HeModel, PostOp};

use crate::calibrate::Calibration;
use crate::import::Imported;
use crate::network::{forward, top1, LStage};
use crate::{ort, CompileError, Data, Options};

/// Client packing + plaintext simulation + unpacking for one sample.
pub fn simulate_one(m: &HeModel, x: &[f64]) -> Result<Vec<f64>, CompileError> {
    let cts = m.client.pack_input(x).map_err(|e| CompileError::Shape(e.to_string()))?;
    // Public features: the server's share of the first layer, from the same sample.
    let x_pub = m.public.as_ref().map(|p| model::public::split_sample(&p.indices, x));
    let out =
        model::public::simulate_public(m, &cts, x_pub.as_deref()).map_err(|e| CompileError::Internal(e.to_string()))?;
    m.client.unpack_output(&out).map_err(|e| CompileError::Internal(e.to_string()))
}

/// Simulates the program on (up to 8 of) the calibration samples and compares it with
/// the network it was built from.
pub(crate) fn check_program(hem: &HeModel, stages: &[LStage], cal: &Calibration) -> Result<(), CompileError> {
    for r in (0..cal.rows).step_by((cal.rows / 8).max(1)) {
        let x = cal.data.row(r);
        let sim = simulate_one(hem, x)?;
        let want = forward(stages, x);
        for (a, b) in sim.iter().zip(&want) {
            if (a - b).abs() > 1e-6 * (1.0 + b.abs()) {
                return Err(CompileError::Internal(format!("packed program differs from the network: {a} vs {b}")));
            }
        }
    }
    Ok(())
}

/// Calibration samples whose every slot [`slot_headroom`] follows.
const HEADROOM_SAMPLES: usize = 32;

/// The least room, in bits, that any slot of any node leaves below its level's modulus,
/// over (up to [`HEADROOM_SAMPLES`] of) the calibration samples: log2(q_0⋯q_level / 2) −
/// log2(scale · |value|). Every slot counts, used or not: a value past the modulus wraps
/// around it, and then every slot of that ciphertext decrypts wrong, though the
/// simulation's used slots are right. (Unused slots hold whatever rotations brought there,
/// and a high-degree polynomial sends such a value far outside its fitted interval.)
/// Refused below zero; otherwise the room left, for the report.
pub(crate) fn slot_headroom(hem: &HeModel, cal: &Calibration) -> Result<f64, CompileError> {
    let q = &hem.client.params.q;
    let mut log_q = Vec::with_capacity(q.len());
    let mut acc = 0.0;
    for &p in q {
        acc += (p as f64).log2();
        log_q.push(acc);
    }
    let mut least = f64::INFINITY;
    for r in (0..cal.rows).step_by((cal.rows / HEADROOM_SAMPLES).max(1)) {
        let x = cal.data.row(r);
        let cts = hem.client.pack_input(x).map_err(|e| CompileError::Shape(e.to_string()))?;
        if hem.public.is_some() {
            return Ok(least); // the server's share of the first layer is not in `simulate_values`
        }
        let vals = model::sim::simulate_values(hem, &cts).map_err(|e| CompileError::Internal(e.to_string()))?;
        for (k, (node, v)) in hem.nodes.iter().zip(&vals).enumerate() {
            let max = v.iter().fold(0.0f64, |a, x| a.max(x.abs()));
            if max == 0.0 {
                continue;
            }
            let room = log_q[node.level as usize] - 1.0 - node.scale.log2() - max.log2();
            if room < 0.0 {
                return Err(CompileError::Internal(format!(
                    "node {k} ({:?}, level {}) reaches {max:.3e} in some slot on calibration sample {r}: {:.1} bits past \
                     its modulus, so that every answer like it would decrypt wrong. Refused rather than served; \
                     --maxpool avg or a lower --degree may avoid it",
                    node.op, node.level, -room
                )));
            }
            least = least.min(room);
        }
    }
    Ok(least)
}

/// The simulated model against the original on the evaluation data (the calibration
/// data when there is none), and a note when onnxruntime was wanted but failed.
pub(crate) fn accuracy(
    hem: &HeModel,
    imp: &Imported,
    data: &Data,
    onnx_path: Option<&Path>,
    opts: &Options,
) -> Result<(Accuracy, Option<String>), CompileError> {
    let eval = data.eval.unwrap_or(data.calibration);
    let sims: Vec<Vec<f64>> = (0..eval.rows()).map(|r| simulate_one(hem, eval.row(r))).collect::<Result<_, _>>()?;
    accuracy_of(sims, imp, data, onnx_path, opts)
}

/// [`accuracy`] for outputs `sims` computed some other way (one per evaluation sample,
/// before post-processing): a Paillier model's fixed-point scores.
pub(crate) fn accuracy_of(
    sims: Vec<Vec<f64>>,
    imp: &Imported,
    data: &Data,
    onnx_path: Option<&Path>,
    opts: &Options,
) -> Result<(Accuracy, Option<String>), CompileError> {
    let calib = data.calibration;
    let mut note = None;
    let eval = data.eval.unwrap_or(calib);
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
                Err(e) => note = Some(format!("onnxruntime reference unavailable ({e}); using the f64 interpreter")),
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
    Ok((accuracy, note))
}
