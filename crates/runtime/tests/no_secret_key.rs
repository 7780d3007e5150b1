//! Server code must not be able to decrypt: `runtime` (and everything built on it for
//! the server) depends on `ckks` without the `secret-key` feature, which is what
//! defines `SecretKey`, `KeyGenerator` and `Decryptor`. Cargo resolves features per
//! package set, so building the server crates alone never compiles that code.

#[test]
fn runtime_resolves_ckks_without_the_secret_key_feature() {
    no_secret_key_in("runtime");
}

/// The two front ends a server operator runs: `heinfer serve` and the Triton backend.
#[test]
fn servers_resolve_ckks_without_the_secret_key_feature() {
    no_secret_key_in("server");
    no_secret_key_in("triton");
}

fn no_secret_key_in(package: &str) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["tree", "-p", package, "-e", "normal", "--format", "{p} [{f}]", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    let ckks: Vec<&str> = tree.lines().filter(|l| l.contains("ckks v")).collect();
    assert!(!ckks.is_empty(), "ckks not found in:\n{tree}");
    for line in ckks {
        assert!(!line.contains("secret-key"), "{package} pulls in ckks's secret key: {line}");
    }
    // The client crate holds the secret key; no server may depend on it.
    assert!(!tree.lines().any(|l| l.contains("client v")), "{package} depends on the client crate:\n{tree}");
}
