"""A twin of breast_cancer_lr.onnx for the circuit-privacy distinguisher
(crates/client/tests/circuit_privacy.rs): different weights, the same outputs on one
fixed input, so that only the answer's CKKS noise can tell the two models apart.

The twin adds Δ to the class-1 coefficients (and −Δ to class 0's, keeping the binary
model's symmetry), with Δ orthogonal to the Scaler's output z0 for the first test row:
Δ·z0 = 0, so both models give that row the same logits (up to float32 rounding of the
stored coefficients, ~1e-6). ‖Δ‖ = 2‖w‖: large enough that the noise the weights
multiply differs, small enough that the calibration outputs (and so the parameters the
compiler picks) stay alike.

    .venv/bin/python models/make_twin_lr.py   # writes models/breast_cancer_lr_twin.onnx
"""
import os

import numpy as np
import onnx
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    m = onnx.load(os.path.join(HERE, "breast_cancer_lr.onnx"))
    x0 = np.load(os.path.join(HERE, "data", "breast_cancer_test_x.npy"))[:1].astype(np.float32)
    attrs = {(n.op_type, a.name): a for n in m.graph.node for a in n.attribute}
    off = np.array(attrs[("Scaler", "offset")].floats, dtype=np.float64)
    scale = np.array(attrs[("Scaler", "scale")].floats, dtype=np.float64)
    z0 = (x0[0].astype(np.float64) - off) * scale
    coef = attrs[("LinearClassifier", "coefficients")]
    w = np.array(coef.floats, dtype=np.float64).reshape(2, -1)
    v = np.random.default_rng(20).standard_normal(w.shape[1])
    delta = v - (v @ z0) / (z0 @ z0) * z0
    delta *= 2.0 * np.linalg.norm(w[1]) / np.linalg.norm(delta)
    w2 = w + np.stack([-delta, delta])
    del coef.floats[:]
    coef.floats.extend(w2.astype(np.float32).ravel().tolist())
    out = os.path.join(HERE, "breast_cancer_lr_twin.onnx")
    onnx.save(m, out)
    p = [ort.InferenceSession(f, providers=["CPUExecutionProvider"]).run(["probabilities"], {"input": x0})[0]
         for f in (os.path.join(HERE, "breast_cancer_lr.onnx"), out)]
    print(f"wrote {out}: |Δ| = {np.linalg.norm(delta):.3f} (|w| = {np.linalg.norm(w[1]):.3f}), "
          f"Δ·z0 = {delta @ z0:.2e}; probabilities on row 0: {p[0][0]} vs {p[1][0]}")


if __name__ == "__main__":
    main()
