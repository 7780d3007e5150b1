"""OpenFHE (PyPI `openfhe`, a CPython 3.10 module) timings of the CKKS operations heinfer compares.

Single-threaded: OMP_NUM_THREADS=1 (set here before the import if the caller did not).
Hybrid key switching with OpenFHE's own choice of digits (dnum 2 for depth <= 3, 3 above)
and special primes; the security check is off (HEStd_NotSet) because OpenFHE refuses
N = 8192 with this chain otherwise. FIXEDMANUAL scaling: EvalMult relinearises but
never rescales, so `mul_relin` is exactly multiply + relinearise.
Prints one JSON line (schema in bench/README.md); progress goes to stderr.
"""
import importlib.metadata
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import openfhe as o  # noqa: E402

from common import LOG_SCALE, SETS, Results, emit, vector  # noqa: E402

VERSION = getattr(o, "__version__", "unknown")
try:
    VERSION += f" (PyPI wheel {importlib.metadata.version('openfhe')})"
except importlib.metadata.PackageNotFoundError:
    pass

res = Results()
for si, (name, log_n, bits) in enumerate(SETS):
    n = 1 << log_n
    slots = n // 2
    p = o.CCParamsCKKSRNS()
    p.SetRingDim(n)
    p.SetMultiplicativeDepth(len(bits) - 1)
    p.SetFirstModSize(bits[0])
    p.SetScalingModSize(bits[1])
    assert all(b == LOG_SCALE for b in bits[1:])
    p.SetScalingTechnique(o.ScalingTechnique.FIXEDMANUAL)
    p.SetKeySwitchTechnique(o.KeySwitchTechnique.HYBRID)
    p.SetSecurityLevel(o.SecurityLevel.HEStd_NotSet)
    p.SetBatchSize(slots)
    cc = o.GenCryptoContext(p)
    for f in (o.PKESchemeFeature.PKE, o.PKESchemeFeature.KEYSWITCH, o.PKESchemeFeature.LEVELEDSHE):
        cc.Enable(f)
    keys = cc.KeyGen()
    cc.EvalMultKeyGen(keys.secretKey)
    steps = list(range(1, 9))
    cc.EvalRotateKeyGen(keys.secretKey, steps)
    m = cc.GetCyclotomicOrder()  # 2N

    v1, v2, v3 = vector(slots, 10 * si + 1), vector(slots, 10 * si + 2), vector(slots, 10 * si + 3)
    a = cc.Encrypt(keys.publicKey, cc.MakeCKKSPackedPlaintext(v1))
    b = cc.Encrypt(keys.publicKey, cc.MakeCKKSPackedPlaintext(v2))

    res.time(name, "mul_relin", lambda: cc.EvalMult(a, b), f"EvalMult (relinearises, FIXEDMANUAL: no rescale)")
    res.time(name, "mul_relin_rescale", lambda: cc.Rescale(cc.EvalMult(a, b)), f"EvalMult + Rescale")
    res.time(name, "rotate", lambda: cc.EvalRotate(a, 1), f"EvalRotate by 1")

    def hoisted():
        digits = cc.EvalFastRotationPrecompute(a)
        for s in steps:
            cc.EvalFastRotation(a, s, m, digits)

    res.time(name, "hoisted_rotate_8", hoisted, f"EvalFastRotationPrecompute + 8 x EvalFastRotation (steps 1..8)")
    prod = cc.EvalMult(a, b)
    res.time(name, "rescale", lambda: cc.Rescale(prod), "Rescale of a fresh product into a new ciphertext (copy + ModReduceInPlace)")
    res.time(
        name,
        "encrypt",
        lambda: cc.Encrypt(keys.publicKey, cc.MakeCKKSPackedPlaintext(v3)),
        "MakeCKKSPackedPlaintext + Encrypt (public key), full slots, from a Python list",
    )

    def dec():
        pt = cc.Decrypt(a, keys.secretKey)
        pt.SetLength(slots)
        pt.GetRealPackedValue()

    res.time(
        name,
        "decrypt",
        dec,
        "Decrypt (decodes) + GetRealPackedValue to a Python list, top-level ciphertext; OpenFHE's decryption "
        "cost grows steeply with the towers left (much cheaper at one tower)",
    )

    # Sanity: the products decrypt to the products of the inputs, and EvalMult relinearised.
    if prod.NumberCiphertextElements() != 2:
        sys.exit(f"OpenFHE: EvalMult left {prod.NumberCiphertextElements()} elements on {name}")
    pt = cc.Decrypt(cc.Rescale(prod), keys.secretKey)
    pt.SetLength(slots)
    got = pt.GetRealPackedValue()
    err = max(abs(g - x * y) for g, x, y in zip(got, v1, v2))
    if err > 1e-3:
        sys.exit(f"OpenFHE sanity check failed on {name}: max error {err}")
    r = cc.Decrypt(cc.EvalRotate(a, 1), keys.secretKey)
    r.SetLength(slots)
    if abs(r.GetRealPackedValue()[0] - v1[1]) > 1e-3:
        sys.exit(f"OpenFHE rotation sanity check failed on {name}")
    print(f"openfhe {name} done", file=sys.stderr)

emit(
    "openfhe",
    VERSION,
    res,
    omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
    key_switching="HYBRID with OpenFHE's default digits (dnum 2 for n8192, 3 for n16384) and special primes "
    "(ceil(largest digit's bits / 60) primes of 60 bits: 2 for n8192, 3 for n16384)",
)
