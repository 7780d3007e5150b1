"""Shared by the peer scripts: the two parameter sets, the vectors, timing and the JSON line."""
import json
import os
import random
import statistics
import time

# (name, log2 N, ciphertext prime sizes) — the same as heinfer's crates/ckks/examples/peer_ops.rs.
# Scale 2^40 everywhere; each library adds its own special (key-switching) primes.
SETS = [("n8192", 13, [60, 40, 40]), ("n16384", 14, [60] + [40] * 6)]
LOG_SCALE = 40

# Each operation runs at least MIN_REPS times and for at least MIN_SECONDS, after a warm-up;
# the figure is the median. PEERS_MIN_SECONDS=0.2 gives a quick, noisier run.
MIN_REPS = int(os.environ.get("PEERS_MIN_REPS", "30"))
MIN_SECONDS = float(os.environ.get("PEERS_MIN_SECONDS", "2.0"))
MAX_REPS = 5000


def median_ms(fn):
    fn()  # warm-up: lazily built tables, allocator
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < MAX_REPS and (len(times) < MIN_REPS or time.perf_counter() - start < MIN_SECONDS):
        t = time.perf_counter()
        fn()  # the result is dropped inside the timed region, as in heinfer's example
        times.append((time.perf_counter() - t) * 1e3)
    return round(statistics.median(times), 4), len(times)


# BGV/BFV: the plaintext modulus (≡ 1 mod 2N for both sets, so all N slots are used).
PLAIN_MODULUS = 65537


def int_vector(slots, seed):
    """A fresh full-slot vector of uniform integers in [0, t)."""
    rnd = random.Random(seed)
    return [rnd.randrange(PLAIN_MODULUS) for _ in range(slots)]


def vector(slots, seed):
    """A fresh full-slot vector of uniform random reals in [-1, 1]."""
    rnd = random.Random(seed)
    return [rnd.uniform(-1.0, 1.0) for _ in range(slots)]


class Results:
    def __init__(self):
        self.rows = []

    def time(self, set_name, op, fn, note):
        ms, reps = median_ms(fn)
        self.rows.append({"set": set_name, "op": op, "ms": ms, "reps": reps, "note": note})


def emit(impl, version, results, **extra):
    print(json.dumps({"impl": impl, "version": version, "threads": 1, **extra, "results": results.rows}))
