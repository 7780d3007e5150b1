"""Secure aggregation from Python (`heinfer.aggregate`) against `heinfer serve`: a
committee of 3 (threshold 2), 3 contributors, the sum; the errors a user meets arrive
as `heinfer.AggregationError` with the reason."""
import json
import time

import numpy as np
import pytest

import heinfer
from heinfer import aggregate as agg
from test_aggregate_cli import aggregation_server  # noqa: F401  (the fixture)


def test_a_round_from_python(aggregation_server, tmp_path):  # noqa: F811
    server = aggregation_server
    members = [agg.Signer.generate() for _ in range(3)]
    clients = [agg.Signer.generate() for _ in range(3)]
    assert agg.Signer.from_seed(bytes(32)).public_hex() == agg.Signer.from_seed(bytes(32)).public_hex()
    config = agg.round_config("py-round", 300, [m.public_hex() for m in members], 2, [c.public_hex() for c in clients],
                              2, int(time.time()) + 3600)
    crs = "cd" * 32
    begun = {j: agg.begin(config, crs, j) for j in (1, 2, 3)}
    for j in (1, 2, 3):
        agg.finish(config, j, [begun[i][1][j] for i in (1, 2, 3)], tmp_path / f"m{j}.key")
    with pytest.raises(heinfer.AggregationError, match="committee"):
        agg.begin(config, crs, 9)
    pk = agg.public_key(config, crs, [begun[j][0] for j in (1, 2, 3)])
    r = agg.Round(server, config)
    assert r.create(pk)["status"] == "open"
    rng = np.random.default_rng(1)
    vs = [rng.normal(size=300) for _ in clients]
    for c, v in zip(clients, vs):
        r.contribute(v, c, pk)
    with pytest.raises(heinfer.AggregationError, match="already accepted"):
        r.contribute(vs[0], clients[0], pk)
    with pytest.raises(heinfer.AggregationError, match="takes vectors of 300"):
        agg.Round(server, config).contribute(np.zeros(5), clients[1], pk)
    r.close()
    for j in (1, 2):
        r.share(tmp_path / f"m{j}.key", members[j - 1])
    got = r.result()
    # The members' smudging noise (2^-40 statistical security) dominates the error.
    assert np.abs(got - np.sum(vs, axis=0)).max() < 0.05
    r.delete()
    with pytest.raises(heinfer.AggregationError, match="404"):
        r.status()


def test_an_oversized_answer_is_refused_before_it_is_read_whole():
    """A hostile or broken server streams 64 MB for a status: the client reads no more
    than the round can need (a few hundred KB here) and says so."""
    import http.server
    import threading

    sent = {"bytes": 0}

    class Flood(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            chunk = b" " * (1 << 20)
            try:
                for _ in range(64):
                    self.wfile.write(chunk)
                    sent["bytes"] += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flood)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        m = agg.Signer.generate()
        config = agg.round_config("flood", 100, [m.public_hex()], 1, [m.public_hex()], 1, int(time.time()) + 60)
        cap = heinfer._native.aggregate_max_answer_bytes(config)
        assert 100_000 < cap < 4 << 20, cap
        with pytest.raises(heinfer.AggregationError, match="exceeds"):
            agg.Round(f"127.0.0.1:{srv.server_address[1]}", config).status()
    finally:
        srv.shutdown()


@pytest.mark.parametrize("packed", [False, True])
def test_an_integer_round_sums_exactly(aggregation_server, tmp_path, packed):  # noqa: F811
    """plaintext_modulus: BGV, coefficient-encoded integers; the sum is exact to the unit
    (a CKKS round at the default scale would not keep these 12-digit values' last digits).
    value_bound instead: t is chosen and two values share each coefficient, so the
    contribution is half the bytes, and the sum is still exact (values at ±bound too)."""
    members = [agg.Signer.generate() for _ in range(3)]
    clients = [agg.Signer.generate() for _ in range(3)]
    bound = 10**6
    kw = dict(value_bound=bound) if packed else dict(plaintext_modulus=(1 << 40) + 15)
    args = ([m.public_hex() for m in members], 2, [c.public_hex() for c in clients], 2, int(time.time()) + 3600)
    config = agg.round_config("py-ints", 10_000, *args, **kw)
    crs = "ef" * 32
    begun = {j: agg.begin(config, crs, j) for j in (1, 2, 3)}
    for j in (1, 2, 3):
        agg.finish(config, j, [begun[i][1][j] for i in (1, 2, 3)], tmp_path / f"m{j}.key")
    pk = agg.public_key(config, crs, [begun[j][0] for j in (1, 2, 3)])
    r = agg.Round(aggregation_server, config)
    r.create(pk)
    rng = np.random.default_rng(5)
    top = bound + 1 if packed else 10**11
    vs = [rng.integers(-top + 1, top, size=10_000) for _ in clients[:2]]   # client 3 drops out
    if packed:
        vs[0][:100], vs[1][:100] = bound, bound
        unpacked = agg.round_config("py-ints", 10_000, *args, plaintext_modulus=json.loads(config)["plaintext_modulus"])
        size = [len(agg._native.aggregate_contribution(c, pk, [0.0] * 10_000, None)) for c in (config, unpacked)]
        assert size[0] * 1.9 < size[1], size
        with pytest.raises(heinfer.AggregationError, match="value bound"):
            r.contribute(np.full(10_000, bound + 1), clients[2], pk)
    for c, v in zip(clients, vs):
        r.contribute(v, c, pk)
    with pytest.raises(heinfer.AggregationError, match="not an integer"):
        r.contribute(np.full(10_000, 0.5), clients[2], pk)
    r.close()
    for j in r.status()["participants"]:
        r.share(tmp_path / f"m{j}.key", members[j - 1])
    got = r.result()
    assert np.array_equal(got.astype(np.int64), vs[0] + vs[1])
