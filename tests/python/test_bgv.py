"""BGV integer models end to end: the digits x² MLP compiled with `--scheme bgv --quantize 8`,
served by real Triton and by `heinfer serve` through the same tensors as every model
(ENCRYPTED_INPUT = one ciphertext per input feature holding a batch of samples), used with the
CLI's keygen/encrypt/decrypt. Decrypted outputs equal the integer computation of the compiled
network (Python integers) for every sample, top-1 agrees with onnxruntime on the float model,
and ciphertexts of another scheme are refused by name."""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, DATA, start_heinfer, start_triton, SERVERS

SAMPLES = 60
ONNX = os.path.join(ROOT, "models", "digits_sq_mlp.onnx")
QDQ_ONNX = os.path.join(ROOT, "models", "digits_sq_mlp_qdq.onnx")
CN_ONNX = os.path.join(ROOT, "models", "digits_cryptonets3.onnx")
QDYN_ONNX = os.path.join(ROOT, "models", "digits_sq_mlp_qdyn.onnx")


@pytest.fixture(scope="module")
def bgv_repo(heinfer_bin, tmp_path_factory):
    d = tmp_path_factory.mktemp("bgv")
    env = dict(os.environ, HEINFER_PYTHON=sys.executable)
    r = subprocess.run([heinfer_bin, "compile", ONNX, "--calibration", os.path.join(DATA, "digits_train_img.npy"),
                        "--data", os.path.join(DATA, "digits_test_img.npy"), "--labels",
                        os.path.join(DATA, "digits_test_y.npy"), "-o", str(d / "repo"), "--name", "digits_bgv",
                        "--scheme", "bgv", "--quantize", "8", "--json"], env=env, capture_output=True, text=True,
                       check=True)
    # The same network quantized by onnxruntime (QDQ, int8 per tensor), on its own integers.
    subprocess.run([heinfer_bin, "compile", QDQ_ONNX, "--calibration", os.path.join(DATA, "digits_train_img.npy"),
                    "--data", os.path.join(DATA, "digits_test_img.npy"), "-o", str(d / "repo"), "--name",
                    "digits_bgv_qdq", "--scheme", "bgv", "--json"], env=env, capture_output=True, text=True,
                   check=True)
    # The same network through onnxruntime's quantize_dynamic (MatMulInteger), on its own int8 weights.
    subprocess.run([heinfer_bin, "compile", QDYN_ONNX, "--calibration", os.path.join(DATA, "digits_train_img.npy"),
                    "--data", os.path.join(DATA, "digits_test_img.npy"), "-o", str(d / "repo"), "--name",
                    "digits_bgv_qdyn", "--scheme", "bgv", "--json"], env=env, capture_output=True, text=True,
                   check=True)
    # CryptoNets' shape at 8 bits: its integers pass any one t, so it runs as residues.
    subprocess.run([heinfer_bin, "compile", CN_ONNX, "--calibration", os.path.join(DATA, "digits_train_img.npy"),
                    "--data", os.path.join(DATA, "digits_test_img.npy"), "-o", str(d / "repo"), "--name",
                    "digits_bgv_crt", "--scheme", "bgv", "--quantize", "8", "--json"], env=env, capture_output=True,
                   text=True, check=True)
    # Circuit privacy at 2^-40 (the default λ): every answer flooded under the client's public key.
    subprocess.run([heinfer_bin, "compile", ONNX, "--calibration", os.path.join(DATA, "digits_train_img.npy"),
                    "--data", os.path.join(DATA, "digits_test_img.npy"), "-o", str(d / "repo"), "--name",
                    "digits_bgv_cp", "--scheme", "bgv", "--quantize", "8", "--circuit-privacy", "--json"], env=env,
                   capture_output=True, text=True, check=True)
    model = str(d / "repo" / "digits_bgv")
    sk, keys = d / "bgv.sk", d / "bgv.keys"
    key_id = subprocess.run([heinfer_bin, "keygen", model, "--secret-key", str(sk), "--keys-out", str(keys)],
                            capture_output=True, text=True, check=True).stdout.strip()
    x = np.load(os.path.join(DATA, "digits_test_img.npy"))[:SAMPLES]
    np.save(d / "x.npy", x)
    q = d / "q.hect"
    subprocess.run([heinfer_bin, "encrypt", model, "--secret-key", str(sk), "--input", str(d / "x.npy"), "-o",
                    str(q)], capture_output=True, text=True, check=True)
    return {"repo": str(d / "repo"), "model": model, "report": json.loads(r.stdout), "sk": str(sk),
            "keys": keys.read_bytes(), "key_id": key_id, "query": elements(q.read_bytes()), "x": x, "dir": d}


def elements(b):
    assert b[:4] == b"HECT"
    (count,) = struct.unpack("<I", b[8:12])
    out, off = [], 12
    for _ in range(count):
        (n,) = struct.unpack("<I", b[off:off + 4])
        out.append(b[off + 4:off + 4 + n])
        off += 4 + n
    return out


def container(kind, els):
    b = b"HECT" + struct.pack("<HHI", 1, kind, len(els))
    for e in els:
        b += struct.pack("<I", len(e)) + e
    return b


def integer_reference(model_json, x):
    """The compiled integer network in Python integers (no overflow possible)."""
    spec = model_json["client"]
    v = [[int(round(float(a) * spec["input"]["scale"])) for a in row] for row in x.reshape(len(x), -1)]
    for layer in model_json["layers"]:
        if layer["op"] == "square":
            v = [[a * a for a in row] for row in v]
        else:
            n_in, w, b = layer["inputs"], layer["weights"], layer["bias"]
            b = [int(a) for a in b]  # past i64 a bias is a decimal string
            v = [[b[o] + sum(w[o * n_in + i] * row[i] for i in range(n_in)) for o in range(len(b))] for row in v]
    return v


def test_compile_report_is_exact_and_agrees(bgv_repo):
    r = bgv_repo["report"]
    assert r["scheme"] == "bgv" and r["client_spec"]["scheme"] == "bgv"
    assert r["accuracy"]["reference"].startswith("onnxruntime"), r["accuracy"]
    assert r["accuracy"]["top1_agreement"] >= 0.99, r["accuracy"]
    assert "exact" in r["report"] and "t = " in r["report"] and "bound" in r["report"]
    assert int(r["bound"]) * 2 < r["client_spec"]["plaintext_modulus"]


@pytest.fixture(scope="module", params=SERVERS)
def bgv_server(request, bgv_repo, heinfer_bin, tmp_path_factory):
    if request.param == "triton":
        s = start_triton(bgv_repo["repo"], tmp_path_factory.mktemp("triton_bgv"))
    else:
        s = start_heinfer(heinfer_bin, bgv_repo["repo"], tmp_path_factory.mktemp("serve_bgv") / "serve.log")
    yield s
    s._stop()


def _infer(server, cts, key_id, keys=None):
    import tritonclient.http as http
    c = http.InferenceServerClient(server.http_url, network_timeout=300, connection_timeout=300)
    inp = [http.InferInput("ENCRYPTED_INPUT", [len(cts)], "BYTES"), http.InferInput("KEY_ID", [1], "BYTES")]
    inp[0].set_data_from_numpy(np.array(cts, dtype=object), binary_data=True)
    inp[1].set_data_from_numpy(np.array([key_id.encode()], dtype=object), binary_data=True)
    if keys is not None:
        k = http.InferInput("EVALUATION_KEYS", [1], "BYTES")
        k.set_data_from_numpy(np.array([keys], dtype=object), binary_data=True)
        inp.append(k)
    out = [http.InferRequestedOutput("ENCRYPTED_OUTPUT", binary_data=True)]
    return c.infer("digits_bgv", inp, outputs=out).as_numpy("ENCRYPTED_OUTPUT")


def test_served_outputs_equal_the_integer_reference(heinfer_bin, bgv_server, bgv_repo, tmp_path):
    import onnxruntime as ort
    out = _infer(bgv_server, bgv_repo["query"], bgv_repo["key_id"], bgv_repo["keys"])
    res = tmp_path / "r.hect"
    res.write_bytes(container(2, [bytes(o) for o in out]))
    r = subprocess.run([heinfer_bin, "decrypt", bgv_repo["model"], "--secret-key", bgv_repo["sk"], "--samples",
                        str(SAMPLES), "--json", str(res)], capture_output=True, text=True, check=True)
    got = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(got) == SAMPLES
    m = json.loads(subprocess.run([heinfer_bin, "inspect", bgv_repo["model"], "--json"], capture_output=True,
                                  text=True, check=True).stdout)
    scale = m["client"]["output"]["scale"]
    want = integer_reference(m, bgv_repo["x"])
    for g, w in zip(got, want):
        assert [round(v * scale) for v in g["output"]] == w
    s = ort.InferenceSession(ONNX, providers=["CPUExecutionProvider"])
    ref = s.run(None, {s.get_inputs()[0].name: bgv_repo["x"].astype(np.float32)})[0].argmax(1)
    agree = np.mean([g["class"] == int(c) for g, c in zip(got, ref)])
    assert agree >= 0.98, agree


def test_foreign_ciphertexts_and_counts_refused(bgv_server, bgv_repo):
    import tritonclient.utils as tu
    q = list(bgv_repo["query"])
    with pytest.raises(tu.InferenceServerException) as e:
        _infer(bgv_server, q[:-1], bgv_repo["key_id"], bgv_repo["keys"])
    assert "takes 64" in str(e.value) or "64" in str(e.value), str(e.value)
    q[3] = b"HEPA" + q[3][4:]
    with pytest.raises(tu.InferenceServerException) as e:
        _infer(bgv_server, q, bgv_repo["key_id"], bgv_repo["keys"])
    assert "ENCRYPTED_INPUT[3]" in str(e.value) and "BGV" in str(e.value), str(e.value)


def test_python_sdk_outputs_equal_the_integer_reference(bgv_server, bgv_repo, heinfer_bin, tmp_path):
    """The Python SDK's BGV client (heinfer.client_for): its own keys, the batch through
    tritonclient, exact integers equal the Python-integer reference for every sample; a
    key of another scheme and a spec of another scheme are refused by name."""
    import heinfer
    import tritonclient.http as http
    c = heinfer.client_for(bgv_repo["model"], model_name="digits_bgv")
    assert isinstance(c, heinfer.BgvClient) and c.scheme == "bgv" and "bgv model" in c.layout_reason
    assert c.max_batch >= 4096 and c.input_size == 64
    x = bgv_repo["x"]
    cli = http.InferenceServerClient(bgv_server.http_url, network_timeout=300, connection_timeout=300)
    res = cli.infer("digits_bgv", c.infer_inputs(x, cli, send_keys=True), outputs=c.infer_outputs(cli))
    ints = c.decrypt_integers(res.as_numpy("ENCRYPTED_OUTPUT"), SAMPLES)
    m = json.loads(subprocess.run([heinfer_bin, "inspect", bgv_repo["model"], "--json"], capture_output=True,
                                  text=True, check=True).stdout)
    assert ints.tolist() == integer_reference(m, x)
    y = c.infer(cli, x[:3])  # the request helper: keys already registered, outputs over the output scale
    assert np.array_equal(y, ints[:3] / m["client"]["output"]["scale"])
    # Another scheme's secret key (Paillier's) for this spec, and this spec for the Paillier client.
    fixture = os.path.join(ROOT, "crates", "paillier", "tests", "fixtures", "test-only-secret-key-3072-a.hex")
    fd = os.open(str(tmp_path / "p.sk"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, bytes.fromhex(open(fixture).read().strip()))
    os.close(fd)
    with pytest.raises(heinfer.KeyFileError, match="BGV parameters"):
        heinfer.BgvClient.load(bgv_repo["model"], tmp_path / "p.sk")
    with pytest.raises(heinfer.SpecError, match="bgv model's client spec, not a Paillier one"):
        heinfer.PaillierClient.load(bgv_repo["model"], tmp_path / "p.sk")
    with pytest.raises(heinfer.SpecError, match="client_for"):
        heinfer.Client(bgv_repo["model"])
    # Inputs outside the compiled range (where exactness is proven) are refused.
    with pytest.raises(heinfer.InputError):
        c.encrypt(np.full(64, 1e6))


def test_circuit_private_model_floods_every_answer(bgv_server, bgv_repo, heinfer_bin):
    """`--scheme bgv --quantize 8 --circuit-privacy` (λ = 40) through real Triton and `heinfer
    serve`: the SDK's bundle carries the public key and the answers decrypt exactly; each
    answer's wire noise bound is the flood's (the same for every answer, where an unflooded
    answer's follows the weights); a bundle without the public key is refused by name and the
    server lives on."""
    import heinfer
    import tritonclient.http as http
    model = os.path.join(bgv_repo["repo"], "digits_bgv_cp")
    m = json.loads(subprocess.run([heinfer_bin, "inspect", model, "--json"], capture_output=True, text=True,
                                  check=True).stdout)
    cp = m["client"]["circuit_privacy"]
    assert cp["lambda"] == 40 and cp["flood_bits"] > 60, cp
    cli = http.InferenceServerClient(bgv_server.http_url, network_timeout=300, connection_timeout=300)
    # A client that ignores circuit privacy (the spec without it) sends no public key: refused.
    spec = json.loads(heinfer.client_spec_from_config(model))
    del spec["circuit_privacy"]
    bare = heinfer.client_for(json.dumps(spec), model_name="digits_bgv_cp")
    x = bgv_repo["x"]
    with pytest.raises(Exception, match="no public key"):
        cli.infer("digits_bgv_cp", bare.infer_inputs(x[:4], cli, send_keys=True), outputs=bare.infer_outputs(cli))
    c = heinfer.client_for(model, model_name="digits_bgv_cp")
    answers = []
    for send_keys in (True, False):
        res = cli.infer("digits_bgv_cp", c.infer_inputs(x, cli, send_keys=send_keys), outputs=c.infer_outputs(cli))
        answers.append(res.as_numpy("ENCRYPTED_OUTPUT"))
        assert c.decrypt_integers(answers[-1], SAMPLES).tolist() == integer_reference(m, x)
    bounds = {struct.unpack("<d", bytes(a)[-8:])[0] for out in answers for a in out.reshape(-1)}
    assert len(bounds) == 1, bounds
    plain = _infer(bgv_server, bgv_repo["query"], bgv_repo["key_id"], bgv_repo["keys"])
    assert struct.unpack("<d", bytes(plain.reshape(-1)[0])[-8:])[0] < min(bounds) - 40
    assert bgv_server.alive()


def int8_weights(onnx_path):
    """Each Gemm's int8 weight matrix [in, out] and int32 bias, from the QDQ model's initializers."""
    import onnx
    from onnx import numpy_helper
    m = onnx.load(onnx_path)
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    dq = {n.output[0]: n.input[0] for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    return [(inits[dq[g.input[1]]], inits[dq[g.input[2]]]) for g in m.graph.node if g.op_type == "Gemm"]


def test_qdq_model_runs_on_its_own_integers(bgv_server, bgv_repo, heinfer_bin):
    """onnxruntime's quantize_static model compiled with --scheme bgv (no --quantize): every
    layer's weights and biases are the model's own int8/int32 values, the input grid is its
    QuantizeLinear's, and the answers served decrypt to the integer reference for every
    sample; top-1 agrees with onnxruntime running the quantized model."""
    import heinfer
    import onnxruntime as ort
    import tritonclient.http as http
    model = os.path.join(bgv_repo["repo"], "digits_bgv_qdq")
    m = json.loads(subprocess.run([heinfer_bin, "inspect", model, "--json"], capture_output=True, text=True,
                                  check=True).stdout)
    linear = [l for l in m["layers"] if l["op"] != "square"]
    for k, (layer, (w, b)) in enumerate(zip(linear, int8_weights(QDQ_ONNX), strict=True)):
        n_in, n_out = w.shape
        ours = np.array(layer["weights"]).reshape(n_out, n_in).T
        g = np.gcd.reduce(np.abs(w).ravel().astype(np.int64))  # the coarsest grid: the int8s over their gcd
        assert np.array_equal(ours * g, w.astype(np.int64)), layer["name"]
        if k == 0:  # later biases are at the exact product's scale, not the requantized activation's
            assert np.array_equal(np.array(layer["bias"]) * g, b.astype(np.int64)), layer["name"]
    c = heinfer.client_for(model, model_name="digits_bgv_qdq")
    x = bgv_repo["x"]
    cli = http.InferenceServerClient(bgv_server.http_url, network_timeout=300, connection_timeout=300)
    res = cli.infer("digits_bgv_qdq", c.infer_inputs(x, cli, send_keys=True), outputs=c.infer_outputs(cli))
    ints = c.decrypt_integers(res.as_numpy("ENCRYPTED_OUTPUT"), SAMPLES)
    assert ints.tolist() == integer_reference(m, x)
    s = ort.InferenceSession(QDQ_ONNX, providers=["CPUExecutionProvider"])
    ref = s.run(None, {s.get_inputs()[0].name: x.astype(np.float32)})[0].argmax(1)
    assert np.mean(ints.argmax(1) == ref) >= 0.98


def test_residue_model_is_exact_when_served(bgv_server, bgv_repo, heinfer_bin):
    """CryptoNets' shape at 8 bits (two squares: values near 2^100) compiled to several
    plaintext moduli: one key, each feature encrypted once per modulus, the server runs
    every residue, and the client's CRT gives back integers past 2^63 equal to the Python
    reference for every sample; a query missing a residue is refused by count."""
    import heinfer
    import onnxruntime as ort
    import tritonclient.http as http
    import tritonclient.utils as tu
    model = os.path.join(bgv_repo["repo"], "digits_bgv_crt")
    m = json.loads(subprocess.run([heinfer_bin, "inspect", model, "--json"], capture_output=True, text=True,
                                  check=True).stdout)
    c = heinfer.client_for(model, model_name="digits_bgv_crt")
    ts = c.plaintext_moduli
    assert len(ts) >= 2 and "residues t = " in m["report"], m["report"]
    assert int(m["bound"]) >= 2 ** 63 and np.prod([float(t) for t in ts]) > 2 * float(m["bound"])
    x = bgv_repo["x"]
    cli = http.InferenceServerClient(bgv_server.http_url, network_timeout=300, connection_timeout=300)
    inputs = c.infer_inputs(x, cli, send_keys=True)
    res = cli.infer("digits_bgv_crt", inputs, outputs=c.infer_outputs(cli))
    out = res.as_numpy("ENCRYPTED_OUTPUT")
    assert len(out) == len(ts) * c.num_outputs
    ints = c.decrypt_integers(out, SAMPLES)
    want = integer_reference(m, x)
    assert ints.tolist() == want
    assert max(abs(v) for row in want for v in row) >= 2 ** 63, "values past i64: the CRT is what makes them exact"
    s = ort.InferenceSession(CN_ONNX, providers=["CPUExecutionProvider"])
    ref = s.run(None, {s.get_inputs()[0].name: x.reshape(-1, 1, 8, 8).astype(np.float32)})[0].argmax(1)
    assert np.mean(np.array([int(np.argmax([float(v) for v in row])) for row in ints.tolist()]) == ref) >= 0.98
    # One residue's ciphertexts only: refused by count, nothing else changes.
    half = c.encrypt_batch(x)[: 64]
    with pytest.raises(tu.InferenceServerException) as e:
        _infer_model(bgv_server, "digits_bgv_crt", half, c.key_id)
    assert str(64 * len(ts)) in str(e.value), str(e.value)


def _infer_model(server, name, cts, key_id):
    import tritonclient.http as http
    c = http.InferenceServerClient(server.http_url, network_timeout=300, connection_timeout=300)
    inp = [http.InferInput("ENCRYPTED_INPUT", [len(cts)], "BYTES"), http.InferInput("KEY_ID", [1], "BYTES")]
    inp[0].set_data_from_numpy(np.array(cts, dtype=object), binary_data=True)
    inp[1].set_data_from_numpy(np.array([key_id.encode()], dtype=object), binary_data=True)
    return c.infer(name, inp).as_numpy("ENCRYPTED_OUTPUT")


def test_quantize_dynamic_model_runs_on_its_own_int8_weights(bgv_server, bgv_repo, heinfer_bin):
    """onnxruntime's quantize_dynamic model (DynamicQuantizeLinear → MatMulInteger) compiled
    with --scheme bgv alone: every layer's weights are the MatMulInteger's int8 initializers
    (less their zero point), the served answers decrypt to the integer reference for every
    sample, and top-1 agrees with onnxruntime running the quantized model."""
    import heinfer
    import onnx
    import onnxruntime as ort
    import tritonclient.http as http
    from onnx import numpy_helper
    model = os.path.join(bgv_repo["repo"], "digits_bgv_qdyn")
    m = json.loads(subprocess.run([heinfer_bin, "inspect", model, "--json"], capture_output=True, text=True,
                                  check=True).stdout)
    assert "quantize_dynamic" in m["report"], m["report"]
    q = onnx.load(QDYN_ONNX)
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    mmi = [n for n in q.graph.node if n.op_type == "MatMulInteger"]
    linear = [l for l in m["layers"] if l["op"] != "square"]
    assert len(mmi) == len(linear) == 2
    for layer, node in zip(linear, mmi):
        w = inits[node.input[1]].astype(np.int64)
        if len(node.input) > 3 and node.input[3]:
            w = w - inits[node.input[3]].astype(np.int64)
        n_in, n_out = w.shape
        ours = np.array(layer["weights"]).reshape(n_out, n_in).T
        g = np.gcd.reduce(np.abs(w).ravel())  # the coarsest grid: the int8s over their gcd
        assert np.array_equal(ours * g, w), layer["name"]
    c = heinfer.client_for(model, model_name="digits_bgv_qdyn")
    x = bgv_repo["x"]
    cli = http.InferenceServerClient(bgv_server.http_url, network_timeout=300, connection_timeout=300)
    res = cli.infer("digits_bgv_qdyn", c.infer_inputs(x, cli, send_keys=True), outputs=c.infer_outputs(cli))
    ints = c.decrypt_integers(res.as_numpy("ENCRYPTED_OUTPUT"), SAMPLES)
    assert ints.tolist() == integer_reference(m, x)
    s = ort.InferenceSession(QDYN_ONNX, providers=["CPUExecutionProvider"])
    ref = s.run(None, {s.get_inputs()[0].name: x.astype(np.float32)})[0].argmax(1)
    assert np.mean(ints.argmax(1) == ref) >= 0.98
