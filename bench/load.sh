#!/usr/bin/env bash
# Encrypted inference under load: `hey` (Debian) posts a prepared KServe-v2 binary request
# (one encrypted digit) to real Triton with heinfer's backend and to `heinfer serve`, at
# concurrency 1, 2 and 4, on the digits CNN compiled at the compiler's defaults; then the
# runtime is timed directly (`heinfer run`, no network) for the backend overhead.
#
#   bash bench/load.sh            # LOAD_REQUESTS (default 8) requests per concurrency level
#
# Prints one table and a final JSON line. Installs hey with apt-get if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${LOAD_REQUESTS:-8}
MODEL=${LOAD_MODEL:-digits_cnn}
W=$ROOT/build/load
mkdir -p "$W"
command -v hey >/dev/null || { apt-get install -y -q hey >/dev/null 2>&1 || sudo apt-get install -y -q hey; }
bash scripts/setup-python.sh
PY=$ROOT/.venv/bin/python
cargo build --release -q -p cli -p triton
HEINFER=$ROOT/target/release/heinfer
if [ ! -f "$W/repo/$MODEL/1/model.hem" ]; then
  HEINFER_PYTHON=$PY "$HEINFER" compile "models/$MODEL.onnx" --calibration models/data/digits_train_img.npy \
    --no-onnxruntime -o "$W/repo" >/dev/null
fi

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# load NAME HTTP_PORT: prepare the body, then hey at each concurrency; appends rows to $W/rows
load() {
  local name=$1 port=$2
  read -r hlen blen klen cls < <("$PY" bench/load_prepare.py "127.0.0.1:$port" "$MODEL" "$W/body.bin")
  echo "$name: request body $blen bytes (JSON header $hlen), key bundle $klen bytes, first answer class $cls" >&2
  for c in 1 2 4; do
    local n=$(( N > c ? N : c ))
    local t0=$SECONDS
    hey -n "$n" -c "$c" -t 0 -m POST -T application/octet-stream -o csv \
      -H "Inference-Header-Content-Length: $hlen" -D "$W/body.bin" \
      "http://127.0.0.1:$port/v2/models/$MODEL/infer" >"$W/hey-$name-$c.csv"
    local wall=$(( SECONDS - t0 )) ok rps p50 p99
    # hey's CSV: response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset
    read -r ok rps p50 p99 < <("$PY" - "$W/hey-$name-$c.csv" "$n" <<'PY'
import csv, sys
import numpy as np
rows = list(csv.DictReader(open(sys.argv[1])))
t = np.array([float(r["response-time"]) for r in rows])
ok = sum(r["status-code"] == "200" for r in rows)
span = max(float(r["offset"]) + float(r["response-time"]) for r in rows)
print(ok, len(rows) / span, np.percentile(t, 50), np.percentile(t, 99))
PY
)
    [ "$ok" = "$n" ] || { echo "$name c=$c: only $ok/$n requests answered 200 (${wall}s)" >&2; exit 1; }
    echo "$name $c $n $rps $p50 $p99" >>"$W/rows"
  done
}

rm -f "$W/rows"
# The runtime called directly, one request at a time (same model, same 2 cores): before
# and after the servers, averaged, since this machine's speed drifts by ~10 % over minutes.
direct() { "$HEINFER" run "$W/repo/$MODEL" --input models/data/digits_test_img.npy --samples "$N" --json >"$W/direct-$1.json"; }
direct before
# Real Triton with the backend.
export TRITON_HTTP_PORT=$(free_port) TRITON_GRPC_PORT=$(free_port) TRITON_METRICS_PORT=$(free_port) TRITON_RUN_DIR=$W/triton
bash scripts/triton.sh stop >/dev/null 2>&1 || true
bash scripts/triton.sh setup >/dev/null
bash scripts/triton.sh start "$W/repo" >&2
trap 'bash scripts/triton.sh stop >/dev/null 2>&1 || true' EXIT
load triton "$TRITON_HTTP_PORT"
curl -s "http://127.0.0.1:$TRITON_HTTP_PORT/v2/models/$MODEL/stats" >"$W/triton-stats.json"
bash scripts/triton.sh stop >&2
# heinfer serve.
"$HEINFER" serve "$W/repo" --http-port 0 --grpc-port 0 >"$W/serve.log" 2>&1 &
spid=$!
trap 'kill $spid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do grep -q "ready" "$W/serve.log" && break; sleep 0.2; done
sport=$(grep -o 'http=[0-9.]*:[0-9]*' "$W/serve.log" | head -1 | sed 's/.*://')
load heinfer-serve "$sport"
kill -TERM $spid; wait $spid || true
direct after

"$PY" - "$W" <<'PY'
import json, sys
w = sys.argv[1]
rows = [l.split() for l in open(f"{w}/rows")]
direct_ms = sum(json.load(open(f"{w}/direct-{t}.json"))["ms_per_sample"]["evaluate"] for t in ("before", "after")) / 2
st = json.load(open(f"{w}/triton-stats.json"))["model_stats"][0]["inference_stats"]
compute_ms = st["compute_infer"]["ns"] / max(1, st["compute_infer"]["count"]) / 1e6
print(f"{'server':<14} {'conc':>4} {'reqs':>4} {'req/s':>7} {'p50 ms':>9} {'p99 ms':>9} {'overhead vs runtime':>20}")
out = {"runtime_direct_ms": direct_ms, "triton_compute_infer_ms": compute_ms, "rows": []}
for name, c, n, rps, p50, p99 in rows:
    p50, p99 = float(p50) * 1e3, float(p99) * 1e3
    over = (p50 / direct_ms - 1) if c == "1" else None
    print(f"{name:<14} {c:>4} {n:>4} {float(rps):>7.3f} {p50:>9.1f} {p99:>9.1f} {('%+.1f%%' % (100 * over)) if over is not None else '':>20}")
    out["rows"].append({"server": name, "concurrency": int(c), "requests": int(n), "rps": float(rps),
                        "p50_ms": p50, "p99_ms": p99, "overhead_vs_runtime": over})
print(f"runtime directly (heinfer run, no network, mean of before and after): {direct_ms:.1f} ms per request; "
      f"Triton's compute_infer: {compute_ms:.1f} ms")
print(json.dumps(out))
PY
