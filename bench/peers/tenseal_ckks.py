"""TenSEAL (PyPI `tenseal`) timings of the CKKS operations heinfer compares, single-threaded.

TenSEAL's CKKSVector rescales automatically after every product and has no rotation, so:
  - `mul_relin_rescale`, `encrypt`, `decrypt` are TenSEAL's own CKKSVector calls
    (`v1 * v2`, `ts.ckks_vector(ctx, v)`, `v.decrypt()`);
  - `mul_relin`, `rotate`, `rescale` use the SEAL bindings that the tenseal wheel ships
    (`tenseal.sealapi`: the same SEAL build that CKKSVector runs on), with the same N,
    moduli and scale: Evaluator.multiply + relinearize_inplace, rotate_vector by 1,
    rescale_to_next. Every such row says so in its note.
  - `hoisted_rotate_8` is not timed: SEAL has no hoisted rotation.
SEAL's last prime is its special prime: [60, 40, 40, 60] is the chain [60, 40, 40] with one
60-bit special prime (SEAL key switching is always a single special prime, dnum = L).
Prints one JSON line (schema in bench/README.md); progress goes to stderr.
"""
import sys

import tenseal as ts
import tenseal.sealapi as seal

from common import LOG_SCALE, SETS, Results, emit, vector

SPECIAL = 60
SEALAPI = "SEAL via tenseal.sealapi (CKKSVector has no such op)"

res = Results()
for si, (name, log_n, bits) in enumerate(SETS):
    n = 1 << log_n
    slots = n // 2
    v1, v2, v3 = vector(slots, 10 * si + 1), vector(slots, 10 * si + 2), vector(slots, 10 * si + 3)

    # --- TenSEAL's own API ---
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=n, coeff_mod_bit_sizes=bits + [SPECIAL], n_threads=1)
    ctx.global_scale = 2.0**LOG_SCALE
    ctx.generate_galois_keys()
    a = ts.ckks_vector(ctx, v1)
    b = ts.ckks_vector(ctx, v2)
    res.time(name, "mul_relin_rescale", lambda: a * b, "TenSEAL v1 * v2: multiply + relinearise + rescale (it cannot separate them)")
    res.time(name, "encrypt", lambda: ts.ckks_vector(ctx, v3), "ts.ckks_vector: encode + public-key encrypt, full slots, from a Python list")
    res.time(name, "decrypt", lambda: a.decrypt(), "CKKSVector.decrypt: decrypt + decode to a Python list")
    got = (a * b).decrypt()
    err = max(abs(g - x * y) for g, x, y in zip(got, v1, v2))
    if err > 1e-3:
        sys.exit(f"TenSEAL sanity check failed on {name}: max error {err}")

    # --- the SEAL bindings shipped in the same wheel, for the ops CKKSVector lacks ---
    parms = seal.EncryptionParameters(seal.SCHEME_TYPE.CKKS)
    parms.set_poly_modulus_degree(n)
    parms.set_coeff_modulus(seal.CoeffModulus.Create(n, bits + [SPECIAL]))
    sctx = seal.SEALContext(parms, True, seal.SEC_LEVEL_TYPE.TC128)
    kg = seal.KeyGenerator(sctx)
    pk = seal.PublicKey()
    kg.create_public_key(pk)
    rk = seal.RelinKeys()
    kg.create_relin_keys(rk)
    gk = seal.GaloisKeys()
    # This binding takes Galois elements, not steps: a left rotation by k is 3^k mod 2N in SEAL.
    kg.create_galois_keys([pow(3, k, 2 * n) for k in range(1, 9)], gk)
    encoder = seal.CKKSEncoder(sctx)
    encryptor = seal.Encryptor(sctx, pk)
    decryptor = seal.Decryptor(sctx, kg.secret_key())
    ev = seal.Evaluator(sctx)

    def encrypt(v):
        pt = seal.Plaintext()
        encoder.encode(v, 2.0**LOG_SCALE, pt)
        ct = seal.Ciphertext(sctx)
        encryptor.encrypt(pt, ct)
        return ct

    def decrypt(ct):
        pt = seal.Plaintext()
        decryptor.decrypt(ct, pt)
        return encoder.decode_double(pt)

    sa, sb = encrypt(v1), encrypt(v2)

    def mul_relin():
        out = seal.Ciphertext(sctx)
        ev.multiply(sa, sb, out)
        ev.relinearize_inplace(out, rk)
        return out

    def rotate():
        out = seal.Ciphertext(sctx)
        ev.rotate_vector(sa, 1, gk, out)
        return out

    prod = mul_relin()

    def rescale():
        out = seal.Ciphertext(sctx)
        ev.rescale_to_next(prod, out)
        return out

    res.time(name, "mul_relin", mul_relin, f"Evaluator.multiply + relinearize_inplace; {SEALAPI}")
    res.time(name, "rotate", rotate, f"Evaluator.rotate_vector by 1; {SEALAPI}")
    res.time(name, "rescale", rescale, f"Evaluator.rescale_to_next into a new ciphertext; {SEALAPI}")
    got = decrypt(rescale())
    err = max(abs(g - x * y) for g, x, y in zip(got, v1, v2))
    if err > 1e-3 or abs(decrypt(rotate())[0] - v1[1]) > 1e-3:
        sys.exit(f"SEAL (sealapi) sanity check failed on {name}: max error {err}")
    print(f"tenseal {name} done", file=sys.stderr)

emit("tenseal", ts.__version__, res, key_switching="SEAL: one 60-bit special prime, one digit per ciphertext prime")
