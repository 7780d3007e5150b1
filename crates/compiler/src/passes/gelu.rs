//! GELU written out in element-wise ops, found by what it computes rather than by its
//! op sequence (exporters reorder and reassociate it).

use std::collections::HashMap;

use crate::activation::{erf, ActFn};
use crate::onnx::{self, Graph, Node};

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
pub(super) fn fuse_gelu(g: &mut Graph) {
    let outputs: Vec<String> = g.outputs.iter().map(|o| o.name.clone()).collect();
    g.nodes = fuse(&g.nodes, &g.initializers, &outputs);
}

fn fuse(nodes: &[Node], init: &HashMap<String, onnx::Tensor>, outputs: &[String]) -> Vec<Node> {
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
