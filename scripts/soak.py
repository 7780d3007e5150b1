#!/usr/bin/env python3
"""Soak driver (issue 15): CONCURRENCY workers send a mix of good and bad requests to
one running server (Triton with heinfer's backend, or `heinfer serve`) for SECONDS,
over HTTP and gRPC in turn, and check every answer:

  good requests  decrypted with the client's secret key and compared with onnxruntime's
                 logits of the same sample (|error| < SOAK_TOL, default 1.0): else a
                 wrong answer
  bad requests   (unknown and malformed key ids, twice the ciphertexts, garbage
                 ciphertexts, a missing KEY_ID, a garbage key bundle, FP32 data) must
                 be refused with the error their kind names: else an unexpected error

and samples the server's VmRSS from /proc/<pid>/status every SOAK_SAMPLE_S (5) s.

Prints one line per sample and a JSON summary (also written to --out); exits 1 on a
wrong answer, an unexpected error, or RSS that grew after warm-up by more than
SOAK_MAX_GROWTH_MB (64). Used by scripts/soak.sh, which starts and stops the servers.

perf_analyzer (tritonclient's wheel) and hey make load but cannot decrypt what comes
back, and perf_analyzer stops at the first refused request: hence this driver.
"""
import argparse
import json
import os
import random
import re
import sys
import threading
import time

import numpy as np
import onnxruntime as ort
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

import heinfer

BAD = {
    # kind: the error that kind must get (both servers; Triton's own checks included)
    "unknown_key_id": r"(?i)key id|EVALUATION_KEYS",
    "malformed_key_id": r"(?i)key id",
    "double_input": r"ciphertexts",
    "garbage_ciphertext": r"(?i)ciphertext",
    "missing_key_id": r"KEY_ID",
    "garbage_bundle": r"(?i)bundle",
    "fp32_input": r"(?i)data.?type|BYTES|TYPE_STRING",
}


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bytes_tensor(mod, name, items):
    t = mod.InferInput(name, [len(items)], "BYTES")
    t.set_data_from_numpy(np.array(items, dtype=np.object_))
    return t


class Soak:
    def __init__(self, a):
        self.a = a
        self.lock = threading.Lock()
        self.counts = {"good_ok": 0, "wrong": 0, "bad_refused": 0, "unexpected": 0}
        self.unexpected = []
        self.stop = threading.Event()
        h = httpclient.InferenceServerClient(a.http, network_timeout=600)
        self.client = heinfer.Client(heinfer.client_spec_from_config(h.get_model_config(a.model)))
        x = np.load(a.data)[: a.samples]
        ref = ort.InferenceSession(a.onnx)
        self.ref = ref.run(None, {ref.get_inputs()[0].name: x.astype(np.float32)})[0]
        self.queries = self.client.encrypt_batch(x)
        self.kid = self.client.key_id.encode()
        r = self.call(h, httpclient, [bytes_tensor(httpclient, "ENCRYPTED_INPUT", self.queries[0]),
                                      bytes_tensor(httpclient, "KEY_ID", [self.kid]),
                                      bytes_tensor(httpclient, "EVALUATION_KEYS", [self.client.evaluation_keys])])
        self.check(0, r)
        assert self.counts["good_ok"] == 1, self.counts

    def call(self, c, mod, inputs):
        if mod is httpclient:
            return c.infer(self.a.model, inputs,
                           outputs=[httpclient.InferRequestedOutput("ENCRYPTED_OUTPUT", binary_data=True)])
        return c.infer(self.a.model, inputs)

    def check(self, i, r):
        y = self.client.decrypt(r.as_numpy("ENCRYPTED_OUTPUT"))
        err = float(np.max(np.abs(y - self.ref[i])))
        with self.lock:
            if err < self.a.tol:
                self.counts["good_ok"] += 1
            else:
                self.counts["wrong"] += 1
                self.unexpected.append(f"wrong answer for sample {i}: max |error| {err:.3g}")

    def note(self, what):
        with self.lock:
            self.counts["unexpected"] += 1
            if len(self.unexpected) < 50:
                self.unexpected.append(what)

    def bad(self, mod, kind, i):
        cts = self.queries[i]
        t = lambda n, v: bytes_tensor(mod, n, v)  # noqa: E731
        if kind == "unknown_key_id":
            return [t("ENCRYPTED_INPUT", cts), t("KEY_ID", [os.urandom(32).hex().encode()])]
        if kind == "malformed_key_id":
            return [t("ENCRYPTED_INPUT", cts), t("KEY_ID", [b"zz" * 32])]
        if kind == "double_input":
            return [t("ENCRYPTED_INPUT", cts + cts), t("KEY_ID", [self.kid])]
        if kind == "garbage_ciphertext":
            return [t("ENCRYPTED_INPUT", [os.urandom(len(c)) for c in cts]), t("KEY_ID", [self.kid])]
        if kind == "missing_key_id":
            return [t("ENCRYPTED_INPUT", cts)]
        if kind == "garbage_bundle":
            junk = b"HEKB" + os.urandom(256 << 10)
            return [t("ENCRYPTED_INPUT", cts), t("KEY_ID", [self.kid]), t("EVALUATION_KEYS", [junk])]
        x = mod.InferInput("ENCRYPTED_INPUT", [len(cts)], "FP32")
        x.set_data_from_numpy(np.zeros(len(cts), dtype=np.float32))
        return [x, t("KEY_ID", [self.kid])]

    def worker(self, w):
        rnd = random.Random(w)
        clients = {httpclient: httpclient.InferenceServerClient(self.a.http, network_timeout=600),
                   grpcclient: grpcclient.InferenceServerClient(self.a.grpc)}
        kinds = list(BAD)
        n = 0
        while not self.stop.is_set():
            n += 1
            mod = httpclient if (n + w) % 2 else grpcclient
            i = rnd.randrange(len(self.queries))
            if n % self.a.bad_every == 0:
                kind = kinds[(n // self.a.bad_every + w) % len(kinds)]
                try:
                    self.call(clients[mod], mod, self.bad(mod, kind, i))
                    self.note(f"{kind} over {mod.__name__}: answered, not refused")
                except InferenceServerException as e:
                    if re.search(BAD[kind], str(e)):
                        with self.lock:
                            self.counts["bad_refused"] += 1
                    else:
                        self.note(f"{kind} over {mod.__name__}: {str(e)[:300]}")
                continue
            try:
                r = self.call(clients[mod], mod, [bytes_tensor(mod, "ENCRYPTED_INPUT", self.queries[i]),
                                                  bytes_tensor(mod, "KEY_ID", [self.kid])])
            except Exception as e:  # noqa: BLE001
                self.note(f"good over {mod.__name__}: {str(e)[:300]}")
                continue
            self.check(i, r)

    def run(self):
        a = self.a
        samples = []
        ts = [threading.Thread(target=self.worker, args=(w,), daemon=True) for w in range(a.concurrency)]
        start = time.time()
        for t in ts:
            t.start()
        while time.time() - start < a.seconds:
            time.sleep(min(a.sample_s, max(0.0, a.seconds - (time.time() - start))))
            el = time.time() - start
            m = rss_mb(a.pid)
            samples.append((round(el, 1), round(m, 1)))
            with self.lock:
                c = dict(self.counts)
            print(f"t={el:6.0f}s rss={m:8.1f} MB {c}", flush=True)
        self.stop.set()
        for t in ts:
            t.join(120)
        warm = [m for t, m in samples if t >= a.warmup_s] or [m for _, m in samples]
        summary = {
            "server": a.label, "model": a.model, "seconds": a.seconds, "concurrency": a.concurrency,
            "bad_every": a.bad_every, **self.counts,
            "requests_per_s": round((self.counts["good_ok"] + self.counts["bad_refused"]) / a.seconds, 2),
            "rss_first_mb": samples[0][1], "rss_after_warmup_mb": warm[0], "rss_last_mb": samples[-1][1],
            "rss_max_mb": max(m for _, m in samples),
            "rss_growth_after_warmup_mb": round(samples[-1][1] - warm[0], 1),
            "rss_samples": samples, "unexpected_errors": self.unexpected[:20],
        }
        if a.out:
            with open(a.out, "w") as f:
                json.dump(summary, f, indent=1)
        print(json.dumps({k: v for k, v in summary.items() if k != "rss_samples"}, indent=1))
        ok = (self.counts["wrong"] == 0 and self.counts["unexpected"] == 0
              and summary["rss_growth_after_warmup_mb"] <= a.max_growth_mb)
        return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--http", required=True)
    p.add_argument("--grpc", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--model", default="digits_cryptonets")
    p.add_argument("--onnx", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--label", default="server")
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--bad-every", type=int, default=int(os.environ.get("SOAK_BAD_EVERY", 4)))
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--tol", type=float, default=float(os.environ.get("SOAK_TOL", 1.0)))
    p.add_argument("--sample-s", type=float, default=float(os.environ.get("SOAK_SAMPLE_S", 5)))
    p.add_argument("--warmup-s", type=float, default=None)
    p.add_argument("--max-growth-mb", type=float, default=float(os.environ.get("SOAK_MAX_GROWTH_MB", 64)))
    p.add_argument("--out")
    a = p.parse_args()
    if a.warmup_s is None:
        a.warmup_s = min(60.0, a.seconds / 5)
    sys.exit(Soak(a).run())


if __name__ == "__main__":
    main()
