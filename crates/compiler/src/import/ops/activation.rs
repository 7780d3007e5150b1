//! Element-wise activations: each becomes an activation stage, later a fitted
//! polynomial; a Sigmoid that ends the graph goes to the client instead.

use model::PostOp;

use crate::activation::ActFn;
use crate::import::chain::{Chain, OpNode};
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
}

fn activation(ch: &mut Chain, op: &OpNode, f: ActFn) -> Result<(), CompileError> {
    let (n, out) = (op.n, &op.out);
    // A Sigmoid that ends the graph is post-processing.
    let is_last = ch.graph_outputs.iter().any(|o| o == out);
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
