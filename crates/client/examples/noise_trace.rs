//! Where does the noise come from? Runs a compiled model on real ciphertexts node by
//! node, decrypts every value and compares it with the plaintext simulation, then
//! prints per op kind and per layer the error each node adds (its error minus the
//! largest error of its operands, as a first-order attribution).
//!
//!   cargo run --release -p client --example noise_trace -- <model dir> <inputs.npy> [samples]

use std::collections::BTreeMap;

use ckks::{Ciphertext, Decryptor, Encoder, Evaluator, KeyGenerator, Parameters, PreparedPlaintext};
use model::{HeModel, Op};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::Path::new(&args[1]);
    let data = compiler::npy::read(std::path::Path::new(&args[2])).expect("inputs");
    let samples: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(2);
    let model = HeModel::read_file(dir.join("1/model.hem")).expect("model.hem");
    let params = Parameters::from_spec(&model.client.params).unwrap();
    let enc = Encoder::new(&params);
    let eval = Evaluator::new(&params);
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let keys = kg.evaluation_keys(&sk, &model.client.rotation_steps, false, true);
    let mut dec = Decryptor::new(&sk);
    let pts: Vec<PreparedPlaintext> = model
        .plaintexts
        .iter()
        .map(|p| PreparedPlaintext::new(enc.encode(&p.values, p.level as usize, p.scale).unwrap()))
        .collect();
    let n = model.nodes.len();
    let mut added: Vec<f64> = vec![0.0; n];
    let mut total: Vec<f64> = vec![0.0; n];
    let mut time: Vec<f64> = vec![0.0; n];
    for s in 0..samples {
        let x = data.row(s);
        let inputs = model.client.pack_input(x).unwrap();
        let sim = model::sim::simulate_values(&model, &inputs).unwrap();
        let mut vals: Vec<Ciphertext> = Vec::with_capacity(n);
        let mut err = vec![0.0f64; n];
        for (i, node) in model.nodes.iter().enumerate() {
            let v = |a: u32| &vals[a as usize];
            let t0 = std::time::Instant::now();
            let ct = match node.op {
                Op::Input { index } => {
                    let pt = enc.encode(&inputs[index as usize], node.level as usize, node.scale).unwrap();
                    dec.encrypt_symmetric(&pt).unwrap().expand()
                }
                Op::Add { a, b } => eval.add(v(a), v(b)).unwrap(),
                Op::Sub { a, b } => eval.sub(v(a), v(b)).unwrap(),
                Op::AddPlain { a, pt } => eval.add_plain(v(a), pts[pt as usize].plaintext()).unwrap(),
                Op::MulPlain { a, pt } => eval.mul_prepared(v(a), &pts[pt as usize]).unwrap(),
                Op::AddConst { a, c } => eval.add_const(v(a), c).unwrap(),
                Op::MulConst { a, c, pt_scale } => eval.mul_const_scaled(v(a), c, pt_scale).unwrap(),
                Op::MulRelin { a, b } => eval.mul_relin(v(a), v(b), keys.relin.as_ref().unwrap()).unwrap(),
                Op::Square { a } => eval.square_relin(v(a), keys.relin.as_ref().unwrap()).unwrap(),
                Op::Rescale { a } => eval.rescale(v(a)).unwrap(),
                Op::DropLevel { a, level } => eval.drop_level(v(a), level as usize).unwrap(),
                Op::Rotate { a, step } => eval.rotate(v(a), step, &keys.galois).unwrap(),
            };
            time[i] += t0.elapsed().as_secs_f64() / samples as f64;
            let got = enc.decode(&dec.decrypt(&ct).unwrap()).unwrap();
            err[i] = got.iter().zip(&sim[i]).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max);
            let before = node.op.operands().iter().map(|&o| err[o as usize]).fold(0.0, f64::max);
            added[i] += (err[i] - before).max(0.0) / samples as f64;
            total[i] += err[i] / samples as f64;
            vals.push(ct);
        }
    }
    println!("{:>5} {:>10} {:>4} {:>6} {:>12} {:>12}", "node", "op", "lvl", "layer", "err", "added");
    for (i, node) in model.nodes.iter().enumerate() {
        println!(
            "{i:>5} {:>10} {:>4} {:>6} {:>12.3e} {:>12.3e}",
            node.op.name(),
            node.level,
            node.layer,
            total[i],
            added[i]
        );
    }
    let mut by: BTreeMap<(u32, &str), (usize, f64, f64)> = BTreeMap::new();
    for (i, node) in model.nodes.iter().enumerate() {
        let e = by.entry((node.layer, node.op.name())).or_default();
        e.0 += 1;
        e.1 = e.1.max(added[i]);
        e.2 += time[i];
    }
    println!("\nper layer and op: count, largest error added by one node, ms (one thread, not hoisted)");
    for ((l, op), (c, m, t)) in by {
        println!("layer {l} {op:>10}: {c:>4}  {m:.3e}  {:>8.2}", t * 1e3);
    }
    println!("total {:.2} ms", time.iter().sum::<f64>() * 1e3);
}
