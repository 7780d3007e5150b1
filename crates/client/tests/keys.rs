use ckks::*;
use client::{ClientError, ClientKeys};

fn params() -> Parameters {
    Parameters::builder().log_n(12).q_bits(&[36, 30]).build().unwrap()
}

#[test]
fn secret_key_file_is_private_reloads_and_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.key");
    let p = params();
    let keys = ClientKeys::generate(&p);
    keys.save_secret(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(matches!(keys.save_secret(&path), Err(ClientError::Io { .. })));
    let again = ClientKeys::load_secret(&p, &path).unwrap();
    // Same key: what one encrypts, the other decrypts.
    let enc = Encoder::new(&p);
    let pt = enc.encode(&[1.5, -2.0], 1, p.default_scale()).unwrap();
    let ct = Decryptor::new(keys.secret_key()).encrypt_symmetric(&pt).unwrap().expand();
    let back = enc.decode(&Decryptor::new(again.secret_key()).decrypt(&ct).unwrap()).unwrap();
    assert!((back[0] - 1.5).abs() < 1e-4 && (back[1] + 2.0).abs() < 1e-4);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(ClientKeys::load_secret(&p, &path), Err(ClientError::Permissions { .. })));
    }
    let other = Parameters::builder().log_n(12).q_bits(&[36, 30]).p_bits(&[35]).build().unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    assert!(matches!(ClientKeys::load_secret(&other, &path), Err(ClientError::Wire { .. })));
}

#[test]
fn bundle_holds_exactly_the_keys_asked_for() {
    let p = params();
    let keys = ClientKeys::generate(&p);
    let (bytes, id) = keys.evaluation_bundle(&[1, 3, -2, 2048], false, true);
    assert_eq!(id, KeyId::of_bundle(&bytes));
    let ek = EvaluationKeys::from_bytes(&p, &bytes).unwrap();
    assert!(ek.relin.is_some());
    // 2048 ≡ 0 mod N/2 needs no key.
    assert_eq!(ek.galois.len(), 3);
    for s in [1, 3, -2] {
        assert!(ek.has_rotation(s));
    }
    assert!(!ek.has_rotation(2));
}
