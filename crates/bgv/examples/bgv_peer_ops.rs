//! Times the BGV operations that `bench/peers.sh bgv` compares against OpenFHE's BGVrns
//! and SEAL's BFV (in TenSEAL), on the same ring degrees, moduli and t = 65537, and prints
//! one JSON line. Run single-threaded for the comparison: `RAYON_NUM_THREADS=1`.

use std::time::Instant;

use bgv::*;

// As in ckks's peer_ops: mimalloc keeps the megabyte buffers the hot paths free and take.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const T: u64 = 65537;

/// Median of at least `reps` runs and of `PEERS_MIN_SECONDS` (default 2 s, as the peers'
/// loop in bench/peers/common.py): on a loaded machine a short loop catches one burst.
fn median_ms(mut f: impl FnMut(), reps: usize) -> f64 {
    let min_s: f64 = std::env::var("PEERS_MIN_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2.0);
    f(); // warm-up: caches, lazily built tables
    let start = Instant::now();
    let mut t: Vec<f64> = Vec::new();
    while t.len() < 5000 && (t.len() < reps || start.elapsed().as_secs_f64() < min_s) {
        let s = Instant::now();
        f();
        t.push(s.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[t.len() / 2]
}

fn main() {
    // Run on the pool's own thread: calls from outside it pay a cross-thread hand-off per parallel region.
    let threads = std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).use_current_thread().build_global();
    let reps_scale: f64 = std::env::var("PEERS_REPS_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0);
    // The chains and key-switching split of ckks's peer_ops (and of bench/peers/common.py):
    // dnum and special-prime count as OpenFHE picks for these depths, each special prime of
    // ⌈digit bits / count⌉ bits. Built with the test-only constructor, as there, because
    // OpenFHE's 60-bit special primes take Q·P past the 128-bit bound at N = 8192.
    type Set = (&'static str, u32, Vec<u32>, usize, usize, usize);
    let sets: [Set; 2] =
        [("n8192", 13, vec![60, 40, 40], 2, 2, 60), ("n16384", 14, vec![60, 40, 40, 40, 40, 40, 40], 3, 3, 25)];
    let mut results = Vec::new();
    let mut push = |set: &str, op: &str, ms: f64, note: &str| {
        eprintln!("{set:>7} {op:<18} {ms:9.3} ms");
        results.push(serde_json::json!({"set": set, "op": op, "ms": ms, "note": note}));
    };
    for (name, log_n, q, dnum, specials, reps) in sets {
        let reps = ((reps as f64 * reps_scale) as usize).max(3);
        let alpha = q.len().div_ceil(dnum);
        let digit: u32 = q.chunks(alpha).map(|c| c.iter().sum()).max().unwrap_or(0);
        let p = vec![digit.div_ceil(specials as u32); specials];
        let params = Parameters::builder()
            .log_n(log_n)
            .q_bits(&q)
            .dnum(dnum)
            .p_bits(&p)
            .plaintext_modulus(T)
            .build_insecure_for_testing()
            .unwrap();
        let note = format!(
            "t = {T}, dnum={} and {} special primes of {:?} bits, log2 QP = {:.0}",
            params.rlwe().dnum(),
            p.len(),
            p,
            params.rlwe().log_qp()
        );
        let mut kg = KeyGenerator::new(&params);
        let sk = kg.secret_key();
        let pk = kg.public_key(&sk);
        let rk = kg.relin_key(&sk);
        let steps: Vec<i64> = (1..=8).collect();
        let gk = kg.galois_keys(&sk, &steps, false);
        let enc = Encoder::new(&params);
        let eval = Evaluator::new(&params);
        let mut encryptor = Encryptor::new(&params, &pk).unwrap();
        let dec = Decryptor::new(&params, &sk).unwrap();
        let v: Vec<i64> = (0..params.n() as i64).map(|i| (i * 7919) % T as i64).collect();
        let w: Vec<i64> = (0..params.n() as i64).map(|i| (i * 104729 + 3) % T as i64).collect();
        let top = params.max_level();
        let a = encryptor.encrypt(&enc.encode(&v, top).unwrap()).unwrap();
        let b = encryptor.encrypt(&enc.encode(&w, top).unwrap()).unwrap();

        // Sanity, so that a fast wrong answer is never reported.
        let prod = eval.mul_relin(&a, &b, &rk).unwrap();
        let got = enc.decode(&dec.decrypt(&prod).unwrap()).unwrap();
        assert!(got.iter().zip(v.iter().zip(&w)).all(|(&g, (&x, &y))| g == (x * y) as u64 % T), "product wrong");
        let rot = enc.decode(&dec.decrypt(&eval.rotate_columns(&a, 1, &gk).unwrap()).unwrap()).unwrap();
        assert_eq!(rot[0], v[1] as u64, "rotation wrong");

        push(name, "mul_relin", median_ms(|| drop(eval.mul_relin(&a, &b, &rk).unwrap()), reps), &note);
        push(
            name,
            "mul_relin_modswitch",
            median_ms(|| drop(eval.mod_switch(&eval.mul_relin(&a, &b, &rk).unwrap()).unwrap()), reps),
            &note,
        );
        push(name, "rotate", median_ms(|| drop(eval.rotate_columns(&a, 1, &gk).unwrap()), reps), &note);
        push(
            name,
            "hoisted_rotate_8",
            median_ms(|| drop(eval.rotate_columns_hoisted(&a, &steps, &gk).unwrap()), reps),
            &note,
        );
        push(name, "mod_switch", median_ms(|| drop(eval.mod_switch(&prod).unwrap()), reps), "");
        push(
            name,
            "encrypt",
            median_ms(|| drop(encryptor.encrypt(&enc.encode(&v, top).unwrap()).unwrap()), reps),
            "batch encode + public-key encrypt, all N slots",
        );
        push(
            name,
            "decrypt",
            median_ms(|| drop(enc.decode(&dec.decrypt(&a).unwrap()).unwrap()), reps),
            "decrypt + batch decode, top-level ciphertext",
        );
    }
    let threads = rayon::current_num_threads();
    println!(
        "{}",
        serde_json::json!({"impl": "heinfer", "version": env!("CARGO_PKG_VERSION"), "threads": threads, "scheme": "bgv", "results": results})
    );
}
