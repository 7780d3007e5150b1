"""Secure aggregation from the command line against `heinfer serve` (issue 19, client and
committee sides): a committee of 3 (threshold 2) runs the key ceremony with
`heinfer aggregate begin/finish/public-key`, 4 of 5 allowed clients contribute (one
with distributed DP), the round closes, 2 members share, and the sum comes back. A member
whose key file has shared a ciphertext refuses to share it again, even in a new process."""
import json
import os
import re
import subprocess
import time

import numpy as np
import pytest



@pytest.fixture()
def aggregation_server(heinfer_bin, tmp_path):
    """`heinfer serve` with no model and a directory for rounds: an aggregation-only server."""
    heinfer = heinfer_bin
    repo = tmp_path / "repo"
    repo.mkdir()
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen([heinfer, "serve", str(repo), "--host", "127.0.0.1", "--http-port", "0", "--grpc-port", "0",
                             "--aggregate-dir", str(tmp_path / "rounds")], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    port = None
    while time.time() < deadline and port is None:
        assert proc.poll() is None, open(tmp_path / "serve.log").read()
        log.seek(0)
        m = re.search(r"ready.*http=[\w.]+:(\d+)", log.read())
        port = m and int(m.group(1))
        time.sleep(0.1)
    assert port, "heinfer serve did not start"
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(30)
    log.close()


def cli(heinfer, *args, ok=True):
    r = subprocess.run([heinfer, "aggregate", *map(str, args)], capture_output=True, text=True)
    if ok:
        assert r.returncode == 0, r.stderr
        return r.stdout
    assert r.returncode != 0, r.stdout
    return r.stderr


def test_a_round_from_the_command_line(heinfer_bin, aggregation_server, tmp_path):
    heinfer, server = heinfer_bin, aggregation_server
    members, clients = [1, 2, 3], range(5)
    keys = {}
    for name in [f"m{j}" for j in members] + [f"c{i}" for i in clients]:
        keys[name] = cli(heinfer, "signer", "--out", tmp_path / f"{name}.sig").strip()
        assert re.fullmatch(r"[0-9a-f]{64}", keys[name])
        assert os.stat(tmp_path / f"{name}.sig").st_mode & 0o077 == 0
    length = 5000  # two ciphertexts at N = 2^13
    round_json = tmp_path / "round.json"
    cli(heinfer, "new-round", "--id", "cli-round", "--length", length, "--committee", *[keys[f"m{j}"] for j in members],
        "--threshold", 2, "--contributors", *[keys[f"c{i}"] for i in clients], "--min-contributors", 3, "-o", round_json)
    config = json.loads(round_json.read_text())
    assert sorted(config["committee"]) == ["1", "2", "3"] and config["scale"] == 2.0 ** 80
    crs = "ab" * 32

    # The ceremony: each member begins; Shamir shares go to their recipients only.
    for j in members:
        cli(heinfer, "begin", "--round", round_json, "--crs", crs, "--member", j, "--out", tmp_path / f"out{j}")
    for j in members:
        received = [tmp_path / f"out{i}" / f"shamir-{i}-to-{j}.bin" for i in members]
        assert all(os.stat(p).st_mode & 0o077 == 0 for p in received)
        cli(heinfer, "finish", "--round", round_json, "--member", j, "--shares", *received,
            "--key", tmp_path / f"m{j}.key")
    # A member must hear from every member: a missing Shamir share is refused.
    err = cli(heinfer, "finish", "--round", round_json, "--member", 1, "--shares", tmp_path / "out1" / "shamir-1-to-1.bin",
              "--key", tmp_path / "short.key", ok=False)
    assert "committee has 3 members" in err
    pk = tmp_path / "pk.bin"
    cli(heinfer, "public-key", "--round", round_json, "--crs", crs, "--shares",
        *[tmp_path / f"out{j}" / f"pk-share-{j}.bin" for j in members], "-o", pk)
    created = json.loads(cli(heinfer, "create", "--server", server, "--round", round_json, "--public-key", pk))
    assert created["status"] == "open" and created["ciphertexts"] == 2

    rng = np.random.default_rng(5)
    expected = np.zeros(length)
    for i in range(4):  # client 4 drops out
        v = rng.normal(size=length)
        np.save(tmp_path / f"v{i}.npy", v)
        extra = ["--dp-clip", 1e9, "--dp-grid", 1e-3, "--dp-sigma", 0.01] if i == 3 else []
        out = json.loads(cli(heinfer, "contribute", "--server", server, "--round", round_json, "--public-key", pk,
                             "--signer", tmp_path / f"c{i}.sig", "--values", tmp_path / f"v{i}.npy", *extra))
        assert out["contributions"] == i + 1
        expected += v
    # A second contribution by the same client is refused, and says so.
    err = cli(heinfer, "contribute", "--server", server, "--round", round_json, "--public-key", pk,
              "--signer", tmp_path / "c0.sig", "--values", tmp_path / "v0.npy", ok=False)
    assert "already accepted" in err
    # Shares before the round closes are refused.
    err = cli(heinfer, "share", "--server", server, "--round", round_json, "--key", tmp_path / "m1.key",
              "--signer", tmp_path / "m1.sig", ok=False)
    assert "no shares are asked for" in err
    cli(heinfer, "close", "--server", server, "--round", round_json)

    # Participants 1 and 2 (the first `threshold` members); member 1 shares.
    before = (tmp_path / "m1.key").read_bytes()
    cli(heinfer, "share", "--server", server, "--round", round_json, "--key", tmp_path / "m1.key",
        "--signer", tmp_path / "m1.sig")
    assert (tmp_path / "m1.key").read_bytes() != before, "the key file records what it shared"
    # In a new process, member 1 refuses to share the same sum again (its file remembers).
    err = cli(heinfer, "share", "--server", server, "--round", round_json, "--key", tmp_path / "m1.key",
              "--signer", tmp_path / "m1.sig", ok=False)
    assert "second" in err.lower() or "already" in err.lower(), err
    # Member 3 is not a participant: it makes no share (and the server would refuse one).
    err = cli(heinfer, "share", "--server", server, "--round", round_json, "--key", tmp_path / "m3.key",
              "--signer", tmp_path / "m3.sig", ok=False)
    assert "not among the participants" in err
    # A member's key is used by one process at a time: a lock left by another (or a crash) is named.
    assert not (tmp_path / "m1.key.lock").exists()
    (tmp_path / "m2.key.lock").write_text("")
    err = cli(heinfer, "share", "--server", server, "--round", round_json, "--key", tmp_path / "m2.key",
              "--signer", tmp_path / "m2.sig", ok=False)
    assert "m2.key.lock" in err and "another process" in err, err
    (tmp_path / "m2.key.lock").unlink()
    cli(heinfer, "share", "--server", server, "--round", round_json, "--key", tmp_path / "m2.key",
        "--signer", tmp_path / "m2.sig")

    cli(heinfer, "result", "--server", server, "--round", round_json, "-o", tmp_path / "sum.npy")
    got = np.load(tmp_path / "sum.npy")
    assert got.shape == (length,)
    err = np.abs(got - expected)
    # Three exact contributions and one rounded to 1e-3 with noise of σ = 0.01 / sqrt(3) per value.
    assert err.max() < 0.05, err.max()
    assert 0.001 < err.std() < 0.02, err.std()
