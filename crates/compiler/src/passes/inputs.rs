//! Several data inputs become one: the HE program and the client's slot map see one
//! flattened input vector, the concatenation of the ONNX inputs in the graph's order.
//!
//! A model with a `clinical` and a `demographic` input is rewritten so that one new
//! input of `n_clinical + n_demographic` values feeds a `Split` along axis 1, whose
//! pieces take the old inputs' names (a `Reshape` restores an input of more than one
//! dimension). Everything downstream is untouched, and the importer already handles
//! `Split` and `Reshape` as selections. What was merged is kept on the graph, so
//! `--public-features demographic` can name an input and the client spec can say
//! which values of its input vector belong to which ONNX input.
//!
//! Inputs with a symbolic dimension other than the batch are left alone: the importer
//! then refuses the model, naming them.

use crate::onnx::{Attribute, Graph, Node, Tensor, ValueInfo};

/// The merged input's name (made unique against the graph's tensor names).
const MERGED: &str = "heinfer_inputs";

pub(crate) fn merge_inputs(g: &mut Graph) {
    let data: Vec<ValueInfo> = g.inputs.iter().filter(|v| !g.initializers.contains_key(&v.name)).cloned().collect();
    if data.len() < 2 {
        return;
    }
    // Shapes without the batch dimension; any other symbolic dimension: leave the graph.
    let mut shapes = Vec::with_capacity(data.len());
    for v in &data {
        let dims: Option<Vec<usize>> = match v.shape.as_slice() {
            [] => None,
            [d] => d.filter(|&d| d > 0).map(|d| vec![d as usize]),
            [_, rest @ ..] => rest.iter().map(|d| d.filter(|&d| d > 0).map(|d| d as usize)).collect(),
        };
        match dims {
            Some(d) => shapes.push(d),
            None => return,
        }
    }
    let mut name = MERGED.to_string();
    while g.nodes.iter().any(|n| n.outputs.contains(&name)) || g.inputs.iter().any(|v| v.name == name) {
        name.push('_');
    }
    let lens: Vec<usize> = shapes.iter().map(|s| s.iter().product()).collect();
    let total: usize = lens.iter().sum();
    let mut pieces = Vec::with_capacity(data.len());
    let mut front = Vec::new();
    let mut parts = Vec::with_capacity(data.len());
    let mut offset = 0;
    for ((v, shape), &len) in data.iter().zip(&shapes).zip(&lens) {
        let piece = if shape.len() == 1 { v.name.clone() } else { format!("{name}/{}", v.name) };
        if shape.len() > 1 {
            let target = format!("{name}/{}/shape", v.name);
            let dims: Vec<f64> = std::iter::once(1.0).chain(shape.iter().map(|&d| d as f64)).collect();
            let mut t = Tensor::vector(dims);
            t.dtype = 7;
            g.initializers.insert(target.clone(), t);
            front.push(Node {
                name: format!("{name}/{}/reshape", v.name),
                op_type: "Reshape".into(),
                inputs: vec![piece.clone(), target],
                outputs: vec![v.name.clone()],
                ..Default::default()
            });
        }
        pieces.push(piece);
        parts.push(model::InputPart { name: v.name.clone(), offset, len, shape: shape.clone() });
        offset += len;
    }
    let split = Node {
        name: format!("{name}/split"),
        op_type: "Split".into(),
        inputs: vec![name.clone()],
        outputs: pieces,
        attrs: [
            ("axis".to_string(), Attribute { name: "axis".into(), i: Some(1), ..Default::default() }),
            (
                "split".to_string(),
                Attribute {
                    name: "split".into(),
                    ints: lens.iter().map(|&l| l as i64).collect(),
                    ..Default::default()
                },
            ),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    front.insert(0, split);
    front.append(&mut g.nodes);
    g.nodes = front;
    let first = g.inputs.iter().position(|v| v.name == data[0].name).unwrap_or(0);
    g.inputs.retain(|v| g.initializers.contains_key(&v.name));
    g.inputs.insert(first.min(g.inputs.len()), ValueInfo { name, shape: vec![None, Some(total as i64)] });
    g.merged_inputs = parts;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, shape: &[Option<i64>]) -> ValueInfo {
        ValueInfo { name: name.into(), shape: shape.to_vec() }
    }

    #[test]
    fn two_inputs_become_one_split_in_graph_order() {
        let mut g = Graph {
            inputs: vec![input("clinical", &[None, Some(3)]), input("image", &[None, Some(1), Some(2), Some(2)])],
            ..Default::default()
        };
        merge_inputs(&mut g);
        assert_eq!(g.inputs.len(), 1);
        assert_eq!(g.inputs[0].shape, vec![None, Some(7)]);
        let p: Vec<_> = g.merged_inputs.iter().map(|p| (p.name.as_str(), p.offset, p.len)).collect();
        assert_eq!(p, [("clinical", 0, 3), ("image", 3, 4)]);
        assert_eq!(g.nodes[0].op_type, "Split");
        assert_eq!(g.nodes[0].attr_ints("split"), Some(&[3i64, 4][..]));
        // The 4-D input is restored by a Reshape to [1, 1, 2, 2]; the 2-D one is a Split output.
        assert_eq!(g.nodes[0].outputs[0], "clinical");
        assert_eq!(g.nodes[1].op_type, "Reshape");
        assert_eq!(g.nodes[1].outputs, ["image"]);
        assert_eq!(g.initializers[&g.nodes[1].inputs[1]].data, [1.0, 1.0, 2.0, 2.0]);
    }

    #[test]
    fn one_input_or_a_symbolic_feature_dimension_is_left_alone() {
        let mut g = Graph { inputs: vec![input("x", &[None, Some(3)])], ..Default::default() };
        merge_inputs(&mut g);
        assert!(g.merged_inputs.is_empty() && g.nodes.is_empty());
        let mut g =
            Graph { inputs: vec![input("a", &[None, Some(3)]), input("b", &[None, None])], ..Default::default() };
        merge_inputs(&mut g);
        assert!(g.merged_inputs.is_empty() && g.inputs.len() == 2);
    }
}
