"""The network of TenSEAL's encrypted-MNIST tutorial, as ONNX with random weights.

    python models/make_tenseal_mnist.py     # writes models/tenseal_mnist.onnx + models/tenseal_mnist_weights.npz

Input [1, 1, 28, 28] -> Conv 7x7 stride 3, 4 channels (-> 4x8x8 = 256) -> x*x
-> Gemm 256->64 -> x*x -> Gemm 64->10. Weights are seeded random (PyTorch's default
uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) initialisation), so re-running reproduces the
files. The .npz holds the same weights for TenSEAL's side of bench/peers.sh mnist.

`python models/make_tenseal_mnist.py --data OUTDIR` also writes MNIST-like inputs:
scikit-learn's 8x8 digits upsampled to 28x28 (OUTDIR/mnist28_{train,test}_img.npy,
OUTDIR/mnist28_test_y.npy), scaled to [0, 1].
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def weights(seed=2024):
    rng = np.random.default_rng(seed)

    def u(fan_in, shape):
        b = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-b, b, size=shape).astype(np.float32)

    return {
        "conv_w": u(49, (4, 1, 7, 7)),
        "conv_b": u(49, (4,)),
        "fc1_w": u(256, (64, 256)),  # PyTorch Linear layout [out, in]
        "fc1_b": u(256, (64,)),
        "fc2_w": u(64, (10, 64)),
        "fc2_b": u(64, (10,)),
    }


def build(w):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    init = [numpy_helper.from_array(v, k) for k, v in w.items()]
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], name="conv", kernel_shape=[7, 7], strides=[3, 3]),
        helper.make_node("Mul", ["c", "c"], ["s1"], name="square1"),
        helper.make_node("Flatten", ["s1"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc1_w", "fc1_b"], ["h"], name="fc1", transB=1),
        helper.make_node("Mul", ["h", "h"], ["s2"], name="square2"),
        helper.make_node("Gemm", ["s2", "fc2_w", "fc2_b"], ["logits"], name="fc2", transB=1),
    ]
    g = helper.make_graph(
        nodes,
        "tenseal_mnist",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        init,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="heinfer make_tenseal_mnist")
    onnx.checker.check_model(m)
    return m


def forward(w, x):
    """The plaintext network in numpy: x [n, 28, 28] -> logits [n, 10]."""
    n = x.shape[0]
    cols = np.stack([x[:, 3 * i : 3 * i + 7, 3 * j : 3 * j + 7].reshape(n, 49) for i in range(8) for j in range(8)], 1)
    c = np.einsum("nwk,ok->now", cols, w["conv_w"].reshape(4, 49).astype(np.float64)) + w["conv_b"][None, :, None]
    h = (c * c).reshape(n, 256) @ w["fc1_w"].T.astype(np.float64) + w["fc1_b"]
    return (h * h) @ w["fc2_w"].T.astype(np.float64) + w["fc2_b"]


def upsample(img8):
    """8x8 digits (0..16) -> 28x28 in [0, 1]: nearest-neighbour x4 (32x32), centre crop."""
    big = np.kron(img8.reshape(-1, 8, 8), np.ones((4, 4)))[:, 2:30, 2:30]
    return (big / 16.0).astype(np.float64)


def main():
    w = weights()
    if "--data" in sys.argv:
        out = sys.argv[sys.argv.index("--data") + 1]
        os.makedirs(out, exist_ok=True)
        data = os.path.join(HERE, "data")
        for split in ("train", "test"):
            x = upsample(np.load(os.path.join(data, f"digits_{split}_img.npy")))
            np.save(os.path.join(out, f"mnist28_{split}_img.npy"), x.reshape(-1, 1, 28, 28))
        np.save(os.path.join(out, "mnist28_test_y.npy"), np.load(os.path.join(data, "digits_test_y.npy")))
        return
    import onnx

    onnx.save(build(w), os.path.join(HERE, "tenseal_mnist.onnx"))
    np.savez(os.path.join(HERE, "tenseal_mnist_weights.npz"), **w)
    print("wrote models/tenseal_mnist.onnx and models/tenseal_mnist_weights.npz")


if __name__ == "__main__":
    main()
