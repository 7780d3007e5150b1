//! Graph passes: rewrites of the parsed ONNX graph, in order, before its ops are
//! imported. A pattern several ONNX ops spell out becomes the one op the registry
//! imports, so op handlers never see its pieces.

mod gelu;
mod inputs;
mod silu;

use crate::onnx::Graph;

/// The passes, in the order they run; a pass is named by its function.
const PASSES: &[fn(&mut Graph)] = &[inputs::merge_inputs, gelu::fuse_gelu, silu::fuse_silu];

pub(crate) fn run(g: &mut Graph) {
    for pass in PASSES {
        pass(g);
    }
}
