//! Noise of one operation, measured: encrypt random values at scale 2^s, apply the op,
//! decrypt, and print the rms and max slot error in units of the scale (i.e. × 2^s).
use ckks::{Decryptor, Encoder, Evaluator, KeyGenerator, Parameters};
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let log_n: u32 = a[1].parse().unwrap();
    let q: Vec<u32> = a[2].split(',').map(|s| s.parse().unwrap()).collect();
    let p: Vec<u32> = a[3].split(',').map(|s| s.parse().unwrap()).collect();
    let dnum: usize = a[4].parse().unwrap();
    let params = Parameters::builder()
        .log_n(log_n)
        .q_bits(&q)
        .p_bits(&p)
        .dnum(dnum)
        .log_scale(q[1] as f64)
        .build_insecure_for_testing()
        .unwrap();
    let enc = Encoder::new(&params);
    let ev = Evaluator::new(&params);
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let keys = kg.evaluation_keys(&sk, &[1, 64], false, true);
    let mut dec = Decryptor::new(&sk);
    let s = params.slots();
    let v: Vec<f64> = (0..s).map(|i| ((i * 7919) % 1000) as f64 / 1000.0 - 0.5).collect();
    let scale = 2f64.powi(q[1] as i32);
    let lvl = params.max_level();
    let ct = dec.encrypt_symmetric(&enc.encode(&v, lvl, scale).unwrap()).unwrap().expand();
    let report = |name: &str, ct: &ckks::Ciphertext, want: &[f64]| {
        let got = enc.decode(&dec.decrypt(ct).unwrap()).unwrap();
        let e: Vec<f64> = got.iter().zip(want).map(|(g, w)| (g - w) * ct.scale()).collect();
        let rms = (e.iter().map(|x| x * x).sum::<f64>() / e.len() as f64).sqrt();
        let mx = e.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        println!("{name:>12}: rms {rms:>10.1} max {mx:>10.1}   (N = {})", params.n());
    };
    report("fresh", &ct, &v);
    let rot: Vec<f64> = (0..s).map(|j| v[(j + 1) % s]).collect();
    let r = ev.rotate(&ct, 1, &keys.galois).unwrap();
    report("rotate", &r, &rot);
    let r2 = ev.rotate(&r, 1, &keys.galois).unwrap();
    let rot2: Vec<f64> = (0..s).map(|j| v[(j + 2) % s]).collect();
    report("rotate x2", &r2, &rot2);
    let m = ev.rescale(&ev.mul_const_scaled(&ct, 1.0, scale).unwrap()).unwrap();
    report("x1 rescale", &m, &v);
    let sq = ev.square_relin(&ct, keys.relin.as_ref().unwrap()).unwrap();
    let vv: Vec<f64> = v.iter().map(|x| x * x).collect();
    report("square", &sq, &vv);
    let sqr = ev.rescale(&sq).unwrap();
    report("square+resc", &sqr, &vv);
    let low = ev.drop_level(&ct, 1).unwrap();
    report("rot @lvl1", &ev.rotate(&low, 1, &keys.galois).unwrap(), &rot);
}
