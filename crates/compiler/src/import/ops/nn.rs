//! Linear layers: each becomes an affine map composed onto its input's pending one, so
//! a run of them between two activations costs one packed layer.

use crate::activation::ActFn;
use crate::affine::Affine;
use crate::import::chain::{broadcast, unsupported, Chain, OpNode};
use crate::import::fold::{bcast_index, broadcast_shape, udims, unravel};
use crate::import::registry::OpRegistry;
use crate::import::MaxPoolPolicy;
use crate::import::Stage;
use crate::onnx::{self, Node};
use crate::CompileError;

pub(super) fn register(reg: &mut OpRegistry) {
    reg.register("Gemm", gemm);
    reg.register("MatMul", matmul);
    reg.register("MatMulInteger", matmul_integer);
    reg.register("ConvInteger", conv_integer);
    reg.register("QuantizeLinear", qdq);
    reg.register("DequantizeLinear", qdq);
    reg.register("DynamicQuantizeLinear", dynamic_quantize);
    for op in ["QLinearConv", "QLinearMatMul", "QLinearAdd", "QGemm"] {
        reg.register(op, qoperator);
    }
    reg.register("Conv", conv);
    reg.register("BatchNormalization", batch_norm);
    reg.register("AveragePool", average_pool);
    reg.register("GlobalAveragePool", average_pool);
    reg.register("MaxPool", max_pool);
}

fn gemm(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let (n, numel) = (op.n, op.numel);
    if op.computed[0] != 0 || op.computed.len() > 1 {
        return Err(unsupported(
            n,
            "the weight matrix must be a constant initializer and the activation the left operand",
        ));
    }
    let b = ch.constant(op, 1).ok_or_else(|| unsupported(n, "the weight matrix must be a constant initializer"))?;
    let trans_b = n.attr_i("transB").unwrap_or(0) == 1;
    if n.attr_i("transA").unwrap_or(0) == 1 {
        return Err(unsupported(n, "transA=1 is not supported; the activation must be the left operand"));
    }
    let alpha = n.attr_f("alpha").unwrap_or(1.0) as f64;
    let beta = n.attr_f("beta").unwrap_or(1.0) as f64;
    if b.dims.len() != 2 {
        return Err(unsupported(n, "the weight must be a 2-D matrix"));
    }
    let (k, mo) =
        if trans_b { (b.dims[1] as usize, b.dims[0] as usize) } else { (b.dims[0] as usize, b.dims[1] as usize) };
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
    let bias = match (n.op_type.as_str(), ch.constant(op, 2)) {
        ("Gemm", Some(c)) => {
            broadcast(&c, &[mo]).ok_or_else(|| unsupported(n, "bias shape"))?.iter().map(|v| beta * v).collect()
        }
        _ => vec![0.0; mo],
    };
    ch.push_linear(&op.cur, &op.out, Affine { n_in: k, rows, bias }, format!("dense {k}->{mo}"), vec![mo]);
    Ok(())
}

fn conv(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let (n, shape_in) = (op.n, &op.shape_in);
    let w = ch.constant(op, 1).ok_or_else(|| unsupported(n, "the kernel must be a constant initializer"))?;
    let b = ch.constant(op, 2);
    let (a, s) = conv_affine(n, shape_in, &w, b.as_ref())?;
    let label = format!(
        "conv {}x{}x{}->{}x{}x{} k{}x{}",
        shape_in[0], shape_in[1], shape_in[2], s[0], s[1], s[2], w.dims[2], w.dims[3]
    );
    ch.push_linear(&op.cur, &op.out, a, label, s);
    Ok(())
}

fn batch_norm(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let (n, numel) = (op.n, op.numel);
    let get = |k: usize| {
        ch.constant(op, k).ok_or_else(|| unsupported(n, "BatchNormalization parameters must be initializers"))
    };
    let (sc, bi, mean, var) = (get(1)?, get(2)?, get(3)?, get(4)?);
    let eps = n.attr_f("epsilon").unwrap_or(1e-5) as f64;
    let c = op.shape_in[0];
    let per = numel / c;
    let mut a = Affine::identity(numel);
    for i in 0..numel {
        let k = i / per;
        let s = sc.data[k] / (var.data[k] + eps).sqrt();
        a.rows[i][0].1 = s;
        a.bias[i] = bi.data[k] - s * mean.data[k];
    }
    ch.push_linear(&op.cur, &op.out, a, "batchnorm (folded)".into(), op.shape_in.clone());
    Ok(())
}

fn average_pool(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let (a, s) = pool_affine(op.n, &op.shape_in, op.n.op_type == "GlobalAveragePool")?;
    ch.push_linear(&op.cur, &op.out, a, format!("avgpool {:?}->{:?}", op.shape_in, s), s);
    Ok(())
}

fn max_pool(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let n = op.n;
    match ch.maxpool {
        MaxPoolPolicy::Refuse => Err(unsupported(
            n,
            "max is not a polynomial; pass --maxpool=approx to compute it as a tree of pairwise maxima with a polynomial |x| (costs depth), --maxpool=avg to rewrite it as AveragePool (cheap; the report shows the accuracy cost), or retrain with AveragePool",
        )),
        MaxPoolPolicy::Average => {
            let (a, s) = pool_affine(n, &op.shape_in, false)?;
            ch.notes.push(format!("{} rewritten as AveragePool (--maxpool=avg)", n.describe()));
            ch.push_linear(&op.cur, &op.out, a, format!("maxpool->avgpool {:?}->{:?}", op.shape_in, s), s);
            Ok(())
        }
        MaxPoolPolicy::Approximate => max_tree(ch, op),
    }
}

/// MaxPool as rounds of pairwise maxima, max(a, b) = (a + b)/2 + |a − b|/2: per round
/// one linear map to the differences (fused with what precedes), the polynomial |d|/2,
/// one linear map to the half-sums, and their addition. A window of w elements takes
/// ⌈log2 w⌉ rounds; an odd one out is paired with its window's first element
/// (max(a, b, c) = max(max(a, b), max(c, a))), so every difference is a real one.
fn max_tree(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let n = op.n;
    let (avg, s) = pool_affine(n, &op.shape_in, false)?;
    if n.attr_ints("dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) || n.attr_i("ceil_mode") == Some(1) {
        return Err(unsupported(n, "MaxPool with dilations or ceil_mode is not supported; use --maxpool=avg"));
    }
    // Each output's window, as indices into the current value.
    let mut windows: Vec<Vec<u32>> = avg.rows.iter().map(|r| r.iter().map(|e| e.0).collect()).collect();
    let mut cur = op.cur.clone();
    let mut n_cur = op.numel;
    let mut round = 0;
    if windows.iter().all(|w| w.len() == 1) {
        // 1×1 windows: a selection.
        ch.push_linear(&op.cur, &op.out, avg, "maxpool 1x1".into(), s);
        return Ok(());
    }
    while windows.iter().any(|w| w.len() > 1) {
        round += 1;
        let (mut d_rows, mut s_rows, mut next) = (vec![], vec![], vec![]);
        for w in &windows {
            let mut nw = vec![];
            if w.len() == 1 {
                // Carried as it is: max(a, a) would cost a polynomial at 0.
                nw.push(s_rows.len() as u32);
                s_rows.push(vec![(w[0], 1.0)]);
                d_rows.push(vec![]);
            } else {
                for k in (0..w.len()).step_by(2) {
                    let (a, b) = (w[k], if k + 1 < w.len() { w[k + 1] } else { w[0] });
                    nw.push(s_rows.len() as u32);
                    let mut sr = vec![(a, 0.5), (b, 0.5)];
                    sr.sort_unstable_by_key(|e| e.0);
                    s_rows.push(sr);
                    d_rows.push(vec![(a, 1.0), (b, -1.0)]);
                }
            }
            next.push(nw);
        }
        let m = s_rows.len();
        let tag = format!("{}#max{round}", op.out);
        let dmap = Affine { n_in: n_cur, rows: d_rows, bias: vec![0.0; m] };
        let smap = Affine { n_in: n_cur, rows: s_rows, bias: vec![0.0; m] };
        ch.push_linear(&cur, &format!("{tag}d"), dmap, format!("maxpool round {round}: a - b"), vec![m]);
        let d = ch.materialise(&format!("{tag}d"));
        let nm = format!("{} (max round {round})", if n.name.is_empty() { &op.out } else { &n.name });
        ch.push_stage(&format!("{tag}abs"), Stage::Act { name: nm.clone(), f: ActFn::HalfAbs, src: d }, vec![m]);
        let abs = ch.stages.len();
        ch.push_linear(&cur, &format!("{tag}s"), smap, format!("maxpool round {round}: (a + b)/2"), vec![m]);
        let sum = ch.materialise(&format!("{tag}s"));
        ch.push_stage(&tag, Stage::Add { name: nm, a: sum, b: abs, sub: false, n: m }, vec![m]);
        cur = tag;
        n_cur = m;
        windows = next;
    }
    // Outputs in order: the last round's values are one per window, in window order.
    let order: Vec<Option<usize>> = windows.iter().map(|w| Some(w[0] as usize)).collect();
    let identity_order = order.iter().enumerate().all(|(i, o)| *o == Some(i));
    let tv = ch.vals[&cur].clone();
    ch.vals.insert(op.out.clone(), crate::import::chain::Tv { shape: s.clone(), ..tv });
    if !identity_order {
        return Err(CompileError::Internal(format!("{}: max tree lost its output order", n.describe())));
    }
    ch.notes.push(format!(
        "{}: MaxPool as {round} round(s) of pairwise max(a, b) = (a + b)/2 + |a - b|/2, |x| by a fitted polynomial (--maxpool=approx)",
        n.describe()
    ));
    Ok(())
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

/// MatMul with one constant operand, numpy semantics: x·W on the last two axes of a
/// batched x ([.., M, K] · [K, N] or [.., K, N] batched alike), or W·x with the
/// constant on the left. A 1-D or flattened x is the Gemm case.
fn matmul(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let n = op.n;
    if op.computed.len() != 1 {
        return Err(unsupported(
            n,
            "both operands are computed tensors (attention's Q·Kᵀ): a product of two encrypted tensors is not supported; one operand must be a constant weight",
        ));
    }
    let left = op.computed[0] == 0;
    let w = ch
        .constant(op, if left { 1 } else { 0 })
        .ok_or_else(|| unsupported(n, "the weight matrix must be a constant initializer"))?;
    if left && op.shape_in.len() <= 1 && w.dims.len() == 2 {
        return gemm(ch, op);
    }
    let x = {
        let mut f = vec![1];
        f.extend_from_slice(&op.shape_in);
        f
    };
    let wd = udims(&w);
    if x.len() < 2 || wd.len() < 2 {
        return Err(unsupported(n, &format!("MatMul of shapes {x:?} and {wd:?}: both need two axes or more")));
    }
    let (a, b) = if left { (&x, &wd) } else { (&wd, &x) };
    let (m, k, k2, nn) = (a[a.len() - 2], a[a.len() - 1], b[b.len() - 2], b[b.len() - 1]);
    if k != k2 {
        return Err(CompileError::Shape(format!("{}: MatMul of {a:?} and {b:?}: inner sizes differ", n.describe())));
    }
    let ba = &a[..a.len() - 2];
    let bb = &b[..b.len() - 2];
    let batch = broadcast_shape(ba, bb)
        .ok_or_else(|| unsupported(n, &format!("batch axes {ba:?} and {bb:?} do not broadcast")))?;
    let mut out = batch.clone();
    out.extend([m, nn]);
    if out.len() > x.len() || out[0] != 1 {
        return Err(unsupported(n, "the weight's batch axes would add axes in front of the input's batch axis"));
    }
    let nb: usize = batch.iter().product();
    let (sa, sb) = (m * k, k * nn);
    let mut rows = Vec::with_capacity(nb * m * nn);
    for bi in 0..nb {
        let idx = unravel(bi, &batch);
        let oa = if ba.is_empty() { 0 } else { bcast_index(&idx, &batch, ba) } * sa;
        let ob = if bb.is_empty() { 0 } else { bcast_index(&idx, &batch, bb) } * sb;
        for i in 0..m {
            for j in 0..nn {
                let row: Vec<(u32, f64)> = (0..k)
                    .filter_map(|t| {
                        let (ai, bj) = (oa + i * k + t, ob + t * nn + j);
                        // x's element and W's value.
                        let (xi, wv) = if left { (ai, w.data[bj]) } else { (bj, w.data[ai]) };
                        (wv != 0.0).then_some((xi as u32, wv))
                    })
                    .collect();
                let mut row = row;
                row.sort_unstable_by_key(|e| e.0);
                rows.push(row);
            }
        }
    }
    let nr = rows.len();
    let shape = out[1..].to_vec();
    let a = Affine { n_in: op.numel, rows, bias: vec![0.0; nr] };
    ch.push_linear(&op.cur, &op.out, a, format!("matmul {x:?}x{wd:?}"), shape);
    Ok(())
}

/// The constant integer operand `k` of `op` minus its zero point (input `zk`), per
/// channel of `axis` when the zero point is a vector.
fn minus_zero_point(ch: &Chain, op: &OpNode, k: usize, zk: usize, axis: usize) -> Result<onnx::Tensor, CompileError> {
    let mut t =
        ch.constant(op, k).ok_or_else(|| unsupported(op.n, "the quantized weight must be a constant initializer"))?;
    if let Some(z) = op.n.inputs.get(zk).filter(|s| !s.is_empty()) {
        let z = ch.tensor(z).cloned().ok_or_else(|| unsupported(op.n, "the weight's zero point must be constant"))?;
        let d = udims(&t);
        let inner: usize = d[axis + 1..].iter().product();
        let len = d[axis];
        for (i, v) in t.data.iter_mut().enumerate() {
            let c = if z.data.len() > 1 { (i / inner) % len } else { 0 };
            *v -= z.data.get(c).copied().unwrap_or(0.0);
        }
    }
    Ok(t)
}

/// onnxruntime's quantize_dynamic: x_q·W_q with zero points, then scaled by the caller's
/// Mul. Under CKKS the input stays real (see `dynamic_quantize`), so this is x·(W_q − z_W).
fn matmul_integer(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    if op.computed != [0] {
        return Err(unsupported(op.n, "the quantized weight must be the constant right operand"));
    }
    let w = minus_zero_point(ch, op, 1, 3, 1)?;
    let wname = format!("{}#weight", op.out);
    ch.consts.insert(wname.clone(), w);
    let mut n = op.n.clone();
    n.op_type = "MatMul".into();
    n.inputs = vec![op.cur.clone(), wname];
    let sub = OpNode {
        n: &n,
        computed: vec![0],
        cur: op.cur.clone(),
        out: op.out.clone(),
        shape_in: op.shape_in.clone(),
        numel: op.numel,
    };
    matmul(ch, &sub)
}

fn conv_integer(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    if op.computed != [0] {
        return Err(unsupported(op.n, "the quantized kernel must be a constant initializer"));
    }
    let w = minus_zero_point(ch, op, 1, 3, 0)?;
    let (a, s) = conv_affine(op.n, &op.shape_in, &w, None)?;
    ch.push_linear(&op.cur, &op.out, a, format!("conv (integer) k{}x{}", w.dims[2], w.dims[3]), s);
    Ok(())
}

/// An activation's QuantizeLinear→DequantizeLinear pair rounds to 8 bits and back:
/// under CKKS the value stays real, so each is the identity (the report's error against
/// onnxruntime's quantized model shows what that rounding was worth).
fn qdq(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    if op.computed != [0] {
        return Err(unsupported(op.n, "the scale and zero point must be constants"));
    }
    if !ch.notes.iter().any(|s| s.starts_with("QDQ")) {
        ch.notes.push(
            "QDQ model: DequantizeLinear of constant weights folded into float weights; activation QuantizeLinear/DequantizeLinear pairs kept real (identity) — the accuracy figures compare with onnxruntime's quantized outputs".into(),
        );
    }
    let on_input = ch.vals.get(&op.cur).is_some_and(|t| t.base == 0 && t.pending.is_none());
    if op.n.op_type == "QuantizeLinear" && on_input && ch.input_quant_scale.is_none() {
        ch.input_quant_scale = ch.constant(op, 1).and_then(|t| t.data.first().copied()).filter(|s| *s > 0.0);
    }
    if let Some(hi) = saturation_clip(ch, op) {
        // The quantizer folded a ReLU/ReLU6 into this tensor's range (its zero point is
        // the type's minimum): that clamp at 0 is the model's, so it stays, as a Clip.
        let f = ActFn::Clip(0.0, hi);
        let src = ch.materialise(&op.cur);
        let nm = if op.n.name.is_empty() { op.out.clone() } else { op.n.name.clone() };
        ch.push_stage(&op.out, Stage::Act { name: format!("{nm} (saturation)"), f, src }, op.shape_in.clone());
        return Ok(());
    }
    ch.alias(op, op.shape_in.clone());
    Ok(())
}

/// For a QuantizeLinear of a computed tensor (not the model's input) whose representable
/// range starts at exactly 0: the top of that range.
fn saturation_clip(ch: &Chain, op: &OpNode) -> Option<f64> {
    if op.n.op_type != "QuantizeLinear" || ch.vals.get(&op.cur).is_some_and(|t| t.base == 0 && t.pending.is_none()) {
        return None;
    }
    let s = ch.constant(op, 1)?.data.first().copied()?;
    let zp = ch.constant(op, 2);
    let (z, dtype) = zp.map(|t| (t.data.first().copied().unwrap_or(0.0), t.dtype)).unwrap_or((0.0, 2));
    let (qmin, qmax) = match dtype {
        2 => (0.0, 255.0),
        3 => (-128.0, 127.0),
        4 => (0.0, 65535.0),
        5 => (-32768.0, 32767.0),
        _ => return None,
    };
    (z == qmin && s > 0.0).then_some((qmax - z) * s)
}

/// quantize_dynamic's per-sample quantisation of the input: its scale is computed from
/// the values (not encryptable); the input stays real instead, with scale 1 and zero
/// point 0, so the MatMulInteger and the scale product after it compute x·W.
fn dynamic_quantize(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    if ch.vals.get(&op.cur).is_some_and(|t| t.base == 0 && t.pending.is_none()) {
        ch.input_dynamic_quant = true;
    }
    qdq(ch, op)?;
    let outs = &op.n.outputs;
    if let Some(s) = outs.get(1) {
        ch.consts.insert(s.clone(), onnx::Tensor::new(vec![], vec![1.0]));
    }
    if let Some(z) = outs.get(2) {
        ch.consts.insert(z.clone(), onnx::Tensor::new(vec![], vec![0.0]));
    }
    Ok(())
}

fn qoperator(_: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    Err(unsupported(
        op.n,
        "onnxruntime's QOperator format computes in integers; quantize with quant_format=QuantFormat.QDQ (the default of quantize_static) so the weights fold to floats",
    ))
}
