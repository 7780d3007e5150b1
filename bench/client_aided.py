"""Client-aided refresh, measured (docs/hybrid.md): the four-hidden-layer ReLU MLP compiled
with --client-aided, served by `heinfer serve`, all 360 load_digits test samples through
heinfer.ClientAided over HTTP; top-1 agreement with onnxruntime, latency per sample and
bytes per round trip.

    cargo build --release -p cli && .venv/bin/python bench/client_aided.py [MODEL]

MODEL: an ONNX model of models/ taking digits (default digits_deep_mlp; digits_cnn for
issue #21's table), or a path to an .onnx file.
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
import tritonclient.http as th

import heinfer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
from conftest import DATA, start_heinfer  # noqa: E402

BIN = os.path.join(ROOT, "target", "release", "heinfer")


def main():
    repo = tempfile.mkdtemp(prefix="heinfer-ca-")
    model = sys.argv[1] if len(sys.argv) > 1 else "digits_deep_mlp"
    onnx = model if model.endswith(".onnx") else os.path.join(ROOT, "models", model + ".onnx")
    subprocess.run([BIN, "compile", onnx, "--calibration", os.path.join(DATA, "digits_train_img.npy"),
                    "--no-onnxruntime", "--client-aided", "--layout", "L", "--name", "deep", "-o", repo],
                   check=True, capture_output=True)
    server = start_heinfer(BIN, repo, os.path.join(repo, "serve.log"))
    try:
        cli = th.InferenceServerClient(server.http_url)
        ca = heinfer.ClientAided.from_server(cli, "deep")
        x = np.load(os.path.join(DATA, "digits_test_img.npy")).astype(np.float32).reshape(-1, 1, 8, 8)
        ref = ort.InferenceSession(onnx)
        want = ref.run(None, {ref.get_inputs()[0].name: x})[0].argmax(-1)
        ca.infer(cli, x[0])  # registers each segment's keys
        got, times = [], []
        for xi in x:
            t = time.perf_counter()
            got.append(int(np.argmax(ca.infer(cli, xi))))
            times.append(time.perf_counter() - t)
        trips = ca.last_round_trips
        print(f"segments {ca.segments}")
        print(f"agreement with onnxruntime: {np.mean(np.array(got) == want):.4f} on {len(x)} samples")
        print(f"latency per sample ({len(trips)} round trips, client work included): median {1e3 * np.median(times):.1f} ms")
        for t in trips:
            print(f"  round trip {t['segment']}: {t['query_bytes']} B sent, {t['answer_bytes']} B received")
        print(f"keys: {sum(len(c.evaluation_keys) for c in ca.clients)} B over {len(ca.clients)} bundles")
    finally:
        server._stop()


if __name__ == "__main__":
    main()
