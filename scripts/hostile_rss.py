#!/usr/bin/env python3
"""Peak memory of `heinfer serve` under the amplification attacks of issue 15.

Starts `heinfer serve` (any build: pass the binary) on a model repository, then,
one attack after another, sends bounded bursts of hostile requests from loopback and
reads the server's VmRSS / VmHWM (peak RSS) from /proc/<pid>/status:

  json0     a 30 MB JSON body `{"inputs":[{... "data":[0,0,0,...]}]}`
  jsonhdr   a JSON header of zeros just under 1 MB (the default --max-json-kb), binary-data framing
  grpc0     a 28 MB gRPC ModelInfer message of empty raw_input_contents entries
  parallel  4 of json0 and 4 of grpc0 at once
  fill      8 HTTP binary-data requests and 8 gRPC calls at once, each carrying one
            well-framed junk element of HOSTILE_FILL_MB (default 60) MB: what the
            in-flight budget (--max-inflight-mb) is for

Usage: scripts/hostile_rss.py HEINFER_BIN REPO [serve flags...]
       (HOSTILE_ATTACKS=json0,grpc0 runs only those; HOSTILE_ROUNDS=n repeats them, a
       bounded soak: VmRSS that keeps growing from round to round is a leak;
       HOSTILE_MODEL names the model)
Prints one line per attack: status seen, VmRSS after, VmHWM (peak) so far, in MB.
Every loop is bounded (a few requests, each with a timeout); it stops by itself.
"""
import os
import re
import socket
import subprocess
import sys
import threading
import time

READY = re.compile(r"heinfer serve ready http=([\d.]+):(\d+) grpc=([\d.]+):(\d+)")


def mem(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024
    return out


def http_post(port, body, headers=(), timeout=60):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    head = f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    for k, v in headers:
        head += f"{k}: {v}\r\n"
    try:
        s.sendall(head.encode() + b"\r\n")
        s.sendall(body)
    except OSError:
        pass
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
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(no, payload):
    return varint((no << 3) | 2) + varint(len(payload)) + payload


def grpc_flood(port, size):
    """ModelInfer with two declared inputs and `size` bytes of empty raw_input_contents."""
    import grpc

    tensor = lambda name: field(1, name) + field(2, b"BYTES") + field(3, varint(1))  # noqa: E731
    msg = field(1, MODEL.encode()) + field(5, tensor(b"ENCRYPTED_INPUT")) + field(5, tensor(b"KEY_ID"))
    msg += b"\x3a\x00" * ((size - len(msg)) // 2)
    opts = [("grpc.max_send_message_length", 1 << 30), ("grpc.max_receive_message_length", 1 << 30)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=opts) as ch:
        call = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        try:
            call(msg, timeout=120)
            return "OK"
        except grpc.RpcError as e:
            return f"{e.code().name}: {e.details()[:90]}"


def json_zeros(size):
    pre = b'{"inputs":[{"name":"ENCRYPTED_INPUT","datatype":"BYTES","shape":[1],"data":['
    n = (size - len(pre) - 4) // 2
    return pre + b"0," * n + b"0]}]}"


MODEL = os.environ.get("HOSTILE_MODEL", "breast_cancer_lr")


def fill(http, grpc_port, size, report):
    import grpc

    junk = b"\xab" * size
    el = len(junk).to_bytes(4, "little") + junk
    head = ('{"inputs":[{"name":"ENCRYPTED_INPUT","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":%d}},'
            '{"name":"KEY_ID","datatype":"BYTES","shape":[1],"data":["%s"]}]}' % (len(el), "00" * 32)).encode()
    body = head + el
    tensor = lambda name: field(1, name) + field(2, b"BYTES") + field(3, varint(1))  # noqa: E731
    msg = (field(1, MODEL.encode()) + field(5, tensor(b"ENCRYPTED_INPUT")) + field(5, tensor(b"KEY_ID"))
           + field(7, el) + field(7, (64).to_bytes(4, "little") + b"00" * 32))
    opts = [("grpc.max_send_message_length", 1 << 30), ("grpc.max_receive_message_length", 1 << 30)]
    results = []

    def g():
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}", options=opts) as ch:
            try:
                ch.unary_unary("/inference.GRPCInferenceService/ModelInfer")(msg, timeout=120)
                results.append("OK")
            except grpc.RpcError as e:
                results.append(f"{e.code().name}")

    ts = [threading.Thread(target=lambda: results.append(http_post(http, body, [("Inference-Header-Content-Length", len(head))])))
          for _ in range(8)]
    ts += [threading.Thread(target=g) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(180)
    counts = {}
    for r in results:
        counts[r[:30]] = counts.get(r[:30], 0) + 1
    report("fill", ", ".join(f"{n}x {k}" for k, n in sorted(counts.items())))


def main():
    binary, repo, *flags = sys.argv[1:]
    log = open("/tmp/hostile_rss.log", "w+")
    p = subprocess.Popen([binary, "serve", repo, "--http-port", "0", "--grpc-port", "0", *flags],
                         stdout=subprocess.DEVNULL, stderr=log)
    try:
        for _ in range(600):
            log.seek(0)
            m = READY.search(log.read())
            if m:
                break
            time.sleep(0.1)
        else:
            raise SystemExit("no ready line")
        http, grpc_port = int(m.group(2)), int(m.group(4))
        print(f"{'baseline':10s} VmRSS {mem(p.pid)['VmRSS']:7.0f} MB")

        def report(name, status):
            time.sleep(0.5)
            m = mem(p.pid)
            print(f"{name:10s} VmRSS {m['VmRSS']:7.0f} MB  peak VmHWM {m['VmHWM']:7.0f} MB  [{status}]", flush=True)

        attacks = os.environ.get("HOSTILE_ATTACKS", "json0,jsonhdr,grpc0,parallel,fill").split(",")
        for r in range(int(os.environ.get("HOSTILE_ROUNDS", "1"))):
            if r:
                print(f"-- round {r + 1}")
            attack(http, grpc_port, attacks, report)
        print("alive" if p.poll() is None else f"EXITED {p.returncode}")
    finally:
        p.terminate()
        p.wait(30)


def attack(http, grpc_port, attacks, report):
    body = json_zeros(30 << 20)
    if "json0" in attacks:
        report("json0", http_post(http, body))
    if "jsonhdr" in attacks:
        hdr = json_zeros((1 << 20) - 1024)
        report("jsonhdr", http_post(http, hdr, [("Inference-Header-Content-Length", len(hdr))]))
    if "grpc0" in attacks:
        report("grpc0", grpc_flood(grpc_port, 28 << 20))
    if "fill" in attacks:
        fill(http, grpc_port, int(os.environ.get("HOSTILE_FILL_MB", "60")) << 20, report)
    if "parallel" not in attacks:
        return
    results = []
    ts = [threading.Thread(target=lambda: results.append(http_post(http, body))) for _ in range(4)]
    ts += [threading.Thread(target=lambda: results.append(grpc_flood(grpc_port, 28 << 20))) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(180)
    report("parallel", "; ".join(sorted(set(r[:40] for r in results))))


if __name__ == "__main__":
    main()
