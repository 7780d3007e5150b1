//! heinfer's NTT against tfhe-ntt's prime64 plan on the same prime and size, interleaved
//! so both see the same machine load: `cargo run --release -p ckks --example ntt_race`.
//! Prints the median time of each and their ratio, per size, prime width and direction.

use std::time::Instant;

use ring::arith::Modulus;
use ring::ntt::NttTable;
use ring::primes::ntt_primes;

fn time(f: &mut dyn FnMut(), reps: usize) -> f64 {
    let s = Instant::now();
    for _ in 0..reps {
        f();
    }
    s.elapsed().as_secs_f64() * 1e6 / reps as f64
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|v| v.parse().ok()).unwrap_or(31);
    println!("{:>6} {:>4} {:>8} {:>12} {:>12} {:>7}", "n", "bits", "dir", "heinfer µs", "tfhe-ntt µs", "ratio");
    for log_n in [13u32, 14] {
        let n = 1usize << log_n;
        for bits in [40u32, 50, 60] {
            let q = ntt_primes(bits, n, 1, &[]).unwrap()[0];
            let table = NttTable::new(Modulus::new(q), n).unwrap();
            let plan = tfhe_ntt::prime64::Plan::try_new(n, q).unwrap();
            let mut buf: Vec<u64> = (0..n as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % q).collect();
            let reps = (1 << 21) / n;
            for dir in ["forward", "inverse"] {
                let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..rounds {
                    let a = if dir == "forward" {
                        time(&mut || table.forward(&mut buf), reps)
                    } else {
                        time(&mut || table.inverse(&mut buf), reps)
                    };
                    let b = if dir == "forward" {
                        time(&mut || plan.fwd(&mut buf), reps)
                    } else {
                        time(&mut || plan.inv(&mut buf), reps)
                    };
                    ours.push(a);
                    theirs.push(b);
                    ratios.push(a / b);
                }
                let med = |v: &mut Vec<f64>| {
                    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
                    v[v.len() / 2]
                };
                println!(
                    "{n:>6} {bits:>4} {dir:>8} {:>12.1} {:>12.1} {:>7.2}",
                    med(&mut ours),
                    med(&mut theirs),
                    med(&mut ratios)
                );
            }
        }
    }
}
