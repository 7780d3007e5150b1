//! ONNX ops by family, as tract-onnx lays them out: each file's `register` names the op
//! types it handles. Adding an op is one handler and one `register` line in its family.

mod activation;
mod array;
mod math;
mod ml;
mod nn;
mod post;

use super::registry::OpRegistry;

pub(super) fn register_all_ops() -> OpRegistry {
    let mut reg = OpRegistry::default();
    array::register(&mut reg);
    nn::register(&mut reg);
    math::register(&mut reg);
    activation::register(&mut reg);
    post::register(&mut reg);
    ml::register(&mut reg);
    reg
}

/// The hint for an op with no handler.
pub(super) const SUPPORTED_OPS: &str = "supported: Gemm, MatMul (one constant operand, batched), Conv (groups, depthwise), BatchNormalization, AveragePool, GlobalAveragePool, MaxPool (approximated, or --maxpool=avg), Flatten, Reshape/Squeeze/Unsqueeze, Transpose, Pad (constant), Slice, Split, Concat, ReduceMean/ReduceSum, Cast (to float), Add/Sub/Mul/Div by constants, Add/Sub of two computed tensors (residual connections), Mul(x,x), Pow(x,2), Relu, LeakyRelu, Clip (ReLU6), HardSigmoid, HardSwish, Sigmoid, SiLU (x*Sigmoid(x)), Mish, Tanh, Elu, Selu, Gelu (also as PyTorch's Erf or Tanh subgraph), Softplus, Identity, Dropout, QuantizeLinear/DequantizeLinear (QDQ), MatMulInteger/ConvInteger (quantize_dynamic), shape arithmetic on constants (folded), ai.onnx.ml LinearClassifier/LinearRegressor/Scaler, trailing Softmax/LogSoftmax/ArgMax/ZipMap";

pub(super) use math::ERF_HINT;
pub(super) use post::client_op;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_registers_its_ops_once() {
        // register_all_ops panics on an op claimed twice.
        let reg = register_all_ops();
        for op in ["Gemm", "MatMul", "Conv", "Flatten", "Reshape", "Add", "Pow", "Relu", "Gelu", "Softmax", "Scaler"] {
            assert!(reg.get(op).is_some(), "{op} has no handler");
        }
        assert!(reg.get("LSTM").is_none());
    }
}
