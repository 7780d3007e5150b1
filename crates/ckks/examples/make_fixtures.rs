//! Writes the wire-format fixtures of `tests/compat.rs` (they were made by the build before
//! the ring/rlwe/ckks split, 5913a9e): `cargo run -p ckks --example make_fixtures -- DIR`.
use ckks::*;
fn main() {
    let out = std::path::PathBuf::from(std::env::args().nth(1).expect("out dir"));
    let params = Parameters::builder().log_n(12).q_bits(&[36, 30]).p_bits(&[36]).log_scale(30.0).build().unwrap();
    std::fs::write(out.join("params.json"), serde_json::to_string(params.spec()).unwrap()).unwrap();
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let pk = kg.public_key(&sk);
    let evk = kg.evaluation_keys(&sk, &[1], false, true);
    let enc = Encoder::new(&params);
    let x: Vec<f64> = (0..params.slots()).map(|i| ((i % 17) as f64 - 8.0) / 8.0).collect();
    let pt = enc.encode(&x, params.max_level(), params.default_scale()).unwrap();
    let ct = Encryptor::new(&pk).encrypt(&pt).unwrap();
    let sct = Decryptor::new(&sk).encrypt_symmetric(&pt).unwrap();
    std::fs::write(out.join("secret_key.bin"), &*sk.to_bytes()).unwrap();
    std::fs::write(out.join("public_key.bin"), pk.to_bytes()).unwrap();
    std::fs::write(out.join("evaluation_keys.hek"), evk.to_bytes()).unwrap();
    std::fs::write(out.join("ciphertext.bin"), ct.to_bytes()).unwrap();
    std::fs::write(out.join("seeded_ciphertext.bin"), sct.to_bytes()).unwrap();
}
