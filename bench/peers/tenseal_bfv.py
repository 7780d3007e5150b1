"""SEAL's BFV (as TenSEAL ships it, PyPI `tenseal`) timings of the operations heinfer's BGV
compares, single-threaded, t = 65537 and the chains of common.SETS plus one 60-bit special
prime (SEAL key switching: one special prime, one digit per ciphertext prime).

  - `encrypt`, `decrypt` are TenSEAL's own BFVVector calls (`ts.bfv_vector(ctx, v)`, `v.decrypt()`);
  - `mul_relin` and `rotate` use the SEAL bindings that the tenseal wheel ships
    (`tenseal.sealapi`, the same SEAL build): Evaluator.multiply + relinearize_inplace, and
    rotate_rows by 1. BFV has no modulus switching in its product (it scales by t/Q inside
    the multiplication), so `mul_relin` is the whole product.
Prints one JSON line (schema in bench/README.md); progress goes to stderr.
"""
import sys

import tenseal as ts
import tenseal.sealapi as seal

from common import SETS, Results, emit, int_vector, PLAIN_MODULUS

SPECIAL = 60
SEALAPI = "SEAL BFV via tenseal.sealapi"

res = Results()
for si, (name, log_n, bits) in enumerate(SETS):
    n = 1 << log_n
    t = PLAIN_MODULUS
    v1, v2, v3 = int_vector(n, 10 * si + 1), int_vector(n, 10 * si + 2), int_vector(n, 10 * si + 3)

    # --- TenSEAL's own API ---
    ctx = ts.context(
        ts.SCHEME_TYPE.BFV, poly_modulus_degree=n, plain_modulus=t, coeff_mod_bit_sizes=bits + [SPECIAL], n_threads=1
    )
    a = ts.bfv_vector(ctx, v1)
    res.time(name, "encrypt", lambda: ts.bfv_vector(ctx, v3), "ts.bfv_vector: batch encode + public-key encrypt, all N slots, from a Python list")
    res.time(name, "decrypt", lambda: a.decrypt(), "BFVVector.decrypt: decrypt + decode to a Python list")
    got = (a * ts.bfv_vector(ctx, v2)).decrypt()
    if any((g - x * y) % t for g, x, y in zip(got, v1, v2)):
        sys.exit(f"TenSEAL BFV sanity check failed on {name}")

    # --- the SEAL bindings shipped in the same wheel ---
    parms = seal.EncryptionParameters(seal.SCHEME_TYPE.BFV)
    parms.set_poly_modulus_degree(n)
    parms.set_coeff_modulus(seal.CoeffModulus.Create(n, bits + [SPECIAL]))
    parms.set_plain_modulus(seal.Modulus(t))
    sctx = seal.SEALContext(parms, True, seal.SEC_LEVEL_TYPE.NONE)
    kg = seal.KeyGenerator(sctx)
    pk = seal.PublicKey()
    kg.create_public_key(pk)
    rk = seal.RelinKeys()
    kg.create_relin_keys(rk)
    gk = seal.GaloisKeys()
    # Galois elements: a row (column, in heinfer's words) rotation left by k is 3^k mod 2N in SEAL.
    kg.create_galois_keys([pow(3, k, 2 * n) for k in range(1, 9)], gk)
    encoder = seal.BatchEncoder(sctx)
    encryptor = seal.Encryptor(sctx, pk)
    decryptor = seal.Decryptor(sctx, kg.secret_key())
    ev = seal.Evaluator(sctx)

    def encrypt(v):
        pt = seal.Plaintext()
        encoder.encode(v, pt)
        ct = seal.Ciphertext(sctx)
        encryptor.encrypt(pt, ct)
        return ct

    def decrypt(ct):
        pt = seal.Plaintext()
        decryptor.decrypt(ct, pt)
        return encoder.decode_int64(pt)

    sa, sb = encrypt(v1), encrypt(v2)

    def mul_relin():
        out = seal.Ciphertext(sctx)
        ev.multiply(sa, sb, out)
        ev.relinearize_inplace(out, rk)
        return out

    def rotate():
        out = seal.Ciphertext(sctx)
        ev.rotate_rows(sa, 1, gk, out)
        return out

    res.time(name, "mul_relin", mul_relin, f"Evaluator.multiply + relinearize_inplace; {SEALAPI}")
    res.time(name, "rotate", rotate, f"Evaluator.rotate_rows by 1; {SEALAPI}")
    got = decrypt(mul_relin())
    if any((g - x * y) % t for g, x, y in zip(got, v1, v2)) or (decrypt(rotate())[0] - v1[1]) % t:
        sys.exit(f"SEAL BFV (sealapi) sanity check failed on {name}")
    print(f"tenseal {name} done", file=sys.stderr)

emit("tenseal", ts.__version__, res, scheme="bfv", key_switching="SEAL BFV: one 60-bit special prime, one digit per ciphertext prime")
