"""bench/peers.sh concrete: one table of heinfer's seeded LWE beside Concrete ML, then one JSON
line {"rows": {...}, "ratios": {...}} (ratios: Concrete ML's figure over heinfer's)."""
import json
import sys

import numpy as np

d = sys.argv[1]
run = json.load(open(f"{d}/heinfer_run.json"))
got = [json.loads(line)["class"] for line in open(f"{d}/heinfer_decrypt.jsonl")]
clear = np.load(f"{d}/clear_pred.npy")[:len(got)]
rows = {"heinfer_lwe": {
    "fhe_ms": run["ms_per_sample"]["evaluate"], "encrypt_ms": run["ms_per_sample"]["encrypt"],
    "decrypt_ms": run["ms_per_sample"]["decrypt"], "key_bytes": run["bytes"].get("evaluation_keys", 0),
    "query_bytes": run["bytes"]["query"],
    "answer_bytes": run["bytes"]["result"], "agreement": float(np.mean(np.array(got) == clear)),
    "samples": len(got)}}
try:
    c = json.load(open(f"{d}/concrete.json"))
    rows["concrete_ml"] = {
        "fhe_ms": c["ms_per_sample"]["evaluate"], "encrypt_ms": c["ms_per_sample"]["encrypt"],
        "decrypt_ms": c["ms_per_sample"]["decrypt"], "key_bytes": c["bytes"]["keys"],
        "query_bytes": c["bytes"]["query"], "answer_bytes": c["bytes"]["answer"], "agreement": c["agreement"],
        "samples": c["samples"]}
except (OSError, ValueError, KeyError):
    # not run here: the figures issue 22 quotes for Concrete ML 1.9.0 on this model
    rows["concrete_ml_quoted"] = {"fhe_ms": 9.9, "key_bytes": 64, "query_bytes": 984, "answer_bytes": 11 * 1024,
                                  "agreement": None, "samples": None}
other = rows.get("concrete_ml") or rows["concrete_ml_quoted"]
h = rows["heinfer_lwe"]
ratios = {k: (other[k] / h[k] if h[k] else None) for k in ("fhe_ms", "query_bytes", "answer_bytes")}
print(f"{'':22}{'FHE ms':>10}{'keys B':>10}{'query B':>10}{'answer B':>10}{'agreement':>11}")
for name, r in rows.items():
    ag = "n/a" if r["agreement"] is None else f"{100 * r['agreement']:.1f} %"
    print(f"{name:22}{r['fhe_ms']:>10.3f}{r['key_bytes']:>10}{r['query_bytes']:>10}{r['answer_bytes']:>10}{ag:>11}")
print(json.dumps({"rows": rows, "ratios": ratios}))
