//! Ops that only rename or reshape a tensor: no stage, the row-major data stays put.

use crate::import::chain::{unsupported, Chain, OpNode};
use crate::import::registry::OpRegistry;
use crate::CompileError;

pub(super) fn register(reg: &mut OpRegistry) {
    reg.register("Identity", identity);
    reg.register("Dropout", identity);
    reg.register("Flatten", flatten);
    reg.register("Reshape", reshape);
    reg.register("Squeeze", reshape);
    reg.register("Unsqueeze", reshape);
}

fn identity(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    ch.alias(op, op.shape_in.clone());
    Ok(())
}

fn flatten(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let axis = op.n.attr_i("axis").unwrap_or(1);
    if axis != 1 && axis != 0 {
        return Err(unsupported(op.n, "Flatten is supported with axis=1 only"));
    }
    ch.alias(op, vec![op.numel]);
    Ok(())
}

fn reshape(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let (n, numel) = (op.n, op.numel);
    let target = n.inputs.get(1).and_then(|t| ch.tensor(t));
    let new: Vec<usize> = match target {
        Some(t) if n.op_type == "Reshape" => {
            let mut dims: Vec<i64> = t.data.iter().map(|&v| v as i64).collect();
            if dims.first() == Some(&1) || dims.first() == Some(&-1) && dims.len() > 1 {
                dims.remove(0);
            }
            let known: i64 = dims.iter().filter(|&&d| d > 0).product();
            dims.iter()
                .map(|&d| if d == -1 || d == 0 { (numel as i64 / known.max(1)) as usize } else { d as usize })
                .collect()
        }
        _ => vec![numel],
    };
    if new.iter().product::<usize>() != numel {
        return Err(CompileError::Shape(format!("{}: cannot reshape {:?} to {new:?}", n.describe(), op.shape_in)));
    }
    ch.alias(op, new);
    Ok(())
}
