"""Merges the JSON lines of heinfer and its peers into one table of times and ratios.

Usage: report.py HEINFER.json [PEER.json ...]
A missing or empty file, or one without a JSON line, counts as a peer that did not run:
its columns show '—' and its ratios 'n/a'. Several files of one library are rounds: the
fastest median of each operation is kept.

Prints the machine, versions and threads, a table of median milliseconds with the
speed-ups peer ms / heinfer ms (4.0x = heinfer four times faster), what each peer's
figures include, and last one JSON line:
  {"ratios": {"n8192.mul_relin.openfhe": 4.1, ...}, "heinfer": {"n8192.mul_relin": 0.6, ...},
   "openfhe": {...}, "tenseal": {...}}
"""
import json
import platform
import subprocess
import sys

SETS = ["n8192", "n16384"]
OPS = [
    "ntt_forward",
    "mul_relin",
    "mul_relin_rescale",
    "mul_relin_modswitch",
    "rotate",
    "hoisted_rotate_8",
    "rescale",
    "mod_switch",
    "encrypt",
    "decrypt",
]
PEERS = [("openfhe", "OpenFHE"), ("tenseal", "TenSEAL")]


def load(path):
    try:
        with open(path) as f:
            lines = [line for line in f.read().splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, json.JSONDecodeError):
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


# Several files of one library are rounds of the same run (bench/peers.sh takes turns):
# the fastest median of each operation is kept.
runs = {}
table = {}
for path in sys.argv[1:]:
    r = load(path)
    if r:
        runs.setdefault(r["impl"], r)
        t = table.setdefault(r["impl"], {})
        for x in r["results"]:
            key = (x["set"], x["op"])
            t[key] = min(t.get(key, x["ms"]), x["ms"])
if "heinfer" not in runs:
    sys.exit("report.py: no heinfer results (the Rust example did not run or printed no JSON line)")
rounds = {impl: sum(1 for p in sys.argv[1:] if (load(p) or {}).get("impl") == impl) for impl in runs}

notes = {impl: {x["op"]: x.get("note", "") for x in r["results"]} for impl, r in runs.items()}

print(f"machine: {cpu()} ({platform.system()} {platform.machine()})")
print(f"{'heinfer':8} {runs['heinfer']['version']:34} threads {runs['heinfer'].get('threads', '?')}")
for impl, label in PEERS:
    r = runs.get(impl)
    if r:
        print(f"{label:8} {r['version']:34} threads {r.get('threads', '?')}")
    else:
        print(f"{label:8} not run (see the messages above): its ratios are n/a")
bgv = runs["heinfer"].get("scheme") == "bgv"
what = "integers mod t = 65537 (BGV; SEAL: BFV)" if bgv else "random reals"
print(f"times: median ms over repeated runs, each op on fresh top-level ciphertexts of full-slot {what};")
print(f"the fastest of {max(rounds.values())} rounds, the libraries taking turns ({', '.join(f'{k} {v}' for k, v in rounds.items())})")
print()

ops = OPS + sorted({op for t in table.values() for (_, op) in t} - set(OPS))
head = (
    f"{'set':7} {'operation':18} {'heinfer ms':>11} {'OpenFHE ms':>11} {'TenSEAL ms':>11}"
    f" {'OpenFHE/heinfer':>16} {'TenSEAL/heinfer':>16}"
)
print(head)
print("-" * len(head))
ratios = {}
for s in SETS:
    for op in ops:
        if all((s, op) not in t for t in table.values()):
            continue
        h = table["heinfer"].get((s, op))
        cells = [f"{h:11.3f}" if h is not None else f"{'—':>11}"]
        rcells = []
        for impl, _ in PEERS:
            v = table.get(impl, {}).get((s, op))
            cells.append(f"{v:11.3f}" if v is not None else f"{'—':>11}")
            if v is not None and h:
                ratios[f"{s}.{op}.{impl}"] = round(v / h, 2)
                rcells.append(f"{v / h:15.2f}x")
            else:
                rcells.append(f"{'n/a':>16}")
        print(f"{s:7} {op:18} {' '.join(cells)} {' '.join(rcells)}")
print()

print("what the peers' figures include (from their JSON notes):")
for impl, label in PEERS:
    for op in ops:
        note = notes.get(impl, {}).get(op)
        if note:
            print(f"  {label} {op}: {note}")
for impl, label in PEERS:
    if runs.get(impl, {}).get("key_switching"):
        print(f"  {label} key switching: {runs[impl]['key_switching']}")
for x in runs["heinfer"]["results"]:
    if x["op"] == "mul_relin" and x.get("note"):
        print(f"  heinfer {x['set']} key switching: {x['note']}")
if bgv:
    print("  '—': that library has no such operation (or did not run); SEAL's BFV has no modulus switch.")
else:
    print("  '—': that library has no such operation (or did not run); TenSEAL's v1 * v2 always rescales, so")
    print("  compare it on mul_relin_rescale.")

print(
    json.dumps(
        {
            "ratios": ratios,
            **{
                impl: {f"{k[0]}.{k[1]}": round(v, 4) for k, v in table.get(impl, {}).items()}
                for impl in ["heinfer"] + [p for p, _ in PEERS]
            },
        }
    )
)
