"""Paillier end to end: a scikit-learn breast-cancer logistic regression (scaler folded)
compiled with `--scheme paillier`, served by real Triton and by `heinfer serve` through the
same tensors as CKKS models, used with the CLI's client commands (keygen, encrypt, decrypt)
and tritonclient. Also: `--scheme auto` picks Paillier for it and says why, BGV is refused
for a float model without --quantize, and keys / ciphertexts of the wrong scheme, size or
range are refused by the server with messages that say what to do.

Uses the paillier crate's 3072-bit test-only key (safe-prime generation takes up to a
minute): `heinfer keygen --reuse-secret-key` writes its public key."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, start_heinfer, start_triton, SERVERS

FIXTURE_KEY = os.path.join(ROOT, "crates", "paillier", "tests", "fixtures", "test-only-secret-key-3072-a.hex")
SAMPLES = 24


@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from skl2onnx import to_onnx

    d = tmp_path_factory.mktemp("cancer")
    x, y = load_breast_cancer(return_X_y=True)
    x = x.astype(np.float32)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(x))
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


def compile_(heinfer_bin, cancer, out, scheme, *extra, check=True):
    env = dict(os.environ, HEINFER_PYTHON=sys.executable)
    return subprocess.run([heinfer_bin, "compile", cancer["onnx"], "--calibration", cancer["cal"], "--data",
                           cancer["test"], "--labels", cancer["labels"], "-o", str(out), "--name", "cancer_paillier",
                           "--scheme", scheme, "--json", *extra], env=env, capture_output=True, text=True, check=check)


@pytest.fixture(scope="module")
def paillier_repo(heinfer_bin, cancer):
    repo = cancer["dir"] / "repo"
    r = compile_(heinfer_bin, cancer, repo, "paillier")
    return str(repo), json.loads(r.stdout)


@pytest.fixture(scope="module")
def keys(heinfer_bin, paillier_repo, cancer):
    d = cancer["dir"]
    sk, pk = d / "paillier.sk", d / "paillier.pk"
    raw = bytes.fromhex(open(FIXTURE_KEY).read().strip())
    fd = os.open(str(sk), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, raw)
    os.close(fd)
    model = os.path.join(paillier_repo[0], "cancer_paillier")
    out = subprocess.run([heinfer_bin, "keygen", model, "--secret-key", str(sk), "--keys-out", str(pk),
                          "--reuse-secret-key"], capture_output=True, text=True, check=True)
    return str(sk), str(pk), out.stdout.strip()


def test_compile_report_states_precision_and_agrees_with_onnxruntime(paillier_repo):
    _, r = paillier_repo
    assert r["scheme"] == "paillier"
    acc = r["accuracy"]
    assert acc["reference"].startswith("onnxruntime"), acc
    assert acc["samples"] == 171 and acc["top1_agreement"] >= 0.995, acc
    assert acc["max_abs_error"] < 1e-5, acc
    spec = r["client_spec"]
    assert spec["scheme"] == "paillier" and spec["min_modulus_bits"] >= 3072
    assert spec["input"]["frac_bits"] == 48 and spec["output"]["frac_bits"] > 48
    assert "precision" in r["report"] and "exact" in r["report"]


def test_auto_costs_paillier_and_says_why(heinfer_bin, cancer):
    # auto now picks seeded LWE for this model (fewer bytes counting its 13.6 KB public key: test_lwe.py);
    # Paillier is costed beside it.
    r = json.loads(compile_(heinfer_bin, cancer, cancer["dir"] / "auto", "auto").stdout)
    c = r["choice"]
    assert c["chosen"] == "lwe" and "Paillier" in c["reason"], c
    assert "public key registered once" in c["reason"] and "re-randomised" in c["reason"], c
    by = {x["scheme"]: x for x in c["candidates"]}
    assert by["ckks"]["cannot"] is None and by["paillier"]["cannot"] is None
    assert "--quantize" in by["bgv"]["cannot"]
    assert by["paillier"]["key_bytes"] < 1000 < by["ckks"]["key_bytes"]
    assert by["paillier"]["answer_bytes"] < by["ckks"]["answer_bytes"]
    assert by["lwe"]["key_bytes"] == 13646 and by["lwe"]["cannot"] is None
    total = {s: by[s]["query_bytes"] + by[s]["answer_bytes"] + by[s]["key_bytes"] for s in ("lwe", "paillier")}
    assert total["lwe"] < total["paillier"], total


def test_auto_keeps_a_ckks_protection_asked_for(heinfer_bin, cancer):
    # Output DP is a CKKS mechanism: auto must not trade it for LWE's smaller bytes, and an
    # explicit linear scheme with it is refused rather than silently unprotected.
    r = json.loads(compile_(heinfer_bin, cancer, cancer["dir"] / "auto_dp", "auto", "--output-dp", "1").stdout)
    assert r["choice"]["chosen"] == "ckks" and "--output-dp" in r["choice"]["reason"], r["choice"]
    for scheme in ("lwe", "paillier"):
        bad = compile_(heinfer_bin, cancer, cancer["dir"] / f"{scheme}_dp", scheme, "--output-dp", "1", check=False)
        assert bad.returncode != 0 and "CKKS models only" in bad.stderr, bad.stderr


def test_bgv_without_quantize_is_refused(heinfer_bin, cancer):
    r = compile_(heinfer_bin, cancer, cancer["dir"] / "bgv", "bgv", check=False)
    assert r.returncode != 0 and "--quantize" in r.stderr, r.stderr


def test_run_exact_on_the_test_set(heinfer_bin, paillier_repo, keys, cancer):
    model = os.path.join(paillier_repo[0], "cancer_paillier")
    r = subprocess.run([heinfer_bin, "run", model, "--input", cancer["test"], "--labels", cancer["labels"],
                        "--samples", "40", "--secret-key", keys[0], "--json"], capture_output=True, text=True, check=True)
    s = json.loads(r.stdout)
    assert s["exact_matches"] == 40 and s["scheme"] == "paillier", s


@pytest.fixture(scope="module", params=SERVERS)
def paillier_server(request, paillier_repo, heinfer_bin, tmp_path_factory):
    repo = paillier_repo[0]
    if request.param == "triton":
        s = start_triton(repo, tmp_path_factory.mktemp("triton_paillier"))
    else:
        s = start_heinfer(heinfer_bin, repo, tmp_path_factory.mktemp("serve_paillier") / "serve.log")
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
    return c.infer("cancer_paillier", inp, outputs=out).as_numpy("ENCRYPTED_OUTPUT")


def _container(kind, elements):
    import struct
    b = b"HECT" + struct.pack("<HHI", 1, kind, len(elements))
    for e in elements:
        b += struct.pack("<I", len(e)) + e
    return b


def test_served_end_to_end(heinfer_bin, paillier_server, paillier_repo, keys, cancer, tmp_path):
    import onnxruntime as ort
    sk, pk, key_id = keys
    model = os.path.join(paillier_repo[0], "cancer_paillier")
    qdir, rdir = tmp_path / "q", tmp_path / "r"
    subprocess.run([heinfer_bin, "encrypt", model, "--secret-key", sk, "--input", cancer["test"], "--samples",
                    str(SAMPLES), "-o", str(qdir)], capture_output=True, text=True, check=True)
    pkb = open(pk, "rb").read()
    rdir.mkdir()
    results = []
    for i in range(SAMPLES):
        q = open(qdir / f"query_{i:05}.hect", "rb").read()[16:]  # header (12) + the element's length (4)
        out = _infer(paillier_server, q, key_id, pkb if i == 0 else None)
        f = rdir / f"result_{i:05}.hect"
        f.write_bytes(_container(2, [bytes(out[0])]))
        results.append(str(f))
    r = subprocess.run([heinfer_bin, "decrypt", model, "--secret-key", sk, "--json", "--postprocess", *results],
                       capture_output=True, text=True, check=True)
    got = [json.loads(line) for line in r.stdout.splitlines()]
    x = np.load(cancer["test"])[:SAMPLES]
    s = ort.InferenceSession(cancer["onnx"], providers=["CPUExecutionProvider"])
    ref_labels, ref_probs = s.run(None, {s.get_inputs()[0].name: x})
    for g, lab, p in zip(got, ref_labels, ref_probs):
        assert g["class"] == int(lab)
        assert np.allclose(g["output"], p, atol=1e-5), (g["output"], p)


def test_bad_keys_and_ciphertexts_refused(paillier_server, keys, cancer, tmp_path, heinfer_bin, paillier_repo):
    import struct
    import tritonclient.utils as tu
    sk, pk, key_id = keys
    pkb = open(pk, "rb").read()
    model = os.path.join(paillier_repo[0], "cancer_paillier")
    qf = tmp_path / "q.hect"
    subprocess.run([heinfer_bin, "encrypt", model, "--secret-key", sk, "--input", cancer["test"], "--samples", "1",
                    "-o", str(qf)], capture_output=True, text=True, check=True)
    q = open(qf, "rb").read()[16:]

    def refused(query, kid, keys_, *words):
        with pytest.raises(tu.InferenceServerException) as e:
            _infer(paillier_server, query, kid, keys_)
        for w in words:
            assert w in str(e.value), str(e.value)

    # A CKKS key bundle for a Paillier model (its magic, then anything).
    refused(q, "00" * 32, b"HEIN" + bytes(200), "CKKS key bundle")
    # A 2048-bit Paillier public key: below 128-bit security.
    small = b"HEPA" + struct.pack("<HBB", 1, 1, 0) + struct.pack("<I", 2048) + bytes([0xAB] * 256)
    refused(q, "00" * 32, small, "3072")
    # Ciphertexts: n² (out of range) and n (not invertible), in an otherwise valid batch.
    n = int.from_bytes(pkb[12:], "little")
    ct_len = 2 * len(pkb[12:])

    def batch(c):
        return q[:40] + struct.pack("<I", 1) + c.to_bytes(ct_len, "little")
    _infer(paillier_server, q, key_id, pkb)  # registered
    refused(batch(n * n), key_id, None, "below n")
    refused(batch(n), key_id, None, "not invertible")


def test_python_sdk_scores_equal_the_cli_and_onnxruntime(paillier_server, paillier_repo, keys, cancer, heinfer_bin,
                                                         tmp_path, model_repo):
    """The Python SDK's Paillier client (heinfer.client_for over the CLI's key file): the public
    key registered as EVALUATION_KEYS, one request per sample through tritonclient, scores
    equal to the CLI's decryption of the same samples (exact fixed point) and probabilities
    to onnxruntime's; another scheme's key is refused by name."""
    import heinfer
    import onnxruntime as ort
    import tritonclient.http as http
    sk, pk, key_id = keys
    model = os.path.join(paillier_repo[0], "cancer_paillier")
    c = heinfer.client_for(model, secret_key_path=sk)
    assert isinstance(c, heinfer.PaillierClient) and c.key_id == key_id
    assert c.evaluation_keys == open(pk, "rb").read()
    n = 4
    x = np.load(cancer["test"])[:n]
    cli = http.InferenceServerClient(paillier_server.http_url, network_timeout=120)
    raw = c.infer(cli, x, "cancer_paillier")
    probs = c.infer(cli, x, "cancer_paillier", postprocess=True)
    # The CLI's path on the same samples: encrypt, serve, decrypt.
    qdir, results = tmp_path / "q", []
    subprocess.run([heinfer_bin, "encrypt", model, "--secret-key", sk, "--input", cancer["test"], "--samples",
                    str(n), "-o", str(qdir)], capture_output=True, text=True, check=True)
    for i in range(n):
        out = _infer(paillier_server, open(qdir / f"query_{i:05}.hect", "rb").read()[16:], key_id)
        f = tmp_path / f"r{i}.hect"
        f.write_bytes(_container(2, [bytes(out[0])]))
        results.append(str(f))
        ints = c.decrypt_integers(out)
        assert all(isinstance(v, int) for v in ints)
        # The reals are the integers over 2^frac_bits (to the last bit or so: the Rust decoder truncates).
        assert np.allclose(c.decrypt(out), [v / 2 ** c.spec["output"]["frac_bits"] for v in ints], rtol=1e-14, atol=0)
    r = subprocess.run([heinfer_bin, "decrypt", model, "--secret-key", sk, "--json", *results], capture_output=True,
                       text=True, check=True)
    want = [json.loads(line)["output"] for line in r.stdout.splitlines()]
    assert raw.tolist() == want
    s = ort.InferenceSession(cancer["onnx"], providers=["CPUExecutionProvider"])
    _, ref = s.run(None, {s.get_inputs()[0].name: x})
    assert np.allclose(probs, ref, atol=1e-5), (probs, ref)
    # Another scheme's key (a CKKS one) for this spec; this spec for the CKKS client.
    ckks = heinfer.Client(os.path.join(model_repo, "digits_cryptonets"))
    ckks.save_secret_key(tmp_path / "ckks.sk")
    with pytest.raises(heinfer.KeyFileError, match="not a Paillier secret key"):
        heinfer.PaillierClient.load(model, tmp_path / "ckks.sk")
    with pytest.raises(heinfer.SpecError, match="PaillierClient"):
        heinfer.Client(model)
    with pytest.raises(heinfer.SpecError, match="layout L only"):
        heinfer.client_for(model, layout="T", secret_key_path=sk)
