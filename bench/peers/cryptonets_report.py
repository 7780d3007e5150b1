"""The table and JSON line of `bench/peers.sh cryptonets` from the two runs' JSON lines.

    python bench/peers/cryptonets_report.py OUTDIR   # reads OUTDIR/heinfer.json, OUTDIR/tenseal.json
"""
import json
import os
import sys

out = sys.argv[1]


def load(name):
    p = os.path.join(out, name)
    return json.load(open(p)) if os.path.exists(p) and os.path.getsize(p) else None


he, ts = load("heinfer.json"), load("tenseal.json")
rows = [("library", "images/s", "s per batch", "batch", "request MB/image", "keys", "agreement")]
if he:
    rows.append(("heinfer layout T", f"{he['images_per_s']:.0f}", f"{he['eval_s']:.2f}", str(he["batch"]),
                 f"{he['request_bytes'] / he['batch'] / 1e6:.4f}", f"relin {he['eval_key_bytes'] / 1e6:.1f} MB",
                 f"{he['agreement']:.4f}"))
    rows.append(("  (CPU time: 2 cores' worth)", f"{2 * he['images_per_cpu_s']:.0f}", f"{he['eval_cpu_s'] / 2:.2f}", "", "", "", ""))
if ts:
    rows.append((f"TenSEAL CKKSTensor(batch) {ts['version']}", f"{ts['images_per_s']:.1f}", f"{ts['eval_s']:.1f}*",
                 str(ts["batch"]), f"{ts['request_bytes_per_image'] / 1e6:.4f}",
                 f"relin {ts['eval_key_bytes'] / 1e6:.1f} MB", f"{ts['agreement_subnetwork']:.4f}*"))
widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
for r in rows:
    print("  ".join(c.ljust(wd) for c, wd in zip(r, widths)))
if ts:
    print(f"* TenSEAL ran {ts['positions_run']} of 169 conv positions on the whole batch; Conv and the first Dense "
          "scaled by their product counts, agreement over that sub-network (see bench/peers/tenseal_cryptonets.py).")
if he:
    print(f"heinfer per layer [wall s, CPU s]: {he['layers_wall_cpu_s']}; N = {he['n']}, log QP = {he['log_qp']}, "
          f"max |error| {he['max_abs_error']:.3g}; client: encrypt {he['encrypt_s']:.1f} s, decrypt {he['decrypt_s']:.3f} s")
    print(f"load average while measuring: {he.get('loadavg', '?')} (2 cores shared with other builds: wall times include their turns)")
line = {"heinfer": None, "tenseal": None}
if he:
    line["heinfer"] = {"images_per_s": round(he["images_per_s"], 1), "agreement": he["agreement"], "batch": he["batch"],
                       "eval_s": he["eval_s"], "eval_cpu_s": he["eval_cpu_s"],
                       "images_per_s_cpu_2cores": round(2 * he["images_per_cpu_s"], 1)}
if ts:
    line["tenseal"] = {"images_per_s": round(ts["images_per_s"], 2), "agreement_subnetwork": ts["agreement_subnetwork"],
                       "batch": ts["batch"], "extrapolated_from_positions": ts["positions_run"]}
if he and ts:
    line["ratio"] = round(he["images_per_s"] / ts["images_per_s"], 1)
print(json.dumps(line))
