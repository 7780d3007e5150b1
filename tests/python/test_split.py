"""Split inference (`heinfer compile --split-at`): the digits CNN cut after its first conv
block (conv, batch norm, ReLU, average pool) and the breast-cancer model after its scaler.
The prefix runs in clear on the client (onnxruntime in the SDK), only its output is
encrypted; the servers serve the suffix like any model (real Triton and `heinfer serve`,
tritonclient HTTP and gRPC; the models are in conftest's shared repository).

Asserts: decrypted top-1 agreement with onnxruntime on the ORIGINAL model >= 99.5 %
(breast cancer: all 569 samples of sklearn's load_breast_cancer through `heinfer serve`
and 40 per server and protocol; digits: HEINFER_SPLIT_CNN_SAMPLES test digits, default 10
per server and protocol; bench/hybrid.py measures all 360), the split CNN needs fewer
levels and keys than the whole one, a spec whose prefix hash does not match is refused,
and bad split points are refused by `compile`, naming the node."""
import base64
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

from conftest import BIG_MODEL, DATA, ROOT

PROTOCOLS = ["http", "grpc"]


def connect(server, protocol):
    if protocol == "http":
        return th.InferenceServerClient(server.http_url, connection_timeout=600, network_timeout=600)
    return tg.InferenceServerClient(server.grpc_url)


def client_for(server, model):
    cfg = connect(server, "http").get_model_config(model)
    return heinfer.Client(heinfer.client_spec_from_config(cfg), model_name=model)


@functools.lru_cache(maxsize=None)
def data(model):
    """(samples of the ORIGINAL model's input, onnxruntime's top-1 on the original model)."""
    if model.startswith("bc"):
        from sklearn.datasets import load_breast_cancer

        x = load_breast_cancer().data.astype(np.float32)
        onnx = "breast_cancer_lr"
    else:
        x = np.load(os.path.join(DATA, "digits_test_img.npy")).astype(np.float32).reshape(-1, 1, 8, 8)
        onnx = "digits_cnn"
    ref = ort.InferenceSession(os.path.join(ROOT, "models", onnx + ".onnx"))
    outs = ref.run(None, {ref.get_inputs()[0].name: x})
    want = outs[0].reshape(-1) if outs[0].ndim == 1 or outs[0].shape[-1] == 1 else outs[0].argmax(-1)
    return x, want.astype(np.int64)


def agreement(server, protocol, model, n):
    c = client_for(server, model)
    assert c.split_prefix is not None
    x, want = data(model)
    x, want = x[:n], want[:n]
    # The user passes the whole original sample; the client runs the prefix itself.
    assert c.input_shape == x.shape[1:]
    cli = connect(server, protocol)
    got = np.array([int(np.argmax(c.infer(cli, xi, postprocess=True))) for xi in x])
    agree = float(np.mean(got == want))
    print(f"{server.kind}/{protocol}/{model}: top-1 agreement with onnxruntime {agree:.4f} on {len(x)} samples")
    return agree


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("model", ["cnn_split", "bc_split"])
def test_split_agrees_with_onnxruntime(server, protocol, model):
    n = 40 if model.startswith("bc") else int(os.environ.get("HEINFER_SPLIT_CNN_SAMPLES", "10"))
    assert agreement(server, protocol, model, n) >= 0.995


def test_split_breast_cancer_whole_data_set(server):
    if server.kind != "heinfer":
        pytest.skip("the whole data set once, through heinfer serve (a few ms a sample)")
    assert agreement(server, "http", "bc_split", 569) >= 0.995


def test_split_needs_fewer_levels_and_keys(server):
    split, full = client_for(server, "cnn_split"), client_for(server, BIG_MODEL)
    print(f"digits CNN: split {len(split.spec['params']['q'])} primes, 2^{split.spec['params']['log_n']}, "
          f"{len(split.spec['rotation_steps'])} rotation keys, {len(split.evaluation_keys)} B of keys; whole "
          f"{len(full.spec['params']['q'])} primes, 2^{full.spec['params']['log_n']}, "
          f"{len(full.spec['rotation_steps'])} rotation keys, {len(full.evaluation_keys)} B")
    assert len(split.spec["params"]["q"]) < len(full.spec["params"]["q"])
    assert len(split.evaluation_keys) < len(full.evaluation_keys)
    assert split.split_prefix["nodes"] == ["conv1", "bn1", "relu1", "pool1"]
    assert split.split_prefix["cut"] == "p1"


def test_altered_prefix_is_refused(server):
    cfg = connect(server, "http").get_model_config("cnn_split")
    spec = json.loads(heinfer.client_spec_from_config(cfg))
    onnx_bytes = bytearray(base64.b64decode(spec["prefix"]["onnx_base64"]))
    onnx_bytes[-5] ^= 1  # one bit of one weight
    spec["prefix"]["onnx_base64"] = base64.b64encode(bytes(onnx_bytes)).decode()
    with pytest.raises(heinfer.SpecError, match="SHA-256"):
        heinfer.Client(json.dumps(spec))


def compile_split(heinfer_bin, tmp_path, onnx, at):
    env = dict(os.environ, HEINFER_PYTHON=sys.executable)
    return subprocess.run([heinfer_bin, "compile", os.path.join(ROOT, "models", onnx + ".onnx"), "--calibration",
                           os.path.join(DATA, "digits_train_img.npy"), "--no-onnxruntime", "--split-at", at,
                           "-o", str(tmp_path)], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("onnx,at,says", [
    ("digits_resmlp", "relu2", "Add node 'skip'"),  # the skip connection reads 'h', before the cut
    ("digits_rescnn", "conv2", "Add node 'skip'"),
    ("digits_cnn", "no_such_node", "no node and no tensor"),
    ("digits_cnn", "fc2", "output of the model"),
    ("digits_cnn", "input", "the model's input"),
])
def test_bad_split_point_is_refused(heinfer_bin, tmp_path, onnx, at, says):
    r = compile_split(heinfer_bin, tmp_path, onnx, at)
    assert r.returncode != 0
    assert says in r.stderr and "--split-at" in r.stderr, r.stderr


def test_python_compile_split_at(tmp_path):
    """`heinfer.compile(..., split_at=)` passes --split-at: the spec carries the prefix."""
    cal = np.load(os.path.join(DATA, "digits_train_img.npy"))[:200]
    report = heinfer.compile(os.path.join(ROOT, "models", "digits_cnn.onnx"), cal, str(tmp_path), name="cnn_split_py",
                             split_at="pool1", reference="interpreter")
    spec = json.loads(heinfer.client_spec_from_config(os.path.join(report["model_dir"], "config.pbtxt")))
    assert spec["prefix"]["cut"] == "p1"
    assert spec["prefix"]["nodes"] == ["conv1", "bn1", "relu1", "pool1"]
    with pytest.raises(heinfer.CompileError, match="--split-at"):
        heinfer.compile(os.path.join(ROOT, "models", "digits_cnn.onnx"), cal, str(tmp_path), name="bad",
                        split_at="no_such_node", reference="interpreter")


def test_cli_run_takes_the_whole_sample(model_repo, heinfer_bin):
    """`heinfer run` on a split model: the CLI runs the prefix (tract) on the whole sample,
    encrypts its output, evaluates the suffix and decrypts; it agrees with the simulation."""
    r = subprocess.run([heinfer_bin, "run", os.path.join(model_repo, "bc_split"), "--input",
                        os.path.join(DATA, "breast_cancer_test_x.npy"), "--labels",
                        os.path.join(DATA, "breast_cancer_test_y.npy"), "--samples", "40", "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["samples"] == 40, out
    assert out["agreement_with_simulation"] == 1.0, out
    assert out["accuracy"] >= 0.9, out
