"""Concrete ML (TFHE) on the breast-cancer logistic regression: trained the same way as
heinfer's (StandardScaler + LogisticRegression(max_iter=1000) on the same split), compiled,
then per sample through the client/server API: FHE execution time on the server, evaluation
key, query and answer bytes, agreement of the decrypted class with the clear float model.
Prints one JSON line. argv: DIR TIMED_SAMPLES."""
import json
import os
import sys
import tempfile
import time

import numpy as np
from sklearn.linear_model import LogisticRegression as SkLR
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from concrete.ml.deployment import FHEModelClient, FHEModelDev, FHEModelServer
from concrete.ml.sklearn import LogisticRegression

d, timed = sys.argv[1], int(sys.argv[2])
xtr, ytr = np.load(f"{d}/train_x.npy"), np.load(f"{d}/train_y.npy")
xte = np.load(f"{d}/test_x.npy")
clear = make_pipeline(StandardScaler(), SkLR(max_iter=1000)).fit(xtr, ytr)
scaler = clear.steps[0][1]
model = LogisticRegression(max_iter=1000)  # Concrete ML's default quantization (n_bits=8)
model.fit(scaler.transform(xtr), ytr)
t = time.perf_counter()
model.compile(scaler.transform(xtr))
compile_s = time.perf_counter() - t
with tempfile.TemporaryDirectory() as tmp:
    dev = os.path.join(tmp, "dev")
    FHEModelDev(dev, model).save()
    client = FHEModelClient(dev, key_dir=os.path.join(tmp, "keys"))
    server = FHEModelServer(dev)
    server.load()
    t = time.perf_counter()
    client.generate_private_and_evaluation_keys()
    keygen_s = time.perf_counter() - t
    ek = client.get_serialized_evaluation_keys()
    xs = scaler.transform(xte[:timed])
    agree, q_bytes, a_bytes, t_enc, t_run, t_dec = 0, 0, 0, 0.0, 0.0, 0.0
    want = clear.predict(xte[:timed])
    for i in range(timed):
        t = time.perf_counter()
        q = client.quantize_encrypt_serialize(xs[i:i + 1])
        t_enc += time.perf_counter() - t
        t = time.perf_counter()
        a = server.run(q, ek)
        t_run += time.perf_counter() - t
        t = time.perf_counter()
        p = client.deserialize_decrypt_dequantize(a)
        t_dec += time.perf_counter() - t
        q_bytes, a_bytes = len(q), len(a)
        agree += int(np.argmax(p[0]) == want[i]) if np.ndim(p) == 2 and p.shape[1] > 1 else int((p.ravel()[0] > 0.5) == want[i])
print(json.dumps({
    "library": "concrete-ml", "samples": timed, "agreement": agree / timed,
    "ms_per_sample": {"encrypt": 1e3 * t_enc / timed, "evaluate": 1e3 * t_run / timed, "decrypt": 1e3 * t_dec / timed},
    "bytes": {"query": q_bytes, "answer": a_bytes, "keys": len(ek)},
    "seconds": {"compile": compile_s, "keygen": keygen_s},
}))
