//! Trailing Softmax / LogSoftmax / ArgMax: not polynomials, and cheap in the clear, so
//! the client applies them after decryption. Once one of them is met, every later node
//! is the client's ([`client_op`]): skl2onnx's label branch (ArgMax →
//! ArrayFeatureExtractor → Reshape → Cast), ZipMap, and a binary classifier's
//! [1 − p, p] written as Sub and Concat.

use model::PostOp;

use crate::import::chain::{unsupported, Chain, OpNode};
use crate::import::registry::OpRegistry;
use crate::CompileError;

pub(super) fn register(reg: &mut OpRegistry) {
    reg.register("Softmax", |ch, op| to_client(ch, op, PostOp::Softmax));
    reg.register("LogSoftmax", |ch, op| to_client(ch, op, PostOp::LogSoftmax));
    reg.register("ArgMax", |ch, op| {
        if label_branch(ch, op) {
            // The scores stay the model's output; the client takes the label from them.
            ch.materialise(&op.cur);
            ch.side.insert(op.out.clone());
            ch.final_output = op.cur.clone();
            ch.last = op.cur.clone();
            return Ok(());
        }
        to_client(ch, op, PostOp::ArgMax)
    });
    reg.register("ZipMap", zipmap);
}

fn to_client(ch: &mut Chain, op: &OpNode, p: PostOp) -> Result<(), CompileError> {
    ch.materialise(&op.cur);
    if ch.post.is_empty() {
        ch.he_output = op.cur.clone();
    }
    ch.post.push(p);
    ch.alias(op, op.shape_in.clone());
    Ok(())
}

/// ZipMap turns probabilities into a list of {class: probability} maps, which is
/// formatting: the client does it from the probabilities, which stay the model's output.
fn zipmap(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    ch.side.insert(op.out.clone());
    ch.final_output = op.cur.clone();
    ch.last = op.cur.clone();
    Ok(())
}

/// A node after the encrypted part's end, on the client's side.
pub(crate) fn client_op(ch: &mut Chain, op: &OpNode) -> Result<(), CompileError> {
    let n = op.n;
    match n.op_type.as_str() {
        "ArgMax" => {
            if label_branch(ch, op) {
                ch.side.insert(op.out.clone());
            } else {
                next(ch, op, Some(PostOp::ArgMax));
            }
        }
        "Softmax" => next(ch, op, Some(PostOp::Softmax)),
        "LogSoftmax" => next(ch, op, Some(PostOp::LogSoftmax)),
        "Identity" | "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => next(ch, op, None),
        "Cast" if matches!(n.attr_i("to"), Some(1 | 10 | 11) | None) => next(ch, op, None),
        "Cast" => {
            ch.side.insert(op.out.clone());
        }
        "ZipMap" => zipmap(ch, op)?,
        "Normalizer" => {
            let norm = n.attr_s("norm").unwrap_or("MAX");
            match (norm, ch.post.last()) {
                // Softmax's outputs already sum to 1.
                ("L1", Some(PostOp::Softmax)) => next(ch, op, None),
                ("L1", _) => next(ch, op, Some(PostOp::L1Normalize)),
                _ => {
                    return Err(unsupported(
                        n,
                        &format!("Normalizer with norm {norm} after the model's scores is not supported; only L1 (probabilities)"),
                    ))
                }
            }
        }
        "Sub" if ch.post.last() == Some(&PostOp::Sigmoid) && op.computed == [1] => {
            let one = ch.tensor(&n.inputs[0]).map(|t| t.data.iter().all(|&v| v == 1.0)).unwrap_or(false);
            if !one {
                return Err(unsupported(n, "after a client-side Sigmoid only 1 − p (a binary classifier's other class) is supported"));
            }
            ch.neg_of = Some((op.out.clone(), op.cur.clone()));
        }
        "Concat" => {
            let pair = ch.neg_of.clone();
            match pair {
                Some((neg, p)) if n.inputs.len() == 2 && n.inputs[0] == neg && n.inputs[1] == p => {
                    ch.post.push(PostOp::BinaryProbabilities);
                    ch.alias(op, vec![2]);
                    ch.final_output = op.out.clone();
                    ch.last = op.out.clone();
                }
                _ => {
                    return Err(unsupported(
                        n,
                        "a Concat after the model's scores is supported only as a binary classifier's [1 − p, p]",
                    ))
                }
            }
        }
        _ => {
            return Err(unsupported(
                n,
                "only Softmax/LogSoftmax/ArgMax, ZipMap, Cast, Identity/Reshape and a binary classifier's [1 − p, p] may follow the model's final post-processing (the client applies them); move this op before it",
            ))
        }
    }
    Ok(())
}

/// An ArgMax of scores that are also an output (directly or read elsewhere) is
/// skl2onnx's label branch: the client takes the label from the scores it has.
fn label_branch(ch: &Chain, op: &OpNode) -> bool {
    let readers = ch.readers.get(&op.cur).map(Vec::len).unwrap_or(0);
    readers > 1 || ch.graph_outputs.contains(&op.cur)
}

/// `op`'s output is its input for the encrypted part; the client applies `p` (if any).
fn next(ch: &mut Chain, op: &OpNode, p: Option<PostOp>) {
    if let Some(p) = p {
        ch.post.push(p);
    }
    ch.alias(op, op.shape_in.clone());
    ch.final_output = op.out.clone();
    ch.last = op.out.clone();
}
