#!/usr/bin/env bash
# Evaluation-key upload and encrypted latency per reference model, before and after:
# "before" is BEFORE_BIN (default: the main checkout's release binary), "after" this
# tree's. Each binary compiles the model itself, then `heinfer bench` generates the
# client's keys, registers them and times SAMPLES encrypted evaluations.
#
#   cargo build --release -p cli && bash bench/keysize.sh
#   SAMPLES=10 MODELS="digits_cnn digits_mlp" bash bench/keysize.sh
#   BEFORE_BIN=target/release/heinfer AFTER_ARGS="--galois-radix 4" bash bench/keysize.sh
#
# BEFORE_ARGS / AFTER_ARGS are extra `heinfer compile` arguments for each side (one binary,
# two choices: a compile option's keys against its latency, in one run).
#
# Prints one Markdown table (MB = 10^6 bytes; evaluate = median ms over the samples; top-1 =
# the compiled model's agreement with onnxruntime on the test split, from its report).
set -euo pipefail
cd "$(dirname "$0")/.."
AFTER=${AFTER_BIN:-target/release/heinfer}
BEFORE=${BEFORE_BIN:-/work/main/target/release/heinfer}
SAMPLES=${SAMPLES:-5}
read -r -a BEFORE_EXTRA <<<"${BEFORE_ARGS:-}"
read -r -a AFTER_EXTRA <<<"${AFTER_ARGS:-}"
MODELS=${MODELS:-"digits_mlp digits_gelu_mlp digits_cryptonets tenseal_mnist digits_cnn digits_rescnn"}
PY=${PY:-.venv/bin/python}
export HEINFER_PYTHON=${HEINFER_PYTHON:-$PWD/$PY}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" models/make_tenseal_mnist.py --data "$work/mnist28" >/dev/null

data_for() {
  case "$1" in
    tenseal_mnist) echo "$work/mnist28/mnist28_train_img.npy $work/mnist28/mnist28_test_img.npy" ;;
    *) echo "models/data/digits_train_img.npy models/data/digits_test_img.npy" ;;
  esac
}

echo "| model | N | keys | upload before MB | upload after MB | key store before MB | key store after MB | evaluate before ms | evaluate after ms | top-1 before | top-1 after |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for m in $MODELS; do
  read -r cal test < <(data_for "$m")
  row=("$m")
  for side in before after; do
    bin=$BEFORE; extra=("${BEFORE_EXTRA[@]}")
    [ "$side" = after ] && { bin=$AFTER; extra=("${AFTER_EXTRA[@]}"); }
    "$bin" compile "models/$m.onnx" --calibration "$cal" --data "$test" -o "$work/$side" "${extra[@]}" --json >"$work/$m.$side.report.json" 2>/dev/null
    "$bin" bench "$work/$side/$m" --input "$test" --samples "$SAMPLES" --json >"$work/$m.$side.json"
  done
  "$PY" - "$work/$m.before.json" "$work/$m.after.json" "$work/$m.before.report.json" "$work/$m.after.report.json" <<'PY'
import json, sys
b, a = (json.load(open(p)) for p in sys.argv[1:3])
rb, ra = (json.load(open(p)) for p in sys.argv[3:5])
top1 = lambda r: f"{100 * r['accuracy']['top1_agreement']:.2f} %" if r.get("accuracy") else "?"
mb = lambda x: f"{x / 1e6:.2f}"
p = a["params"]
keys = p["galois_keys"] + int(p["relinearization"])
print(f"| {a['model']} | 2^{p['log_n']} | {keys} | {mb(b['bytes']['evaluation_keys'])} | {mb(a['bytes']['evaluation_keys'])} "
      f"| {mb(b['memory_bytes']['key_store'])} | {mb(a['memory_bytes']['key_store'])} "
      f"| {b['ms']['evaluate']['median']:.0f} | {a['ms']['evaluate']['median']:.0f} | {top1(rb)} | {top1(ra)} |")
PY
done
