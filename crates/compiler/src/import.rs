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
    /// GELU, x·Φ(x) (erf form).
    Gelu,
    /// GELU's tanh approximation, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    GeluTanh,
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
            ActFn::GeluTanh => 0.5 * x * (1.0 + (GELU_TANH_C * (x + 0.044715 * x * x * x)).tanh()),
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
            ActFn::GeluTanh => "gelu_tanh".into(),
            ActFn::Softplus => "softplus".into(),
            ActFn::Square => "square".into(),
        }
    }
}

/// √(2/π), the constant of GELU's tanh form.
const GELU_TANH_C: f64 = 0.797_884_560_802_865_4;

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
    /// x ↦ self(x) + sign·other(x) (both over the same input).
    pub fn plus(&self, other: &Affine, sign: f64) -> Affine {
        let rows = self
            .rows
            .iter()
            .zip(&other.rows)
            .map(|(r, o)| {
                let mut acc: std::collections::BTreeMap<u32, f64> = r.iter().copied().collect();
                for &(i, w) in o {
                    *acc.entry(i).or_insert(0.0) += sign * w;
                }
                acc.into_iter().filter(|e| e.1 != 0.0).collect()
            })
            .collect();
        let bias = self.bias.iter().zip(&other.bias).map(|(a, b)| a + sign * b).collect();
        Affine { n_in: self.n_in, rows, bias }
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

/// One step of the imported network. Values are numbered: value 0 is the model's
/// input and stage `i` produces value `i + 1`; every stage names the value(s) it reads,
/// so branches and residual connections form a DAG (in topological order).
#[derive(Clone, Debug)]
pub enum Stage {
    Linear {
        name: String,
        kind: String,
        map: Affine,
        out_shape: Vec<usize>,
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

/// A computed tensor: an affine map (not yet materialised, so that consecutive linear
/// ops fuse) of a value of the stage list.
#[derive(Clone, Debug)]
struct Tv {
    base: usize,
    pending: Option<(Affine, Vec<String>)>,
    shape: Vec<usize>,
}

struct Chain<'a> {
    init: &'a HashMap<String, onnx::Tensor>,
    consts: HashMap<String, onnx::Tensor>,
    vals: HashMap<String, Tv>,
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
    fn shape(&self, name: &str) -> Vec<usize> {
        self.vals.get(name).map(|t| t.shape.clone()).unwrap_or_default()
    }
    /// `out` = a ∘ `input`, fused with whatever is pending on `input`.
    fn push_linear(&mut self, input: &str, out: &str, a: Affine, label: String, shape: Vec<usize>) {
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
    fn materialise(&mut self, name: &str) -> usize {
        let Some(tv) = self.vals.get_mut(name) else { return 0 };
        if let Some((map, names)) = tv.pending.take() {
            let kind = names.join(" + ");
            let nm = names.first().cloned().unwrap_or_default();
            self.stages.push(Stage::Linear { name: nm, kind, map, out_shape: tv.shape.clone(), src: tv.base });
            tv.base = self.stages.len();
        }
        tv.base
    }
    /// A stage reading one value: `out` becomes its result.
    fn push_stage(&mut self, out: &str, st: Stage, shape: Vec<usize>) {
        self.stages.push(st);
        self.vals.insert(out.to_string(), Tv { base: self.stages.len(), pending: None, shape });
    }
    fn elementwise_const(
        &mut self,
        n: &Node,
        input: &str,
        out: &str,
        other: &onnx::Tensor,
        op: &str,
    ) -> Result<(), CompileError> {
        let shape = self.shape(input);
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
        self.push_linear(input, out, a, format!("{} {}", op.to_lowercase(), n.name), shape);
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

/// Ops a GELU written out in elementary ops may use (scalar constants only).
fn is_scalar_elementwise(op: &str) -> bool {
    matches!(op, "Add" | "Sub" | "Mul" | "Div" | "Erf" | "Tanh" | "Pow")
}

/// Finds GELUs written out in elementary ops — PyTorch at opset 13/14 exports
/// `nn.GELU()` as x·0.5·(1 + Erf(x/√2)) (Div, Erf, Add, Mul, Mul) and
/// `nn.GELU(approximate="tanh")` as 0.5·x·(1 + Tanh(√(2/π)·(x + 0.044715·x³))) — and
/// replaces each by one `Gelu` node (attribute `approximate` = "tanh" for the second).
/// A candidate region is a set of element-wise nodes with scalar constants that
/// computes its output from one tensor x, contains an Erf or a Tanh, and whose
/// intermediate tensors are read nowhere else; it is accepted when it agrees with
/// GELU numerically on [−8, 8], whatever the order or association of its ops.
fn fuse_gelu(nodes: &[Node], init: &HashMap<String, onnx::Tensor>, outputs: &[String]) -> Vec<Node> {
    let mut consts: HashMap<&str, f64> = HashMap::new();
    for (k, t) in init {
        if t.data.len() == 1 {
            consts.insert(k.as_str(), t.data[0]);
        }
    }
    let mut producer: HashMap<&str, usize> = HashMap::new();
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if n.op_type == "Constant" {
            if let (Some(o), Some(t)) = (n.outputs.first(), n.attrs.get("value").and_then(|a| a.t.as_ref())) {
                if t.data.len() == 1 {
                    consts.insert(o.as_str(), t.data[0]);
                }
            }
        }
        for o in &n.outputs {
            producer.insert(o.as_str(), i);
        }
        for inp in &n.inputs {
            readers.entry(inp.as_str()).or_default().push(i);
        }
    }
    if !nodes.iter().any(|n| n.op_type == "Erf" || n.op_type == "Tanh") {
        return nodes.to_vec();
    }
    let elementwise = |i: usize| {
        let n = &nodes[i];
        is_scalar_elementwise(&n.op_type)
            && n.domain.is_empty()
            && n.outputs.len() == 1
            && n.inputs.iter().filter(|t| !consts.contains_key(t.as_str())).count() >= 1
    };
    let mut used = vec![false; nodes.len()];
    let mut replace: HashMap<usize, Node> = HashMap::new();
    for y in 0..nodes.len() {
        if used[y] || !elementwise(y) {
            continue;
        }
        // Every non-constant tensor y depends on through element-wise nodes (at most 16 of them).
        let mut cands: Vec<&str> = vec![];
        let mut stack = vec![y];
        let mut seen = std::collections::HashSet::new();
        while let Some(i) = stack.pop() {
            if !seen.insert(i) || seen.len() > 16 {
                continue;
            }
            for t in &nodes[i].inputs {
                if consts.contains_key(t.as_str()) {
                    continue;
                }
                if !cands.contains(&t.as_str()) {
                    cands.push(t.as_str());
                }
                if let Some(&p) = producer.get(t.as_str()) {
                    if elementwise(p) && !used[p] {
                        stack.push(p);
                    }
                }
            }
        }
        for &x in &cands {
            let Some(region) = gelu_region(nodes, y, x, &producer, &consts, &elementwise, &used) else { continue };
            if !region.iter().any(|&i| nodes[i].op_type == "Erf" || nodes[i].op_type == "Tanh") {
                continue;
            }
            // Intermediates are read only inside the region and are no graph output.
            let private = region.iter().filter(|&&i| i != y).all(|&i| {
                let o = nodes[i].outputs[0].as_str();
                !outputs.iter().any(|g| g == o)
                    && readers.get(o).map(|r| r.iter().all(|k| region.contains(k))).unwrap_or(true)
            });
            if !private {
                continue;
            }
            let grid: Vec<f64> = (0..=64).map(|k| -8.0 + 0.25 * k as f64).collect();
            let Some(got) = eval_region(nodes, &region, x, &consts, &grid) else { continue };
            let close =
                |f: ActFn| grid.iter().zip(&got).all(|(&t, &v)| (f.eval(t) - v).abs() <= 1e-4 * (1.0 + t.abs()));
            let approx = if close(ActFn::Gelu) {
                "none"
            } else if close(ActFn::GeluTanh) {
                "tanh"
            } else {
                continue;
            };
            let core = region.iter().find(|&&i| nodes[i].op_type == "Erf" || nodes[i].op_type == "Tanh").unwrap();
            let name =
                if nodes[*core].name.is_empty() { nodes[y].outputs[0].clone() } else { nodes[*core].name.clone() };
            let mut attrs = HashMap::new();
            attrs.insert(
                "approximate".to_string(),
                onnx::Attribute { name: "approximate".into(), s: Some(approx.into()), ..Default::default() },
            );
            replace.insert(
                y,
                Node {
                    name: format!("{name} (GELU from {} ops)", region.len()),
                    op_type: "Gelu".into(),
                    domain: String::new(),
                    inputs: vec![x.to_string()],
                    outputs: nodes[y].outputs.clone(),
                    attrs,
                },
            );
            for &i in &region {
                used[i] = true;
            }
            break;
        }
    }
    nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| match replace.remove(&i) {
            Some(r) => Some(r),
            None if used[i] => None,
            None => Some(n.clone()),
        })
        .collect()
}

/// The element-wise nodes computing node `y`'s output from tensor `x` alone (and
/// scalar constants), in graph order; None when it reads anything else.
fn gelu_region(
    nodes: &[Node],
    y: usize,
    x: &str,
    producer: &HashMap<&str, usize>,
    consts: &HashMap<&str, f64>,
    elementwise: &dyn Fn(usize) -> bool,
    used: &[bool],
) -> Option<Vec<usize>> {
    let mut region = vec![];
    let mut stack = vec![y];
    while let Some(i) = stack.pop() {
        if region.contains(&i) {
            continue;
        }
        if region.len() >= 16 || used[i] || !elementwise(i) {
            return None;
        }
        region.push(i);
        for t in &nodes[i].inputs {
            if t == x || consts.contains_key(t.as_str()) {
                continue;
            }
            stack.push(*producer.get(t.as_str())?);
        }
    }
    region.sort_unstable();
    Some(region)
}

/// The region's output for x = each of `grid`.
fn eval_region(
    nodes: &[Node],
    region: &[usize],
    x: &str,
    consts: &HashMap<&str, f64>,
    grid: &[f64],
) -> Option<Vec<f64>> {
    let mut vals: HashMap<&str, Vec<f64>> = HashMap::new();
    vals.insert(x, grid.to_vec());
    let mut last = vec![];
    for &i in region {
        let n = &nodes[i];
        let arg = |k: usize| -> Option<Vec<f64>> {
            let t = n.inputs.get(k)?.as_str();
            match consts.get(t) {
                Some(&c) => Some(vec![c; grid.len()]),
                None => vals.get(t).cloned(),
            }
        };
        let a = arg(0)?;
        let out: Vec<f64> = match n.op_type.as_str() {
            "Erf" => a.iter().map(|&v| erf(v)).collect(),
            "Tanh" => a.iter().map(|&v| v.tanh()).collect(),
            op => {
                let b = arg(1)?;
                a.iter()
                    .zip(&b)
                    .map(|(&p, &q)| match op {
                        "Add" => p + q,
                        "Sub" => p - q,
                        "Mul" => p * q,
                        "Div" => p / q,
                        _ => p.powf(q),
                    })
                    .collect()
            }
        };
        last = out.clone();
        vals.insert(n.outputs[0].as_str(), out);
    }
    Some(last)
}

const SUPPORTED_OPS: &str = "supported: Gemm, MatMul, Conv, BatchNormalization, AveragePool, GlobalAveragePool, Flatten, Reshape, Add/Sub/Mul/Div by constants, Add/Sub of two computed tensors (residual connections), Mul(x,x), Pow(x,2), Relu, LeakyRelu, Sigmoid, Tanh, Gelu (also as PyTorch's Erf or Tanh subgraph), Softplus, Identity, Dropout, trailing Softmax/LogSoftmax/ArgMax";

/// Imports a parsed ONNX model as a DAG of stages (see [`Stage`]).
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
    let mut ch =
        Chain { init: &g.initializers, consts: HashMap::new(), vals: HashMap::new(), stages: vec![], notes: vec![] };
    ch.vals.insert(inp.name.clone(), Tv { base: 0, pending: None, shape: shape.clone() });
    let mut post: Vec<PostOp> = vec![];
    let mut he_output = inp.name.clone();
    let mut final_output = inp.name.clone();
    let mut last = inp.name.clone();
    let graph_outputs: Vec<String> = g.outputs.iter().map(|o| o.name.clone()).collect();
    let nodes = fuse_gelu(&g.nodes, &g.initializers, &graph_outputs);
    for n in &nodes {
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
                return Err(unsupported(n, ERF_HINT));
            }
            return Err(unsupported(
                n,
                "it reads none of the tensors computed from the model's input (a computation on constants only); fold it into an initializer",
            ));
        }
        let cur = n.inputs[computed[0]].clone();
        let out = n.outputs.first().cloned().unwrap_or_default();
        if !post.is_empty() && !matches!(n.op_type.as_str(), "ArgMax" | "Softmax" | "LogSoftmax" | "Identity" | "Cast")
        {
            return Err(unsupported(n, "only Softmax/LogSoftmax/ArgMax may follow the model's final post-processing"));
        }
        let shape_in = ch.shape(&cur);
        let numel: usize = shape_in.iter().product();
        let other = |ch: &Chain, k: usize| n.inputs.get(k).and_then(|nm| ch.tensor(nm).cloned());
        let alias = |ch: &mut Chain, shape: Vec<usize>| {
            let mut tv = ch.vals[&cur].clone();
            tv.shape = shape;
            ch.vals.insert(out.clone(), tv);
        };
        match n.op_type.as_str() {
            "Identity" | "Dropout" => alias(&mut ch, shape_in.clone()),
            "Flatten" => {
                let axis = n.attr_i("axis").unwrap_or(1);
                if axis != 1 && axis != 0 {
                    return Err(unsupported(n, "Flatten is supported with axis=1 only"));
                }
                alias(&mut ch, vec![numel]);
            }
            "Reshape" | "Squeeze" | "Unsqueeze" => {
                let target = n.inputs.get(1).and_then(|t| ch.tensor(t));
                let new: Vec<usize> =
                    match target {
                        Some(t) if n.op_type == "Reshape" => {
                            let mut dims: Vec<i64> = t.data.iter().map(|&v| v as i64).collect();
                            if dims.first() == Some(&1) || dims.first() == Some(&-1) && dims.len() > 1 {
                                dims.remove(0);
                            }
                            let known: i64 = dims.iter().filter(|&&d| d > 0).product();
                            dims.iter()
                                .map(|&d| {
                                    if d == -1 || d == 0 {
                                        (numel as i64 / known.max(1)) as usize
                                    } else {
                                        d as usize
                                    }
                                })
                                .collect()
                        }
                        _ => vec![numel],
                    };
                if new.iter().product::<usize>() != numel {
                    return Err(CompileError::Shape(format!(
                        "{}: cannot reshape {:?} to {new:?}",
                        n.describe(),
                        shape_in
                    )));
                }
                alias(&mut ch, new);
            }
            "Gemm" | "MatMul" => {
                if computed[0] != 0 || computed.len() > 1 {
                    return Err(unsupported(
                        n,
                        "the weight matrix must be a constant initializer and the activation the left operand",
                    ));
                }
                let b =
                    other(&ch, 1).ok_or_else(|| unsupported(n, "the weight matrix must be a constant initializer"))?;
                let trans_b = n.attr_i("transB").unwrap_or(0) == 1;
                if n.attr_i("transA").unwrap_or(0) == 1 {
                    return Err(unsupported(n, "transA=1 is not supported; the activation must be the left operand"));
                }
                let alpha = n.attr_f("alpha").unwrap_or(1.0) as f64;
                let beta = n.attr_f("beta").unwrap_or(1.0) as f64;
                if b.dims.len() != 2 {
                    return Err(unsupported(n, "the weight must be a 2-D matrix"));
                }
                let (k, mo) = if trans_b {
                    (b.dims[1] as usize, b.dims[0] as usize)
                } else {
                    (b.dims[0] as usize, b.dims[1] as usize)
                };
                if k != numel {
                    return Err(CompileError::Shape(format!(
                        "{}: weight expects {k} inputs, the activation has {numel}",
                        n.describe()
                    )));
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
                    ("Gemm", Some(c)) => broadcast(&c, &[mo])
                        .ok_or_else(|| unsupported(n, "bias shape"))?
                        .iter()
                        .map(|v| beta * v)
                        .collect(),
                    _ => vec![0.0; mo],
                };
                ch.push_linear(&cur, &out, Affine { n_in: k, rows, bias }, format!("dense {k}->{mo}"), vec![mo]);
            }
            "Conv" => {
                let w = other(&ch, 1).ok_or_else(|| unsupported(n, "the kernel must be a constant initializer"))?;
                let b = other(&ch, 2);
                let (a, s) = conv_affine(n, &shape_in, &w, b.as_ref())?;
                let label = format!(
                    "conv {}x{}x{}->{}x{}x{} k{}x{}",
                    shape_in[0], shape_in[1], shape_in[2], s[0], s[1], s[2], w.dims[2], w.dims[3]
                );
                ch.push_linear(&cur, &out, a, label, s);
            }
            "BatchNormalization" => {
                let get = |k: usize| {
                    other(&ch, k).ok_or_else(|| unsupported(n, "BatchNormalization parameters must be initializers"))
                };
                let (sc, bi, mean, var) = (get(1)?, get(2)?, get(3)?, get(4)?);
                let eps = n.attr_f("epsilon").unwrap_or(1e-5) as f64;
                let c = shape_in[0];
                let per = numel / c;
                let mut a = Affine::identity(numel);
                for i in 0..numel {
                    let k = i / per;
                    let s = sc.data[k] / (var.data[k] + eps).sqrt();
                    a.rows[i][0].1 = s;
                    a.bias[i] = bi.data[k] - s * mean.data[k];
                }
                ch.push_linear(&cur, &out, a, "batchnorm (folded)".into(), shape_in.clone());
            }
            "AveragePool" | "GlobalAveragePool" => {
                let (a, s) = pool_affine(n, &shape_in, n.op_type == "GlobalAveragePool")?;
                ch.push_linear(&cur, &out, a, format!("avgpool {:?}->{:?}", shape_in, s), s);
            }
            "MaxPool" => {
                if maxpool == MaxPoolPolicy::Refuse {
                    return Err(unsupported(
                        n,
                        "max is not a polynomial, so CKKS cannot evaluate it; retrain with AveragePool, or pass --maxpool=avg to rewrite it as AveragePool (the report then shows the accuracy cost)",
                    ));
                }
                let (a, s) = pool_affine(n, &shape_in, false)?;
                ch.notes.push(format!("{} rewritten as AveragePool (--maxpool=avg)", n.describe()));
                ch.push_linear(&cur, &out, a, format!("maxpool->avgpool {:?}->{:?}", shape_in, s), s);
            }
            "Add" | "Sub" | "Mul" | "Div" if computed.len() == 2 => {
                let (x, y) = (n.inputs[0].clone(), n.inputs[1].clone());
                if n.op_type == "Mul" && x == y {
                    let src = ch.materialise(&x);
                    let nm = if n.name.is_empty() { out.clone() } else { n.name.clone() };
                    ch.push_stage(&out, Stage::Act { name: nm, f: ActFn::Square, src }, shape_in.clone());
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
                        let whole = |t: &Tv| {
                            t.pending.clone().map(|p| p.0).unwrap_or_else(|| Affine::identity(t.shape.iter().product()))
                        };
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
                        ch.vals.insert(
                            out.clone(),
                            Tv { base: tx.base, pending: Some((ax.plus(&ay, sign), names)), shape: sx },
                        );
                    } else {
                        let a = ch.materialise(&x);
                        let b = ch.materialise(&y);
                        let nm = if n.name.is_empty() { out.clone() } else { n.name.clone() };
                        ch.push_stage(&out, Stage::Add { name: nm, a, b, sub: sign < 0.0, n: sx.iter().product() }, sx);
                    }
                }
            }
            "Add" | "Sub" | "Mul" | "Div" => {
                let oi = if computed[0] == 0 { 1 } else { 0 };
                let t = other(&ch, oi).ok_or_else(|| {
                    unsupported(n, "the other operand is neither a constant nor a tensor computed from the input")
                })?;
                if oi == 0 && matches!(n.op_type.as_str(), "Sub" | "Div") {
                    return Err(unsupported(n, "constant − x and constant / x are not supported"));
                }
                ch.elementwise_const(n, &cur, &out, &t, &n.op_type)?;
            }
            "Pow" => {
                let e = other(&ch, 1).map(|t| t.data.first().copied().unwrap_or(0.0));
                if e != Some(2.0) {
                    return Err(unsupported(n, "only Pow(x, 2) is supported"));
                }
                let src = ch.materialise(&cur);
                ch.push_stage(&out, Stage::Act { name: n.name.clone(), f: ActFn::Square, src }, shape_in.clone());
            }
            "Relu" | "LeakyRelu" | "Sigmoid" | "Tanh" | "Gelu" | "Softplus" => {
                let f = match n.op_type.as_str() {
                    "Relu" => ActFn::Relu,
                    "LeakyRelu" => ActFn::LeakyRelu(n.attr_f("alpha").unwrap_or(0.01) as f64),
                    "Sigmoid" => ActFn::Sigmoid,
                    "Tanh" => ActFn::Tanh,
                    "Gelu" if n.attr_s("approximate") == Some("tanh") => ActFn::GeluTanh,
                    "Gelu" => ActFn::Gelu,
                    _ => ActFn::Softplus,
                };
                // A Sigmoid that ends the graph is post-processing.
                let is_last = g.outputs.iter().any(|o| o.name == out);
                let src = ch.materialise(&cur);
                if f == ActFn::Sigmoid && is_last {
                    he_output = cur.clone();
                    post.push(PostOp::Sigmoid);
                    alias(&mut ch, shape_in.clone());
                } else {
                    let nm = if n.name.is_empty() { out.clone() } else { n.name.clone() };
                    ch.push_stage(&out, Stage::Act { name: nm, f, src }, shape_in.clone());
                }
            }
            "Softmax" | "LogSoftmax" | "ArgMax" => {
                ch.materialise(&cur);
                if post.is_empty() {
                    he_output = cur.clone();
                }
                post.push(match n.op_type.as_str() {
                    "Softmax" => PostOp::Softmax,
                    "LogSoftmax" => PostOp::LogSoftmax,
                    _ => PostOp::ArgMax,
                });
                alias(&mut ch, shape_in.clone());
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
                let scores = n.outputs.get(1).cloned().unwrap_or(out.clone());
                ch.push_linear(&cur, &scores, Affine { n_in: k, rows, bias }, format!("linear {k}->{mo}"), vec![mo]);
                ch.materialise(&scores);
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
                last = scores.clone();
                final_output = scores;
                continue;
            }
            "Scaler" => {
                let off = n.attrs.get("offset").map(|a| a.floats.clone()).unwrap_or_default();
                let sc = n.attrs.get("scale").map(|a| a.floats.clone()).unwrap_or_default();
                let pick =
                    |v: &[f32], i: usize, d: f32| if v.len() == 1 { v[0] } else { v.get(i).copied().unwrap_or(d) };
                let mut a = Affine::identity(numel);
                for i in 0..numel {
                    let (o, s) = (pick(&off, i, 0.0) as f64, pick(&sc, i, 1.0) as f64);
                    a.rows[i][0].1 = s;
                    a.bias[i] = -o * s;
                }
                ch.push_linear(&cur, &out, a, "scaler".into(), shape_in.clone());
            }
            "Normalizer" => {
                // L1 normalisation of probabilities that already sum to 1 (skl2onnx emits it after LOGISTIC).
                if post.is_empty() {
                    return Err(unsupported(n, "Normalizer is supported only after a classifier's probabilities"));
                }
                alias(&mut ch, shape_in.clone());
            }
            "Erf" => return Err(unsupported(n, ERF_HINT)),
            _ => return Err(unsupported(n, &format!("this op is not supported; {SUPPORTED_OPS}"))),
        }
        last = out.clone();
        final_output = out;
    }
    if post.is_empty() {
        he_output = last.clone();
    }
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
        final_output,
        postprocess: post,
        notes: ch.notes,
    })
}

const ERF_HINT: &str = "Erf is supported only inside GELU, x*0.5*(1 + Erf(x/sqrt(2))), as PyTorch exports nn.GELU at opset 13/14 (that subgraph becomes one Gelu activation); this Erf is not part of such a pattern: use nn.GELU, or ReLU";
