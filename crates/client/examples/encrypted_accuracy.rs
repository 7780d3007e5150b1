//! Encrypted inference on real data, end to end in one process: the client encrypts
//! each test sample under the compiled model's spec, the runtime evaluates it, the
//! client decrypts. Reports top-1 agreement with the plaintext simulation and with the
//! labels, the largest logit difference, and the time per sample.
//!
//! cargo run --release -p client --example encrypted_accuracy -- <model.hem> <inputs.npy> <labels.npy> [samples]

use std::sync::Arc;
use std::time::Instant;

use ckks::{Ciphertext, Decryptor, Encoder, KeyGenerator, Parameters};
use runtime::{CompiledModel, Executable, KeyStore, Request, Service};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: encrypted_accuracy <model.hem> <inputs.npy> <labels.npy> [samples]");
        std::process::exit(2);
    }
    let m = model::HeModel::read_file(&args[1]).expect("model");
    let xs = compiler::npy::read(args[2].as_ref()).expect("inputs");
    let ys = compiler::npy::read(args[3].as_ref()).expect("labels");
    let count = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(xs.rows()).min(xs.rows());
    let spec = m.client.clone();
    let params = Parameters::from_spec(&spec.params).expect("params");
    let t = Instant::now();
    let compiled = CompiledModel::load(m.clone()).expect("load");
    let load_s = t.elapsed().as_secs_f64();
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let bundle = kg.evaluation_keys(&sk, compiled.rotation_steps(), false, compiled.needs_relinearization()).to_bytes();
    let service = Service::new(compiled.into_executable(), Arc::new(KeyStore::new(1 << 32, None).unwrap()))
        .with_input_level(spec.input.level as usize, spec.input.scale);
    let id = service.register(&bundle).expect("keys");
    let hex = id.hex();
    let enc = Encoder::new(&params);
    let mut dec = Decryptor::new(&sk);
    let (mut agree, mut correct, mut sim_correct) = (0, 0, 0);
    let mut max_err: f64 = 0.0;
    let mut eval_s = 0.0;
    for i in 0..count {
        let x = xs.row(i);
        let slots = spec.pack_input(x).expect("pack");
        let cts: Vec<Vec<u8>> = slots
            .iter()
            .map(|v| {
                let pt = enc.encode(v, spec.input.level as usize, spec.input.scale).unwrap();
                dec.encrypt_symmetric(&pt).unwrap().to_bytes()
            })
            .collect();
        let t = Instant::now();
        let out = service
            .infer(Request {
                ciphertexts: cts.iter().map(|c| &c[..]).collect(),
                key_id: Some(hex.as_bytes()),
                evaluation_keys: None,
            })
            .expect("infer");
        eval_s += t.elapsed().as_secs_f64();
        let decoded: Vec<Vec<f64>> = out
            .ciphertexts
            .iter()
            .map(|b| enc.decode(&dec.decrypt(&Ciphertext::from_bytes(&params, b).unwrap()).unwrap()).unwrap())
            .collect();
        let logits = spec.unpack_output(&decoded).unwrap();
        let sim = spec.unpack_output(&model::simulate(&m, &slots).unwrap()).unwrap();
        for (a, b) in logits.iter().zip(&sim) {
            max_err = max_err.max((a - b).abs());
        }
        let label = ys.row(i)[0] as usize;
        let (p, s) = (model::argmax(&logits), model::argmax(&sim));
        agree += (p == s) as usize;
        correct += (p == label) as usize;
        sim_correct += (s == label) as usize;
    }
    println!(
        "{{\"model\": \"{}\", \"samples\": {count}, \"agreement_with_simulation\": {:.4}, \"accuracy_encrypted\": {:.4}, \"accuracy_simulated\": {:.4}, \"max_logit_error_vs_simulation\": {max_err:.3e}, \"eval_ms_per_sample\": {:.1}, \"threads\": {}, \"load_s\": {load_s:.2}}}",
        m.name,
        agree as f64 / count as f64,
        correct as f64 / count as f64,
        sim_correct as f64 / count as f64,
        eval_s * 1e3 / count as f64,
        rayon::current_num_threads(),
    );
}
