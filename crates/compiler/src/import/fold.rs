//! Constant propagation: nodes whose inputs are all known tensors (initializers,
//! `Constant` nodes, the `Shape` of a computed tensor) are evaluated at import, so the
//! shape arithmetic exporters write — PyTorch's `x.view(x.size(0), -1)` as
//! Shape→Gather→Unsqueeze→Concat→Reshape, `DequantizeLinear` of int8 weights — becomes
//! plain initializers before any op handler sees it.

use crate::onnx::{Node, Tensor};

/// Row-major strides of `dims`.
pub(crate) fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for k in (0..dims.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * dims[k + 1];
    }
    s
}

pub(crate) fn udims(t: &Tensor) -> Vec<usize> {
    t.dims.iter().map(|&d| d as usize).collect()
}

/// Normalises a possibly negative axis against `rank`.
pub(crate) fn axis(a: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    (0..r.max(1)).contains(&v).then_some(v as usize)
}

/// Numpy broadcasting of two shapes.
pub(crate) fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let get = |d: &[usize], k: usize| if k + d.len() >= r { d[k + d.len() - r] } else { 1 };
    (0..r)
        .map(|k| match (get(a, k), get(b, k)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// The flat index into a tensor of `dims` (right-aligned, broadcast) for output index `idx` of shape `out`.
pub(crate) fn bcast_index(idx: &[usize], out: &[usize], dims: &[usize]) -> usize {
    let off = out.len() - dims.len();
    let st = strides(dims);
    dims.iter().enumerate().map(|(k, &d)| if d == 1 { 0 } else { idx[k + off] * st[k] }).sum()
}

pub(crate) fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for k in (0..dims.len()).rev() {
        if dims[k] > 0 {
            idx[k] = i % dims[k];
            i /= dims[k];
        }
    }
    idx
}

fn binary(a: &Tensor, b: &Tensor, f: impl Fn(f64, f64) -> f64) -> Result<Tensor, String> {
    let (da, db) = (udims(a), udims(b));
    let out = broadcast_shape(&da, &db).ok_or_else(|| format!("shapes {da:?} and {db:?} do not broadcast"))?;
    let n: usize = out.iter().product();
    let data = (0..n)
        .map(|i| {
            let idx = unravel(i, &out);
            f(a.data[bcast_index(&idx, &out, &da)], b.data[bcast_index(&idx, &out, &db)])
        })
        .collect();
    Ok(Tensor::new(out.iter().map(|&d| d as i64).collect(), data))
}

fn ints(t: &Tensor) -> Vec<i64> {
    t.data.iter().map(|&v| v as i64).collect()
}

/// The axes of Unsqueeze/Squeeze/ReduceMean: the attribute before opset 13/18, the second input since.
fn axes_of(n: &Node, inp: &[Option<&Tensor>]) -> Option<Vec<i64>> {
    n.attr_ints("axes").map(|v| v.to_vec()).or_else(|| inp.get(1).copied().flatten().map(ints))
}

/// Evaluates `n` on known inputs (`None` for an absent optional input). `Ok(None)`: the op
/// cannot be folded; `Err`: it can, but these inputs are wrong.
pub(crate) fn fold(n: &Node, inp: &[Option<&Tensor>]) -> Result<Option<Vec<Tensor>>, String> {
    let x = |k: usize| inp.get(k).copied().flatten().ok_or_else(|| format!("input {k} is missing"));
    let one = |t: Tensor| Ok(Some(vec![t]));
    match n.op_type.as_str() {
        "Identity" => one(x(0)?.clone()),
        "Cast" => {
            let t = x(0)?;
            let to = n.attr_i("to").unwrap_or(1);
            let data = match to {
                // Integer targets truncate toward zero; bool is "non-zero".
                2..=7 | 12 | 13 => t.data.iter().map(|v| v.trunc()).collect(),
                9 => t.data.iter().map(|&v| (v != 0.0) as u8 as f64).collect(),
                _ => t.data.clone(),
            };
            one(Tensor::new(t.dims.clone(), data))
        }
        "Shape" => one(shape_of(n, &x(0)?.dims)),
        "Size" => one(Tensor::new(vec![], vec![x(0)?.data.len() as f64])),
        "Gather" => {
            let (d, ix) = (x(0)?, x(1)?);
            let dd = udims(d);
            let ax = axis(n.attr_i("axis").unwrap_or(0), dd.len()).ok_or("axis out of range")?;
            let (outer, len, inner) =
                (dd[..ax].iter().product::<usize>(), dd[ax], dd[ax + 1..].iter().product::<usize>());
            let mut data = Vec::new();
            for o in 0..outer {
                for &i in &ix.data {
                    let i = if i < 0.0 { i as i64 + len as i64 } else { i as i64 };
                    if i < 0 || i as usize >= len {
                        return Err(format!("index {i} out of range {len}"));
                    }
                    let base = (o * len + i as usize) * inner;
                    data.extend_from_slice(&d.data[base..base + inner]);
                }
            }
            let mut dims: Vec<i64> = d.dims[..ax].to_vec();
            dims.extend(&ix.dims);
            dims.extend(&d.dims[ax + 1..]);
            one(Tensor::new(dims, data))
        }
        "Unsqueeze" => {
            let t = x(0)?;
            let axes = axes_of(n, inp).ok_or("axes missing")?;
            let r = t.dims.len() + axes.len();
            let mut ax: Vec<usize> =
                axes.iter().map(|&a| axis(a, r).ok_or("axis out of range")).collect::<Result<_, _>>()?;
            ax.sort_unstable();
            let mut dims = t.dims.clone();
            for a in ax {
                dims.insert(a.min(dims.len()), 1);
            }
            one(Tensor::new(dims, t.data.clone()))
        }
        "Squeeze" => {
            let t = x(0)?;
            let dims = match axes_of(n, inp) {
                Some(axes) => {
                    let ax: Vec<usize> = axes.iter().filter_map(|&a| axis(a, t.dims.len())).collect();
                    t.dims.iter().enumerate().filter(|(k, _)| !ax.contains(k)).map(|(_, &d)| d).collect()
                }
                None => t.dims.iter().copied().filter(|&d| d != 1).collect(),
            };
            one(Tensor::new(dims, t.data.clone()))
        }
        "Concat" => {
            let ts: Vec<&Tensor> = (0..inp.len()).map(x).collect::<Result<_, _>>()?;
            let rank = ts.first().map(|t| t.dims.len()).unwrap_or(1);
            let ax = axis(n.attr_i("axis").unwrap_or(0), rank).ok_or("axis out of range")?;
            let outer: usize = udims(ts[0])[..ax].iter().product();
            let mut data = Vec::new();
            let mut total = 0i64;
            for o in 0..outer {
                for t in &ts {
                    let d = udims(t);
                    let chunk: usize = d[ax..].iter().product();
                    data.extend_from_slice(&t.data[o * chunk..(o + 1) * chunk]);
                }
            }
            for t in &ts {
                total += t.dims.get(ax).copied().unwrap_or(1);
            }
            let mut dims = ts[0].dims.clone();
            if dims.is_empty() {
                dims = vec![total];
            } else {
                dims[ax] = total;
            }
            one(Tensor::new(dims, data))
        }
        "Reshape" => {
            let (t, s) = (x(0)?, x(1)?);
            let want = reshape_dims(&t.dims, &ints(s), n.attr_i("allowzero").unwrap_or(0) == 1)?;
            one(Tensor::new(want, t.data.clone()))
        }
        "Flatten" => {
            let t = x(0)?;
            let ax = axis(n.attr_i("axis").unwrap_or(1), t.dims.len() + 1).ok_or("axis out of range")?;
            let a: i64 = t.dims[..ax].iter().product();
            let b: i64 = t.dims[ax..].iter().product();
            one(Tensor::new(vec![a, b], t.data.clone()))
        }
        "Transpose" => {
            let t = x(0)?;
            let d = udims(t);
            let perm: Vec<usize> = match n.attr_ints("perm") {
                Some(p) => p.iter().map(|&v| v as usize).collect(),
                None => (0..d.len()).rev().collect(),
            };
            let src = transpose_index(&d, &perm)?;
            let dims = perm.iter().map(|&p| t.dims[p]).collect();
            one(Tensor::new(dims, src.iter().map(|&i| t.data[i]).collect()))
        }
        "Slice" => {
            let t = x(0)?;
            let d = udims(t);
            let src = slice_index(
                &d,
                &ints(x(1)?),
                &ints(x(2)?),
                inp.get(3).copied().flatten().map(ints),
                inp.get(4).copied().flatten().map(ints),
            )?;
            one(Tensor::new(src.1.iter().map(|&v| v as i64).collect(), src.0.iter().map(|&i| t.data[i]).collect()))
        }
        "Add" => one(binary(x(0)?, x(1)?, |a, b| a + b)?),
        "Sub" => one(binary(x(0)?, x(1)?, |a, b| a - b)?),
        "Mul" => one(binary(x(0)?, x(1)?, |a, b| a * b)?),
        "Div" => one(binary(x(0)?, x(1)?, |a, b| a / b)?),
        "Pow" => one(binary(x(0)?, x(1)?, f64::powf)?),
        "Max" if inp.len() == 2 => one(binary(x(0)?, x(1)?, f64::max)?),
        "Min" if inp.len() == 2 => one(binary(x(0)?, x(1)?, f64::min)?),
        "Equal" => one(binary(x(0)?, x(1)?, |a, b| (a == b) as u8 as f64)?),
        "Neg" | "Sqrt" | "Reciprocal" | "Abs" | "Floor" | "Ceil" | "Exp" | "Log" => {
            let t = x(0)?;
            let f: fn(f64) -> f64 = match n.op_type.as_str() {
                "Neg" => |v| -v,
                "Sqrt" => f64::sqrt,
                "Reciprocal" => |v| 1.0 / v,
                "Abs" => f64::abs,
                "Floor" => f64::floor,
                "Ceil" => f64::ceil,
                "Exp" => f64::exp,
                _ => f64::ln,
            };
            one(Tensor::new(t.dims.clone(), t.data.iter().map(|&v| f(v)).collect()))
        }
        "Where" => {
            let (c, a, b) = (x(0)?, x(1)?, x(2)?);
            let ab = binary(a, b, |p, _| p)?;
            let ba = binary(b, a, |p, _| p)?;
            let mask = binary(c, &ab, |m, _| m)?;
            let data = (0..ab.data.len()).map(|i| if mask.data[i] != 0.0 { ab.data[i] } else { ba.data[i] }).collect();
            one(Tensor::new(ab.dims, data))
        }
        "ConstantOfShape" => {
            let dims = ints(x(0)?);
            let v =
                n.attrs.get("value").and_then(|a| a.t.as_ref()).and_then(|t| t.data.first().copied()).unwrap_or(0.0);
            let count: usize = dims.iter().map(|&d| d.max(0) as usize).product();
            one(Tensor::new(dims, vec![v; count]))
        }
        "Range" => {
            let (s, l, d) = (x(0)?.data[0], x(1)?.data[0], x(2)?.data[0]);
            if d == 0.0 {
                return Err("Range with delta 0".into());
            }
            let count = (((l - s) / d).ceil().max(0.0) as usize).min(1 << 24);
            one(Tensor::vector((0..count).map(|i| s + i as f64 * d).collect()))
        }
        "DequantizeLinear" => {
            let (q, sc) = (x(0)?, x(1)?);
            let zp = inp.get(2).copied().flatten();
            let d = udims(q);
            let per_axis = sc.data.len() > 1;
            let ax =
                if per_axis { axis(n.attr_i("axis").unwrap_or(1), d.len()).ok_or("axis out of range")? } else { 0 };
            let inner: usize = if per_axis { d[ax + 1..].iter().product() } else { 1 };
            let len = if per_axis { d[ax] } else { 1 };
            if per_axis && sc.data.len() != len {
                return Err(format!("{} scales for axis {ax} of length {len}", sc.data.len()));
            }
            let data = q
                .data
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let c = if per_axis { (i / inner) % len } else { 0 };
                    let z = zp.map(|z| z.data.get(c).copied().unwrap_or(0.0)).unwrap_or(0.0);
                    (v - z) * sc.data[c]
                })
                .collect();
            one(Tensor::new(q.dims.clone(), data))
        }
        _ => Ok(None),
    }
}

/// `Shape` (opset 15's `start`/`end` included) of a tensor of `dims`.
pub(crate) fn shape_of(n: &Node, dims: &[i64]) -> Tensor {
    let r = dims.len() as i64;
    let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let s = clampi(n.attr_i("start").unwrap_or(0));
    let e = clampi(n.attr_i("end").unwrap_or(r));
    Tensor::vector(dims[s..e.max(s)].iter().map(|&d| d as f64).collect())
}

/// Reshape's target with its 0 (copy) and −1 (infer) entries resolved.
pub(crate) fn reshape_dims(from: &[i64], want: &[i64], allowzero: bool) -> Result<Vec<i64>, String> {
    let total: i64 = from.iter().product();
    let mut out: Vec<i64> = want
        .iter()
        .enumerate()
        .map(|(k, &d)| if d == 0 && !allowzero { from.get(k).copied().unwrap_or(1) } else { d })
        .collect();
    let known: i64 = out.iter().filter(|&&d| d >= 0).product();
    if let Some(p) = out.iter().position(|&d| d == -1) {
        if known == 0 || total % known != 0 {
            return Err(format!("cannot reshape {from:?} to {want:?}"));
        }
        out[p] = total / known;
    }
    if out.iter().product::<i64>() != total {
        return Err(format!("cannot reshape {from:?} to {want:?}"));
    }
    Ok(out)
}

/// For each output element of `Transpose(perm)` of a tensor of `dims`, its source index.
pub(crate) fn transpose_index(dims: &[usize], perm: &[usize]) -> Result<Vec<usize>, String> {
    let mut seen = vec![false; dims.len()];
    if perm.len() != dims.len() || perm.iter().any(|&p| p >= dims.len() || std::mem::replace(&mut seen[p], true)) {
        return Err(format!("perm {perm:?} is not a permutation of {} axes", dims.len()));
    }
    let out: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
    let st = strides(dims);
    let n: usize = dims.iter().product();
    Ok((0..n)
        .map(|i| {
            let idx = unravel(i, &out);
            idx.iter().zip(perm).map(|(&v, &p)| v * st[p]).sum()
        })
        .collect())
}

/// `Slice` of a tensor of `dims`: the source index of each output element, and the output dims.
pub(crate) fn slice_index(
    dims: &[usize],
    starts: &[i64],
    ends: &[i64],
    axes: Option<Vec<i64>>,
    steps: Option<Vec<i64>>,
) -> Result<(Vec<usize>, Vec<usize>), String> {
    let r = dims.len();
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err("starts, ends, axes and steps differ in length".into());
    }
    // Per axis: the source coordinates kept, in order.
    let mut keep: Vec<Vec<usize>> = dims.iter().map(|&d| (0..d).collect()).collect();
    for k in 0..starts.len() {
        let a = axis(axes[k], r).ok_or("axis out of range")?;
        let d = dims[a] as i64;
        let st = steps[k];
        if st == 0 {
            return Err("step 0".into());
        }
        let fix = |v: i64, lo: i64, hi: i64| (if v < 0 { v + d } else { v }).clamp(lo, hi);
        let (s, e) = if st > 0 {
            (fix(starts[k], 0, d), fix(ends[k], 0, d))
        } else {
            (fix(starts[k], -1, d - 1), fix(ends[k], -1, d - 1))
        };
        let mut v = vec![];
        let mut i = s;
        while (st > 0 && i < e) || (st < 0 && i > e) {
            v.push(i as usize);
            i += st;
        }
        keep[a] = v;
    }
    let out: Vec<usize> = keep.iter().map(Vec::len).collect();
    let st = strides(dims);
    let n: usize = out.iter().product();
    let src = (0..n)
        .map(|i| {
            let idx = unravel(i, &out);
            idx.iter().enumerate().map(|(k, &v)| keep[k][v] * st[k]).sum()
        })
        .collect();
    Ok((src, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::Attribute;

    fn node(op: &str, attrs: &[(&str, Attribute)]) -> Node {
        let mut n = Node { op_type: op.into(), ..Default::default() };
        for (k, a) in attrs {
            n.attrs.insert((*k).into(), a.clone());
        }
        n
    }

    #[test]
    fn folds_the_pytorch_view_shape_chain() {
        // x.view(x.size(0), -1) on a [1, 4, 3, 3] tensor: Shape → Gather(0) → Unsqueeze → Concat([-1]).
        let sh = shape_of(&node("Shape", &[]), &[1, 4, 3, 3]);
        assert_eq!(sh.data, vec![1.0, 4.0, 3.0, 3.0]);
        let g = fold(&node("Gather", &[]), &[Some(&sh), Some(&Tensor::new(vec![], vec![0.0]))]).unwrap().unwrap();
        assert_eq!((g[0].dims.clone(), g[0].data.clone()), (vec![], vec![1.0]));
        let axes = Attribute { ints: vec![0], ..Default::default() };
        let u = fold(&node("Unsqueeze", &[("axes", axes)]), &[Some(&g[0])]).unwrap().unwrap();
        assert_eq!(u[0].dims, vec![1]);
        let c = fold(&node("Concat", &[]), &[Some(&u[0]), Some(&Tensor::vector(vec![-1.0]))]).unwrap().unwrap();
        assert_eq!(c[0].data, vec![1.0, -1.0]);
        assert_eq!(reshape_dims(&[1, 4, 3, 3], &[1, -1], false).unwrap(), vec![1, 36]);
    }

    #[test]
    fn dequantizes_per_channel_with_zero_points() {
        let q = Tensor::new(vec![2, 2], vec![-128.0, 127.0, 10.0, 20.0]);
        let s = Tensor::vector(vec![0.5, 0.25]);
        let z = Tensor::vector(vec![0.0, 10.0]);
        let ax = Attribute { i: Some(0), ..Default::default() };
        let d = fold(&node("DequantizeLinear", &[("axis", ax)]), &[Some(&q), Some(&s), Some(&z)]).unwrap().unwrap();
        assert_eq!(d[0].data, vec![-64.0, 63.5, 0.0, 2.5]);
    }

    #[test]
    fn transposes_and_slices_like_numpy() {
        // [[0,1,2],[3,4,5]]ᵀ = [[0,3],[1,4],[2,5]]
        assert_eq!(transpose_index(&[2, 3], &[1, 0]).unwrap(), vec![0, 3, 1, 4, 2, 5]);
        assert!(transpose_index(&[2, 3], &[0, 0]).is_err());
        // x[:, 1:] of 2×3, and a reversed slice.
        let (src, out) = slice_index(&[2, 3], &[1], &[i64::MAX], Some(vec![1]), None).unwrap();
        assert_eq!((src, out), (vec![1, 2, 4, 5], vec![2, 2]));
        let (src, _) = slice_index(&[4], &[-1], &[i64::MIN], None, Some(vec![-1])).unwrap();
        assert_eq!(src, vec![3, 2, 1, 0]);
    }
}
