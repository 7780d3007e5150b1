//! Layout M end to end without a server process: compile the digits MLP (layout M comes
//! with `--layout auto`), make layout M's bundle with `client::MultiSession`, encrypt B
//! digits into ONE ciphertext, let the runtime's service (which serves L and M) evaluate
//! it, decrypt B rows, and compare each with layout L's simulation of that digit. Also:
//! one service takes L and M bundles side by side and runs the program each is for; a
//! partial batch decrypts to its samples; a batch larger than B is refused.
use std::path::PathBuf;
use std::sync::Arc;

use client::{MultiSession, Session};
use compiler::{npy, Data, Options};
use runtime::{CompiledModel, KeyStore, Request};

fn repo_file(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

#[test]
fn a_layout_m_batch_agrees_with_layout_l_sample_by_sample() {
    let onnx = std::fs::read(repo_file("models/digits_mlp.onnx")).unwrap();
    let calib = npy::read(&repo_file("models/data/digits_train_img.npy")).unwrap();
    let test = npy::read(&repo_file("models/data/digits_test_img.npy")).unwrap();
    let opts = Options { name: "mlp".into(), use_onnxruntime: false, ..Options::default() };
    let m = compiler::compile(&onnx, None, &Data { calibration: &calib, eval: None, labels: None }, &opts, &|_| {})
        .expect("compiles")
        .model;
    let spec_m = m.client.multi.as_deref().expect("layout M compiled by default");
    let cost = m.client.layouts.iter().find(|c| c.layout == "M").expect("M's cost in the spec");
    let batch = cost.max_batch;
    assert!(batch >= 8, "B = {batch}");
    assert_eq!(spec_m.params, m.client.params);
    // A spec from an untrusted server cannot make the client allocate beyond its ring:
    // B and the shapes are checked with the spec.
    let mut hostile = m.client.clone();
    hostile.multi.as_mut().unwrap().output.shape = vec![1 << 40, 10];
    assert!(MultiSession::generate(&hostile).is_err());
    assert!(hostile.validate().is_err());
    // A model whose M keys are L's could not route bundles: the reader refuses it.
    let mut same = m.clone();
    let l_elements = same.client.galois_elements.clone();
    same.client.multi.as_mut().unwrap().galois_elements = l_elements;
    let err = model::HeModel::from_bytes(&same.to_bytes()).unwrap_err().to_string();
    assert!(err.contains("layout M"), "{err}");
    // Round trip through the file: M's program and plaintexts come back.
    let m = model::HeModel::from_bytes(&m.to_bytes()).unwrap();
    assert_eq!(m.multi.as_ref().unwrap().batch as usize, batch);

    let service = CompiledModel::load(m.clone()).unwrap().into_service(Arc::new(KeyStore::new(1 << 33, None).unwrap()));
    let ms = MultiSession::generate(&m.client).unwrap();
    assert_eq!(ms.max_batch(), batch);
    let (m_bundle, _) = ms.evaluation_bundle();
    let m_id = service.register(&m_bundle).unwrap().hex();
    // Layout L's session under the same secret key: its bundle differs (other Galois keys).
    let dir = tempfile::tempdir().unwrap();
    let sk = dir.path().join("sk");
    ms.keys().save_secret(&sk).unwrap();
    let ls = Session::load(m.client.clone(), &sk).unwrap();
    let (l_bundle, _) = ls.evaluation_bundle();
    let l_id = service.register(&l_bundle).unwrap().hex();
    assert_ne!(l_id, m_id);

    let infer = |cts: &[Vec<u8>], id: &str| {
        service.infer(Request {
            ciphertexts: cts.iter().map(|c| &c[..]).collect(),
            key_id: Some(id.as_bytes()),
            evaluation_keys: None,
        })
    };
    let sim_of = |i: usize| {
        let slots = m.client.pack_input(test.row(i)).unwrap();
        m.client.unpack_output(&model::simulate(&m, &slots).unwrap()).unwrap()
    };
    let k = m.client.output.shape.iter().product::<usize>();
    let x: Vec<f64> = (0..batch).flat_map(|i| test.row(i).to_vec()).collect();
    let ct = ms.encrypt(&x, batch).unwrap();
    assert_eq!(ct.len(), 1, "one ciphertext for the whole batch");
    let out = infer(&ct, &m_id).expect("layout M's bundle runs layout M");
    let y = ms.decrypt(&out.ciphertexts, batch).unwrap();
    assert_eq!(y.len(), batch * k);
    let mut max_err: f64 = 0.0;
    for i in 0..batch {
        let sim = sim_of(i);
        let row = &y[i * k..(i + 1) * k];
        assert_eq!(model::argmax(row), model::argmax(&sim), "sample {i}: {row:?} vs {sim:?}");
        for (a, b) in row.iter().zip(&sim) {
            max_err = max_err.max((a - b).abs());
        }
    }
    eprintln!("layout M: B = {batch}, max logit error {max_err:.4}; costs {:?}", m.client.layouts);
    assert!(max_err < 0.3, "max logit error against layout L's simulation {max_err}");

    // The same service still runs layout L for L's bundle.
    let lq = ls.encrypt(test.row(3)).unwrap();
    let lo = infer(&lq, &l_id).unwrap();
    let l_logits = ls.decrypt(&lo.ciphertexts).unwrap();
    assert_eq!(model::argmax(&l_logits), model::argmax(&sim_of(3)));

    // A partial batch: 3 samples, the rest zeros.
    let part = ms.encrypt(&x[..3 * test.row(0).len()], 3).unwrap();
    let py = ms.decrypt(&infer(&part, &m_id).unwrap().ciphertexts, 3).unwrap();
    assert_eq!(py.len(), 3 * k);
    for i in 0..3 {
        assert_eq!(model::argmax(&py[i * k..(i + 1) * k]), model::argmax(&sim_of(i)));
    }
    // Merged requests (what Triton's dynamic batcher hands the backend): one digit per
    // request, each in its own block, under one key id, added and run once.
    let merged_blocks = [0usize, 5, 2, batch - 1];
    let singles: Vec<Vec<Vec<u8>>> =
        merged_blocks.iter().enumerate().map(|(i, &b)| ms.encrypt_block(test.row(10 + i), b).unwrap()).collect();
    let parts: Vec<Vec<&[u8]>> = singles.iter().map(|cts| cts.iter().map(|c| &c[..]).collect()).collect();
    assert_eq!(service.merged_blocks(), Some(batch));
    let answers = service.infer_merged(m_id.as_bytes(), &parts, &std::sync::atomic::AtomicBool::new(false));
    assert_eq!(answers.len(), merged_blocks.len());
    for (i, (&b, a)) in merged_blocks.iter().zip(&answers).enumerate() {
        let a = a.as_ref().expect("a merged request is answered");
        let row = ms.decrypt_block(&a.ciphertexts, b).unwrap();
        let sim = sim_of(10 + i);
        assert_eq!(model::argmax(&row), model::argmax(&sim), "merged request {i} in block {b}");
        let err = row.iter().zip(&sim).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(err < 0.3, "merged request {i}: logit error {err}");
        // The blocks nobody used decrypt to the network on zeros, not to another's digit.
        if i == 0 {
            let empty = ms.decrypt_block(&a.ciphertexts, 1).unwrap();
            assert!(empty.iter().zip(&row).any(|(e, r)| (e - r).abs() > 1e-2), "block 1 holds request 0's answer");
        }
    }
    // A request that cannot be read fails alone; the others of its merge are answered.
    let bad = vec![&singles[0][0][..40]];
    let mixed = vec![parts[1].clone(), bad, parts[2].clone()];
    let answers = service.infer_merged(m_id.as_bytes(), &mixed, &std::sync::atomic::AtomicBool::new(false));
    assert!(matches!(answers[1], Err(runtime::ServiceError::Malformed { .. })), "{:?}", answers[1].as_ref().err());
    // mixed[i] is request k of the first merge: sample 10 + k in block merged_blocks[k].
    for (i, k) in [(0usize, 1usize), (2, 2)] {
        let row = ms.decrypt_block(&answers[i].as_ref().unwrap().ciphertexts, merged_blocks[k]).unwrap();
        assert_eq!(model::argmax(&row), model::argmax(&sim_of(10 + k)), "request {i} beside a bad one");
    }
    // Layout L's key id cannot be merged: every request is told why.
    let answers = service.infer_merged(l_id.as_bytes(), &parts[..2], &std::sync::atomic::AtomicBool::new(false));
    for a in &answers {
        let e = a.as_ref().err().expect("refused").to_string();
        assert!(e.contains("layout M"), "{e}");
    }
    assert!(ms.encrypt_block(test.row(0), batch).is_err(), "a block past B");
    // Alone (a merged model's batch of one): layout M's program still, registering the
    // bundle it carries; a layout-L key id is refused rather than run on a block.
    let flag = std::sync::atomic::AtomicBool::new(false);
    let alone = |key_id: Option<&[u8]>, keys: Option<&[u8]>| {
        service.infer_merged_alone(Request { ciphertexts: parts[0].clone(), key_id, evaluation_keys: keys }, &flag)
    };
    let e = alone(Some(l_id.as_bytes()), None).err().expect("layout L's key id refused").to_string();
    assert!(e.contains("layout M"), "{e}");
    let a = alone(Some(m_id.as_bytes()), Some(&m_bundle)).expect("registers and runs layout M");
    let row = ms.decrypt_block(&a.ciphertexts, merged_blocks[0]).unwrap();
    assert_eq!(model::argmax(&row), model::argmax(&sim_of(10)));
    let e = alone(Some(l_id.as_bytes()), Some(&m_bundle)).err().expect("a key id not the bundle's").to_string();
    assert!(e.contains("does not name"), "{e}");

    // More samples than B: refused by the client, naming the limit.
    let more: Vec<f64> = (0..batch + 1).flat_map(|i| test.row(i % test.rows()).to_vec()).collect();
    let err = ms.encrypt(&more, batch + 1).unwrap_err().to_string();
    assert!(err.contains("larger than layout M's"), "{err}");
    // A bundle with neither layout's keys is refused, and names what is missing.
    let bare = ls.keys().evaluation_bundle(&[], false, true).0;
    let err = service.register(&bare).unwrap_err().to_string();
    assert!(err.contains("no Galois keys"), "{err}");
    // Both layouts' refusals, from the one parse of the bundle.
    assert!(err.contains("as layout L's bundle") && err.contains("as layout M's"), "{err}");

    // A model compiled without layout M refuses layout M's bundle.
    let opts = Options { layout: compiler::LayoutRequest::L, ..opts };
    let l_only =
        compiler::compile(&onnx, None, &Data { calibration: &calib, eval: None, labels: None }, &opts, &|_| {})
            .unwrap()
            .model;
    assert!(l_only.multi.is_none() && l_only.client.multi.is_none());
    assert!(l_only.client.layouts.iter().all(|c| c.layout != "M"));
    let l_service = CompiledModel::load(l_only).unwrap().into_service(Arc::new(KeyStore::new(1 << 33, None).unwrap()));
    assert!(l_service.register(&m_bundle).is_err(), "layout M's bundle registered on an L-only model");
    let Err(err) =
        l_service.infer(Request { ciphertexts: vec![&ct[0][..]], key_id: None, evaluation_keys: Some(&m_bundle) })
    else {
        panic!("an L-only model ran a request with layout M's bundle")
    };
    let err = err.to_string();
    assert!(err.contains("key bundle") || err.contains("Galois"), "{err}");
}
