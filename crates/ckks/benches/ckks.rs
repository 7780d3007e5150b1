//! Criterion benchmarks of the engine's operations at the two reference sizes:
//! (a) N = 8192, q = [60, 40, 40] bits; (b) N = 16384, q = [60, 6×40] bits, with
//! the special primes heinfer chooses. Single-threaded (a one-thread rayon pool),
//! to compare with the single-threaded peers in `bench/peers.sh ckks`.
//! The NTT is also timed against `tfhe-ntt` (the fastest Rust NTT crate) on the same prime.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

use ckks::*;
use ring::arith::Modulus;
use ring::ntt::NttTable;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn sets() -> Vec<(&'static str, Parameters)> {
    vec![
        ("n8192", Parameters::builder().log_n(13).q_bits(&[60, 40, 40]).p_bits(&[60]).build().unwrap()),
        (
            "n16384",
            Parameters::builder().log_n(14).q_bits(&[60, 40, 40, 40, 40, 40, 40]).p_bits(&[50, 50]).build().unwrap(),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    // The calling thread becomes the pool's only worker: no hand-off between threads.
    let _ = rayon::ThreadPoolBuilder::new().num_threads(1).use_current_thread().build_global();
    {
        for (name, params) in sets() {
            let mut g = c.benchmark_group(name);
            g.sample_size(20);
            for bits in [40usize, 60] {
                let q = if bits == 40 { params.q()[1] } else { params.q()[0] };
                let table = NttTable::new(Modulus::new(q), params.n()).unwrap();
                let mut buf: Vec<u64> = (0..params.n() as u64).map(|i| i * 7 % q).collect();
                g.bench_function(BenchmarkId::new("ntt_forward/heinfer", bits), |b| b.iter(|| table.forward(&mut buf)));
                g.bench_function(BenchmarkId::new("ntt_inverse/heinfer", bits), |b| b.iter(|| table.inverse(&mut buf)));
                let plan = tfhe_ntt::prime64::Plan::try_new(params.n(), q).unwrap();
                g.bench_function(BenchmarkId::new("ntt_forward/tfhe-ntt", bits), |b| b.iter(|| plan.fwd(&mut buf)));
                g.bench_function(BenchmarkId::new("ntt_inverse/tfhe-ntt", bits), |b| b.iter(|| plan.inv(&mut buf)));
            }
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
            let v: Vec<f64> = (0..params.slots()).map(|i| (i % 100) as f64 / 100.0).collect();
            let top = params.max_level();
            let s = params.default_scale();
            let a = encryptor.encrypt(&enc.encode(&v, top, s).unwrap()).unwrap();
            let b2 = a.clone();
            g.bench_function("mul_relin", |b| b.iter(|| eval.mul_relin(&a, &b2, &rk).unwrap()));
            g.bench_function("rotate", |b| b.iter(|| eval.rotate(&a, 1, &gk).unwrap()));
            for k in [4usize, 8] {
                g.bench_function(BenchmarkId::new("hoisted_rotate", k), |b| {
                    b.iter(|| eval.rotate_hoisted(&a, &steps[..k], &gk).unwrap())
                });
            }
            let prod = eval.mul_relin(&a, &b2, &rk).unwrap();
            g.bench_function("rescale", |b| b.iter(|| eval.rescale(&prod).unwrap()));
            g.bench_function("encrypt", |b| b.iter(|| encryptor.encrypt(&enc.encode(&v, top, s).unwrap()).unwrap()));
            g.bench_function("decrypt", |b| b.iter(|| enc.decode(&dec.decrypt(&a).unwrap()).unwrap()));
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
