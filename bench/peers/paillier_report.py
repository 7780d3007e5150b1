"""Table + final JSON line for bench/peers.sh paillier.

usage: paillier_report.py OUTDIR — reads OUTDIR/model.json (sklearn's decision_function),
OUTDIR/heinfer_paillier.<round>.json, OUTDIR/phe.<round>.json (each step's fastest median over
the rounds is kept; key generation is the first round's), and, when present, heinfer's CKKS run on the
same folded model (OUTDIR/ckks_bench.json from `heinfer bench`, OUTDIR/ckks_decrypt.jsonl
from `heinfer decrypt --json`). Ratios `<step>.phe` are phe's time (or bytes) over heinfer's
Paillier: > 1 means heinfer is faster (smaller).
"""
import json
import os
import sys

out = sys.argv[1]
model = json.load(open(os.path.join(out, "model.json")))
ref = model["decision"]
GOAL = 10.0


def load(name):
    p = os.path.join(out, name)
    return json.load(open(p)) if os.path.exists(p) and os.path.getsize(p) > 0 else None


def agreement(scores):
    n = len(scores)
    got = [s[0] for s in scores]
    return {
        "checked": n,
        "max_abs_error": max(abs(a - b) for a, b in zip(got, ref[:n])),
        "sign_agreement": sum((a > 0) == (b > 0) for a, b in zip(got, ref[:n])) / n,
    }


def rounds(prefix):
    import glob
    runs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(out, prefix + ".*.json"))) if os.path.getsize(p) > 0]
    if not runs:
        return None
    best = dict(runs[0])
    best["ms"] = {k: min(r["ms"][k] for r in runs) for k in runs[0]["ms"]}
    best["rounds"] = len(runs)
    best["ms_per_round"] = [r["ms"] for r in runs]
    return best


he, ph = rounds("heinfer_paillier"), rounds("phe")
ck = load("ckks_bench.json")
rows = {}
if he:
    rows["heinfer paillier"] = {
        "encrypt": he["ms"]["encrypt"], "evaluate": he["ms"]["evaluate"], "decrypt": he["ms"]["decrypt"],
        "request": he["bytes"]["request"], "answer": he["bytes"]["answer"], "key": he["bytes"]["public_key"],
        **agreement(he["scores"]),
        "note": f"{he['key_bits']}-bit n; eval re-randomized (fixed-base); x 2^-{he['input_frac_bits']}, w 2^-{he['weight_frac_bits']}",
    }
if ph:
    rows["phe " + ph["version"]] = {
        "encrypt": ph["ms"]["encrypt"], "evaluate": ph["ms"]["evaluate"], "decrypt": ph["ms"]["decrypt"],
        "request": ph["bytes"]["request"], "answer": ph["bytes"]["answer"], "key": None,
        **agreement(ph["scores"]),
        "note": f"{ph['key_bits']}-bit n; gmpy2 {'in use' if ph['have_gmpy2'] else 'NOT installed'}; eval incl. obfuscating the answer",
    }
if ck:
    dec_path = os.path.join(out, "ckks_decrypt.jsonl")
    scores = [json.loads(line)["output"] for line in open(dec_path) if line.strip()] if os.path.exists(dec_path) else []
    scores = [[s[0] if isinstance(s, list) else s] for s in scores]
    rows["heinfer ckks"] = {
        "encrypt": ck["ms"]["encrypt"]["median"], "evaluate": ck["ms"]["evaluate"]["median"], "decrypt": ck["ms"]["decrypt"]["median"],
        "request": ck["bytes"]["query"], "answer": ck["bytes"]["result"], "key": ck["bytes"]["evaluation_keys"],
        **(agreement(scores) if scores else {"checked": 0, "max_abs_error": float("nan"), "sign_agreement": float("nan")}),
        "note": "same folded model (one Gemm) via heinfer compile/bench; key = evaluation keys",
    }

print()
print(f"Breast-cancer logistic regression (30 features, scaler folded), per sample, single-threaded; "
      f"sklearn test accuracy {model['accuracy']:.4f}")
hdr = f"{'':<20}{'encrypt ms':>11}{'eval ms':>10}{'decrypt ms':>11}{'request B':>11}{'answer B':>10}{'key B':>10}{'max|err|':>10}{'sign':>7}  notes"
print(hdr)
for k, r in rows.items():
    key = "-" if r["key"] is None else str(r["key"])
    print(f"{k:<20}{r['encrypt']:>11.2f}{r['evaluate']:>10.2f}{r['decrypt']:>11.2f}{r['request']:>11}{r['answer']:>10}{key:>10}"
          f"{r['max_abs_error']:>10.1e}{100 * r['sign_agreement']:>6.1f}%  {r['note']}")
ratios = {}
if he and ph:
    for step in ("encrypt", "evaluate", "decrypt"):
        ratios[f"{step}.phe"] = ph["ms"][step] / he["ms"][step]
    ratios["evaluate_no_rerandomization.phe"] = ph["ms"]["evaluate_no_obfuscation"] / he["ms"]["evaluate_no_rerand"]
    ratios["evaluate_precomputed_rerandomizer.phe"] = ph["ms"]["evaluate"] / he["ms"]["evaluate_precomputed"]
    ratios["request_bytes.phe"] = ph["bytes"]["request"] / he["bytes"]["request"]
    ratios["answer_bytes.phe"] = ph["bytes"]["answer"] / he["bytes"]["answer"]
    print("heinfer paillier vs phe (phe / heinfer; >1 means heinfer is faster or smaller): "
          + ", ".join(f"{k} {v:.1f}x" for k, v in ratios.items()))
    steps = ("encrypt", "evaluate", "evaluate_precomputed_rerandomizer", "decrypt")
    print("goal >= 10x phe per step (evaluate: inline, then with a re-randomizer from the pool the runtime keeps "
          "full while idle): " + ", ".join(f"{s} {'met' if ratios[s + '.phe'] >= GOAL else 'MISSED'}" for s in steps))
if he:
    extra = {k: v for k, v in he["ms"].items() if k not in ("encrypt", "evaluate", "decrypt")}
    print(f"heinfer paillier, other steps (ms): {extra}; keygen {he['keygen_s']:.1f} s (safe primes); "
          f"server setup per key {he['server_setup_ms']:.0f} ms; a precomputed re-randomizer {he['precompute_ms_each']:.1f} ms each (offline); exact vs the integer reference: {he['exact_vs_integer_reference']}")
if ph:
    print(f"phe: keygen {ph['keygen_s']:.1f} s; evaluate without obfuscating the answer {ph['ms']['evaluate_no_obfuscation']:.2f} ms; "
          f"request as raw bytes would be {ph['bytes']['request_binary']} B (its documented serialization is JSON)")
if he:
    print(f"rounds: {he['rounds']} (fastest median per step kept); heinfer per round {he['ms_per_round']}")
if ph:
    print(f"phe per round {ph['ms_per_round']}")
summary = {k: {kk: vv for kk, vv in r.items()} for k, r in rows.items()}
print(json.dumps({"bench": "paillier", "rows": summary, "ratios": ratios}))
