"""TenSEAL's encrypted-MNIST tutorial network (Conv 7x7 s3 x4 -> x^2 -> FC 256->64 -> x^2 ->
FC 64->10), on the weights of models/tenseal_mnist_weights.npz, with the tutorial's
parameters: N = 8192, coefficient moduli [31, 26 x 6, 31], scale 2^26, im2col encoding.

Env: MNIST_DATA (dir with mnist28_test_img.npy), MNIST_TS_SAMPLES (images timed, default 3),
MNIST_THREADS (default 2). Prints one JSON line.
"""
import json
import os
import sys
import time

import numpy as np
import tenseal as ts

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models"))
import make_tenseal_mnist as net  # noqa: E402

w = {k: v.astype(np.float64) for k, v in np.load(os.path.join(HERE, "..", "..", "models", "tenseal_mnist_weights.npz")).items()}
x = np.load(os.path.join(os.environ["MNIST_DATA"], "mnist28_test_img.npy"))[:, 0]
n = int(os.environ.get("MNIST_TS_SAMPLES", "3"))
threads = int(os.environ.get("MNIST_THREADS", "2"))

ctx = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[31, 26, 26, 26, 26, 26, 26, 31], n_threads=threads)
ctx.global_scale = 2**26
t = time.perf_counter()
ctx.generate_galois_keys()
keygen_s = time.perf_counter() - t
eval_keys = len(ctx.serialize(save_public_key=False, save_secret_key=False, save_galois_keys=True, save_relin_keys=True))

conv_w = w["conv_w"].reshape(4, 7, 7).tolist()
conv_b = w["conv_b"].tolist()
fc1 = w["fc1_w"].T.tolist()
fc1_b = w["fc1_b"].tolist()
fc2 = w["fc2_w"].T.tolist()
fc2_b = w["fc2_b"].tolist()

enc_ms, eval_ms, dec_ms, outs = [], [], [], []
query = result = 0
for i in range(n):
    t = time.perf_counter()
    enc_x, windows = ts.im2col_encoding(ctx, x[i].tolist(), 7, 7, 3)
    enc_ms.append((time.perf_counter() - t) * 1e3)
    query = len(enc_x.serialize())
    t = time.perf_counter()
    chans = [enc_x.conv2d_im2col(k, windows) + b for k, b in zip(conv_w, conv_b)]
    y = ts.CKKSVector.pack_vectors(chans)
    y.square_()
    y = y.mm(fc1) + fc1_b
    y.square_()
    y = y.mm(fc2) + fc2_b
    eval_ms.append((time.perf_counter() - t) * 1e3)
    result = len(y.serialize())
    t = time.perf_counter()
    outs.append(y.decrypt())
    dec_ms.append((time.perf_counter() - t) * 1e3)

ref = net.forward(w, x[:n])
out = np.array(outs)
print(json.dumps({
    "impl": "tenseal", "version": getattr(ts, "__version__", "?"), "threads": threads, "samples": n,
    "ms": {"encrypt": float(np.median(enc_ms)), "evaluate": float(np.median(eval_ms)), "decrypt": float(np.median(dec_ms))},
    "bytes": {"evaluation_keys": eval_keys, "query": query, "result": result},
    "keygen_s": keygen_s,
    "max_abs_error_vs_plaintext": float(np.abs(out - ref).max()),
    "top1_agreement_vs_plaintext": float((out.argmax(1) == ref.argmax(1)).mean()),
    "max_abs_logit": float(np.abs(ref).max()),
}))
