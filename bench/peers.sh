#!/usr/bin/env bash
# heinfer beside its peers, single-threaded, on this machine, in one run.
#
#   bench/peers.sh ckks    CKKS operations against TenSEAL and OpenFHE (PyPI), same N, moduli and scale
#   bench/peers.sh bgv     BGV operations against OpenFHE's BGVrns and SEAL's BFV (TenSEAL), same N, moduli, t = 65537
#   bench/peers.sh mnist   TenSEAL's encrypted-MNIST tutorial network end to end, heinfer against TenSEAL (2 threads)
#   bench/peers.sh cryptonets  CryptoNets' network in throughput layout T (one image per slot, 4,096 per batch)
#                            against TenSEAL's batched CKKSTensor, 2 threads; images/s and agreement
#   bench/peers.sh cryptonets-bgv  the same network exactly as CryptoNets ran it: 8-bit integer weights and inputs, x²,
#                            no rescaling (BGV, values near 2^100 through residues: several t, CRT), a batch of
#                            CN_BGV_BATCH (default 4096) images, 2 threads; exactness, agreement, images/s
#   bench/peers.sh secagg  secure aggregation, 100 clients x 2^16 values (committee 5, t = 3; one member and
#                          10 % of the clients drop out): heinfer against Flower's SecAgg+ workflow; then
#                          Flower runs at epsilon 1/4/8 with heinfer's distributed DP beside Flower's DP wrapper
#   bench/peers.sh concrete  breast-cancer logistic regression (heinfer's seeded LWE) and the digits MLP (heinfer's
#                            CKKS with compact queries) against Concrete ML (TFHE, PyPI concrete-ml 1.9.0 into
#                            bench/.venv-concrete; it pulls PyTorch, GBs — never in CI)
#   bench/peers.sh paillier  breast-cancer logistic regression: heinfer's Paillier against python-paillier (phe),
#                            3072-bit keys, and heinfer's CKKS on the same model, single-threaded
#
# The peers are installed on first use, from PyPI, into git-ignored venvs:
#   bench/.venv-openfhe  (openfhe + numpy; the wheel is a CPython 3.10 module)
#   bench/.venv-tenseal  (tenseal + numpy; CPython 3.11)
#   bench/.venv-phe      (phe + gmpy2 + numpy; CPython 3.11 — phe is much faster with gmpy2)
# Override the interpreters with PYTHON310=/path/python3.10, PYTHON311=/path/python3.11.
# A peer that cannot be installed or fails is reported and left out (its ratios read n/a).
# PEERS_MIN_SECONDS (default 2.0) and PEERS_MIN_REPS (default 30) set the peers' timing loops;
# PEERS_ROUNDS (default 2) how many times the libraries take turns (ckks: fastest median kept).
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

# compare SCHEME CRATE EXAMPLE OPENFHE_SCRIPT TENSEAL_SCRIPT — heinfer's CRATE/examples/EXAMPLE beside
# the two peers, single-threaded, the libraries taking turns; one table and a JSON line of ratios.
compare() {
  local scheme=$1 crate=$2 example=$3 openfhe_script=$4 tenseal_script=$5
  export OMP_NUM_THREADS=1 RAYON_NUM_THREADS=1
  echo "peers.sh: building heinfer's $example example (release) ..." >&2
  if ! cargo build --release -q -p "$crate" --example "$example" >&2; then
    echo "peers.sh: heinfer's example crates/$crate/examples/$example.rs failed to build — nothing to compare" >&2
    exit 1
  fi
  local py310 py311 have_openfhe=0 have_tenseal=0 round files=()
  py310=$(find_python 3.10 "${PYTHON310:-}" python3.10 /root/.pyenv/versions/3.10.*/bin/python)
  peer_venv "$here/.venv-openfhe" "$py310" openfhe openfhe numpy && have_openfhe=1
  py311=$(find_python 3.11 "${PYTHON311:-}" python3.11 /root/.pyenv/versions/3.11.*/bin/python)
  peer_venv "$here/.venv-tenseal" "$py311" tenseal tenseal numpy && have_tenseal=1
  # The libraries take turns, PEERS_ROUNDS times: on a shared machine the load changes over
  # minutes, and one run each, one after the other, gave ratios that mixed two load levels.
  # The report keeps each library's fastest median per operation over the rounds.
  for round in $(seq "${PEERS_ROUNDS:-2}"); do
    echo "peers.sh: round $round: timing heinfer ..." >&2
    if ! "target/release/examples/$example" --json > "$out/heinfer.$round.json"; then
      echo "peers.sh: heinfer's $example example failed — nothing to compare" >&2
      exit 1
    fi
    files+=("$out/heinfer.$round.json")
    if [ $have_openfhe = 1 ]; then
      run_peer openfhe .venv-openfhe "$openfhe_script" && mv "$out/openfhe.json" "$out/openfhe.$round.json" 2>/dev/null || true
      files+=("$out/openfhe.$round.json")
    fi
    if [ $have_tenseal = 1 ]; then
      run_peer tenseal .venv-tenseal "$tenseal_script" && mv "$out/tenseal.json" "$out/tenseal.$round.json" 2>/dev/null || true
      files+=("$out/tenseal.$round.json")
    fi
  done

  python3 "$here/peers/report.py" "${files[@]}"
  echo "peers.sh: done in $((SECONDS - started)) s ($scheme)" >&2
}

ckks() { compare ckks ckks peer_ops openfhe_ckks.py tenseal_ckks.py; }
bgv() { compare bgv bgv bgv_peer_ops openfhe_bgv.py tenseal_bfv.py; }

# mnist: TenSEAL's encrypted-MNIST tutorial network (models/tenseal_mnist.onnx, random weights
# from models/make_tenseal_mnist.py) compiled by heinfer twice — at its default (noise-aware)
# settings and at TenSEAL's scale 2^26 — and run by TenSEAL with its tutorial parameters, on
# scikit-learn digits upsampled to 28x28. heinfer: `heinfer bench` for the timings and sizes,
# keygen/encrypt/evaluate/decrypt for the outputs checked against the plaintext network.
# MNIST_SAMPLES (default 10) images timed and checked per heinfer configuration,
# MNIST_TS_SAMPLES (default 3) for TenSEAL; 2 threads each (MNIST_THREADS).
mnist() {
  local threads=${MNIST_THREADS:-2} n=${MNIST_SAMPLES:-10}
  export RAYON_NUM_THREADS=$threads MNIST_THREADS=$threads
  echo "peers.sh: building heinfer (release) ..." >&2
  cargo build --release -q -p cli >&2
  local heinfer=target/release/heinfer py=.venv/bin/python
  [ -x "$py" ] || py=python3
  mkdir -p "$out/data"
  "$py" models/make_tenseal_mnist.py --data "$out/data" >&2
  local cfg extra dir
  for cfg in default scale26; do
    extra=""; [ $cfg = scale26 ] && extra="--scale-bits 26"
    echo "peers.sh: heinfer compile ($cfg) ..." >&2
    # shellcheck disable=SC2086
    HEINFER_PYTHON=${HEINFER_PYTHON:-$py} "$heinfer" compile models/tenseal_mnist.onnx \
      --calibration "$out/data/mnist28_train_img.npy" --data "$out/data/mnist28_test_img.npy" \
      -o "$out/repo_$cfg" --json $extra > "$out/heinfer_${cfg}_compile.json"
    dir="$out/repo_$cfg/tenseal_mnist"
    echo "peers.sh: heinfer bench ($cfg, $n images) ..." >&2
    "$heinfer" bench "$dir" --input "$out/data/mnist28_test_img.npy" --samples "$n" --json > "$out/heinfer_${cfg}_bench.json"
    echo "peers.sh: heinfer keygen/encrypt/evaluate/decrypt ($cfg) ..." >&2
    "$heinfer" keygen "$dir" --secret-key "$out/sk_$cfg.bin" --keys-out "$out/keys_$cfg.hek" > /dev/null 2>&1
    "$heinfer" encrypt "$dir" --secret-key "$out/sk_$cfg.bin" --input "$out/data/mnist28_test_img.npy" \
      --samples "$n" -o "$out/q_$cfg" > /dev/null
    "$heinfer" evaluate "$dir" --keys "$out/keys_$cfg.hek" "$out/q_$cfg"/*.hect -o "$out/r_$cfg" > /dev/null
    "$heinfer" decrypt "$dir" --secret-key "$out/sk_$cfg.bin" "$out/r_$cfg"/*.hect --json > "$out/heinfer_${cfg}_decrypt.jsonl"
  done
  local py311
  py311=$(find_python 3.11 "${PYTHON311:-}" python3.11 /root/.pyenv/versions/3.11.*/bin/python)
  if peer_venv "$here/.venv-tenseal" "$py311" tenseal tenseal numpy; then
    export MNIST_DATA="$out/data"
    run_peer tenseal .venv-tenseal tenseal_mnist.py
  fi
  "$py" "$here/peers/mnist_report.py" "$out"
  echo "peers.sh: done in $((SECONDS - started)) s" >&2
}

# paillier: scikit-learn's LogisticRegression on load_breast_cancer (StandardScaler folded into
# the weights), per test sample: encrypt the 30 features, evaluate the score, decrypt it, and
# the request/answer bytes — heinfer's Paillier (crates/paillier/examples/peers_paillier.rs)
# and phe at 3072 bits, then heinfer's CKKS on the same model as one Gemm (heinfer compile +
# bench). Decrypted scores are checked against sklearn's decision_function.
# PAILLIER_TIMED (default 20) samples are timed per library (heinfer decrypts all 114 for the
# check); PAILLIER_CKKS=0 skips the CKKS column (it builds the whole CLI); PAILLIER_KEY=FILE
# (hex of SecretKey::to_bytes) skips heinfer's safe-prime key generation (10-60 s; made once
# per run otherwise). PEERS_ROUNDS (default 2): how many times the two take turns.
paillier() {
  export OMP_NUM_THREADS=1 RAYON_NUM_THREADS=1
  local timed=${PAILLIER_TIMED:-20} py=${HEINFER_PYTHON:-.venv/bin/python} py311
  [ -x "$py" ] || py=python3
  echo "peers.sh: building heinfer's peers_paillier example (release) ..." >&2
  cargo build --release -q -p paillier --example peers_paillier >&2
  "$py" "$here/peers/paillier_prep.py" "$out" "$timed" >&2
  py311=$(find_python 3.11 "${PYTHON311:-}" python3.11 /root/.pyenv/versions/3.11.*/bin/python)
  local have_phe=0 round key=${PAILLIER_KEY:-}
  if peer_venv "$here/.venv-phe" "$py311" phe phe gmpy2 numpy; then
    have_phe=1
    if ! "$here/.venv-phe/bin/python" -c "import gmpy2" 2>/dev/null; then
      echo "peers.sh: gmpy2 is not importable in $here/.venv-phe — phe runs on pure Python (slower)" >&2
    fi
  fi
  # The two take turns PEERS_ROUNDS times (the load of a shared machine drifts over minutes);
  # the report keeps each one's fastest median per step.
  for round in $(seq "${PEERS_ROUNDS:-2}"); do
    echo "peers.sh: round $round: timing heinfer paillier ..." >&2
    PAILLIER_KEY=$key PAILLIER_KEY_OUT="$out/paillier_key.hex" \
      target/release/examples/peers_paillier "$out/model.json" > "$out/heinfer_paillier.$round.json"
    key="$out/paillier_key.hex"
    if [ $have_phe = 1 ]; then
      echo "peers.sh: round $round: timing phe ($timed samples; its encryption is slow) ..." >&2
      "$here/.venv-phe/bin/python" "$here/peers/phe_paillier.py" "$out/model.json" > "$out/phe.$round.json" \
        || { echo "peers.sh: the phe run failed — its column is left empty" >&2; rm -f "$out/phe.$round.json"; }
    fi
  done
  if [ "${PAILLIER_CKKS:-1}" != 0 ]; then
    echo "peers.sh: building heinfer (release) for the CKKS column ..." >&2
    if cargo build --release -q -p cli >&2; then
      local heinfer=target/release/heinfer dir="$out/repo/lr_linear"
      HEINFER_PYTHON=$py "$heinfer" compile "$out/lr_linear.onnx" --calibration "$out/train_x.npy" \
        --data "$out/test_x.npy" -o "$out/repo" --json > "$out/ckks_compile.json"
      "$heinfer" bench "$dir" --input "$out/test_x.npy" --samples "$timed" --json > "$out/ckks_bench.json"
      "$heinfer" keygen "$dir" --secret-key "$out/ckks_sk.bin" --keys-out "$out/ckks_keys.hek" > /dev/null 2>&1
      "$heinfer" encrypt "$dir" --secret-key "$out/ckks_sk.bin" --input "$out/test_x.npy" --samples "$timed" -o "$out/ckks_q" > /dev/null
      "$heinfer" evaluate "$dir" --keys "$out/ckks_keys.hek" "$out/ckks_q"/*.hect -o "$out/ckks_r" > /dev/null
      "$heinfer" decrypt "$dir" --secret-key "$out/ckks_sk.bin" "$out/ckks_r"/*.hect --json > "$out/ckks_decrypt.jsonl"
    else
      echo "peers.sh: heinfer's CLI failed to build — the CKKS column is left empty" >&2
    fi
  fi
  "$py" "$here/peers/paillier_report.py" "$out"
  echo "peers.sh: done in $((SECONDS - started)) s" >&2
}

# concrete: two models, each as heinfer and as Concrete ML trained the same way, per sample: FHE time
# (encrypt + evaluate + decrypt, and evaluate alone), evaluation-key, query and answer bytes, top-1
# agreement with the clear model; one Markdown table and one JSON line (bench/peers/concrete_report.py).
#  - the breast-cancer logistic regression (bench/peers/lwe_prep.py: the tests' split): heinfer's seeded
#    LWE (compile --scheme lwe, run, and the CLI's encrypt/evaluate/decrypt for the agreement) beside
#    Concrete ML's LogisticRegression (bench/peers/concrete_lr.py), CONCRETE_TIMED samples (default 50);
#  - the digits MLP (models/digits_mlp.onnx, 64 -> 32 ReLU -> 10; bench/peers/digits_prep.py checks
#    make_models.py's split): heinfer's CKKS compiled with --query compact, `heinfer run` on
#    CONCRETE_MLP_HEINFER samples (default 100) with the onnxruntime top-1 as labels, beside Concrete
#    ML's NeuralNetClassifier of the same shape (bench/peers/concrete_mlp.py; CONCRETE_MLP_BITS, default
#    4, CONCRETE_MLP_EPOCHS, default 60) on CONCRETE_MLP_TIMED samples (default 10; seconds each).
# If Concrete ML cannot be installed or a run fails, its rows hold the figures issue 22 quotes (said so).
concrete() {
  export OMP_NUM_THREADS=1 RAYON_NUM_THREADS=1
  local timed=${CONCRETE_TIMED:-50} mlp_timed=${CONCRETE_MLP_TIMED:-10} mlp_n=${CONCRETE_MLP_HEINFER:-100}
  local py=${HEINFER_PYTHON:-.venv/bin/python} py311 have_mlp=0
  [ -x "$py" ] || py=python3
  "$py" "$here/peers/lwe_prep.py" "$out"
  "$py" "$here/peers/digits_prep.py" "$out" >&2 && have_mlp=1 \
    || echo "peers.sh: the digits split could not be prepared — the MLP rows are left out" >&2
  cargo build --release -q -p cli >&2
  local heinfer=target/release/heinfer dir="$out/repo/lr_lwe"
  echo "peers.sh: heinfer: breast-cancer LR, seeded LWE ($timed samples) ..." >&2
  HEINFER_PYTHON=$py "$heinfer" compile "$out/lr.onnx" --calibration "$out/train_x.npy" --data "$out/test_x.npy" \
    --name lr_lwe --scheme lwe -o "$out/repo" --json > "$out/compile.json"
  "$heinfer" keygen "$dir" --secret-key "$out/lwe.sk" --keys-out "$out/lwe.keys" > /dev/null 2>&1
  "$heinfer" run "$dir" --input "$out/test_x.npy" --samples "$timed" --secret-key "$out/lwe.sk" --json > "$out/heinfer_run.json"
  "$heinfer" encrypt "$dir" --secret-key "$out/lwe.sk" --input "$out/test_x.npy" --samples "$timed" -o "$out/q" > /dev/null
  "$heinfer" evaluate "$dir" --keys "$out/lwe.keys" "$out/q"/*.hect -o "$out/r" > /dev/null
  "$heinfer" decrypt "$dir" --secret-key "$out/lwe.sk" "$out/r"/*.hect --json > "$out/heinfer_decrypt.jsonl"
  if [ $have_mlp = 1 ]; then
    echo "peers.sh: heinfer: digits MLP, CKKS with compact queries ($mlp_n samples) ..." >&2
    if ! { HEINFER_PYTHON=$py "$heinfer" compile models/digits_mlp.onnx --calibration models/data/digits_train_img.npy \
             --data models/data/digits_test_img.npy --name mlp_compact -o "$out/repo" --query compact --json \
             > "$out/mlp_compile.json" \
           && "$heinfer" run "$out/repo/mlp_compact" --input models/data/digits_test_img.npy --samples "$mlp_n" \
             --labels "$out/mlp_clear_pred.npy" --json > "$out/heinfer_mlp_run.json"; }; then
      echo "peers.sh: heinfer's digits MLP run failed — its row is left out" >&2
      rm -f "$out/heinfer_mlp_run.json"
    fi
  fi
  py311=$(find_python 3.11 "${PYTHON311:-}" python3.11 /root/.pyenv/versions/3.11.*/bin/python)
  echo "peers.sh: Concrete ML pulls PyTorch (GBs) into $here/.venv-concrete on first use" >&2
  if peer_venv "$here/.venv-concrete" "$py311" concrete.ml concrete-ml==1.9.0; then
    echo "peers.sh: timing Concrete ML: breast-cancer LR ($timed samples) ..." >&2
    "$here/.venv-concrete/bin/python" "$here/peers/concrete_lr.py" "$out" "$timed" > "$out/concrete.json" \
      || { echo "peers.sh: the Concrete ML LR run failed — its row holds issue 22's quoted figures" >&2; rm -f "$out/concrete.json"; }
    if [ $have_mlp = 1 ]; then
      echo "peers.sh: timing Concrete ML: digits MLP ($mlp_timed samples, seconds each) ..." >&2
      "$here/.venv-concrete/bin/python" "$here/peers/concrete_mlp.py" "$out" "$mlp_timed" > "$out/concrete_mlp.json" \
        || { echo "peers.sh: the Concrete ML MLP run failed — its row holds issue 22's quoted figures" >&2; rm -f "$out/concrete_mlp.json"; }
    fi
  fi
  "$py" "$here/peers/concrete_report.py" "$out"
  echo "peers.sh: done in $((SECONDS - started)) s" >&2
}

# cryptonets: CryptoNets' network (Conv 5x5 s2 x5 -> x^2 -> Dense 845->100 -> x^2 -> Dense 100->10) on
# scikit-learn digits upsampled to 28x28 (bench/peers/cryptonets_prep.py: random conv and hidden
# weights, fixed seed, a fitted readout), CN_BATCH (default 4096 = N/2) images in one batch.
# heinfer: crates/ckks/examples/cryptonets_t.rs (layout T, ckks::throughput), CN_ROUNDS (default 2)
# timed runs, the fastest kept. TenSEAL: bench/peers/tenseal_cryptonets.py (CN_TS_POSITIONS of the 169
# conv positions run on the whole batch, scaled by product counts). 2 threads each (CN_THREADS).
# heinfer runs with transparent huge pages off for its process (bench/peers/no_thp.py): with THP
# "always" on this box, faulting in the batch's 2.5 GB cost 17 s of kernel time in compaction.
cryptonets() {
  local threads=${CN_THREADS:-2} batch=${CN_BATCH:-4096} py=.venv/bin/python py311
  [ -x "$py" ] || py=python3
  export RAYON_NUM_THREADS=$threads CN_TS_THREADS=$threads CN_DIR="$out/cn"
  echo "peers.sh: building heinfer's cryptonets_t example (release) ..." >&2
  cargo build --release -q -p ckks --example cryptonets_t >&2
  "$py" "$here/peers/cryptonets_prep.py" "$out/cn" "$batch" >&2
  echo "peers.sh: timing heinfer (layout T, $batch images, ${CN_ROUNDS:-2} rounds) ..." >&2
  python3 "$here/peers/no_thp.py" target/release/examples/cryptonets_t "$out/cn" "${CN_ROUNDS:-2}" > "$out/heinfer.json"
  py311=$(find_python 3.11 "${PYTHON311:-}" python3.11 /root/.pyenv/versions/3.11.*/bin/python)
  if peer_venv "$here/.venv-tenseal" "$py311" tenseal tenseal numpy; then
    run_peer tenseal .venv-tenseal tenseal_cryptonets.py
  fi
  python3 "$here/peers/cryptonets_report.py" "$out"
  echo "peers.sh: done in $((SECONDS - started)) s" >&2
}

# cryptonets-bgv: CryptoNets' network (cryptonets_prep.py's weights, exported as ONNX) compiled with
# `--scheme bgv --quantize 8` — integer weights and inputs, x², no requantization, as the paper ran
# it; the values pass any one t, so the compiler plans residues — and `heinfer run` on one batch:
# every output checked equal to the integer computation, top-1 agreement with the float network.
cryptonets_bgv() {
  local threads=${CN_THREADS:-2} batch=${CN_BGV_BATCH:-4096} py=.venv/bin/python
  [ -x "$py" ] || py=python3
  export RAYON_NUM_THREADS=$threads
  cargo build --release -q -p cli >&2
  "$py" "$here/peers/cryptonets_prep.py" "$out/cn" "$batch" >&2
  HEINFER_PYTHON=$py target/release/heinfer compile "$out/cn/cryptonets.onnx" --calibration "$out/cn/train_x.npy" \
    --data "$out/cn/x.npy" --name cryptonets_bgv --scheme bgv --quantize 8 -o "$out/repo" --json > "$out/compile.json"
  "$py" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["report"], file=sys.stderr)' "$out/compile.json"
  echo "peers.sh: heinfer run: one batch of $batch images, $threads threads ..." >&2
  target/release/heinfer run "$out/repo/cryptonets_bgv" --input "$out/cn/x.npy" --labels "$out/cn/plain_pred.npy" \
    --samples "$batch" --json
  echo "peers.sh: done in $((SECONDS - started)) s" >&2
}

# secagg: heinfer's threshold-CKKS aggregation (heinfer serve --aggregate-dir) against Flower's
# SecAggPlusWorkflow in its Ray simulation engine, the same integer vectors and dropouts
# (bench/peers/secagg.py; SECAGG_CLIENTS, SECAGG_LENGTH override 100 and 2^16), then the DP runs
# (bench/peers/secagg_dp.py, SECAGG_DP_ROUNDS default 5). Both peers run from the project's .venv
# (flwr is in requirements-test.txt; bash scripts/setup-python.sh installs it with the heinfer SDK).
secagg() {
  local py=.venv/bin/python
  echo "peers.sh: building heinfer (release) ..." >&2
  cargo build --release -q -p cli >&2
  bash scripts/setup-python.sh >&2
  "$py" "$here/peers/secagg.py" "$out" target/release/heinfer heinfer >&2 || echo "peers.sh: heinfer's run failed" >&2
  "$py" "$here/peers/secagg.py" "$out" target/release/heinfer flower >&2 || echo "peers.sh: Flower's SecAgg+ run failed" >&2
  "$py" "$here/peers/secagg_dp.py" "$out" target/release/heinfer >&2 || echo "peers.sh: the DP runs failed" >&2
  "$py" "$here/peers/secagg_report.py" "$out"
  echo "peers.sh: done in $((SECONDS - started)) s" >&2
}

case "${1:-}" in
  ckks) ckks ;;
  bgv) bgv ;;
  mnist) mnist ;;
  paillier) paillier ;;
  concrete) concrete ;;
  cryptonets) cryptonets ;;
  cryptonets-bgv) cryptonets_bgv ;;
  secagg) secagg ;;
  *)
    echo "usage: bench/peers.sh SUBCOMMAND" >&2
    echo "  ckks    heinfer's CKKS operations against OpenFHE and TenSEAL (PyPI), single-threaded" >&2
    echo "  bgv     heinfer's BGV against OpenFHE's BGVrns and SEAL's BFV in TenSEAL (PyPI), single-threaded, t = 65537" >&2
    echo "  mnist   TenSEAL's encrypted-MNIST network: heinfer against TenSEAL, 2 threads, one table" >&2
    echo "  paillier  breast-cancer logistic regression: heinfer's Paillier against phe (3072 bits), and heinfer's CKKS" >&2
    echo "  concrete  breast-cancer LR (heinfer's seeded LWE) and digits MLP (CKKS, compact queries) against Concrete ML (PyPI; pulls PyTorch)" >&2
    echo "  cryptonets  CryptoNets' network in layout T (4,096 images per batch) against TenSEAL's batched CKKSTensor, 2 threads" >&2
    echo "  cryptonets-bgv  the same network as CryptoNets ran it (8-bit integers, BGV, residues), exact, 2 threads" >&2
    echo "  secagg  secure aggregation (100 clients x 2^16, committee 5, t = 3, dropouts) against Flower's SecAgg+; DP in Flower" >&2
    exit 2
    ;;
esac
