//! ONNX graph → a DAG of stages: affine maps (every linear op between two
//! activations fused into one sparse matrix, BatchNormalization folded, Identity and
//! Dropout dropped) and element-wise activations; trailing Softmax / LogSoftmax /
//! ArgMax / Sigmoid become client post-processing.
//!
//! The loop here only walks the nodes; what each op means lives with its family in
//! [`ops`], found by op type through the [`registry`].

mod chain;
mod ops;
mod registry;

use std::collections::HashMap;

use model::PostOp;

use crate::activation::ActFn;
use crate::affine::Affine;
use crate::onnx;
use crate::CompileError;
use chain::{unsupported, Chain, OpNode, Tv};

/// One step of the imported network. Values are numbered: value 0 is the model's
/// input and stage `i` produces value `i + 1`; every stage names the value(s) it reads,
/// so branches and residual connections form a DAG (in topological order).
#[derive(Clone, Debug)]
pub enum Stage {
    Linear {
        name: String,
        kind: String,
        map: Affine,
        src: usize,
    },
    Act {
        name: String,
        f: ActFn,
        src: usize,
    },
    /// value a + value b (a − b with `sub`): a residual connection of two computed tensors of `n` elements.
    Add {
        name: String,
        a: usize,
        b: usize,
        sub: bool,
        n: usize,
    },
}

impl Stage {
    /// The values this stage reads.
    pub fn sources(&self) -> Vec<usize> {
        match *self {
            Stage::Linear { src, .. } | Stage::Act { src, .. } => vec![src],
            Stage::Add { a, b, .. } => vec![a, b],
        }
    }
}

#[derive(Clone, Debug)]
pub struct Imported {
    pub input_name: String,
    pub input_shape: Vec<usize>,
    pub stages: Vec<Stage>,
    /// Name of the tensor the HE part computes (the last stage's value).
    pub he_output: String,
    pub final_output: String,
    pub postprocess: Vec<PostOp>,
    pub notes: Vec<String>,
}

/// An activation's exact evaluation during a run: (index, function, input) → output.
pub type ActEval<'a> = dyn FnMut(usize, ActFn, &[f64]) -> Vec<f64> + 'a;

impl Imported {
    /// Runs the network in f64, calling `act(k, f, input)` for the k-th activation to
    /// get its output. Returns the last stage's value.
    pub fn run_with(&self, x: &[f64], act: &mut ActEval) -> Vec<f64> {
        let mut vals: Vec<Vec<f64>> = Vec::with_capacity(self.stages.len() + 1);
        vals.push(x.to_vec());
        let mut k = 0;
        for s in &self.stages {
            let v = match s {
                Stage::Linear { map, src, .. } => map.apply(&vals[*src]),
                Stage::Act { f, src, .. } => {
                    k += 1;
                    act(k - 1, *f, &vals[*src])
                }
                Stage::Add { a, b, sub, .. } => {
                    let sg = if *sub { -1.0 } else { 1.0 };
                    vals[*a].iter().zip(&vals[*b]).map(|(x, y)| x + sg * y).collect()
                }
            };
            vals.push(v);
        }
        vals.pop().unwrap_or_default()
    }
    /// The original model in f64 (exact activations): the reference when onnxruntime is absent.
    pub fn reference(&self, x: &[f64]) -> Vec<f64> {
        self.run_with(x, &mut |_, f, v| v.iter().map(|&t| f.eval(t)).collect())
    }
    /// How many stages read each value (the output counts as one more reader).
    pub fn uses(&self) -> Vec<usize> {
        let mut u = vec![0; self.stages.len() + 1];
        for s in &self.stages {
            for v in s.sources() {
                u[v] += 1;
            }
        }
        u[self.stages.len()] += 1;
        u
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MaxPoolPolicy {
    #[default]
    Refuse,
    Average,
}

/// Imports a parsed ONNX model (after [`crate::passes`]) as a DAG of stages (see [`Stage`]).
pub fn import(m: &onnx::Model, maxpool: MaxPoolPolicy) -> Result<Imported, CompileError> {
    let (inp, shape) = data_input(m)?;
    let g = &m.graph;
    let mut ch = Chain {
        init: &g.initializers,
        consts: HashMap::new(),
        vals: HashMap::new(),
        stages: vec![],
        notes: vec![],
        maxpool,
        graph_outputs: g.outputs.iter().map(|o| o.name.clone()).collect(),
        post: vec![],
        he_output: inp.name.clone(),
        final_output: inp.name.clone(),
        last: inp.name.clone(),
    };
    ch.vals.insert(inp.name.clone(), Tv { base: 0, pending: None, shape: shape.clone() });
    let registry = ops::register_all_ops();
    for n in &g.nodes {
        if n.op_type == "Constant" {
            if let (Some(o), Some(t)) = (n.outputs.first(), n.attrs.get("value").and_then(|a| a.t.clone())) {
                ch.consts.insert(o.clone(), t);
                continue;
            }
            return Err(unsupported(n, "only tensor-valued Constant nodes are supported"));
        }
        let computed: Vec<usize> = (0..n.inputs.len()).filter(|&k| ch.vals.contains_key(&n.inputs[k])).collect();
        if computed.is_empty() {
            if matches!(n.op_type.as_str(), "Shape" | "Gather" | "Unsqueeze" | "Concat" | "Cast" | "ZipMap") {
                continue; // shape plumbing or a side output; Reshape handles a missing target
            }
            if n.op_type == "Erf" {
                return Err(unsupported(n, ops::ERF_HINT));
            }
            return Err(unsupported(
                n,
                "it reads none of the tensors computed from the model's input (a computation on constants only); fold it into an initializer",
            ));
        }
        let cur = n.inputs[computed[0]].clone();
        let out = n.outputs.first().cloned().unwrap_or_default();
        if !ch.post.is_empty()
            && !matches!(n.op_type.as_str(), "ArgMax" | "Softmax" | "LogSoftmax" | "Identity" | "Cast")
        {
            return Err(unsupported(n, "only Softmax/LogSoftmax/ArgMax may follow the model's final post-processing"));
        }
        let shape_in = ch.shape(&cur);
        let numel: usize = shape_in.iter().product();
        let Some(handler) = registry.get(&n.op_type) else {
            return Err(unsupported(n, &format!("this op is not supported; {}", ops::SUPPORTED_OPS)));
        };
        // A handler that produces some other tensor (a classifier's scores) says so.
        ch.last = out.clone();
        ch.final_output = out.clone();
        handler(&mut ch, &OpNode { n, computed, cur, out, shape_in, numel })?;
    }
    if ch.post.is_empty() {
        ch.he_output = ch.last.clone();
    }
    let (he_output, last) = (ch.he_output.clone(), ch.last.clone());
    let he_tensor = if ch.vals.contains_key(&he_output) { he_output.clone() } else { last.clone() };
    let out_value = ch.materialise(&he_tensor);
    if !ch.stages.iter().any(|s| matches!(s, Stage::Linear { .. })) {
        return Err(CompileError::BadOnnx("the model has no linear layer".into()));
    }
    if out_value != ch.stages.len() {
        return Err(CompileError::BadOnnx(format!(
            "the output '{he_tensor}' is not the last tensor computed: the graph has branches that do not reach the output; remove them"
        )));
    }
    Ok(Imported {
        input_name: inp.name.clone(),
        input_shape: shape,
        stages: ch.stages,
        he_output,
        final_output: ch.final_output,
        postprocess: ch.post,
        notes: ch.notes,
    })
}

/// The model's one data input and its shape without the batch dimension; refuses what
/// the exporters we support would not produce.
fn data_input(m: &onnx::Model) -> Result<(&onnx::ValueInfo, Vec<usize>), CompileError> {
    if m.opset != 0 && m.opset < 13 {
        return Err(CompileError::BadOnnx(format!(
            "opset {} is older than 13; re-export with opset_version >= 13 (torch.onnx.export(..., opset_version=13))",
            m.opset
        )));
    }
    let g = &m.graph;
    let data_inputs: Vec<&onnx::ValueInfo> =
        g.inputs.iter().filter(|v| !g.initializers.contains_key(&v.name)).collect();
    if data_inputs.len() != 1 {
        return Err(CompileError::BadOnnx(format!(
            "the model must have exactly one data input, it has {}",
            data_inputs.len()
        )));
    }
    let inp = data_inputs[0];
    let mut shape: Vec<usize> = Vec::new();
    for (i, d) in inp.shape.iter().enumerate() {
        match d {
            Some(v) if *v > 0 => {
                if i > 0 || inp.shape.len() == 1 {
                    shape.push(*v as usize)
                }
            }
            _ if i == 0 => {}
            _ => {
                return Err(CompileError::Shape(format!(
                    "input '{}' has a symbolic dimension {i}; only the batch dimension may be symbolic",
                    inp.name
                )))
            }
        }
    }
    if shape.is_empty() {
        return Err(CompileError::Shape(format!("input '{}' has no shape information", inp.name)));
    }
    Ok((inp, shape))
}
