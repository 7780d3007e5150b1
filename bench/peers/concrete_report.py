"""bench/peers.sh concrete: one Markdown table (rows: each model x each tool) of heinfer beside
Concrete ML, then, last, one JSON line {"rows": {model: {tool: row}}, "ratios": {model: {...}}}
(ratios: Concrete ML's figure over heinfer's, per sample: FHE time, evaluation keys, query, answer).
FHE time is encrypt + evaluate + decrypt per sample; eval_ms the server's evaluation alone.
A Concrete ML row that was not measured here holds the figures issue 22 quotes, marked as quoted."""
import json
import sys

import numpy as np

d = sys.argv[1]

# issue 22's figures for Concrete ML 1.9.0, used where it was not run here
QUOTED = {
    "breast_cancer_lr": {"fhe_ms": 9.9, "key_bytes": 64, "query_bytes": 984, "answer_bytes": 11 * 1024},
    "digits_mlp": {"fhe_ms": 1880.0, "key_bytes": 27_600_000, "query_bytes": 1_800, "answer_bytes": 164_000},
}


def load(name):
    try:
        with open(f"{d}/{name}") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def timing(ms):
    return {"fhe_ms": ms["encrypt"] + ms["evaluate"] + ms["decrypt"], "eval_ms": ms["evaluate"],
            "encrypt_ms": ms["encrypt"], "decrypt_ms": ms["decrypt"]}


def concrete_row(c, model):
    if c is not None:
        try:
            return {"tool": "Concrete ML 1.9.0", "source": "measured", **timing(c["ms_per_sample"]),
                    "key_bytes": c["bytes"]["keys"], "query_bytes": c["bytes"]["query"],
                    "answer_bytes": c["bytes"]["answer"], "agreement": c["agreement"], "samples": c["samples"],
                    **({"n_bits": c["n_bits"], "clear_accuracy": c["clear_accuracy"]} if "n_bits" in c else {})}
        except KeyError:
            pass
    return {"tool": "Concrete ML 1.9.0", "source": "quoted (issue 22), not run here", **QUOTED[model],
            "eval_ms": None, "agreement": None, "samples": None}


rows = {"breast_cancer_lr": {}, "digits_mlp": {}}

# breast-cancer LR: heinfer's seeded LWE; agreement from the CLI's decrypted classes
run = load("heinfer_run.json")
if run is not None:
    got = [json.loads(line)["class"] for line in open(f"{d}/heinfer_decrypt.jsonl")]
    clear = np.load(f"{d}/clear_pred.npy")[:len(got)]
    rows["breast_cancer_lr"]["heinfer"] = {
        "tool": "heinfer (seeded LWE)", "source": "measured", **timing(run["ms_per_sample"]),
        "key_bytes": run["bytes"].get("evaluation_keys", 0), "query_bytes": run["bytes"]["query"],
        "answer_bytes": run["bytes"]["result"], "agreement": float(np.mean(np.array(got) == clear)),
        "samples": len(got)}
rows["breast_cancer_lr"]["concrete_ml"] = concrete_row(load("concrete.json"), "breast_cancer_lr")

# digits MLP: heinfer's CKKS with compact queries; `heinfer run --labels` = the onnxruntime top-1
mlp = load("heinfer_mlp_run.json")
if mlp is not None:
    rows["digits_mlp"]["heinfer"] = {
        "tool": "heinfer (CKKS, compact query)", "source": "measured", **timing(mlp["ms_per_sample"]),
        "key_bytes": mlp["bytes"].get("evaluation_keys", 0), "query_bytes": mlp["bytes"]["query"],
        "answer_bytes": mlp["bytes"]["result"], "agreement": mlp.get("accuracy"),
        "agreement_with_simulation": mlp.get("agreement_with_simulation"), "samples": mlp["samples"]}
rows["digits_mlp"]["concrete_ml"] = concrete_row(load("concrete_mlp.json"), "digits_mlp")

ratios = {}
for model, r in rows.items():
    h, c = r.get("heinfer"), r["concrete_ml"]
    ratios[model] = {k: (c[k] / h[k] if h and h.get(k) and c.get(k) is not None else None)
                     for k in ("fhe_ms", "eval_ms", "key_bytes", "query_bytes", "answer_bytes")}


def size(b):
    if b is None:
        return "n/a"
    for unit, scale in (("MB", 1e6), ("KB", 1e3)):
        if b >= scale:
            return f"{b / scale:.1f} {unit}"
    return f"{b} B"


def ms(x):
    return "n/a" if x is None else f"{x:,.1f}" if x >= 10 else f"{x:.3f}"


print("| model | tool | FHE ms / sample (enc+eval+dec) | eval ms | eval keys | query | answer | top-1 agreement | samples |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
quoted = False
for model, r in rows.items():
    for name in ("heinfer", "concrete_ml"):
        x = r.get(name)
        if x is None:
            tool = {"breast_cancer_lr": "heinfer (seeded LWE)", "digits_mlp": "heinfer (CKKS, compact query)"}[model]
            print(f"| {model} | {tool} | n/a (run failed) | | | | | | |")
            continue
        tool = x["tool"] + (" *" if x["source"] != "measured" else "")
        quoted |= x["source"] != "measured"
        ag = "n/a" if x["agreement"] is None else f"{100 * x['agreement']:.1f} %"
        print(f"| {model} | {tool} | {ms(x['fhe_ms'])} | {ms(x['eval_ms'])} | {size(x['key_bytes'])} | "
              f"{size(x['query_bytes'])} | {size(x['answer_bytes'])} | {ag} | {x['samples'] or 'n/a'} |")
if quoted:
    print("\n\\* not run here (Concrete ML could not be installed or its run failed): the figures issue 22 quotes.")
print()
print(json.dumps({"rows": rows, "ratios": ratios}))
