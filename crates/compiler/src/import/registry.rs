//! Op handlers by ONNX op type. Each op family's file registers its own (see
//! [`super::ops::register_all_ops`]), so the import loop knows no op by name and adding
//! an op touches one file.

use std::collections::HashMap;

use super::chain::{Chain, OpNode};
use crate::CompileError;

/// Translates one node into the chain: extends the stage list or the pending affine map
/// of its output, or records client post-processing.
pub(crate) type OpHandler = fn(&mut Chain, &OpNode) -> Result<(), CompileError>;

#[derive(Default)]
pub(crate) struct OpRegistry {
    handlers: HashMap<&'static str, OpHandler>,
}

impl OpRegistry {
    /// Panics when `op` already has a handler: two families claiming one op would make
    /// the result depend on registration order.
    pub fn register(&mut self, op: &'static str, handler: OpHandler) {
        assert!(self.handlers.insert(op, handler).is_none(), "ONNX op {op} registered twice");
    }
    pub fn get(&self, op: &str) -> Option<OpHandler> {
        self.handlers.get(op).copied()
    }
}
