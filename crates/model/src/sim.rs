//! Plaintext simulation: the program run on f64 slot vectors.

use crate::ir::Op;
use crate::{HeModel, ModelError};

/// Runs the program on the input slot vectors (one per input ciphertext, zero-padded
/// to N/2) and returns the output slot vectors — what decrypting the server's result
/// gives, up to CKKS noise.
pub fn simulate(model: &HeModel, inputs: &[Vec<f64>]) -> Result<Vec<Vec<f64>>, ModelError> {
    let vals = simulate_values(model, inputs)?;
    Ok(model.outputs.iter().map(|&o| vals[o as usize].clone()).collect())
}

/// Like [`simulate`] but returns every value (index = node), for debugging and reports.
pub fn simulate_values(model: &HeModel, inputs: &[Vec<f64>]) -> Result<Vec<Vec<f64>>, ModelError> {
    let slots = model.slots();
    let want = model.client.input.slot_map.len();
    if inputs.len() != want {
        return Err(ModelError::Shape(format!("{} input vectors, the model takes {want}", inputs.len())));
    }
    let plains: Vec<Vec<f64>> = model
        .plaintexts
        .iter()
        .map(|p| {
            let mut v = p.values.clone();
            v.resize(slots, 0.0);
            v
        })
        .collect();
    let ops: Vec<_> = model.nodes.iter().map(|n| n.op.clone()).collect();
    run(&ops, &plains, &program_inputs(model, inputs), slots)
}

/// The program's input vectors for the client's: the same, unless the server applies a
/// first layer before the program (`model::first_layer`), whose output it then is.
pub fn program_inputs<'a>(model: &HeModel, inputs: &'a [Vec<f64>]) -> std::borrow::Cow<'a, [Vec<f64>]> {
    match (&model.first_layer, inputs.first()) {
        (Some(f), Some(x)) => {
            let x = &x[..(f.n_in as usize).min(x.len())];
            std::borrow::Cow::Owned(vec![f.slot_values(x, model.slots())])
        }
        _ => std::borrow::Cow::Borrowed(inputs),
    }
}

/// The interpreter itself, over bare ops (the compiler uses it before a model exists).
pub fn run(ops: &[Op], plains: &[Vec<f64>], inputs: &[Vec<f64>], slots: usize) -> Result<Vec<Vec<f64>>, ModelError> {
    let mut vals: Vec<Vec<f64>> = Vec::with_capacity(ops.len());
    let get = |vals: &Vec<Vec<f64>>, v: u32| -> Result<usize, ModelError> {
        if (v as usize) < vals.len() {
            Ok(v as usize)
        } else {
            Err(ModelError::Invalid(format!("value {v} used before it is defined")))
        }
    };
    for op in ops {
        let out = match *op {
            Op::Input { index } => {
                let x = inputs.get(index as usize).ok_or_else(|| ModelError::Shape(format!("no input {index}")))?;
                if x.len() > slots {
                    return Err(ModelError::Shape(format!("input {index} has {} values > {slots} slots", x.len())));
                }
                let mut v = x.clone();
                v.resize(slots, 0.0);
                v
            }
            Op::Add { a, b } => {
                let (a, b) = (get(&vals, a)?, get(&vals, b)?);
                vals[a].iter().zip(&vals[b]).map(|(x, y)| x + y).collect()
            }
            Op::Sub { a, b } => {
                let (a, b) = (get(&vals, a)?, get(&vals, b)?);
                vals[a].iter().zip(&vals[b]).map(|(x, y)| x - y).collect()
            }
            Op::AddPlain { a, pt } | Op::MulPlain { a, pt } => {
                let a = get(&vals, a)?;
                let p = plains.get(pt as usize).ok_or_else(|| ModelError::Invalid(format!("no plaintext {pt}")))?;
                if matches!(op, Op::AddPlain { .. }) {
                    vals[a].iter().zip(p).map(|(x, y)| x + y).collect()
                } else {
                    vals[a].iter().zip(p).map(|(x, y)| x * y).collect()
                }
            }
            Op::AddConst { a, c } => vals[get(&vals, a)?].iter().map(|x| x + c).collect(),
            Op::MulConst { a, c, .. } => vals[get(&vals, a)?].iter().map(|x| x * c).collect(),
            Op::MulRelin { a, b } => {
                let (a, b) = (get(&vals, a)?, get(&vals, b)?);
                vals[a].iter().zip(&vals[b]).map(|(x, y)| x * y).collect()
            }
            Op::Square { a } => vals[get(&vals, a)?].iter().map(|x| x * x).collect(),
            Op::Rescale { a } | Op::DropLevel { a, .. } => vals[get(&vals, a)?].clone(),
            Op::Rotate { a, step } => {
                let src = &vals[get(&vals, a)?];
                let k = step.rem_euclid(slots as i64) as usize;
                let mut v = Vec::with_capacity(slots);
                v.extend_from_slice(&src[k..]);
                v.extend_from_slice(&src[..k]);
                v
            }
        };
        vals.push(out);
    }
    Ok(vals)
}
