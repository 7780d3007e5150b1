#!/usr/bin/env bash
# The whole test suite, from a fresh machine: Python venv, Rust tests, Python tests.
# README's test command and .ci/run both call this.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# A fresh clone gains nothing from incremental state; it only costs disk (2 GB here).
export CARGO_INCREMENTAL=0
bash scripts/setup-python.sh
export HEINFER_PYTHON="$PWD/.venv/bin/python"

# Modules form layers inside every crate: no import cycle (the project's shared checker,
# where this checkout has it beside it).
if [ -f ../shared/tools/modcycles.py ]; then
  echo "== module layers (no import cycle in any crate)"
  python3 ../shared/tools/modcycles.py crates/*
fi

# Before the workspace build: each server-side crate alone, and a probe crate that
# must not be able to name runtime::ckks::SecretKey (with a positive control).
echo "== secret-key boundary (server-side crates built alone)"
bash scripts/check-secret-key-boundary.sh

echo "== cargo test (workspace)"
cargo test --workspace --all-targets

if [ -d tests/python ] && ls tests/python/test_*.py >/dev/null 2>&1; then
  echo "== pytest"
  .venv/bin/python -m pytest -q tests/python
fi
