"""Client-aided refresh (`heinfer compile --client-aided`): the four-hidden-layer ReLU MLP
(models/digits_deep_mlp.onnx) cut at its activations into five segments, each one
encrypted matrix product served as an ordinary model by real Triton and `heinfer serve`
(tritonclient HTTP and gRPC); `heinfer.ClientAided` runs the exact ReLUs in clear between
them and re-encrypts.

Asserts: decrypted top-1 agreement with onnxruntime on the original model >= 99.5 %
(HEINFER_CA_SAMPLES test digits per server and protocol, default 12; bench/client_aided.py
measures all 360); every segment is shallow (a few levels, N <= 2^13) where the whole
model fully encrypted needs N = 2^15 and 22 primes; a segment sent another segment's
ciphertext is refused with an error, not answered; an abandoned exchange leaves the
server serving; compile refuses --client-aided with options it cannot combine."""
import functools
import json
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th

import heinfer

from conftest import CA_MODEL, DATA, ROOT

PROTOCOLS = ["http", "grpc"]
SEGMENTS = [f"{CA_MODEL}__seg{k}" for k in range(5)]


def connect(server, protocol):
    if protocol == "http":
        return th.InferenceServerClient(server.http_url, connection_timeout=600, network_timeout=600)
    return tg.InferenceServerClient(server.grpc_url)


@functools.lru_cache(maxsize=None)
def data():
    """(test digits, onnxruntime's top-1 on the ORIGINAL model)."""
    x = np.load(os.path.join(DATA, "digits_test_img.npy")).astype(np.float32).reshape(-1, 1, 8, 8)
    ref = ort.InferenceSession(os.path.join(ROOT, "models", "digits_deep_mlp.onnx"))
    return x, ref.run(None, {ref.get_inputs()[0].name: x})[0].argmax(-1)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_client_aided_agrees_with_onnxruntime(server, protocol):
    cli = connect(server, protocol)
    ca = heinfer.ClientAided.from_server(connect(server, "http"), CA_MODEL)
    assert ca.segments == SEGMENTS and ca.round_trips == 5
    n = int(os.environ.get("HEINFER_CA_SAMPLES", "12"))
    x, want = data()
    got = np.array([int(np.argmax(ca.infer(cli, xi))) for xi in x[:n]])
    agree = float(np.mean(got == want[:n]))
    trips = ca.last_round_trips
    print(f"{server.kind}/{protocol}: client-aided top-1 agreement {agree:.4f} on {n} samples; per sample "
          f"{sum(t['query_bytes'] for t in trips)} B sent, {sum(t['answer_bytes'] for t in trips)} B received "
          f"over {len(trips)} round trips")
    assert [t["segment"] for t in trips] == list(range(5))
    assert all(t["query_bytes"] > 0 and t["answer_bytes"] > 0 for t in trips)
    assert agree >= 0.995


def test_segments_are_shallow(server):
    cfg = connect(server, "http")
    specs = [json.loads(heinfer.client_spec_from_config(cfg.get_model_config(s))) for s in SEGMENTS]
    for k, s in enumerate(specs):
        print(f"{SEGMENTS[k]}: 2^{s['params']['log_n']}, {len(s['params']['q'])} primes, "
              f"{len(s['rotation_steps'])} rotation keys, relinearization {s['relinearization']}")
        assert s["client_aided"]["index"] == k and s["client_aided"]["segments"] == SEGMENTS
        # One matrix product each: no ciphertext products (so no relinearization key), a
        # short chain; the whole model fully encrypted needs N = 2^15 and 22 primes.
        assert not s["relinearization"]
        assert s["params"]["log_n"] <= 13 and len(s["params"]["q"]) <= 4
    clear = specs[0]["client_aided"]["clear"]
    assert [c["nodes"] for c in clear] == [["relu1"], ["relu2"], ["relu3"], ["relu4"]]


def test_wrong_segment_is_refused(server):
    """Segment 0's ciphertext (and keys) sent to segment 1: another input layout and
    parameters; the server answers with an error, never a result."""
    cli = connect(server, "http")
    ca = heinfer.ClientAided.from_server(cli, CA_MODEL)
    c0 = ca.clients[0]
    x, _ = data()
    with pytest.raises(Exception) as e:
        cli.infer(SEGMENTS[1], c0.infer_inputs(x[0], "http", send_keys=True), outputs=c0.infer_outputs("http"))
    msg = str(e.value).lower()
    print(f"{server.kind}: {e.value}")
    assert any(w in msg for w in ("ciphertext", "key", "parameter", "input")), msg
    assert server.alive()


def test_abandoned_exchange_leaves_server_serving(server):
    """The server holds nothing between segments: a client that stops after segment 1
    leaves no state to time out; the next exchange runs whole and agrees."""
    cli = connect(server, "grpc")
    x, want = data()
    abandoned = heinfer.ClientAided.from_server(connect(server, "http"), CA_MODEL)
    y = abandoned.run_segment(cli, 0, x[1])
    abandoned.run_segment(cli, 1, abandoned.clear_step(0, y))
    del abandoned
    ca = heinfer.ClientAided.from_server(connect(server, "http"), CA_MODEL)
    assert int(np.argmax(ca.infer(cli, x[1]))) == want[1]
    assert server.alive()


def compile_ca(heinfer_bin, tmp_path, onnx, cal, *extra):
    env = dict(os.environ, HEINFER_PYTHON=sys.executable)
    return subprocess.run([heinfer_bin, "compile", os.path.join(ROOT, "models", onnx + ".onnx"), "--calibration",
                           os.path.join(DATA, cal + ".npy"), "--no-onnxruntime", "--client-aided", *extra,
                           "-o", str(tmp_path)], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("onnx,cal,extra,says", [
    ("digits_deep_mlp", "digits_train_img", ["--split-at", "relu1"], "cannot be combined with --split-at"),
    ("digits_deep_mlp", "digits_train_img", ["--circuit-privacy"], "cannot be combined with --circuit-privacy"),
    ("digits_deep_mlp", "digits_train_img", ["--scheme", "paillier"], "needs --scheme ckks"),
    # Its only non-linearity is the final sigmoid, which the client applies anyway.
    ("breast_cancer_lr", "breast_cancer_train_x", [], "no non-linear activation"),
])
def test_client_aided_refusals(heinfer_bin, tmp_path, onnx, cal, extra, says):
    r = compile_ca(heinfer_bin, tmp_path, onnx, cal, *extra)
    assert r.returncode != 0
    assert says in r.stderr and "--client-aided" in r.stderr, r.stderr
    assert not os.listdir(tmp_path)
