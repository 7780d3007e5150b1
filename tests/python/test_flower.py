"""A real Flower run (its Ray simulation engine, 10 clients, non-IID splits of sklearn's
real data sets) over heinfer's secure aggregation (`heinfer.flower`), against the same
run in plaintext FedAvg: the same final accuracy, while the Flower server receives no
client's update — only the decrypted sum of them all. One committee member is down for
the whole run (its share is never needed), so the wrapper has to ask another subset, and
three clients drop out of a round each (the sum is of those that sent)."""
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.common import parameters_to_ndarrays  # noqa: E402

import flower_app as fa  # noqa: E402
from heinfer import aggregate as agg  # noqa: E402
from heinfer import flower as hf  # noqa: E402
from test_aggregate_cli import aggregation_server  # noqa: E402,F401  (the fixture)

CLIENTS = 10
# Clients that drop out (their fit fails), the same in both runs: FedAvg averages the others.
DROP = {(0, 2), (3, 1), (7, 2)}


class Spy(hf.SecureAggregation):
    """What the Flower server receives from the clients, kept for the assertions."""

    received = []

    def aggregate_fit(self, server_round, results, failures):
        for _, res in results:
            self.received.append((res.num_examples, parameters_to_ndarrays(res.parameters)))
        return super().aggregate_fit(server_round, results, failures)


@pytest.fixture()
def committee(aggregation_server, tmp_path):  # noqa: F811
    """3 members, threshold 2, key ceremony done; members 2 and 3 run as processes
    (member 1 is down), reading round configurations from the bulletin."""
    seeds = [bytes([m]) * 32 for m in (1, 2, 3)]
    signers = [agg.Signer.from_seed(s) for s in seeds]
    keys = [s.public_hex() for s in signers]
    template = agg.round_config("ceremony", 1, keys, 2, [keys[0]], 1, 2**40)
    crs = os.urandom(32).hex()
    begun = {j: agg.begin(template, crs, j) for j in (1, 2, 3)}
    for j in (1, 2, 3):
        agg.finish(template, j, [begun[i][1][j] for i in (1, 2, 3)], tmp_path / f"m{j}.key")
        (tmp_path / f"m{j}.seed").write_bytes(seeds[j - 1])
    pk = agg.public_key(template, crs, [begun[j][0] for j in (1, 2, 3)])
    bulletin = tmp_path / "bulletin"
    bulletin.mkdir()
    procs = [subprocess.Popen([sys.executable, "-m", "heinfer.flower", "member", "--server", aggregation_server,
                               "--bulletin", str(bulletin), "--key-file", str(tmp_path / f"m{j}.key"),
                               "--signer-seed", str(tmp_path / f"m{j}.seed"), "--min-contributors", "5"])
             for j in (2, 3)]
    yield dict(server=aggregation_server, keys=keys, pk=pk, bulletin=bulletin)
    for p in procs:
        p.terminate()
        p.wait(30)


@pytest.mark.parametrize("name,rounds", [("cancer", 3), ("digits", 4)])
def test_fedavg_over_encrypted_updates_matches_plaintext(committee, name, rounds):
    plain: dict = {}
    fa.run(fa.fedavg(name, CLIENTS, plain), fa.client_app(name, CLIENTS, drop=DROP), CLIENTS, rounds)

    secret = b"enrolment " + name.encode()
    enrolled = [agg.Signer.from_seed(fa.signer_seed(secret, i)).public_hex() for i in range(CLIENTS)]
    mod = hf.SecureAggregationMod(lambda ctx: agg.Signer.from_seed(
        fa.signer_seed(secret, int(ctx.node_config["partition-id"]))))
    encrypted: dict = {}
    Spy.received = []
    strategy = Spy(fa.fedavg(name, CLIENTS, encrypted), committee["server"], committee["keys"], 2, committee["pk"],
                   enrolled, committee["bulletin"], min_contributors=5, round_prefix=f"fl-{name}", share_timeout=2)
    fa.run(strategy, fa.client_app(name, CLIENTS, mods=[mod], drop=DROP), CLIENTS, rounds)

    # Every round aggregated and evaluated; the model learned (not stuck at the start).
    assert sorted(encrypted) == sorted(plain) == list(range(rounds + 1))
    assert plain[rounds] > (0.85 if name == "cancer" else 0.75), plain
    assert abs(encrypted[rounds] - plain[rounds]) <= 0.01, (encrypted, plain)
    # The Flower server saw the fit results of those that did not drop out, and not one
    # parameter array among them.
    assert len(Spy.received) == CLIENTS * rounds - len(DROP)
    assert all(n > 0 and arrays == [] for n, arrays in Spy.received)
