//! Generates a Paillier key and says how long it took: `cargo run --release -p paillier --example keygen [BITS] [--primes]`.
//! `--primes` prints p and q in hex (for test fixtures only: they are the secret key).

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bits = args.iter().find_map(|a| a.parse::<u32>().ok()).unwrap_or(paillier::MIN_MODULUS_BITS);
    let t = Instant::now();
    let sk = paillier::SecretKey::generate_with(&mut rand_core::OsRng, bits)?;
    eprintln!("{bits}-bit key in {:.1} s, key id {}", t.elapsed().as_secs_f64(), sk.public_key().key_id());
    if args.iter().any(|a| a == "--primes") {
        let bytes = sk.to_bytes();
        println!("{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    }
    Ok(())
}
