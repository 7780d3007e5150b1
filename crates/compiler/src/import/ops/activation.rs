//! Element-wise activations: each becomes an activation stage, later a fitted
//! polynomial; a Sigmoid that ends the graph goes to the client instead.

use model::PostOp;

use crate::activation::ActFn;
use crate::import::chain::{unsupported, Chain, OpNode};
use crate::import::registry::OpRegistry;
use crate::import::Stage;
use crate::CompileError;

pub(super) fn register(reg: &mut OpRegistry) {
    reg.register("Relu", |ch, op| activation(ch, op, ActFn::Relu));
    reg.register("LeakyRelu", |ch, op| {
        activation(ch, op, ActFn::LeakyRelu(op.n.attr_f("alpha").unwrap_or(0.01) as f64))
    });
    reg.register("Sigmoid", |ch, op| activation(ch, op, ActFn::Sigmoid));
    reg.register("Tanh", |ch, op| activation(ch, op, ActFn::Tanh));
    reg.register("Gelu", |ch, op| {
        let f = if op.n.attr_s("approximate") == Some("tanh") { ActFn::GeluTanh } else { ActFn::Gelu };
        activation(ch, op, f)
    });
    reg.register("Softplus", |ch, op| activation(ch, op, ActFn::Softplus));
    reg.register("Clip", clip);
    reg.register("Relu6", |ch, op| activation(ch, op, ActFn::Clip(0.0, 6.0)));
    reg.register("HardSigmoid", |ch, op| {
        let (a, b) = (op.n.attr_f("alpha").unwrap_or(0.2) as f64, op.n.attr_f("beta").unwrap_or(0.5) as f64);
        activation(ch, op, ActFn::HardSigmoid(a, b))
    });
    reg.register("HardSwish", |ch, op| activation(ch, op, ActFn::HardSwish));
    // "Silu" is not an ONNX op: `passes::silu` writes it for x·Sigmoid(x).
    reg.register("Silu", |ch, op| activation(ch, op, ActFn::Silu));
    reg.register("Mish", |ch, op| activation(ch, op, ActFn::Mish));
    reg.register("Elu", |ch, op| activation(ch, op, ActFn::Elu(op.n.attr_f("alpha").unwrap_or(1.0) as f64)));
    reg.register("Selu", |ch, op| {
        let a = op.n.attr_f("alpha").unwrap_or(1.673_263_2) as f64;
        let g = op.n.attr_f("gamma").unwrap_or(1.050_701) as f64;
        activation(ch, op, ActFn::Selu(a, g))
    });
}

/// Clip with constant limits (inputs since opset 11, attributes before); a missing one is ±∞.
/// With both infinite it is the identity; with one, a ReLU shifted (exact polynomials
/// need a finite range anyway, which calibration gives).
fn clip(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let n = op.n;
    let bound = |k: usize, attr: &str, d: f64| -> Result<f64, CompileError> {
        match n.inputs.get(k).filter(|s| !s.is_empty()) {
            Some(name) => ch.tensor(name).and_then(|t| t.data.first().copied()).ok_or_else(|| {
                unsupported(n, &format!("the {attr} limit must be a constant (it is computed from the input)"))
            }),
            None => Ok(n.attr_f(attr).map(|v| v as f64).unwrap_or(d)),
        }
    };
    let (lo, hi) = (bound(1, "min", f64::NEG_INFINITY)?, bound(2, "max", f64::INFINITY)?);
    if lo > hi {
        return Err(unsupported(n, &format!("min {lo} is above max {hi}")));
    }
    if lo == f64::NEG_INFINITY && hi == f64::INFINITY {
        ch.alias(op, op.shape_in.clone());
        return Ok(());
    }
    activation(ch, op, ActFn::Clip(lo, hi))
}

fn activation(ch: &mut Chain, op: &OpNode, f: ActFn) -> Result<(), CompileError> {
    let (n, out) = (op.n, &op.out);
    // A Sigmoid that ends the graph is post-processing.
    let is_last = ch.graph_outputs.iter().any(|o| o == out) || ch.feeds_only_client(out);
    let src = ch.materialise(&op.cur);
    if f == ActFn::Sigmoid && is_last {
        ch.he_output = op.cur.clone();
        ch.post.push(PostOp::Sigmoid);
        ch.alias(op, op.shape_in.clone());
    } else {
        let nm = if n.name.is_empty() { out.clone() } else { n.name.clone() };
        ch.push_stage(out, Stage::Act { name: nm, f, src }, op.shape_in.clone());
    }
    Ok(())
}
