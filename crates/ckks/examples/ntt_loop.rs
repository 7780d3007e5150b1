//! Loops one transform for a profiler: `ntt_loop <log_n> <bits> <fwd|inv> <reps>`.
use ring::{arith::Modulus, ntt::NttTable, primes::ntt_primes};
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let log_n: u32 = a.get(1).and_then(|s| s.parse().ok()).unwrap_or(14);
    let bits: u32 = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(40);
    let fwd = a.get(3).map(|s| s != "inv").unwrap_or(true);
    let reps: usize = a.get(4).and_then(|s| s.parse().ok()).unwrap_or(20000);
    let n = 1usize << log_n;
    let q = ntt_primes(bits, n, 1, &[]).unwrap()[0];
    let t = NttTable::new(Modulus::new(q), n).unwrap();
    let mut buf: Vec<u64> = (0..n as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % q).collect();
    let s = std::time::Instant::now();
    for _ in 0..reps {
        if fwd {
            t.forward(&mut buf)
        } else {
            t.inverse(&mut buf)
        }
    }
    eprintln!("{:.2} µs", s.elapsed().as_secs_f64() * 1e6 / reps as f64);
}
