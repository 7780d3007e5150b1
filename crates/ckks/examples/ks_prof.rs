//! Loops one key switch for a profiler: `perf record -g target/release/examples/ks_prof 14 rotate`.
use ckks::*;
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
fn main() {
    let _ = rayon::ThreadPoolBuilder::new().num_threads(1).use_current_thread().build_global();
    let args: Vec<String> = std::env::args().collect();
    let log_n: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(14);
    let op = args.get(2).cloned().unwrap_or_else(|| "rotate".into());
    let pb: u32 = std::env::var("PBITS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let (q, dnum, p): (Vec<u32>, usize, Vec<u32>) = if log_n == 13 {
        (vec![60, 40, 40], 2, vec![pb; 2])
    } else {
        (vec![60, 40, 40, 40, 40, 40, 40], 3, vec![pb; 3])
    };
    let params = Parameters::builder()
        .log_n(log_n)
        .q_bits(&q)
        .dnum(dnum)
        .p_bits(&p)
        .log_scale(40.0)
        .build_insecure_for_testing()
        .unwrap();
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let pk = kg.public_key(&sk);
    let rk = kg.relin_key(&sk);
    let gk = kg.galois_keys(&sk, &[1], false);
    let enc = Encoder::new(&params);
    let eval = Evaluator::new(&params);
    let mut encryptor = Encryptor::new(&pk);
    let v: Vec<f64> = (0..params.slots()).map(|i| (i % 100) as f64 / 100.0).collect();
    let a = encryptor.encrypt(&enc.encode(&v, params.max_level(), params.default_scale()).unwrap()).unwrap();
    let reps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(300);
    let t = std::time::Instant::now();
    for _ in 0..reps {
        if op == "rotate" {
            drop(eval.rotate(&a, 1, &gk).unwrap())
        } else {
            drop(eval.mul_relin(&a, &a, &rk).unwrap())
        }
    }
    eprintln!("{op}: {:.3} ms", t.elapsed().as_secs_f64() * 1e3 / reps as f64);
}
