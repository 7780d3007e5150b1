"""TenSEAL (PyPI `tenseal`) timings of the CKKS operations heinfer compares, single-threaded.

TenSEAL's CKKSVector rescales automatically after a product, so its `mul_relin`
includes a rescale; it exposes no rotation of a CKKSVector, so rotations are not timed.
SEAL's last prime is its special prime: [60, 40, 40, 60] is the chain [60, 40, 40]
with one 60-bit special prime.
"""
import sys

import tenseal as ts

from common import REPS, SETS, emit, median_ms, vector

results = []
for name, log_n, bits in SETS:
    n = 1 << log_n
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=n, coeff_mod_bit_sizes=bits + [60], n_threads=1)
    ctx.global_scale = 2**40
    ctx.generate_galois_keys()
    v = vector(n // 2)
    a = ts.ckks_vector(ctx, v)
    b = ts.ckks_vector(ctx, v)
    reps = REPS[name]
    results.append({"set": name, "op": "mul_relin_rescale", "ms": median_ms(lambda: a * b, reps), "note": "TenSEAL rescales after every product"})
    results.append({"set": name, "op": "encrypt", "ms": median_ms(lambda: ts.ckks_vector(ctx, v), reps), "note": "encode + public-key encrypt, full slots"})
    results.append({"set": name, "op": "decrypt", "ms": median_ms(lambda: a.decrypt(), reps), "note": "decrypt + decode"})
    got = (a * b).decrypt()[:8]
    if max(abs(g - x * x) for g, x in zip(got, v[:8])) > 1e-3:
        sys.exit(f"TenSEAL sanity check failed on {name}")
    print(f"tenseal {name} done", file=sys.stderr)

emit("tenseal", ts.__version__, results)
