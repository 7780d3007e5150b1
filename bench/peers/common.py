"""Shared by the peer scripts: the two parameter sets, the operations and timing."""
import json
import random
import statistics
import time

# (name, log2 N, ciphertext prime sizes) — the same as heinfer's crates/ckks/examples/peer_ops.rs
SETS = [("n8192", 13, [60, 40, 40]), ("n16384", 14, [60] + [40] * 6)]
REPS = {"n8192": 60, "n16384": 25}


def median_ms(fn, reps):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def vector(slots, seed=1):
    rnd = random.Random(seed)
    return [rnd.uniform(-1, 1) for _ in range(slots)]


def emit(impl, version, results):
    print(json.dumps({"impl": impl, "version": version, "threads": 1, "results": results}))
