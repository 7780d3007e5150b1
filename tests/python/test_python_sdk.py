"""The Python SDK (`import heinfer`, python/): compile, client spec, keys, encryption,
decryption, errors — without a server — then encrypted digits through tritonclient
(HTTP and gRPC) against real Triton and `heinfer serve` (fixture `server`, conftest.py),
compared with onnxruntime."""
import hashlib
import json
import os
import stat

import numpy as np
import pytest

heinfer = pytest.importorskip("heinfer", reason="the heinfer wheel is not installed (scripts/setup-python.sh builds it)")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "models", "data")
ONNX = os.path.join(ROOT, "models", "digits_cryptonets.onnx")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("sdk_repo")
    msgs = []
    report = heinfer.compile(ONNX, np.load(os.path.join(DATA, "digits_train_img.npy")), out, scale_bits=30,
                             reference="interpreter", progress=msgs.append)
    report["progress"] = msgs
    return report


@pytest.fixture(scope="module")
def spec(compiled):
    return heinfer.client_spec_from_config(compiled["model_dir"])


@pytest.fixture(scope="module")
def client(spec):
    return heinfer.Client(spec)


@pytest.fixture(scope="module")
def digits():
    return np.load(os.path.join(DATA, "digits_test_img.npy"))


# --------------------------------------------------------------------------- without a server


def test_compile_writes_a_model_directory_and_reports(compiled):
    d = compiled["model_dir"]
    assert os.path.basename(d) == "digits_cryptonets"
    assert os.path.isfile(os.path.join(d, "config.pbtxt")) and os.path.isfile(os.path.join(d, "1", "model.hem"))
    assert compiled["log_scale"] == pytest.approx(30, abs=0.5)
    assert compiled["accuracy"]["top1_agreement"] >= 0.99
    assert compiled["evaluation_key_bytes"] > 0 and compiled["progress"]


def test_compile_takes_where_rotations_run(tmp_path):
    """rotations= is --rotations: after the rescale the MLP's keys are made one level lower."""
    cal = np.load(os.path.join(DATA, "digits_train_img.npy"))
    mlp = os.path.join(ROOT, "models", "digits_mlp.onnx")
    keys = {r: heinfer.compile(mlp, cal, tmp_path / r, rotations=r, reference="interpreter")["evaluation_key_bytes"]
            for r in ("before-rescale", "after-rescale")}
    assert keys["after-rescale"] < keys["before-rescale"], keys
    with pytest.raises(heinfer.CompileError, match="rotation placement"):
        heinfer.compile(mlp, cal, tmp_path / "x", rotations="sideways")


def test_compile_errors_are_heinfer_errors(tmp_path):
    cal = np.load(os.path.join(DATA, "digits_train_img.npy"))
    with pytest.raises(heinfer.CompileError, match="calibration"):
        heinfer.compile(ONNX, cal[:, :, :4], tmp_path)
    with pytest.raises(heinfer.CompileError, match="cannot read"):
        heinfer.compile(tmp_path / "missing.onnx", cal, tmp_path)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(heinfer.HeinferError):
        heinfer.compile(bad, cal, tmp_path)


def test_client_spec_from_every_config_form(compiled, spec):
    d = compiled["model_dir"]
    want = json.loads(spec)
    assert want["model"] == "digits_cryptonets" and "params" in want
    http_cfg = {"name": "digits_cryptonets", "backend": "heinfer",
                "parameters": {"heinfer_client_spec": {"string_value": spec}}}
    forms = [
        os.path.join(d, "config.pbtxt"),
        os.path.join(d, "1", "model.hem"),
        http_cfg,                      # tritonclient.http get_model_config()
        {"config": http_cfg},          # tritonclient.grpc get_model_config(as_json=True)
        spec,
        json.loads(spec),
    ]
    for f in forms:
        assert json.loads(heinfer.client_spec_from_config(f)) == want, f
    grpc_pb = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    cfg = grpc_pb.ModelConfig(name="digits_cryptonets", backend="heinfer")
    cfg.parameters["heinfer_client_spec"].string_value = spec
    assert json.loads(heinfer.client_spec_from_config(cfg)) == want
    service_pb = pytest.importorskip("tritonclient.grpc.service_pb2")
    assert json.loads(heinfer.client_spec_from_config(service_pb.ModelConfigResponse(config=cfg))) == want


def test_client_spec_errors_say_what_is_missing(tmp_path):
    with pytest.raises(heinfer.SpecError, match="onnx_model.*heinfer_client_spec"):
        heinfer.client_spec_from_config({"name": "onnx_model", "backend": "onnxruntime", "parameters": {}})
    with pytest.raises(heinfer.SpecError, match="not JSON"):
        heinfer.client_spec_from_config({"parameters": {"heinfer_client_spec": {"string_value": "{oops"}}})
    with pytest.raises(heinfer.SpecError):
        heinfer.client_spec_from_config(42)
    with pytest.raises(heinfer.SpecError, match="model.hem"):
        heinfer.client_spec_from_config(str(tmp_path))
    with pytest.raises(heinfer.SpecError):
        heinfer.Client('{"version": 1, "params": {}}')
    assert issubclass(heinfer.SpecError, ValueError) and issubclass(heinfer.SpecError, heinfer.HeinferError)


def test_shapes_and_key_id(client):
    assert client.input_shape == (1, 8, 8) and client.input_size == 64
    assert client.num_classes == 10 and client.num_output_ciphertexts >= 1
    ek = client.evaluation_keys
    assert isinstance(ek, bytes) and len(ek) > 100_000
    assert client.evaluation_keys is ek  # computed once
    assert client.key_id == hashlib.sha256(ek).hexdigest()
    assert "digits_cryptonets" in repr(client)


def test_encrypt_decrypt_input_round_trip(client, digits):
    x = digits[0]
    cts = client.encrypt(x)
    assert isinstance(cts, list) and len(cts) == client.num_input_ciphertexts and all(isinstance(b, bytes) for b in cts)
    back = client.decrypt_input(cts)
    assert back.shape == client.input_shape and np.abs(back - x.reshape(client.input_shape)).max() < 1e-4
    # any shape of the right size, any numeric dtype; fresh randomness every time
    assert client.encrypt(x.reshape(-1).astype(np.float32).tolist()) != cts
    assert np.abs(client.decrypt_input(client.encrypt(x.reshape(1, 64))) - back).max() < 1e-4
    batch = client.encrypt_batch(digits[:3])
    assert len(batch) == 3
    for i, b in enumerate(batch):
        assert np.abs(client.decrypt_input(b) - digits[i].reshape(client.input_shape)).max() < 1e-4
    # object arrays, as tritonclient builds them, work too
    assert np.abs(client.decrypt_input(np.array(cts, dtype=np.object_)) - back).max() < 1e-4


def test_encrypt_errors(client):
    with pytest.raises(heinfer.InputError, match=r"64 values"):
        client.encrypt(np.zeros(65))
    with pytest.raises(heinfer.InputError, match="not finite"):
        client.encrypt(np.full(64, np.inf))
    with pytest.raises(heinfer.InputError, match="float64"):
        client.encrypt(["a"] * 64)
    with pytest.raises(heinfer.InputError):
        client.encrypt_batch(np.zeros((2, 63)))
    with pytest.raises(ValueError):  # InputError is a ValueError too
        client.encrypt(np.zeros(3))


def test_decrypt_errors_are_clear(client, digits):
    n = client.num_output_ciphertexts
    with pytest.raises(heinfer.OutputError, match=f"holds 0 ciphertexts; this model returns {n}"):
        client.decrypt([])
    with pytest.raises(heinfer.OutputError, match=f"holds {n + 1} ciphertexts"):
        client.decrypt([b"x"] * (n + 1))
    with pytest.raises(heinfer.OutputError, match=r"ENCRYPTED_OUTPUT\[0\].*bad magic"):
        client.decrypt([b"garbage" * 100] * n)
    # an input ciphertext is no output ciphertext: refused, not mis-decrypted
    with pytest.raises(heinfer.OutputError, match=r"ENCRYPTED_OUTPUT\[0\]"):
        client.decrypt(client.encrypt(digits[0])[:1] * n)
    # truncated and bit-flipped real bytes
    ct = client.encrypt(digits[0])[0]
    for bad in (ct[: len(ct) // 2], ct[:8] + bytes([ct[8] ^ 0xFF]) + ct[9:], ct + b"\0"):
        with pytest.raises(heinfer.OutputError):
            client.decrypt([bad] * n)
    with pytest.raises(heinfer.OutputError, match="not bytes"):
        client.decrypt([1.5] * n)
    with pytest.raises(heinfer.OutputError):
        client.decrypt(np.zeros(n))
    with pytest.raises(heinfer.OutputError):
        client.decrypt("ENCRYPTED_OUTPUT")


def test_secret_key_file(client, spec, digits, tmp_path):
    p = tmp_path / "sk.bin"
    client.save_secret_key(p)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    with pytest.raises(heinfer.KeyFileError, match="exists"):
        client.save_secret_key(p)
    again = heinfer.Client.load(spec, p)
    cts = client.encrypt(digits[1])
    assert np.abs(again.decrypt_input(cts) - digits[1].reshape(client.input_shape)).max() < 1e-4
    other = heinfer.Client(spec)  # another secret key reads noise
    assert np.abs(other.decrypt_input(cts) - digits[1].reshape(client.input_shape)).max() > 1.0
    os.chmod(p, 0o644)
    with pytest.raises(heinfer.KeyFileError, match="chmod 600"):
        heinfer.Client.load(spec, p)
    with pytest.raises(heinfer.KeyFileError):
        heinfer.Client.load(spec, tmp_path / "missing.bin")
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\0" * 100)
    os.chmod(garbage, 0o600)
    with pytest.raises(heinfer.KeyFileError):
        heinfer.Client.load(spec, garbage)


def test_infer_inputs_without_a_server(client, digits):
    pytest.importorskip("tritonclient.http")
    pytest.importorskip("tritonclient.grpc")
    for proto in ("http", "grpc"):
        ins = client.infer_inputs(digits[0], protocol=proto, send_keys=True)
        assert [i.name() for i in ins] == ["ENCRYPTED_INPUT", "KEY_ID", "EVALUATION_KEYS"]
        assert [i.datatype() for i in ins] == ["BYTES"] * 3
        assert ins[0].shape() == [client.num_input_ciphertexts] and ins[1].shape() == [1]
        assert [i.name() for i in client.infer_inputs(digits[0], protocol=proto)] == ["ENCRYPTED_INPUT", "KEY_ID"]
    with pytest.raises(ValueError):
        client.infer_inputs(digits[0], protocol="smtp")


def test_postprocess_matches_numpy(client):
    y = np.linspace(-2, 3, client.num_classes)
    p = client.postprocess(y)
    if client.postprocess_ops == ["softmax"]:
        assert np.allclose(p, np.exp(y) / np.exp(y).sum())
    elif not client.postprocess_ops:
        assert np.allclose(p, y)


def test_gil_is_released_during_key_generation(client):
    import threading, time

    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    fresh = heinfer.Client(client.spec_json)
    t.start()
    t0 = time.perf_counter()
    fresh.evaluation_keys  # hundreds of ms of Rust work
    dt = time.perf_counter() - t0
    stop.set()
    t.join()
    assert dt < 0.05 or len(ticks) > 10, f"{len(ticks)} ticks in {dt:.3f} s: the GIL was held"


# --------------------------------------------------------------------------- against servers


def onnxruntime_logits(x):
    ort = pytest.importorskip("onnxruntime")
    s = ort.InferenceSession(ONNX, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: x[i:i + 1].astype(np.float32)})[0] for i in range(len(x))])


N_HTTP = int(os.environ.get("HEINFER_SDK_SAMPLES", "100"))
N_GRPC = max(N_HTTP // 2, 1)


def check_against_onnxruntime(x, logits):
    ref = onnxruntime_logits(x).reshape(len(x), -1)
    agree = float(np.mean(ref.argmax(1) == logits.argmax(1)))
    assert agree >= 0.995, f"top-1 agreement with onnxruntime {agree:.3f}"
    # CryptoNets' logits are O(10): the HE result follows them closely
    assert np.abs(ref - logits).max() < 1.0


def test_http_end_to_end(server, digits, tmp_path):
    http = pytest.importorskip("tritonclient.http")
    triton = http.InferenceServerClient(server.http_url, network_timeout=600.0, connection_timeout=600.0)
    c = heinfer.Client.from_server(triton, server.model)
    assert c.model_name == server.model and c.input_shape == (1, 8, 8)
    x = digits[:N_HTTP]
    logits = []
    for i, xi in enumerate(x):
        res = triton.infer(server.model, c.infer_inputs(xi, "http", send_keys=(i == 0)), outputs=c.infer_outputs("http"))
        out = res.as_numpy("ENCRYPTED_OUTPUT")
        assert out.dtype == np.object_ and len(out) == c.num_output_ciphertexts
        logits.append(c.decrypt(out))
    logits = np.array(logits)
    assert logits.shape == (len(x), c.num_classes)
    check_against_onnxruntime(x, logits)
    # the saved secret key decrypts what the server returns for this key id
    c.save_secret_key(tmp_path / "sk.bin")
    loaded = heinfer.Client.load(c.spec_json, tmp_path / "sk.bin")
    res = triton.infer(server.model, c.infer_inputs(x[0], "http"))
    assert np.allclose(loaded.decrypt(res.as_numpy("ENCRYPTED_OUTPUT")), logits[0], atol=0.5)
    # post-processing on the client, as asked
    y = c.decrypt(res.as_numpy("ENCRYPTED_OUTPUT"), postprocess=True)
    assert np.allclose(y, c.postprocess(c.decrypt(res.as_numpy("ENCRYPTED_OUTPUT"))), atol=1e-9)
    # values that leave the client: rounded (with the guarantee named), or refused where
    # these parameters cannot flood at 2^-40
    out = res.as_numpy("ENCRYPTED_OUTPUT")
    released, guarantee = c.decrypt_for_release(out, "round:6")
    assert "rounding" in guarantee and np.all(released * 64 == np.round(released * 64))
    assert np.abs(released - c.decrypt(out)).max() <= 1 / 128 + 1e-3
    with pytest.raises(heinfer.ReleaseError, match="cannot release safely"):
        c.decrypt_for_release(out, "flood:1000:0.01")
    with pytest.raises(heinfer.ReleaseError, match="expected flood"):
        c.decrypt_for_release(out, "noise:3")


def test_grpc_end_to_end(server, digits):
    grpc = pytest.importorskip("tritonclient.grpc")
    triton = grpc.InferenceServerClient(server.grpc_url)
    c = heinfer.Client.from_server(triton, server.model)
    as_json = triton.get_model_config(server.model, as_json=True)
    assert json.loads(heinfer.client_spec_from_config(as_json)) == c.spec
    x = digits[N_HTTP:N_HTTP + N_GRPC]
    if len(x) == 0:
        x = digits[:N_GRPC]
    # Client.infer: registers the keys with the first request, then sends the key id only
    logits = np.array([c.infer(triton, xi) for xi in x])
    check_against_onnxruntime(x, logits)


def test_server_errors_reach_tritonclient(server, digits):
    http = pytest.importorskip("tritonclient.http")
    from tritonclient.utils import InferenceServerException

    triton = http.InferenceServerClient(server.http_url, network_timeout=600.0)
    c = heinfer.Client.from_server(triton, server.model)
    with pytest.raises(InferenceServerException) as e:  # key id never registered
        triton.infer(server.model, c.infer_inputs(digits[0], "http"))
    assert "key" in str(e.value).lower()
    # Client.infer, believing the keys registered, gets that error, sends them and retries
    c._registered.add((id(triton), server.model))
    assert c.infer(triton, digits[0]).shape == (c.num_classes,)
    assert triton.is_server_live()


def test_example_python_client(server):
    """examples/python_client.py, as the README runs it."""
    import subprocess
    import sys

    for args in (["--url", server.http_url], ["--url", server.grpc_url, "--grpc"]):
        r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "python_client.py"), "-n", "3", *args,
                            "--model", server.model], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        preds = [line for line in r.stdout.splitlines() if line.startswith("digit ")]
        assert len(preds) == 3 and sum(p.split()[3].rstrip(",") == p.split()[-1] for p in preds) >= 2, r.stdout


def test_compile_takes_the_privacy_and_hybrid_options(tmp_path):
    """compile()'s public_features, output_dp (with clamp and budget) and mask_unused_slots
    reach the client spec as the CLI's flags do; a DP setting without output_dp is refused."""
    bc = os.path.join(os.path.dirname(ONNX), "breast_cancer_lr.onnx")
    cal = np.load(os.path.join(DATA, "breast_cancer_train_x.npy"))
    report = heinfer.compile(bc, cal, tmp_path, name="bc_opts", reference="interpreter", public_features="0-19",
                             output_dp=(1.0, 1e-5), dp_clamp=6.0, dp_budget=50.0)
    spec = json.loads(heinfer.client_spec_from_config(report["model_dir"]))
    assert spec["public_features"] == list(range(20))
    dp = spec["output_dp"]
    assert (dp["epsilon"], dp["delta"], dp["clamp"], dp["budget"]) == (1.0, 1e-5, 6.0, 50.0)
    plain = heinfer.compile(bc, cal, tmp_path, name="bc_plain", reference="interpreter")
    plain_spec = json.loads(heinfer.client_spec_from_config(plain["model_dir"]))
    assert "public_features" not in plain_spec and "output_dp" not in plain_spec
    with pytest.raises(heinfer.CompileError, match="output_dp"):
        heinfer.compile(bc, cal, tmp_path, name="bad", dp_budget=3.0)
    with pytest.raises(heinfer.CompileError, match="approx"):
        heinfer.compile(bc, cal, tmp_path, name="bad", maxpool="max")
