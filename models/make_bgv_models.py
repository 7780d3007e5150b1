"""Builds the square-activation digits models that `--scheme bgv --quantize` compiles exactly.

    .venv/bin/python models/make_bgv_models.py     # writes models/digits_sq_mlp.onnx, models/digits_cryptonets3.onnx,
                                                   # their QDQ versions (*_qdq.onnx, *_qdq_pc.onnx) and (h)
    .venv/bin/python models/make_bgv_models.py qdyn  # (h) only: models/*_qdyn.onnx

(e) digits_sq_mlp:      Gemm 64->32 -> x*x -> Gemm 32->10 (numpy Adam)
(f) digits_cryptonets3: Conv 3x3 stride 2 pad 1 (4 ch) -> x*x -> Gemm 64->16 -> x*x -> Gemm 16->10:
    CryptoNets' shape scaled to 8x8 digits, trained by make_models.train.
(g) digits_sq_mlp_qdq, digits_cryptonets3_qdq: onnxruntime's quantize_static of (e) and (f), QDQ format,
    int8 weights per tensor, uint8 activations, calibrated on 200 training digits: `--scheme bgv` compiles
    them on their own integers. digits_sq_mlp_qdq_pc: the same with per-channel weights (refused by BGV).
(h) digits_sq_mlp_qdyn, digits_cryptonets3_qdyn: (e) and (f) as MatMul + Add, through onnxruntime's
    quantize_dynamic (MatMulInteger, and ConvInteger for (f)).
Seeded: re-running reproduces the files. Data: models/data/digits_*.npy (make_models.digits()).
"""
import numpy as np
from onnx import helper

from make_models import conv_weight, digits, graph, init, save, train


def make_sq_mlp():
    Xtr, Xte, ytr, yte = digits()
    rng = np.random.default_rng(1)
    W1 = rng.normal(0, np.sqrt(1 / 64), (64, 32)); b1 = np.zeros(32)
    W2 = rng.normal(0, np.sqrt(1 / 32), (32, 10)); b2 = np.zeros(10)
    params = [W1, b1, W2, b2]
    m = [np.zeros_like(p) for p in params]; v = [np.zeros_like(p) for p in params]
    Y = np.eye(10)[ytr]
    t = 0
    for ep in range(80):
        perm = rng.permutation(len(Xtr))
        for s in range(0, len(perm), 64):
            idx = perm[s:s + 64]
            x = Xtr[idx]
            h = x @ W1 + b1; a = h * h; out = a @ W2 + b2
            e = np.exp(out - out.max(1, keepdims=True)); p = e / e.sum(1, keepdims=True)
            g = (p - Y[idx]) / len(idx)
            gW2 = a.T @ g; gb2 = g.sum(0)
            gh = (g @ W2.T) * 2 * h
            gW1 = x.T @ gh; gb1 = gh.sum(0)
            t += 1
            for i, (pp, gg) in enumerate(zip(params, [gW1, gb1, gW2, gb2])):
                m[i] = 0.9 * m[i] + 0.1 * gg; v[i] = 0.999 * v[i] + 0.001 * gg * gg
                pp -= 0.003 * (m[i] / (1 - 0.9 ** t)) / (np.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8)
    nodes = [
        helper.make_node("Flatten", ["input"], ["x"], name="flatten", axis=1),
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="fc1"),
        helper.make_node("Mul", ["h", "h"], ["s"], name="square"),
        helper.make_node("Gemm", ["s", "W2", "b2"], ["logits"], name="fc2"),
    ]
    inits = [init("W1", W1), init("b1", b1), init("W2", W2), init("b2", b2)]
    save(graph(nodes, inits, [1, 8, 8], "logits", 10, "digits_sq_mlp"), "digits_sq_mlp")
    pred = ((Xte.reshape(len(Xte), -1) @ W1 + b1) ** 2 @ W2 + b2).argmax(1)
    print("e: test accuracy", (pred == yte).mean())


def make_cryptonets3():
    Xtr, Xte, ytr, yte = digits()
    (Wc, bc, W1, b1, W2, b2), _, o, predict = train(Xtr, ytr, 3, 2, 1, 4, "square", False, hidden=16, epochs=80)
    nodes = [
        helper.make_node("Conv", ["input", "Wc", "bc"], ["c"], name="conv1", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c", "c"], ["s1"], name="square1"),
        helper.make_node("Flatten", ["s1"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "W1", "b1"], ["h"], name="fc1"),
        helper.make_node("Mul", ["h", "h"], ["s2"], name="square2"),
        helper.make_node("Gemm", ["s2", "W2", "b2"], ["logits"], name="fc2"),
    ]
    inits = [init("Wc", conv_weight(Wc, 3, 4)), init("bc", bc), init("W1", W1), init("b1", b1), init("W2", W2),
             init("b2", b2)]
    save(graph(nodes, inits, [1, 8, 8], "logits", 10, "digits_cryptonets3"), "digits_cryptonets3")
    print("f: test accuracy", (predict(Xte).argmax(1) == yte).mean())


def make_qdq():
    import os
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    Xtr = digits()[0].reshape(-1, 1, 8, 8).astype(np.float32)
    here = os.path.dirname(os.path.abspath(__file__))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": Xtr[i:i + 1]} for i in range(200)])

        def get_next(self):
            return next(self.it, None)

    for base, out, per_channel in [("digits_sq_mlp", "digits_sq_mlp_qdq", False),
                                   ("digits_cryptonets3", "digits_cryptonets3_qdq", False),
                                   ("digits_sq_mlp", "digits_sq_mlp_qdq_pc", True)]:
        quantize_static(os.path.join(here, base + ".onnx"), os.path.join(here, out + ".onnx"), Reader(),
                        quant_format=QuantFormat.QDQ, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8, per_channel=per_channel)


def make_qdyn():
    """(h) digits_sq_mlp_qdyn, digits_cryptonets3_qdyn: (e) and (f) with their Gemms written as
    MatMul + Add (as skl2onnx and PyTorch write a Linear), then onnxruntime's quantize_dynamic:
    int8 weights, the input quantized per batch by DynamicQuantizeLinear, MatMulInteger (and
    ConvInteger for (f)'s Conv). `--scheme bgv` compiles them on their own weight integers,
    the input on DynamicQuantizeLinear's step over the data."""
    import os
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    here = os.path.dirname(os.path.abspath(__file__))
    for base in ("digits_sq_mlp", "digits_cryptonets3"):
        m = onnx.load(os.path.join(here, base + ".onnx"))
        g = m.graph
        nodes = []
        for n in g.node:
            if n.op_type == "Gemm":
                mm = n.output[0] + "_mm"
                nodes.append(helper.make_node("MatMul", [n.input[0], n.input[1]], [mm], name=n.name + "_mm"))
                nodes.append(helper.make_node("Add", [mm, n.input[2]], [n.output[0]], name=n.name + "_add"))
            else:
                nodes.append(n)
        del g.node[:]
        g.node.extend(nodes)
        onnx.checker.check_model(m)
        out = os.path.join(here, base + "_qdyn.onnx")
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, base + "_matmul.onnx")
            onnx.save(m, src)
            quantize_dynamic(src, out, weight_type=QuantType.QInt8)
        print("h:", base, sorted({n.op_type for n in onnx.load(out).graph.node}))


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["qdyn"]:  # only (h): the other files stay as they are
        make_qdyn()
        sys.exit(0)
    make_sq_mlp()
    make_cryptonets3()
    make_qdq()
    make_qdyn()
