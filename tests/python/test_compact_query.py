"""Compact queries (`heinfer compile --query compact`, `heinfer.compile(query="compact")`):
the digits MLP takes one word per input value (64 words, about 1.5 KB, instead of a 181 KB
ciphertext). By default (`--first-layer auto`) the client sends a ring query and the server
applies the first layer to its coefficients before packing the layer's 32 outputs; with
`--first-layer slots` it sends 64 seeded LWE words and the server packs them into its input
ciphertext. Served by real Triton and by `heinfer serve`, used through tritonclient (HTTP and
gRPC) and the Python SDK.

Asserts: decrypted top-1 agreement with onnxruntime on the first test digits
(HEINFER_COMPACT_SAMPLES, default 12) for both forms, the query's size, and that bad compact
queries (more values than the layer or the packing takes, cut short, under other parameters,
sent to a model compiled without them, of the other form) are refused with a clear message
while the server lives on and still answers. Answers are compact (`answer="auto"`): folded
into degree 2^12 and switched to 2^28, 28,722 B instead of 67,635 B; the report says so."""
import functools
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

import heinfer

from conftest import DATA, ROOT, SERVERS, start_heinfer, start_triton

PROTOCOLS = ["http", "grpc"]
HEADER = 40  # magic, version, kind, flags, parameter fingerprint
COUNT_AT = HEADER + 2 + 8  # after the level (u16) and the scale (f64)


@pytest.fixture(scope="module")
def repo(heinfer_bin, tmp_path_factory):
    d = tmp_path_factory.mktemp("compact_repo")
    cal = np.load(os.path.join(DATA, "digits_train_img.npy"))
    test = np.load(os.path.join(DATA, "digits_test_img.npy"))
    # The SDK's compile for the compact model, the CLI for the ordinary one.
    report = heinfer.compile(os.path.join(ROOT, "models", "digits_mlp.onnx"), cal, d, name="mlp_compact",
                             data=test, query="compact", reference="interpreter")
    env = dict(os.environ, HEINFER_PYTHON=sys.executable)
    for name, extra in (("mlp_full", []), ("mlp_lwe", ["--query", "compact", "--first-layer", "slots"])):
        r = subprocess.run([heinfer_bin, "compile", os.path.join(ROOT, "models", "digits_mlp.onnx"), "--calibration",
                            os.path.join(DATA, "digits_train_img.npy"), "--name", name, "-o", str(d),
                            "--no-onnxruntime"] + extra, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    return str(d), report


@pytest.fixture(scope="module", params=SERVERS)
def srv(request, repo, tmp_path_factory, heinfer_bin):
    if request.param == "triton":
        s = start_triton(repo[0], tmp_path_factory.mktemp("triton_compact"))
    else:
        s = start_heinfer(heinfer_bin, repo[0], tmp_path_factory.mktemp("serve_compact") / "serve.log")
    yield s
    s._stop()


def connect(srv, protocol):
    if protocol == "http":
        return th.InferenceServerClient(srv.http_url, connection_timeout=600, network_timeout=600), th
    return tg.InferenceServerClient(srv.grpc_url), tg


@functools.lru_cache(maxsize=None)
def clients(http_url):
    cli = th.InferenceServerClient(http_url)
    return {m: heinfer.Client(heinfer.client_spec_from_config(cli.get_model_config(m)), model_name=m)
            for m in ("mlp_compact", "mlp_full", "mlp_lwe")}


@functools.lru_cache(maxsize=None)
def digits():
    x = np.load(os.path.join(DATA, "digits_test_img.npy")).astype(np.float32).reshape(-1, 64)
    ref = ort.InferenceSession(os.path.join(ROOT, "models", "digits_mlp.onnx"))
    return x, ref.run(None, {ref.get_inputs()[0].name: x})[0].argmax(-1)


def test_the_report_and_spec_describe_a_compact_query(repo):
    r = repo[1]
    assert r["query_bytes"] < 1600, r["query_bytes"]
    # auto: the first layer's 32 outputs are packed, not its 64 inputs (41 key switches, not 72 + rotations)
    assert any("compact ring query: 64 words" in n and "packs its 32 outputs" in n for n in r["notes"]), r["notes"]
    c = heinfer.Client(heinfer.client_spec_from_config(r["model_dir"]))
    assert c.spec["input"]["compact"]["period"] == 32
    assert c.spec["input"]["compact"]["ring_values"] == 64
    assert len(c.spec["input"]["compact"]["galois_elements"]) == 14  # log2 N packing + conjugation
    lwe = heinfer.Client(heinfer.client_spec_from_config(os.path.join(repo[0], "mlp_lwe")))
    assert lwe.spec["input"]["compact"]["period"] == 64 and "ring_values" not in lwe.spec["input"]["compact"]
    # The ring form's keys: no rotation for the first layer.
    assert len(c.evaluation_keys) < len(lwe.evaluation_keys)
    # Compact answers (`answer="auto"` with a compact query): the outputs repeat every 256
    # slots, so each answer is folded into degree 2^12 and switched to 2^28 (28,722 B, not 67,635).
    assert c.spec["answer"] == {"log_n": 12, "log_q": 28}, c.spec.get("answer")
    assert r["response_bytes"] == 50 + 2 * 4096 * 28 // 8, r["response_bytes"]
    assert any("compact answer" in n and "folds each answer" in n for n in r["notes"]), r["notes"]


@pytest.mark.parametrize("model", ["mlp_compact", "mlp_lwe"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_agreement_with_onnxruntime_and_query_bytes(srv, protocol, model):
    c, full = clients(srv.http_url)[model], clients(srv.http_url)["mlp_full"]
    x, want = digits()
    n = int(os.environ.get("HEINFER_COMPACT_SAMPLES", "12"))
    q = c.encrypt(x[0])
    assert len(q) == 1 and len(q[0]) < 1600, [len(b) for b in q]
    assert len(q[0]) * 100 < len(full.encrypt(x[0])[0])
    cli, _ = connect(srv, protocol)
    got = np.array([int(np.argmax(c.infer(cli, xi))) for xi in x[:n]])
    agree = float(np.mean(got == want[:n]))
    print(f"{srv.kind}/{protocol}/{model}: compact query {len(q[0])} B, keys {len(c.evaluation_keys)} B, "
          f"top-1 agreement {agree:.4f} on {n} digits")
    assert agree == 1.0


def raw_infer(cli, mod, protocol, model, query, key_id):
    inputs = [heinfer._infer_input(mod, protocol, heinfer.ENCRYPTED_INPUT, [query]),
              heinfer._infer_input(mod, protocol, heinfer.KEY_ID, [key_id.encode("ascii")])]
    out = [mod.InferRequestedOutput("ENCRYPTED_OUTPUT", binary_data=True) if mod is th
           else mod.InferRequestedOutput("ENCRYPTED_OUTPUT")]
    return cli.infer(model, inputs, outputs=out)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bad_compact_queries_are_refused_and_the_server_lives_on(srv, protocol):
    cli, mod = connect(srv, protocol)
    c, full = clients(srv.http_url)["mlp_compact"], clients(srv.http_url)["mlp_full"]
    lwe = clients(srv.http_url)["mlp_lwe"]
    x, want = digits()
    c.infer(cli, x[1], send_keys=True)
    full.infer(cli, x[1], send_keys=True)
    lwe.infer(cli, x[1], send_keys=True)
    lwe_query = lwe.encrypt(x[2])[0]
    good = c.encrypt(x[2])[0]
    longer = bytearray(good)
    longer[COUNT_AT:COUNT_AT + 4] = (65).to_bytes(4, "little")
    foreign = bytearray(good)
    foreign[8] ^= 1
    lwe_longer = bytearray(lwe_query)
    lwe_longer[COUNT_AT:COUNT_AT + 4] = (65).to_bytes(4, "little")
    lwe_longer = bytes(lwe_longer) + bytes(23)
    cases = {
        "more values than the first layer takes": ("mlp_compact", bytes(longer) + bytes(23), c.key_id, "value count"),
        "cut short": ("mlp_compact", good[:-7], c.key_id, "truncated"),
        "other parameters": ("mlp_compact", bytes(foreign), c.key_id, "parameters"),
        "a model without compact queries": ("mlp_full", good, full.key_id, "ring query"),
        "an LWE query to the ring model": ("mlp_compact", lwe_query, c.key_id, "ring query"),
        "a ring query to the LWE model": ("mlp_lwe", good, lwe.key_id, "ring query"),
        "more values than the packing covers": ("mlp_lwe", lwe_longer, lwe.key_id, "value count"),
        "an LWE query to a model without compact queries": ("mlp_full", lwe_query, full.key_id,
                                                           "compiled without one"),
    }
    for what, (model, query, key_id, says) in cases.items():
        with pytest.raises(InferenceServerException) as e:
            raw_infer(cli, mod, protocol, model, query, key_id)
        assert says in str(e.value), (what, str(e.value))
        assert srv.alive(), what
    # Nothing lost: the good query still answers, and right, in a compact answer.
    out = raw_infer(cli, mod, protocol, "mlp_compact", good, c.key_id).as_numpy("ENCRYPTED_OUTPUT")
    assert len(out.reshape(-1)[0]) == 50 + 2 * 4096 * 28 // 8
    y = c.decrypt(out)
    assert int(np.argmax(y)) == int(want[2])
    # A compact answer cut short is refused by the client with a clear error.
    with pytest.raises(heinfer.HeinferError) as e:
        c.decrypt(np.array([out.reshape(-1)[0][:-5]], dtype=object))
    assert "truncated" in str(e.value), str(e.value)
