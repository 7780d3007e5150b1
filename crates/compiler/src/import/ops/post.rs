//! Trailing Softmax / LogSoftmax / ArgMax: not polynomials, and cheap in the clear, so
//! the client applies them after decryption.

use model::PostOp;

use crate::import::chain::{Chain, OpNode};
use crate::import::registry::OpRegistry;
use crate::CompileError;

pub(super) fn register(reg: &mut OpRegistry) {
    reg.register("Softmax", |ch, op| to_client(ch, op, PostOp::Softmax));
    reg.register("LogSoftmax", |ch, op| to_client(ch, op, PostOp::LogSoftmax));
    reg.register("ArgMax", |ch, op| to_client(ch, op, PostOp::ArgMax));
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
