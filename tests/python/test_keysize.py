"""Evaluation-key upload (issue #16 item 5): the compile report's upload figure is what
`heinfer keygen` writes, keys are made only up to the levels the program uses them at
(smaller than the same keys at the top level), and a reference model's upload is within
the 10 MB limit. `bench/keysize.sh` measures every reference model, before and after."""
import json, os, subprocess
import pytest

from conftest import build_heinfer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
D = os.path.join(ROOT, "models", "data")
LIMIT = 10_000_000


@pytest.fixture(scope="module")
def heinfer():
    return build_heinfer()


@pytest.mark.parametrize("name", ["digits_gelu_mlp", "digits_mlp"])
def test_key_upload_is_reported_exactly_and_smaller_than_top_level_keys(heinfer, tmp_path, name):
    out = subprocess.run([heinfer, "compile", f"{ROOT}/models/{name}.onnx", "--calibration", f"{D}/digits_train_img.npy",
                          "-o", str(tmp_path), "--json"], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    up, top = r["evaluation_key_bytes"], r["evaluation_key_bytes_top_level"]
    assert up < top, (up, top)
    assert r["key_memory_bytes"] > up
    spec = json.loads(subprocess.run([heinfer, "inspect", str(tmp_path / name), "--client-spec"],
                                     capture_output=True, text=True, check=True).stdout)
    levels = spec["key_levels"]["rotation"]
    assert len(levels) == len(spec["rotation_steps"]) and min(levels) < len(spec["params"]["q"]) - 1
    keys = tmp_path / "keys.bin"
    subprocess.run([heinfer, "keygen", str(tmp_path / name), "--secret-key", str(tmp_path / "sk.bin"),
                    "--keys-out", str(keys)], capture_output=True, text=True, check=True)
    # The report counts the key records; the bundle adds 45 bytes of framing.
    assert keys.stat().st_size == up + 45, (keys.stat().st_size, up)
    print(f"{name}: {up / 1e6:.2f} MB to upload ({top / 1e6:.2f} MB at the top level)")
    if name == "digits_gelu_mlp":
        assert up <= LIMIT
