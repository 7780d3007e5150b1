//! Ops that only move data: renames, reshapes, and the index maps (Transpose, Pad,
//! Slice, Split, Concat, ReduceMean) that become selection matrices fused into the
//! neighbouring linear layers. Axes here are ONNX's, batch included: a tensor's shape
//! in the chain has no batch dimension, so each op works on [1, ...shape] and the
//! batch axis must come out as it went in.

use std::collections::BTreeMap;

use crate::affine::Affine;
use crate::import::chain::{unsupported, Chain, OpNode, Tv};
use crate::import::fold::{self, axis, slice_index, transpose_index};
use crate::import::registry::OpRegistry;
use crate::import::Stage;
use crate::onnx::Node;
use crate::CompileError;

pub(super) fn register(reg: &mut OpRegistry) {
    reg.register("Identity", identity);
    reg.register("Dropout", identity);
    reg.register("Cast", cast);
    reg.register("Flatten", flatten);
    reg.register("Reshape", reshape);
    reg.register("Squeeze", reshape);
    reg.register("Unsqueeze", reshape);
    reg.register("Transpose", transpose);
    reg.register("Pad", pad);
    reg.register("Slice", slice);
    reg.register("Split", split);
    reg.register("Concat", concat);
    reg.register("ReduceMean", reduce);
    reg.register("ReduceSum", reduce);
    reg.register("ArrayFeatureExtractor", array_feature_extractor);
}

/// ai.onnx.ml's column selection (skl2onnx picks a binary classifier's positive score so).
fn array_feature_extractor(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let n = op.n;
    if op.computed != [0] {
        return Err(unsupported(n, "the indices must be constant"));
    }
    let idx = ints(ch, n, 1, "the indices")?.ok_or_else(|| unsupported(n, "indices missing"))?;
    let last = *op.shape_in.last().unwrap_or(&1);
    let outer = op.numel / last.max(1);
    let mut src = vec![];
    for o in 0..outer {
        for &i in &idx {
            if i < 0 || i as usize >= last {
                return Err(unsupported(n, &format!("index {i} is outside the last axis of length {last}")));
            }
            src.push(Some(o * last + i as usize));
        }
    }
    let mut shape = op.shape_in.clone();
    if let Some(l) = shape.last_mut() {
        *l = idx.len();
    }
    ch.push_linear(&op.cur, &op.out, gather_map(op.numel, &src, 0.0), "array feature extractor".into(), shape);
    Ok(())
}

fn identity(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    ch.alias(op, op.shape_in.clone());
    Ok(())
}

/// skl2onnx casts the input to float first; a cast to an integer type would round,
/// which is not a polynomial.
fn cast(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    match op.n.attr_i("to") {
        Some(1 | 10 | 11 | 16) | None => identity(ch, op),
        Some(t) => Err(unsupported(
            op.n,
            &format!("a cast of a computed tensor to data type {t} rounds its values, which CKKS cannot do; keep the tensor float"),
        )),
    }
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
    if op.computed != [0] {
        return Err(unsupported(
            n,
            "the target shape depends on the input's values; it must be a constant or computed from shapes only (x.view(x.size(0), -1))",
        ));
    }
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

/// [1, ...shape]: the chain's shape with ONNX's batch axis back.
fn full(shape: &[usize]) -> Vec<usize> {
    let mut f = vec![1];
    f.extend_from_slice(shape);
    f
}

/// Drops the batch axis again; refuses an op that moved or resized it.
fn strip(n: &Node, out: &[usize]) -> Result<Vec<usize>, CompileError> {
    if out.first() != Some(&1) {
        return Err(unsupported(
            n,
            "this op would change the batch axis (axis 0); only the other axes may be moved or cut",
        ));
    }
    Ok(out[1..].to_vec())
}

/// out[i] = input[src[i]] (or `fill` where src is None): a selection matrix.
fn gather_map(n_in: usize, src: &[Option<usize>], fill: f64) -> Affine {
    let rows = src.iter().map(|s| s.map(|i| vec![(i as u32, 1.0)]).unwrap_or_default()).collect();
    let bias = src.iter().map(|s| if s.is_some() { 0.0 } else { fill }).collect();
    Affine { n_in, rows, bias }
}

fn ints(ch: &Chain, n: &Node, k: usize, what: &str) -> Result<Option<Vec<i64>>, CompileError> {
    match n.inputs.get(k).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(name) => ch.tensor(name).map(|t| Some(t.data.iter().map(|&v| v as i64).collect())).ok_or_else(|| {
            unsupported(
                n,
                &format!("{what} must be constant (or computed from shapes only), not from the input's values"),
            )
        }),
    }
}

fn transpose(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let f = full(&op.shape_in);
    let perm: Vec<usize> = match op.n.attr_ints("perm") {
        Some(p) => p.iter().map(|&v| v as usize).collect(),
        None => (0..f.len()).rev().collect(),
    };
    let src = transpose_index(&f, &perm).map_err(|e| unsupported(op.n, &e))?;
    let out: Vec<usize> = perm.iter().map(|&p| f[p]).collect();
    let shape = strip(op.n, &out)?;
    let src: Vec<Option<usize>> = src.into_iter().map(Some).collect();
    ch.push_linear(&op.cur, &op.out, gather_map(op.numel, &src, 0.0), format!("transpose {perm:?}"), shape);
    Ok(())
}

fn pad(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let n = op.n;
    let mode = n.attr_s("mode").unwrap_or("constant");
    if mode != "constant" {
        return Err(unsupported(n, &format!("Pad mode '{mode}' is not supported; use constant (zero) padding")));
    }
    let f = full(&op.shape_in);
    let r = f.len();
    let pads = match ints(ch, n, 1, "the pads")? {
        Some(p) => p,
        None => n.attr_ints("pads").map(|v| v.to_vec()).ok_or_else(|| unsupported(n, "pads missing"))?,
    };
    let value =
        n.inputs.get(2).filter(|s| !s.is_empty()).and_then(|t| ch.tensor(t)).and_then(|t| t.data.first().copied());
    let value = value.unwrap_or(n.attr_f("value").unwrap_or(0.0) as f64);
    let axes: Vec<usize> = match ints(ch, n, 3, "the axes")? {
        Some(a) => a
            .iter()
            .map(|&v| axis(v, r).ok_or_else(|| unsupported(n, "axis out of range")))
            .collect::<Result<_, _>>()?,
        None => (0..r).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(unsupported(n, &format!("{} pads for {} axes", pads.len(), axes.len())));
    }
    let (mut begin, mut end) = (vec![0i64; r], vec![0i64; r]);
    for (k, &a) in axes.iter().enumerate() {
        begin[a] = pads[k];
        end[a] = pads[k + axes.len()];
    }
    let out: Vec<usize> = (0..r).map(|k| (f[k] as i64 + begin[k] + end[k]).max(0) as usize).collect();
    let shape = strip(n, &out)?;
    let st = fold::strides(&f);
    let total: usize = out.iter().product();
    let src: Vec<Option<usize>> = (0..total)
        .map(|i| {
            let idx = fold::unravel(i, &out);
            let mut s = 0usize;
            for k in 0..r {
                let v = idx[k] as i64 - begin[k];
                if v < 0 || v >= f[k] as i64 {
                    return None;
                }
                s += v as usize * st[k];
            }
            Some(s)
        })
        .collect();
    ch.push_linear(&op.cur, &op.out, gather_map(op.numel, &src, value), format!("pad {pads:?}"), shape);
    Ok(())
}

fn slice(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let n = op.n;
    let need = |k: usize, w: &str| -> Result<Vec<i64>, CompileError> {
        ints(ch, n, k, w)?.ok_or_else(|| unsupported(n, &format!("{w} missing")))
    };
    let (starts, ends) = (need(1, "starts")?, need(2, "ends")?);
    let (axes, steps) = (ints(ch, n, 3, "axes")?, ints(ch, n, 4, "steps")?);
    let f = full(&op.shape_in);
    let (src, out) = slice_index(&f, &starts, &ends, axes, steps).map_err(|e| unsupported(n, &e))?;
    let shape = strip(n, &out)?;
    let src: Vec<Option<usize>> = src.into_iter().map(Some).collect();
    ch.push_linear(&op.cur, &op.out, gather_map(op.numel, &src, 0.0), "slice".into(), shape);
    Ok(())
}

fn split(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let n = op.n;
    let f = full(&op.shape_in);
    let ax = axis(n.attr_i("axis").unwrap_or(0), f.len()).ok_or_else(|| unsupported(n, "axis out of range"))?;
    if ax == 0 {
        return Err(unsupported(n, "a split along the batch axis is not supported"));
    }
    let k = n.outputs.len();
    let sizes = match ints(ch, n, 1, "the split sizes")? {
        Some(s) => s,
        None => match n.attr_ints("split") {
            Some(s) => s.to_vec(),
            None => {
                let per = f[ax].div_ceil(k.max(1));
                (0..k).map(|i| per.min(f[ax].saturating_sub(i * per)) as i64).collect()
            }
        },
    };
    if sizes.len() != k || sizes.iter().sum::<i64>() != f[ax] as i64 {
        return Err(unsupported(n, &format!("split sizes {sizes:?} do not cover axis {ax} of length {}", f[ax])));
    }
    let mut start = 0i64;
    for (o, &len) in n.outputs.iter().zip(&sizes) {
        let (src, out) =
            slice_index(&f, &[start], &[start + len], Some(vec![ax as i64]), None).map_err(|e| unsupported(n, &e))?;
        start += len;
        let src: Vec<Option<usize>> = src.into_iter().map(Some).collect();
        ch.push_linear(&op.cur, o, gather_map(op.numel, &src, 0.0), "split".into(), out[1..].to_vec());
    }
    Ok(())
}

/// Concat: each part placed into the result by a selection matrix; parts that are maps
/// of one value sum into one affine map, parts of different values are added (one
/// addition of ciphertexts per extra value). Constant parts become bias.
fn concat(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let n = op.n;
    let shapes: Vec<Vec<usize>> = n
        .inputs
        .iter()
        .map(|t| match ch.vals.get(t) {
            Some(tv) => Ok(full(&tv.shape)),
            None => ch
                .tensor(t)
                .map(|c| {
                    let mut d = fold::udims(c);
                    if d.len() + 1 == full(&op.shape_in).len() {
                        d.insert(0, 1);
                    }
                    d
                })
                .ok_or_else(|| unsupported(n, &format!("input '{t}' is neither computed nor constant"))),
        })
        .collect::<Result<_, _>>()?;
    let r = shapes[0].len();
    let ax = axis(n.attr_i("axis").unwrap_or(0), r).ok_or_else(|| unsupported(n, "axis out of range"))?;
    if ax == 0 {
        return Err(unsupported(n, "a concatenation along the batch axis is not supported"));
    }
    for s in &shapes {
        if s.len() != r || (0..r).any(|k| k != ax && s[k] != shapes[0][k]) {
            return Err(unsupported(n, &format!("inputs of shapes {shapes:?} do not concatenate along axis {ax}")));
        }
    }
    let mut out = shapes[0].clone();
    out[ax] = shapes.iter().map(|s| s[ax]).sum();
    let total: usize = out.iter().product();
    let outer: usize = out[..ax].iter().product();
    let inner: usize = out[ax + 1..].iter().product();
    // Per computed value: the summed embedding of its parts; and the constants' bias.
    let mut groups: BTreeMap<usize, (Affine, Vec<String>)> = BTreeMap::new();
    let mut bias = vec![0.0; total];
    let mut off = 0usize;
    for (t, s) in n.inputs.iter().zip(&shapes) {
        let len = s[ax];
        let pos = |o: usize, j: usize, i: usize| (o * out[ax] + off + j) * inner + i;
        if let Some(tv) = ch.vals.get(t).cloned() {
            let n_in: usize = s.iter().product();
            let part = tv.pending.clone().map(|p| p.0).unwrap_or_else(|| Affine::identity(n_in));
            let mut rows = vec![vec![]; total];
            let mut b = vec![0.0; total];
            for o in 0..outer {
                for j in 0..len {
                    for i in 0..inner {
                        let src = (o * len + j) * inner + i;
                        rows[pos(o, j, i)] = part.rows[src].clone();
                        b[pos(o, j, i)] = part.bias[src];
                    }
                }
            }
            let emb = Affine { n_in: part.n_in, rows, bias: b };
            let names = tv.pending.map(|p| p.1).unwrap_or_default();
            match groups.remove(&tv.base) {
                None => groups.insert(tv.base, (emb, names)),
                Some((acc, mut nm)) => {
                    nm.extend(names);
                    groups.insert(tv.base, (acc.plus(&emb, 1.0), nm))
                }
            };
        } else if let Some(c) = ch.tensor(t) {
            for o in 0..outer {
                for j in 0..len {
                    for i in 0..inner {
                        bias[pos(o, j, i)] = c.data[(o * len + j) * inner + i];
                    }
                }
            }
        }
        off += len;
    }
    let shape = out[1..].to_vec();
    let mut values = vec![];
    for (k, (base, (mut map, mut names))) in groups.into_iter().enumerate() {
        if k == 0 {
            for (b, c) in map.bias.iter_mut().zip(&bias) {
                *b += c;
            }
        }
        names.push("concat".into());
        let name = format!("{}#part{k}", op.out);
        ch.vals.insert(name.clone(), Tv { base, pending: Some((map, names)), shape: shape.clone() });
        values.push(name);
    }
    if values.len() == 1 {
        let tv = ch.vals[&values[0]].clone();
        ch.vals.insert(op.out.clone(), tv);
        return Ok(());
    }
    let mut acc = ch.materialise(&values[0]);
    for (k, v) in values.iter().enumerate().skip(1) {
        let b = ch.materialise(v);
        let nm = format!("{} (concat part {k})", if n.name.is_empty() { &op.out } else { &n.name });
        let tmp = format!("{}#sum{k}", op.out);
        ch.push_stage(&tmp, Stage::Add { name: nm, a: acc, b, sub: false, n: total }, shape.clone());
        acc = ch.stages.len();
    }
    let tv = ch.vals[&format!("{}#sum{}", op.out, values.len() - 1)].clone();
    ch.vals.insert(op.out.clone(), tv);
    Ok(())
}

/// ReduceMean/ReduceSum over constant axes (not the batch's).
fn reduce(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let n = op.n;
    let f = full(&op.shape_in);
    let r = f.len();
    let axes = match n.attr_ints("axes").map(|v| v.to_vec()) {
        Some(a) => Some(a),
        None => ints(ch, n, 1, "the axes")?,
    };
    let axes: Vec<usize> = match axes {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|&v| axis(v, r).ok_or_else(|| unsupported(n, "axis out of range")))
            .collect::<Result<_, _>>()?,
        _ if n.attr_i("noop_with_empty_axes") == Some(1) => return identity(ch, op),
        _ => (0..r).collect(),
    };
    if axes.contains(&0) {
        return Err(unsupported(n, "a reduction over the batch axis is not supported"));
    }
    let keep = n.attr_i("keepdims").unwrap_or(1) == 1;
    let red: Vec<usize> = (0..r).map(|k| if axes.contains(&k) { 1 } else { f[k] }).collect();
    let count: usize = axes.iter().map(|&a| f[a]).product();
    let w = if n.op_type == "ReduceMean" { 1.0 / count as f64 } else { 1.0 };
    let n_out: usize = red.iter().product();
    let mut rows = vec![vec![]; n_out];
    let st = fold::strides(&red);
    for i in 0..op.numel {
        let idx = fold::unravel(i, &f);
        let o: usize = (0..r).map(|k| if axes.contains(&k) { 0 } else { idx[k] * st[k] }).sum();
        rows[o].push((i as u32, w));
    }
    let out: Vec<usize> = if keep { red.clone() } else { (0..r).filter(|k| !axes.contains(k)).map(|k| f[k]).collect() };
    let shape = if keep { strip(n, &out)? } else { out[1..].to_vec() };
    let shape = if shape.is_empty() { vec![1] } else { shape };
    let a = Affine { n_in: op.numel, rows, bias: vec![0.0; n_out] };
    ch.push_linear(&op.cur, &op.out, a, format!("{} {axes:?}", n.op_type.to_lowercase()), shape);
    Ok(())
}
