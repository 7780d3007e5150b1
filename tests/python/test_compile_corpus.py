"""The compiler corpus (issue 16): scikit-learn models through skl2onnx, PyTorch-exporter
patterns, onnxruntime-quantized models — each compiled and compared with onnxruntime in
the compiler's plaintext simulation of the CKKS program (top-1 agreement on the test
split for classifiers, max |error| for regressors); the smallest also run encrypted end
to end with `heinfer run`. Refusals name the node, its op, why and what to do."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import corpus_models  # noqa: E402

from conftest import build_heinfer

# Encrypted end to end (heinfer run): the smallest models of each kind.
ENCRYPTED = ["sk_logreg_binary_zipmap", "sk_linearsvc_multi", "sk_linreg", "sk_pipe_minmax_pca_logreg", "sk_mlp_identity",
             "sk_mlp_relu_binary"]


# Regressors: max |error| against onnxruntime, as a share of the outputs' spread (std) on
# the test split. Linear models are exact up to CKKS noise; an MLP's ReLU/tanh is a
# polynomial fitted on the calibration range, so its bound is looser.
REGRESSION_TOL = 1e-3
REGRESSION_TOL_MLP = 0.05
# QDQ models: onnxruntime rounds every activation to 8 bits, the CKKS program keeps them
# real; agreement is with the quantized model, so its own rounding counts against it.
QDQ_AGREEMENT = 0.99
# MaxPool approximated as pairwise maxima: a degree-31 |x| alone reached 98.7 % (ReLU's
# exact zeros sit on |x|'s kink); the composite sign the compiler then picks meets 99 %.
MAXPOOL_AGREEMENT = 0.99


@pytest.fixture(scope="module")
def heinfer():
    return build_heinfer()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    return {c[0]: c for c in corpus_models.build(str(d))}


def compile_case(heinfer, case, out):
    name, onnx, cal, test, labels, kind = case
    env = dict(os.environ, HEINFER_PYTHON=sys.executable)
    cmd = [heinfer, "compile", onnx, "--calibration", cal, "--data", test, "-o", str(out), "--json"]
    if labels:
        cmd += ["--labels", labels]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, f"{name}: {r.stderr[-2000:]}"
    return json.loads(r.stdout)


def test_corpus_has_every_family(corpus):
    names = set(corpus)
    assert len(names) >= 25
    for prefix in ("sk_logreg", "sk_linearsvc", "sk_sgd", "sk_mlp_", "sk_mlpregressor", "sk_pipe", "sk_linreg", "sk_ridge",
                   "sk_lasso", "sk_linearsvr", "pt_", "qdq_", "qdyn_"):
        assert any(n.startswith(prefix) for n in names), prefix


@pytest.mark.parametrize("name", [c[0] for c in corpus_models.CASE_NAMES])
def test_compiles_and_agrees_with_onnxruntime(heinfer, corpus, tmp_path, name):
    case = corpus[name]
    r = compile_case(heinfer, case, tmp_path)
    acc = r["accuracy"]
    assert acc["reference"].startswith("onnxruntime"), acc
    if case[5] == "classifier":
        need = QDQ_AGREEMENT if name.startswith("qdq_") else MAXPOOL_AGREEMENT if "maxpool" in name else 0.995
        assert acc["top1_agreement"] >= need, (name, acc)
    else:
        # Against onnxruntime's outputs: within REGRESSION_TOL of their spread on the test split.
        import onnxruntime as ort
        s = ort.InferenceSession(case[1], providers=["CPUExecutionProvider"])
        y = s.run(None, {s.get_inputs()[0].name: np.load(case[3])})[0]
        spread = float(np.std(y))
        tol = REGRESSION_TOL_MLP if name.startswith("sk_mlpregressor") else REGRESSION_TOL
        assert acc["max_abs_error"] <= tol * spread, (name, acc, spread)
    assert r["log_qp"] <= r["security_bound"]
    print(f"{name}: agreement {acc['top1_agreement']:.4f} max|err| {acc['max_abs_error']:.3g} "
          f"compile {r['compile_seconds']:.1f} s")


@pytest.mark.parametrize("name", ENCRYPTED)
def test_encrypted_end_to_end(heinfer, corpus, tmp_path, name):
    case = corpus[name]
    compile_case(heinfer, case, tmp_path)
    cmd = [heinfer, "run", str(tmp_path / name), "--input", case[3], "--samples", "12", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout)
    assert r["samples"] == 12
    if case[5] == "classifier":
        assert r["agreement_with_simulation"] >= 11 / 12, r
    # Against the plaintext simulation: CKKS noise only (regressors' outputs are in the hundreds).
    assert r["max_logit_error_vs_simulation"] < (0.05 if case[5] == "classifier" else 1.0), r


# MaxPool under encryption: samples run in layout M (32 digits per ciphertext, the same
# parameters and per-sample program as layout L), so that enough of them run in CI.
MAXPOOL_ENCRYPTED_SAMPLES = 96


def test_maxpool_cnn_under_encryption_agrees_with_onnxruntime(heinfer, corpus, tmp_path):
    """Issue 16 item 3: a CNN with MaxPool (pairwise maxima by a composite |x|) keeps
    onnxruntime's top-1 under encryption. Encryption changes nothing the simulation did
    not (its noise is ~1e-4 against the approximation's ~1e-2), and the simulation agrees
    with onnxruntime on ≥ 99 % of the whole test split (the corpus test above); here the
    decrypted answers themselves are held to both."""
    import onnxruntime as ort
    case = corpus["pt_maxpool_cnn"]
    compile_case(heinfer, case, tmp_path)
    x = np.load(case[3])
    s = ort.InferenceSession(case[1], providers=["CPUExecutionProvider"])
    want = s.run(None, {s.get_inputs()[0].name: x.astype(np.float32)})[0].argmax(1)
    np.save(tmp_path / "ort_top1.npy", want.astype(np.int64))
    cmd = [heinfer, "run", str(tmp_path / "pt_maxpool_cnn"), "--input", case[3], "--labels",
           str(tmp_path / "ort_top1.npy"), "--samples", str(MAXPOOL_ENCRYPTED_SAMPLES), "--layout", "M", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout)
    assert r["layout"] == "M" and r["samples"] == MAXPOOL_ENCRYPTED_SAMPLES and r["batch"] >= 8, r
    # CKKS noise changes no decision and moves no logit by more than a tenth of the
    # approximation's own error bound.
    assert r["agreement_with_simulation"] == 1.0, r
    assert r["max_logit_error_vs_simulation"] < 5e-3, r
    # The decrypted classes against onnxruntime's on these samples (one miss allowed:
    # the simulation's 99.26 % on 540 samples is 4 misses).
    assert r["accuracy"] >= 1 - 1.5 / MAXPOOL_ENCRYPTED_SAMPLES, r


def refusal(heinfer, tmp_path, model, x, *extra):
    import onnx
    p = tmp_path / "m.onnx"
    onnx.save(model, p)
    np.save(tmp_path / "x.npy", x)
    r = subprocess.run([heinfer, "compile", str(p), "--calibration", str(tmp_path / "x.npy"), "-o", str(tmp_path),
                        "--no-onnxruntime", *extra], capture_output=True, text=True)
    assert r.returncode != 0
    return r.stderr


def test_refusals_name_node_op_reason_and_remedy(heinfer, tmp_path):
    from onnx import TensorProto, helper, numpy_helper
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer
    from skl2onnx import to_onnx
    x = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    est = make_pipeline(Normalizer(), LogisticRegression()).fit(x, y)
    err = refusal(heinfer, tmp_path, to_onnx(est, x[:1], target_opset=15), x)
    assert "Normalizer" in err and "not a polynomial" in err and "client" in err

    def model(nodes, inits=(), opset=17):
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], list(inits))
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    # A reshape whose target depends on the input's values.
    m = model([helper.make_node("MatMul", ["input", "w"], ["h"], name="fc"),
               helper.make_node("Cast", ["h"], ["hi"], name="to_int", to=TensorProto.INT64),
               helper.make_node("Reshape", ["h", "hi"], ["y"], name="valdep")], [w])
    err = refusal(heinfer, tmp_path, m, x)
    assert "to_int" in err and "Cast" in err and "float" in err
    # A product of two computed tensors.
    m = model([helper.make_node("MatMul", ["input", "w"], ["h"], name="fc"),
               helper.make_node("Relu", ["h"], ["r"], name="act"),
               helper.make_node("Mul", ["h", "r"], ["y"], name="gate")], [w])
    err = refusal(heinfer, tmp_path, m, x)
    assert "gate" in err and "Mul" in err and "both operands" in err
    # MaxPool refused by policy points at --maxpool.
    m = model([helper.make_node("Reshape", ["input", "s"], ["i4"], name="to_img"),
               helper.make_node("MaxPool", ["i4"], ["p"], name="pool", kernel_shape=[2, 2]),
               helper.make_node("Flatten", ["p"], ["y"], name="flat")],
              [numpy_helper.from_array(np.array([1, 1, 2, 2], np.int64), "s")])
    err = refusal(heinfer, tmp_path, m, x, "--maxpool", "refuse")
    assert "pool" in err and "MaxPool" in err and "--maxpool" in err
    # A QOperator-quantized op says how to re-quantize.
    m = model([helper.make_node("QLinearMatMul", ["input", "a", "b", "c", "d", "e", "f", "g"], ["y"], name="qmm")])
    err = refusal(heinfer, tmp_path, m, x)
    assert "qmm" in err and "QDQ" in err
