//! ONNX graph → a DAG of stages: affine maps (every linear op between two
//! activations fused into one sparse matrix, BatchNormalization folded, Identity and
//! Dropout dropped) and element-wise activations; trailing Softmax / LogSoftmax /
//! ArgMax / Sigmoid become client post-processing.
//!
//! The loop here only walks the nodes; what each op means lives with its family in
//! [`ops`], found by op type through the [`registry`].

mod chain;
mod fold;
mod ops;
mod registry;

use std::collections::{HashMap, HashSet};

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
    /// Shape of the HE output tensor without the batch dimension (what a split model's
    /// suffix takes as its input, `split`).
    pub output_shape: Vec<usize>,
    /// The ONNX inputs the flattened input concatenates (several-input models).
    pub input_parts: Vec<model::InputPart>,
    /// A QDQ model's input quantization step s (x_q = round(x / s) + zero point): BGV
    /// compiles such a model on its own integer grid (`quantize::Grid::Model`).
    pub input_quant_scale: Option<f64>,
    /// A quantize_dynamic model: DynamicQuantizeLinear quantizes the input per batch, its
    /// weights are int8 (MatMulInteger/ConvInteger). BGV compiles it on its own weight
    /// integers with the input on that quantizer's step over the data's range.
    pub input_dynamic_quant: bool,
}

/// An activation's exact evaluation during a run: (index, function, input) → output.
pub type ActEval<'a> = dyn FnMut(usize, ActFn, &[f64]) -> Vec<f64> + 'a;

impl Imported {
    /// Whether the model brings its own integers (a QDQ model's input QuantizeLinear, or
    /// quantize_dynamic's DynamicQuantizeLinear): BGV can compile it without --quantize.
    pub fn brings_integers(&self) -> bool {
        self.input_quant_scale.is_some() || self.input_dynamic_quant
    }

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
    /// Rewritten as AveragePool (cheap; the report shows the accuracy cost).
    Average,
    /// max(a, b) = (a + b)/2 + |a − b|/2, |x| a fitted polynomial; windows as a tree of pairwise maxima.
    Approximate,
}

/// Imports a parsed ONNX model (after [`crate::passes`]) as a DAG of stages (see [`Stage`]).
pub fn import(m: &onnx::Model, maxpool: MaxPoolPolicy) -> Result<Imported, CompileError> {
    let (inp, shape) = data_input(m)?;
    let g = &m.graph;
    let mut readers: HashMap<String, Vec<onnx::Node>> = HashMap::new();
    for n in &g.nodes {
        for i in &n.inputs {
            readers.entry(i.clone()).or_default().push(n.clone());
        }
    }
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
        side: HashSet::new(),
        readers,
        neg_of: None,
        input_quant_scale: None,
        input_dynamic_quant: false,
    };
    ch.vals.insert(inp.name.clone(), Tv { base: 0, pending: None, shape: shape.clone() });
    let registry = ops::register_all_ops();
    for n in &g.nodes {
        if n.op_type == "Constant" {
            let o = n.outputs.first().cloned().unwrap_or_default();
            let t = constant_value(n).ok_or_else(|| {
                unsupported(n, "only numeric Constant nodes (value, value_float(s), value_int(s)) are supported; make it an initializer")
            })?;
            ch.consts.insert(o, t);
            continue;
        }
        let computed: Vec<usize> = (0..n.inputs.len()).filter(|&k| ch.vals.contains_key(&n.inputs[k])).collect();
        if matches!(n.op_type.as_str(), "Shape" | "Size") && computed.len() == 1 {
            // Shapes are known at compile time (batch 1): shape arithmetic folds to constants.
            let mut dims = vec![1i64];
            dims.extend(ch.shape(&n.inputs[0]).iter().map(|&d| d as i64));
            let t = if n.op_type == "Shape" {
                fold::shape_of(n, &dims)
            } else {
                onnx::Tensor::new(vec![], vec![dims.iter().product::<i64>() as f64])
            };
            ch.consts.insert(n.outputs.first().cloned().unwrap_or_default(), t);
            continue;
        }
        if computed.is_empty() {
            fold_or_skip(&mut ch, n)?;
            continue;
        }
        let cur = n.inputs[computed[0]].clone();
        let out = n.outputs.first().cloned().unwrap_or_default();
        let shape_in = ch.shape(&cur);
        let numel: usize = shape_in.iter().product();
        let op = OpNode { n, computed, cur, out, shape_in, numel };
        if !ch.post.is_empty() {
            // The encrypted part has ended: what follows is the client's.
            ops::client_op(&mut ch, &op)?;
            continue;
        }
        let Some(handler) = registry.get(&n.op_type) else {
            return Err(unsupported(n, &format!("this op is not supported; {}", ops::SUPPORTED_OPS)));
        };
        // A handler that produces some other tensor (a classifier's scores) says so.
        ch.last = op.out.clone();
        ch.final_output = op.out.clone();
        handler(&mut ch, &op)?;
    }
    if ch.post.is_empty() {
        ch.he_output = ch.last.clone();
    }
    let (he_output, last) = (ch.he_output.clone(), ch.last.clone());
    let he_tensor = if ch.vals.contains_key(&he_output) { he_output.clone() } else { last.clone() };
    let output_shape = ch.shape(&he_tensor);
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
        output_shape,
        input_parts: g.merged_inputs.clone(),
        input_quant_scale: ch.input_quant_scale,
        input_dynamic_quant: ch.input_dynamic_quant,
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
            "the model must have one data input, or several whose dimensions other than the batch are fixed; it has {} ({})",
            data_inputs.len(),
            data_inputs.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", ")
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

/// A `Constant` node's tensor, whichever of its attributes holds it.
fn constant_value(n: &onnx::Node) -> Option<onnx::Tensor> {
    let a = n.attrs.values().next()?;
    match a.name.as_str() {
        "value" => a.t.clone(),
        "value_float" => a.f.map(|v| onnx::Tensor::new(vec![], vec![v as f64])),
        "value_int" => a.i.map(|v| onnx::Tensor::new(vec![], vec![v as f64])),
        "value_floats" => Some(onnx::Tensor::vector(a.floats.iter().map(|&v| v as f64).collect())),
        "value_ints" => Some(onnx::Tensor::vector(a.ints.iter().map(|&v| v as f64).collect())),
        _ => None,
    }
}

/// A node that reads no computed tensor: evaluated now when its inputs are all known
/// (constant propagation), skipped when it only continues a side output the client
/// derives (a classifier's label), refused otherwise.
fn fold_or_skip(ch: &mut Chain, n: &onnx::Node) -> Result<(), CompileError> {
    let known: Vec<Option<onnx::Tensor>> =
        n.inputs.iter().map(|nm| if nm.is_empty() { None } else { ch.tensor(nm).cloned() }).collect();
    let all_known = n.inputs.iter().zip(&known).all(|(nm, k)| nm.is_empty() || k.is_some());
    if all_known {
        let refs: Vec<Option<&onnx::Tensor>> = known.iter().map(Option::as_ref).collect();
        return match fold::fold(n, &refs) {
            Ok(Some(ts)) => {
                for (o, t) in n.outputs.iter().zip(ts) {
                    ch.consts.insert(o.clone(), t);
                }
                Ok(())
            }
            Ok(None) if n.op_type == "Erf" => Err(unsupported(n, ops::ERF_HINT)),
            Ok(None) => Err(unsupported(
                n,
                "it reads only constants, but this op cannot be evaluated at compile time; fold it into an initializer (onnx-simplifier, or torch.onnx.export(..., do_constant_folding=True))",
            )),
            Err(e) => Err(unsupported(n, &format!("evaluating it on its constant inputs failed: {e}"))),
        };
    }
    if n.inputs.iter().any(|i| ch.side.contains(i)) {
        ch.side.extend(n.outputs.iter().cloned());
        return Ok(());
    }
    if n.op_type == "Erf" {
        return Err(unsupported(n, ops::ERF_HINT));
    }
    let unknown = n.inputs.iter().zip(&known).find(|(nm, k)| !nm.is_empty() && k.is_none()).map(|p| p.0.as_str());
    Err(unsupported(
        n,
        &format!(
            "its input '{}' is neither computed from the model's input nor a constant (a graph with a second input, or an op before it that was skipped); make it an initializer",
            unknown.unwrap_or("?")
        ),
    ))
}
