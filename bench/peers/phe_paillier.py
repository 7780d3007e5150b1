"""python-paillier (PyPI `phe`) on the folded breast-cancer logistic regression.

usage: phe_paillier.py MODEL.json — prints one JSON line: key generation time, per-sample
median milliseconds of encrypt (the 30 inputs), evaluate (Σ w·x + b on the ciphertexts, then
`ciphertext()` of the score, which is when phe re-randomizes — obfuscates — an answer before
it is sent), evaluate_no_obfuscation, decrypt; and the bytes of phe's documented JSON
serialization of the request and the answer. phe is much faster with gmpy2: `have_gmpy2` says
whether it was in use.
"""
import json
import statistics
import sys
import time

import phe
import phe.util
from phe import paillier

KEY_BITS = 3072
m = json.load(open(sys.argv[1]))
W, B, X = m["weights"], m["bias"], m["x"][: m["timed"]]

t = time.perf_counter()
pk, sk = paillier.generate_paillier_keypair(n_length=KEY_BITS)
keygen_s = time.perf_counter() - t


def ser(cts):
    # phe's documented serialization: the ciphertext as a decimal string with its exponent
    return json.dumps({"public_key": {"n": str(pk.n)}, "values": [(str(c.ciphertext()), c.exponent) for c in cts]})


times = {k: [] for k in ("encrypt", "evaluate", "evaluate_no_obfuscation", "decrypt")}
scores, request, answer = [], 0, 0
for x in X:
    t = time.perf_counter()
    enc = [pk.encrypt(v) for v in x]
    req = ser(enc)
    times["encrypt"].append((time.perf_counter() - t) * 1e3)
    request = len(req)
    for name in ("evaluate_no_obfuscation", "evaluate"):
        t = time.perf_counter()
        out = []
        for row, b in zip(W, B):
            s = enc[0] * row[0]
            for c, w in zip(enc[1:], row[1:]):
                s = s + c * w
            out.append(s + b)
        if name == "evaluate":
            ans = ser(out)  # ciphertext() obfuscates each score: phe's re-randomization
        times[name].append((time.perf_counter() - t) * 1e3)
    answer = len(ans)
    t = time.perf_counter()
    vals = [sk.decrypt(s) for s in out]
    times["decrypt"].append((time.perf_counter() - t) * 1e3)
    scores.append(vals)

print(json.dumps({
    "impl": "phe",
    "version": phe.__version__,
    "have_gmpy2": bool(phe.util.HAVE_GMP),
    "threads": 1,
    "key_bits": pk.n.bit_length(),
    "keygen_s": keygen_s,
    "timed": len(X),
    "ms": {k: round(statistics.median(v), 4) for k, v in times.items()},
    "bytes": {"request": request, "answer": answer, "request_binary": len(X[0]) * 2 * KEY_BITS // 8},
    "scores": scores,
}))
