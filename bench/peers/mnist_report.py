"""Table + final JSON line for bench/peers.sh mnist.

usage: mnist_report.py OUTDIR — reads OUTDIR/heinfer_<cfg>_{bench,compile}.json,
OUTDIR/heinfer_<cfg>_decrypt.jsonl (decrypted outputs of the first images) and
OUTDIR/tenseal.json, checks heinfer's decrypted outputs against the plaintext network
(numpy, models/make_tenseal_mnist.py) and prints the comparison.
"""
import glob
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models"))
import make_tenseal_mnist as net  # noqa: E402

out = sys.argv[1]
w = {k: v.astype(np.float64) for k, v in np.load(os.path.join(HERE, "..", "..", "models", "tenseal_mnist_weights.npz")).items()}
x = np.load(os.path.join(out, "data", "mnist28_test_img.npy"))[:, 0]
GOAL = {"eval_s": 0.1, "keys_mb": 10.0, "query_mb": 0.25}

rows = {}
for bench in sorted(glob.glob(os.path.join(out, "heinfer_*_bench.json"))):
    cfg = os.path.basename(bench)[len("heinfer_"):-len("_bench.json")]
    b = json.load(open(bench))
    c = json.load(open(os.path.join(out, f"heinfer_{cfg}_compile.json")))
    dec = [json.loads(line) for line in open(os.path.join(out, f"heinfer_{cfg}_decrypt.jsonl")) if line.strip()]
    y = np.array([d["output"] for d in dec])
    ref = net.forward(w, x[: len(y)])
    rows[f"heinfer {cfg}"] = {
        "eval_s": b["ms"]["evaluate"]["median"] / 1e3,
        "encrypt_ms": b["ms"]["encrypt"]["median"],
        "decrypt_ms": b["ms"]["decrypt"]["median"],
        "keys": b["bytes"]["evaluation_keys"],
        "query": b["bytes"]["query"],
        "result": b["bytes"]["result"],
        "samples_timed": b["samples"],
        "checked": len(y),
        "max_abs_error_vs_plaintext": float(np.abs(y - ref).max()),
        "top1_agreement_vs_plaintext": float((y.argmax(1) == ref.argmax(1)).mean()),
        "max_abs_logit": float(np.abs(ref).max()),
        "params": f"N=2^{c['log_n']} q={len(c['q_bits'])}x~{round(c['log_scale'])}b dnum={c['dnum']} galois={c['galois_keys']}",
    }
ts_path = os.path.join(out, "tenseal.json")
if os.path.exists(ts_path):
    t = json.load(open(ts_path))
    rows["tenseal " + t.get("version", "")] = {
        "eval_s": t["ms"]["evaluate"] / 1e3,
        "encrypt_ms": t["ms"]["encrypt"],
        "decrypt_ms": t["ms"]["decrypt"],
        "keys": t["bytes"]["evaluation_keys"],
        "query": t["bytes"]["query"],
        "result": t["bytes"]["result"],
        "samples_timed": t["samples"],
        "checked": t["samples"],
        "max_abs_error_vs_plaintext": t["max_abs_error_vs_plaintext"],
        "top1_agreement_vs_plaintext": t["top1_agreement_vs_plaintext"],
        "max_abs_logit": t["max_abs_logit"],
        "params": "N=2^13 q=[31,26x6,31] scale 2^26 (tutorial)",
    }
tk = next((k for k in rows if k.startswith("tenseal")), None)

print()
print("TenSEAL's encrypted-MNIST network (Conv 7x7 s3 x4, x^2, FC 256->64, x^2, FC 64->10), random weights, 2 threads")
hdr = f"{'':<26}{'eval s/img':>11}{'keys MB':>10}{'query MB':>10}{'result MB':>10}{'max|err|':>10}{'top-1':>8}  parameters"
print(hdr)
for k, r in rows.items():
    print(
        f"{k:<26}{r['eval_s']:>11.4f}{r['keys'] / 1e6:>10.2f}{r['query'] / 1e6:>10.3f}{r['result'] / 1e6:>10.3f}"
        f"{r['max_abs_error_vs_plaintext']:>10.2e}{100 * r['top1_agreement_vs_plaintext']:>7.1f}%  {r['params']}"
    )
ratios = {}
if tk:
    t = rows[tk]
    for k, r in rows.items():
        if k == tk:
            continue
        ratios[k] = {
            "eval_speedup": t["eval_s"] / r["eval_s"],
            "keys_ratio": t["keys"] / r["keys"],
            "query_ratio": t["query"] / r["query"],
            "result_ratio": t["result"] / r["result"],
        }
        q = ratios[k]
        print(
            f"{k + ' vs ' + tk.split()[0]:<26}{q['eval_speedup']:>10.1f}x{q['keys_ratio']:>9.2f}x{q['query_ratio']:>9.2f}x"
            f"{q['result_ratio']:>9.2f}x   (TenSEAL / heinfer; >1 means heinfer is better)"
        )
for k, r in rows.items():
    if k.startswith("heinfer"):
        met = {
            "eval<=0.1s": r["eval_s"] <= GOAL["eval_s"],
            "keys<=10MB": r["keys"] / 1e6 <= GOAL["keys_mb"],
            "query<=0.25MB": r["query"] / 1e6 <= GOAL["query_mb"],
        }
        r["goals"] = met
        print(f"goals, {k}: " + ", ".join(f"{g} {'met' if v else 'MISSED'}" for g, v in met.items()))
print("note: heinfer decrypted outputs are checked against the plaintext network (numpy) on the first images; "
      "the logits of a random network are small (max |logit| above), so compare max|err| with it.")
print(json.dumps({"bench": "mnist", "rows": rows, "ratios": ratios}))
