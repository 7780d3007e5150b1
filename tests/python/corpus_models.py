"""The compiler corpus: models made the way scikit-learn (skl2onnx) and PyTorch
(`torch.onnx.export`, reproduced node for node with the onnx helper, since PyTorch is
not installed here) users make them, with their real data splits.

`build(dir)` writes every model and data file and returns the cases:
(name, onnx path, calibration .npy, test .npy, labels .npy or None, kind) where kind is
"classifier" or "regressor". Run as a script to list them.
"""
import os
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")


def _split(x, y, seed=0, frac=0.3):
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))
    k = int(len(x) * (1 - frac))
    return x[idx[:k]], x[idx[k:]], y[idx[:k]], y[idx[k:]]


def datasets():
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
    xd, yd = load_digits(return_X_y=True)
    xb, yb = load_breast_cancer(return_X_y=True)
    xr, yr = load_diabetes(return_X_y=True)
    return {
        "digits": _split((xd / 16.0).astype(np.float32), yd),
        "cancer": _split(xb.astype(np.float32), yb),
        "diabetes": _split(xr.astype(np.float32), yr.astype(np.float32)),
    }


def sklearn_models():
    """(name, dataset, estimator, zipmap): zipmap None where the converter has no such option."""
    from sklearn.decomposition import PCA, TruncatedSVD
    from sklearn.linear_model import (Lasso, LinearRegression, LogisticRegression, Ridge, SGDClassifier,
                                      SGDRegressor)
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler
    from sklearn.svm import LinearSVC, LinearSVR

    def mlp(act, **kw):
        return MLPClassifier(hidden_layer_sizes=(16,), activation=act, max_iter=300, random_state=0, **kw)

    def mlpr(act):
        return make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(16,), activation=act, alpha=1.0,
                                                            max_iter=2000, learning_rate_init=0.001, random_state=0))
    return [
        ("sk_logreg_binary_zipmap", "cancer", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), True),
        ("sk_logreg_binary", "cancer", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), False),
        ("sk_logreg_multi_zipmap", "digits", LogisticRegression(max_iter=1000), True),
        ("sk_logreg_multi", "digits", LogisticRegression(max_iter=1000), False),
        ("sk_linearsvc_binary", "cancer", LinearSVC(C=0.01, max_iter=20000), None),
        ("sk_linearsvc_multi", "digits", LinearSVC(), None),
        ("sk_sgd_hinge_multi", "digits", SGDClassifier(random_state=0), None),
        ("sk_sgd_log_binary", "cancer", make_pipeline(StandardScaler(), SGDClassifier(loss="log_loss", random_state=0)), False),
        ("sk_mlp_relu_zipmap", "digits", mlp("relu"), True),
        ("sk_mlp_logistic", "digits", mlp("logistic"), False),
        ("sk_mlp_tanh_binary_zipmap", "cancer", make_pipeline(StandardScaler(), mlp("tanh")), True),
        ("sk_mlp_identity", "digits", mlp("identity"), False),
        ("sk_mlp_relu_binary", "cancer", make_pipeline(MinMaxScaler(), mlp("relu")), False),
        ("sk_pipe_minmax_pca_logreg", "digits", make_pipeline(MinMaxScaler(), PCA(20), LogisticRegression(max_iter=1000)), False),
        ("sk_pipe_maxabs_svd_sgd", "digits", make_pipeline(MaxAbsScaler(), TruncatedSVD(20, random_state=0), SGDClassifier(random_state=0)), None),
        ("sk_pipe_standard_pca_mlp", "digits", make_pipeline(StandardScaler(), PCA(24), mlp("tanh")), False),
        ("sk_linreg", "diabetes", LinearRegression(), None),
        ("sk_ridge", "diabetes", Ridge(alpha=0.1), None),
        ("sk_lasso", "diabetes", Lasso(alpha=0.05), None),
        ("sk_linearsvr", "diabetes", make_pipeline(StandardScaler(), LinearSVR(C=10, max_iter=10000)), None),
        ("sk_sgd_regressor", "diabetes", make_pipeline(StandardScaler(), SGDRegressor(random_state=0)), None),
        ("sk_mlpregressor_relu", "diabetes", mlpr("relu"), None),
        ("sk_mlpregressor_tanh", "diabetes", mlpr("tanh"), None),
    ]


def _save_sklearn(d, name, est, zipmap, x):
    from skl2onnx import to_onnx
    last = est.steps[-1][1] if hasattr(est, "steps") else est
    opts = {id(last): {"zipmap": zipmap}} if zipmap is not None else None
    m = to_onnx(est, x[:1], options=opts, target_opset={"": 15, "ai.onnx.ml": 3})
    p = os.path.join(d, name + ".onnx")
    with open(p, "wb") as f:
        f.write(m.SerializeToString())
    return p


# ---- PyTorch exporter patterns -------------------------------------------------------

def _ort_run(model, x):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


class Net:
    """A graph written as torch.onnx.export writes it: unnamed-ish nodes `/layer/Op`,
    weights as initializers `layer.weight`, small constants as Constant nodes."""

    def __init__(self, seed, opset=17):
        from onnx import helper
        self.h = helper
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.opset, self.k = [], [], opset, 0

    def name(self, op):
        self.k += 1
        return f"/layers.{self.k}/{op}"

    def init(self, name, a):
        from onnx import numpy_helper
        self.inits.append(numpy_helper.from_array(np.asarray(a), name))
        return name

    def const(self, a):
        from onnx import numpy_helper
        out = self.name("Constant") + "_output_0"
        self.nodes.append(self.h.make_node("Constant", [], [out], name=out[:-9], value=numpy_helper.from_array(np.asarray(a))))
        return out

    def op(self, op, inputs, n_out=1, **attrs):
        nm = self.name(op)
        outs = [f"{nm}_output_{i}" for i in range(n_out)]
        self.nodes.append(self.h.make_node(op, inputs, outs, name=nm, **attrs))
        return outs[0] if n_out == 1 else outs

    def conv(self, x, cin, cout, k, group=1, pad=1, bn=True):
        w = self.rng.normal(0, np.sqrt(2.0 / (cin // group * k * k)), (cout, cin // group, k, k)).astype(np.float32)
        nm = f"conv{self.k}"
        y = self.op("Conv", [x, self.init(nm + ".weight", w), self.init(nm + ".bias", np.zeros(cout, np.float32))],
                    kernel_shape=[k, k], pads=[pad] * 4, group=group)
        if bn:
            r = self.rng
            y = self.op("BatchNormalization", [y, self.init(nm + "bn.weight", r.uniform(0.5, 1.5, cout).astype(np.float32)),
                                               self.init(nm + "bn.bias", r.normal(0, 0.1, cout).astype(np.float32)),
                                               self.init(nm + "bn.running_mean", r.normal(0, 0.1, cout).astype(np.float32)),
                                               self.init(nm + "bn.running_var", r.uniform(0.5, 1.5, cout).astype(np.float32))],
                        epsilon=1e-5)
        return y

    def linear(self, x, fin, fout, w=None, b=None):
        nm = f"fc{self.k}"
        if w is None:
            w = self.rng.normal(0, np.sqrt(1.0 / fin), (fout, fin)).astype(np.float32)
            b = np.zeros(fout, np.float32)
        return self.op("Gemm", [x, self.init(nm + ".weight", w.astype(np.float32)), self.init(nm + ".bias", b.astype(np.float32))],
                       transB=1)

    def view_flat(self, x):
        """x.view(x.size(0), -1) as the exporter writes it."""
        s = self.op("Shape", [x])
        g = self.op("Gather", [s, self.const(np.array(0, np.int64))], axis=0)
        if self.opset >= 13:
            u = self.op("Unsqueeze", [g, self.const(np.array([0], np.int64))])
        else:
            u = self.op("Unsqueeze", [g], axes=[0])
        c = self.op("Concat", [u, self.const(np.array([-1], np.int64))], axis=0)
        return self.op("Reshape", [x, c])

    def model(self, x_shape, out, n_out):
        from onnx import TensorProto
        g = self.h.make_graph(self.nodes, "torch_jit", [self.h.make_tensor_value_info("input", TensorProto.FLOAT, ["batch"] + x_shape)],
                              [self.h.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", n_out])], self.inits)
        return self.h.make_model(g, opset_imports=[self.h.make_opsetid("", self.opset)], producer_name="pytorch")

    def fit_head(self, feat, n_feat, x_train, y_train, n_cls, x_shape, reg=1e-1):
        """The classifier head fitted by ridge regression on the features: a trained-like
        model with real margins (what agreement is measured on)."""
        from onnx import TensorProto
        probe = self.model(x_shape, feat, n_feat)
        probe.graph.output[0].CopyFrom(self.h.make_tensor_value_info(feat, TensorProto.FLOAT, None))
        f = _ort_run(probe, x_train).reshape(len(x_train), -1).astype(np.float64)
        # Ridge on centred features, regularised relative to their scale: no feature that
        # barely varies gets a huge weight (which would make the model ill-conditioned).
        mu = f.mean(0)
        z = f - mu
        t = np.eye(n_cls)[y_train] * 2 - 1
        g = z.T @ z
        w = np.linalg.solve(g + reg * np.trace(g) / len(g) * np.eye(len(g)), z.T @ t).T
        b = -w @ mu
        return self.linear(feat, n_feat, n_cls, w, b)


def torch_models(xtr, ytr):
    """Digits as 1×8×8 images (or 8 tokens of 8) through the exporter's patterns."""
    img = xtr.reshape(-1, 1, 8, 8)
    seq = xtr.reshape(-1, 8, 8)
    out = []

    # Conv–BN–ReLU6, depthwise Conv–BN–HardSwish, x.view(x.size(0), -1), Gemm (MobileNet block).
    n = Net(1, opset=14)
    y = n.op("Clip", [n.conv("input", 1, 8, 3), n.const(np.array(0, np.float32)), n.const(np.array(6, np.float32))])
    y = n.op("HardSwish", [n.conv(y, 8, 8, 3, group=8)])
    y = n.op("AveragePool", [y], kernel_shape=[2, 2], strides=[2, 2])
    y = n.view_flat(y)
    out.append(("pt_mobilenet_block", n, n.fit_head(y, 128, img, ytr, 10, [1, 8, 8], reg=4.0), [1, 8, 8], img))

    # Pad, Conv, SiLU as x*Sigmoid(x), GlobalAveragePool + a second branch ReduceMean, Concat of computed tensors.
    n = Net(2, opset=17)
    p = n.op("Pad", ["input", n.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))], mode="constant")
    c = n.conv(p, 1, 12, 3, pad=0)
    s = n.op("Mul", [c, n.op("Sigmoid", [c])])
    s2 = n.op("Mul", [n.conv(s, 12, 12, 3), n.op("Sigmoid", [n.nodes[-1].output[0]])]) if False else None
    g = n.op("AveragePool", [s], kernel_shape=[2, 2], strides=[2, 2])
    g = n.view_flat(g)
    r = n.op("ReduceMean", [s], axes=[2], keepdims=0)
    r = n.view_flat(r)
    y = n.op("Concat", [g, r], axis=1)
    out.append(("pt_silu_concat", n, n.fit_head(y, 12 * 16 + 12 * 8, img, ytr, 10, [1, 8, 8]), [1, 8, 8], img))

    # Rows as tokens: Transpose, batched MatMul, Elu, Split into halves, Selu and Mish
    # (opset 18: Mish is an op, ReduceMean takes its axes as an input), Concat, Slice.
    n = Net(3, opset=18)
    t = n.op("Transpose", ["input"], perm=[0, 2, 1])
    m = n.op("MatMul", [t, n.init("proj.weight", n.rng.normal(0, 0.4, (8, 16)).astype(np.float32))])
    m = n.op("Add", [m, n.init("proj.bias", n.rng.normal(0, 0.1, 16).astype(np.float32))])
    a, b = n.op("Split", [m, n.const(np.array([8, 8], np.int64))], n_out=2, axis=2)
    a = n.op("Elu", [a], alpha=1.0)
    b = n.op("Mish", [b])
    y = n.op("Concat", [a, b], axis=2)
    y1 = n.op("ReduceMean", [y, n.const(np.array([1], np.int64))], keepdims=0)
    y2 = n.op("Slice", [y, n.const(np.array([0], np.int64)), n.const(np.array([4], np.int64)), n.const(np.array([1], np.int64))])
    y2 = n.view_flat(y2)
    y = n.op("Concat", [y1, y2], axis=1)
    out.append(("pt_tokens_split_mish", n, n.fit_head(y, 16 + 64, seq, ytr, 10, [8, 8]), [8, 8], seq))

    # MLP with HardSigmoid, Selu, Dropout, Constant scale, Mish written out as x*tanh(softplus(x)).
    n = Net(4, opset=14)
    f = n.op("Flatten", ["input"], axis=1)
    h = n.op("Selu", [n.linear(f, 64, 32)])
    h = n.op("Mul", [n.op("HardSigmoid", [n.linear(h, 32, 32)], alpha=1 / 6, beta=0.5), n.const(np.array(2.0, np.float32))])
    h = n.op("Dropout", [h])
    l = n.linear(h, 32, 24)
    h = n.op("Mul", [l, n.op("Tanh", [n.op("Softplus", [l])])])
    out.append(("pt_mlp_selu_hardsigmoid_mish", n, n.fit_head(h, 24, img, ytr, 10, [1, 8, 8]), [1, 8, 8], img))
    # Conv–BN–ReLU–MaxPool 2×2 (approximated as pairwise maxima), Flatten, Gemm.
    n = Net(5, opset=13)
    y = n.op("Relu", [n.conv("input", 1, 4, 3)])
    y = n.op("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2])
    y = n.op("Flatten", [y], axis=1)
    out.append(("pt_maxpool_cnn", n, n.fit_head(y, 64, img, ytr, 10, [1, 8, 8], reg=4.0), [1, 8, 8], img))
    return out


def qdq_models(d, base_path, x_cal, x_shape):
    """onnxruntime's quantizers on a float model: QDQ int8 per-channel, QDQ uint8 per-tensor, dynamic."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": x_cal[i:i + 1]} for i in range(0, 200)])

        def get_next(self):
            return next(self.it, None)
    out = []
    for name, wt, at, per_ch in [("qdq_s8_per_channel", QuantType.QInt8, QuantType.QInt8, True),
                                 ("qdq_u8_per_tensor", QuantType.QUInt8, QuantType.QUInt8, False)]:
        p = os.path.join(d, name + ".onnx")
        quantize_static(base_path, p, Reader(), quant_format=QuantFormat.QDQ, weight_type=wt, activation_type=at,
                        per_channel=per_ch)
        out.append((name, p))
    return out


# Every case's name, without building (for pytest's parametrisation).
CASE_NAMES = [(n,) for n, *_ in sklearn_models()] + [(n,) for n in (
    "pt_mobilenet_block", "pt_silu_concat", "pt_tokens_split_mish", "pt_mlp_selu_hardsigmoid_mish", "pt_maxpool_cnn",
    "qdq_s8_per_channel", "qdq_u8_per_tensor", "qdyn_mlp")]


def build(d):
    import onnx
    os.makedirs(d, exist_ok=True)
    data = datasets()
    cases = []
    saved = set()

    def save_data(key, arrays):
        xtr, xte, ytr, yte = arrays
        if key not in saved:
            np.save(os.path.join(d, f"{key}_train.npy"), xtr)
            np.save(os.path.join(d, f"{key}_test.npy"), xte)
            np.save(os.path.join(d, f"{key}_test_y.npy"), yte.astype(np.int64) if key != "diabetes" else yte)
            saved.add(key)
        return [os.path.join(d, f"{key}_{s}.npy") for s in ("train", "test", "test_y")]

    for name, ds, est, zm in sklearn_models():
        print("building", name, file=sys.stderr)
        xtr, xte, ytr, yte = data[ds]
        if name.startswith("sk_mlpregressor"):
            # Standardised targets (as TransformedTargetRegressor would): an MLP regressing
            # raw diabetes targets (~150) drives its hidden units to ±50, which no
            # low-degree polynomial follows; the model predicts z-scores instead.
            est.fit(xtr, (ytr - ytr.mean()) / ytr.std())
        else:
            est.fit(xtr, ytr)
        p = _save_sklearn(d, name, est, zm, xtr)
        cal, te, lab = save_data(ds, data[ds])
        kind = "regressor" if ds == "diabetes" else "classifier"
        cases.append((name, p, cal, te, lab if kind == "classifier" else None, kind))

    xtr, xte, ytr, yte = data["digits"]
    for shape_key, shape in (("img", [1, 8, 8]), ("seq", [8, 8])):
        np.save(os.path.join(d, f"digits_{shape_key}_train.npy"), xtr.reshape(-1, *shape))
        np.save(os.path.join(d, f"digits_{shape_key}_test.npy"), xte.reshape(-1, *shape))
    np.save(os.path.join(d, "digits_test_y.npy"), yte.astype(np.int64))
    first = None
    for name, net, head, shape, _ in torch_models(xtr, ytr):
        m = net.model(shape, head, 10)
        onnx.checker.check_model(m)
        p = os.path.join(d, name + ".onnx")
        onnx.save(m, p)
        key = "img" if shape == [1, 8, 8] else "seq"
        cases.append((name, p, os.path.join(d, f"digits_{key}_train.npy"), os.path.join(d, f"digits_{key}_test.npy"),
                      os.path.join(d, "digits_test_y.npy"), "classifier"))
        if first is None:
            first = p
    for name, p in qdq_models(d, first, xtr.reshape(-1, 1, 8, 8), [1, 8, 8]):
        cases.append((name, p, os.path.join(d, "digits_img_train.npy"), os.path.join(d, "digits_img_test.npy"),
                      os.path.join(d, "digits_test_y.npy"), "classifier"))
    # quantize_dynamic: an MLP's weights int8, its input quantized per sample (MatMulInteger).
    from onnxruntime.quantization import QuantType, quantize_dynamic
    sk = [c for c in cases if c[0] == "sk_mlp_identity"]
    if sk:
        p = os.path.join(d, "qdyn_mlp.onnx")
        quantize_dynamic(sk[0][1], p, weight_type=QuantType.QInt8)
        cases.append(("qdyn_mlp",) + (p,) + sk[0][2:])
    return cases


if __name__ == "__main__":
    for c in build(sys.argv[1] if len(sys.argv) > 1 else "/tmp/heinfer-corpus"):
        print(*c)
