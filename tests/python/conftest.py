"""Shared fixtures: a compiled model repository, and the two servers that serve it —
real NVIDIA Triton with heinfer's backend (started by scripts/triton.sh) and
`heinfer serve` — so that one suite runs, unchanged, against both."""
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "models", "data")
# CryptoNets (reference model d) is the quick one for many encrypted samples; the digits
# CNN (reference model c) has the larger keys (tens of MB) and the heavier evaluation.
MODEL = "digits_cryptonets"
BIG_MODEL = "digits_cnn"
BATCH_TIMEOUT_S = 8
# The privacy options (test_privacy_serving.py), on the breast-cancer regression: circuit
# privacy at the largest λ its parameters allow at 1 % precision (λ = 40 is refused: see
# docs/privacy.md), and output DP with a per-key budget of two queries.
CP_MODEL, CP_LAMBDA = "breast_cancer_cp", 7
DP_MODEL, DP_EPS, DP_BUDGET = "breast_cancer_dp", 4.0, 8.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The cargo profile whose binaries the tests run: scripts/test.sh sets "dev", so pytest
# reuses the build `cargo test` just made (the arithmetic crates and all dependencies are
# optimised in dev too) instead of building everything a second time; "release" otherwise.
PROFILE = os.environ.get("HEINFER_PROFILE", "release")


def build_heinfer():
    """Builds the CLI at the tests' profile; returns its path."""
    subprocess.run(["cargo", "build", "-q", "--profile", PROFILE, "-p", "cli"], cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "debug" if PROFILE == "dev" else PROFILE, "heinfer")


@pytest.fixture(scope="session")
def heinfer_bin():
    return build_heinfer()


def compile_model(heinfer_bin, onnx, out, *extra):
    env = dict(os.environ, HEINFER_PYTHON=sys.executable)
    subprocess.run([heinfer_bin, "compile", os.path.join(ROOT, "models", onnx + ".onnx"),
                    "--calibration", os.path.join(DATA, "digits_train_img.npy"), "--no-onnxruntime",
                    "-o", str(out), "--json", *extra], env=env, capture_output=True, text=True, check=True)
    return os.path.join(str(out), onnx)


@pytest.fixture(scope="session")
def model_repo(heinfer_bin, tmp_path_factory):
    """A model repository as `heinfer compile` writes it, at the compiler's default
    settings: CryptoNets and the digits CNN, under different CKKS parameters."""
    repo = tmp_path_factory.mktemp("model_repository")
    compile_model(heinfer_bin, MODEL, repo)
    # Layout-T batches sent in parts wait at most BATCH_TIMEOUT_S for their last part
    # (test_layout_t.py abandons one).
    with open(os.path.join(str(repo), MODEL, "config.pbtxt"), "a") as f:
        f.write(f'parameters: {{ key: "heinfer_batch_timeout_s" value: {{ string_value: "{BATCH_TIMEOUT_S}" }} }}\n')
    compile_model(heinfer_bin, BIG_MODEL, repo)
    compile_privacy_models(heinfer_bin, repo)
    compile_split_models(heinfer_bin, repo)
    compile_client_aided_models(heinfer_bin, repo)
    return str(repo)


def compile_privacy_models(heinfer_bin, repo):
    env = dict(os.environ, HEINFER_PYTHON=sys.executable)
    common = [heinfer_bin, "compile", os.path.join(ROOT, "models", "breast_cancer_lr.onnx"), "--calibration",
              os.path.join(DATA, "breast_cancer_train_x.npy"), "--no-onnxruntime", "-o", str(repo), "--json"]
    for name, extra in [(CP_MODEL, ["--circuit-privacy", str(CP_LAMBDA)]),
                        (DP_MODEL, ["--output-dp", f"{DP_EPS},1e-5", "--dp-budget", str(DP_BUDGET)])]:
        subprocess.run(common + ["--name", name, *extra], env=env, capture_output=True, text=True, check=True)


# Split inference (test_split.py): the digits CNN cut after its first conv block (conv, batch
# norm, ReLU, average pool), the breast-cancer model after its scaler; served beside the others.
SPLIT_MODELS = {
    "cnn_split": ("digits_cnn", "pool1", "digits_train_img"),
    "bc_split": ("breast_cancer_lr", "Scaler", "breast_cancer_train_x"),
}


def compile_split_models(heinfer_bin, repo):
    env = dict(os.environ, HEINFER_PYTHON=sys.executable)
    for name, (onnx, at, cal) in SPLIT_MODELS.items():
        subprocess.run([heinfer_bin, "compile", os.path.join(ROOT, "models", onnx + ".onnx"), "--calibration",
                        os.path.join(DATA, cal + ".npy"), "--no-onnxruntime", "--split-at", at, "--name", name,
                        "-o", str(repo), "--json"], env=env, capture_output=True, text=True, check=True)


# Client-aided refresh (test_client_aided.py): the four-hidden-layer ReLU MLP cut at its
# activations into segments CA_MODEL__seg0 … __seg4, served beside the others.
CA_MODEL = "deep_ca"


def compile_client_aided_models(heinfer_bin, repo):
    env = dict(os.environ, HEINFER_PYTHON=sys.executable)
    subprocess.run([heinfer_bin, "compile", os.path.join(ROOT, "models", "digits_deep_mlp.onnx"), "--calibration",
                    os.path.join(DATA, "digits_train_img.npy"), "--no-onnxruntime", "--client-aided", "--layout", "L",
                    "--name", CA_MODEL, "-o", str(repo), "--json"], env=env, capture_output=True, text=True, check=True)


class Server:
    def __init__(self, kind, http_port, grpc_port, proc=None, stop=None, pid=None):
        self.kind = kind
        self.pid = pid if pid is not None else (proc.pid if proc is not None else None)
        self.http_url = f"127.0.0.1:{http_port}"
        self.grpc_url = f"127.0.0.1:{grpc_port}"
        self.model = MODEL
        self.big_model = BIG_MODEL
        self.proc = proc
        self._stop = stop

    def alive(self):
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/live", timeout=5) as r:
                return r.status == 200
        except Exception:
            return False

    def __repr__(self):
        return f"<{self.kind} http={self.http_url} grpc={self.grpc_url}>"


def start_triton(repo, run_dir):
    http, grpc, metrics = free_port(), free_port(), free_port()
    env = dict(os.environ, TRITON_HTTP_PORT=str(http), TRITON_GRPC_PORT=str(grpc),
               TRITON_METRICS_PORT=str(metrics), TRITON_RUN_DIR=str(run_dir))
    script = os.path.join(ROOT, "scripts", "triton.sh")
    subprocess.run(["bash", script, "setup"], env=env, check=True, capture_output=True)
    subprocess.run(["bash", script, "start", repo], env=env, check=True)
    pid = int(open(os.path.join(str(run_dir), "tritonserver.pid")).read())
    return Server("triton", http, grpc, stop=lambda: subprocess.run(["bash", script, "stop"], env=env, check=False),
                  pid=pid)


def start_heinfer(heinfer_bin, repo, log_path, extra=()):
    log = open(log_path, "w+")
    proc = subprocess.Popen([heinfer_bin, "serve", repo, "--host", "127.0.0.1", "--http-port", "0", "--grpc-port", "0",
                             *extra], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"heinfer serve exited with {proc.returncode}:\n{log.read()[-3000:]}")
        log.seek(0)
        m = re.search(r"ready.*http=[\w.]+:(\d+).*grpc=[\w.]+:(\d+)", log.read())
        if m:
            def stop():
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                log.close()
            return Server("heinfer", int(m.group(1)), int(m.group(2)), proc=proc, stop=stop)
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("heinfer serve did not report ready within 120 s")


SERVERS = [s for s in os.environ.get("HEINFER_TEST_SERVERS", "triton,heinfer").split(",") if s]


@pytest.fixture(scope="session", params=SERVERS)
def server(request, model_repo, heinfer_bin, tmp_path_factory):
    """The model repository served by real Triton, then by `heinfer serve`."""
    if request.param == "triton":
        s = start_triton(model_repo, tmp_path_factory.mktemp("triton"))
    else:
        s = start_heinfer(heinfer_bin, model_repo, tmp_path_factory.mktemp("serve") / "serve.log")
    yield s
    s._stop()
