"""Layout M (B samples interleaved in one ciphertext, `compile --layout auto|M`) end to end
through the official tritonclient, against real Triton with heinfer's backend and against
`heinfer serve` (the `server` fixture runs both), on CryptoNets' digits network as the
compiler's defaults build it: the Python SDK's `MultiClient` encrypts B digits into ONE
ciphertext, the server runs the network once for all of them, and each decrypted row is
compared with onnxruntime on that digit.

Also: layouts L and M of one model served side by side under one secret key (the server
runs the layout each key id's bundle is for), the layout the SDK picks for a batch, a
batch larger than one request split by `infer`, and bad input — more samples than B, a
damaged bundle — each a clear error, the server alive."""
import functools
import json
import os
import time

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

import heinfer

from conftest import DATA, ROOT


@functools.lru_cache(maxsize=None)
def digits():
    x = np.load(os.path.join(DATA, "digits_test_img.npy")).astype(np.float64)
    ref = ort.InferenceSession(os.path.join(ROOT, "models", "digits_cryptonets.onnx"))
    logits = ref.run(None, {ref.get_inputs()[0].name: x.astype(np.float32)})[0]
    return x.reshape(len(x), -1), logits


def spec_of(server):
    cli = th.InferenceServerClient(server.http_url)
    return heinfer.client_spec_from_config(cli.get_model_config(server.model))


def connect(server, protocol):
    if protocol == "http":
        return th.InferenceServerClient(server.http_url, connection_timeout=600, network_timeout=600)
    return tg.InferenceServerClient(server.grpc_url)


@pytest.fixture(scope="module")
def m_client(model_repo):
    spec = heinfer.client_spec_from_config(os.path.join(model_repo, "digits_cryptonets"))
    return heinfer.client_for(spec, layout="M", model_name="digits_cryptonets")


def test_the_spec_and_report_carry_layout_m(model_repo, m_client):
    spec = json.loads(heinfer.client_spec_from_config(os.path.join(model_repo, "digits_cryptonets")))
    layouts = {c["layout"]: c for c in spec["layouts"]}
    m, lat = layouts["M"], layouts["L"]
    b = m["max_batch"]
    assert b >= 8 and b & (b - 1) == 0, b
    assert m_client.max_batch == b and isinstance(m_client, heinfer.MultiClient)
    # One request of B samples costs about what one of L costs: per sample, B times less.
    assert m["request_bytes"] == lat["request_bytes"]
    assert m["cost_s_per_sample"] < lat["cost_s_per_sample"] / 4, (m, lat)
    # Same parameters as L; its own Galois keys.
    assert spec["multi"]["params"] == spec["params"]
    assert sorted(spec["multi"]["galois_elements"]) != sorted(spec["galois_elements"])
    report = json.load(open(os.path.join(model_repo, "digits_cryptonets", "report.json")))
    assert any(n.startswith(f"layout M: {b} samples per request") for n in report["notes"]), report["notes"]
    # The SDK's choice by batch size: for one sample the quicker request of L and M (the
    # same bytes), for a full batch of B layout M.
    quicker = min(("L", "M"), key=lambda k: layouts[k]["latency_s"])
    assert heinfer.choose_layout(spec, 1)[0] == quicker
    assert heinfer.choose_layout(spec, b)[0] == "M"


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_batch_of_b_digits_in_one_ciphertext_agrees_with_onnxruntime(server, m_client, protocol):
    x, logits = digits()
    b = m_client.max_batch
    cli = connect(server, protocol)
    inputs = m_client.infer_inputs(x[:b], protocol, send_keys=True)
    enc = [i for i in inputs if i.name() == "ENCRYPTED_INPUT"]
    assert enc and enc[0].shape() == [1], "B samples travel as ONE ciphertext"
    t = time.perf_counter()
    res = cli.infer(server.model, inputs, outputs=m_client.infer_outputs(protocol))
    secs = time.perf_counter() - t
    y = m_client.decrypt_batch(res.as_numpy("ENCRYPTED_OUTPUT"), b)
    assert y.shape == (b, 10)
    agree = float(np.mean(y.argmax(1) == logits[:b].argmax(1)))
    err = float(np.max(np.abs(y - logits[:b])))
    print(f"\n[{server.kind}/{protocol}] layout M: {b} digits in one request in {secs:.3f} s "
          f"({b / secs:.0f} digits/s end to end), agreement {agree:.4f}, max |logit error| {err:.4f}")
    assert agree >= 0.99, agree


def test_layouts_l_and_m_side_by_side_and_a_split_batch(server, m_client, tmp_path):
    """One secret key, two bundles: the server runs L for L's key id and M for M's; a
    batch of 2B + 3 goes in three requests."""
    x, logits = digits()
    spec = spec_of(server)
    sk = tmp_path / "sk"
    m_client.save_secret_key(sk)
    l_client = heinfer.client_for(spec, layout="L", secret_key_path=sk, model_name=server.model)
    cli = connect(server, "http")
    y_l = l_client.infer(cli, x[5])
    assert int(np.argmax(y_l)) == int(logits[5].argmax())
    n = 2 * m_client.max_batch + 3
    y = m_client.infer(cli, x[:n], model_name=server.model)
    assert y.shape == (n, 10)
    assert float(np.mean(y.argmax(1) == logits[:n].argmax(1))) >= 0.99


def test_bad_layout_m_input_is_refused_and_the_server_lives(server, m_client):
    x, logits = digits()
    b = m_client.max_batch
    with pytest.raises(heinfer.InputError, match="at most"):
        m_client.infer_inputs(x[:b + 1], "http")
    # A damaged bundle (layout M's, cut short) with an L query: refused, nothing stored.
    # (A well-formed bundle of neither layout: `cargo test -p client --test layout_m`.)
    cli = connect(server, "http")
    spec = spec_of(server)
    sk_client = heinfer.client_for(spec, layout="L", model_name=server.model)
    inputs = sk_client.infer_inputs(x[0], "http", send_keys=False)
    bogus = th.InferInput("EVALUATION_KEYS", [1], "BYTES")
    bogus.set_data_from_numpy(np.array([m_client.evaluation_keys[:-7]], dtype=np.object_), binary_data=True)
    inputs = [i for i in inputs if i.name() != "KEY_ID"] + [bogus]
    with pytest.raises(InferenceServerException) as e:
        cli.infer(server.model, inputs, outputs=sk_client.infer_outputs("http"))
    assert "400" in str(e.value.status()) or "INVALID" in str(e.value.status()), e.value
    # Alive: layout M still answers.
    res = cli.infer(server.model, m_client.infer_inputs(x[:4], "http", send_keys=True),
                    outputs=m_client.infer_outputs("http"))
    y = m_client.decrypt_batch(res.as_numpy("ENCRYPTED_OUTPUT"), 4)
    assert list(y.argmax(1)) == list(logits[:4].argmax(1))


def test_the_cli_batch_commands_take_layout_m(model_repo, heinfer_bin, tmp_path):
    """`heinfer batch keygen|encrypt|evaluate|decrypt --layout M`: the file-based steps any
    transport can carry, B digits in one ciphertext."""
    import subprocess

    def run(*args):
        r = subprocess.run([heinfer_bin, *map(str, args)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout

    x, logits = digits()
    model_dir = os.path.join(model_repo, "digits_cryptonets")
    np.save(tmp_path / "x.npy", x[:8])
    run("batch", "keygen", model_dir, "--layout", "M", "--secret-key", tmp_path / "sk", "--keys-out", tmp_path / "k")
    enc = json.loads(run("batch", "encrypt", model_dir, "--layout", "M", "--secret-key", tmp_path / "sk",
                         "--input", tmp_path / "x.npy", "-o", tmp_path / "req"))
    assert enc["layout"] == "M" and enc["ciphertexts"] == 1 and enc["samples"] == 8, enc
    run("batch", "evaluate", model_dir, "--keys", tmp_path / "k", tmp_path / "req", "-o", tmp_path / "res")
    run("batch", "decrypt", model_dir, "--layout", "M", "--secret-key", tmp_path / "sk", "--samples", 8,
        tmp_path / "res", "-o", tmp_path / "y.npy")
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (8, 10)
    assert list(y.argmax(1)) == list(logits[:8].argmax(1))
    # A layout the model was not compiled with is refused by name.
    r = subprocess.run([heinfer_bin, "batch", "keygen", model_dir, "--layout", "X", "--secret-key",
                        tmp_path / "sk2", "--keys-out", tmp_path / "k2"], capture_output=True, text=True)
    assert r.returncode != 0 and "choose T or M" in r.stderr, r.stderr


def test_the_sdk_compiles_the_layouts_asked_for(tmp_path):
    """`heinfer.compile(layout=...)`: M asked for comes with L; L alone has no M; an
    unknown layout is a CompileError naming the choices."""
    onnx = os.path.join(ROOT, "models", "digits_mlp.onnx")
    cal = np.load(os.path.join(DATA, "digits_train_img.npy"))
    r = heinfer.compile(onnx, cal, tmp_path, name="mlp_m", layout="M", reference="interpreter")
    kinds = {c["layout"]: c for c in r["layouts"]}
    assert set(kinds) == {"L", "M"}, kinds
    assert kinds["M"]["max_batch"] == 64 and kinds["M"]["cost_s_per_sample"] < kinds["L"]["cost_s_per_sample"]
    r = heinfer.compile(onnx, cal, tmp_path, name="mlp_l", layout="L", reference="interpreter")
    assert [c["layout"] for c in r["layouts"]] == ["L"]
    with pytest.raises(heinfer.CompileError, match="auto, L, M or T"):
        heinfer.compile(onnx, cal, tmp_path, name="bad", layout="X", reference="interpreter")
