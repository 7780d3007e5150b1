"""Encrypted inference through the official tritonclient (HTTP and gRPC), against real
Triton with heinfer's backend and against `heinfer serve` — the same tests for both
(the `server` fixture in conftest.py is parametrized over the two)."""
import hashlib
import json
import os
import time
import urllib.request

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

import heinfer

from conftest import DATA, ROOT

PROTOCOLS = ["http", "grpc"]
SAMPLES = int(os.environ.get("HEINFER_E2E_SAMPLES", "200"))


def connect(server, protocol):
    if protocol == "http":
        return th.InferenceServerClient(server.http_url, connection_timeout=600, network_timeout=600), th
    return tg.InferenceServerClient(server.grpc_url), tg


def bytes_input(mod, name, elements):
    t = mod.InferInput(name, [len(elements)], "BYTES")
    arr = np.array(elements, dtype=np.object_)
    if mod is th:
        t.set_data_from_numpy(arr, binary_data=True)
    else:
        t.set_data_from_numpy(arr)
    return t


def infer(server, protocol, model, inputs):
    cli, mod = connect(server, protocol)
    outputs = [mod.InferRequestedOutput("ENCRYPTED_OUTPUT", binary_data=True) if mod is th
               else mod.InferRequestedOutput("ENCRYPTED_OUTPUT")]
    return cli.infer(model, inputs, outputs=outputs).as_numpy("ENCRYPTED_OUTPUT")


@pytest.fixture(scope="module")
def digits():
    x = np.load(os.path.join(DATA, "digits_test_img.npy"))
    ref = ort.InferenceSession(os.path.join(ROOT, "models", "digits_cryptonets.onnx"))
    logits = ref.run(None, {ref.get_inputs()[0].name: x.astype(np.float32)})[0]
    return x, logits


@pytest.fixture(scope="module")
def client(server):
    """A client that read its spec from the server's model config, registered its keys."""
    cli, _ = connect(server, "http")
    c = heinfer.Client(heinfer.client_spec_from_config(cli.get_model_config(server.model)))
    return c


def register(server, protocol, c, model, x):
    """Sends the key bundle with a first request (registration is idempotent)."""
    return infer(server, protocol, model, c.infer_inputs(x, protocol=protocol, send_keys=True))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_config_gives_the_client_spec(server, protocol):
    cli, _ = connect(server, protocol)
    assert cli.is_server_live() and cli.is_model_ready(server.model)
    cfg = cli.get_model_config(server.model)
    spec = json.loads(heinfer.client_spec_from_config(cfg))
    assert spec["model"] == server.model
    assert spec["params"]["log_n"] >= 12
    names = {i["name"] if isinstance(i, dict) else i.name
             for i in (cfg["input"] if isinstance(cfg, dict) else cfg.config.input)}
    assert names == {"ENCRYPTED_INPUT", "KEY_ID", "EVALUATION_KEYS", "BATCH_PART"}  # BATCH_PART: layout T


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_encrypted_digits_agree_with_onnxruntime(server, client, digits, protocol):
    x, ref = digits
    n = min(SAMPLES, len(x))
    register(server, protocol, client, server.model, x[0])
    agree, max_err = 0, 0.0
    for i in range(n):
        out = infer(server, protocol, server.model, client.infer_inputs(x[i], protocol=protocol))
        y = client.decrypt(out)
        agree += int(np.argmax(y) == np.argmax(ref[i]))
        max_err = max(max_err, float(np.max(np.abs(y - ref[i]))))
    print(f"{server.kind}/{protocol}: {agree}/{n} top-1 agreement with onnxruntime, max |logit error| {max_err:.4f}")
    assert agree / n >= 0.995, f"top-1 agreement {agree}/{n}"
    assert max_err < 1.0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_tens_of_megabytes_of_keys_pass(server, digits, protocol):
    """The CNN's key bundle (tens of MB) registers over both protocols and serves a request."""
    cli, _ = connect(server, "http")
    c = heinfer.Client(heinfer.client_spec_from_config(cli.get_model_config(server.big_model)))
    assert len(c.evaluation_keys) > 10_000_000
    x, _ = digits
    y = c.decrypt(register(server, protocol, c, server.big_model, x[1]))
    ref = ort.InferenceSession(os.path.join(ROOT, "models", "digits_cnn.onnx"))
    want = ref.run(None, {ref.get_inputs()[0].name: x[1:2].astype(np.float32)})[0][0]
    assert np.argmax(y) == np.argmax(want)
    assert hashlib.sha256(c.evaluation_keys).hexdigest() == c.key_id


def expect_error(server, protocol, model, inputs, *needles):
    with pytest.raises(InferenceServerException) as e:
        infer(server, protocol, model, inputs)
    msg = str(e.value)
    assert any(n.lower() in msg.lower() for n in needles), msg
    return msg


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bad_requests_fail_alone(server, client, digits, protocol):
    x, ref = digits
    _, mod = connect(server, protocol)
    register(server, protocol, client, server.model, x[0])
    good = client.encrypt(x[2])
    key = bytes_input(mod, "KEY_ID", [client.key_id.encode()])

    # Unknown key id: a well-formed id nobody registered.
    unknown = bytes_input(mod, "KEY_ID", [hashlib.sha256(b"nobody").hexdigest().encode()])
    expect_error(server, protocol, server.model, [bytes_input(mod, "ENCRYPTED_INPUT", good), unknown], "unknown key id")
    # Malformed ciphertext: random bytes, and a truncated real one.
    expect_error(server, protocol, server.model,
                 [bytes_input(mod, "ENCRYPTED_INPUT", [os.urandom(len(good[0]))]), key], "ENCRYPTED_INPUT[0]")
    expect_error(server, protocol, server.model,
                 [bytes_input(mod, "ENCRYPTED_INPUT", [good[0][: len(good[0]) // 2]]), key], "ENCRYPTED_INPUT[0]")
    # A ciphertext made under another model's parameters.
    cli, _ = connect(server, "http")
    other = heinfer.Client(heinfer.client_spec_from_config(cli.get_model_config(server.big_model)))
    expect_error(server, protocol, server.model,
                 [bytes_input(mod, "ENCRYPTED_INPUT", other.encrypt(x[2])), key], "parameters", "fingerprint")
    # Missing tensor: no ENCRYPTED_INPUT at all.
    expect_error(server, protocol, server.model, [key], "ENCRYPTED_INPUT")
    # Oversized: far more ciphertexts than the model takes, and an element with trailing bytes.
    expect_error(server, protocol, server.model, [bytes_input(mod, "ENCRYPTED_INPUT", good * 64), key],
                 "ciphertexts", "ENCRYPTED_INPUT")
    expect_error(server, protocol, server.model,
                 [bytes_input(mod, "ENCRYPTED_INPUT", [good[0] + b"\0" * 4096]), key], "ENCRYPTED_INPUT[0]")
    # A key id that is not hex.
    expect_error(server, protocol, server.model,
                 [bytes_input(mod, "ENCRYPTED_INPUT", good), bytes_input(mod, "KEY_ID", [b"zz"])], "KEY_ID")

    # The server lives on and the next good request succeeds.
    assert server.alive()
    y = client.decrypt(infer(server, protocol, server.model, client.infer_inputs(x[2], protocol=protocol)))
    assert np.argmax(y) == np.argmax(ref[2])


def test_statistics_count_requests(server, client, digits):
    """`/v2/models/<m>/stats` counts successes and failures (Triton's JSON shape)."""
    def stats():
        with urllib.request.urlopen(f"http://{server.http_url}/v2/models/{server.model}/stats", timeout=30) as r:
            s = json.load(r)["model_stats"][0]["inference_stats"]
        return s["success"]["count"], s["fail"]["count"]
    def settled():
        # Triton counts a request after its response has been sent, so a request that has just
        # answered may not be counted yet: read until the counts hold still for half a second.
        last = stats()
        for _ in range(40):
            time.sleep(0.5)
            now = stats()
            if now == last:
                return now
            last = now
        return last
    x, _ = digits
    register(server, "http", client, server.model, x[0])
    ok0, fail0 = settled()
    for i in range(3):
        infer(server, "http", server.model, client.infer_inputs(x[i], protocol="http"))
    _, mod = connect(server, "http")
    with pytest.raises(InferenceServerException):
        infer(server, "http", server.model, [bytes_input(mod, "ENCRYPTED_INPUT", [b"junk"]),
                                             bytes_input(mod, "KEY_ID", [client.key_id.encode()])])
    ok1, fail1 = settled()
    assert ok1 - ok0 == 3
    assert fail1 - fail0 == 1
