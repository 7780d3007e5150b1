"""`heinfer serve` as a process, driven by the stock tritonclient (HTTP and gRPC):
the ready line, port 0, config and metadata, encrypted inference on a small model
(breast-cancer logistic regression, N = 2^12), errors that leave the process up,
the request-size limit, and a clean exit on SIGTERM.

The suite shared with real Triton lives in test_serving.py; this file covers what
only `heinfer serve` has (its command line and lifecycle)."""
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest

httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

from conftest import build_heinfer

heinfer = pytest.importorskip("heinfer")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "models", "data")
MODEL = "breast_cancer_lr"
READY = re.compile(r"heinfer serve ready http=([\d.]+):(\d+) grpc=([\d.]+):(\d+)")


@pytest.fixture(scope="module")
def serve_bin():
    return build_heinfer()


@pytest.fixture(scope="module")
def repo(serve_bin, tmp_path_factory):
    out = tmp_path_factory.mktemp("serve_repo")
    subprocess.run([serve_bin, "compile", os.path.join(ROOT, "models", MODEL + ".onnx"),
                    "--calibration", os.path.join(DATA, "breast_cancer_train_x.npy"), "--no-onnxruntime",
                    "-o", str(out), "--json"], check=True, capture_output=True)
    return str(out)


class Proc:
    def __init__(self, serve_bin, repo, log, *extra):
        self.log_path = log
        self.log = open(log, "w+")
        self.proc = subprocess.Popen([serve_bin, "serve", repo, "--http-port", "0", "--grpc-port", "0", *extra],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 60
        while time.time() < deadline:
            assert self.proc.poll() is None, f"heinfer serve exited: {self.text()}"
            m = READY.search(self.text())
            if m:
                self.http = f"{m.group(1)}:{m.group(2)}"
                self.grpc = f"{m.group(3)}:{m.group(4)}"
                assert m.group(2) != "0" and m.group(4) != "0", "the ready line names the ports actually bound"
                return
            time.sleep(0.1)
        raise AssertionError(f"no ready line within 60 s: {self.text()}")

    def text(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def serve(serve_bin, repo, tmp_path_factory):
    p = Proc(serve_bin, repo, tmp_path_factory.mktemp("serve_log") / "serve.log")
    yield p
    p.stop()


@pytest.fixture(scope="module")
def xs():
    return np.load(os.path.join(DATA, "breast_cancer_test_x.npy")), np.load(os.path.join(DATA, "breast_cancer_test_y.npy"))


def clients(serve):
    return [httpclient.InferenceServerClient(serve.http), grpcclient.InferenceServerClient(serve.grpc)]


def test_health_metadata_and_config_through_tritonclient(serve):
    h, g = clients(serve)
    assert h.is_server_live() and h.is_server_ready() and h.is_model_ready(MODEL)
    assert g.is_server_live() and g.is_server_ready() and g.is_model_ready(MODEL)
    assert not h.is_model_ready("nope") and not g.is_model_ready("nope")
    meta = h.get_model_metadata(MODEL)
    # BATCH_PART: CryptoNets has layout T too (a batch may come in several requests).
    assert [i["name"] for i in meta["inputs"]] == ["ENCRYPTED_INPUT", "KEY_ID", "EVALUATION_KEYS", "BATCH_PART"]
    assert g.get_model_metadata(MODEL).outputs[0].datatype == "BYTES"
    spec_h = heinfer.client_spec_from_config(h.get_model_config(MODEL))
    spec_g = heinfer.client_spec_from_config(g.get_model_config(MODEL))
    spec_j = heinfer.client_spec_from_config(g.get_model_config(MODEL, as_json=True))
    assert spec_h == spec_g == spec_j
    assert g.get_model_config(MODEL).config.input[0].data_type == 13  # TYPE_STRING
    with pytest.raises(InferenceServerException, match="unknown model"):
        h.get_model_config("nope")
    with pytest.raises(InferenceServerException, match="unknown model"):
        g.get_model_metadata("nope")


def test_encrypted_inference_over_http_and_grpc_agree(serve, xs):
    x, y = xs
    h, g = clients(serve)
    client = heinfer.Client.from_server(h, MODEL)
    right, n = 0, 12
    for i in range(n):
        # keys travel with the first request of each protocol, then by KEY_ID
        out_h = client.infer(h, x[i], model_name=MODEL)
        out_g = client.infer(g, x[i], model_name=MODEL)
        assert np.allclose(out_h, out_g, atol=1e-2), (out_h, out_g)
        right += int(np.argmax(out_h) == int(y[i]))
    assert right >= n - 2, f"{right}/{n} correct"
    st = h.get_inference_statistics(MODEL)["model_stats"][0]
    assert int(st["inference_count"]) >= 2 * n
    assert int(st["inference_stats"]["compute_infer"]["ns"]) > 0


def test_bad_requests_fail_alone(serve, xs):
    h, g = clients(serve)
    client = heinfer.Client.from_server(h, MODEL)
    for mod, c in ((httpclient, h), (grpcclient, g)):
        junk = mod.InferInput("ENCRYPTED_INPUT", [1], "BYTES")
        junk.set_data_from_numpy(np.array([b"not a ciphertext"], dtype=np.object_))
        kid = mod.InferInput("KEY_ID", [1], "BYTES")
        kid.set_data_from_numpy(np.array([client.key_id.encode()], dtype=np.object_))
        with pytest.raises(InferenceServerException) as e:
            c.infer(MODEL, [junk, kid])
        assert "ENCRYPTED_INPUT" in str(e.value) or "key id" in str(e.value)
        with pytest.raises(InferenceServerException, match="KEY_ID"):
            c.infer(MODEL, [junk])
        with pytest.raises(InferenceServerException, match="unknown model"):
            c.infer("nope", [junk, kid])
    assert serve.proc.poll() is None
    out = client.infer(h, xs[0][0], model_name=MODEL)
    assert len(out) == client.num_classes


def test_request_limit_and_sigterm(serve_bin, repo, tmp_path):
    p = Proc(serve_bin, repo, tmp_path / "small.log", "--max-request-mb", "1")
    try:
        h = httpclient.InferenceServerClient(p.http)
        g = grpcclient.InferenceServerClient(p.grpc)
        for mod, c in ((httpclient, h), (grpcclient, g)):
            big = mod.InferInput("ENCRYPTED_INPUT", [1], "BYTES")
            big.set_data_from_numpy(np.array([b"\0" * (2 << 20)], dtype=np.object_))
            kid = mod.InferInput("KEY_ID", [1], "BYTES")
            kid.set_data_from_numpy(np.array([b"00"], dtype=np.object_))
            with pytest.raises(InferenceServerException):
                c.infer(MODEL, [big, kid])
        assert h.is_server_live()
        assert re.search(r"status=4\d\d", p.text()), "requests are logged one line each with their status"
    finally:
        p.proc.send_signal(signal.SIGTERM)
        assert p.proc.wait(30) == 0, p.text()
        assert "stopped" in p.text()
        p.log.close()
