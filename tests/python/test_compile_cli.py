"""`heinfer compile` on the reference models: the report's figures against onnxruntime."""
import json, os, subprocess, sys
import numpy as np
import pytest

from conftest import build_heinfer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
D = os.path.join(ROOT, "models", "data")
CASES = [
    ("breast_cancer_lr", "breast_cancer_train_x", "breast_cancer_test_x", "breast_cancer_test_y", 0.99),
    ("digits_mlp", "digits_train_img", "digits_test_img", "digits_test_y", 0.995),
    ("digits_cnn", "digits_train_img", "digits_test_img", "digits_test_y", 0.995),
    ("digits_cryptonets", "digits_train_img", "digits_test_img", "digits_test_y", 0.995),
]


@pytest.fixture(scope="module")
def heinfer():
    return build_heinfer()


@pytest.mark.parametrize("name,cal,test,labels,need", CASES)
def test_compile_reports_agreement(heinfer, tmp_path, name, cal, test, labels, need):
    env = dict(os.environ, HEINFER_PYTHON=sys.executable)
    out = subprocess.run([heinfer, "compile", f"{ROOT}/models/{name}.onnx", "--calibration", f"{D}/{cal}.npy",
                          "--data", f"{D}/{test}.npy", "--labels", f"{D}/{labels}.npy", "-o", str(tmp_path), "--json"],
                         env=env, capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    acc = r["accuracy"]
    assert acc["reference"].startswith("onnxruntime")
    assert acc["top1_agreement"] >= need
    assert abs(acc["reference_accuracy"] - acc["simulated_accuracy"]) <= 0.01
    # Compile time is a measured figure (the report's compile_seconds), never asserted.
    print(f"{name}: compiled in {r['compile_seconds']:.2f} s")
    assert r["log_qp"] <= r["security_bound"]
    cfg = (tmp_path / name / "config.pbtxt").read_text()
    assert 'backend: "heinfer"' in cfg and "heinfer_client_spec" in cfg
    insp = subprocess.run([heinfer, "inspect", str(tmp_path / name), "--client-spec"], capture_output=True, text=True, check=True)
    spec = json.loads(insp.stdout)
    assert spec["rotation_steps"] == r["rotation_steps"]


def test_unsupported_op_is_named(heinfer, tmp_path):
    import onnx
    from onnx import helper, TensorProto
    g = helper.make_graph([helper.make_node("Floor", ["input"], ["y"], name="floor1")], "g",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    p = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), p)
    np.save(tmp_path / "x.npy", np.zeros((2, 4), np.float32))
    r = subprocess.run([heinfer, "compile", str(p), "--calibration", str(tmp_path / "x.npy"), "-o", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "floor1" in r.stderr and "Floor" in r.stderr
    r = subprocess.run([heinfer, "compile", str(p), "--calibration", str(tmp_path / "missing.npy")], capture_output=True, text=True)
    assert r.returncode != 0 and "missing.npy" in r.stderr
