"""Builds models/digits_deep_mlp.onnx: a deeper ReLU MLP on sklearn's load_digits for
client-aided refresh (`heinfer compile --client-aided`, docs/hybrid.md).

    .venv/bin/python models/make_deep_mlp.py

Flatten -> Gemm 64->32 -> Relu -> Gemm 32->32 -> Relu -> Gemm 32->32 -> Relu -> Gemm 32->32
-> Relu -> Gemm 32->10 (four hidden ReLU layers, trained by scikit-learn's MLPClassifier on
the same train split as make_models.py). Fully encrypted, each ReLU becomes a Chebyshev
polynomial that costs several levels: four of them need a deep prime chain (N = 2^16, or do
not fit at 128-bit security); client-aided, every segment is one matrix product.
Seeded: re-running reproduces the file.
"""
import os
import sys

import numpy as np
from onnx import helper
from sklearn.neural_network import MLPClassifier

from make_models import digits, graph, init, save


def make_deep_mlp(layers=4, name="digits_deep_mlp"):
    Xtr, Xte, ytr, yte = digits()
    clf = MLPClassifier(hidden_layer_sizes=(32,) * layers, activation="relu", max_iter=800,
                        random_state=0).fit(Xtr, ytr)
    nodes = [helper.make_node("Flatten", ["input"], ["x"], name="flatten", axis=1)]
    inits = []
    prev = "x"
    last = len(clf.coefs_) - 1
    for i, (W, b) in enumerate(zip(clf.coefs_, clf.intercepts_)):
        h = "logits" if i == last else f"h{i + 1}"
        nodes.append(helper.make_node("Gemm", [prev, f"W{i + 1}", f"b{i + 1}"], [h], name=f"fc{i + 1}"))
        inits += [init(f"W{i + 1}", W), init(f"b{i + 1}", b)]
        if i != last:
            prev = f"a{i + 1}"
            nodes.append(helper.make_node("Relu", [h], [prev], name=f"relu{i + 1}"))
    m = graph(nodes, inits, [1, 8, 8], "logits", 10, name)
    save(m, name)
    print("deep MLP: test accuracy", clf.score(Xte, yte))


if __name__ == "__main__":
    os.chdir(os.path.dirname(os.path.abspath(__file__)))
    # `make_deep_mlp.py 6`: six hidden layers (digits_deep6_mlp.onnx, not committed), a
    # network too deep for any 128-bit parameter set, which --client-aided still serves.
    k = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    make_deep_mlp(k, "digits_deep_mlp" if k == 4 else f"digits_deep{k}_mlp")
