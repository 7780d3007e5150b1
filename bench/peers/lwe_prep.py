"""bench/peers.sh concrete: the breast-cancer split both sides use (the tests' split: a fixed
permutation, 70 % train), the standardized logistic regression for heinfer as ONNX, and the
raw arrays for Concrete ML (which trains its own quantized model the same way)."""
import sys

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skl2onnx import to_onnx

out = sys.argv[1]
x, y = load_breast_cancer(return_X_y=True)
x = x.astype(np.float32)
idx = np.random.default_rng(0).permutation(len(x))
k = int(0.7 * len(x))
tr, te = idx[:k], idx[k:]
est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x[tr], y[tr])
last = est.steps[-1][1]
m = to_onnx(est, x[:1], options={id(last): {"zipmap": False}}, target_opset={"": 15, "ai.onnx.ml": 3})
open(f"{out}/lr.onnx", "wb").write(m.SerializeToString())
np.save(f"{out}/train_x.npy", x[tr])
np.save(f"{out}/train_y.npy", y[tr].astype(np.int64))
np.save(f"{out}/test_x.npy", x[te])
np.save(f"{out}/test_y.npy", y[te].astype(np.int64))
np.save(f"{out}/clear_pred.npy", est.predict(x[te]).astype(np.int64))
