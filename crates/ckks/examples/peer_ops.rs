//! Times the operations that `bench/peers.sh ckks` compares against TenSEAL and
//! OpenFHE, on the same ring degrees and moduli, and prints one JSON line.
//! Run single-threaded for the comparison: `RAYON_NUM_THREADS=1`.

use std::time::Instant;

use ckks::*;

// The hot paths allocate and free megabyte buffers; glibc returns them to the OS
// and faults them back in on every operation. mimalloc keeps them.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn median_ms(mut f: impl FnMut(), reps: usize) -> f64 {
    f(); // warm-up: caches, lazily built tables
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[reps / 2]
}

fn main() {
    // Run on the pool's own thread: calls from outside it pay a cross-thread hand-off per parallel region.
    let threads = std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).use_current_thread().build_global();
    run();
}

fn run() {
    // Key switching split as OpenFHE sets it up for these chains (HYBRID, its defaults):
    // dnum 2 for depth ≤ 3 and 3 above, and ⌈largest digit's bits / 60⌉ special primes
    // (bench/peers/openfhe_ckks.py). The same number of digits and of special primes on
    // both sides: those set how many NTTs a key switch costs. Each library picks the size
    // of its special primes: OpenFHE 60 bits (its word); heinfer the fewest bits that still
    // cover the largest digit (⌈digit bits / count⌉: 50 and 47 here), so its primes take the
    // floating-point kernels and key-switching noise stays below one digit's share. Like
    // OpenFHE's (run with HEStd_NotSet), these
    // Q·P exceed the 128-bit bound for their N, so they are built with the test-only
    // constructor; the cost of each operation does not depend on that check.
    type Set = (&'static str, u32, Vec<u32>, usize, usize, usize);
    let sets: [Set; 2] =
        [("n8192", 13, vec![60, 40, 40], 2, 2, 60), ("n16384", 14, vec![60, 40, 40, 40, 40, 40, 40], 3, 3, 25)];
    let mut results = Vec::new();
    let mut push = |set: &str, op: &str, ms: f64, note: &str| {
        eprintln!("{set:>7} {op:<18} {ms:9.3} ms");
        results.push(serde_json::json!({"set": set, "op": op, "ms": ms, "note": note}));
    };
    for (name, log_n, q, dnum, specials, reps) in sets {
        let alpha = q.len().div_ceil(dnum);
        let digit: u32 = q.chunks(alpha).map(|c| c.iter().sum()).max().unwrap_or(0);
        let p = vec![digit.div_ceil(specials as u32); specials];
        let params = Parameters::builder()
            .log_n(log_n)
            .q_bits(&q)
            .dnum(dnum)
            .p_bits(&p)
            .log_scale(40.0)
            .build_insecure_for_testing()
            .unwrap();
        let note = format!(
            "dnum={} and {} special primes (as OpenFHE's), of {:?} bits, log2 QP = {:.0} (above the 128-bit bound, as OpenFHE's)",
            params.dnum(),
            p.len(),
            p,
            params.log_qp()
        );
        let mut kg = KeyGenerator::new(&params);
        let sk = kg.secret_key();
        let pk = kg.public_key(&sk);
        let rk = kg.relin_key(&sk);
        let steps: Vec<i64> = (1..=8).collect();
        let gk = kg.galois_keys(&sk, &steps, false);
        let enc = Encoder::new(&params);
        let eval = Evaluator::new(&params);
        let mut encryptor = Encryptor::new(&pk);
        let dec = Decryptor::new(&sk);
        let v: Vec<f64> = (0..params.slots()).map(|i| ((i * 7919) % 1000) as f64 / 1000.0).collect();
        let top = params.max_level();
        let scale = params.default_scale();
        let a = encryptor.encrypt(&enc.encode(&v, top, scale).unwrap()).unwrap();
        let b = encryptor.encrypt(&enc.encode(&v, top, scale).unwrap()).unwrap();

        let table = ring::ntt::NttTable::new(ring::arith::Modulus::new(params.q()[1]), params.n()).unwrap();
        let mut buf: Vec<u64> = (0..params.n() as u64).map(|i| i * 31 % params.q()[1]).collect();
        push(name, "ntt_forward", median_ms(|| table.forward(&mut buf), reps * 20), "one 40-bit limb");
        push(name, "mul_relin", median_ms(|| drop(eval.mul_relin(&a, &b, &rk).unwrap()), reps), &note);
        push(
            name,
            "mul_relin_rescale",
            median_ms(|| drop(eval.rescale(&eval.mul_relin(&a, &b, &rk).unwrap()).unwrap()), reps),
            &note,
        );
        push(name, "rotate", median_ms(|| drop(eval.rotate(&a, 1, &gk).unwrap()), reps), &note);
        push(name, "hoisted_rotate_8", median_ms(|| drop(eval.rotate_hoisted(&a, &steps, &gk).unwrap()), reps), &note);
        let prod = eval.mul_relin(&a, &b, &rk).unwrap();
        push(name, "rescale", median_ms(|| drop(eval.rescale(&prod).unwrap()), reps), "");
        push(
            name,
            "encrypt",
            median_ms(|| drop(encryptor.encrypt(&enc.encode(&v, top, scale).unwrap()).unwrap()), reps),
            "encode + public-key encrypt, full slots",
        );
        push(
            name,
            "decrypt",
            median_ms(|| drop(enc.decode(&dec.decrypt(&a).unwrap()).unwrap()), reps),
            "decrypt + decode",
        );
    }
    let threads = rayon::current_num_threads();
    println!(
        "{}",
        serde_json::json!({"impl": "heinfer", "version": env!("CARGO_PKG_VERSION"), "threads": threads, "results": results})
    );
}
