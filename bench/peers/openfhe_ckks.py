"""OpenFHE (PyPI `openfhe`) timings of the CKKS operations heinfer compares, single-threaded.

Run with OMP_NUM_THREADS=1. OpenFHE chooses its own special primes (hybrid key
switching); its security check is off so that N = 8192 can be timed with this chain.
"""
import sys

import openfhe as o

from common import REPS, SETS, emit, median_ms, vector

results = []
for name, log_n, bits in SETS:
    n = 1 << log_n
    p = o.CCParamsCKKSRNS()
    p.SetRingDim(n)
    p.SetMultiplicativeDepth(len(bits) - 1)
    p.SetFirstModSize(bits[0])
    p.SetScalingModSize(bits[1])
    p.SetScalingTechnique(o.ScalingTechnique.FIXEDMANUAL)
    p.SetKeySwitchTechnique(o.KeySwitchTechnique.HYBRID)
    p.SetSecurityLevel(o.SecurityLevel.HEStd_NotSet)
    p.SetBatchSize(n // 2)
    cc = o.GenCryptoContext(p)
    for f in (o.PKESchemeFeature.PKE, o.PKESchemeFeature.KEYSWITCH, o.PKESchemeFeature.LEVELEDSHE):
        cc.Enable(f)
    keys = cc.KeyGen()
    cc.EvalMultKeyGen(keys.secretKey)
    steps = list(range(1, 9))
    cc.EvalRotateKeyGen(keys.secretKey, steps)
    v = vector(n // 2)
    enc = lambda: cc.Encrypt(keys.publicKey, cc.MakeCKKSPackedPlaintext(v))
    a, b = enc(), enc()
    reps = REPS[name]
    note = "OpenFHE's default digits and special primes"
    results.append({"set": name, "op": "mul_relin", "ms": median_ms(lambda: cc.EvalMult(a, b), reps), "note": note})
    results.append({"set": name, "op": "mul_relin_rescale", "ms": median_ms(lambda: cc.Rescale(cc.EvalMult(a, b)), reps), "note": note})
    results.append({"set": name, "op": "rotate", "ms": median_ms(lambda: cc.EvalRotate(a, 1), reps), "note": note})
    m = 2 * n

    def hoisted():
        pre = cc.EvalFastRotationPrecompute(a)
        for s in steps:
            cc.EvalFastRotation(a, s, m, pre)

    results.append({"set": name, "op": "hoisted_rotate_8", "ms": median_ms(hoisted, reps), "note": "EvalFastRotationPrecompute + 8 EvalFastRotation"})
    prod = cc.EvalMult(a, b)
    results.append({"set": name, "op": "rescale", "ms": median_ms(lambda: cc.Rescale(prod), reps), "note": "Rescale returns a new ciphertext"})
    results.append({"set": name, "op": "encrypt", "ms": median_ms(enc, reps), "note": "encode + public-key encrypt, full slots"})

    def dec():
        pt = cc.Decrypt(a, keys.secretKey)
        pt.SetLength(n // 2)
        pt.GetRealPackedValue()

    results.append({"set": name, "op": "decrypt", "ms": median_ms(dec, reps), "note": "decrypt + decode"})
    # Sanity: the product decrypts to the product of the inputs.
    pt = cc.Decrypt(cc.Rescale(prod), keys.secretKey)
    pt.SetLength(8)
    got = pt.GetRealPackedValue()
    if max(abs(g - x * x) for g, x in zip(got, v[:8])) > 1e-3:
        sys.exit(f"OpenFHE sanity check failed on {name}")
    print(f"openfhe {name} done", file=sys.stderr)

emit("openfhe", getattr(o, "__version__", "1.x"), results)
