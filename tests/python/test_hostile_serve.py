"""`heinfer serve` against hostile clients (issue 15): amplification bodies, slow and
silent connections, disconnect storms, bad key ids, wrong shapes and datatypes,
duplicate and missing tensors, a full in-flight budget, the connection cap, and one
bundle registered by many clients at once — over HTTP and gRPC, with the official
tritonclient and with raw sockets where tritonclient would refuse to misbehave.

After every case: the error is clear (its status and the flag or tensor it names),
the process is alive, its peak RSS (VmHWM) stays under the bound README states
(RSS at start + key store + 2 × --max-inflight-mb), and the next good request, over
the other protocol, is answered right (decrypted and compared with `heinfer evaluate`).

Keys, encryption and decryption go through the `heinfer` CLI, so this file needs
no Python SDK build."""
import hashlib
import json
import os
import re
import socket
import struct
import subprocess
import threading
import time

import numpy as np
import pytest

httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
grpc = pytest.importorskip("grpc")
requests = pytest.importorskip("requests")
from tritonclient.utils import InferenceServerException  # noqa: E402

from conftest import DATA, ROOT  # noqa: E402

MODEL = "breast_cancer_lr"
READY = re.compile(r"heinfer serve ready http=([\d.]+):(\d+) grpc=([\d.]+):(\d+)")
MAX_REQUEST_MB = 64
MAX_INFLIGHT_MB = 128
MAX_JSON_KB = 256
MAX_CONNECTIONS = 48
FLAGS = ["--max-request-mb", str(MAX_REQUEST_MB), "--max-inflight-mb", str(MAX_INFLIGHT_MB),
         "--max-json-kb", str(MAX_JSON_KB), "--max-connections", str(MAX_CONNECTIONS),
         "--header-timeout-s", "2", "--body-timeout-s", "2", "--max-queue", "8"]
SAMPLES = 4


def run(*args):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True).stdout


def container(path):
    """A ciphertext file's elements (see `heinfer encrypt`: 12-byte header, then a BYTES tensor)."""
    data = open(path, "rb").read()
    assert data[:4] == b"HECT"
    return split_bytes(data[12:])


def split_bytes(t):
    out, i = [], 0
    while i < len(t):
        (n,) = struct.unpack_from("<I", t, i)
        out.append(t[i + 4:i + 4 + n])
        i += 4 + n
    return out


def join_bytes(els):
    return b"".join(struct.pack("<I", len(e)) + e for e in els)


class World:
    """The compiled model, a client's keys and queries, and what they decrypt to."""

    def __init__(self, heinfer_bin, tmp):
        self.bin = heinfer_bin
        self.tmp = tmp
        repo = tmp / "repo"
        run(heinfer_bin, "compile", os.path.join(ROOT, "models", MODEL + ".onnx"), "--calibration",
            os.path.join(DATA, "breast_cancer_train_x.npy"), "--no-onnxruntime", "-o", repo, "--json")
        self.repo = str(repo)
        self.model_dir = repo / MODEL
        self.sk, self.bundle_path = tmp / "sk", tmp / "bundle"
        out = json.loads(run(heinfer_bin, "keygen", self.model_dir, "--secret-key", self.sk,
                             "--keys-out", self.bundle_path, "--json"))
        self.bundle = open(self.bundle_path, "rb").read()
        self.key_id = out["key_id"]
        assert self.key_id == hashlib.sha256(self.bundle).hexdigest()
        x = np.load(os.path.join(DATA, "breast_cancer_test_x.npy"))[:SAMPLES]
        np.save(tmp / "x.npy", x)
        run(heinfer_bin, "encrypt", self.model_dir, "--secret-key", self.sk, "--input", tmp / "x.npy", "-o", tmp / "q")
        qs = sorted(os.listdir(tmp / "q"))
        self.queries = [container(tmp / "q" / q) for q in qs]
        run(heinfer_bin, "evaluate", self.model_dir, "--keys", self.bundle_path,
            *[tmp / "q" / q for q in qs], "-o", tmp / "r")
        self.expected = [self.decrypt_file(tmp / "r" / r) for r in sorted(os.listdir(tmp / "r"))]
        self.n = 0

    def decrypt_file(self, path):
        return json.loads(run(self.bin, "decrypt", self.model_dir, "--secret-key", self.sk, path, "--json"))["output"]

    def decrypt(self, elements):
        self.n += 1
        path = self.tmp / f"got{self.n}.hect"
        with open(path, "wb") as f:
            f.write(b"HECT" + struct.pack("<HHI", 1, 2, len(elements)) + join_bytes(elements))
        return self.decrypt_file(path)


class Serve:
    def __init__(self, world, log):
        self.log_path = log
        self.log = open(log, "w+")
        self.proc = subprocess.Popen([world.bin, "serve", world.repo, "--http-port", "0", "--grpc-port", "0", *FLAGS],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        for _ in range(600):
            assert self.proc.poll() is None, self.text()
            m = READY.search(self.text())
            if m:
                self.http, self.grpc = f"{m.group(1)}:{m.group(2)}", f"{m.group(3)}:{m.group(4)}"
                self.http_port, self.grpc_port = int(m.group(2)), int(m.group(4))
                break
            time.sleep(0.1)
        else:
            raise AssertionError(self.text())
        self.h = httpclient.InferenceServerClient(self.http, network_timeout=60)
        self.g = grpcclient.InferenceServerClient(self.grpc)

    def text(self):
        self.log.flush()
        return open(self.log_path).read()

    def status(self, key):
        """A number from /proc/<pid>/status (kB for memory)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise AssertionError(key)

    def mem_mb(self, key):
        return self.status(key) / 1024


@pytest.fixture(scope="module")
def world(heinfer_bin, tmp_path_factory):
    return World(heinfer_bin, tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def srv(world, tmp_path_factory):
    s = Serve(world, tmp_path_factory.mktemp("hostile_log") / "serve.log")
    # Register the keys and serve once: the base the bound is measured from.
    out = infer(s, "http", world.queries[0], world, keys=True)
    assert np.allclose(world.decrypt(out), world.expected[0], atol=1e-2)
    s.base_mb = s.mem_mb("VmRSS")
    s.bound_mb = s.base_mb + 2 * MAX_INFLIGHT_MB
    s.turn = 0
    yield s
    s.proc.terminate()
    try:
        s.proc.wait(30)
    except subprocess.TimeoutExpired:
        s.proc.kill()
    s.log.close()


def tensor(mod, name, elements, shape=None, dtype="BYTES"):
    shape = shape or [len(elements)]
    t = mod.InferInput(name, shape, dtype)
    t.set_data_from_numpy(np.array(elements, dtype=np.object_).reshape(shape))
    return t


def infer(s, proto, cts, world, keys=False):
    mod, c = (httpclient, s.h) if proto == "http" else (grpcclient, s.g)
    inputs = [tensor(mod, "ENCRYPTED_INPUT", cts), tensor(mod, "KEY_ID", [world.key_id.encode()])]
    if keys:
        inputs.append(tensor(mod, "EVALUATION_KEYS", [world.bundle]))
    if proto == "http":
        outs = [httpclient.InferRequestedOutput("ENCRYPTED_OUTPUT", binary_data=True)]
        r = c.infer(MODEL, inputs, outputs=outs)
    else:
        r = c.infer(MODEL, inputs)
    return list(r.as_numpy("ENCRYPTED_OUTPUT"))


def after(srv, world):
    """The process lives, its peak memory is under the bound, and the next good
    request (protocols take turns) gets the right answer."""
    assert srv.proc.poll() is None, srv.text()[-3000:]
    assert requests.get(f"http://{srv.http}/v2/health/live", timeout=10).status_code == 200
    peak = srv.mem_mb("VmHWM")
    assert peak <= srv.bound_mb, f"peak RSS {peak:.0f} MB over the bound {srv.bound_mb:.0f} MB"
    srv.turn += 1
    i = srv.turn % SAMPLES
    proto = "grpc" if srv.turn % 2 else "http"
    out = infer(srv, proto, world.queries[i], world)
    got = world.decrypt(out)
    assert np.allclose(got, world.expected[i], atol=1e-2), (proto, got, world.expected[i])


def raw_http(srv, body, headers=(), send_body=True, timeout=30):
    """One request on a fresh socket; returns (status, json error or None)."""
    s = socket.create_connection(("127.0.0.1", srv.http_port), timeout=timeout)
    head = f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    if not any(k.lower() == "content-length" for k, _ in headers):
        head += f"Content-Length: {len(body)}\r\n"
    for k, v in headers:
        head += f"{k}: {v}\r\n"
    try:
        s.sendall(head.encode() + b"\r\n")
        if send_body:
            s.sendall(body)
    except OSError:
        pass  # the server may answer and close before reading it all
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except OSError:
        pass
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    try:
        err = json.loads(rest)["error"]
    except Exception:
        err = rest.decode(errors="replace")
    return status, err


def varint(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([b])
        out += bytes([b | 0x80])


def field(no, payload):
    return varint((no << 3) | 2) + varint(len(payload)) + payload


def pb_tensor(name, n, contents=b""):
    return field(1, name) + field(2, b"BYTES") + field(3, varint(n)) + (field(5, contents) if contents else b"")


def grpc_raw(srv, msg):
    """A ModelInfer call whose message is these protobuf bytes, as no client library would build it."""
    opts = [("grpc.max_send_message_length", 1 << 30), ("grpc.max_receive_message_length", 1 << 30)]
    with grpc.insecure_channel(srv.grpc, options=opts) as ch:
        try:
            ch.unary_unary("/inference.GRPCInferenceService/ModelInfer")(msg, timeout=60)
            return None, None
        except grpc.RpcError as e:
            return e.code(), e.details()


# --- amplification ---------------------------------------------------------------

def test_json_body_of_30mb_of_zeros(srv, world):
    pre = b'{"inputs":[{"name":"ENCRYPTED_INPUT","datatype":"BYTES","shape":[1],"data":['
    body = pre + b"0," * (15 << 20) + b"0]}]}"
    status, err = raw_http(srv, body)
    assert status == 413 and "--max-json-kb" in err, (status, err)
    after(srv, world)


def test_json_header_of_zeros_under_the_cap_parses_without_amplification(srv, world):
    pre = (b'{"inputs":[{"name":"KEY_ID","datatype":"BYTES","shape":[1],"data":["%s"]},'
           b'{"name":"ENCRYPTED_INPUT","datatype":"BYTES","shape":[%d],"data":['
           % (world.key_id.encode(), len(world.queries[0])))
    body = pre + b"0," * ((MAX_JSON_KB << 10) // 2 - 200) + b"0]}]}"
    for headers in ((), (("Inference-Header-Content-Length", len(body)),)):
        before = srv.mem_mb("VmRSS")
        status, err = raw_http(srv, body, headers)
        assert status == 400 and "strings" in err, (status, err)
        assert srv.mem_mb("VmRSS") - before < 16, "a 256 KB JSON body cost more than 16 MB"
    after(srv, world)


def test_inference_header_length_over_the_cap_is_refused_unread(srv, world):
    status, err = raw_http(srv, b"", [("Content-Length", 50 << 20),
                                      ("Inference-Header-Content-Length", (MAX_JSON_KB + 1) << 10)], send_body=False)
    assert status == 413 and "--max-json-kb" in err, (status, err)
    after(srv, world)


def test_grpc_message_of_empty_raw_input_contents(srv, world):
    msg = field(1, MODEL.encode()) + field(5, pb_tensor(b"ENCRYPTED_INPUT", 1)) + field(5, pb_tensor(b"KEY_ID", 1))
    msg += b"\x3a\x00" * (14 << 20)  # 28 MB of empty entries of field 7
    code, details = grpc_raw(srv, msg)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "raw_input_contents" in details, (code, details)
    after(srv, world)


def test_grpc_message_of_empty_bytes_contents(srv, world):
    contents = b"\x42\x00" * (10 << 20)  # field 8 (bytes_contents), empty, 20 MB
    msg = field(1, MODEL.encode()) + field(5, pb_tensor(b"ENCRYPTED_INPUT", 1, contents))
    code, details = grpc_raw(srv, msg)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "bytes_contents" in details, (code, details)
    after(srv, world)


def test_requests_over_the_size_limit(srv, world):
    big = [b"\0" * ((MAX_REQUEST_MB + 4) << 20)]
    with pytest.raises(InferenceServerException, match="--max-request-mb"):
        srv.g.infer(MODEL, [tensor(grpcclient, "ENCRYPTED_INPUT", world.queries[0]),
                            tensor(grpcclient, "KEY_ID", [world.key_id.encode()]),
                            tensor(grpcclient, "EVALUATION_KEYS", big)])
    r = requests.post(f"http://{srv.http}/v2/models/{MODEL}/infer", data=b"\0" * ((MAX_REQUEST_MB + 4) << 20),
                      headers={"Inference-Header-Content-Length": "10"}, timeout=60)
    assert r.status_code == 413 and "--max-request-mb" in r.json()["error"]
    after(srv, world)


# --- time and connections ----------------------------------------------------------

def closed_within(sock, seconds):
    sock.settimeout(seconds)
    t = time.time()
    try:
        while sock.recv(4096):
            pass
    except socket.timeout:
        raise AssertionError(f"still open after {seconds} s")
    except OSError:
        pass
    return time.time() - t


def test_slow_headers_are_closed(srv, world):
    socks = []
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", srv.http_port))
        s.sendall(b"POST /v2/models/x/infer HTTP/1.1\r\nHost: x\r\nContent-")
        socks.append(s)
    for s in socks:
        assert closed_within(s, 6) < 6
        s.close()
    after(srv, world)


def test_slow_bodies_get_408(srv, world):
    s = socket.create_connection(("127.0.0.1", srv.http_port))
    s.sendall(b"POST /v2/models/%s/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
              b"Inference-Header-Content-Length: 100\r\n\r\n{\"inputs\":" % MODEL.encode())
    s.settimeout(10)
    reply = s.recv(65536)
    assert reply.startswith(b"HTTP/1.1 408") and b"--body-timeout-s" in reply, reply[:300]
    s.close()
    after(srv, world)


def test_silent_connections_on_both_ports_are_closed(srv, world):
    socks = [socket.create_connection(("127.0.0.1", p)) for p in (srv.http_port, srv.grpc_port) for _ in range(10)]
    for s in socks:
        assert closed_within(s, 6) < 6
        s.close()
    after(srv, world)


def test_connections_over_the_cap_wait(srv, world):
    held = [socket.create_connection(("127.0.0.1", srv.http_port)) for _ in range(MAX_CONNECTIONS)]
    time.sleep(0.2)
    extra = socket.create_connection(("127.0.0.1", srv.http_port))
    extra.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    extra.settimeout(0.8)
    with pytest.raises(socket.timeout):
        extra.recv(100)
    for s in held:
        s.close()
    extra.settimeout(10)
    assert extra.recv(100).startswith(b"HTTP/1.1 200")
    extra.close()
    after(srv, world)


def test_disconnect_storm(srv, world):
    cts = world.queries[1]
    head = json.dumps({"inputs": [
        {"name": "ENCRYPTED_INPUT", "datatype": "BYTES", "shape": [len(cts)],
         "parameters": {"binary_data_size": len(join_bytes(cts))}},
        {"name": "KEY_ID", "datatype": "BYTES", "shape": [1], "data": [world.key_id]}]}).encode()
    body = head + join_bytes(cts)

    def hang_up(i):
        s = socket.create_connection(("127.0.0.1", srv.http_port))
        s.sendall(b"POST /v2/models/%s/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                  b"Inference-Header-Content-Length: %d\r\n\r\n" % (MODEL.encode(), len(body), len(head)))
        s.sendall(body if i % 2 else body[:len(body) // 2])
        s.close()

    threads = srv.status("Threads")
    ts = [threading.Thread(target=hang_up, args=(i,)) for i in range(40)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    # and gRPC calls whose deadlines pass while they are served (or just before: either
    # way the server must drop them cleanly)
    for _ in range(10):
        try:
            srv.g.infer(MODEL, [tensor(grpcclient, "ENCRYPTED_INPUT", cts),
                                tensor(grpcclient, "KEY_ID", [world.key_id.encode()])], client_timeout=0.0005)
        except InferenceServerException as e:
            assert re.search(r"(?i)deadline|timeout|cancel", str(e)), e
    time.sleep(0.5)
    # Abandoned work holds its instance until it stops, so the blocking pool does not
    # grow a thread per abandoned request (issue 15: 5 → 12 threads for 8 of them).
    grown = srv.status("Threads") - threads
    assert grown <= 2, f"{grown} more threads after 40 abandoned requests"
    after(srv, world)


def test_full_inflight_budget_answers_503_then_recovers(srv, world):
    # Two clients declare 64 MB each and send nothing: the 128 MB budget is taken.
    held = []
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", srv.http_port))
        s.sendall(b"POST /v2/models/%s/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                  b"Inference-Header-Content-Length: 100\r\n\r\n" % (MODEL.encode(), (MAX_REQUEST_MB << 20)))
        held.append(s)
    time.sleep(0.3)
    with pytest.raises(InferenceServerException, match="--max-inflight-mb"):
        infer(srv, "http", world.queries[0], world)
    with pytest.raises(InferenceServerException, match="--max-inflight-mb") as e:
        infer(srv, "grpc", world.queries[0], world)
    assert "UNAVAILABLE" in str(e.value.status())
    for s in held:
        s.close()
    time.sleep(0.3)
    after(srv, world)


# --- wrong tensors -----------------------------------------------------------------

@pytest.mark.parametrize("key_id", [b"not hex", b"ab" * 31, b"00" * 32, b"\xff\xfe"])
def test_invalid_and_unknown_key_ids(srv, world, key_id):
    for mod, c in ((httpclient, srv.h), (grpcclient, srv.g)):
        with pytest.raises(InferenceServerException, match="(?i)key id") as e:
            c.infer(MODEL, [tensor(mod, "ENCRYPTED_INPUT", world.queries[0]), tensor(mod, "KEY_ID", [key_id])])
        assert "400" in str(e.value.status()) or "INVALID_ARGUMENT" in str(e.value.status())
    after(srv, world)


def test_wrong_shapes(srv, world):
    cts = world.queries[0]
    for mod, c in ((httpclient, srv.h), (grpcclient, srv.g)):
        with pytest.raises(InferenceServerException, match="ciphertexts"):
            c.infer(MODEL, [tensor(mod, "ENCRYPTED_INPUT", cts + cts), tensor(mod, "KEY_ID", [world.key_id.encode()])])
        with pytest.raises(InferenceServerException, match="unexpected shape"):
            c.infer(MODEL, [tensor(mod, "ENCRYPTED_INPUT", cts, shape=[1, len(cts)]),
                            tensor(mod, "KEY_ID", [world.key_id.encode()])])
    # declared 1000 elements with 40 MB of binary data promised, never sent
    head = json.dumps({"inputs": [
        {"name": "ENCRYPTED_INPUT", "datatype": "BYTES", "shape": [1000], "parameters": {"binary_data_size": 40 << 20}},
        {"name": "KEY_ID", "datatype": "BYTES", "shape": [1], "data": [world.key_id]}]}).encode()
    status, err = raw_http(srv, head, [("Content-Length", len(head) + (40 << 20)),
                                       ("Inference-Header-Content-Length", len(head))], timeout=5)
    assert status == 400 and "ciphertexts" in err, (status, err)
    after(srv, world)


def test_wrong_datatypes(srv, world):
    for mod, c in ((httpclient, srv.h), (grpcclient, srv.g)):
        x = mod.InferInput("ENCRYPTED_INPUT", [len(world.queries[0])], "FP32")
        x.set_data_from_numpy(np.zeros(len(world.queries[0]), dtype=np.float32))
        with pytest.raises(InferenceServerException, match="data-type"):
            c.infer(MODEL, [x, tensor(mod, "KEY_ID", [world.key_id.encode()])])
    after(srv, world)


def test_duplicate_and_missing_tensors(srv, world):
    cts = world.queries[0]
    for mod, c in ((httpclient, srv.h), (grpcclient, srv.g)):
        kid = tensor(mod, "KEY_ID", [world.key_id.encode()])
        with pytest.raises(InferenceServerException, match="twice"):
            c.infer(MODEL, [tensor(mod, "ENCRYPTED_INPUT", cts), kid, tensor(mod, "KEY_ID", [world.key_id.encode()])])
        with pytest.raises(InferenceServerException, match="missing required input"):
            c.infer(MODEL, [kid])
        with pytest.raises(InferenceServerException, match="KEY_ID"):
            c.infer(MODEL, [tensor(mod, "ENCRYPTED_INPUT", cts)])
        with pytest.raises(InferenceServerException, match="unexpected inference input"):
            c.infer(MODEL, [tensor(mod, "ENCRYPTED_INPUT", cts), kid, tensor(mod, "LOGITS", [b"x"])])
    after(srv, world)


def test_binary_sizes_that_do_not_add_up(srv, world):
    cts = world.queries[0]
    blob = join_bytes(cts)
    for declared, sent, needle in ((len(blob) + 10, blob, "binary_data_size"), (len(blob), blob + b"tail", "follow")):
        head = json.dumps({"inputs": [
            {"name": "ENCRYPTED_INPUT", "datatype": "BYTES", "shape": [len(cts)],
             "parameters": {"binary_data_size": declared}},
            {"name": "KEY_ID", "datatype": "BYTES", "shape": [1], "data": [world.key_id]}]}).encode()
        status, err = raw_http(srv, head + sent, [("Inference-Header-Content-Length", len(head))])
        assert status == 400 and needle in err, (status, err)
    after(srv, world)


def test_concurrent_registration_of_one_bundle(srv, world, tmp_path):
    # A fresh client: its bundle is new to the key store, and 8 requests race to register it.
    sk, bundle_path = tmp_path / "sk2", tmp_path / "bundle2"
    out = json.loads(run(world.bin, "keygen", world.model_dir, "--secret-key", sk, "--keys-out", bundle_path, "--json"))
    bundle = open(bundle_path, "rb").read()
    run(world.bin, "encrypt", world.model_dir, "--secret-key", sk, "--input", world.tmp / "x.npy", "-o", tmp_path / "q")
    cts = container(tmp_path / "q" / sorted(os.listdir(tmp_path / "q"))[0])
    results, errors = [], []

    def one(i):
        mod = httpclient if i % 2 else grpcclient
        c = mod.InferenceServerClient(srv.http if i % 2 else srv.grpc)
        try:
            kw = {"outputs": [httpclient.InferRequestedOutput("ENCRYPTED_OUTPUT", binary_data=True)]} if i % 2 else {}
            r = c.infer(MODEL, [tensor(mod, "ENCRYPTED_INPUT", cts), tensor(mod, "KEY_ID", [out["key_id"].encode()]),
                                tensor(mod, "EVALUATION_KEYS", [bundle])], **kw)
            results.append(list(r.as_numpy("ENCRYPTED_OUTPUT")))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors
    assert len(results) == 8
    with open(tmp_path / "r.hect", "wb") as f:
        f.write(b"HECT" + struct.pack("<HHI", 1, 2, len(results[0])) + join_bytes(results[0]))
    got = json.loads(run(world.bin, "decrypt", world.model_dir, "--secret-key", sk, tmp_path / "r.hect", "--json"))
    assert np.allclose(got["output"], world.expected[0], atol=1e-2)
    after(srv, world)


def test_the_log_names_each_refusal_and_nothing_crashed(srv, world):
    text = srv.text()
    assert "panicked" not in text
    assert re.search(r"status=413", text) and re.search(r"status=400", text)
    after(srv, world)
