//! Element-wise arithmetic. With a constant operand it is affine (fused like a linear
//! layer); between two computed tensors only a residual Add/Sub or a square is
//! encryptable.

use crate::activation::ActFn;
use crate::affine::Affine;
use crate::import::chain::{broadcast, unsupported, Chain, OpNode, Tv};
use crate::import::registry::OpRegistry;
use crate::import::Stage;
use crate::onnx::{self, Node};
use crate::CompileError;

pub(super) fn register(reg: &mut OpRegistry) {
    for op in ["Add", "Sub", "Mul", "Div"] {
        reg.register(op, binary);
    }
    reg.register("Pow", pow);
    reg.register("Erf", erf);
}

/// Shown for an Erf that the GELU pass left alone.
pub(crate) const ERF_HINT: &str = "Erf is supported only inside GELU, x*0.5*(1 + Erf(x/sqrt(2))), as PyTorch exports nn.GELU at opset 13/14 (that subgraph becomes one Gelu activation); this Erf is not part of such a pattern: use nn.GELU, or ReLU";

fn binary(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    if op.computed.len() == 2 {
        return binary_computed(ch, op);
    }
    let n = op.n;
    let oi = if op.computed[0] == 0 { 1 } else { 0 };
    let t = ch.constant(op, oi).ok_or_else(|| {
        unsupported(n, "the other operand is neither a constant nor a tensor computed from the input")
    })?;
    if oi == 0 && n.op_type == "Div" {
        return Err(unsupported(
            n,
            "constant / x is a reciprocal, not a polynomial; rewrite the model to multiply by a constant instead",
        ));
    }
    if oi == 0 && n.op_type == "Sub" {
        // c − x = −x + c: affine.
        let neg = onnx::Tensor::new(vec![], vec![-1.0]);
        let tmp = format!("{}#neg", op.out);
        elementwise_const(ch, n, &op.cur, &tmp, &neg, "Mul")?;
        return elementwise_const(ch, n, &tmp, &op.out, &t, "Add");
    }
    elementwise_const(ch, n, &op.cur, &op.out, &t, &n.op_type)
}

/// Both operands computed: x*x is a square; a ± b a residual connection, or one affine
/// map when both are maps of the same value.
fn binary_computed(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let (n, out) = (op.n, &op.out);
    let (x, y) = (n.inputs[0].clone(), n.inputs[1].clone());
    if n.op_type == "Mul" && x == y {
        let src = ch.materialise(&x);
        let nm = if n.name.is_empty() { out.clone() } else { n.name.clone() };
        ch.push_stage(out, Stage::Act { name: nm, f: ActFn::Square, src }, op.shape_in.clone());
    } else if matches!(n.op_type.as_str(), "Mul" | "Div") {
        return Err(unsupported(
            n,
            "both operands are computed tensors: only x*x of one tensor (a square) is supported, not a product or quotient of two different ones",
        ));
    } else {
        let (sx, sy) = (ch.shape(&x), ch.shape(&y));
        if sx.iter().product::<usize>() != sy.iter().product::<usize>() {
            return Err(unsupported(
                n,
                &format!("a residual Add/Sub needs operands of one shape, got {sx:?} and {sy:?} (broadcasting between computed tensors is not supported)"),
            ));
        }
        let sign = if n.op_type == "Sub" { -1.0 } else { 1.0 };
        let (tx, ty) = (ch.vals[&x].clone(), ch.vals[&y].clone());
        if tx.base == ty.base {
            // Two affine maps of one value: their sum is affine too (no HE addition).
            let whole =
                |t: &Tv| t.pending.clone().map(|p| p.0).unwrap_or_else(|| Affine::identity(t.shape.iter().product()));
            let (ax, ay) = (whole(&tx), whole(&ty));
            if ax.n_in != ay.n_in {
                return Err(CompileError::Internal(format!(
                    "{}: operands read one value with different sizes",
                    n.describe()
                )));
            }
            let mut names = tx.pending.map(|p| p.1).unwrap_or_default();
            names.extend(ty.pending.map(|p| p.1).unwrap_or_default());
            names.push(format!("{} (fused)", n.op_type.to_lowercase()));
            ch.vals.insert(out.clone(), Tv { base: tx.base, pending: Some((ax.plus(&ay, sign), names)), shape: sx });
        } else {
            let a = ch.materialise(&x);
            let b = ch.materialise(&y);
            let nm = if n.name.is_empty() { out.clone() } else { n.name.clone() };
            ch.push_stage(out, Stage::Add { name: nm, a, b, sub: sign < 0.0, n: sx.iter().product() }, sx);
        }
    }
    Ok(())
}

fn pow(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let n = op.n;
    let e = ch.constant(op, 1).map(|t| t.data.first().copied().unwrap_or(0.0));
    if e != Some(2.0) {
        return Err(unsupported(n, "only Pow(x, 2) is supported"));
    }
    let src = ch.materialise(&op.cur);
    ch.push_stage(&op.out, Stage::Act { name: n.name.clone(), f: ActFn::Square, src }, op.shape_in.clone());
    Ok(())
}

fn erf(_: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    Err(unsupported(op.n, ERF_HINT))
}

fn elementwise_const(
    ch: &mut Chain,
    n: &Node,
    input: &str,
    out: &str,
    other: &onnx::Tensor,
    op: &str,
) -> Result<(), CompileError> {
    let shape = ch.shape(input);
    let numel: usize = shape.iter().product();
    let v = broadcast(other, &shape).ok_or_else(|| {
        unsupported(n, &format!("the constant operand of shape {:?} does not broadcast to {:?}", other.dims, shape))
    })?;
    let mut a = Affine::identity(numel);
    for (i, &vi) in v.iter().enumerate().take(numel) {
        match op {
            "Add" => a.bias[i] = vi,
            "Sub" => a.bias[i] = -vi,
            "Mul" => a.rows[i][0].1 = vi,
            "Div" => a.rows[i][0].1 = 1.0 / vi,
            _ => unreachable!(),
        }
    }
    ch.push_linear(input, out, a, format!("{} {}", op.to_lowercase(), n.name), shape);
    Ok(())
}
