"""`heinfer run`: encrypted evaluation in one process, against the plaintext simulation and labels."""
import json, os, subprocess, sys

import pytest

from conftest import build_heinfer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
D = os.path.join(ROOT, "models", "data")


@pytest.fixture(scope="module")
def heinfer():
    return build_heinfer()


def test_run_on_encrypted_digits(heinfer, tmp_path):
    env = dict(os.environ, HEINFER_PYTHON=sys.executable)
    subprocess.run([heinfer, "compile", f"{ROOT}/models/digits_cryptonets.onnx", "--calibration", f"{D}/digits_train_img.npy",
                    "--scale-bits", "30", "--no-onnxruntime", "-o", str(tmp_path), "--json"],
                   env=env, capture_output=True, text=True, check=True)
    out = subprocess.run([heinfer, "run", str(tmp_path / "digits_cryptonets"), "--input", f"{D}/digits_test_img.npy",
                          "--labels", f"{D}/digits_test_y.npy", "--samples", "60", "--json"],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    assert r["samples"] == 60
    assert r["agreement_with_simulation"] >= 59 / 60
    assert r["max_logit_error_vs_simulation"] < 0.2
    assert r["accuracy"] > 0.9
    assert r["bytes"]["query"] > 0 and r["bytes"]["evaluation_keys"] > r["bytes"]["query"]


def test_run_reports_bad_input_files(heinfer, tmp_path):
    r = subprocess.run([heinfer, "run", str(tmp_path / "nothing"), "--input", f"{D}/digits_test_img.npy"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "nothing" in r.stderr
