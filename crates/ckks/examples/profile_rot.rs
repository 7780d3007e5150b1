use ckks::*;
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
fn main() {
    rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(run);
}
fn run() {
    let params = Parameters::builder().log_n(13).q_bits(&[60, 40, 40]).p_bits(&[60]).build().unwrap();
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let pk = kg.public_key(&sk);
    let rk = kg.relin_key(&sk);
    let gk = kg.galois_keys(&sk, &[1], false);
    let enc = Encoder::new(&params);
    let eval = Evaluator::new(&params);
    let v = vec![0.5; params.slots()];
    let a = Encryptor::new(&pk).encrypt(&enc.encode(&v, 2, params.default_scale()).unwrap()).unwrap();
    let op = std::env::args().nth(1).unwrap_or_default();
    let t = std::time::Instant::now();
    for _ in 0..1000 {
        if op == "rot" {
            drop(eval.rotate(&a, 1, &gk).unwrap());
        } else {
            drop(eval.mul_relin(&a, &a, &rk).unwrap());
        }
    }
    eprintln!("{op}: {:.3} ms", t.elapsed().as_secs_f64() * 1.0);
}
