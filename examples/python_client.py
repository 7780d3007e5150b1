"""Encrypted digits through Triton (or `heinfer serve`) with tritonclient and heinfer.

    python examples/python_client.py [--url 127.0.0.1:8000] [--model digits_cryptonets] [--grpc] [-n 5]

The server needs the compiled model in its repository (`heinfer compile` or
`heinfer.compile`); it never sees the digits nor the predictions in the clear.
"""
import argparse
import os

import numpy as np

import heinfer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--url", default="127.0.0.1:8000", help="server address (use the gRPC port with --grpc, 8001 on Triton)")
ap.add_argument("--model", default="digits_cryptonets")
ap.add_argument("--grpc", action="store_true", help="tritonclient.grpc instead of tritonclient.http")
ap.add_argument("-n", type=int, default=5, help="how many test digits")
args = ap.parse_args()

if args.grpc:
    import tritonclient.grpc as tc
else:
    import tritonclient.http as tc
triton = tc.InferenceServerClient(args.url)

# The client spec (CKKS parameters, input layout, rotations) is in the model config.
client = heinfer.Client.from_server(triton, args.model)        # secret key stays here
print(f"{client}: evaluation keys {len(client.evaluation_keys) / 2**20:.1f} MiB, key id {client.key_id[:16]}…")

x = np.load(os.path.join(ROOT, "models", "data", "digits_test_img.npy"))[: args.n]
y = np.load(os.path.join(ROOT, "models", "data", "digits_test_y.npy"))[: args.n]
proto = "grpc" if args.grpc else "http"
for i, (xi, label) in enumerate(zip(x, y)):
    # ENCRYPTED_INPUT + KEY_ID (+ EVALUATION_KEYS with the first request: the server keeps them)
    inputs = client.infer_inputs(xi, protocol=proto, send_keys=(i == 0))
    result = triton.infer(args.model, inputs, outputs=client.infer_outputs(proto))
    logits = client.decrypt(result.as_numpy("ENCRYPTED_OUTPUT"))
    print(f"digit {i}: predicted {int(np.argmax(logits))}, label {int(label)}")
