//! Split inference (`--split-at NODE`): the ONNX graph cut in two at one tensor. The
//! prefix (every node the cut tensor depends on) becomes a standalone ONNX model that the
//! client runs in clear; the suffix (the rest, reading the cut tensor as its input) is
//! compiled like any model. Both are written as ONNX `ModelProto`s by copying the
//! original's encoded nodes and initializers (nothing re-encoded that does not change).
//!
//! A cut must leave one tensor carrying everything the suffix needs: a suffix node that
//! reads the model's input or another tensor computed before the cut (a residual edge
//! crossing it) is refused, naming the node, as is a prefix whose shapes depend on values.

use std::collections::{HashMap, HashSet};

use model::prefix::Prefix;

use crate::npy::Array;
use crate::onnx::{self, raw_fields, RawField};
use crate::{CompileError, Compiled, Data, Options};

/// ONNX ops whose output shape depends on their input values: the cut tensor's shape
/// would not be known when the suffix is compiled.
const VALUE_SHAPED: &[&str] =
    &["NonZero", "Unique", "Compress", "NonMaxSuppression", "TopK", "Loop", "If", "Scan", "Range", "ConstantOfShape"];

/// `compile --split-at AT`: the prefix evaluated by the compiler's own f64 interpreter
/// on the calibration (and evaluation) data, the suffix compiled on its outputs, the
/// prefix put into the client spec. The server's model is the suffix: nothing changes there.
pub(crate) fn compile_split(
    onnx_bytes: &[u8],
    data: &Data,
    opts: &Options,
    at: &str,
    progress: &dyn Fn(&str),
) -> Result<Compiled, CompileError> {
    if opts.public_features.is_some() {
        return Err(CompileError::Shape(
            "--split-at and --public-features together: public features index the model's input, which the \
             client's prefix consumes; use one or the other"
                .into(),
        ));
    }
    progress("cutting the graph");
    let sp = split(onnx_bytes, at)?;
    let mut pm = onnx::parse_model(&sp.prefix_probe())?;
    crate::passes::run(&mut pm.graph);
    let listed = sp.prefix_nodes.join(", ");
    let imp = crate::import::import(&pm, opts.maxpool).map_err(|e| {
        CompileError::Shape(format!(
            "--split-at {at}: the prefix ({listed}) cannot be evaluated by the compiler, which calibrates the \
             encrypted part on the prefix's outputs: {e}"
        ))
    })?;
    if !imp.postprocess.is_empty() || imp.output_shape.is_empty() {
        return Err(CompileError::Shape(format!(
            "--split-at {at}: the prefix ({listed}) ends in an op the compiler moves to the client's \
             post-processing or of unknown shape; cut before it"
        )));
    }
    crate::calibrate::check_data(&imp, data)?;
    let through = |a: &Array| -> Array {
        let mut shape = vec![a.rows()];
        shape.extend_from_slice(&imp.output_shape);
        Array { shape, data: (0..a.rows()).flat_map(|r| imp.reference(a.row(r))).collect() }
    };
    let (prefix_onnx, suffix_onnx) = sp.finish(&imp.output_shape);
    let calibration = through(data.calibration);
    let eval = data.eval.map(through);
    // onnxruntime checks the suffix from a file, as it does a whole model.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = std::env::temp_dir().join(format!("heinfer-suffix-{}-{k}.onnx", std::process::id()));
    std::fs::write(&tmp, &suffix_onnx).map_err(|e| CompileError::Io(format!("{}: {e}", tmp.display())))?;
    let suffix_opts = Options { split_at: None, ..opts.clone() };
    let res = crate::compile(
        &suffix_onnx,
        Some(&tmp),
        &Data { calibration: &calibration, eval: eval.as_ref(), labels: data.labels },
        &suffix_opts,
        progress,
    );
    let _ = std::fs::remove_file(&tmp);
    let mut c = res?;
    let n_nodes = sp.prefix_nodes.len();
    let note = format!(
        "split at '{}': the prefix ({listed}; {n_nodes} node{}, {} B of ONNX) runs in the clear on the client, \
         which encrypts only its output '{}' ({} values); the server never sees the input, the prefix's output \
         nor the prefix itself (it is public: it travels in the client spec, SHA-256 checked), and computes \
         only the suffix under encryption",
        sp.cut,
        if n_nodes == 1 { "" } else { "s" },
        prefix_onnx.len(),
        sp.cut,
        imp.output_shape.iter().product::<usize>()
    );
    if let Some(r) = c.model.report.as_mut() {
        r.notes.push(note);
    }
    c.model.client.prefix = Some(Prefix::new(
        sp.input_name.clone(),
        imp.input_shape.clone(),
        sp.cut.clone(),
        sp.prefix_nodes.clone(),
        &prefix_onnx,
    ));
    Ok(c)
}

/// The two halves of a cut graph.
pub struct Split {
    /// The tensor where the graph was cut.
    pub cut: String,
    /// The original model's data input.
    pub input_name: String,
    /// Names (or descriptions) of the nodes that run on the client, in graph order.
    pub prefix_nodes: Vec<String>,
    /// The prefix as ONNX bytes, without its cut output's shape (added by [`Split::finish`]).
    prefix: Parts,
    suffix: Parts,
}

/// What a rewritten model is made of before its boundary tensor's shape is known.
#[derive(Clone)]
struct Parts {
    model_head: Vec<u8>,
    graph_head: Vec<u8>,
    nodes: Vec<u8>,
    initializers: Vec<u8>,
    inputs: Vec<u8>,
    outputs: Vec<u8>,
}

impl Parts {
    fn bytes(&self) -> Vec<u8> {
        let mut g = self.graph_head.clone();
        for part in [&self.nodes, &self.initializers, &self.inputs, &self.outputs] {
            g.extend_from_slice(part);
        }
        let mut m = self.model_head.clone();
        put_bytes(&mut m, 7, &g);
        m
    }
}

impl Split {
    /// The prefix model alone, its output of unknown shape (enough for the compiler's own
    /// import, which computes the shape).
    pub fn prefix_probe(&self) -> Vec<u8> {
        let mut p = self.prefix.clone();
        put_bytes(&mut p.outputs, 12, &value_info(&self.cut, None));
        p.bytes()
    }

    /// (prefix, suffix) ONNX bytes, the cut tensor declared with `shape` (no batch) on both sides.
    pub fn finish(&self, shape: &[usize]) -> (Vec<u8>, Vec<u8>) {
        let mut p = self.prefix.clone();
        put_bytes(&mut p.outputs, 12, &value_info(&self.cut, Some(shape)));
        let mut s = self.suffix.clone();
        let mut inputs = Vec::new();
        put_bytes(&mut inputs, 11, &value_info(&self.cut, Some(shape)));
        inputs.extend_from_slice(&s.inputs);
        s.inputs = inputs;
        (p.bytes(), s.bytes())
    }
}

/// Cuts `onnx_bytes` at `at`: a node's name (its first output is the cut) or a tensor's.
pub fn split(onnx_bytes: &[u8], at: &str) -> Result<Split, CompileError> {
    let m = onnx::parse_model(onnx_bytes)?;
    let g = &m.graph;
    let refuse = |why: String| CompileError::Shape(format!("--split-at {at}: {why}"));
    let data: Vec<&str> =
        g.inputs.iter().map(|v| v.name.as_str()).filter(|n| !g.initializers.contains_key(*n)).collect();
    let [input] = data[..] else {
        return Err(refuse(format!("the model has {} data inputs; split needs exactly one", data.len())));
    };
    let producer: HashMap<&str, usize> =
        g.nodes.iter().enumerate().flat_map(|(i, n)| n.outputs.iter().map(move |o| (o.as_str(), i))).collect();
    let cut = if let Some(n) = g.nodes.iter().find(|n| !n.name.is_empty() && n.name == at) {
        n.outputs.first().cloned().ok_or_else(|| refuse(format!("{} has no output", n.describe())))?
    } else if producer.contains_key(at) {
        at.to_string()
    } else if at == input {
        return Err(refuse(format!(
            "'{at}' is the model's input: nothing would run on the client; compile without --split-at"
        )));
    } else {
        let names: Vec<String> = g.nodes.iter().map(|n| n.describe()).take(20).collect();
        return Err(refuse(format!(
            "no node and no tensor of the graph is named '{at}'; give one of: {}",
            names.join(", ")
        )));
    };
    if g.outputs.iter().any(|o| o.name == cut) {
        return Err(refuse(format!(
            "'{cut}' is an output of the model: nothing would run under encryption; cut earlier"
        )));
    }
    // Tensors computed from the data input (nodes are in topological order in ONNX).
    let mut dynamic: HashSet<&str> = HashSet::from([input]);
    for n in &g.nodes {
        if n.inputs.iter().any(|i| dynamic.contains(i.as_str())) {
            dynamic.extend(n.outputs.iter().map(String::as_str));
        }
    }
    if !dynamic.contains(cut.as_str()) {
        return Err(refuse(format!("'{cut}' does not depend on the model's input '{input}' (a constant); cut later")));
    }
    // The prefix: every node the cut depends on.
    let mut in_prefix = vec![false; g.nodes.len()];
    let mut stack = vec![producer[cut.as_str()]];
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut in_prefix[i], true) {
            continue;
        }
        stack.extend(g.nodes[i].inputs.iter().filter_map(|t| producer.get(t.as_str()).copied()));
    }
    for (i, n) in g.nodes.iter().enumerate().filter(|(i, _)| in_prefix[*i]) {
        if VALUE_SHAPED.contains(&n.op_type.as_str()) && n.inputs.iter().any(|t| dynamic.contains(t.as_str())) {
            return Err(refuse(format!(
                "{} is before the cut and its output's shape depends on the values it reads: the cut tensor has \
                 no fixed shape to compile the encrypted part for; cut before it",
                n.describe()
            )));
        }
        if let Some(o) = n.outputs.iter().find(|o| g.outputs.iter().any(|go| &go.name == *o)) {
            return Err(refuse(format!(
                "{} (node {i}) computes the model output '{o}' before the cut; the server would never see it",
                n.describe()
            )));
        }
    }
    // The suffix: every other node, plus copies of constant nodes before the cut it reads.
    let mut in_suffix: Vec<bool> = in_prefix.iter().map(|p| !p).collect();
    for (i, n) in g.nodes.iter().enumerate().filter(|(i, _)| !in_prefix[*i]) {
        for t in &n.inputs {
            if t.is_empty() || *t == cut {
                continue;
            }
            if t == input {
                return Err(refuse(format!(
                    "{} (node {i}) reads the model's input '{input}' directly: an edge crosses the cut at '{cut}' \
                     (a skip connection from before it); cut where one tensor carries everything",
                    n.describe()
                )));
            }
            let Some(&p) = producer.get(t.as_str()) else { continue };
            if !in_prefix[p] {
                continue;
            }
            if dynamic.contains(t.as_str()) {
                return Err(refuse(format!(
                    "{} (node {i}) reads '{t}', computed before the cut by {}: a residual edge crosses the cut at \
                     '{cut}'; cut where one tensor carries everything (after the residual addition)",
                    n.describe(),
                    g.nodes[p].describe()
                )));
            }
            // A constant computed before the cut: the suffix computes it again.
            let mut st = vec![p];
            while let Some(q) = st.pop() {
                if !std::mem::replace(&mut in_suffix[q], true) {
                    st.extend(g.nodes[q].inputs.iter().filter_map(|t| producer.get(t.as_str()).copied()));
                }
            }
        }
    }
    if !g.nodes.iter().enumerate().any(|(i, n)| !in_prefix[i] && n.inputs.contains(&cut)) {
        return Err(refuse(format!("no node after the cut reads '{cut}'")));
    }
    let prefix_nodes: Vec<String> = g
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| in_prefix[*i])
        .map(|(_, n)| if n.name.is_empty() { n.describe() } else { n.name.clone() })
        .collect();
    let (prefix, suffix) = rewrite(onnx_bytes, &m, &in_prefix, &in_suffix, input)?;
    Ok(Split { cut, input_name: input.to_string(), prefix_nodes, prefix, suffix })
}

/// The two models' parts, from the original's encoded fields.
fn rewrite(
    b: &[u8],
    m: &onnx::Model,
    in_prefix: &[bool],
    in_suffix: &[bool],
    input: &str,
) -> Result<(Parts, Parts), CompileError> {
    let g = &m.graph;
    let empty = || Parts {
        model_head: vec![],
        graph_head: vec![],
        nodes: vec![],
        initializers: vec![],
        inputs: vec![],
        outputs: vec![],
    };
    let (mut p, mut s) = (empty(), empty());
    let top = raw_fields(b, "ModelProto")?;
    let graph = top.iter().find(|f| f.number == 7).and_then(|f| f.payload);
    let graph = graph.ok_or_else(|| CompileError::BadOnnx("no graph".into()))?;
    for f in top.iter().filter(|f| f.number != 7) {
        p.model_head.extend_from_slice(f.encoded);
        s.model_head.extend_from_slice(f.encoded);
    }
    let reads = |sel: &[bool]| -> HashSet<&str> {
        g.nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| sel[*i])
            .flat_map(|(_, n)| n.inputs.iter().map(String::as_str))
            .collect()
    };
    let (p_reads, s_reads) = (reads(in_prefix), reads(in_suffix));
    let (mut node_i, mut input_i) = (0usize, 0usize);
    for f in raw_fields(graph, "GraphProto")? {
        match f.number {
            1 => {
                let n = &g.nodes[node_i];
                if in_prefix[node_i] {
                    prefix_node(&mut p, n, f.encoded);
                }
                if in_suffix[node_i] {
                    s.nodes.extend_from_slice(f.encoded);
                }
                node_i += 1;
            }
            5 => {
                let name = tensor_name(&f)?;
                if p_reads.contains(name.as_str()) {
                    p.initializers.extend_from_slice(f.encoded);
                }
                if s_reads.contains(name.as_str()) {
                    s.initializers.extend_from_slice(f.encoded);
                }
            }
            11 => {
                let name = &g.inputs[input_i].name;
                input_i += 1;
                if name == input {
                    p.inputs.extend_from_slice(f.encoded);
                } else {
                    // An initializer listed as an input (older exporters).
                    if p_reads.contains(name.as_str()) {
                        p.inputs.extend_from_slice(f.encoded);
                    }
                    if s_reads.contains(name.as_str()) {
                        s.inputs.extend_from_slice(f.encoded);
                    }
                }
            }
            12 => s.outputs.extend_from_slice(f.encoded),
            // value_info (13) names tensors of one half or the other: dropped (optional).
            13 => {}
            _ => {
                p.graph_head.extend_from_slice(f.encoded);
                s.graph_head.extend_from_slice(f.encoded);
            }
        }
    }
    Ok((p, s))
}

/// A prefix node, copied — except ONNX-ML's `Scaler`, written as the standard `Sub` and
/// `Mul` it means, so that any ONNX runtime (tract has no ONNX-ML Scaler) runs the prefix.
fn prefix_node(p: &mut Parts, n: &onnx::Node, encoded: &[u8]) {
    if n.op_type != "Scaler" || n.domain != "ai.onnx.ml" {
        p.nodes.extend_from_slice(encoded);
        return;
    }
    let x = n.inputs.first().cloned().unwrap_or_default();
    let y = n.outputs.first().cloned().unwrap_or_default();
    let floats = |k: &str| n.attrs.get(k).map(|a| a.floats.clone()).unwrap_or_default();
    let (offset, scale) = (floats("offset"), floats("scale"));
    let (off_name, scale_name, mid) = (format!("{y}__offset"), format!("{y}__scale"), format!("{y}__centered"));
    let offset = if offset.is_empty() { vec![0.0] } else { offset };
    let scale = if scale.is_empty() { vec![1.0] } else { scale };
    put_bytes(&mut p.initializers, 5, &tensor_f32(&off_name, &offset));
    put_bytes(&mut p.initializers, 5, &tensor_f32(&scale_name, &scale));
    put_bytes(&mut p.nodes, 1, &node(&format!("{y}__sub"), "Sub", &[&x, &off_name], &mid));
    put_bytes(&mut p.nodes, 1, &node(&format!("{y}__mul"), "Mul", &[&mid, &scale_name], &y));
}

fn tensor_name(f: &RawField) -> Result<String, CompileError> {
    let fields = raw_fields(f.payload.unwrap_or_default(), "TensorProto")?;
    let name = fields.iter().find(|t| t.number == 8).and_then(|t| t.payload).unwrap_or_default();
    Ok(String::from_utf8_lossy(name).into_owned())
}

// --- a minimal protobuf writer for the few messages a split adds ---

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u32, payload: &[u8]) {
    put_varint(out, (u64::from(field) << 3) | 2);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

fn put_uint(out: &mut Vec<u8>, field: u32, v: u64) {
    put_varint(out, u64::from(field) << 3);
    put_varint(out, v);
}

/// ValueInfoProto of a float tensor [N, shape…] (a symbolic batch), or of unknown shape.
fn value_info(name: &str, shape: Option<&[usize]>) -> Vec<u8> {
    let mut tensor_type = Vec::new();
    put_uint(&mut tensor_type, 1, 1); // elem_type FLOAT
    if let Some(shape) = shape {
        let mut sh = Vec::new();
        let mut batch = Vec::new();
        put_bytes(&mut batch, 2, b"N");
        put_bytes(&mut sh, 1, &batch);
        for &d in shape {
            let mut dim = Vec::new();
            put_uint(&mut dim, 1, d as u64);
            put_bytes(&mut sh, 1, &dim);
        }
        put_bytes(&mut tensor_type, 2, &sh);
    }
    let mut ty = Vec::new();
    put_bytes(&mut ty, 1, &tensor_type);
    let mut vi = Vec::new();
    put_bytes(&mut vi, 1, name.as_bytes());
    put_bytes(&mut vi, 2, &ty);
    vi
}

fn node(name: &str, op: &str, inputs: &[&str], output: &str) -> Vec<u8> {
    let mut n = Vec::new();
    for i in inputs {
        put_bytes(&mut n, 1, i.as_bytes());
    }
    put_bytes(&mut n, 2, output.as_bytes());
    put_bytes(&mut n, 3, name.as_bytes());
    put_bytes(&mut n, 4, op.as_bytes());
    n
}

fn tensor_f32(name: &str, v: &[f32]) -> Vec<u8> {
    let mut t = Vec::new();
    put_uint(&mut t, 1, v.len() as u64);
    put_uint(&mut t, 2, 1);
    put_bytes(&mut t, 8, name.as_bytes());
    let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    put_bytes(&mut t, 9, &raw);
    t
}
