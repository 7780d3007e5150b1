//! ONNX graph → a chain of stages: affine maps (every linear op between two
//! activations fused into one sparse matrix, BatchNormalization folded, Identity and
//! Dropout dropped) and element-wise activations; trailing Softmax / LogSoftmax /
//! ArgMax / Sigmoid become client post-processing.

use std::collections::HashMap;

use model::PostOp;

use crate::onnx::{self, Node};
use crate::CompileError;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ActFn {
    Relu,
    LeakyRelu(f64),
    Sigmoid,
    Tanh,
    Gelu,
    Softplus,
    /// x², kept exact.
    Square,
}

impl ActFn {
    pub fn eval(&self, x: f64) -> f64 {
        match *self {
            ActFn::Relu => x.max(0.0),
            ActFn::LeakyRelu(a) => {
                if x >= 0.0 {
                    x
                } else {
                    a * x
                }
            }
            ActFn::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            ActFn::Tanh => x.tanh(),
            ActFn::Gelu => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
            ActFn::Softplus => {
                if x > 30.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
            ActFn::Square => x * x,
        }
    }
    pub fn name(&self) -> String {
        match self {
            ActFn::Relu => "relu".into(),
            ActFn::LeakyRelu(a) => format!("leaky_relu({a})"),
            ActFn::Sigmoid => "sigmoid".into(),
            ActFn::Tanh => "tanh".into(),
            ActFn::Gelu => "gelu".into(),
            ActFn::Softplus => "softplus".into(),
            ActFn::Square => "square".into(),
        }
    }
}

/// Abramowitz–Stegun 7.1.26 is too coarse for a reference; use a series / continued fraction.
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let y = 1.0
        - t * (-x * x - 1.26551223
            + t * (1.00002368
                + t * (0.37409196
                    + t * (0.09678418
                        + t * (-0.18628806
                            + t * (0.27886807
                                + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
            .exp();
    if x >= 0.0 {
        y
    } else {
        -y
    }
}

/// y = W x + b over flattened (row-major) tensors; W as sparse rows.
#[derive(Clone, Debug)]
pub struct Affine {
    pub n_in: usize,
    pub rows: Vec<Vec<(u32, f64)>>,
    pub bias: Vec<f64>,
}

impl Affine {
    pub fn identity(n: usize) -> Self {
        Affine { n_in: n, rows: (0..n).map(|i| vec![(i as u32, 1.0)]).collect(), bias: vec![0.0; n] }
    }
    pub fn n_out(&self) -> usize {
        self.rows.len()
    }
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        self.rows
            .iter()
            .zip(&self.bias)
            .map(|(r, b)| b + r.iter().map(|&(i, w)| w * x[i as usize]).sum::<f64>())
            .collect()
    }
    /// self ∘ inner: x ↦ self(inner(x)).
    pub fn compose(&self, inner: &Affine) -> Affine {
        let mut acc: HashMap<u32, f64> = HashMap::new();
        let rows = self
            .rows
            .iter()
            .map(|r| {
                acc.clear();
                for &(j, w) in r {
                    for &(i, v) in &inner.rows[j as usize] {
                        *acc.entry(i).or_insert(0.0) += w * v;
                    }
                }
                let mut row: Vec<(u32, f64)> = acc.iter().filter(|(_, v)| **v != 0.0).map(|(&i, &v)| (i, v)).collect();
                row.sort_unstable_by_key(|e| e.0);
                row
            })
            .collect();
        let bias = self
            .rows
            .iter()
            .zip(&self.bias)
            .map(|(r, b)| b + r.iter().map(|&(j, w)| w * inner.bias[j as usize]).sum::<f64>())
            .collect();
        Affine { n_in: inner.n_in, rows, bias }
    }
}

#[derive(Clone, Debug)]
pub enum Stage {
    Linear { name: String, kind: String, map: Affine, out_shape: Vec<usize> },
    Act { name: String, f: ActFn },
}

#[derive(Clone, Debug)]
pub struct Imported {
    pub input_name: String,
    pub input_shape: Vec<usize>,
    pub stages: Vec<Stage>,
    /// Name of the tensor the HE part computes.
    pub he_output: String,
    pub final_output: String,
    pub postprocess: Vec<PostOp>,
    pub notes: Vec<String>,
}

impl Imported {
    /// The original model in f64 (exact activations): the reference when onnxruntime is absent.
    pub fn reference(&self, x: &[f64]) -> Vec<f64> {
        let mut v = x.to_vec();
        for s in &self.stages {
            v = match s {
                Stage::Linear { map, .. } => map.apply(&v),
                Stage::Act { f, .. } => v.iter().map(|&t| f.eval(t)).collect(),
            };
        }
        v
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MaxPoolPolicy {
    #[default]
    Refuse,
    Average,
}

struct Chain<'a> {
    init: &'a HashMap<String, onnx::Tensor>,
    consts: HashMap<String, onnx::Tensor>,
    cur: String,
    shape: Vec<usize>,
    pending: Option<(Affine, Vec<String>)>,
    stages: Vec<Stage>,
    notes: Vec<String>,
}

fn unsupported(n: &Node, what: &str) -> CompileError {
    CompileError::Unsupported { node: n.describe(), op: n.op_type.clone(), hint: what.to_string() }
}

impl<'a> Chain<'a> {
    fn tensor(&self, name: &str) -> Option<&onnx::Tensor> {
        self.init.get(name).or_else(|| self.consts.get(name))
    }
    fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    fn push_linear(&mut self, a: Affine, label: String, shape: Vec<usize>) {
        let (acc, mut names) = match self.pending.take() {
            None => (a, vec![]),
            Some((p, names)) => (a.compose(&p), names),
        };
        names.push(label);
        self.pending = Some((acc, names));
        self.shape = shape;
    }
    fn flush(&mut self) {
        if let Some((map, names)) = self.pending.take() {
            let kind = names.join(" + ");
            let name = names.first().cloned().unwrap_or_default();
            self.stages.push(Stage::Linear { name, kind, map, out_shape: self.shape.clone() });
        }
    }
    fn elementwise_const(&mut self, n: &Node, other: &onnx::Tensor, op: &str) -> Result<(), CompileError> {
        let numel = self.numel();
        let v = broadcast(other, &self.shape).ok_or_else(|| {
            unsupported(
                n,
                &format!("the constant operand of shape {:?} does not broadcast to {:?}", other.dims, self.shape),
            )
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
        self.push_linear(a, format!("{} {}", op.to_lowercase(), n.name), self.shape.clone());
        Ok(())
    }
}

/// Broadcasts a constant tensor (numpy rules, batch dimension included or not) to `shape`.
fn broadcast(t: &onnx::Tensor, shape: &[usize]) -> Option<Vec<f64>> {
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

fn conv_affine(
    n: &Node,
    shape: &[usize],
    w: &onnx::Tensor,
    b: Option<&onnx::Tensor>,
) -> Result<(Affine, Vec<usize>), CompileError> {
    if shape.len() != 3 {
        return Err(unsupported(n, &format!("Conv needs a C×H×W input, got shape {shape:?}")));
    }
    let (c, h, wd) = (shape[0], shape[1], shape[2]);
    if w.dims.len() != 4 {
        return Err(unsupported(n, "only 2-D convolutions are supported"));
    }
    let (m, cg, kh, kw) = (w.dims[0] as usize, w.dims[1] as usize, w.dims[2] as usize, w.dims[3] as usize);
    let group = n.attr_i("group").unwrap_or(1) as usize;
    if group == 0 || c != cg * group || m % group != 0 {
        return Err(unsupported(n, "weight shape does not match the input channels"));
    }
    let st = n.attr_ints("strides").map(|v| v.to_vec()).unwrap_or(vec![1, 1]);
    let dl = n.attr_ints("dilations").map(|v| v.to_vec()).unwrap_or(vec![1, 1]);
    let mut pads = n.attr_ints("pads").map(|v| v.to_vec()).unwrap_or(vec![0, 0, 0, 0]);
    if let Some(ap) = n.attr_s("auto_pad") {
        if ap == "SAME_UPPER" || ap == "SAME_LOWER" {
            let ph = ((h as i64 - 1) / st[0]) * st[0] + (kh as i64 - 1) * dl[0] + 1 - h as i64;
            let pw = ((wd as i64 - 1) / st[1]) * st[1] + (kw as i64 - 1) * dl[1] + 1 - wd as i64;
            let (ph, pw) = (ph.max(0), pw.max(0));
            pads = if ap == "SAME_UPPER" {
                vec![ph / 2, pw / 2, ph - ph / 2, pw - pw / 2]
            } else {
                vec![ph - ph / 2, pw - pw / 2, ph / 2, pw / 2]
            };
        }
    }
    let oh = ((h as i64 + pads[0] + pads[2] - dl[0] * (kh as i64 - 1) - 1) / st[0] + 1) as usize;
    let ow = ((wd as i64 + pads[1] + pads[3] - dl[1] * (kw as i64 - 1) - 1) / st[1] + 1) as usize;
    let mg = m / group;
    let mut rows = Vec::with_capacity(m * oh * ow);
    let mut bias = Vec::with_capacity(m * oh * ow);
    for oc in 0..m {
        let g = oc / mg;
        for oy in 0..oh {
            for ox in 0..ow {
                let mut row = Vec::new();
                for ic in 0..cg {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = oy as i64 * st[0] - pads[0] + ky as i64 * dl[0];
                            let ix = ox as i64 * st[1] - pads[1] + kx as i64 * dl[1];
                            if iy < 0 || ix < 0 || iy >= h as i64 || ix >= wd as i64 {
                                continue;
                            }
                            let cin = g * cg + ic;
                            let wv = w.data[((oc * cg + ic) * kh + ky) * kw + kx];
                            row.push(((cin * h * wd + iy as usize * wd + ix as usize) as u32, wv));
                        }
                    }
                }
                row.sort_unstable_by_key(|e| e.0);
                rows.push(row);
                bias.push(b.map(|b| b.data[oc]).unwrap_or(0.0));
            }
        }
    }
    Ok((Affine { n_in: c * h * wd, rows, bias }, vec![m, oh, ow]))
}

fn pool_affine(n: &Node, shape: &[usize], global: bool) -> Result<(Affine, Vec<usize>), CompileError> {
    if shape.len() != 3 {
        return Err(unsupported(n, &format!("pooling needs a C×H×W input, got {shape:?}")));
    }
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    let (k, st, pads) = if global {
        (vec![h as i64, w as i64], vec![1, 1], vec![0, 0, 0, 0])
    } else {
        let k =
            n.attr_ints("kernel_shape").map(|v| v.to_vec()).ok_or_else(|| unsupported(n, "kernel_shape missing"))?;
        (
            k.clone(),
            n.attr_ints("strides").map(|v| v.to_vec()).unwrap_or(vec![1, 1]),
            n.attr_ints("pads").map(|v| v.to_vec()).unwrap_or(vec![0; 4]),
        )
    };
    let include_pad = n.attr_i("count_include_pad").unwrap_or(0) == 1;
    let oh = ((h as i64 + pads[0] + pads[2] - k[0]) / st[0] + 1) as usize;
    let ow = ((w as i64 + pads[1] + pads[3] - k[1]) / st[1] + 1) as usize;
    let mut rows = Vec::new();
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut idx = Vec::new();
                for ky in 0..k[0] {
                    for kx in 0..k[1] {
                        let iy = oy as i64 * st[0] - pads[0] + ky;
                        let ix = ox as i64 * st[1] - pads[1] + kx;
                        if iy >= 0 && ix >= 0 && iy < h as i64 && ix < w as i64 {
                            idx.push((ch * h * w + iy as usize * w + ix as usize) as u32);
                        }
                    }
                }
                let div = if include_pad { (k[0] * k[1]) as f64 } else { idx.len() as f64 };
                rows.push(idx.into_iter().map(|i| (i, 1.0 / div)).collect());
            }
        }
    }
    let nr = rows.len();
    Ok((Affine { n_in: c * h * w, rows, bias: vec![0.0; nr] }, vec![c, oh, ow]))
}

/// Imports a parsed ONNX model as a chain of stages.
pub fn import(m: &onnx::Model, maxpool: MaxPoolPolicy) -> Result<Imported, CompileError> {
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
    let mut ch = Chain {
        init: &g.initializers,
        consts: HashMap::new(),
        cur: inp.name.clone(),
        shape: shape.clone(),
        pending: None,
        stages: vec![],
        notes: vec![],
    };
    let mut post: Vec<PostOp> = vec![];
    let mut he_output = inp.name.clone();
    let mut final_output = inp.name.clone();
    let mut side: HashMap<String, String> = HashMap::new(); // label outputs derived from the chain
    for n in &g.nodes {
        if n.op_type == "Constant" {
            if let (Some(o), Some(t)) = (n.outputs.first(), n.attrs.get("value").and_then(|a| a.t.clone())) {
                ch.consts.insert(o.clone(), t);
                continue;
            }
            return Err(unsupported(n, "only tensor-valued Constant nodes are supported"));
        }
        let on_chain = n.inputs.contains(&ch.cur);
        if !on_chain {
            if matches!(n.op_type.as_str(), "Shape" | "Gather" | "Unsqueeze" | "Concat" | "Cast" | "ZipMap") {
                continue; // shape plumbing or a side output; Reshape handles a missing target
            }
            return Err(unsupported(
                n,
                "it does not read the single chain of activations (branches and residual connections are not supported yet)",
            ));
        }
        let out = n.outputs.first().cloned().unwrap_or_default();
        if !post.is_empty() && !matches!(n.op_type.as_str(), "ArgMax" | "Softmax" | "LogSoftmax" | "Identity" | "Cast")
        {
            return Err(unsupported(n, "only Softmax/LogSoftmax/ArgMax may follow the model's final post-processing"));
        }
        let numel = ch.numel();
        let other = |ch: &Chain, k: usize| n.inputs.get(k).and_then(|nm| ch.tensor(nm).cloned());
        match n.op_type.as_str() {
            "Identity" | "Dropout" => {}
            "Flatten" => {
                let axis = n.attr_i("axis").unwrap_or(1);
                if axis != 1 && axis != 0 {
                    return Err(unsupported(n, "Flatten is supported with axis=1 only"));
                }
                ch.shape = vec![numel];
            }
            "Reshape" | "Squeeze" | "Unsqueeze" => {
                let target = n.inputs.get(1).and_then(|t| ch.tensor(t));
                let new: Vec<usize> = match target {
                    Some(t) if n.op_type == "Reshape" => {
                        let mut dims: Vec<i64> = t.data.iter().map(|&v| v as i64).collect();
                        if dims.first() == Some(&1) || dims.first() == Some(&-1) && dims.len() > 1 {
                            dims.remove(0);
                        }
                        let known: i64 = dims.iter().filter(|&&d| d > 0).product();
                        dims.iter().map(|&d| if d == -1 || d == 0 { (numel as i64 / known.max(1)) as usize } else { d as usize }).collect()
                    }
                    _ => vec![numel],
                };
                if new.iter().product::<usize>() != numel {
                    return Err(CompileError::Shape(format!("{}: cannot reshape {:?} to {new:?}", n.describe(), ch.shape)));
                }
                ch.shape = new;
            }
            "Gemm" | "MatMul" => {
                if ch.shape.len() != 1 {
                    ch.shape = vec![numel];
                }
                let b = other(&ch, 1).ok_or_else(|| unsupported(n, "the weight matrix must be a constant initializer"))?;
                let trans_b = n.attr_i("transB").unwrap_or(0) == 1;
                if n.attr_i("transA").unwrap_or(0) == 1 {
                    return Err(unsupported(n, "transA=1 is not supported; the activation must be the left operand"));
                }
                let alpha = n.attr_f("alpha").unwrap_or(1.0) as f64;
                let beta = n.attr_f("beta").unwrap_or(1.0) as f64;
                if b.dims.len() != 2 {
                    return Err(unsupported(n, "the weight must be a 2-D matrix"));
                }
                let (k, mo) = if trans_b { (b.dims[1] as usize, b.dims[0] as usize) } else { (b.dims[0] as usize, b.dims[1] as usize) };
                if k != numel {
                    return Err(CompileError::Shape(format!("{}: weight expects {k} inputs, the activation has {numel}", n.describe())));
                }
                let rows = (0..mo)
                    .map(|o| {
                        (0..k)
                            .map(|i| (i as u32, alpha * if trans_b { b.data[o * k + i] } else { b.data[i * mo + o] }))
                            .filter(|e| e.1 != 0.0)
                            .collect()
                    })
                    .collect();
                let bias = match (n.op_type.as_str(), other(&ch, 2)) {
                    ("Gemm", Some(c)) => {
                        broadcast(&c, &[mo]).ok_or_else(|| unsupported(n, "bias shape"))?.iter().map(|v| beta * v).collect()
                    }
                    _ => vec![0.0; mo],
                };
                ch.push_linear(Affine { n_in: k, rows, bias }, format!("dense {k}->{mo}"), vec![mo]);
            }
            "Conv" => {
                let w = other(&ch, 1).ok_or_else(|| unsupported(n, "the kernel must be a constant initializer"))?;
                let b = other(&ch, 2);
                let (a, s) = conv_affine(n, &ch.shape, &w, b.as_ref())?;
                let label = format!("conv {}x{}x{}->{}x{}x{} k{}x{}", ch.shape[0], ch.shape[1], ch.shape[2], s[0], s[1], s[2], w.dims[2], w.dims[3]);
                ch.push_linear(a, label, s);
            }
            "BatchNormalization" => {
                let get = |k: usize| other(&ch, k).ok_or_else(|| unsupported(n, "BatchNormalization parameters must be initializers"));
                let (sc, bi, mean, var) = (get(1)?, get(2)?, get(3)?, get(4)?);
                let eps = n.attr_f("epsilon").unwrap_or(1e-5) as f64;
                let c = ch.shape[0];
                let per = numel / c;
                let mut a = Affine::identity(numel);
                for i in 0..numel {
                    let k = i / per;
                    let s = sc.data[k] / (var.data[k] + eps).sqrt();
                    a.rows[i][0].1 = s;
                    a.bias[i] = bi.data[k] - s * mean.data[k];
                }
                ch.push_linear(a, "batchnorm (folded)".into(), ch.shape.clone());
            }
            "AveragePool" | "GlobalAveragePool" => {
                let (a, s) = pool_affine(n, &ch.shape, n.op_type == "GlobalAveragePool")?;
                ch.push_linear(a, format!("avgpool {:?}->{:?}", ch.shape, s), s);
            }
            "MaxPool" => {
                if maxpool == MaxPoolPolicy::Refuse {
                    return Err(unsupported(
                        n,
                        "max is not a polynomial, so CKKS cannot evaluate it; retrain with AveragePool, or pass --maxpool=avg to rewrite it as AveragePool (the report then shows the accuracy cost)",
                    ));
                }
                let (a, s) = pool_affine(n, &ch.shape, false)?;
                ch.notes.push(format!("{} rewritten as AveragePool (--maxpool=avg)", n.describe()));
                ch.push_linear(a, format!("maxpool->avgpool {:?}->{:?}", ch.shape, s), s);
            }
            "Add" | "Sub" | "Mul" | "Div" => {
                let both_chain = n.inputs.len() == 2 && n.inputs[0] == ch.cur && n.inputs[1] == ch.cur;
                if both_chain && n.op_type == "Mul" {
                    ch.flush();
                    ch.stages.push(Stage::Act { name: n.name.clone(), f: ActFn::Square });
                } else {
                    let oi = if n.inputs[0] == ch.cur { 1 } else { 0 };
                    let t = other(&ch, oi).ok_or_else(|| {
                        unsupported(n, "both operands are computed tensors (residual connections are not supported yet)")
                    })?;
                    if oi == 0 && matches!(n.op_type.as_str(), "Sub" | "Div") {
                        return Err(unsupported(n, "constant − x and constant / x are not supported"));
                    }
                    ch.elementwise_const(n, &t, &n.op_type)?;
                }
            }
            "Pow" => {
                let e = other(&ch, 1).map(|t| t.data.first().copied().unwrap_or(0.0));
                if e != Some(2.0) {
                    return Err(unsupported(n, "only Pow(x, 2) is supported"));
                }
                ch.flush();
                ch.stages.push(Stage::Act { name: n.name.clone(), f: ActFn::Square });
            }
            "Relu" | "LeakyRelu" | "Sigmoid" | "Tanh" | "Gelu" | "Softplus" => {
                let f = match n.op_type.as_str() {
                    "Relu" => ActFn::Relu,
                    "LeakyRelu" => ActFn::LeakyRelu(n.attr_f("alpha").unwrap_or(0.01) as f64),
                    "Sigmoid" => ActFn::Sigmoid,
                    "Tanh" => ActFn::Tanh,
                    "Gelu" => ActFn::Gelu,
                    _ => ActFn::Softplus,
                };
                // A Sigmoid that ends the graph is post-processing.
                let is_last = g.outputs.iter().any(|o| o.name == out);
                if f == ActFn::Sigmoid && is_last {
                    ch.flush();
                    he_output = ch.cur.clone();
                    post.push(PostOp::Sigmoid);
                } else {
                    ch.flush();
                    ch.stages.push(Stage::Act { name: if n.name.is_empty() { out.clone() } else { n.name.clone() }, f });
                }
            }
            "Softmax" | "LogSoftmax" | "ArgMax" => {
                ch.flush();
                if post.is_empty() {
                    he_output = ch.cur.clone();
                }
                post.push(match n.op_type.as_str() {
                    "Softmax" => PostOp::Softmax,
                    "LogSoftmax" => PostOp::LogSoftmax,
                    _ => PostOp::ArgMax,
                });
            }
            "LinearClassifier" | "LinearRegressor" => {
                let coef = n.attrs.get("coefficients").map(|a| a.floats.clone()).unwrap_or_default();
                let inter = n.attrs.get("intercepts").map(|a| a.floats.clone()).unwrap_or_default();
                let k = numel;
                if coef.is_empty() || coef.len() % k != 0 {
                    return Err(unsupported(n, "coefficients do not match the input size"));
                }
                let mo = coef.len() / k;
                let rows = (0..mo).map(|o| (0..k).map(|i| (i as u32, coef[o * k + i] as f64)).collect()).collect();
                let bias = (0..mo).map(|o| inter.get(o).copied().unwrap_or(0.0) as f64).collect();
                ch.push_linear(Affine { n_in: k, rows, bias }, format!("linear {k}->{mo}"), vec![mo]);
                ch.flush();
                he_output = format!("{}:scores", n.outputs.get(1).cloned().unwrap_or_default());
                let pt = n.attr_s("post_transform").unwrap_or("NONE");
                let nlab = n.attrs.get("classlabels_ints").map(|a| a.ints.len()).unwrap_or(0)
                    + n.attrs.get("classlabels_strings").map(|a| a.ints.len()).unwrap_or(0);
                match pt {
                    "NONE" => {}
                    "LOGISTIC" => post.push(PostOp::Sigmoid),
                    "SOFTMAX" => post.push(PostOp::Softmax),
                    o => return Err(unsupported(n, &format!("post_transform {o} is not supported"))),
                }
                if n.op_type == "LinearClassifier" && mo == 1 && nlab == 2 {
                    post.push(PostOp::BinaryProbabilities);
                }
                if let Some(label) = n.outputs.first() {
                    side.insert(label.clone(), "label".into());
                }
                ch.cur = n.outputs.get(1).cloned().unwrap_or(out);
                final_output = ch.cur.clone();
                continue;
            }
            "Scaler" => {
                let off = n.attrs.get("offset").map(|a| a.floats.clone()).unwrap_or_default();
                let sc = n.attrs.get("scale").map(|a| a.floats.clone()).unwrap_or_default();
                let pick = |v: &[f32], i: usize, d: f32| if v.len() == 1 { v[0] } else { v.get(i).copied().unwrap_or(d) };
                let mut a = Affine::identity(numel);
                for i in 0..numel {
                    let (o, s) = (pick(&off, i, 0.0) as f64, pick(&sc, i, 1.0) as f64);
                    a.rows[i][0].1 = s;
                    a.bias[i] = -o * s;
                }
                ch.push_linear(a, "scaler".into(), ch.shape.clone());
            }
            "Normalizer" => {
                // L1 normalisation of probabilities that already sum to 1 (skl2onnx emits it after LOGISTIC).
                if post.is_empty() {
                    return Err(unsupported(n, "Normalizer is supported only after a classifier's probabilities"));
                }
            }
            "Erf" => {
                return Err(unsupported(n, "GELU exported as Erf: export with opset >= 20 (a single Gelu op) or use ReLU"))
            }
            _ => {
                return Err(unsupported(
                    n,
                    "this op is not supported; supported: Gemm, MatMul, Conv, BatchNormalization, AveragePool, GlobalAveragePool, Flatten, Reshape, Add/Sub/Mul/Div by constants, Mul(x,x), Pow(x,2), Relu, LeakyRelu, Sigmoid, Tanh, Gelu, Softplus, Identity, Dropout, trailing Softmax/LogSoftmax/ArgMax",
                ))
            }
        }
        ch.cur = out;
        final_output = ch.cur.clone();
    }
    ch.flush();
    if post.is_empty() {
        he_output = ch.cur.clone();
    }
    let _ = side;
    if !ch.stages.iter().any(|s| matches!(s, Stage::Linear { .. })) {
        return Err(CompileError::BadOnnx("the model has no linear layer".into()));
    }
    Ok(Imported {
        input_name: inp.name.clone(),
        input_shape: shape,
        stages: ch.stages,
        he_output,
        final_output,
        postprocess: post,
        notes: ch.notes,
    })
}
