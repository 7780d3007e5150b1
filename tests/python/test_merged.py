"""Merged requests (issue #17 item 5) through real Triton and `heinfer serve`: `heinfer compile --merged` writes
a model's merged twin (`<model>_merged`: `max_batch_size` B, Triton's dynamic batcher), each
request one digit in its own layout-M block (`BLOCK`), under one key id. Triton's dynamic
batcher hands the backend several requests at once; heinfer's batching strategy
(`TRITONBACKEND_ModelBatch*`, loaded from `batchstrategy.so` beside the backend) lets only
requests of one key id on distinct blocks into a batch; the backend adds their ciphertexts
and runs the network once. `heinfer serve` does the same itself (`server::merge`: a group per
key id, open for the same 2 ms window once it has an instance).

Shown here with the official tritonclient over HTTP and gRPC, on CryptoNets' digits network:
every answer agrees with onnxruntime; Triton's own statistics count fewer executions than
requests; two clients' requests in flight together are each answered under their own key;
bad input (a block outside 0..B, two samples in one request, a layout-L key id) is a clear
error for that request, and the server and the requests beside it live on."""
import json
import os
import threading
import urllib.request

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

import heinfer

from conftest import DATA, MODEL, ROOT, compile_model, start_heinfer, start_triton

TWIN = MODEL + heinfer.MERGED_SUFFIX


@pytest.fixture(scope="module")
def merged_repo(heinfer_bin, tmp_path_factory):
    repo = tmp_path_factory.mktemp("merged_repository")
    compile_model(heinfer_bin, MODEL, repo, "--merged")
    assert os.path.exists(os.path.join(str(repo), TWIN, "1", "model.hem"))
    return str(repo)


@pytest.fixture(scope="module", params=["triton", "heinfer"])
def merged_server(request, merged_repo, heinfer_bin, tmp_path_factory):
    if request.param == "triton":
        run = tmp_path_factory.mktemp("triton_merged")
        s = start_triton(merged_repo, run)
        s.log = os.path.join(str(run), "tritonserver.log")
    else:
        s = start_heinfer(heinfer_bin, merged_repo, tmp_path_factory.mktemp("serve_merged") / "serve.log")
        s.log = None
    yield s
    s._stop()


def digits():
    x = np.load(os.path.join(DATA, "digits_test_img.npy")).astype(np.float64)
    ref = ort.InferenceSession(os.path.join(ROOT, "models", MODEL + ".onnx"))
    logits = ref.run(None, {ref.get_inputs()[0].name: x.astype(np.float32)})[0]
    return x.reshape(len(x), -1), logits


def client(server, protocol):
    if protocol == "http":
        return th.InferenceServerClient(server.http_url, connection_timeout=600, network_timeout=600)
    return tg.InferenceServerClient(server.grpc_url)


def stats(server):
    url = f"http://{server.http_url}/v2/models/{TWIN}/stats"
    s = json.load(urllib.request.urlopen(url, timeout=30))["model_stats"][0]
    return int(s["inference_count"]), int(s["execution_count"])


def multi_client(server):
    spec = heinfer.client_spec_from_config(client(server, "http").get_model_config(TWIN))
    m = heinfer.client_for(spec, layout="M", model_name=MODEL)
    assert isinstance(m, heinfer.MultiClient) and m.max_batch >= 8
    return m


def run_concurrently(server, protocol, jobs):
    """jobs: (MultiClient, sample index, block); each on its own connection, all at once."""
    x, _ = digits()
    out, errors = {}, []

    def go(k, m, i, b):
        try:
            out[k] = m.infer_merged(client(server, protocol), x[i], b)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=go, args=(k, *j)) for k, j in enumerate(jobs)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors, errors
    return out


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_same_key_requests_are_merged_and_each_agrees_with_onnxruntime(merged_server, protocol):
    _, logits = digits()
    m = multi_client(merged_server)
    b = m.max_batch
    # Keys registered once, alone (a request carrying keys is not merged).
    y = m.infer_merged(client(merged_server, protocol), digits()[0][0], 0, send_keys=True)
    assert np.argmax(y) == np.argmax(logits[0])
    before = stats(merged_server)
    n = 3 * b
    jobs = [(m, i, i % b) for i in range(n)]
    out = run_concurrently(merged_server, protocol, jobs)
    after = stats(merged_server)
    agree = sum(int(np.argmax(out[k]) == np.argmax(logits[i])) for k, (_, i, _) in enumerate(jobs))
    err = max(float(np.abs(out[k] - logits[i]).max()) for k, (_, i, _) in enumerate(jobs))
    inferences, executions = after[0] - before[0], after[1] - before[1]
    print(f"{protocol}: {n} requests, {executions} evaluations, agreement {agree}/{n}, max logit error {err:.4f}")
    assert agree == n and err < 0.5
    assert inferences == n
    # Merged: fewer evaluations than requests (each evaluation answers up to B of them).
    assert executions < n, (inferences, executions)
    # Model metadata puts the batch dimension first, as -1 (perf_analyzer reads it).
    meta = client(merged_server, "http").get_model_metadata(TWIN)
    shapes = {t["name"]: [int(d) for d in t["shape"]] for t in meta["inputs"]}
    assert shapes[heinfer.BLOCK] == [-1, 1] and shapes[heinfer.ENCRYPTED_INPUT] == [-1, -1], shapes
    if merged_server.log:  # Triton's log: the batching strategy was loaded for the twin
        log = open(merged_server.log).read()
        assert "Loading custom batching strategy library" in log and TWIN in log


def test_two_keys_in_flight_are_never_mixed(merged_server):
    """Two clients (two secret keys) on the same blocks at once: a merge across keys would
    add one client's digit to the other's block under a different key, and both answers
    would decrypt to noise. Each decrypts to its own digit."""
    _, logits = digits()
    a, c = multi_client(merged_server), multi_client(merged_server)
    assert a.key_id != c.key_id
    for m in (a, c):
        m.infer_merged(client(merged_server, "http"), digits()[0][0], 0, send_keys=True)
    b = a.max_batch
    jobs = [(a if k % 2 == 0 else c, 100 + k, (k // 2) % b) for k in range(2 * b)]
    out = run_concurrently(merged_server, "grpc", jobs)
    for k, (_, i, _) in enumerate(jobs):
        assert np.argmax(out[k]) == np.argmax(logits[i]), (k, out[k], logits[i])
        assert float(np.abs(out[k] - logits[i]).max()) < 0.5


def test_bad_requests_fail_alone(merged_server):
    x, logits = digits()
    m = multi_client(merged_server)
    cli = client(merged_server, "http")
    m.infer_merged(cli, x[0], 0, send_keys=True)
    b = m.max_batch
    # A block outside 0..B: refused by the backend, by name.
    inputs = m.merged_inputs(x[1], 1, "http")
    blk = th.InferInput(heinfer.BLOCK, [1, 1], "INT32")
    blk.set_data_from_numpy(np.array([[b]], dtype=np.int32), binary_data=True)
    inputs[2] = blk
    with pytest.raises(InferenceServerException) as e:
        cli.infer(TWIN, inputs)
    assert "BLOCK" in str(e.value) and f"0..{b}" in str(e.value), str(e.value)
    # Two samples in one request ([2, n]): one sample per request.
    two = m.encrypt_block(x[1], 1) + m.encrypt_block(x[2], 2)
    arr = np.empty((2, 1), dtype=np.object_)
    arr[0, 0], arr[1, 0] = two[0], two[1]
    t = th.InferInput(heinfer.ENCRYPTED_INPUT, [2, 1], "BYTES")
    t.set_data_from_numpy(arr, binary_data=True)
    k = th.InferInput(heinfer.KEY_ID, [2, 1], "BYTES")
    k.set_data_from_numpy(np.array([[m.key_id.encode()], [m.key_id.encode()]], dtype=np.object_), binary_data=True)
    bl = th.InferInput(heinfer.BLOCK, [2, 1], "INT32")
    bl.set_data_from_numpy(np.array([[1], [2]], dtype=np.int32), binary_data=True)
    with pytest.raises(InferenceServerException) as e:
        cli.infer(TWIN, [t, k, bl])
    assert "one sample per request" in str(e.value), str(e.value)
    # A layout-L client's key id: the merged model runs layout M only.
    spec = heinfer.client_spec_from_config(cli.get_model_config(TWIN))
    lc = heinfer.client_for(spec, layout="L", model_name=MODEL)
    cli.infer(MODEL, lc.infer_inputs(x[0], "http", send_keys=True))  # registers L's keys
    inputs = m.merged_inputs(x[1], 1, "http")
    kid = th.InferInput(heinfer.KEY_ID, [1, 1], "BYTES")
    kid.set_data_from_numpy(np.array([[lc.key_id.encode()]], dtype=np.object_), binary_data=True)
    inputs[1] = kid
    with pytest.raises(InferenceServerException) as e:
        cli.infer(TWIN, inputs)
    assert "layout M" in str(e.value), str(e.value)
    # The server lives on, and good requests still agree.
    assert merged_server.alive()
    y = m.infer_merged(cli, x[3], 3)
    assert np.argmax(y) == np.argmax(logits[3])


def test_waiting_groups_are_bounded_by_the_servers_queue(merged_repo, heinfer_bin, tmp_path):
    """`heinfer serve --max-queue 1`: requests on one block under one key cannot share a
    group, so each opens its own. A group holds an instance or a place in the server's queue
    while it waits, as a single request does; beyond that it is refused at once (503, the
    queue's message), and the requests admitted are answered correctly. Without the bound
    every group would wait, however many clients send."""
    s = start_heinfer(heinfer_bin, merged_repo, tmp_path / "serve.log", extra=["--max-queue", "1"])
    try:
        x, logits = digits()
        m = multi_client(s)
        m.infer_merged(client(s, "http"), x[0], 0, send_keys=True)
        n = 12
        out, refused, other = {}, [], []

        def go(k):
            try:
                out[k] = m.infer_merged(client(s, "http"), x[k], 0)
            except InferenceServerException as e:
                (refused if "busy" in str(e) and "--max-queue" in str(e) else other).append(str(e))

        threads = [threading.Thread(target=go, args=(k,)) for k in range(n)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print(f"{n} single-member groups, --max-queue 1: {len(out)} answered, {len(refused)} refused")
        assert not other, other
        assert len(out) + len(refused) == n
        assert refused, "every group was admitted: waiting groups are not bounded by the queue"
        assert len(out) >= 2, "an instance and one queue place: at least two groups run"
        for k, y in out.items():
            assert np.argmax(y) == np.argmax(logits[k]), (k, y, logits[k])
        # The server lives on and answers again once the burst has passed.
        assert s.alive()
        y = m.infer_merged(client(s, "http"), x[20], 1)
        assert np.argmax(y) == np.argmax(logits[20])
    finally:
        s._stop()


def test_the_sdk_compiles_the_twin_and_refuses_it_without_layout_m(tmp_path):
    onnx = os.path.join(ROOT, "models", "digits_mlp.onnx")
    cal = np.load(os.path.join(DATA, "digits_train_img.npy"))[:200]
    r = heinfer.compile(onnx, cal, tmp_path, name="mlp", reference="interpreter", merged=True)
    twin = os.path.join(str(tmp_path), "mlp" + heinfer.MERGED_SUFFIX)
    cfg = open(os.path.join(twin, "config.pbtxt")).read()
    b = next(c for c in r["layouts"] if c["layout"] == "M")["max_batch"]
    assert f"max_batch_size: {b}\n" in cfg and heinfer.BLOCK in cfg, cfg
    # The same compiled model, and the same client spec: layout M's clients use either.
    assert open(os.path.join(twin, "1", "model.hem"), "rb").read() == \
        open(os.path.join(r["model_dir"], "1", "model.hem"), "rb").read()
    assert heinfer.client_spec_from_config(twin) == heinfer.client_spec_from_config(r["model_dir"])
    with pytest.raises(heinfer.CompileError) as e:
        heinfer.compile(onnx, cal, tmp_path / "l", name="mlp", reference="interpreter", layout="L", merged=True)
    assert "layout M" in str(e.value), str(e.value)
