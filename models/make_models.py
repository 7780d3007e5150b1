"""Builds heinfer's reference ONNX models from scikit-learn's bundled real data sets.

    python models/make_models.py            # writes models/*.onnx and models/data/*.npy

(a) breast_cancer_lr: StandardScaler + LogisticRegression (skl2onnx)
(b) digits_mlp:       Gemm 64->32, Relu, Gemm 32->10, Softmax (trained by scikit-learn)
(c) digits_cnn:       Conv 3x3 (4 ch) -> BatchNorm -> Relu -> AveragePool 2x2 -> Gemm 36->32 -> Relu -> Gemm 32->10
(d) digits_cryptonets: Conv 5x5 stride 2 pad 1 (5 ch) -> x*x -> Gemm 45->32 -> x*x -> Gemm 32->10
(c) and (d) are trained here with numpy (hand-written backprop, Adam); graphs built with onnx.helper.
Everything is seeded, so re-running reproduces the files.
"""
import os
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
OPSET = [helper.make_opsetid("", 13)]


def save(model, name):
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(HERE, name + ".onnx"))


def npsave(name, a):
    np.save(os.path.join(DATA, name + ".npy"), a)


def init(name, a):
    return numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)


def graph(nodes, inits, in_shape, out_name, out_dim, name):
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N"] + list(in_shape))
    out = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", out_dim])
    g = helper.make_graph(nodes, name, [inp], [out], inits)
    return helper.make_model(g, opset_imports=OPSET, producer_name="heinfer-models")


# ---------------------------------------------------------------- (a)
def make_lr():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    X, y = load_breast_cancer(return_X_y=True)
    X = X.astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=0)).fit(Xtr, ytr)
    onx = convert_sklearn(
        clf, initial_types=[("input", FloatTensorType([None, X.shape[1]]))],
        options={id(clf.steps[-1][1]): {"zipmap": False}}, target_opset={"": 13, "ai.onnx.ml": 1})
    onnx.save(onx, os.path.join(HERE, "breast_cancer_lr.onnx"))
    npsave("breast_cancer_train_x", Xtr)
    npsave("breast_cancer_test_x", Xte)
    npsave("breast_cancer_test_y", yte.astype(np.int64))
    print("a: test accuracy", clf.score(Xte, yte))


def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)


# ---------------------------------------------------------------- (b)
def make_mlp():
    from sklearn.neural_network import MLPClassifier

    Xtr, Xte, ytr, yte = digits()
    clf = MLPClassifier(hidden_layer_sizes=(32,), activation="relu", max_iter=600, random_state=0).fit(Xtr, ytr)
    W1, W2 = clf.coefs_
    b1, b2 = clf.intercepts_
    nodes = [
        helper.make_node("Gemm", ["input", "W1", "b1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["a"], name="relu1"),
        helper.make_node("Gemm", ["a", "W2", "b2"], ["logits"], name="fc2"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
    ]
    m = graph(nodes, [init("W1", W1), init("b1", b1), init("W2", W2), init("b2", b2)], [64], "probabilities", 10, "digits_mlp")
    save(m, "digits_mlp")
    npsave("digits_test_y", yte.astype(np.int64))
    npsave("digits_train_img", Xtr.reshape(-1, 1, 8, 8))
    npsave("digits_test_img", Xte.reshape(-1, 1, 8, 8))
    print("b: test accuracy", clf.score(Xte, yte))


# ---------------------------------------------------------------- numpy training for (c), (d)
def im2col(X, k, stride, pad):
    n = X.shape[0]
    Xp = np.pad(X.reshape(n, 8, 8), ((0, 0), (pad, pad), (pad, pad)))
    o = (8 + 2 * pad - k) // stride + 1
    cols = np.stack([Xp[:, i * stride:i * stride + k, j * stride:j * stride + k].reshape(n, -1)
                     for i in range(o) for j in range(o)], axis=1)
    return cols, o  # (n, o*o, k*k)


def train(Xtr, ytr, k, stride, pad, ch, act, pool, hidden=32, epochs=60, seed=0):
    rng = np.random.default_rng(seed)
    cols, o = im2col(Xtr, k, stride, pad)
    Wc = rng.normal(0, 1 / k, (k * k, ch))
    bc = np.zeros(ch)
    po = o // 2 if pool else o
    feat = ch * po * po
    W1 = rng.normal(0, np.sqrt(2 / feat), (feat, hidden)); b1 = np.zeros(hidden)
    W2 = rng.normal(0, np.sqrt(2 / hidden), (hidden, 10)); b2 = np.zeros(10)
    params = [Wc, bc, W1, b1, W2, b2]
    m = [np.zeros_like(p) for p in params]; v = [np.zeros_like(p) for p in params]
    Y = np.eye(10)[ytr]
    # pooling as a matrix over one channel's o*o map
    P = np.zeros((o * o, po * po))
    if pool:
        for i in range(po):
            for j in range(po):
                for di in range(2):
                    for dj in range(2):
                        P[(2 * i + di) * o + 2 * j + dj, i * po + j] = 0.25
    else:
        P = np.eye(o * o)
    f = (lambda z: np.maximum(z, 0)) if act == "relu" else (lambda z: z * z)
    df = (lambda z: (z > 0).astype(float)) if act == "relu" else (lambda z: 2 * z)

    def fwd(cols, bn=None):
        z = cols @ Wc + bc                          # (n, o*o, ch)
        if bn is None:
            mu, var = z.mean(axis=(0, 1)), z.var(axis=(0, 1))
        else:
            mu, var = bn
        zn = (z - mu) / np.sqrt(var + 1e-5) if act == "relu" else z
        a = f(zn)
        pooled = np.einsum("npc,pq->ncq", a, P).reshape(len(cols), -1)  # channel-major = NCHW flatten
        h = pooled @ W1 + b1
        ha = f(h)
        out = ha @ W2 + b2
        return z, zn, a, pooled, h, ha, out, (mu, var)

    lr, bs, t = 0.01 if act == "relu" else 0.003, 64, 0
    for ep in range(epochs):
        perm = rng.permutation(len(Xtr))
        for s in range(0, len(perm), bs):
            idx = perm[s:s + bs]
            c = cols[idx]
            z, zn, a, pooled, h, ha, out, bn = fwd(c)
            e = np.exp(out - out.max(1, keepdims=True)); p = e / e.sum(1, keepdims=True)
            g = (p - Y[idx]) / len(idx)
            gW2 = ha.T @ g; gb2 = g.sum(0)
            gh = (g @ W2.T) * df(h)
            gW1 = pooled.T @ gh; gb1 = gh.sum(0)
            gp = (gh @ W1.T).reshape(len(idx), ch, -1)
            ga = np.einsum("ncq,pq->npc", gp, P)
            gzn = ga * df(zn)
            gz = gzn / np.sqrt(bn[1] + 1e-5) if act == "relu" else gzn
            gWc = np.einsum("npk,npc->kc", c, gz); gbc = gz.sum((0, 1))
            t += 1
            for i, (pp, gg) in enumerate(zip(params, [gWc, gbc, gW1, gb1, gW2, gb2])):
                m[i] = 0.9 * m[i] + 0.1 * gg; v[i] = 0.999 * v[i] + 0.001 * gg * gg
                pp -= lr * (m[i] / (1 - 0.9 ** t)) / (np.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8)
    bn = fwd(cols)[7]
    return params, bn, o, lambda X: fwd(im2col(X, k, stride, pad)[0], bn)[6]


def conv_weight(Wc, k, ch):
    return Wc.T.reshape(ch, 1, k, k)


def make_cnn():
    Xtr, Xte, ytr, yte = digits()
    (Wc, bc, W1, b1, W2, b2), (mu, var), o, predict = train(Xtr, ytr, 3, 1, 0, 4, "relu", True)
    nodes = [
        helper.make_node("Conv", ["input", "Wc", "bc"], ["c"], name="conv1", kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["bn"], name="bn1", epsilon=1e-5),
        helper.make_node("Relu", ["bn"], ["r1"], name="relu1"),
        helper.make_node("AveragePool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p1"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "W1", "b1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["r2"], name="relu2"),
        helper.make_node("Gemm", ["r2", "W2", "b2"], ["logits"], name="fc2"),
    ]
    inits = [init("Wc", conv_weight(Wc, 3, 4)), init("bc", bc), init("gamma", np.ones(4)), init("beta", np.zeros(4)),
             init("mean", mu), init("var", var), init("W1", W1), init("b1", b1), init("W2", W2), init("b2", b2)]
    save(graph(nodes, inits, [1, 8, 8], "logits", 10, "digits_cnn"), "digits_cnn")
    print("c: test accuracy", (predict(Xte).argmax(1) == yte).mean())


def make_cryptonets():
    Xtr, Xte, ytr, yte = digits()
    (Wc, bc, W1, b1, W2, b2), _, o, predict = train(Xtr, ytr, 5, 2, 1, 5, "square", False, epochs=80)
    nodes = [
        helper.make_node("Conv", ["input", "Wc", "bc"], ["c"], name="conv1", kernel_shape=[5, 5], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c", "c"], ["s1"], name="square1"),
        helper.make_node("Flatten", ["s1"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "W1", "b1"], ["h"], name="fc1"),
        helper.make_node("Mul", ["h", "h"], ["s2"], name="square2"),
        helper.make_node("Gemm", ["s2", "W2", "b2"], ["logits"], name="fc2"),
    ]
    inits = [init("Wc", conv_weight(Wc, 5, 5)), init("bc", bc), init("W1", W1), init("b1", b1), init("W2", W2), init("b2", b2)]
    save(graph(nodes, inits, [1, 8, 8], "logits", 10, "digits_cryptonets"), "digits_cryptonets")
    print("d: test accuracy", (predict(Xte).argmax(1) == yte).mean())


if __name__ == "__main__":
    os.makedirs(DATA, exist_ok=True)
    make_lr()
    make_mlp()
    make_cnn()
    make_cryptonets()
