"""`bench/peers.sh secagg`: secure aggregation of CLIENTS × LENGTH integer values, heinfer
(threshold BGV for exact integer sums, or CKKS with SECAGG_T=0; `heinfer serve --aggregate-dir`) against Flower's SecAgg+ workflow (its
Ray simulation engine), with the same vectors and the same dropouts: 10 % of the clients
never send their vector, and one of the 5 key holders (heinfer: committee member 1;
SecAgg+: the mask-key shares are held by each client's neighbours, 5 with threshold 3)
is down. Writes OUTDIR/heinfer.json and OUTDIR/flower.json.

    python bench/peers/secagg.py OUTDIR HEINFER_BIN [heinfer|flower|both]

Vectors are integers in [-100, 100] so that both sums can be checked exactly (SecAgg+
quantizes them without loss with clipping range 256 and 2^22 levels).
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

CLIENTS = int(os.environ.get("SECAGG_CLIENTS", 100))
LENGTH = int(os.environ.get("SECAGG_LENGTH", 2**16))
COMMITTEE, THRESHOLD = 5, 3
DROPPED = set(range(CLIENTS // 10))  # clients 0..9 drop out
# heinfer's round: exact integers packed by their bound (BGV, several values per
# coefficient, t chosen; SECAGG_BOUND=0 for one value per coefficient under
# T = SECAGG_T), or SECAGG_T=0 SECAGG_BOUND=0 for a real-valued (CKKS) round.
VALUE_BOUND = int(os.environ.get("SECAGG_BOUND", 100)) or None
PLAINTEXT_MODULUS = None if VALUE_BOUND else (int(os.environ.get("SECAGG_T", 65537)) or None)


def vectors():
    rng = np.random.default_rng(7)
    return rng.integers(-100, 101, size=(CLIENTS, LENGTH)).astype(np.int64)


def heinfer_run(out, heinfer_bin):
    from heinfer import aggregate as agg

    vs = vectors()
    want = vs[[i for i in range(CLIENTS) if i not in DROPPED]].sum(axis=0)
    tmp = tempfile.mkdtemp()
    log = open(os.path.join(tmp, "serve.log"), "w+")
    proc = subprocess.Popen([heinfer_bin, "serve", tmp, "--host", "127.0.0.1", "--http-port", "0", "--grpc-port", "0",
                             "--aggregate-dir", os.path.join(tmp, "rounds")], stdout=log, stderr=subprocess.STDOUT)
    try:
        port = None
        for _ in range(600):
            log.seek(0)
            m = re.search(r"ready.*http=[\w.]+:(\d+)", log.read())
            if m:
                port = int(m.group(1))
                break
            time.sleep(0.1)
        server = f"127.0.0.1:{port}"
        members = [agg.Signer.generate() for _ in range(COMMITTEE)]
        clients = [agg.Signer.generate() for _ in range(CLIENTS)]
        config = agg.round_config("bench", LENGTH, [m.public_hex() for m in members], THRESHOLD,
                                  [c.public_hex() for c in clients], CLIENTS // 2, int(time.time()) + 7200,
                                  plaintext_modulus=PLAINTEXT_MODULUS, value_bound=VALUE_BOUND)
        crs = os.urandom(32).hex()
        begun = {j: agg.begin(config, crs, j) for j in range(1, COMMITTEE + 1)}
        for j in begun:
            agg.finish(config, j, [begun[i][1][j] for i in begun], os.path.join(tmp, f"m{j}.key"))
        pk = agg.public_key(config, crs, [begun[j][0] for j in begun])
        r = agg.Round(server, config)
        server_s = 0.0  # time inside the server's requests (as the callers measure it)
        t = time.perf_counter()
        r.create(pk)
        server_s += time.perf_counter() - t
        upload, enc_s = [], []
        for i, c in enumerate(clients):
            if i in DROPPED:
                continue
            t = time.perf_counter()
            payload = agg._native.aggregate_contribution(config, pk, vs[i].astype(np.float64).tolist(), None)
            headers = r._signed(c, "contribution", payload)  # the client's signature: client time
            t1 = time.perf_counter()
            r._call("POST", "/bench/contributions", payload, headers)
            t2 = time.perf_counter()
            enc_s.append(t1 - t)
            server_s += t2 - t1
            upload.append(len(payload))
        t = time.perf_counter()
        r.close()
        # Member 1 is down: the aggregator asks members 2..4 instead of the default 1..3.
        r._json("POST", "/bench/participants", json.dumps({"participants": [2, 3, 4]}).encode(),
                {"content-type": "application/json"})
        server_s += time.perf_counter() - t
        member_s = []
        for j in (2, 3, 4):
            t = time.perf_counter()
            r.share(os.path.join(tmp, f"m{j}.key"), members[j - 1])
            member_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        got = r.result()
        server_s += time.perf_counter() - t
        err = float(np.abs(got - want).max())
        exact = bool(np.array_equal(np.rint(got).astype(np.int64), want))
        res = dict(library="heinfer", scheme=("bgv, packed" if VALUE_BOUND else "bgv") if (PLAINTEXT_MODULUS or VALUE_BOUND) else "ckks", clients=CLIENTS, length=LENGTH, dropped=len(DROPPED), committee=COMMITTEE,
                   threshold=THRESHOLD, member_down=1, upload_bytes_per_client=int(np.mean(upload)),
                   server_s=server_s, client_encrypt_s=float(np.mean(enc_s)), member_share_s=float(np.mean(member_s)),
                   max_abs_error=err, exact=exact)
        json.dump(res, open(os.path.join(out, "heinfer.json"), "w"))
        print(json.dumps(res), file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(30)


def flower_run(out):
    import flwr
    from flwr.client import ClientApp, NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.common import Context, MessageType, ndarrays_to_parameters
    from flwr.common.serde import recorddict_to_proto
    from flwr.server import LegacyContext, ServerApp, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.simulation import run_simulation

    sizes_dir = tempfile.mkdtemp()
    vs_path = os.path.join(sizes_dir, "vectors.npy")
    np.save(vs_path, vectors())

    def measure(msg, ctxt, call_next):
        """Outside secaggplus_mod: the bytes of every reply this client sends."""
        reply = call_next(msg, ctxt)
        if not reply.has_error():
            n = recorddict_to_proto(reply.content).ByteSize()
            with open(os.path.join(sizes_dir, f"{ctxt.node_config['partition-id']}.sizes"), "a") as f:
                f.write(f"{n}\n")
        return reply

    class VectorClient(NumPyClient):
        def __init__(self, pid):
            self.pid = pid

        def fit(self, parameters, config):
            if self.pid in DROPPED:
                raise RuntimeError("dropped out")
            return [np.load(vs_path, mmap_mode="r")[self.pid].astype(np.float64)], 1, {}

    client = ClientApp(client_fn=lambda ctx: VectorClient(int(ctx.node_config["partition-id"])).to_client(),
                       mods=[measure, secaggplus_mod])

    box = {}

    class Keep(FedAvg):
        def aggregate_fit(self, server_round, results, failures):
            p, m = super().aggregate_fit(server_round, results, failures)
            from flwr.common import parameters_to_ndarrays
            box["avg"] = parameters_to_ndarrays(results[0][1].parameters)[0]
            box["n"] = len(results)
            return p, m

    class Timed(SecAggPlusWorkflow):
        """Server compute time: the workflow's time less its waits for the clients."""

        def __call__(self, grid, context):
            waited = [0.0]
            inner = grid.send_and_receive

            def timed(*a, **k):
                t = time.perf_counter()
                try:
                    return inner(*a, **k)
                finally:
                    waited[0] += time.perf_counter() - t

            grid.send_and_receive = timed
            t = time.perf_counter()
            super().__call__(grid, context)
            box["wall_s"] = time.perf_counter() - t
            box["server_s"] = box["wall_s"] - waited[0]
            grid.send_and_receive = inner

    strategy = Keep(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=CLIENTS, min_available_clients=CLIENTS,
                    initial_parameters=ndarrays_to_parameters([np.zeros(LENGTH)]), accept_failures=True)
    app = ServerApp()

    @app.main()
    def main(grid, context):
        ctx = LegacyContext(context=context, config=ServerConfig(num_rounds=1), strategy=strategy)
        DefaultWorkflow(fit_workflow=Timed(num_shares=COMMITTEE, reconstruction_threshold=THRESHOLD, max_weight=1.0,
                                           clipping_range=256.0, quantization_range=2**22))(grid, ctx)

    run_simulation(server_app=app, client_app=client, num_supernodes=CLIENTS,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": 2, "include_dashboard": False}})
    vs = vectors()
    want = vs[[i for i in range(CLIENTS) if i not in DROPPED]].sum(axis=0)
    got = box["avg"] * box["n"] if "avg" in box else None
    uploads = []
    for f in os.listdir(sizes_dir):
        if f.endswith(".sizes") and int(f.split(".")[0]) not in DROPPED:
            uploads.append(sum(int(x) for x in open(os.path.join(sizes_dir, f))))
    res = dict(library=f"flwr {flwr.__version__} SecAggPlusWorkflow", clients=CLIENTS, length=LENGTH,
               dropped=len(DROPPED), num_shares=COMMITTEE, reconstruction_threshold=THRESHOLD,
               upload_bytes_per_client=int(np.mean([u for u in uploads])) if uploads else None,
               server_s=box.get("server_s"), round_wall_s=box.get("wall_s"),
               max_abs_error=None if got is None else float(np.abs(got - want).max()),
               exact=bool(got is not None and np.array_equal(np.rint(got).astype(np.int64), want)))
    json.dump(res, open(os.path.join(out, "flower.json"), "w"))
    print(json.dumps(res), file=sys.stderr)


if __name__ == "__main__":
    out, heinfer_bin = sys.argv[1], sys.argv[2]
    which = sys.argv[3] if len(sys.argv) > 3 else "both"
    if which in ("heinfer", "both"):
        heinfer_run(out, heinfer_bin)
    if which in ("flower", "both"):
        flower_run(out)
