//! A small, strict protobuf reader for the parts of ONNX the compiler needs. Every
//! length is checked against the bytes that remain; malformed input is an error.

use std::collections::HashMap;

use crate::CompileError;

#[derive(Clone, Debug, Default)]
pub struct Tensor {
    pub name: String,
    pub dims: Vec<i64>,
    pub data: Vec<f64>,
    /// ONNX's TensorProto data type (1 float, 2 uint8, 3 int8, 7 int64, …).
    pub dtype: i64,
}

impl Tensor {
    /// A tensor of `dims` holding `data` (row-major).
    pub fn new(dims: Vec<i64>, data: Vec<f64>) -> Self {
        Tensor { name: String::new(), dims, data, dtype: 1 }
    }
    /// A 1-D tensor.
    pub fn vector(data: Vec<f64>) -> Self {
        Tensor::new(vec![data.len() as i64], data)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Attribute {
    pub name: String,
    pub f: Option<f32>,
    pub i: Option<i64>,
    pub s: Option<String>,
    pub t: Option<Tensor>,
    pub floats: Vec<f32>,
    pub ints: Vec<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct Node {
    pub name: String,
    pub op_type: String,
    pub domain: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: HashMap<String, Attribute>,
}

impl Node {
    pub fn attr_i(&self, k: &str) -> Option<i64> {
        self.attrs.get(k).and_then(|a| a.i)
    }
    pub fn attr_f(&self, k: &str) -> Option<f32> {
        self.attrs.get(k).and_then(|a| a.f)
    }
    pub fn attr_ints(&self, k: &str) -> Option<&[i64]> {
        self.attrs.get(k).map(|a| a.ints.as_slice())
    }
    pub fn attr_s(&self, k: &str) -> Option<&str> {
        self.attrs.get(k).and_then(|a| a.s.as_deref())
    }
    /// "Conv 'conv1'" — how errors name a node.
    pub fn describe(&self) -> String {
        if self.name.is_empty() {
            format!("{} node (output '{}')", self.op_type, self.outputs.first().map(String::as_str).unwrap_or("?"))
        } else {
            format!("{} node '{}'", self.op_type, self.name)
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ValueInfo {
    pub name: String,
    /// None for a symbolic dimension (e.g. the batch).
    pub shape: Vec<Option<i64>>,
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub initializers: HashMap<String, Tensor>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    /// The data inputs `passes::inputs` merged into one (empty when there was one).
    pub merged_inputs: Vec<model::InputPart>,
}

#[derive(Clone, Debug, Default)]
pub struct Model {
    pub opset: i64,
    pub graph: Graph,
}

enum Val<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

struct Pb<'a> {
    b: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Pb<'a> {
    fn new(b: &'a [u8], what: &'static str) -> Self {
        Pb { b, pos: 0, what }
    }
    fn err(&self, why: &str) -> CompileError {
        CompileError::BadOnnx(format!("{} at byte {}: {why}", self.what, self.pos))
    }
    fn varint(&mut self) -> Result<u64, CompileError> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = *self.b.get(self.pos).ok_or_else(|| self.err("truncated varint"))?;
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(self.err("varint overflow"));
            }
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint too long"))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], CompileError> {
        if n > self.b.len() - self.pos {
            return Err(
                self.err(&format!("field of {n} bytes but only {} remain (truncated file?)", self.b.len() - self.pos))
            );
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn next(&mut self) -> Result<Option<(u32, Val<'a>)>, CompileError> {
        if self.pos >= self.b.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = (key >> 3) as u32;
        if field == 0 {
            return Err(self.err("field number 0"));
        }
        let v = match key & 7 {
            0 => Val::Varint(self.varint()?),
            1 => Val::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().unwrap())),
            2 => {
                let n = self.varint()?;
                let n = usize::try_from(n).map_err(|_| self.err("length overflow"))?;
                Val::Bytes(self.take(n)?)
            }
            5 => Val::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().unwrap())),
            w => return Err(self.err(&format!("unsupported wire type {w}"))),
        };
        Ok(Some((field, v)))
    }
}

fn string(b: &[u8]) -> Result<String, CompileError> {
    String::from_utf8(b.to_vec()).map_err(|_| CompileError::BadOnnx("string field is not UTF-8".into()))
}

fn push_ints(v: Val, out: &mut Vec<i64>) -> Result<(), CompileError> {
    match v {
        Val::Varint(x) => out.push(x as i64),
        Val::Bytes(b) => {
            let mut p = Pb::new(b, "packed ints");
            while p.pos < b.len() {
                out.push(p.varint()? as i64);
            }
        }
        _ => return Err(CompileError::BadOnnx("integer list has the wrong wire type".into())),
    }
    Ok(())
}

fn push_f32(v: Val, out: &mut Vec<f32>) -> Result<(), CompileError> {
    match v {
        Val::Fixed32(x) => out.push(f32::from_bits(x)),
        Val::Bytes(b) => {
            if b.len() % 4 != 0 {
                return Err(CompileError::BadOnnx("packed floats not a multiple of 4 bytes".into()));
            }
            out.extend(b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())));
        }
        _ => return Err(CompileError::BadOnnx("float list has the wrong wire type".into())),
    }
    Ok(())
}

fn tensor(b: &[u8]) -> Result<Tensor, CompileError> {
    let mut p = Pb::new(b, "TensorProto");
    let mut t = Tensor::default();
    let mut dtype = 1i64;
    let (mut floats, mut ints, mut doubles, mut raw) = (Vec::new(), Vec::new(), Vec::new(), None);
    while let Some((f, v)) = p.next()? {
        match f {
            1 => push_ints(v, &mut t.dims)?,
            2 => {
                if let Val::Varint(x) = v {
                    dtype = x as i64
                }
            }
            4 => push_f32(v, &mut floats)?,
            5 | 7 | 11 => push_ints(v, &mut ints)?,
            8 => {
                if let Val::Bytes(s) = v {
                    t.name = string(s)?
                }
            }
            9 => {
                if let Val::Bytes(s) = v {
                    raw = Some(s)
                }
            }
            10 => match v {
                Val::Fixed64(x) => doubles.push(f64::from_bits(x)),
                Val::Bytes(s) if s.len() % 8 == 0 => {
                    doubles.extend(s.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())))
                }
                _ => return Err(CompileError::BadOnnx("bad double_data".into())),
            },
            13 | 14 => {
                return Err(CompileError::BadOnnx(format!(
                    "tensor '{}' keeps its data in an external file; save the model with the weights inside (onnx.save(..., save_as_external_data=False))",
                    t.name
                )))
            }
            _ => {}
        }
    }
    t.dtype = dtype;
    if t.dims.iter().any(|&d| d < 0) {
        return Err(CompileError::BadOnnx(format!("tensor '{}' has a negative dimension", t.name)));
    }
    let count = t.dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d as usize));
    let count = count.ok_or_else(|| CompileError::BadOnnx(format!("tensor '{}' is too large", t.name)))?;
    t.data = if let Some(r) = raw {
        match dtype {
            1 => r.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            11 => r.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
            7 => r.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            6 => r.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            // Quantized weights (onnxruntime's quantize_static/quantize_dynamic) and masks.
            2 | 9 => r.iter().map(|&c| c as f64).collect(),
            3 => r.iter().map(|&c| c as i8 as f64).collect(),
            4 => r.chunks_exact(2).map(|c| u16::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            5 => r.chunks_exact(2).map(|c| i16::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            10 => r.chunks_exact(2).map(|c| f16_to_f64(u16::from_le_bytes(c.try_into().unwrap()))).collect(),
            12 => r.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            13 => r.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            d => return Err(CompileError::BadOnnx(format!("tensor '{}' has unsupported data type {d}", t.name))),
        }
    } else if !floats.is_empty() {
        floats.iter().map(|&x| x as f64).collect()
    } else if !doubles.is_empty() {
        doubles
    } else if dtype == 8 {
        // Strings (class labels): only ever read by the client's post-processing, so the
        // encrypted part keeps their positions, not their text.
        (0..count).map(|i| i as f64).collect()
    } else if dtype == 10 {
        // float16 values travel as their bit patterns in int32_data.
        ints.iter().map(|&x| f16_to_f64(x as u16)).collect()
    } else if dtype == 3 {
        ints.iter().map(|&x| x as i8 as f64).collect()
    } else if matches!(dtype, 12 | 13) {
        ints.iter().map(|&x| x as u64 as f64).collect()
    } else {
        ints.iter().map(|&x| x as f64).collect()
    };
    if t.data.len() != count {
        return Err(CompileError::BadOnnx(format!(
            "tensor '{}' has {} values for shape {:?} (truncated?)",
            t.name,
            t.data.len(),
            t.dims
        )));
    }
    Ok(t)
}

/// IEEE half precision to f64 (subnormals, infinities and NaN included).
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

fn attribute(b: &[u8]) -> Result<Attribute, CompileError> {
    let mut p = Pb::new(b, "AttributeProto");
    let mut a = Attribute::default();
    while let Some((f, v)) = p.next()? {
        match (f, v) {
            (1, Val::Bytes(s)) => a.name = string(s)?,
            (2, Val::Fixed32(x)) => a.f = Some(f32::from_bits(x)),
            (3, Val::Varint(x)) => a.i = Some(x as i64),
            (4, Val::Bytes(s)) => a.s = Some(String::from_utf8_lossy(s).into_owned()),
            (5, Val::Bytes(s)) => a.t = Some(tensor(s)?),
            (7, v) => push_f32(v, &mut a.floats)?,
            (8, v) => push_ints(v, &mut a.ints)?,
            _ => {}
        }
    }
    Ok(a)
}

fn node(b: &[u8]) -> Result<Node, CompileError> {
    let mut p = Pb::new(b, "NodeProto");
    let mut n = Node::default();
    while let Some((f, v)) = p.next()? {
        match (f, v) {
            (1, Val::Bytes(s)) => n.inputs.push(string(s)?),
            (2, Val::Bytes(s)) => n.outputs.push(string(s)?),
            (3, Val::Bytes(s)) => n.name = string(s)?,
            (4, Val::Bytes(s)) => n.op_type = string(s)?,
            (5, Val::Bytes(s)) => {
                let a = attribute(s)?;
                n.attrs.insert(a.name.clone(), a);
            }
            (7, Val::Bytes(s)) => n.domain = string(s)?,
            _ => {}
        }
    }
    Ok(n)
}

fn value_info(b: &[u8]) -> Result<ValueInfo, CompileError> {
    let mut p = Pb::new(b, "ValueInfoProto");
    let mut vi = ValueInfo::default();
    while let Some((f, v)) = p.next()? {
        match (f, v) {
            (1, Val::Bytes(s)) => vi.name = string(s)?,
            (2, Val::Bytes(ty)) => {
                let mut tp = Pb::new(ty, "TypeProto");
                while let Some((f, v)) = tp.next()? {
                    if let (1, Val::Bytes(tt)) = (f, v) {
                        let mut tpp = Pb::new(tt, "TypeProto.Tensor");
                        while let Some((f, v)) = tpp.next()? {
                            if let (2, Val::Bytes(sh)) = (f, v) {
                                let mut sp = Pb::new(sh, "TensorShapeProto");
                                while let Some((f, v)) = sp.next()? {
                                    if let (1, Val::Bytes(d)) = (f, v) {
                                        let mut dp = Pb::new(d, "Dimension");
                                        let mut dim = None;
                                        while let Some((f, v)) = dp.next()? {
                                            if let (1, Val::Varint(x)) = (f, v) {
                                                dim = Some(x as i64);
                                            }
                                        }
                                        vi.shape.push(dim);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(vi)
}

fn graph(b: &[u8]) -> Result<Graph, CompileError> {
    let mut p = Pb::new(b, "GraphProto");
    let mut g = Graph::default();
    while let Some((f, v)) = p.next()? {
        match (f, v) {
            (1, Val::Bytes(s)) => g.nodes.push(node(s)?),
            (5, Val::Bytes(s)) => {
                let t = tensor(s)?;
                g.initializers.insert(t.name.clone(), t);
            }
            (11, Val::Bytes(s)) => g.inputs.push(value_info(s)?),
            (12, Val::Bytes(s)) => g.outputs.push(value_info(s)?),
            _ => {}
        }
    }
    Ok(g)
}

/// Parses a serialized ONNX `ModelProto`.
pub fn parse_model(b: &[u8]) -> Result<Model, CompileError> {
    let mut p = Pb::new(b, "ModelProto");
    let mut m = Model::default();
    let mut have_graph = false;
    while let Some((f, v)) = p.next()? {
        match (f, v) {
            (7, Val::Bytes(s)) => {
                m.graph = graph(s)?;
                have_graph = true;
            }
            (8, Val::Bytes(s)) => {
                let mut op = Pb::new(s, "OperatorSetIdProto");
                let (mut domain, mut version) = (String::new(), 0i64);
                while let Some((f, v)) = op.next()? {
                    match (f, v) {
                        (1, Val::Bytes(d)) => domain = string(d)?,
                        (2, Val::Varint(x)) => version = x as i64,
                        _ => {}
                    }
                }
                if domain.is_empty() || domain == "ai.onnx" {
                    m.opset = version;
                }
            }
            _ => {}
        }
    }
    if !have_graph {
        return Err(CompileError::BadOnnx("no graph in the file (is it an ONNX model?)".into()));
    }
    Ok(m)
}

/// One field of a protobuf message as it was encoded: its number, its whole encoding
/// (key and value, to copy unchanged) and, when length-delimited, its payload.
pub(crate) struct RawField<'a> {
    pub number: u32,
    pub encoded: &'a [u8],
    pub payload: Option<&'a [u8]>,
}

/// The fields of one protobuf message in order, for rewriting it (`split`) without
/// re-encoding what does not change.
pub(crate) fn raw_fields<'a>(b: &'a [u8], what: &'static str) -> Result<Vec<RawField<'a>>, CompileError> {
    let mut p = Pb::new(b, what);
    let mut out = Vec::new();
    loop {
        let start = p.pos;
        let Some((number, v)) = p.next()? else { break };
        let payload = match v {
            Val::Bytes(s) => Some(s),
            _ => None,
        };
        out.push(RawField { number, encoded: &b[start..p.pos], payload });
    }
    Ok(out)
}
