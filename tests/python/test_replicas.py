"""Replicas on a shared key-store volume: keys registered with one server serve requests
on another that never saw them — the deployment behind a load balancer. Real Triton
(backend config `key-store-dir`) and `heinfer serve` (`--key-store-dir`)."""
import os
import re
import subprocess
import time

import numpy as np
import pytest
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

import heinfer

from conftest import DATA, MODEL, ROOT, free_port


def start_triton(repo, run_dir, key_dir):
    http, grpc, metrics = free_port(), free_port(), free_port()
    env = dict(os.environ, TRITON_HTTP_PORT=str(http), TRITON_GRPC_PORT=str(grpc), TRITON_METRICS_PORT=str(metrics),
               TRITON_RUN_DIR=str(run_dir), TRITON_ARGS=f"--backend-config=heinfer,key-store-dir={key_dir}")
    script = os.path.join(ROOT, "scripts", "triton.sh")
    subprocess.run(["bash", script, "setup"], env=env, check=True, capture_output=True)
    subprocess.run(["bash", script, "start", repo], env=env, check=True, capture_output=True)
    return f"127.0.0.1:{http}", lambda: subprocess.run(["bash", script, "stop"], env=env, capture_output=True)


def start_serve(heinfer_bin, repo, log_path, key_dir):
    log = open(log_path, "w+")
    p = subprocess.Popen([heinfer_bin, "serve", repo, "--http-port", "0", "--grpc-port", "0", "--key-store-dir",
                          str(key_dir)], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        log.seek(0)
        m = re.search(r"ready.*http=([\w.]+:\d+)", log.read())
        if m:
            return m.group(1), lambda: (p.terminate(), p.wait(30))
        assert p.poll() is None, "heinfer serve exited"
        time.sleep(0.2)
    raise RuntimeError("heinfer serve not ready")


@pytest.mark.parametrize("kind", ["triton", "heinfer"])
def test_replicas_share_registered_keys(kind, model_repo, heinfer_bin, tmp_path):
    key_dir = tmp_path / "keys"
    key_dir.mkdir()
    if kind == "triton":
        a, stop_a = start_triton(model_repo, tmp_path / "a", key_dir)
        b, stop_b = start_triton(model_repo, tmp_path / "b", key_dir)
    else:
        a, stop_a = start_serve(heinfer_bin, model_repo, tmp_path / "a.log", key_dir)
        b, stop_b = start_serve(heinfer_bin, model_repo, tmp_path / "b.log", key_dir)
    try:
        x = np.load(os.path.join(DATA, "digits_test_img.npy"))
        ca, cb = (th.InferenceServerClient(u, network_timeout=600) for u in (a, b))
        c = heinfer.Client.from_server(ca, MODEL)
        # B has never seen the key: a clear error, nothing else.
        with pytest.raises(InferenceServerException, match="unknown key id"):
            cb.infer(MODEL, c.infer_inputs(x[0], protocol="http"), outputs=c.infer_outputs("http"))
        # Register on A (the bundle is persisted, content-addressed) ...
        ya = c.decrypt(ca.infer(MODEL, c.infer_inputs(x[0], protocol="http", send_keys=True),
                                outputs=c.infer_outputs("http")).as_numpy("ENCRYPTED_OUTPUT"))
        assert (key_dir / f"{c.key_id}.hek").exists()
        # ... and B serves the key id alone.
        yb = c.decrypt(cb.infer(MODEL, c.infer_inputs(x[0], protocol="http"),
                                outputs=c.infer_outputs("http")).as_numpy("ENCRYPTED_OUTPUT"))
        assert np.argmax(ya) == np.argmax(yb)
        assert np.max(np.abs(ya - yb)) < 0.5
    finally:
        stop_a()
        stop_b()
