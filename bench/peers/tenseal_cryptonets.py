"""CryptoNets' network in TenSEAL's batched CKKSTensor (batch=True: one image per slot, as
heinfer's layout T), for `bench/peers.sh cryptonets`. Prints one JSON line.

TenSEAL has no sparse convolution on CKKSTensor and multiplies by every weight of a dense
`mm` (zeros included: the 784x845 Conv-as-matrix would be 662,480 products, hours here),
so the convolution is TenSEAL's im2col form: the client encrypts each output position's
25 window pixels ([positions, 25], 4,225 ciphertexts for the whole image) and the server
computes [positions, 25] x [25, 5]. The run covers CN_TS_POSITIONS (default 13, one row of
the 13x13 output map) of the 169 positions, on the whole batch, at the real levels:
Conv on those positions -> x^2 -> Dense from their 5*P features to 100 -> x^2 -> Dense
100->10, decrypted and checked against the same sub-network in float64. The Conv and first
Dense times are then scaled to the full network by their product counts (169/P and 845/(5P));
the rest is timed whole. Env: CN_DIR (cryptonets_prep.py's output), CN_TS_THREADS (2).
"""
import json
import os
import sys
import time

import numpy as np
import tenseal as ts

d = os.environ["CN_DIR"]
threads = int(os.environ.get("CN_TS_THREADS", "2"))
P = int(os.environ.get("CN_TS_POSITIONS", "13"))
w = {k: v.astype(np.float64) for k, v in np.load(os.path.join(d, "weights.npz")).items()}
x = np.fromfile(os.path.join(d, "x"), dtype="<f8").reshape(-1, 28, 28)
B = x.shape[0]

# im2col of the padded input for the first P output positions: [B, P, 25]
xp = np.zeros((B, 29, 29))
xp[:, 1:, 1:] = x
pos = [(i, j) for i in range(13) for j in range(13)][:P]
cols = np.stack([xp[:, 2 * i : 2 * i + 5, 2 * j : 2 * j + 5].reshape(B, 25) for i, j in pos], 1)
feat = [m * 169 + i * 13 + j for m in range(5) for (i, j) in pos]  # flatten index of each conv output
# TenSEAL's [P, 5] conv output flattened row-major is position-major: reorder W1's columns to match.
order = [m * 169 + i * 13 + j for (i, j) in pos for m in range(5)]
fc1 = w["fc1_w"][:, order]  # [100, 5P]

ctx = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[31, 26, 26, 26, 26, 26, 31], n_threads=threads)
ctx.global_scale = 2**26
ctx.auto_relin = True
ctx.auto_rescale = True
ctx.auto_mod_switch = True
eval_keys = len(ctx.serialize(save_public_key=False, save_secret_key=False, save_galois_keys=False, save_relin_keys=True))

t = time.perf_counter()
enc = ts.ckks_tensor(ctx, ts.plain_tensor(cols.reshape(B, P * 25)), batch=True)
encrypt_s = time.perf_counter() - t
request_bytes = len(enc.serialize())

laps = {}
t0 = time.perf_counter()
t = t0
h = enc.reshape([P, 25]).mm(w["conv_w"].T)  # [P, 5]
h = h + np.tile(w["conv_b"], (P, 1))
laps["conv"] = time.perf_counter() - t
t = time.perf_counter()
h.square_()
laps["square1"] = time.perf_counter() - t
t = time.perf_counter()
h = h.reshape([1, P * 5]).mm(fc1.T) + w["fc1_b"].reshape(1, 100)
laps["dense1"] = time.perf_counter() - t
t = time.perf_counter()
h.square_()
laps["square2"] = time.perf_counter() - t
t = time.perf_counter()
out = h.mm(w["fc2_w"].T) + w["fc2_b"].reshape(1, 10)
laps["dense2"] = time.perf_counter() - t
measured_s = time.perf_counter() - t0
answer_bytes = len(out.serialize())
t = time.perf_counter()
got = np.array(out.decrypt().tolist()).reshape(B, 10)
decrypt_s = time.perf_counter() - t

# The same sub-network in float64.
c = np.einsum("npk,mk->npm", cols, w["conv_w"]) + w["conv_b"]
ref = ((c.reshape(B, P * 5) ** 2) @ fc1.T + w["fc1_b"]) ** 2 @ w["fc2_w"].T + w["fc2_b"]

full = dict(laps)
full["conv"] *= 169 / P
full["square1"] *= 169 / P
full["dense1"] *= 845 / (5 * P)
eval_s = sum(full.values())
print(json.dumps({
    "impl": "tenseal", "version": ts.__version__, "threads": threads, "batch": B, "positions_run": P,
    "measured_s": measured_s, "laps_s": laps, "eval_s": eval_s, "images_per_s": B / eval_s,
    "encrypt_s_measured": encrypt_s, "decrypt_s": decrypt_s,
    "request_bytes_per_image": request_bytes * (169 / P) / B, "answer_bytes": answer_bytes,
    "eval_key_bytes": eval_keys, "keys": "relinearisation",
    "agreement_subnetwork": float((got.argmax(1) == ref.argmax(1)).mean()),
    "max_abs_error_subnetwork": float(np.abs(got - ref).max()),
}))
