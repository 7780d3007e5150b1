//! ai.onnx.ml ops as skl2onnx exports them: linear models and their pre- and
//! post-processing.

use model::PostOp;

use crate::affine::Affine;
use crate::import::chain::{unsupported, Chain, OpNode};
use crate::import::registry::OpRegistry;
use crate::CompileError;

pub(super) fn register(reg: &mut OpRegistry) {
    reg.register("LinearClassifier", linear_model);
    reg.register("LinearRegressor", linear_model);
    reg.register("Scaler", scaler);
    reg.register("Normalizer", normalizer);
}

/// The scores (second output) are what the encrypted part computes; the labels output
/// is the client's, from the scores.
fn linear_model(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let n = op.n;
    let coef = n.attrs.get("coefficients").map(|a| a.floats.clone()).unwrap_or_default();
    let inter = n.attrs.get("intercepts").map(|a| a.floats.clone()).unwrap_or_default();
    let k = op.numel;
    if coef.is_empty() || !coef.len().is_multiple_of(k) {
        return Err(unsupported(n, "coefficients do not match the input size"));
    }
    let mo = coef.len() / k;
    let mut rows: Vec<Vec<(u32, f64)>> =
        (0..mo).map(|o| (0..k).map(|i| (i as u32, coef[o * k + i] as f64)).collect()).collect();
    let mut bias: Vec<f64> = (0..mo).map(|o| inter.get(o).copied().unwrap_or(0.0) as f64).collect();
    let pt = n.attr_s("post_transform").unwrap_or("NONE");
    let nlab = n.attrs.get("classlabels_ints").map(|a| a.ints.len()).unwrap_or(0)
        + n.attrs.get("classlabels_strings").map(|a| a.ints.len()).unwrap_or(0);
    let binary_raw = n.op_type == "LinearClassifier" && mo == 1 && nlab == 2 && pt == "NONE";
    if binary_raw {
        // A binary classifier's raw scores are [−s, s] (what onnxruntime reports): one more row.
        rows.insert(0, rows[0].iter().map(|&(i, w)| (i, -w)).collect());
        bias.insert(0, -bias[0]);
    }
    let mo = rows.len();
    let scores = n.outputs.get(1).cloned().unwrap_or(op.out.clone());
    if n.op_type == "LinearClassifier" {
        // The label is the client's: the class of the largest score.
        ch.side.insert(op.out.clone());
    }
    ch.push_linear(&op.cur, &scores, Affine { n_in: k, rows, bias }, format!("linear {k}->{mo}"), vec![mo]);
    ch.materialise(&scores);
    ch.he_output = format!("{}:scores", n.outputs.get(1).cloned().unwrap_or_default());
    match pt {
        "NONE" => {}
        "LOGISTIC" => ch.post.push(PostOp::Sigmoid),
        "SOFTMAX" => ch.post.push(PostOp::Softmax),
        o => return Err(unsupported(n, &format!("post_transform {o} is not supported"))),
    }
    if n.op_type == "LinearClassifier" && mo == 1 && nlab == 2 && !binary_raw {
        ch.post.push(PostOp::BinaryProbabilities);
    }
    ch.last = scores.clone();
    ch.final_output = scores;
    Ok(())
}

fn scaler(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let n = op.n;
    let off = n.attrs.get("offset").map(|a| a.floats.clone()).unwrap_or_default();
    let sc = n.attrs.get("scale").map(|a| a.floats.clone()).unwrap_or_default();
    let pick = |v: &[f32], i: usize, d: f32| if v.len() == 1 { v[0] } else { v.get(i).copied().unwrap_or(d) };
    let mut a = Affine::identity(op.numel);
    for i in 0..op.numel {
        let (o, s) = (pick(&off, i, 0.0) as f64, pick(&sc, i, 1.0) as f64);
        a.rows[i][0].1 = s;
        a.bias[i] = -o * s;
    }
    ch.push_linear(&op.cur, &op.out, a, "scaler".into(), op.shape_in.clone());
    Ok(())
}

fn normalizer(_: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    // Before the scores it divides every sample by its norm: not a polynomial of the input.
    Err(unsupported(
        op.n,
        "scikit-learn's Normalizer divides each sample by its norm, which is not a polynomial; apply it on the client before encrypting (fit the pipeline without it, and call Normalizer().transform on the data you send)",
    ))
}
