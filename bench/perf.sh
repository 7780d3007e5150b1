#!/usr/bin/env bash
# Throughput under concurrency with Triton's own perf_analyzer (from the tritonclient 2.51.0
# wheel, as DESIGN.md's Serving says): one model served by real Triton with heinfer's backend
# in layout L (one digit per request) and layout M (B digits in one ciphertext), with 1 and 2
# model instances (instance_group: requests under different key ids share no HE work, so
# parallelism comes from instances), at concurrency 1, 2, 4 and 8; then the merged twin
# (`compile --merged`: one digit per request, same-key requests on distinct blocks merged
# by Triton's dynamic batcher into one layout-M evaluation), one instance, at concurrency 1,
# 2, 4, 8 and 32, under Triton and then under `heinfer serve` (which merges by itself). Each
# layout's request is prepared and checked first
# (bench/perf_prepare.py: decrypted top-1 against onnxruntime).
#
#   bash bench/perf.sh                 # PERF_MODEL (digits_mlp) PERF_WINDOW_MS (4000)
#
# Prints one table (requests/s, digits/s, p50/p99 latency) and, last, one JSON line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODEL=${PERF_MODEL:-digits_mlp}
WINDOW=${PERF_WINDOW_MS:-4000}
W=$ROOT/build/perf
mkdir -p "$W"
bash scripts/setup-python.sh >/dev/null
PY=$ROOT/.venv/bin/python
cargo build --release -q -p cli -p triton
HEINFER=$ROOT/target/release/heinfer

# perf_analyzer: the binary inside the tritonclient 2.51.0 manylinux wheel, with the two
# libraries it needs under the names it asks for (both ship in nvidia_pytriton.libs).
PA_DIR=$W/perf_analyzer
if [ ! -x "$PA_DIR/perf_analyzer" ]; then
  rm -rf "$PA_DIR" && mkdir -p "$PA_DIR/wheel" "$PA_DIR/lib"
  "$PY" -m pip download -q --no-deps tritonclient==2.51.0 -d "$PA_DIR/wheel"
  (cd "$PA_DIR/wheel" && "$PY" -m zipfile -e tritonclient-2.51.0-*.whl x)
  cp "$PA_DIR"/wheel/x/tritonclient-2.51.0.data/data/bin/perf_analyzer "$PA_DIR/perf_analyzer"
  chmod +x "$PA_DIR/perf_analyzer"
  LIBS=$("$PY" -c 'import pytriton, os; print(os.path.join(os.path.dirname(os.path.dirname(pytriton.__file__)), "nvidia_pytriton.libs"))')
  ln -sf "$(ls "$LIBS"/libb64-*.so.0d | head -1)" "$PA_DIR/lib/libb64.so.0d"
  ln -sf "$(ls "$LIBS"/libcudart-*.so.12* | head -1)" "$PA_DIR/lib/libcudart.so.12"
  rm -rf "$PA_DIR/wheel"
fi
PA() { LD_LIBRARY_PATH="$PA_DIR/lib" "$PA_DIR/perf_analyzer" "$@"; }

# The model twice: one instance and two.
REPO=$W/repo
rm -rf "$REPO"
HEINFER_PYTHON=$PY "$HEINFER" compile "models/$MODEL.onnx" --calibration models/data/digits_train_img.npy \
  --no-onnxruntime --merged -o "$REPO" >/dev/null 2>&1
cp -r "$REPO/$MODEL" "$REPO/${MODEL}_x2"
sed -i "s/^name: \"$MODEL\"/name: \"${MODEL}_x2\"/; s/count: 1 }/count: 2 }/" "$REPO/${MODEL}_x2/config.pbtxt"

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export TRITON_HTTP_PORT=$(free_port) TRITON_GRPC_PORT=$(free_port) TRITON_METRICS_PORT=$(free_port) TRITON_RUN_DIR=$W/triton
bash scripts/triton.sh setup >/dev/null
bash scripts/triton.sh start "$REPO" >/dev/null
trap 'bash scripts/triton.sh stop >/dev/null 2>&1 || true' EXIT
URL=127.0.0.1:$TRITON_HTTP_PORT

rm -f "$W/rows"
for layout in L M; do
  for m in "$MODEL" "${MODEL}_x2"; do
    read -r per_req req_bytes agree < <("$PY" bench/perf_prepare.py "$URL" "$m" "$layout" "$W/in-$m-$layout.json" \
      "models/$MODEL.onnx")
    for c in 1 2 4 8; do
      PA -m "$m" -u "127.0.0.1:$TRITON_GRPC_PORT" -i grpc --input-data "$W/in-$m-$layout.json" \
        --concurrency-range "$c" --measurement-interval "$WINDOW" --stability-percentage 50 --max-trials 4 \
        -f "$W/pa-$m-$layout-$c.csv" >"$W/pa-$m-$layout-$c.log" 2>&1 \
        || { echo "perf_analyzer failed ($m $layout c=$c):" >&2; tail -20 "$W/pa-$m-$layout-$c.log" >&2; exit 1; }
      echo "$layout $m $c $per_req $req_bytes $agree $W/pa-$m-$layout-$c.csv" >>"$W/rows"
    done
  done
done

# The merged twin: one digit per request; Triton's statistics say how many evaluations ran.
MM=${MODEL}_merged
read -r per_req req_bytes agree < <("$PY" bench/perf_prepare.py "$URL" "$MM" merged "$W/in-$MM.json" "models/$MODEL.onnx")
for c in 1 2 4 8 32; do
  s0=$(curl -s "http://$URL/v2/models/$MM/stats")
  PA -m "$MM" -u "127.0.0.1:$TRITON_GRPC_PORT" -i grpc --input-data "$W/in-$MM.json" \
    --concurrency-range "$c" --measurement-interval "$WINDOW" --stability-percentage 50 --max-trials 4 \
    -f "$W/pa-$MM-$c.csv" >"$W/pa-$MM-$c.log" 2>&1 \
    || { echo "perf_analyzer failed ($MM c=$c):" >&2; tail -20 "$W/pa-$MM-$c.log" >&2; exit 1; }
  s1=$(curl -s "http://$URL/v2/models/$MM/stats")
  per_eval=$("$PY" -c 'import json,sys; a,b=(json.loads(x)["model_stats"][0] for x in sys.argv[1:]); print("%.2f" % ((int(b["inference_count"])-int(a["inference_count"]))/max(1,int(b["execution_count"])-int(a["execution_count"]))))' "$s0" "$s1")
  echo "merged $MM $c $per_req $req_bytes $agree $W/pa-$MM-$c.csv $per_eval" >>"$W/rows"
done

# The same twin under `heinfer serve`, which merges by itself (server::merge), measured the
# same way (PERF_SERVE=0 skips it).
if [ "${PERF_SERVE:-1}" != 0 ]; then
  bash scripts/triton.sh stop >/dev/null 2>&1 || true
  "$HEINFER" serve "$REPO" --host 127.0.0.1 --http-port 0 --grpc-port 0 >"$W/serve.log" 2>&1 &
  SERVE_PID=$!
  trap 'kill $SERVE_PID 2>/dev/null || true; bash scripts/triton.sh stop >/dev/null 2>&1 || true' EXIT
  for _ in $(seq 1 240); do grep -q "ready http=" "$W/serve.log" && break; sleep 0.5; done
  SHTTP=$(grep -o 'ready http=[0-9.]*:[0-9]*' "$W/serve.log" | sed 's/.*://')
  SGRPC=$(grep -o 'grpc=[0-9.]*:[0-9]*' "$W/serve.log" | head -1 | sed 's/.*://')
  [ -n "$SHTTP" ] && [ -n "$SGRPC" ] || { echo "heinfer serve did not start:" >&2; tail -20 "$W/serve.log" >&2; exit 1; }
  SURL=127.0.0.1:$SHTTP
  read -r per_req req_bytes agree < <("$PY" bench/perf_prepare.py "$SURL" "$MM" merged "$W/in-serve-$MM.json" "models/$MODEL.onnx")
  for c in 1 2 4 8 32; do
    s0=$(curl -s "http://$SURL/v2/models/$MM/stats")
    PA -m "$MM" -u "127.0.0.1:$SGRPC" -i grpc --input-data "$W/in-serve-$MM.json" \
      --concurrency-range "$c" --measurement-interval "$WINDOW" --stability-percentage 50 --max-trials 4 \
      -f "$W/pa-serve-$MM-$c.csv" >"$W/pa-serve-$MM-$c.log" 2>&1 \
      || { echo "perf_analyzer failed (serve $MM c=$c):" >&2; tail -20 "$W/pa-serve-$MM-$c.log" >&2; exit 1; }
    s1=$(curl -s "http://$SURL/v2/models/$MM/stats")
    per_eval=$("$PY" -c 'import json,sys; a,b=(json.loads(x)["model_stats"][0] for x in sys.argv[1:]); print("%.2f" % ((int(b["inference_count"])-int(a["inference_count"]))/max(1,int(b["execution_count"])-int(a["execution_count"]))))' "$s0" "$s1")
    echo "serve-merged $MM $c $per_req $req_bytes $agree $W/pa-serve-$MM-$c.csv $per_eval" >>"$W/rows"
  done
fi

"$PY" - "$W/rows" "$MODEL" <<'PY'
import csv, json, sys
rows, model = open(sys.argv[1]).read().split("\n"), sys.argv[2]
out = {}
print(f"{'layout':12} {'instances':>9} {'conc':>4} {'req/s':>8} {'digits/s':>9} {'p50 ms':>8} {'p99 ms':>8}  per request")
for line in filter(None, rows):
    layout, m, c, per_req, req_bytes, agree, path, *merged = line.split()
    r = next(csv.DictReader(open(path)))
    rps = float(r["Inferences/Second"])
    p50, p99 = float(r["p50 latency"]) / 1e3, float(r["p99 latency"]) / 1e3
    inst = 2 if m.endswith("_x2") else 1
    print(f"{layout:12} {inst:>9} {c:>4} {rps:>8.1f} {rps * int(per_req):>9.1f} {p50:>8.1f} {p99:>8.1f}  "
          f"{per_req} digit(s), {int(req_bytes) / 1e3:.0f} KB, top-1 agreement {agree}"
          + (f", {merged[0]} requests per evaluation" if merged else ""))
    out[f"{layout}_x{inst}_c{c}"] = {"requests_per_s": rps, "digits_per_s": rps * int(per_req), "p50_ms": p50,
                                     "p99_ms": p99, "digits_per_request": int(per_req)}
    if merged:
        out[f"{layout}_x{inst}_c{c}"]["requests_per_evaluation"] = float(merged[0])
best = {k: max((v["digits_per_s"] for kk, v in out.items() if kk.startswith(k + "_x")), default=0.0)
        for k in ("L", "M", "merged", "serve-merged")}
print(json.dumps({"model": model, "rows": out, "best_digits_per_s": best,
                  "ratio_M_over_L": best["M"] / best["L"], "ratio_merged_over_L": best["merged"] / best["L"]}))
PY
