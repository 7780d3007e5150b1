"""bench/peers.sh concrete: the digits split both sides use for the MLP (models/make_models.py's:
load_digits / 16, train_test_split(test_size=0.2, random_state=0, stratify=y)), checked against
models/data/digits_{train,test}_img.npy, and the clear model's top-1 (onnxruntime on
models/digits_mlp.onnx) that heinfer's decrypted classes are compared with.
argv: DIR — writes DIR/mlp_{train,test}_{x,y}.npy and DIR/mlp_clear_pred.npy."""
import os
import sys

import numpy as np
import onnxruntime as ort
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

out = sys.argv[1]
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
x, y = load_digits(return_X_y=True)
x = (x / 16.0).astype(np.float32)
xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
# the repo's arrays came from the same split: both tools see the same samples
for name, a in (("digits_train_img", xtr), ("digits_test_img", xte)):
    ref = np.load(os.path.join(root, "models", "data", name + ".npy")).reshape(len(a), -1)
    if not np.array_equal(ref, a):
        sys.exit(f"digits_prep.py: models/data/{name}.npy is not make_models.py's split")
sess = ort.InferenceSession(os.path.join(root, "models", "digits_mlp.onnx"), providers=["CPUExecutionProvider"])
clear = sess.run(None, {sess.get_inputs()[0].name: xte})[0].argmax(1).astype(np.int64)
np.save(f"{out}/mlp_train_x.npy", xtr)
np.save(f"{out}/mlp_train_y.npy", ytr.astype(np.int64))
np.save(f"{out}/mlp_test_x.npy", xte)
np.save(f"{out}/mlp_test_y.npy", yte.astype(np.int64))
np.save(f"{out}/mlp_clear_pred.npy", clear)
print(f"digits_prep.py: clear MLP accuracy {np.mean(clear == yte):.4f} on {len(yte)} test samples", file=sys.stderr)
