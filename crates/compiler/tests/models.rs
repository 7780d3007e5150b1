//! End-to-end: the reference models compile, their packed programs reproduce the
//! network, and bad inputs give clear errors.

use std::path::PathBuf;

use compiler::{compile, npy, CompileError, Data, Options};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(p: &str) -> npy::Array {
    npy::read(&root().join(p)).unwrap()
}

fn run(model: &str, cal: &str, test: &str, labels: &str, ort: bool) -> model::HeModel {
    let bytes = std::fs::read(root().join(model)).unwrap();
    let (c, t, l) = (load(cal), load(test), load(labels));
    let mut opts = Options { name: "m".into(), use_onnxruntime: ort, ..Default::default() };
    if ort {
        match std::env::var_os("HEINFER_PYTHON") {
            Some(p) => opts.python = Some(p.into()),
            None => {
                eprintln!("HEINFER_PYTHON unset: skipping the onnxruntime comparison (scripts/test.sh sets it)");
                opts.use_onnxruntime = false;
            }
        }
    }
    let d = Data { calibration: &c, eval: Some(&t), labels: Some(&l) };
    let out = compile(&bytes, Some(&root().join(model)), &d, &opts, &|_| {}).unwrap();
    let r = out.model.report.clone().unwrap();
    let acc = r.accuracy.unwrap();
    if ort && opts.use_onnxruntime {
        assert!(acc.reference.starts_with("onnxruntime"), "reference was {}", acc.reference);
    }
    let (ra, sa) = (acc.reference_accuracy.unwrap(), acc.simulated_accuracy.unwrap());
    assert!((ra - sa).abs() <= 0.01, "accuracy {ra} vs {sa}");
    assert!(acc.top1_agreement >= 0.995, "agreement {}", acc.top1_agreement);
    assert!(r.log_qp <= r.security_bound as f64);
    // The file round-trips and still simulates the same.
    let m2 = model::HeModel::from_bytes(&out.model.to_bytes()).unwrap();
    assert!(m2.nodes == out.model.nodes && m2.plaintexts == out.model.plaintexts, "program differs after a round trip");
    assert!(m2.client.to_json() == out.model.client.to_json(), "client spec differs after a round trip");
    m2
}

#[test]
fn breast_cancer_lr() {
    let m = run(
        "models/breast_cancer_lr.onnx",
        "models/data/breast_cancer_train_x.npy",
        "models/data/breast_cancer_test_x.npy",
        "models/data/breast_cancer_test_y.npy",
        true,
    );
    assert_eq!(m.client.params.log_n, 12);
}

#[test]
fn digits_mlp() {
    run(
        "models/digits_mlp.onnx",
        "models/data/digits_train_img.npy",
        "models/data/digits_test_img.npy",
        "models/data/digits_test_y.npy",
        true,
    );
}

#[test]
fn digits_cnn() {
    run(
        "models/digits_cnn.onnx",
        "models/data/digits_train_img.npy",
        "models/data/digits_test_img.npy",
        "models/data/digits_test_y.npy",
        true,
    );
}

#[test]
fn digits_cryptonets_exact_and_small() {
    let m = run(
        "models/digits_cryptonets.onnx",
        "models/data/digits_train_img.npy",
        "models/data/digits_test_img.npy",
        "models/data/digits_test_y.npy",
        false,
    );
    assert_eq!(m.client.params.log_n, 13);
    let r = m.report.unwrap();
    assert!(r.accuracy.unwrap().max_abs_error < 1e-6);
    assert!(r.galois_keys <= 12);
    // Only the steps the program uses are requested.
    let used: std::collections::BTreeSet<i64> = m
        .nodes
        .iter()
        .filter_map(|n| if let model::Op::Rotate { step, .. } = n.op { Some(step) } else { None })
        .collect();
    assert_eq!(used.into_iter().collect::<Vec<_>>(), m.client.rotation_steps);
}

fn compile_err(bytes: &[u8], cal: &npy::Array) -> CompileError {
    let opts = Options { use_onnxruntime: false, ..Default::default() };
    match compile(bytes, None, &Data { calibration: cal, eval: None, labels: None }, &opts, &|_| {}) {
        Err(e) => e,
        Ok(_) => panic!("expected an error"),
    }
}

#[test]
fn truncated_and_garbage_onnx_are_errors() {
    let cal = load("models/data/digits_train_img.npy");
    let bytes = std::fs::read(root().join("models/digits_cnn.onnx")).unwrap();
    for cut in [1, 10, bytes.len() / 2, bytes.len() - 3] {
        let e = compile_err(&bytes[..cut], &cal);
        assert!(matches!(e, CompileError::BadOnnx(_) | CompileError::Shape(_)), "{e}");
    }
    let e = compile_err(b"definitely not onnx", &cal);
    assert!(matches!(e, CompileError::BadOnnx(_)), "{e}");
}

#[test]
fn wrong_calibration_shape_is_an_error() {
    let bytes = std::fs::read(root().join("models/digits_cnn.onnx")).unwrap();
    let cal = load("models/data/breast_cancer_test_x.npy");
    let e = compile_err(&bytes, &cal);
    assert!(e.to_string().contains("calibration data"), "{e}");
}

#[test]
fn maxpool_is_refused_with_advice() {
    let mut bytes = std::fs::read(root().join("models/digits_cnn.onnx")).unwrap();
    // Same length op name: turn the AveragePool node into a MaxPool-like unknown by renaming.
    let pos = bytes.windows(11).position(|w| w == b"AveragePool").unwrap();
    bytes[pos..pos + 11].copy_from_slice(b"MaxPoolXXXX");
    let cal = load("models/data/digits_train_img.npy");
    let e = compile_err(&bytes, &cal);
    match e {
        CompileError::Unsupported { node, op, hint } => {
            assert_eq!(op, "MaxPoolXXXX");
            assert!(node.contains("pool1"));
            assert!(hint.contains("supported"));
        }
        e => panic!("{e}"),
    }
}

/// `--rotations`: after the rescale, a dense layer's rotate-and-sum runs one level below
/// its products, so its keys are made one level lower; auto takes it when the upload is
/// smaller, and the digits MLP then fits the 10 MB upload it did not before.
#[test]
fn rotations_after_the_rescale_shrink_the_upload() {
    use compiler::RotationPolicy;
    let bytes = std::fs::read(root().join("models/digits_mlp.onnx")).unwrap();
    let (c, t, l) = (
        load("models/data/digits_train_img.npy"),
        load("models/data/digits_test_img.npy"),
        load("models/data/digits_test_y.npy"),
    );
    let d = Data { calibration: &c, eval: Some(&t), labels: Some(&l) };
    let compile_with = |rotations| {
        let opts = Options { name: "m".into(), use_onnxruntime: false, rotations, ..Default::default() };
        compile(&bytes, None, &d, &opts, &|_| {}).unwrap().model
    };
    // The level of every rotation, and of the first layer's products.
    let levels = |m: &model::HeModel| {
        let rot: Vec<u32> =
            m.nodes.iter().filter(|n| matches!(n.op, model::Op::Rotate { .. })).map(|n| n.level).collect();
        let first_mul = m.nodes.iter().find(|n| matches!(n.op, model::Op::MulPlain { .. })).unwrap().level;
        (rot, first_mul)
    };
    let before = compile_with(RotationPolicy::BeforeRescale);
    let after = compile_with(RotationPolicy::AfterRescale);
    let auto = compile_with(RotationPolicy::Auto);
    let (rb, mb) = levels(&before);
    let (ra, ma) = levels(&after);
    assert!(rb.contains(&mb), "before the rescale, the first layer rotates at its products' level {mb}: {rb:?}");
    assert!(ra.iter().all(|&l| l < ma), "after the rescale, no rotation at the products' level {ma}: {ra:?}");
    let upload = |m: &model::HeModel| m.report.as_ref().unwrap().evaluation_key_bytes;
    assert!(upload(&after) < upload(&before), "{} vs {}", upload(&after), upload(&before));
    assert!(upload(&after) <= 10_000_000, "digits MLP keys {} B", upload(&after));
    assert_eq!(auto.nodes, after.nodes, "auto takes the smaller upload");
    let notes = &auto.report.as_ref().unwrap().notes;
    assert!(
        notes.iter().any(|n| n.contains("rotations after the rescale (the other choice, before the rescale")),
        "{notes:?}"
    );
    // Both still agree with the network.
    for m in [&before, &after] {
        assert!(m.report.as_ref().unwrap().accuracy.as_ref().unwrap().top1_agreement >= 0.995);
    }
}

/// `--key-budget-mb 10` on the digits CNN: no key layout holds the default degree-31
/// network (its top-level keys alone pass 10 MB), so without `--degree` the compiler lowers
/// the activations one level at a time, and takes a shallower network with radix 8 and the
/// first layer's replicas summed by one key at the top level, whose upload — counted level
/// by level, as the client makes it — fits; the program still agrees with the network. A
/// degree asked for is kept, and then refused with what to lower.
#[test]
fn a_key_budget_picks_degrees_and_a_key_layout_whose_upload_fits() {
    let bytes = std::fs::read(root().join("models/digits_cnn.onnx")).unwrap();
    let c = load("models/data/digits_train_img.npy");
    let d = Data { calibration: &c, eval: None, labels: None };
    let budget = 10_000_000;
    let opts = |degree| Options {
        name: "m".into(),
        use_onnxruntime: false,
        degree,
        key_budget_bytes: Some(budget),
        ..Default::default()
    };
    let e =
        compile(&bytes, None, &d, &opts(Some(31)), &|_| {}).err().expect("degree 31 does not fit 10 MB").to_string();
    assert!(e.contains("--key-budget-mb") && e.contains("--degree"), "{e}");
    let m = compile(&bytes, None, &d, &opts(None), &|_| {}).unwrap().model;
    let r = m.report.as_ref().unwrap();
    assert!(r.evaluation_key_bytes <= budget, "{} B", r.evaluation_key_bytes);
    let lowered = r.notes.iter().find(|n| n.contains("activation degrees lowered from 31")).expect("a note");
    assert!(r.activations.iter().any(|a| a.degree < 31), "{lowered}");
    // Keys for lower levels in bases of their own (fewer digits): the same network with
    // every key in the set's own digits is larger, and over the budget.
    assert!(!m.client.params.key_bases.is_empty());
    assert!(r.notes.iter().any(|n| n.contains("special primes of their own")), "{:?}", r.notes);
    let with = ckks::Parameters::from_spec(&m.client.params).unwrap();
    let mut spec = m.client.params.clone();
    spec.key_bases.clear();
    let own = ckks::Parameters::from_spec(&spec).unwrap();
    let mut levels: std::collections::BTreeMap<i64, usize> = m.client.rotation_key_levels().into_iter().collect();
    levels.extend(m.client.relin_key_level().map(|l| (0, l)));
    let bytes_in = |p: &ckks::Parameters| levels.values().map(|&l| p.keyswitch_key_bytes_at(l)).sum::<usize>();
    assert!(
        bytes_in(&with) <= budget && bytes_in(&own) > budget,
        "{} B with bases, {} B without",
        bytes_in(&with),
        bytes_in(&own)
    );
    assert!(r.notes.iter().any(|n| n.contains("powers of 8 only, the first layer's replicas summed")), "{:?}", r.notes);
    // One rotation key at the top level (the replicas' step); every other a power of 8.
    let top = m.client.params.q.len() - 1;
    let levels = m.client.rotation_key_levels();
    let at_top: Vec<i64> = levels.iter().filter(|&&(_, l)| l == top).map(|&(s, _)| s).collect();
    assert_eq!(at_top.len(), 1, "{levels:?}");
    assert!(
        levels.iter().all(|&(s, _)| at_top.contains(&s) || s.unsigned_abs().trailing_zeros() % 3 == 0),
        "{levels:?}"
    );
    assert!(r.accuracy.as_ref().unwrap().top1_agreement >= 0.995);
    // Radix 2, asked for, keeps every power of two and does not fit at degree 7.
    let two = Options { galois_radix: Some(2), ..opts(Some(7)) };
    assert!(compile(&bytes, None, &d, &two, &|_| {}).is_err());
}
