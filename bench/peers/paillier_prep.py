"""bench/peers.sh paillier: the model and data every library runs.

usage: paillier_prep.py OUTDIR TIMED — trains scikit-learn's LogisticRegression on
load_breast_cancer behind a StandardScaler (the same split and settings as
models/make_models.py), folds the scaler into the weights (w/σ, b − Σ w·μ/σ), and writes
OUTDIR/model.json (weights, bias, the raw test samples, sklearn's decision_function on them,
TIMED = how many samples each library times), OUTDIR/lr_linear.onnx (the folded model as one
Gemm, for heinfer's CKKS) and OUTDIR/{train,test}_x.npy.
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

out, timed = sys.argv[1], int(sys.argv[2])
X, y = load_breast_cancer(return_X_y=True)
X = X.astype(np.float32)
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=0)).fit(Xtr, ytr)
sc, lr = clf.steps[0][1], clf.steps[1][1]
w = lr.coef_ / sc.scale_  # (1, 30)
b = lr.intercept_ - (lr.coef_ * sc.mean_ / sc.scale_).sum(axis=1)
Xte64 = Xte.astype(np.float64)
decision = clf.decision_function(Xte64)  # in float64, as the folded weights are
folded = Xte64 @ w.T + b
assert np.abs(folded[:, 0] - decision).max() < 1e-9, "folding the scaler changed the scores"
json.dump(
    {
        "weights": w.tolist(),
        "bias": b.tolist(),
        "x": Xte64.tolist(),
        "decision": decision.tolist(),
        "y": yte.tolist(),
        "timed": timed,
        "accuracy": float(clf.score(Xte, yte)),
    },
    open(os.path.join(out, "model.json"), "w"),
)
gemm = helper.make_node("Gemm", ["input", "W", "B"], ["score"], transB=1)
g = helper.make_graph(
    [gemm], "breast_cancer_lr_folded",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", X.shape[1]])],
    [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1])],
    [numpy_helper.from_array(w.astype(np.float32), "W"), numpy_helper.from_array(b.astype(np.float32), "B")],
)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="heinfer-bench")
onnx.checker.check_model(m)
onnx.save(m, os.path.join(out, "lr_linear.onnx"))
np.save(os.path.join(out, "train_x.npy"), Xtr)
np.save(os.path.join(out, "test_x.npy"), Xte)
print(f"paillier_prep: {len(Xte)} test samples, test accuracy {clf.score(Xte, yte):.4f}", file=sys.stderr)
