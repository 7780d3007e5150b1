"""Prepares a KServe-v2 binary request for a load generator: reads the client spec
from a running server, makes keys, registers them (one request carrying
EVALUATION_KEYS), encrypts one test digit and writes the request body (JSON header +
binary tensors) that `hey` posts over and over. Prints the JSON-header length, which
goes in the Inference-Header-Content-Length header.

    python bench/load_prepare.py HOST:PORT MODEL OUT_BODY
"""
import os
import sys

import numpy as np
import tritonclient.http as th

import heinfer

url, model, out = sys.argv[1:4]
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
x = np.load(os.path.join(root, "models", "data", "digits_test_img.npy"))[0]
cli = th.InferenceServerClient(url, connection_timeout=600, network_timeout=600)
c = heinfer.Client.from_server(cli, model)
# Register the keys once, checking the answer decrypts to the plaintext model's class.
res = cli.infer(model, c.infer_inputs(x, protocol="http", send_keys=True), outputs=c.infer_outputs("http"))
y = c.decrypt(res.as_numpy("ENCRYPTED_OUTPUT"))
body, header_len = th.InferenceServerClient.generate_request_body(
    c.infer_inputs(x, protocol="http"), outputs=c.infer_outputs("http"))
with open(out, "wb") as f:
    f.write(body)
print(header_len, len(body), len(c.evaluation_keys), int(np.argmax(y)))
