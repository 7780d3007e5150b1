#!/usr/bin/env bash
# Soak (issue 15): a server under CONCURRENCY workers mixing good and bad requests for
# SECONDS; every good answer decrypted and checked against onnxruntime, every bad one
# refused with its own error, the server's RSS sampled (scripts/soak.py).
# Not in CI: the 10-minute runs are an operator's check; SOAK_SECONDS=60 makes a short one.
#
#   bash scripts/soak.sh                 # Triton with heinfer's backend, then heinfer serve
#   bash scripts/soak.sh triton          # one of them
#   bash scripts/soak.sh serve
#   bash scripts/soak.sh faults          # kill -9 during registration and evaluation, both
#                                        # servers, SOAK_FAULT_ROUNDS (3) times (the pytest case)
#
# Environment: SOAK_SECONDS (600), SOAK_CONCURRENCY (8), SOAK_BAD_EVERY (4: one
# request in four is bad), SOAK_MODEL (digits_cryptonets), SOAK_OUT (build/soak:
# model repository, key directory, logs, <server>.json summaries), SOAK_MAX_GROWTH_MB (64).
# Exits non-zero when a run saw a wrong answer, an unexpected error, or RSS growth after
# warm-up over SOAK_MAX_GROWTH_MB.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_=${SOAK_SECONDS:-600}
CONC=${SOAK_CONCURRENCY:-8}
MODEL=${SOAK_MODEL:-digits_cryptonets}
OUT=${SOAK_OUT:-$ROOT/build/soak}
PY=$ROOT/.venv/bin/python
HEINFER=$ROOT/target/release/heinfer
WHICH=${1:-both}

mkdir -p "$OUT"
if [ "$WHICH" = faults ]; then
  for r in $(seq 1 "${SOAK_FAULT_ROUNDS:-3}"); do
    echo "== kill -9 round $r"
    (cd "$ROOT" && "$PY" -m pytest -q -s tests/python/test_hostile_triton.py -k kill_9) | grep -E "after kill|passed|failed"
  done
  exit 0
fi
[ -x "$PY" ] && "$PY" -c 'import heinfer, tritonclient.grpc, onnxruntime' 2>/dev/null || bash "$ROOT/scripts/setup-python.sh"
(cd "$ROOT" && cargo build --release -q -p cli)
if [ ! -f "$OUT/repo/$MODEL/config.pbtxt" ]; then
  HEINFER_PYTHON=$PY "$HEINFER" compile "$ROOT/models/$MODEL.onnx" --calibration "$ROOT/models/data/digits_train_img.npy" \
    --no-onnxruntime -o "$OUT/repo" --json >/dev/null
fi

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

drive() { # label pid http grpc
  "$PY" "$ROOT/scripts/soak.py" --label "$1" --pid "$2" --http "$3" --grpc "$4" --model "$MODEL" \
    --onnx "$ROOT/models/$MODEL.onnx" --data "$ROOT/models/data/digits_test_img.npy" \
    --seconds "$SECONDS_" --concurrency "$CONC" --out "$OUT/$1.json"
}

status=0
if [ "$WHICH" = both ] || [ "$WHICH" = triton ]; then
  export TRITON_HTTP_PORT=$(free_port) TRITON_GRPC_PORT=$(free_port) TRITON_METRICS_PORT=$(free_port)
  export TRITON_RUN_DIR=$OUT/triton
  rm -rf "$OUT/keys-triton"
  export TRITON_ARGS="--backend-config=heinfer,key-store-dir=$OUT/keys-triton --backend-config=heinfer,key-store-mb=256"
  bash "$ROOT/scripts/triton.sh" setup >/dev/null
  bash "$ROOT/scripts/triton.sh" start "$OUT/repo"
  pid=$(cat "$TRITON_RUN_DIR/tritonserver.pid")
  drive triton "$pid" "127.0.0.1:$TRITON_HTTP_PORT" "127.0.0.1:$TRITON_GRPC_PORT" || status=1
  bash "$ROOT/scripts/triton.sh" stop
fi
if [ "$WHICH" = both ] || [ "$WHICH" = serve ]; then
  rm -rf "$OUT/keys-serve"
  "$HEINFER" serve "$OUT/repo" --host 127.0.0.1 --http-port 0 --grpc-port 0 \
    --key-store-dir "$OUT/keys-serve" --key-store-mb 256 >"$OUT/serve.log" 2>&1 &
  pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  for _ in $(seq 1 600); do
    grep -q "ready http=" "$OUT/serve.log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$OUT/serve.log" >&2; exit 1; }
    sleep 0.2
  done
  line=$(grep -o "ready http=[0-9.:]* grpc=[0-9.:]*" "$OUT/serve.log" | head -1)
  http=${line#ready http=}; http=${http%% *}; grpc=${line##*grpc=}
  drive serve "$pid" "$http" "$grpc" || status=1
  kill -TERM "$pid"; wait "$pid" || true
  trap - EXIT
fi
exit $status
