"""Prepares perf_analyzer's input data for one layout of a served heinfer model.

    python bench/perf_prepare.py HTTP_URL MODEL LAYOUT OUT_JSON

Makes a client for the layout (heinfer.client_for), registers its bundle with one real
request (whose answer is decrypted and checked against onnxruntime's top-1 on the same
digits), then writes perf_analyzer's `--input-data` JSON: one request of that layout
(ENCRYPTED_INPUT, base64 of Triton's serialized BYTES tensor, and KEY_ID). Prints the
samples one request carries and the request's bytes. LAYOUT `merged`: MODEL is a merged
twin (`heinfer compile --merged`), and the JSON holds B requests, one digit in each block."""
import base64
import json
import os
import struct
import sys

import numpy as np
import onnxruntime as ort
import tritonclient.http as th

import heinfer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def serialized(elements):
    """Triton's wire form of a BYTES tensor: each element as a u32 length and its bytes."""
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def merged(cli, model, out, onnx):
    """The merged twin (`<model>_merged`): one digit per request, B requests of B blocks."""
    spec = heinfer.client_spec_from_config(cli.get_model_config(model))
    base = model[: -len(heinfer.MERGED_SUFFIX)]
    c = heinfer.client_for(spec, layout="M", model_name=base)
    b = c.max_batch
    x = np.load(os.path.join(ROOT, "models", "data", "digits_test_img.npy")).astype(np.float64)
    x = x.reshape(len(x), -1)[:b]
    ys = [c.infer_merged(cli, x[i], i, model_name=model, send_keys=(i == 0)) for i in range(b)]
    ref = ort.InferenceSession(onnx)
    want = ref.run(None, {ref.get_inputs()[0].name: x.astype(np.float32).reshape(
        [b] + [d if isinstance(d, int) else 1 for d in ref.get_inputs()[0].shape[1:]])})[0].argmax(-1)
    agree = float(np.mean(np.asarray(ys).argmax(-1) == want))
    assert agree >= 0.9, f"merged: decrypted top-1 agrees with onnxruntime on {agree:.2%} only"
    # One data step per block: perf_analyzer sends them in turn, so requests in flight
    # together hold different blocks (up to B of them merge).
    steps = []
    for i in range(b):
        cts = c.encrypt_block(x[i], i)
        steps.append({
            "ENCRYPTED_INPUT": {"content": {"b64": base64.b64encode(serialized(cts)).decode()}, "shape": [len(cts)]},
            "KEY_ID": {"content": [c.key_id], "shape": [1]},
            "BLOCK": {"content": [i], "shape": [1]},
        })
    with open(out, "w") as f:
        json.dump({"data": steps}, f)
    print(1, sum(len(e) for e in cts), f"{agree:.4f}")


def main(url, model, layout, out, onnx):
    cli = th.InferenceServerClient(url, connection_timeout=600, network_timeout=600)
    if layout == "merged":
        return merged(cli, model, out, onnx)
    spec = heinfer.client_spec_from_config(cli.get_model_config(model))
    c = heinfer.client_for(spec, layout=layout, model_name=model)
    x = np.load(os.path.join(ROOT, "models", "data", "digits_test_img.npy")).astype(np.float64)
    n = getattr(c, "max_batch", 1)
    x = x.reshape(len(x), -1)[:n]
    y = c.infer(cli, x if n > 1 else x[0])
    ref = ort.InferenceSession(onnx)
    want = ref.run(None, {ref.get_inputs()[0].name: x.astype(np.float32).reshape(
        [n] + [d if isinstance(d, int) else 1 for d in ref.get_inputs()[0].shape[1:]])})[0].argmax(-1)
    got = np.asarray(y).reshape(n, -1).argmax(-1)
    agree = float(np.mean(got == want))
    assert agree >= 0.9, f"layout {layout}: decrypted top-1 agrees with onnxruntime on {agree:.2%} only"
    cts = c.encrypt_batch(x) if n > 1 else c.encrypt(x[0])
    data = {"data": [{
        "ENCRYPTED_INPUT": {"content": {"b64": base64.b64encode(serialized(cts)).decode()}, "shape": [len(cts)]},
        "KEY_ID": {"content": [c.key_id], "shape": [1]},
    }]}
    with open(out, "w") as f:
        json.dump(data, f)
    print(n, sum(len(e) for e in cts), f"{agree:.4f}")


if __name__ == "__main__":
    main(*sys.argv[1:6])
