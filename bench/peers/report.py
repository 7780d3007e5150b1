"""Merges the JSON lines of heinfer and its peers into one table of times and ratios.

Usage: report.py HEINFER.json [PEER.json ...]   (a missing or empty file counts as a peer that did not run)
Prints the machine, the versions, a table (median ms; ratio = peer time / heinfer time,
so 4.0 means heinfer is four times faster) and, last, one JSON line of every figure.
"""
import json
import platform
import subprocess
import sys

OPS = ["ntt_forward", "mul_relin", "mul_relin_rescale", "rotate", "hoisted_rotate_8", "rescale", "encrypt", "decrypt"]
PEERS = ["openfhe", "tenseal"]


def load(path):
    try:
        with open(path) as f:
            lines = [l for l in f.read().splitlines() if l.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except OSError:
        return None


def cpu():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


runs = {}
for path in sys.argv[1:]:
    r = load(path)
    if r:
        runs[r["impl"]] = r
if "heinfer" not in runs:
    sys.exit("no heinfer results: the Rust example did not run")

table = {impl: {(x["set"], x["op"]): x["ms"] for x in r["results"]} for impl, r in runs.items()}
print(f"machine: {cpu()}, single-threaded runs")
for impl in ["heinfer"] + PEERS:
    r = runs.get(impl)
    print(f"  {impl:8} {r['version'] if r else 'not run (see above)'}")
print()
head = f"{'set':7} {'operation':18} {'heinfer ms':>11} {'OpenFHE ms':>11} {'TenSEAL ms':>11} {'OpenFHE/heinfer':>16} {'TenSEAL/heinfer':>16}"
print(head)
print("-" * len(head))
ratios = {}
for s in ["n8192", "n16384"]:
    for op in OPS:
        h = table["heinfer"].get((s, op))
        if h is None:
            continue
        cells = []
        rcells = []
        for peer in PEERS:
            v = table.get(peer, {}).get((s, op))
            cells.append(f"{v:11.3f}" if v is not None else f"{'—':>11}")
            if v is not None:
                ratios[f"{s}.{op}.{peer}"] = round(v / h, 2)
                rcells.append(f"{v / h:15.2f}x")
            else:
                rcells.append(f"{'n/a':>16}")
        print(f"{s:7} {op:18} {h:11.3f} {cells[0]} {cells[1]} {rcells[0]} {rcells[1]}")
print()
print("notes: TenSEAL rescales inside every product (compare mul_relin_rescale); it has no CKKSVector rotation.")
print("       OpenFHE and TenSEAL pick their own special primes; heinfer's are in the 'note' fields of the JSON.")
print(json.dumps({"ratios": ratios, **{impl: {f"{k[0]}.{k[1]}": round(v, 4) for k, v in t.items()} for impl, t in table.items()}}))
