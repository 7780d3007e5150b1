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

#[test]
fn a_bundle_is_checked_whole_before_it_is_kept() {
    let (params, sk) = setup();
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::new(1 << 30, Some(dir.path())).unwrap();
    let need = runtime::Requirements::for_rotations(&params, &[1, 2], true);
    let files = || std::fs::read_dir(dir.path()).unwrap().count();
    // Missing a rotation, an extra rotation, no relinearization key: refused, nothing kept.
    for (steps, relin) in [(&[1][..], true), (&[1, 2, 3][..], true), (&[1, 2][..], false)] {
        let b = KeyGenerator::new(&params).evaluation_keys(&sk, steps, false, relin).to_bytes();
        let e = store.register_for(&params, &b, None, &need, &[1, 2]).unwrap_err();
        assert!(matches!(e, KeyStoreError::Incomplete(_) | KeyStoreError::ExtraKeys(_)), "{e}");
        assert!(store.is_empty() && files() == 0, "{steps:?}: {e}");
    }
    let b = KeyGenerator::new(&params).evaluation_keys(&sk, &[3, 1, 2], false, true).to_bytes();
    assert!(
        matches!(store.register_for(&params, &b, None, &need, &[1, 2]), Err(KeyStoreError::ExtraKeys(e)) if e == [params.galois_element(3)])
    );
    // Exactly the model's keys (a whole turn needs none).
    let need = runtime::Requirements::for_rotations(&params, &[1, 2, params.slots() as i64], true);
    let b = bundle(&params, &sk, &[2, 1]);
    // Named by another key id: refused, nothing kept.
    let other = Some(KeyId::of_bundle(b"other"));
    let e = store.register_for(&params, &b, other, &need, &[1, 2]).unwrap_err();
    assert!(matches!(e, KeyStoreError::KeyIdMismatch { .. }) && store.is_empty() && files() == 0, "{e}");
    let id = store.register_for(&params, &b, Some(KeyId::of_bundle(&b)), &need, &[1, 2]).unwrap();
    assert_eq!((store.len(), files()), (1, 1));
    assert!(store.get(&params, id).is_ok());
}

#[test]
fn an_oversized_bundle_is_refused_from_its_size_before_parsing() {
    let (params, sk) = setup();
    for p in [&params, &Parameters::builder().log_n(13).q_bits(&[36, 30, 30]).p_bits(&[36]).dnum(3).build().unwrap()] {
        let keys = KeyGenerator::new(p).evaluation_keys(&KeyGenerator::new(p).secret_key(), &[1, 5], false, true);
        assert_eq!(runtime::keystore::estimated_memory(p, keys.to_bytes().len()), keys.memory_bytes());
    }
    let b = bundle(&params, &sk, &[1]);
    let size = runtime::keystore::estimated_memory(&params, b.len());
    // Junk of a real bundle's length: refused as too large, never parsed (it would be BadBundle).
    let small = KeyStore::new(size - 1, None).unwrap();
    let junk = vec![0u8; b.len()];
    assert!(matches!(small.register(&params, &junk), Err(KeyStoreError::TooLarge { size: s, .. }) if s == size));
    assert!(matches!(small.register(&params, &b), Err(KeyStoreError::TooLarge { .. })));
    assert!(matches!(KeyStore::new(size, None).unwrap().register(&params, &junk), Err(KeyStoreError::BadBundle(_))));
    assert!(KeyStore::new(size, None).unwrap().register(&params, &b).is_ok());
}

fn dir_names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn concurrent_writers_of_one_directory_each_write_whole_files() {
    let (params, sk) = setup();
    let bytes = bundle(&params, &sk, &[1]);
    let id = KeyId::of_bundle(&bytes);
    // Many stores (replicas) in this one process register the same bundle at once: with
    // one temporary name per process, writers would collide on it. Races are rare:
    // several rounds.
    for _ in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| KeyStore::new(1 << 30, Some(dir.path())).unwrap().register(&params, &bytes).unwrap());
            }
        });
        assert_eq!(dir_names(dir.path()), [format!("{id}.hek")], "no temporary file is left behind");
        assert_eq!(std::fs::read(dir.path().join(format!("{id}.hek"))).unwrap(), bytes);
    }
}

#[cfg(unix)]
#[test]
fn the_key_directory_follows_no_symbolic_link() {
    let (params, sk) = setup();
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let bytes = bundle(&params, &sk, &[1]);
    let id = KeyId::of_bundle(&bytes);
    // A planted link to a file holding the right bundle is still not read through.
    let target = elsewhere.path().join("b.hek");
    std::fs::write(&target, &bytes).unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join(format!("{id}.hek"))).unwrap();
    let store = KeyStore::new(1 << 30, Some(dir.path())).unwrap();
    assert!(matches!(store.get(&params, id), Err(KeyStoreError::UnknownKey(_))));
    // Registering replaces the link with a file of its own; the link's target is untouched.
    std::fs::write(&target, b"victim").unwrap();
    store.register(&params, &bytes).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"victim");
    let placed = std::fs::symlink_metadata(dir.path().join(format!("{id}.hek"))).unwrap();
    assert!(placed.file_type().is_file());
}

#[test]
fn the_key_directory_keeps_to_its_quota_dropping_the_least_recently_used() {
    let (params, sk) = setup();
    let dir = tempfile::tempdir().unwrap();
    let bundles: Vec<Vec<u8>> = (0..3).map(|i| bundle(&params, &sk, &[i + 1])).collect();
    let ids: Vec<KeyId> = bundles.iter().map(|b| KeyId::of_bundle(b)).collect();
    let quota = 2 * bundles[0].len() + bundles[0].len() / 2;
    let store = KeyStore::new(1 << 30, Some(dir.path())).unwrap().with_dir_quota(Some(quota));
    let pause = || std::thread::sleep(std::time::Duration::from_millis(20));
    store.register(&params, &bundles[0]).unwrap();
    pause();
    store.register(&params, &bundles[1]).unwrap();
    pause();
    // Another replica reads bundle 0 from disk: it becomes the most recently used.
    KeyStore::new(1 << 30, Some(dir.path())).unwrap().get(&params, ids[0]).unwrap();
    pause();
    store.register(&params, &bundles[2]).unwrap();
    let mut want = vec![format!("{}.hek", ids[0]), format!("{}.hek", ids[2])];
    want.sort();
    assert_eq!(dir_names(dir.path()), want);
    // A bundle larger than the quota alone is still kept (the one just written stays).
    let tiny = KeyStore::new(1 << 30, Some(dir.path())).unwrap().with_dir_quota(Some(1));
    tiny.register(&params, &bundles[1]).unwrap();
    assert_eq!(dir_names(dir.path()), [format!("{}.hek", ids[1])]);
}

/// A compact-query model's bundle must carry its packing and conjugation keys, each up to
/// the input level: without them it is refused by name, nothing kept; with them it is kept.
#[test]
fn a_compact_query_model_needs_its_packing_keys() {
    let (params, sk) = setup();
    let store = KeyStore::new(1 << 30, None).unwrap();
    let top = params.max_level();
    let mut elements = ckks::packing_elements(&params);
    elements.push(params.conjugation_element());
    let need = runtime::Requirements::for_rotations(&params, &[1], true).with_elements(&elements, top);
    let make = |at: &[(u64, usize)]| {
        let mut kg = KeyGenerator::new(&params);
        EvaluationKeys {
            params: params.clone(),
            relin: Some(kg.relin_key(&sk)),
            galois: kg.galois_keys_with(&sk, &[(1, top)], None, at),
            public: None,
            answer: None,
        }
        .to_bytes()
    };
    let e = store.register_for(&params, &make(&[]), None, &need, &[1]).unwrap_err();
    assert!(e.to_string().contains("compact query"), "{e}");
    let low: Vec<(u64, usize)> = elements.iter().map(|&g| (g, 0)).collect();
    let e = store.register_for(&params, &make(&low), None, &need, &[1]).unwrap_err();
    assert!(e.to_string().contains("serves levels up to 0"), "{e}");
    assert!(store.is_empty());
    let full: Vec<(u64, usize)> = elements.iter().map(|&g| (g, top)).collect();
    assert!(store.register_for(&params, &make(&full), None, &need, &[1]).is_ok());
}

/// A model served in two layouts on one parameter set (L and M): the bundle is checked
/// against each; the first it meets is named, and one that meets neither is refused with
/// both reasons, nothing kept.
#[test]
fn a_bundle_is_matched_against_several_layouts_at_once() {
    let (params, sk) = setup();
    let store = KeyStore::new(1 << 30, None).unwrap();
    let l = runtime::Requirements::for_rotations(&params, &[1, 2], true);
    let m = runtime::Requirements::for_rotations(&params, &[4, 8], true);
    let layouts = [(&l, &[1i64, 2][..]), (&m, &[4i64, 8][..])];
    let e = store.register_for_any(&params, &bundle(&params, &sk, &[1, 4]), None, &layouts).unwrap_err();
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(store.is_empty());
    let mb = bundle(&params, &sk, &[8, 4]);
    let (id, which) = store.register_for_any(&params, &mb, None, &layouts).unwrap();
    assert_eq!((which, id), (1, KeyId::of_bundle(&mb)));
    let (_, which) = store.register_for_any(&params, &bundle(&params, &sk, &[2, 1]), None, &layouts).unwrap();
    assert_eq!((which, store.len()), (0, 2));
    // Registered again (from memory, no parse), it is still M's.
    assert_eq!(store.register_for_any(&params, &mb, None, &layouts).unwrap().1, 1);
    // A broken bundle is one error, not one per layout.
    let e = store.register_for_any(&params, &mb[..mb.len() - 1], None, &layouts).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
}
