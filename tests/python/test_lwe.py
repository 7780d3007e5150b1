"""Seeded LWE end to end: the breast-cancer logistic regression (scaler folded) compiled with
`--scheme lwe`, served by real Triton and by `heinfer serve` through the same tensors as every
model, used with the CLI's client commands (keygen, encrypt, decrypt), tritonclient and the
Python SDK (heinfer.LweClient, over HTTP and gRPC).

Asserted: agreement with onnxruntime (compiler's report on the whole test split, and the
served answers), query and answer bytes below Concrete ML 1.9's figures for this model
(984 B and 11 KB, issue 22), a 13,646 B public key registered once in EVALUATION_KEYS (answers
are re-randomised under it), and refusals with clear messages for a query under other
parameters, of the wrong length, cut short, under a key with no public key registered, and for
public keys of another scheme, other parameters, another key or cut short — the server
answering good queries afterwards."""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from conftest import start_heinfer, start_triton, SERVERS

SAMPLES = 24
CONCRETE_QUERY_BYTES, CONCRETE_ANSWER_BYTES = 984, 11 * 1024
PUBLIC_KEY_BYTES = 14 + 64 + 2048 * 53 // 8  # seed + n words of b at 53 bits
NAME = "cancer_lwe"


@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from skl2onnx import to_onnx

    d = tmp_path_factory.mktemp("cancer_lwe")
    x, y = load_breast_cancer(return_X_y=True)
    x = x.astype(np.float32)
    idx = np.random.default_rng(0).permutation(len(x))
    k = int(0.7 * len(x))
    tr, te = idx[:k], idx[k:]
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x[tr], y[tr])
    last = est.steps[-1][1]
    m = to_onnx(est, x[:1], options={id(last): {"zipmap": False}}, target_opset={"": 15, "ai.onnx.ml": 3})
    paths = {"onnx": str(d / "cancer_logreg.onnx"), "cal": str(d / "cal.npy"), "test": str(d / "test.npy"),
             "labels": str(d / "labels.npy"), "dir": d}
    open(paths["onnx"], "wb").write(m.SerializeToString())
    np.save(paths["cal"], x[tr])
    np.save(paths["test"], x[te])
    np.save(paths["labels"], y[te].astype(np.int64))
    return paths


def compile_(heinfer_bin, cancer, out, scheme):
    env = dict(os.environ, HEINFER_PYTHON=sys.executable)
    return subprocess.run([heinfer_bin, "compile", cancer["onnx"], "--calibration", cancer["cal"], "--data",
                           cancer["test"], "--labels", cancer["labels"], "-o", str(out), "--name", NAME,
                           "--scheme", scheme, "--json"], env=env, capture_output=True, text=True, check=True)


@pytest.fixture(scope="module")
def repo(heinfer_bin, cancer):
    r = compile_(heinfer_bin, cancer, cancer["dir"] / "repo", "lwe")
    return str(cancer["dir"] / "repo"), json.loads(r.stdout)


@pytest.fixture(scope="module")
def keys(heinfer_bin, repo, cancer):
    sk, pk = cancer["dir"] / "lwe.sk", cancer["dir"] / "lwe.keys"
    out = subprocess.run([heinfer_bin, "keygen", os.path.join(repo[0], NAME), "--secret-key", str(sk),
                          "--keys-out", str(pk)], capture_output=True, text=True, check=True)
    return str(sk), str(pk), out.stdout.strip()


def test_compile_report_states_the_bound_and_agrees_with_onnxruntime(repo):
    _, r = repo
    assert r["scheme"] == "lwe"
    acc = r["accuracy"]
    assert acc["reference"].startswith("onnxruntime"), acc
    assert acc["samples"] == 171 and acc["top1_agreement"] >= 0.995, acc
    assert acc["max_abs_error"] < 1e-3, acc
    lwe = r["client_spec"]["lwe"]
    assert lwe["log_n"] == 11 and lwe["log_q"] <= 53 and 20 <= lwe["answer_log_q"] < lwe["log_q"], lwe
    assert 0 < lwe["error_bound"] <= 1e-3, lwe
    assert "precision" in r["report"] and "modulus switch" in r["report"], r["report"]
    # answers are re-randomised under the client's public key, with a flood the bound accounts for
    assert lwe["rerandomize"] is True and lwe["flood_bits"] > 0, lwe
    assert "re-randomised answers" in r["report"] and "not flooded at 2^-40" in r["report"], r["report"]


def test_run_within_the_bound(heinfer_bin, repo, keys, cancer):
    r = subprocess.run([heinfer_bin, "run", os.path.join(repo[0], NAME), "--input", cancer["test"], "--labels",
                        cancer["labels"], "--samples", "40", "--secret-key", keys[0], "--json"],
                       capture_output=True, text=True, check=True)
    s = json.loads(r.stdout)
    assert s["scheme"] == "lwe" and s["within_bound"] == 40, s
    assert s["max_error"] <= s["error_bound"], s
    assert s["bytes"]["query"] < CONCRETE_QUERY_BYTES and s["bytes"]["result"] < CONCRETE_ANSWER_BYTES, s
    assert s["bytes"]["evaluation_keys"] == PUBLIC_KEY_BYTES and s["rerandomized"] is True, s


@pytest.fixture(scope="module", params=SERVERS)
def server(request, repo, heinfer_bin, tmp_path_factory):
    if request.param == "triton":
        s = start_triton(repo[0], tmp_path_factory.mktemp("triton_lwe"))
    else:
        s = start_heinfer(heinfer_bin, repo[0], tmp_path_factory.mktemp("serve_lwe") / "serve.log")
    yield s
    s._stop()


def _infer(server, query, key_id, keys=None):
    import tritonclient.http as http
    c = http.InferenceServerClient(server.http_url, network_timeout=120)
    inp = [http.InferInput("ENCRYPTED_INPUT", [1], "BYTES"), http.InferInput("KEY_ID", [1], "BYTES")]
    inp[0].set_data_from_numpy(np.array([query], dtype=object), binary_data=True)
    inp[1].set_data_from_numpy(np.array([key_id.encode()], dtype=object), binary_data=True)
    if keys is not None:
        k = http.InferInput("EVALUATION_KEYS", [1], "BYTES")
        k.set_data_from_numpy(np.array([keys], dtype=object), binary_data=True)
        inp.append(k)
    out = [http.InferRequestedOutput("ENCRYPTED_OUTPUT", binary_data=True)]
    return c.infer(NAME, inp, outputs=out).as_numpy("ENCRYPTED_OUTPUT")


def _container(kind, elements):
    b = b"HECT" + struct.pack("<HHI", 1, kind, len(elements))
    for e in elements:
        b += struct.pack("<I", len(e)) + e
    return b


def _queries(heinfer_bin, repo, sk, cancer, d, n):
    subprocess.run([heinfer_bin, "encrypt", os.path.join(repo[0], NAME), "--secret-key", sk, "--input",
                    cancer["test"], "--samples", str(n), "-o", str(d)], capture_output=True, text=True, check=True)
    if n == 1:
        return [open(d, "rb").read()[16:]]
    return [open(d / f"query_{i:05}.hect", "rb").read()[16:] for i in range(n)]  # header (12) + length (4)


def test_served_end_to_end(heinfer_bin, server, repo, keys, cancer, tmp_path):
    import onnxruntime as ort
    sk, pk, key_id = keys
    assert os.path.getsize(pk) == PUBLIC_KEY_BYTES  # the public key, sent once
    queries = _queries(heinfer_bin, repo, sk, cancer, tmp_path / "q", SAMPLES)
    rdir = tmp_path / "r"
    rdir.mkdir()
    results = []
    for i, q in enumerate(queries):
        assert len(q) < CONCRETE_QUERY_BYTES, len(q)
        out = bytes(_infer(server, q, key_id, open(pk, "rb").read() if i == 0 else None)[0])
        assert len(out) < CONCRETE_ANSWER_BYTES, len(out)
        f = rdir / f"result_{i:05}.hect"
        f.write_bytes(_container(2, [out]))
        results.append(str(f))
    r = subprocess.run([heinfer_bin, "decrypt", os.path.join(repo[0], NAME), "--secret-key", sk, "--json",
                        "--postprocess", *results], capture_output=True, text=True, check=True)
    got = [json.loads(line) for line in r.stdout.splitlines()]
    x = np.load(cancer["test"])[:SAMPLES]
    s = ort.InferenceSession(cancer["onnx"], providers=["CPUExecutionProvider"])
    ref_labels, ref_probs = s.run(None, {s.get_inputs()[0].name: x})
    for g, lab, p in zip(got, ref_labels, ref_probs):
        assert g["class"] == int(lab)
        assert np.allclose(g["output"], p, atol=1e-3), (g["output"], p)


def test_bad_queries_refused_and_server_lives_on(heinfer_bin, server, repo, keys, cancer, tmp_path):
    import tritonclient.utils as tu
    sk, pk, key_id = keys
    q = _queries(heinfer_bin, repo, sk, cancer, tmp_path / "q.hect", 1)[0]
    pk = open(pk, "rb").read()
    _infer(server, q, key_id, pk)  # registered (whatever ran before)

    def refused(query, words, kid=key_id, keys_=None):
        with pytest.raises(tu.InferenceServerException) as e:
            _infer(server, query, kid, keys_)
        for w in words:
            assert w in str(e.value), str(e.value)

    # Other parameters: q = 2^40 in the header (a valid set, not this model's).
    other = bytearray(q)
    other[8] = 40
    body = (len(q) - 78) * 8 // 53  # values in the query
    other = bytes(other[:78]) + bytes((body * 40 + 7) // 8)
    refused(other, ["q = 2^40", "client spec"])
    # Insecure parameters: q = 2^60 for n = 2048.
    bad = bytearray(q)
    bad[8] = 60
    refused(bytes(bad), ["128-bit"])
    # Cut short, and one byte too many.
    refused(q[:-3], ["truncated"])
    refused(q + b"\0", ["unexpected bytes"])
    # Fewer values than the model takes: a query of 29 values.
    short = bytearray(q[:78] + bytes((29 * 53 + 7) // 8))
    short[10:14] = struct.pack("<I", 29)
    refused(bytes(short), ["30 inputs", "29"])
    # Another key's id in KEY_ID.
    refused(q, ["KEY_ID"], kid="ab" * 32)
    # Public keys: another scheme's, cut short, one byte too many, other parameters (q = 2^40).
    refused(q, ["not an LWE public key"], keys_=b"HEPA" + bytes(100))
    refused(q, ["truncated"], keys_=pk[:-5])
    refused(q, ["unexpected bytes"], keys_=pk + b"\0")
    pk40 = bytearray(pk[:78] + bytes(2048 * 40 // 8))
    pk40[8] = 40
    refused(q, ["q = 2^40", "client spec"], keys_=bytes(pk40))
    # Another public key under this key's id (a client's public key is one, derived from its secret).
    forged = bytearray(pk)
    forged[200] ^= 1
    refused(q, ["already registered"], keys_=bytes(forged))
    # A query under a key whose public key was never registered, and with another key's public key.
    sk2, pk2 = str(tmp_path / "other.sk"), str(tmp_path / "other.keys")
    kid2 = subprocess.run([heinfer_bin, "keygen", os.path.join(repo[0], NAME), "--secret-key", sk2, "--keys-out",
                           pk2], capture_output=True, text=True, check=True).stdout.strip()
    q2 = _queries(heinfer_bin, repo, sk2, cancer, tmp_path / "q2.hect", 1)[0]
    refused(q2, ["no LWE public key is registered", "EVALUATION_KEYS"], kid=kid2)
    refused(q2, ["public key of"], kid=kid2, keys_=pk)
    assert len(bytes(_infer(server, q2, kid2, open(pk2, "rb").read())[0])) < CONCRETE_ANSWER_BYTES
    # The server still answers.
    assert len(bytes(_infer(server, q, key_id)[0])) < CONCRETE_ANSWER_BYTES


def test_python_sdk_lwe_client_over_http_and_grpc(server, repo, keys, cancer):
    """heinfer.client_for on the model directory returns an LweClient over the CLI's key file;
    its public key is registered with its first request (HTTP), later ones (gRPC too) name the
    key id only; classes and probabilities agree with onnxruntime; bad input is refused."""
    import heinfer
    import onnxruntime as ort
    import tritonclient.grpc as grpc
    import tritonclient.http as http
    sk, _, key_id = keys
    model = os.path.join(repo[0], NAME)
    c = heinfer.client_for(model, secret_key_path=sk)
    assert isinstance(c, heinfer.LweClient) and c.key_id == key_id, c
    assert c.evaluation_keys == open(keys[1], "rb").read()  # one secret key, one public key
    assert 0 < c.error_bound <= 1e-3
    assert len(c.encrypt(np.load(cancer["test"])[0])[0]) < CONCRETE_QUERY_BYTES
    n = 8
    x = np.load(cancer["test"])[:n]
    s = ort.InferenceSession(cancer["onnx"], providers=["CPUExecutionProvider"])
    ref_labels, ref_probs = s.run(None, {s.get_inputs()[0].name: x})
    probs = np.concatenate([
        c.infer(http.InferenceServerClient(server.http_url, network_timeout=120), x[:n // 2], postprocess=True),
        c.infer(grpc.InferenceServerClient(server.grpc_url), x[n // 2:], postprocess=True)])
    assert np.allclose(probs, ref_probs, atol=1e-3), (probs, ref_probs)
    assert (probs.argmax(axis=1) == ref_labels).all()
    # A fresh SDK key: its first request carries its public key, so the server answers it.
    fresh = heinfer.LweClient(model)
    assert fresh.key_id != key_id
    y = fresh.infer(http.InferenceServerClient(server.http_url, network_timeout=120), x[:1], postprocess=True)
    assert np.allclose(y, ref_probs[:1], atol=1e-3)
    with pytest.raises(heinfer.InputError):
        c.encrypt(x[0, :29])
    with pytest.raises(heinfer.InputError, match="outside the range"):
        c.encrypt(x[0] * 1e6)
    with pytest.raises(heinfer.SpecError, match="layout L only"):
        heinfer.client_for(model, layout="T", secret_key_path=sk)
