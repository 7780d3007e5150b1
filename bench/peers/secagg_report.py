"""The tables and the JSON line of `bench/peers.sh secagg` from OUTDIR/heinfer.json,
OUTDIR/flower.json and OUTDIR/dp.json (any may be missing: a failed run reads n/a).

    python bench/peers/secagg_report.py OUTDIR
"""
import json
import os
import sys

out = sys.argv[1]


def load(name):
    p = os.path.join(out, name)
    return json.load(open(p)) if os.path.exists(p) and os.path.getsize(p) else None


def table(rows):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


he, fl, dp = load("heinfer.json"), load("flower.json"), load("dp.json")
print("Secure aggregation: clients x values, 10 % of clients and one of 5 key holders down (threshold 3).")
print("The machine is shared with other builds while this runs: times are indicative.\n")
rows = [("library", "clients x values", "upload/client", "server s/round", "exact sum", "max |error|", "notes")]
if he:
    rows.append(("heinfer threshold CKKS", f"{he['clients']} x {he['length']}",
                 f"{he['upload_bytes_per_client'] / 1e6:.2f} MB", f"{he['server_s']:.2f}", he["exact"],
                 f"{he['max_abs_error']:.2e}",
                 f"client encrypts in {he['client_encrypt_s']:.2f} s; a member shares in {he['member_share_s']:.2f} s"))
if fl:
    rows.append((fl["library"], f"{fl['clients']} x {fl['length']}",
                 f"{fl['upload_bytes_per_client'] / 1e6:.2f} MB" if fl.get("upload_bytes_per_client") else "n/a",
                 f"{fl['server_s']:.2f}" if fl.get("server_s") is not None else "n/a", fl["exact"],
                 f"{fl['max_abs_error']:.2e}" if fl.get("max_abs_error") is not None else "n/a",
                 f"round wall {fl['round_wall_s']:.1f} s (simulated clients included)" if fl.get("round_wall_s") else ""))
table(rows)
ratios = {}
if he and fl and fl.get("upload_bytes_per_client") and fl.get("server_s"):
    ratios = dict(upload_ratio=he["upload_bytes_per_client"] / fl["upload_bytes_per_client"],
                  server_time_ratio=he["server_s"] / fl["server_s"])
    print(f"\nheinfer / SecAgg+: upload x{ratios['upload_ratio']:.2f} (goal <= 2), "
          f"server time x{ratios['server_time_ratio']:.2f} (goal <= 1)")
if dp:
    print(f"\nFlower, {dp['clients']} clients, {dp['rounds']} rounds, breast-cancer logistic regression, "
          f"clip {dp['clip']}, delta {dp['delta']}: final test accuracy")
    rows = [("run", "epsilon", "z", "accuracy (mean)", "min..max", "runs", "s/run")]
    for r in dp["rows"]:
        rows.append((r["run"], r["epsilon"] if r["epsilon"] is not None else "-",
                     f"{r['z']:.2f}" if r["z"] else "-",
                     f"{r['accuracy']:.4f}" if r["accuracy"] is not None else "n/a",
                     f"{r['accuracy_min']:.3f}..{r['accuracy_max']:.3f}" if r.get("accuracy_min") is not None else "",
                     r.get("repeats", 1), r["seconds"]))
    table(rows)
print(json.dumps(dict(bench="secagg", heinfer=he, flower=fl, dp=dp, **ratios)))
