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


@pytest.mark.parametrize("name", ["digits_cnn", "digits_rescnn"])
def test_a_key_budget_brings_the_cnns_under_10_mb(heinfer, tmp_path, name):
    """`--key-budget-mb 10` on the two CNNs (47.7 and 90.1 MB of keys at the default degree
    31 and radix 2): no key layout fits at degree 31, so the compiler lowers activations and
    takes the first key layout that fits — radix 8 with the first layer's replicas summed by
    one top-level key, for both, and keys for lower levels in key bases of their own. Every rotation key but that one is for a power of 8, only one
    rotation key is made at the top level, the bundle `heinfer keygen` writes is the reported
    upload and under 10 MB, and the model run under encryption agrees with its simulation on
    every sample."""
    import re
    out = subprocess.run([heinfer, "compile", f"{ROOT}/models/{name}.onnx", "--calibration",
                          f"{D}/digits_train_img.npy", "-o", str(tmp_path), "--key-budget-mb", "10",
                          "--layout", "L", "--json"], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    assert any("activation degrees lowered from 31" in n for n in r["notes"]), r["notes"]
    assert min(a["degree"] for a in r["activations"]) < 31, r["activations"]
    radix = int(next(m.group(1) for n in r["notes"] if (m := re.search(r"powers of (\d+) only", n))))
    assert any("one key at the top level" in n for n in r["notes"]), r["notes"]
    spec = json.loads(subprocess.run([heinfer, "inspect", str(tmp_path / name), "--client-spec"],
                                     capture_output=True, text=True, check=True).stdout)
    top = len(spec["params"]["q"]) - 1
    # Keys for lower levels in bases of their own (fewer digits, a larger P): the bundle
    # below carries them, and the encrypted run below switches with them.
    bases = spec["params"]["key_bases"]
    assert bases and all(b["level"] <= top and b["p"] for b in bases), bases
    at_top = [s for s, l in zip(spec["rotation_steps"], spec["key_levels"]["rotation"]) if l == top]
    assert len(at_top) == 1, (at_top, spec["key_levels"])
    power = lambda s: s & (s - 1) == 0 and (s.bit_length() - 1) % (radix.bit_length() - 1) == 0
    assert all(power(s) for s in spec["rotation_steps"] if s not in at_top), (radix, spec["rotation_steps"])
    keys = tmp_path / "keys.bin"
    subprocess.run([heinfer, "keygen", str(tmp_path / name), "--secret-key", str(tmp_path / "sk.bin"),
                    "--keys-out", str(keys)], capture_output=True, text=True, check=True)
    assert keys.stat().st_size == r["evaluation_key_bytes"] + 45 <= LIMIT, keys.stat().st_size
    run = json.loads(subprocess.run([heinfer, "run", str(tmp_path / name), "--input", f"{D}/digits_test_img.npy",
                                     "--samples", "12", "--json"], capture_output=True, text=True, check=True).stdout)
    assert run["agreement_with_simulation"] == 1.0, run
    print(f"{name} under --key-budget-mb 10: {keys.stat().st_size / 1e6:.2f} MB of keys, "
          f"{run['ms_per_sample']['evaluate']:.0f} ms per sample")


def test_the_sdk_takes_one_top_key_and_a_budget_in_mb(tmp_path):
    """`heinfer.compile(one_top_key=True)` is `--one-top-key`: the digits CNN's first layer
    sums its replicas by one key (fewer bytes to upload than the same network without it);
    and `key_budget_mb` counts MB of 10^6 bytes, as the report prints."""
    import numpy as np
    import heinfer

    cal = np.load(os.path.join(D, "digits_train_img.npy"))
    onnx = os.path.join(ROOT, "models", "digits_cnn.onnx")
    upload = {}
    for one in (False, True):
        r = heinfer.compile(onnx, cal, tmp_path, name=f"cnn_{int(one)}", degree=7, one_top_key=one,
                            reference="interpreter")
        notes = r["notes"]
        assert any("one key at the top level" in n for n in notes) == one, notes
        upload[one] = r["evaluation_key_bytes"]
    assert upload[True] < upload[False], upload
    # A budget one byte under the upload refuses, one at it fits (in MiB both would fit).
    up = upload[True]
    with pytest.raises(heinfer.CompileError):
        heinfer.compile(onnx, cal, tmp_path, name="cnn_tight", degree=7, one_top_key=True, galois_radix=2,
                        key_budget_mb=(up - 1) / 1e6, reference="interpreter")
    r = heinfer.compile(onnx, cal, tmp_path, name="cnn_fits", degree=7, one_top_key=True, galois_radix=2,
                        key_budget_mb=up / 1e6 + 1e-6, reference="interpreter")
    assert r["evaluation_key_bytes"] == up
    # `key_bases=False` is `--no-key-bases`: every key in the set's own digits, more bytes.
    own = heinfer.compile(onnx, cal, tmp_path, name="cnn_own", degree=7, one_top_key=True, galois_radix=2,
                          key_bases=False, reference="interpreter")
    assert own["evaluation_key_bytes"] > up and not any("of their own" in n for n in own["notes"]), own["notes"]
    # A budget that is not a positive number is refused by name, not by an overflow.
    for bad in (-1, 0, float("nan")):
        with pytest.raises(heinfer.CompileError, match="key_budget_mb"):
            heinfer.compile(onnx, cal, tmp_path, name="cnn_bad", key_budget_mb=bad, reference="interpreter")
