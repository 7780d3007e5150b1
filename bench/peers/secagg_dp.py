"""`bench/peers.sh secagg`, part 2: Flower runs (Ray simulation, 10 clients, non-IID
splits, logistic regression on load_breast_cancer, tests/python/flower_app.py) with
differential privacy at ε ∈ {1, 4, 8}, δ = 1e-5, over all ROUNDS rounds (every client
every round, no subsampling amplification): heinfer's distributed DP (each client adds
its share of discrete-Gaussian noise; the aggregator sees only the encrypted sum)
beside Flower's DifferentialPrivacyServerSideFixedClipping (the server clips and adds
the noise, so it sees every update), the same noise multiplier z and clip C. Also the
same run without DP, plaintext and over heinfer. Writes OUTDIR/dp.json.

    python bench/peers/secagg_dp.py OUTDIR HEINFER_BIN
"""
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "python"))

import flower_app as fa  # noqa: E402
from flwr.server.strategy import DifferentialPrivacyServerSideFixedClipping  # noqa: E402
from heinfer import aggregate as agg  # noqa: E402
from heinfer import flower as hf  # noqa: E402

CLIENTS, ROUNDS, CLIP, DELTA = 10, int(os.environ.get("SECAGG_DP_ROUNDS", 5)), 1.0, 1e-5
# DP runs are noisy: each DP setting runs REPEATS times (fresh noise); the mean and spread are reported.
REPEATS = int(os.environ.get("SECAGG_DP_REPEATS", 3))
NAME = "cancer"


def orders():
    return [1 + i / 10 for i in range(1, 100)] + list(range(11, 64)) + [128, 256, 512]


def epsilon(z, rounds, delta):
    """RDP of the Gaussian mechanism composed `rounds` times, converted as heinfer's
    accountant (crates/aggregate/src/dp.rs) and dp-accounting do."""
    rho = rounds / (2 * z * z)
    return min(max(a * rho + math.log((a - 1) / a) - (math.log(delta) + math.log(a)) / (a - 1), 0) for a in orders())


def z_for(eps, rounds, delta):
    lo, hi = 0.1, 1000.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if epsilon(mid, rounds, delta) > eps else (lo, mid)
    return hi


def main(out, heinfer_bin):
    tmp = tempfile.mkdtemp()
    log = open(os.path.join(tmp, "serve.log"), "w+")
    proc = subprocess.Popen([heinfer_bin, "serve", tmp, "--host", "127.0.0.1", "--http-port", "0", "--grpc-port", "0",
                             "--aggregate-dir", os.path.join(tmp, "rounds")], stdout=log, stderr=subprocess.STDOUT)
    stop = threading.Event()
    try:
        port = None
        while port is None:
            log.seek(0)
            m = re.search(r"ready.*http=[\w.]+:(\d+)", log.read())
            port = m and int(m.group(1))
            time.sleep(0.1)
        server = f"127.0.0.1:{port}"
        members = [agg.Signer.generate() for _ in range(3)]
        keys = [m.public_hex() for m in members]
        template = agg.round_config("ceremony", 1, keys, 2, [keys[0]], 1, 2**40)
        crs = os.urandom(32).hex()
        begun = {j: agg.begin(template, crs, j) for j in (1, 2, 3)}
        for j in (1, 2, 3):
            agg.finish(template, j, [begun[i][1][j] for i in (1, 2, 3)], os.path.join(tmp, f"m{j}.key"))
        pk = agg.public_key(template, crs, [begun[j][0] for j in (1, 2, 3)])
        bulletin = os.path.join(tmp, "bulletin")
        for j in (1, 2):  # members in threads here (a bench); a deployment runs them apart
            mem = hf.Member(server, bulletin, os.path.join(tmp, f"m{j}.key"), members[j - 1], CLIENTS)
            os.makedirs(bulletin, exist_ok=True)
            threading.Thread(target=mem.run, args=(stop.is_set,), daemon=True).start()
        # Signers are not picklable: Ray's workers rebuild each client's from its seed.
        secret = os.urandom(32)
        mod = hf.SecureAggregationMod(lambda ctx: agg.Signer.from_seed(
            fa.signer_seed(secret, int(ctx.node_config["partition-id"]))))
        enrolled = [agg.Signer.from_seed(fa.signer_seed(secret, i)).public_hex() for i in range(CLIENTS)]
        seq = [0]

        def heinfer_strategy(history, dp=None):
            seq[0] += 1
            return hf.SecureAggregation(fa.fedavg(NAME, CLIENTS, history), server, keys, 2, pk, enrolled, bulletin,
                                        min_contributors=CLIENTS, round_prefix=f"dp{seq[0]}", dp=dp)

        rows = []

        def record(what, eps, z, accs, seconds):
            accs = [a for a in accs if a is not None]
            rows.append(dict(run=what, epsilon=eps, z=z, accuracy=sum(accs) / len(accs) if accs else None,
                             accuracy_min=min(accs, default=None), accuracy_max=max(accs, default=None),
                             repeats=len(accs), seconds=round(seconds / max(len(accs), 1), 1)))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

        for what in ("plaintext FedAvg", "heinfer FedAvg"):
            h, t = {}, time.time()
            strategy = fa.fedavg(NAME, CLIENTS, h) if what.startswith("plain") else heinfer_strategy(h)
            fa.run(strategy, fa.client_app(NAME, CLIENTS, [] if what.startswith("plain") else [mod]), CLIENTS, ROUNDS)
            record(what, None, None, [h.get(ROUNDS)], time.time() - t)
        for eps in (1.0, 4.0, 8.0):
            z = z_for(eps, ROUNDS, DELTA)
            he, fl, t_he, t_fl = [], [], 0.0, 0.0
            for _ in range(REPEATS):
                h, t = {}, time.time()
                fa.run(heinfer_strategy(h, hf.DpSettings(z, CLIP)), fa.client_app(NAME, CLIENTS, [mod]), CLIENTS,
                       ROUNDS)
                he.append(h.get(ROUNDS))
                t_he += time.time() - t
                h, t = {}, time.time()
                strategy = DifferentialPrivacyServerSideFixedClipping(fa.fedavg(NAME, CLIENTS, h), noise_multiplier=z,
                                                                      clipping_norm=CLIP, num_sampled_clients=CLIENTS)
                fa.run(strategy, fa.client_app(NAME, CLIENTS), CLIENTS, ROUNDS)
                fl.append(h.get(ROUNDS))
                t_fl += time.time() - t
            record("heinfer distributed DP", eps, z, he, t_he)
            record("Flower DifferentialPrivacyServerSideFixedClipping", eps, z, fl, t_fl)
        json.dump(dict(rounds=ROUNDS, clients=CLIENTS, clip=CLIP, delta=DELTA, rows=rows),
                  open(os.path.join(out, "dp.json"), "w"))
    finally:
        stop.set()
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
