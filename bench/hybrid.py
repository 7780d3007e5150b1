"""Public features and split inference against encrypting everything (issue #21 item 4).

For the breast-cancer logistic regression (all 569 samples of sklearn's load_breast_cancer;
20 of 30 features public, or split after the scaler), the digits MLP (the 360 test digits;
the top 32 of 64 pixels public) and the digits CNN (split after its first conv block:
conv, batch norm, ReLU, average pool run in clear by the client): compiles each variant,
then `heinfer run` on the whole set (decrypted top-1 against onnxruntime's on the ORIGINAL
model, query/answer bytes, keys; a split model's prefix runs in tract on the client) and
`heinfer bench` (median latency over 20 samples; the prefix counts in the client's time).
Prints a markdown table.

    cargo build --release -p cli && .venv/bin/python bench/hybrid.py [--samples-bench 20] [--only split] [--samples-run N]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "models", "data")
BIN = os.path.join(ROOT, "target", "release", "heinfer")

CASES = [
    # name, onnx, calibration, data loader, variants: (label, compile flags, kind of variant)
    ("breast cancer LR", "breast_cancer_lr", "breast_cancer_train_x", "bc",
     [("all encrypted", [], "full"), ("public 0-19", ["--public-features", "0-19"], "public"),
      ("split after the scaler", ["--split-at", "Scaler"], "split")]),
    ("digits MLP", "digits_mlp", "digits_train_img", "digits",
     [("all encrypted", [], "full"), ("public 0-31", ["--public-features", "0-31"], "public")]),
    ("digits CNN", "digits_cnn", "digits_train_img", "cnn",
     [("all encrypted", [], "full"), ("split after conv block 1", ["--split-at", "pool1"], "split")]),
]


def load(kind):
    if kind == "bc":
        from sklearn.datasets import load_breast_cancer

        return load_breast_cancer().data.astype(np.float32)
    if kind == "cnn":
        return np.load(os.path.join(DATA, "digits_test_img.npy")).astype(np.float32).reshape(-1, 1, 8, 8)
    return np.load(os.path.join(DATA, "digits_test_img.npy")).astype(np.float32).reshape(-1, 64)


def ort_top1(onnx, x):
    s = ort.InferenceSession(os.path.join(ROOT, "models", onnx + ".onnx"))
    out = s.run(None, {s.get_inputs()[0].name: x})[0]
    return (out.reshape(-1) if out.ndim == 1 or out.shape[-1] == 1 else out.argmax(-1)).astype(np.int64)


def sh(*args):
    r = subprocess.run([BIN, *args], capture_output=True, text=True, env=dict(os.environ, HEINFER_PYTHON=sys.executable))
    if r.returncode != 0:
        raise SystemExit(f"heinfer {' '.join(args)} failed:\n{r.stderr}")
    try:
        return json.loads(r.stdout)  # compile --json: one pretty-printed object
    except json.JSONDecodeError:
        return json.loads(r.stdout.strip().splitlines()[-1])  # run/bench: the summary is the last line


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples-bench", type=int, default=20)
    ap.add_argument("--samples-run", type=int, default=0, help="samples for the agreement (default: the whole set)")
    ap.add_argument("--only", choices=["public", "split"], help="only the models with this variant (and their full rows)")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for title, onnx, cal, kind, variants in CASES:
            if a.only and not any(v[2] == a.only for v in variants):
                continue
            x = load(kind)
            xf, yf = os.path.join(d, f"{kind}_x.npy"), os.path.join(d, f"{kind}_ort.npy")
            np.save(xf, x)
            np.save(yf, ort_top1(onnx, x))
            for variant, extra, vkind in variants:
                if a.only and vkind not in ("full", a.only):
                    continue
                name = f"{kind}_{vkind}"
                rep = sh("compile", os.path.join(ROOT, "models", onnx + ".onnx"), "--calibration",
                         os.path.join(DATA, cal + ".npy"), "--name", name, "-o", d, "--json", *extra)
                cap = ["--samples", str(a.samples_run)] if a.samples_run else []
                run = sh("run", os.path.join(d, name), "--input", xf, "--labels", yf, "--json", *cap)
                bench = sh("bench", os.path.join(d, name), "--input", xf, "--samples", str(a.samples_bench), "--json")
                rows.append((title, variant, run["samples"], rep, run, bench))
    print("| model | variant | N | q primes (levels + 1) | rotations (keys) | evaluate ms (median) | total ms (median) | query B | answer B | keys MB | top-1 vs onnxruntime |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for title, variant, n, rep, run, bench in rows:
        print(f"| {title} | {variant} | 2^{bench['params']['log_n']} | {bench['params']['q_primes']} | "
              f"{bench['params']['galois_keys']} | "
              f"{bench['ms']['evaluate']['median']:.1f} | {bench['ms']['total_median']:.1f} | {run['bytes']['query']} | "
              f"{run['bytes']['result']} | {run['bytes']['evaluation_keys'] / 1e6:.2f} | "
              f"{100 * run['accuracy']:.2f} % of {n} |")


if __name__ == "__main__":
    main()
