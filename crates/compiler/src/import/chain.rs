//! The import's state: the stage list built so far and every named tensor as a pending
//! affine map of one of its values — what op handlers read and extend.

use std::collections::{HashMap, HashSet};

use model::PostOp;

use super::{MaxPoolPolicy, Stage};
use crate::affine::Affine;
use crate::onnx::{self, Node};
use crate::CompileError;

/// A computed tensor: an affine map (not yet materialised, so that consecutive linear
/// ops fuse) of a value of the stage list.
#[derive(Clone, Debug)]
pub(crate) struct Tv {
    pub base: usize,
    pub pending: Option<(Affine, Vec<String>)>,
    pub shape: Vec<usize>,
}

pub(crate) struct Chain<'a> {
    pub init: &'a HashMap<String, onnx::Tensor>,
    pub consts: HashMap<String, onnx::Tensor>,
    pub vals: HashMap<String, Tv>,
    pub stages: Vec<Stage>,
    pub notes: Vec<String>,
    pub maxpool: MaxPoolPolicy,
    /// Names of the graph's outputs (an op may mean something else at the very end).
    pub graph_outputs: Vec<String>,
    /// Client post-processing, in order; once it starts, only more of it may follow.
    pub post: Vec<PostOp>,
    /// The tensor the encrypted part computes.
    pub he_output: String,
    /// The tensor the client finally sees (after post-processing).
    pub final_output: String,
    /// The last tensor an op produced.
    pub last: String,
    /// Tensors the encrypted part does not compute and the client derives from its
    /// output (a classifier's label, ZipMap's maps): nodes reading them are skipped.
    pub side: HashSet<String>,
    /// Every node reading a tensor (to see whether what follows an op is all client-side).
    pub readers: HashMap<String, Vec<Node>>,
    /// 1 − p of a client-side Sigmoid p (skl2onnx's binary classifiers): (that tensor, p).
    pub neg_of: Option<(String, String)>,
    /// The scale of a QuantizeLinear of the model's input (QDQ models): the grid the
    /// model's own integer path puts inputs on (`Imported::input_quant_scale`).
    pub input_quant_scale: Option<f64>,
    /// Whether a DynamicQuantizeLinear reads the model's input (quantize_dynamic models,
    /// `Imported::input_dynamic_quant`).
    pub input_dynamic_quant: bool,
}

/// A node as its op handler sees it: the loop has checked that it reads at least one
/// computed tensor and worked out which.
pub(crate) struct OpNode<'n> {
    pub n: &'n Node,
    /// Indices of the inputs that are computed tensors (never empty).
    pub computed: Vec<usize>,
    /// The first computed input.
    pub cur: String,
    /// The first output.
    pub out: String,
    pub shape_in: Vec<usize>,
    pub numel: usize,
}

pub(crate) fn unsupported(n: &Node, what: &str) -> CompileError {
    CompileError::Unsupported { node: n.describe(), op: n.op_type.clone(), hint: what.to_string() }
}

/// Ops that may follow a classifier's last score on the client's side.
const CLIENT_TAIL: &[&str] = &[
    "Sub",
    "Concat",
    "ArgMax",
    "ArrayFeatureExtractor",
    "Reshape",
    "Cast",
    "ZipMap",
    "Identity",
    "Normalizer",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Softmax",
    "LogSoftmax",
];

impl<'a> Chain<'a> {
    /// Whether everything downstream of `t` is client-side post-processing (so an op
    /// producing `t` ends the encrypted part).
    pub fn feeds_only_client(&self, t: &str) -> bool {
        let mut stack = vec![t.to_string()];
        let mut seen = HashSet::new();
        while let Some(x) = stack.pop() {
            if !seen.insert(x.clone()) {
                continue;
            }
            for r in self.readers.get(&x).into_iter().flatten() {
                if !CLIENT_TAIL.contains(&r.op_type.as_str()) {
                    return false;
                }
                // 1 − p is client-side; p − something computed is not.
                if r.op_type == "Sub" && r.inputs.first().map(|i| self.tensor(i).is_none()).unwrap_or(true) {
                    return false;
                }
                stack.extend(r.outputs.iter().cloned());
            }
        }
        true
    }
    pub fn tensor(&self, name: &str) -> Option<&onnx::Tensor> {
        self.init.get(name).or_else(|| self.consts.get(name))
    }
    pub fn shape(&self, name: &str) -> Vec<usize> {
        self.vals.get(name).map(|t| t.shape.clone()).unwrap_or_default()
    }
    /// Input `k` of `op` when it is a constant (initializer or Constant node).
    pub fn constant(&self, op: &OpNode, k: usize) -> Option<onnx::Tensor> {
        op.n.inputs.get(k).and_then(|nm| self.tensor(nm).cloned())
    }
    /// `op`'s output is its input reshaped (no computation).
    pub fn alias(&mut self, op: &OpNode, shape: Vec<usize>) {
        let mut tv = self.vals[&op.cur].clone();
        tv.shape = shape;
        self.vals.insert(op.out.clone(), tv);
    }
    /// `out` = a ∘ `input`, fused with whatever is pending on `input`.
    pub fn push_linear(&mut self, input: &str, out: &str, a: Affine, label: String, shape: Vec<usize>) {
        let tv = self.vals[input].clone();
        let pending = match tv.pending {
            None => (a, vec![label]),
            Some((p, mut names)) => {
                names.push(label);
                (a.compose(&p), names)
            }
        };
        self.vals.insert(out.to_string(), Tv { base: tv.base, pending: Some(pending), shape });
    }
    /// Emits the pending linear stage of `name`, if any; returns its value.
    pub fn materialise(&mut self, name: &str) -> usize {
        let Some(tv) = self.vals.get_mut(name) else { return 0 };
        if let Some((map, names)) = tv.pending.take() {
            let kind = names.join(" + ");
            let nm = names.first().cloned().unwrap_or_default();
            self.stages.push(Stage::Linear { name: nm, kind, map, src: tv.base });
            tv.base = self.stages.len();
        }
        tv.base
    }
    /// A stage reading one value: `out` becomes its result.
    pub fn push_stage(&mut self, out: &str, st: Stage, shape: Vec<usize>) {
        self.stages.push(st);
        self.vals.insert(out.to_string(), Tv { base: self.stages.len(), pending: None, shape });
    }
}

/// Broadcasts a constant tensor (numpy rules, batch dimension included or not) to `shape`.
pub(crate) fn broadcast(t: &onnx::Tensor, shape: &[usize]) -> Option<Vec<f64>> {
    let mut dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    if dims.len() == shape.len() + 1 && dims[0] == 1 {
        dims.remove(0);
    }
    if dims.len() > shape.len() {
        return None;
    }
    while dims.len() < shape.len() {
        dims.insert(0, 1);
    }
    for (d, s) in dims.iter().zip(shape) {
        if *d != 1 && d != s {
            return None;
        }
    }
    let numel: usize = shape.iter().product();
    let mut out = Vec::with_capacity(numel);
    for flat in 0..numel {
        let mut rem = flat;
        let mut idx = 0usize;
        let mut stride_t = 1usize;
        let mut offs = 0usize;
        for k in (0..shape.len()).rev() {
            let c = rem % shape[k];
            rem /= shape[k];
            if dims[k] != 1 {
                offs += c * stride_t;
            }
            stride_t *= dims[k];
            idx = offs;
        }
        out.push(t.data[idx]);
    }
    Some(out)
}
