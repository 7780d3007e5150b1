#!/usr/bin/env bash
# Real NVIDIA Triton Inference Server with heinfer's backend, from scratch.
#
#   bash scripts/triton.sh setup                 # venv with nvidia-pytriton + tritonclient, build the backend
#   bash scripts/triton.sh start <model_repo>    # start tritonserver in the background, wait until ready
#   bash scripts/triton.sh stop                  # stop it (by the PID recorded at start)
#
# Ports and files come from the environment: TRITON_HTTP_PORT (8000), TRITON_GRPC_PORT
# (8001), TRITON_METRICS_PORT (8002), TRITON_RUN_DIR (build/triton: pid file, log,
# backends/heinfer/libtriton_heinfer.so), TRITON_ARGS (extra tritonserver flags, e.g.
# --backend-config=heinfer,key-store-dir=/shared/keys).
# On a CPU-only machine tritonserver warns about CUDA and NVML and runs on.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=${TRITON_RUN_DIR:-$ROOT/build/triton}
HTTP=${TRITON_HTTP_PORT:-8000}
GRPC=${TRITON_GRPC_PORT:-8001}
METRICS=${TRITON_METRICS_PORT:-8002}
PY=$ROOT/.venv/bin/python

tritonserver_bin() {
  "$PY" -c 'import pytriton, os; print(os.path.join(os.path.dirname(pytriton.__file__), "tritonserver", "bin", "tritonserver"))'
}

setup() {
  # nvidia-pytriton and tritonclient[all] come from requirements-test.txt
  if ! "$PY" -c 'import pytriton, tritonclient.grpc, tritonclient.http' 2>/dev/null; then
    bash "$ROOT/scripts/setup-python.sh"
  fi
  (cd "$ROOT" && cargo build --release -q -p triton)
  mkdir -p "$RUN/backends/heinfer"
  # Triton looks for <backend-directory>/<backend>/libtriton_<backend>.so
  cp "$ROOT/target/release/libtriton_heinfer.so" "$RUN/backends/heinfer/libtriton_heinfer.so.tmp"
  mv "$RUN/backends/heinfer/libtriton_heinfer.so.tmp" "$RUN/backends/heinfer/libtriton_heinfer.so"
  # The batching strategy of merged models (TRITONBACKEND_ModelBatch*) is in the same
  # library; Triton's dynamic batcher looks for <backend-directory>/<backend>/batchstrategy.so.
  ln -sfn libtriton_heinfer.so "$RUN/backends/heinfer/batchstrategy.so"
  echo "tritonserver: $(tritonserver_bin)"
  echo "backend:      $RUN/backends/heinfer/libtriton_heinfer.so"
}

start() {
  local repo=${1:?usage: triton.sh start <model_repository>}
  [ -f "$RUN/backends/heinfer/libtriton_heinfer.so" ] || setup >/dev/null
  if [ -f "$RUN/tritonserver.pid" ] && kill -0 "$(cat "$RUN/tritonserver.pid")" 2>/dev/null; then
    echo "tritonserver already running (pid $(cat "$RUN/tritonserver.pid")); run: bash scripts/triton.sh stop" >&2
    exit 1
  fi
  local bin; bin=$(tritonserver_bin)
  # shellcheck disable=SC2086
  "$bin" --model-repository "$repo" --backend-directory "$RUN/backends" \
    --http-port "$HTTP" --grpc-port "$GRPC" --metrics-port "$METRICS" \
    --log-info true ${TRITON_ARGS:-} >"$RUN/tritonserver.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$RUN/tritonserver.pid"
  for _ in $(seq 1 240); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "tritonserver exited during start-up; last lines of $RUN/tritonserver.log:" >&2
      tail -30 "$RUN/tritonserver.log" >&2
      rm -f "$RUN/tritonserver.pid"
      exit 1
    fi
    if curl -fs "http://127.0.0.1:$HTTP/v2/health/ready" >/dev/null 2>&1; then
      echo "tritonserver ready: pid $pid, http :$HTTP, grpc :$GRPC, log $RUN/tritonserver.log"
      return 0
    fi
    sleep 0.5
  done
  echo "tritonserver not ready after 120 s; see $RUN/tritonserver.log" >&2
  kill "$pid" 2>/dev/null || true
  exit 1
}

stop() {
  local f="$RUN/tritonserver.pid"
  [ -f "$f" ] || { echo "no tritonserver started from $RUN"; return 0; }
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$f"
  echo "tritonserver stopped (pid $pid)"
}

case "${1:-}" in
  setup) setup ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
