"""Concrete ML (TFHE) on the digits MLP: its NeuralNetClassifier shaped like heinfer's
models/digits_mlp.onnx (64 -> 32 ReLU -> 10; quantization-aware training with Concrete ML's
default 4-bit weights and activations; CONCRETE_MLP_BITS sets
both, CONCRETE_MLP_EPOCHS the training epochs, default 60) trained on the same split (bench/peers/digits_prep.py),
compiled, then per sample through the client/server API: keys once, then encrypt -> server run ->
decrypt, with the FHE execution time, evaluation-key, query and answer bytes, and agreement of
the decrypted class with the same model run in the clear (fhe="disable").
Prints one JSON line. argv: DIR TIMED_SAMPLES."""
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

from concrete.ml.deployment import FHEModelClient, FHEModelDev, FHEModelServer
from concrete.ml.sklearn import NeuralNetClassifier

d, timed = sys.argv[1], int(sys.argv[2])
xtr, ytr = np.load(f"{d}/mlp_train_x.npy"), np.load(f"{d}/mlp_train_y.npy")
xte, yte = np.load(f"{d}/mlp_test_x.npy"), np.load(f"{d}/mlp_test_y.npy")
timed = min(timed, len(xte))
bits = int(os.environ.get("CONCRETE_MLP_BITS", "4"))
torch.manual_seed(0)
np.random.seed(0)
model = NeuralNetClassifier(
    module__n_layers=2,                           # two Linear layers: one hidden layer
    module__n_hidden_neurons_multiplier=0.5,      # hidden = int(64 * 0.5) = 32 neurons
    module__activation_function=nn.ReLU,
    module__n_w_bits=bits, module__n_a_bits=bits,  # Concrete ML's default: 4
    max_epochs=int(os.environ.get("CONCRETE_MLP_EPOCHS", "60")), lr=0.01, verbose=0,
)
t = time.perf_counter()
model.fit(xtr, ytr)
fit_s = time.perf_counter() - t
clear = np.asarray(model.predict(xte, fhe="disable"))
t = time.perf_counter()
circuit = model.compile(xtr)
compile_s = time.perf_counter() - t
acc_bits = circuit.graph.maximum_integer_bit_width()
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
    agree, q_bytes, a_bytes, t_enc, t_run, t_dec = 0, 0, 0, 0.0, 0.0, 0.0
    for i in range(timed):
        t = time.perf_counter()
        q = client.quantize_encrypt_serialize(xte[i:i + 1])
        t_enc += time.perf_counter() - t
        t = time.perf_counter()
        a = server.run(q, ek)
        t_run += time.perf_counter() - t
        t = time.perf_counter()
        p = client.deserialize_decrypt_dequantize(a)
        t_dec += time.perf_counter() - t
        q_bytes, a_bytes = len(q), len(a)
        agree += int(np.argmax(np.asarray(p).reshape(-1)) == clear[i])
print(json.dumps({
    "library": "concrete-ml", "model": "digits_mlp", "samples": timed, "agreement": agree / timed,
    "clear_accuracy": float(np.mean(clear == yte)), "n_bits": bits, "max_bit_width": int(acc_bits),
    "ms_per_sample": {"encrypt": 1e3 * t_enc / timed, "evaluate": 1e3 * t_run / timed, "decrypt": 1e3 * t_dec / timed},
    "bytes": {"query": q_bytes, "answer": a_bytes, "keys": len(ek)},
    "seconds": {"fit": fit_s, "compile": compile_s, "keygen": keygen_s},
}))
