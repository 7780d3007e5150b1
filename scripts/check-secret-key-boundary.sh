#!/usr/bin/env bash
# The secret-key boundary: the crates an operator runs (runtime, the heinfer-server
# binary, the Triton backend, the aggregation rounds) cannot name a secret key. Cargo unifies features across
# everything built together, so a workspace build proves nothing: each crate is built
# alone here, then a throwaway crate that depends on `runtime` / `server` only must
# FAIL to compile `fn f(_: runtime::ckks::SecretKey)`. A positive control turns ckks's
# `secret-key` feature on in the same throwaway crate and must compile, so that the
# check can fail at all (a renamed type or a broken probe would pass silently otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

echo "== server-side crates, each built alone"
cargo build -q -p runtime
cargo build -q -p server --bin heinfer-server
cargo build -q -p triton
cargo build -q -p aggregate

echo "== ... resolving the engine without secret-key (cargo tree, per crate)"
# The secret key lives in rlwe (ckks re-exports it): neither may have the feature on.
for p in runtime server triton aggregate; do
  for engine in ckks rlwe; do
    feats=$(cargo tree -q -p "$p" -e features -i "$engine" --prefix none --edges normal 2>/dev/null || true)
    if [ -z "$feats" ]; then
      echo "FAIL: cannot resolve $engine features for $p"; exit 1
    fi
    if grep -q 'feature "secret-key"' <<<"$feats"; then
      echo "FAIL: $p pulls in $engine's secret-key feature:"; echo "$feats"; exit 1
    fi
  done
  # Paillier's and LWE's secret keys are behind their crates' own features (runtime serves both).
  if [ "$p" != aggregate ]; then
    for engine in paillier lwe; do
      feats=$(cargo tree -q -p "$p" -e features -i "$engine" --prefix none --edges normal 2>/dev/null || true)
      if [ -z "$feats" ]; then
        echo "FAIL: cannot resolve $engine features for $p"; exit 1
      fi
      if grep -q 'feature "secret-key"' <<<"$feats"; then
        echo "FAIL: $p pulls in $engine's secret-key feature:"; echo "$feats"; exit 1
      fi
    done
  fi
  if cargo tree -q -p "$p" -e normal --prefix none | grep -Eq '^(client|compiler|cli) v'; then
    echo "FAIL: $p depends on client code"; exit 1
  fi
  # Split inference: the client runs a model's public prefix with tract; servers never do.
  if cargo tree -q -p "$p" -e normal --prefix none | grep -Eq '^tract-'; then
    echo "FAIL: $p depends on tract (the split prefix's ONNX runtime is client-side only)"; exit 1
  fi
done

probe=$CARGO_TARGET_DIR/secret-key-probe
# check <name> <extra dependency lines> <expect: pass|fail>
check() {
  local name=$1 extra=$2 expect=$3
  local dir=$probe/$name
  rm -rf "$dir" && mkdir -p "$dir/src"
  # Same versions as the workspace, no network.
  cp "$root/Cargo.lock" "$dir/Cargo.lock"
  cat >"$dir/Cargo.toml" <<TOML
[package]
name = "secret-key-probe-$name"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
runtime = { path = "$root/crates/runtime" }
server = { path = "$root/crates/server" }
$extra

[workspace]
TOML
  cat >"$dir/src/lib.rs" <<'RS'
pub fn through_runtime(_: &runtime::ckks::SecretKey) {}
pub fn through_server(_: &server::runtime::ckks::SecretKey) {}
RS
  if [ "$name" = paillier-without ] || [ "$name" = paillier-with ]; then
    echo 'pub fn paillier_through_runtime(_: &paillier::SecretKey) {}' >"$dir/src/lib.rs"
  fi
  local log=$dir/check.log
  if cargo check -q --offline --manifest-path "$dir/Cargo.toml" >"$log" 2>&1; then got=pass; else got=fail; fi
  if [ "$got" != "$expect" ]; then
    echo "FAIL: probe '$name' was expected to $expect to compile and did not:"; cat "$log"; exit 1
  fi
  if [ "$expect" = fail ] && ! grep -q 'SecretKey' "$log"; then
    echo "FAIL: probe '$name' failed for another reason than SecretKey:"; cat "$log"; exit 1
  fi
  echo "ok: probe '$name' did $([ "$expect" = pass ] || echo "not ")compile, as expected"
}

echo "== a crate using runtime / server cannot name runtime::ckks::SecretKey"
check without-secret-key "" fail
check with-secret-key "ckks = { path = \"$root/crates/ckks\", features = [\"secret-key\"] }" pass
echo "== a crate using runtime / server with the paillier crate they resolve cannot name paillier::SecretKey"
check paillier-without "paillier = { path = \"$root/crates/paillier\" }" fail
check paillier-with "paillier = { path = \"$root/crates/paillier\", features = [\"secret-key\"] }" pass
echo "secret-key boundary holds"
