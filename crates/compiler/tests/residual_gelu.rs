//! Residual connections (Add of two computed tensors) and GELU as PyTorch exports it
//! (Erf or Tanh subgraphs): the models of models/make_residual_gelu.py compile, their
//! plaintext simulation agrees with onnxruntime on the digits test split, and a lone
//! Erf is still refused with a clear error.

use std::path::PathBuf;

use compiler::{compile, npy, CompileError, Data, Options};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(p: &str) -> npy::Array {
    npy::read(&root().join(p)).unwrap()
}

/// Compiles a digits model against onnxruntime (when $HEINFER_PYTHON is set, as
/// scripts/test.sh does) and checks agreement ≥ 99.5 % and accuracy within 1 point.
fn run(model: &str, degree: Option<usize>) -> model::HeModel {
    let path = root().join(model);
    let bytes = std::fs::read(&path).unwrap();
    let (c, t, l) = (
        load("models/data/digits_train_img.npy"),
        load("models/data/digits_test_img.npy"),
        load("models/data/digits_test_y.npy"),
    );
    let mut opts = Options { name: "m".into(), degree, ..Default::default() };
    match std::env::var_os("HEINFER_PYTHON") {
        Some(p) => opts.python = Some(p.into()),
        None => {
            eprintln!("HEINFER_PYTHON unset: skipping the onnxruntime comparison (scripts/test.sh sets it)");
            opts.use_onnxruntime = false;
        }
    }
    let d = Data { calibration: &c, eval: Some(&t), labels: Some(&l) };
    let t0 = std::time::Instant::now();
    let progress = |m: &str| eprintln!("{model} {:.1}s {m}", t0.elapsed().as_secs_f64());
    let out = compile(&bytes, Some(&path), &d, &opts, &progress).unwrap_or_else(|e| panic!("{model}: {e}"));
    let r = out.model.report.clone().unwrap();
    let acc = r.accuracy.clone().unwrap();
    if opts.use_onnxruntime {
        assert!(acc.reference.starts_with("onnxruntime"), "reference was {}", acc.reference);
    }
    let (ra, sa) = (acc.reference_accuracy.unwrap(), acc.simulated_accuracy.unwrap());
    eprintln!(
        "{model}: N=2^{} depth {} agreement {:.4} accuracy ref {ra:.4} sim {sa:.4} max err {:.3e} rotations {} keys {}",
        r.log_n, r.depth, acc.top1_agreement, acc.max_abs_error, r.total_rotations, r.galois_keys
    );
    assert!((ra - sa).abs() <= 0.01, "{model}: accuracy {ra} vs {sa}");
    assert!(acc.top1_agreement >= 0.995, "{model}: agreement {}", acc.top1_agreement);
    assert!(r.log_qp <= r.security_bound as f64);
    let m2 = model::HeModel::from_bytes(&out.model.to_bytes()).unwrap();
    assert!(m2.nodes == out.model.nodes, "program differs after a round trip");
    m2
}

fn has_add_of_two_values(m: &model::HeModel) -> bool {
    m.nodes.iter().any(|n| matches!(n.op, model::Op::Add { .. } | model::Op::Sub { .. }))
        && m.layers.iter().any(|l| l.kind.starts_with("residual"))
}

#[test]
fn residual_mlp() {
    let m = run("models/digits_resmlp.onnx", None);
    assert!(has_add_of_two_values(&m), "the skip connection is a residual layer");
}

#[test]
fn residual_with_squares() {
    let m = run("models/digits_ressq.onnx", None);
    assert!(has_add_of_two_values(&m));
    // The operands' scales differ (squares): one is brought to the other's by ×1.
    assert!(m.nodes.iter().any(|n| matches!(n.op, model::Op::MulConst { c, .. } if c == 1.0)));
    assert!(m.report.unwrap().accuracy.unwrap().max_abs_error < 1e-3, "exact up to float32");
}

#[test]
fn residual_cnn() {
    let m = run("models/digits_rescnn.onnx", None);
    assert!(has_add_of_two_values(&m));
}

#[test]
fn pytorch_erf_gelu() {
    let m = run("models/digits_gelu_mlp.onnx", None);
    let acts = m.report.unwrap().activations;
    assert_eq!(acts.len(), 1, "the Div/Erf/Add/Mul/Mul subgraph is one activation");
    assert_eq!(acts[0].function, "gelu");
}

#[test]
fn pytorch_tanh_gelu() {
    let m = run("models/digits_gelu_tanh_mlp.onnx", None);
    let acts = m.report.unwrap().activations;
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0].function, "gelu_tanh");
}

fn compile_err(bytes: &[u8]) -> CompileError {
    let cal = load("models/data/digits_train_img.npy");
    let opts = Options { use_onnxruntime: false, ..Default::default() };
    match compile(bytes, None, &Data { calibration: &cal, eval: None, labels: None }, &opts, &|_| {}) {
        Err(e) => e,
        Ok(_) => panic!("expected an error"),
    }
}

/// Replaces the op type of the one node whose op_type field (protobuf field 4) is `from`.
fn retype(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut pat = vec![0x22, from.len() as u8];
    pat.extend_from_slice(from.as_bytes());
    let pos = bytes.windows(pat.len()).position(|w| w == pat).expect("op type present");
    let mut out = bytes.to_vec();
    out[pos + 2..pos + 2 + to.len()].copy_from_slice(to.as_bytes());
    out
}

#[test]
fn lone_erf_is_refused() {
    // x * 0.5 * (1 + Erf(x * sqrt(2))) is not GELU: the Erf stays and is refused.
    let bytes = retype(&std::fs::read(root().join("models/digits_gelu_mlp.onnx")).unwrap(), "Div", "Mul");
    match compile_err(&bytes) {
        CompileError::Unsupported { node, op, hint } => {
            assert_eq!(op, "Erf");
            assert!(node.contains("/act/Erf"), "{node}");
            assert!(hint.contains("GELU"), "{hint}");
        }
        e => panic!("{e}"),
    }
}

#[test]
fn product_of_two_computed_tensors_is_refused() {
    // The skip Add turned into a Mul of two different computed tensors.
    let bytes = retype(&std::fs::read(root().join("models/digits_resmlp.onnx")).unwrap(), "Add", "Mul");
    match compile_err(&bytes) {
        CompileError::Unsupported { node, op, hint } => {
            assert_eq!(op, "Mul");
            assert!(node.contains("skip"), "{node}");
            assert!(hint.contains("computed tensors"), "{hint}");
        }
        e => panic!("{e}"),
    }
}
