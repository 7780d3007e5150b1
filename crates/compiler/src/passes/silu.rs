//! SiLU and Mish written out as products: PyTorch exports `nn.SiLU` as x·Sigmoid(x)
//! and `nn.Mish` (before opset 18) as x·Tanh(Softplus(x)). A product of two computed
//! tensors is not encryptable as such, but the whole is one element-wise function of
//! x, so each becomes one activation node (`Silu`, `Mish`).

use std::collections::HashMap;

use crate::onnx::{Graph, Node};

pub(super) fn fuse_silu(g: &mut Graph) {
    let mut producer: HashMap<String, usize> = HashMap::new();
    let mut readers: HashMap<String, usize> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        for o in &n.outputs {
            producer.insert(o.clone(), i);
        }
        for t in &n.inputs {
            *readers.entry(t.clone()).or_default() += 1;
        }
    }
    let outputs: Vec<&str> = g.outputs.iter().map(|o| o.name.as_str()).collect();
    // A tensor made by op `op` from `x`, read only once and not a graph output: its producer.
    let only_use = |t: &str, op: &str, x: &str| -> Option<usize> {
        let p = *producer.get(t)?;
        let n = &g.nodes[p];
        (n.op_type == op
            && n.inputs.len() == 1
            && n.inputs[0] == x
            && readers.get(t) == Some(&1)
            && !outputs.contains(&t))
        .then_some(p)
    };
    let mut drop = vec![false; g.nodes.len()];
    let mut replace: Vec<(usize, Node)> = vec![];
    for (i, n) in g.nodes.iter().enumerate() {
        if n.op_type != "Mul" || n.inputs.len() != 2 || !n.domain.is_empty() {
            continue;
        }
        for (x, y) in [(&n.inputs[0], &n.inputs[1]), (&n.inputs[1], &n.inputs[0])] {
            let fused = if let Some(s) = only_use(y, "Sigmoid", x) {
                Some(("Silu", vec![s]))
            } else {
                let t = producer.get(y.as_str()).map(|&p| &g.nodes[p]);
                match t {
                    Some(t) if t.op_type == "Tanh" && t.inputs.len() == 1 => {
                        let sp = &t.inputs[0];
                        match (only_use(y, "Tanh", sp), only_use(sp, "Softplus", x)) {
                            (Some(a), Some(b)) => Some(("Mish", vec![a, b])),
                            _ => None,
                        }
                    }
                    _ => None,
                }
            };
            if let Some((op, gone)) = fused {
                if gone.iter().any(|&k| drop[k]) {
                    continue;
                }
                for k in gone {
                    drop[k] = true;
                }
                let node = Node {
                    name: n.name.clone(),
                    op_type: op.into(),
                    inputs: vec![x.clone()],
                    outputs: n.outputs.clone(),
                    ..Default::default()
                };
                replace.push((i, node));
                break;
            }
        }
    }
    for (i, node) in replace {
        g.nodes[i] = node;
    }
    let mut k = 0;
    g.nodes.retain(|_| {
        k += 1;
        !drop[k - 1]
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, i: &[&str], o: &str) -> Node {
        Node {
            op_type: op.into(),
            inputs: i.iter().map(|s| s.to_string()).collect(),
            outputs: vec![o.into()],
            ..Default::default()
        }
    }

    #[test]
    fn fuses_silu_and_mish_but_not_a_shared_sigmoid() {
        let mut g = Graph {
            nodes: vec![
                node("Sigmoid", &["x"], "s"),
                node("Mul", &["x", "s"], "y"),
                node("Softplus", &["y"], "sp"),
                node("Tanh", &["sp"], "t"),
                node("Mul", &["t", "y"], "z"),
                node("Sigmoid", &["z"], "u"),
                node("Mul", &["z", "u"], "w"),
                node("Add", &["u", "w"], "v"),
            ],
            ..Default::default()
        };
        fuse_silu(&mut g);
        let ops: Vec<&str> = g.nodes.iter().map(|n| n.op_type.as_str()).collect();
        // The last Sigmoid is read twice: x·σ(x) there is not a SiLU alone.
        assert_eq!(ops, ["Silu", "Mish", "Sigmoid", "Mul", "Add"]);
        assert_eq!(g.nodes[0].inputs, ["x"]);
        assert_eq!(
            (g.nodes[1].inputs.clone(), g.nodes[1].outputs.clone()),
            (vec!["y".to_string()], vec!["z".to_string()])
        );
    }
}
