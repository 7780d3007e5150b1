"""Test models for residual connections and PyTorch-style GELU, on scikit-learn's digits.

    .venv/bin/python models/make_residual_gelu.py     # writes models/digits_{resmlp,rescnn,gelu_mlp,gelu_tanh_mlp}.onnx

digits_resmlp:       Gemm 64->32, Relu = h;  h + Gemm 32->32(Relu(Gemm 32->32(h)));  Gemm 32->10
                     (a skip connection: both operands of the Add are computed tensors)
digits_ressq:        digits_resmlp with x*x (Mul(z, z)) for Relu: a small residual net for encrypted tests, whose
                     two Add operands differ in scale (a square's scale is Δ²/q) as well as in level
digits_rescnn:       Conv 3x3 stride 2 pad 1 (4 ch), Relu = h (4x4x4);  h + Conv 3x3 (4->4)(Relu(Conv 3x3 (4->4)(h)));
                     Gemm 64->10 (the inner convolutions pad 1, so the skip keeps the shape)
digits_gelu_mlp:     Gemm 64->32, GELU, Gemm 32->10, with GELU written out the way torch.onnx.export
                     writes nn.GELU() at opset 13/14: x * 0.5 * (1 + Erf(x / sqrt(2)))
                     (Div, Erf, Add, Mul, Mul, constants as Constant nodes)
digits_gelu_tanh_mlp: the same weights with nn.GELU(approximate="tanh") as exported at opset 13/14:
                     0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * Pow(x, 3))))

The MLPs are trained here with numpy (hand-written backprop, Adam); the CNN has random
convolutions and a trained (scikit-learn logistic regression) head. The data split is
make_models.py's (models/data/digits_*.npy). Seeded: re-running reproduces the files.
"""
import os
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto
from scipy.special import erf
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = [helper.make_opsetid("", 13)]


def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)


def init(name, a):
    return numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)


def const(name, v):
    return helper.make_node("Constant", [], [name], name=name + "_const",
                            value=numpy_helper.from_array(np.array(v, dtype=np.float32), name + "_value"))


def save(nodes, inits, in_shape, name):
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N"] + list(in_shape))
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
    m = helper.make_model(helper.make_graph(nodes, name, [inp], [out], inits), opset_imports=OPSET,
                          producer_name="heinfer-models")
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(HERE, name + ".onnx"))


def adam(params, grads_fn, X, Y, epochs, lr=0.01, bs=64, seed=0):
    rng = np.random.default_rng(seed)
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    t = 0
    for _ in range(epochs):
        perm = rng.permutation(len(X))
        for s in range(0, len(perm), bs):
            idx = perm[s:s + bs]
            grads = grads_fn(X[idx], Y[idx])
            t += 1
            for i, (p, g) in enumerate(zip(params, grads)):
                m[i] = 0.9 * m[i] + 0.1 * g
                v[i] = 0.999 * v[i] + 0.001 * g * g
                p -= lr * (m[i] / (1 - 0.9 ** t)) / (np.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8)


def softmax_grad(out, Y):
    e = np.exp(out - out.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True) - Y) / len(Y)


def he(rng, a, b):
    return rng.normal(0, np.sqrt(2 / a), (a, b))


# ---------------------------------------------------------------- residual MLP
def make_resmlp():
    Xtr, Xte, ytr, yte = digits()
    rng = np.random.default_rng(1)
    W1, W2, W3, W4 = he(rng, 64, 32), he(rng, 32, 32), he(rng, 32, 32) * 0.5, he(rng, 32, 10)
    b1, b2, b3, b4 = np.zeros(32), np.zeros(32), np.zeros(32), np.zeros(10)
    params = [W1, b1, W2, b2, W3, b3, W4, b4]

    def fwd(X):
        z1 = X @ W1 + b1; h = np.maximum(z1, 0)
        z2 = h @ W2 + b2; r = np.maximum(z2, 0)
        y = h + r @ W3 + b3
        return z1, h, z2, r, y, y @ W4 + b4

    def grads(X, Y):
        z1, h, z2, r, y, out = fwd(X)
        g = softmax_grad(out, Y)
        gy = g @ W4.T
        gz2 = (gy @ W3.T) * (z2 > 0)
        gz1 = (gy + gz2 @ W2.T) * (z1 > 0)
        return [X.T @ gz1, gz1.sum(0), h.T @ gz2, gz2.sum(0), r.T @ gy, gy.sum(0), y.T @ g, g.sum(0)]

    adam(params, grads, Xtr, np.eye(10)[ytr], epochs=60, lr=0.005)
    nodes = [
        helper.make_node("Gemm", ["input", "W1", "b1"], ["z1"], name="fc1"),
        helper.make_node("Relu", ["z1"], ["h"], name="relu1"),
        helper.make_node("Gemm", ["h", "W2", "b2"], ["z2"], name="fc2"),
        helper.make_node("Relu", ["z2"], ["r"], name="relu2"),
        helper.make_node("Gemm", ["r", "W3", "b3"], ["t"], name="fc3"),
        helper.make_node("Add", ["h", "t"], ["y"], name="skip"),
        helper.make_node("Gemm", ["y", "W4", "b4"], ["logits"], name="fc4"),
    ]
    inits = [init(n, p) for n, p in zip(["W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4"], params)]
    save(nodes, inits, [64], "digits_resmlp")
    print("resmlp: test accuracy", (fwd(Xte)[-1].argmax(1) == yte).mean())


# ---------------------------------------------------------------- residual net with squares
def make_ressq():
    Xtr, Xte, ytr, yte = digits()
    rng = np.random.default_rng(4)
    W1, W2, W3, W4 = he(rng, 64, 32) * 0.5, he(rng, 32, 32) * 0.5, he(rng, 32, 32) * 0.25, he(rng, 32, 10)
    b1, b2, b3, b4 = np.zeros(32), np.zeros(32), np.zeros(32), np.zeros(10)
    params = [W1, b1, W2, b2, W3, b3, W4, b4]

    def fwd(X):
        z1 = X @ W1 + b1; h = z1 * z1
        z2 = h @ W2 + b2; r = z2 * z2
        y = h + r @ W3 + b3
        return z1, h, z2, r, y, y @ W4 + b4

    def grads(X, Y):
        z1, h, z2, r, y, out = fwd(X)
        g = softmax_grad(out, Y)
        gy = g @ W4.T
        gz2 = (gy @ W3.T) * 2 * z2
        gz1 = (gy + gz2 @ W2.T) * 2 * z1
        return [X.T @ gz1, gz1.sum(0), h.T @ gz2, gz2.sum(0), r.T @ gy, gy.sum(0), y.T @ g, g.sum(0)]

    adam(params, grads, Xtr, np.eye(10)[ytr], epochs=60, lr=0.002)
    nodes = [
        helper.make_node("Gemm", ["input", "W1", "b1"], ["z1"], name="fc1"),
        helper.make_node("Mul", ["z1", "z1"], ["h"], name="square1"),
        helper.make_node("Gemm", ["h", "W2", "b2"], ["z2"], name="fc2"),
        helper.make_node("Mul", ["z2", "z2"], ["r"], name="square2"),
        helper.make_node("Gemm", ["r", "W3", "b3"], ["t"], name="fc3"),
        helper.make_node("Add", ["h", "t"], ["y"], name="skip"),
        helper.make_node("Gemm", ["y", "W4", "b4"], ["logits"], name="fc4"),
    ]
    inits = [init(n, p) for n, p in zip(["W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4"], params)]
    save(nodes, inits, [64], "digits_ressq")
    print("ressq: test accuracy", (fwd(Xte)[-1].argmax(1) == yte).mean())


# ---------------------------------------------------------------- residual CNN
def conv(X, W, b, stride=1):
    """X (n, c, h, w), W (m, c, 3, 3), pad 1."""
    Xp = np.pad(X, ((0, 0), (0, 0), (1, 1), (1, 1)))
    o = (X.shape[2] - 1) // stride + 1
    out = np.zeros((X.shape[0], W.shape[0], o, o))
    for ky in range(3):
        for kx in range(3):
            win = Xp[:, :, ky:ky + stride * (o - 1) + 1:stride, kx:kx + stride * (o - 1) + 1:stride]
            out += np.einsum("nchw,mc->nmhw", win, W[:, :, ky, kx])
    return out + b[None, :, None, None]


def make_rescnn():
    Xtr, Xte, ytr, yte = digits()
    rng = np.random.default_rng(2)
    Wc1, bc1 = rng.normal(0, 1 / 3, (4, 1, 3, 3)), rng.normal(0, 0.1, 4)
    Wc2, bc2 = rng.normal(0, 1 / 6, (4, 4, 3, 3)), rng.normal(0, 0.1, 4)
    Wc3, bc3 = rng.normal(0, 0.25 / 6, (4, 4, 3, 3)), rng.normal(0, 0.05, 4)

    def features(X):
        h = np.maximum(conv(X.reshape(-1, 1, 8, 8), Wc1, bc1, stride=2), 0)
        y = h + conv(np.maximum(conv(h, Wc2, bc2), 0), Wc3, bc3)
        return y.reshape(len(X), -1)

    clf = LogisticRegression(max_iter=3000, C=10.0).fit(features(Xtr), ytr)
    nodes = [
        helper.make_node("Conv", ["input", "Wc1", "bc1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["h"], name="relu1"),
        helper.make_node("Conv", ["h", "Wc2", "bc2"], ["c2"], name="conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "Wc3", "bc3"], ["c3"], name="conv3", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["h", "c3"], ["y"], name="skip"),
        helper.make_node("Flatten", ["y"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "W", "b"], ["logits"], name="fc", transB=1),
    ]
    inits = [init("Wc1", Wc1), init("bc1", bc1), init("Wc2", Wc2), init("bc2", bc2), init("Wc3", Wc3), init("bc3", bc3),
             init("W", clf.coef_), init("b", clf.intercept_)]
    save(nodes, inits, [1, 8, 8], "digits_rescnn")
    print("rescnn: test accuracy", clf.score(features(Xte), yte))


# ---------------------------------------------------------------- GELU MLPs
def gelu(z):
    return 0.5 * z * (1 + erf(z / np.sqrt(2)))


def dgelu(z):
    return 0.5 * (1 + erf(z / np.sqrt(2))) + z * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)


def make_gelu():
    Xtr, Xte, ytr, yte = digits()
    rng = np.random.default_rng(3)
    W1, W2 = he(rng, 64, 32), he(rng, 32, 10)
    b1, b2 = np.zeros(32), np.zeros(10)
    params = [W1, b1, W2, b2]

    def fwd(X):
        z = X @ W1 + b1
        a = gelu(z)
        return z, a, a @ W2 + b2

    def grads(X, Y):
        z, a, out = fwd(X)
        g = softmax_grad(out, Y)
        gz = (g @ W2.T) * dgelu(z)
        return [X.T @ gz, gz.sum(0), a.T @ g, g.sum(0)]

    adam(params, grads, Xtr, np.eye(10)[ytr], epochs=60, lr=0.005)
    inits = [init("W1", W1), init("b1", b1), init("W2", W2), init("b2", b2)]
    # torch.onnx.export(nn.GELU(), opset_version=13/14)
    erf_nodes = [
        const("sqrt2", np.sqrt(2.0)), const("one", 1.0), const("half", 0.5),
        helper.make_node("Div", ["z", "sqrt2"], ["d"], name="/act/Div"),
        helper.make_node("Erf", ["d"], ["e"], name="/act/Erf"),
        helper.make_node("Add", ["e", "one"], ["e1"], name="/act/Add"),
        helper.make_node("Mul", ["z", "e1"], ["m"], name="/act/Mul"),
        helper.make_node("Mul", ["m", "half"], ["a"], name="/act/Mul_1"),
    ]
    # torch.onnx.export(nn.GELU(approximate="tanh"), opset_version=13/14)
    tanh_nodes = [
        const("three", 3.0), const("kappa", 0.044715), const("beta", np.sqrt(2 / np.pi)), const("one", 1.0),
        const("half", 0.5),
        helper.make_node("Pow", ["z", "three"], ["z3"], name="/act/Pow"),
        helper.make_node("Mul", ["z3", "kappa"], ["k"], name="/act/Mul"),
        helper.make_node("Add", ["z", "k"], ["inner"], name="/act/Add"),
        helper.make_node("Mul", ["inner", "beta"], ["u"], name="/act/Mul_1"),
        helper.make_node("Tanh", ["u"], ["th"], name="/act/Tanh"),
        helper.make_node("Add", ["th", "one"], ["t1"], name="/act/Add_1"),
        helper.make_node("Mul", ["z", "half"], ["zh"], name="/act/Mul_2"),
        helper.make_node("Mul", ["zh", "t1"], ["a"], name="/act/Mul_3"),
    ]
    for act, name in [(erf_nodes, "digits_gelu_mlp"), (tanh_nodes, "digits_gelu_tanh_mlp")]:
        nodes = [helper.make_node("Gemm", ["input", "W1", "b1"], ["z"], name="fc1")] + act + [
            helper.make_node("Gemm", ["a", "W2", "b2"], ["logits"], name="fc2")]
        save(nodes, inits, [64], name)
    print("gelu: test accuracy", (fwd(Xte)[-1].argmax(1) == yte).mean())


if __name__ == "__main__":
    make_resmlp()
    make_ressq()
    make_rescnn()
    make_gelu()
