"""CryptoNets' network for `bench/peers.sh cryptonets`, on scikit-learn digits upsampled to
28x28 (models/make_tenseal_mnist.py's upsampling), and the batch both libraries run.

    python bench/peers/cryptonets_prep.py OUTDIR BATCH

Network (CryptoNets, Gilad-Bachrach et al. 2016): x [28x28] -> pad 1 top/left -> Conv 5x5
stride 2, 5 maps (5x13x13 = 845) -> x^2 -> Dense 845->100 -> x^2 -> Dense 100->10.
Conv and the first Dense are fixed-seed random, normalised on the training digits so each
pre-activation has unit spread; the last Dense is a logistic regression fitted on the
training digits' features (a readout that classifies, so the agreement is over real logit
gaps). Writes little-endian float64 files: conv_w (5x25), conv_b (5), fc1_w (100x845), fc1_b,
fc2_w (10x100), fc2_b, x (BATCH x 784, test digits cycled), logits (BATCH x 10, float64
plaintext network), y (BATCH labels), and weights.npz for TenSEAL; and for heinfer's BGV run the
same network as cryptonets.onnx, train_x.npy, x.npy and plain_pred.npy (the float network's top-1).
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models"))
import make_tenseal_mnist as mn  # noqa: E402


def conv(w, b, x):
    """x [n, 28, 28] -> [n, 845] (map-major, as the Flatten of NCHW)."""
    n = x.shape[0]
    xp = np.zeros((n, 29, 29))
    xp[:, 1:, 1:] = x
    cols = np.stack([xp[:, 2 * i : 2 * i + 5, 2 * j : 2 * j + 5].reshape(n, 25) for i in range(13) for j in range(13)], 1)
    c = np.einsum("npk,mk->nmp", cols, w) + b[None, :, None]
    return c.reshape(n, 845)


def features(w, x):
    h = conv(w["conv_w"], w["conv_b"], x) ** 2
    return (h @ w["fc1_w"].T + w["fc1_b"]) ** 2


def forward(w, x):
    return features(w, x) @ w["fc2_w"].T + w["fc2_b"]


def write_onnx(w, out):
    """The same network as ONNX (cryptonets.onnx, float32), as a PyTorch export writes it:
    Conv 5x5 stride 2 with pads (1, 1, 0, 0) -> Mul(x, x) -> Flatten -> Gemm -> Mul -> Gemm;
    for `heinfer compile --scheme bgv --quantize 8` (bench/peers.sh cryptonets-bgv)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    inits = [numpy_helper.from_array(f32(w["conv_w"].reshape(5, 1, 5, 5)), "conv_w"),
             numpy_helper.from_array(f32(w["conv_b"]), "conv_b"),
             numpy_helper.from_array(f32(w["fc1_w"]), "fc1_w"), numpy_helper.from_array(f32(w["fc1_b"]), "fc1_b"),
             numpy_helper.from_array(f32(w["fc2_w"]), "fc2_w"), numpy_helper.from_array(f32(w["fc2_b"]), "fc2_b")]
    nodes = [helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], kernel_shape=[5, 5], strides=[2, 2],
                              pads=[1, 1, 0, 0]),
             helper.make_node("Mul", ["c", "c"], ["c2"]),
             helper.make_node("Flatten", ["c2"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "fc1_w", "fc1_b"], ["h"], transB=1),
             helper.make_node("Mul", ["h", "h"], ["h2"]),
             helper.make_node("Gemm", ["h2", "fc2_w", "fc2_b"], ["logits"], transB=1)]
    g = helper.make_graph(nodes, "cryptonets", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(out, "cryptonets.onnx"))


def main():
    out, batch = sys.argv[1], int(sys.argv[2])
    os.makedirs(out, exist_ok=True)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    a, b, ytr, yte = train_test_split(d.data, d.target, test_size=0.5, random_state=0, stratify=d.target)
    xtr, xte = mn.upsample(a), mn.upsample(b)
    rng = np.random.default_rng(2016)
    w = {"conv_w": rng.normal(0, 1, (5, 25)), "conv_b": rng.normal(0, 0.1, 5)}
    c = conv(w["conv_w"], w["conv_b"], xtr)
    s = c.std()
    w["conv_w"] /= s
    w["conv_b"] /= s
    h = conv(w["conv_w"], w["conv_b"], xtr) ** 2
    fc1 = rng.normal(0, 1, (100, 845))
    z = h @ fc1.T
    mu, sd = z.mean(0), z.std(0)
    w["fc1_w"] = fc1 / sd[:, None]
    w["fc1_b"] = -mu / sd
    f = features(w, xtr)
    from sklearn.linear_model import LogisticRegression

    fs = f.std()
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(f / fs, ytr)
    w["fc2_w"] = clf.coef_ / fs
    w["fc2_b"] = clf.intercept_.copy()
    idx = np.arange(batch) % len(xte)
    x = xte[idx]
    logits = forward(w, x)
    for k in ("conv_w", "conv_b", "fc1_w", "fc1_b", "fc2_w", "fc2_b"):
        w[k].astype("<f8").tofile(os.path.join(out, k))
    x.reshape(batch, 784).astype("<f8").tofile(os.path.join(out, "x"))
    logits.astype("<f8").tofile(os.path.join(out, "logits"))
    np.save(os.path.join(out, "y.npy"), yte[idx])
    np.savez(os.path.join(out, "weights.npz"), **w)
    write_onnx(w, out)
    np.save(os.path.join(out, "train_x.npy"), xtr.reshape(-1, 1, 28, 28).astype(np.float32))
    np.save(os.path.join(out, "x.npy"), x.reshape(batch, 1, 28, 28).astype(np.float32))
    np.save(os.path.join(out, "plain_pred.npy"), logits.argmax(1).astype(np.int64))
    acc = (logits.argmax(1) == yte[idx]).mean()
    print(f"cryptonets_prep: batch {batch}, plaintext accuracy {acc:.4f}, max |logit| {np.abs(logits).max():.1f}, "
          f"max |hidden| {np.abs(features(w, x)).max():.1f}", file=sys.stderr)


if __name__ == "__main__":
    main()
