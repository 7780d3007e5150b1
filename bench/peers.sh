#!/usr/bin/env bash
# heinfer beside its peers, single-threaded, on this machine, in one run.
#   bench/peers.sh ckks    CKKS operations against TenSEAL and OpenFHE (PyPI), same N and moduli
#   bench/peers.sh mnist   (not yet: TenSEAL's encrypted-MNIST network end to end)
# The peers are installed on first use into git-ignored venvs under bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
here=bench
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

venv() { # venv DIR PYTHON PACKAGES... — create and fill once; say so and fail softly if it cannot
  local dir=$1 py=$2; shift 2
  if [ ! -x "$dir/bin/python" ] || ! "$dir/bin/python" -c "import ${PEER_MODULE}" 2>/dev/null; then
    echo "installing $* into $dir ..." >&2
    "$py" -m venv "$dir" && "$dir/bin/pip" install -q "$@" >&2 || { echo "could not install $* — that peer is skipped" >&2; return 1; }
  fi
}

ckks() {
  export OMP_NUM_THREADS=1 RAYON_NUM_THREADS=1
  echo "building heinfer's peer_ops (release) ..." >&2
  cargo build --release -q -p ckks --example peer_ops >&2 || { echo "heinfer's example failed to build" >&2; exit 1; }
  target/release/examples/peer_ops > "$out/heinfer.json"

  local py310=${PYTHON310:-$(command -v python3.10 || echo /root/.pyenv/versions/3.10.13/bin/python)}
  if PEER_MODULE=openfhe venv "$here/.venv-openfhe" "$py310" openfhe numpy; then
    (cd "$here/peers" && ../.venv-openfhe/bin/python openfhe_ckks.py > "$out/openfhe.json") || echo "OpenFHE run failed" >&2
  fi
  local py311=${PYTHON311:-$(command -v python3.11 || echo python3)}
  if PEER_MODULE=tenseal venv "$here/.venv-tenseal" "$py311" tenseal numpy; then
    (cd "$here/peers" && ../.venv-tenseal/bin/python tenseal_ckks.py > "$out/tenseal.json") || echo "TenSEAL run failed" >&2
  fi
  python3 "$here/peers/report.py" "$out/heinfer.json" "$out/openfhe.json" "$out/tenseal.json"
}

case "${1:-}" in
  ckks) ckks ;;
  mnist) echo "bench/peers.sh mnist: not implemented yet (issue: encrypted runtime against TenSEAL's MNIST network)" >&2; exit 2 ;;
  *) echo "usage: bench/peers.sh ckks|mnist" >&2; exit 2 ;;
esac
