"""OpenFHE (PyPI `openfhe`, a CPython 3.10 module) timings of the BGV operations heinfer compares.

BGVrns with t = 65537, the chains of common.SETS (first prime 60 bits, the others 40:
FIXEDMANUAL takes its moduli from FirstModSize and ScalingModSize), HYBRID key switching with
OpenFHE's own digits and special primes, HEStd_NotSet as in openfhe_ckks.py. FIXEDMANUAL:
EvalMult relinearises and never switches modulus, so `mul_relin` is exactly multiply +
relinearise. Single-threaded: OMP_NUM_THREADS=1 (set here before the import if the caller did not).
Prints one JSON line (schema in bench/README.md); progress goes to stderr.
"""
import importlib.metadata
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import openfhe as o  # noqa: E402

from common import SETS, Results, emit, int_vector, PLAIN_MODULUS  # noqa: E402

VERSION = getattr(o, "__version__", "unknown")
try:
    VERSION += f" (PyPI wheel {importlib.metadata.version('openfhe')})"
except importlib.metadata.PackageNotFoundError:
    pass

res = Results()
moduli = {}
for si, (name, log_n, bits) in enumerate(SETS):
    n = 1 << log_n
    p = o.CCParamsBGVRNS()
    p.SetPlaintextModulus(PLAIN_MODULUS)
    p.SetRingDim(n)
    p.SetMultiplicativeDepth(len(bits) - 1)
    p.SetFirstModSize(bits[0])
    p.SetScalingModSize(bits[1])
    p.SetScalingTechnique(o.ScalingTechnique.FIXEDMANUAL)
    p.SetKeySwitchTechnique(o.KeySwitchTechnique.HYBRID)
    p.SetSecurityLevel(o.SecurityLevel.HEStd_NotSet)
    cc = o.GenCryptoContext(p)
    for f in (o.PKESchemeFeature.PKE, o.PKESchemeFeature.KEYSWITCH, o.PKESchemeFeature.LEVELEDSHE):
        cc.Enable(f)
    if cc.GetRingDimension() != n:
        sys.exit(f"OpenFHE chose ring dimension {cc.GetRingDimension()} for {name}, not {n}")
    try:
        moduli[name] = f"log2 Q = {int(cc.GetModulus()).bit_length()}"
    except Exception:  # noqa: BLE001 — older wheels lack GetModulus; the note says so
        moduli[name] = "log2 Q not exposed by this wheel"
    keys = cc.KeyGen()
    cc.EvalMultKeyGen(keys.secretKey)
    steps = list(range(1, 9))
    cc.EvalRotateKeyGen(keys.secretKey, steps)
    m = cc.GetCyclotomicOrder()

    v1, v2, v3 = int_vector(n, 10 * si + 1), int_vector(n, 10 * si + 2), int_vector(n, 10 * si + 3)
    a = cc.Encrypt(keys.publicKey, cc.MakePackedPlaintext(v1))
    b = cc.Encrypt(keys.publicKey, cc.MakePackedPlaintext(v2))

    res.time(name, "mul_relin", lambda: cc.EvalMult(a, b), "EvalMult (relinearises; FIXEDMANUAL: no modulus switch)")
    res.time(name, "mul_relin_modswitch", lambda: cc.ModReduce(cc.EvalMult(a, b)), "EvalMult + ModReduce")
    res.time(name, "rotate", lambda: cc.EvalRotate(a, 1), "EvalRotate by 1")

    def hoisted():
        digits = cc.EvalFastRotationPrecompute(a)
        for s in steps:
            cc.EvalFastRotation(a, s, m, digits)

    res.time(name, "hoisted_rotate_8", hoisted, "EvalFastRotationPrecompute + 8 x EvalFastRotation (steps 1..8)")
    prod = cc.EvalMult(a, b)
    res.time(name, "mod_switch", lambda: cc.ModReduce(prod), "ModReduce of a fresh product into a new ciphertext")
    res.time(
        name,
        "encrypt",
        lambda: cc.Encrypt(keys.publicKey, cc.MakePackedPlaintext(v3)),
        "MakePackedPlaintext + Encrypt (public key), all N slots, from a Python list",
    )

    def dec():
        pt = cc.Decrypt(a, keys.secretKey)
        pt.SetLength(n)
        pt.GetPackedValue()

    res.time(name, "decrypt", dec, "Decrypt (decodes) + GetPackedValue to a Python list, top-level ciphertext")

    # Sanity: exact products mod t, and a rotation that moves slot 1 to slot 0.
    t = PLAIN_MODULUS
    pt = cc.Decrypt(cc.ModReduce(prod), keys.secretKey)
    pt.SetLength(n)
    got = pt.GetPackedValue()
    if any((g - x * y) % t for g, x, y in zip(got, v1, v2)):
        sys.exit(f"OpenFHE BGV sanity check failed on {name}: the product is not exact")
    r = cc.Decrypt(cc.EvalRotate(a, 1), keys.secretKey)
    r.SetLength(n)
    if (r.GetPackedValue()[0] - v1[1]) % t:
        sys.exit(f"OpenFHE BGV rotation sanity check failed on {name}")
    print(f"openfhe {name} done ({moduli[name]})", file=sys.stderr)

emit(
    "openfhe",
    VERSION,
    res,
    omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
    scheme="bgv",
    key_switching="BGVrns, t = 65537, HYBRID with OpenFHE's default digits and 60-bit special primes; "
    + ", ".join(f"{k}: {v}" for k, v in moduli.items()),
)
