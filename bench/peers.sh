#!/usr/bin/env bash
# heinfer beside its peers, single-threaded, on this machine, in one run.
#
#   bench/peers.sh ckks    CKKS operations against TenSEAL and OpenFHE (PyPI), same N, moduli and scale
#   bench/peers.sh mnist   (to be added: encrypted MNIST inference end to end)
#
# The peers are installed on first use, from PyPI, into git-ignored venvs:
#   bench/.venv-openfhe  (openfhe + numpy; the wheel is a CPython 3.10 module)
#   bench/.venv-tenseal  (tenseal + numpy; CPython 3.11)
# Override the interpreters with PYTHON310=/path/python3.10, PYTHON311=/path/python3.11.
# A peer that cannot be installed or fails is reported and left out (its ratios read n/a).
# PEERS_MIN_SECONDS (default 2.0) and PEERS_MIN_REPS (default 30) set the peers' timing loops.
set -euo pipefail
cd "$(dirname "$0")/.."
here=bench
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
started=$SECONDS

# peer_venv DIR PYTHON MODULE PACKAGES... — create DIR and install PACKAGES unless MODULE and
# numpy already import from it. Returns non-zero, having said why, if that cannot be done.
peer_venv() {
  local dir=$1 py=$2 module=$3; shift 3
  if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "import $module, numpy" 2>/dev/null; then
    return 0
  fi
  if ! "$py" -c "" 2>/dev/null; then
    echo "peers.sh: no working $py for $module — that peer is skipped (set PYTHON310/PYTHON311)" >&2
    return 1
  fi
  echo "peers.sh: installing $* into $dir (with $py) ..." >&2
  if "$py" -m venv --clear "$dir" >&2 && "$dir/bin/python" -m pip install -q "$@" >&2 \
     && "$dir/bin/python" -c "import $module, numpy" >&2; then
    return 0
  fi
  echo "peers.sh: could not install $* into $dir — that peer is skipped" >&2
  return 1
}

# find_python X.Y CANDIDATES... — print the first candidate that runs and is CPython X.Y
# (a pyenv shim for a version that is not selected exists on PATH but does not run).
find_python() {
  local want=$1 c; shift
  for c in "$@"; do
    [ -n "$c" ] || continue
    if "$c" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$want' else 1)" 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  echo "python$want"  # not found: peer_venv says so
}

# run_peer NAME VENV SCRIPT — run one peer script from bench/peers, its JSON line into $out/NAME.json.
run_peer() {
  local name=$1 venv=$2 script=$3
  echo "peers.sh: timing $name ..." >&2
  if ! (cd "$here/peers" && "../$venv/bin/python" "$script" > "$out/$name.json"); then
    echo "peers.sh: the $name run failed — its column is left empty" >&2
    rm -f "$out/$name.json"
  fi
}

ckks() {
  export OMP_NUM_THREADS=1 RAYON_NUM_THREADS=1
  echo "peers.sh: building heinfer's peer_ops example (release) ..." >&2
  if ! cargo build --release -q -p ckks --example peer_ops >&2; then
    echo "peers.sh: heinfer's example crates/ckks/examples/peer_ops.rs failed to build — nothing to compare" >&2
    exit 1
  fi
  echo "peers.sh: timing heinfer ..." >&2
  if ! cargo run --release -q -p ckks --example peer_ops -- --json > "$out/heinfer.json"; then
    echo "peers.sh: heinfer's peer_ops example failed — nothing to compare" >&2
    exit 1
  fi

  local py310 py311
  py310=$(find_python 3.10 "${PYTHON310:-}" python3.10 /root/.pyenv/versions/3.10.*/bin/python)
  if peer_venv "$here/.venv-openfhe" "$py310" openfhe openfhe numpy; then
    run_peer openfhe .venv-openfhe openfhe_ckks.py
  fi
  py311=$(find_python 3.11 "${PYTHON311:-}" python3.11 /root/.pyenv/versions/3.11.*/bin/python)
  if peer_venv "$here/.venv-tenseal" "$py311" tenseal tenseal numpy; then
    run_peer tenseal .venv-tenseal tenseal_ckks.py
  fi

  python3 "$here/peers/report.py" "$out/heinfer.json" "$out/openfhe.json" "$out/tenseal.json"
  echo "peers.sh: done in $((SECONDS - started)) s" >&2
}

# mnist() { ... }   — the `mnist` subcommand goes here (encrypted MNIST end to end against a peer);
#                     add its case below and its scripts under bench/peers/.

case "${1:-}" in
  ckks) ckks ;;
  mnist) echo "peers.sh: 'mnist' is not implemented yet" >&2; exit 2 ;;
  *)
    echo "usage: bench/peers.sh SUBCOMMAND" >&2
    echo "  ckks    heinfer's CKKS operations against OpenFHE and TenSEAL (PyPI), single-threaded" >&2
    echo "  mnist   (not implemented yet)" >&2
    exit 2
    ;;
esac
