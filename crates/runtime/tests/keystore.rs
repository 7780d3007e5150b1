use ckks::*;
use runtime::{KeyId, KeyStore, KeyStoreError};

fn setup() -> (Parameters, SecretKey) {
    let params = Parameters::builder().log_n(12).q_bits(&[36, 30]).build().unwrap();
    let sk = KeyGenerator::new(&params).secret_key();
    (params, sk)
}

fn bundle(params: &Parameters, sk: &SecretKey, steps: &[i64]) -> Vec<u8> {
    KeyGenerator::new(params).evaluation_keys(sk, steps, false, true).to_bytes()
}

#[test]
fn registration_is_idempotent_and_content_addressed() {
    let (params, sk) = setup();
    let b = bundle(&params, &sk, &[1]);
    let store = KeyStore::new(1 << 30, None).unwrap();
    let id = store.register(&params, &b).unwrap();
    assert_eq!(id, KeyId::of_bundle(&b));
    assert_eq!(store.register(&params, &b).unwrap(), id);
    assert_eq!(store.len(), 1);
    let keys = store.get(&params, id).unwrap();
    assert!(keys.has_rotation(1) && !keys.has_rotation(2));
    assert_eq!(KeyId::parse(&id.hex()).unwrap(), id);
    assert_eq!(KeyId::parse(&id.hex().to_uppercase()).unwrap(), id);
    assert!(KeyId::parse("zz").is_err());
    assert!(KeyId::parse(&"g".repeat(64)).is_err());
    assert!(KeyId::parse(&"é".repeat(32)).is_err());
}

#[test]
fn unknown_foreign_and_malformed_bundles_are_errors() {
    let (params, sk) = setup();
    let store = KeyStore::new(1 << 30, None).unwrap();
    let b = bundle(&params, &sk, &[1]);
    let err = store.get(&params, KeyId::of_bundle(&b)).unwrap_err();
    assert!(err.to_string().contains("register"), "{err}");
    let other = Parameters::builder().log_n(12).q_bits(&[36, 30]).p_bits(&[35]).build().unwrap();
    assert!(matches!(store.register(&other, &b), Err(KeyStoreError::BadBundle(WireError::ForeignParameters { .. }))));
    assert!(matches!(store.register(&params, &b[..b.len() - 3]), Err(KeyStoreError::BadBundle(_))));
    assert!(store.is_empty());
}

#[test]
fn memory_is_bounded_by_evicting_the_least_recently_used() {
    let (params, sk) = setup();
    let bundles: Vec<Vec<u8>> = (0..3).map(|i| bundle(&params, &sk, &[i + 1])).collect();
    let one = KeyStore::new(1 << 30, None).unwrap();
    one.register(&params, &bundles[0]).unwrap();
    let size = one.memory_bytes();
    let store = KeyStore::new(2 * size + size / 2, None).unwrap();
    let ids: Vec<KeyId> = bundles.iter().map(|b| store.register(&params, b).unwrap()).collect();
    assert_eq!(store.len(), 2);
    assert!(store.memory_bytes() <= 2 * size + size / 2);
    assert!(matches!(store.get(&params, ids[0]), Err(KeyStoreError::UnknownKey(_))));
    store.get(&params, ids[1]).unwrap();
    store.register(&params, &bundles[0]).unwrap(); // evicts ids[2], the least recently used
    assert!(store.get(&params, ids[1]).is_ok());
    assert!(store.get(&params, ids[2]).is_err());
    let tiny = KeyStore::new(10, None).unwrap();
    assert!(matches!(tiny.register(&params, &bundles[0]), Err(KeyStoreError::TooLarge { .. })));
}

#[test]
fn replicas_sharing_a_directory_see_each_others_keys() {
    let (params, sk) = setup();
    let dir = tempfile::tempdir().unwrap();
    let a = KeyStore::new(1 << 30, Some(dir.path())).unwrap();
    let b = KeyStore::new(1 << 30, Some(dir.path())).unwrap();
    let bytes = bundle(&params, &sk, &[2]);
    let id = a.register(&params, &bytes).unwrap();
    assert!(b.get(&params, id).unwrap().has_rotation(2));
    // A file whose content does not hash to its name is not trusted.
    let other = bundle(&params, &sk, &[3]);
    let fake = KeyId::of_bundle(&other);
    std::fs::write(dir.path().join(format!("{fake}.hek")), &bytes).unwrap();
    assert!(matches!(b.get(&params, fake), Err(KeyStoreError::UnknownKey(_))));
}
