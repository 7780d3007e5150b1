//! `--scheme bgv --quantize BITS` on digits models with square activations: the compiled
//! integer network, encrypted under the chosen t and chain, decrypts to the exact integer
//! computation for every test sample; top-1 agreement with onnxruntime on the float model
//! is reported; models no t can hold, and inputs outside the proven range, are refused.

use std::path::PathBuf;

use bgv::throughput::{IntLayer, IntLinear, IntNetwork, Schedule};
use bgv::{Decryptor, Encoder, Encryptor, Evaluator, KeyGenerator, Parameters};
use compiler::scheme::{compile_with_scheme, CompiledAny, SchemeRequest};
use compiler::{npy, CompileError, Data, Options};
use model::{BgvLayer, BgvModel};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(p: &str) -> npy::Array {
    npy::read(&root().join(p)).unwrap()
}

fn compile_bgv(model: &str, bits: u32) -> Result<(BgvModel, model::report::Accuracy), CompileError> {
    compile_bgv_grid(model, Some(bits))
}

/// `--scheme bgv`, with `--quantize BITS` or (None) on a QDQ model's own integers.
fn compile_bgv_grid(model: &str, bits: Option<u32>) -> Result<(BgvModel, model::report::Accuracy), CompileError> {
    let bytes = std::fs::read(root().join(model)).unwrap();
    let (c, t, l) = (
        load("models/data/digits_train_img.npy"),
        load("models/data/digits_test_img.npy"),
        load("models/data/digits_test_y.npy"),
    );
    let mut opts = Options { name: "m".into(), ..Default::default() };
    match std::env::var_os("HEINFER_PYTHON") {
        Some(p) => opts.python = Some(p.into()),
        None => {
            eprintln!("HEINFER_PYTHON unset: skipping the onnxruntime comparison (scripts/test.sh sets it)");
            opts.use_onnxruntime = false;
        }
    }
    let d = Data { calibration: &c, eval: Some(&t), labels: Some(&l) };
    let (c, choice) =
        compile_with_scheme(&bytes, Some(&root().join(model)), &d, &opts, SchemeRequest::Bgv, bits, &|_| {})?;
    assert_eq!(choice.chosen, model::Scheme::Bgv);
    let CompiledAny::Bgv(c) = c else { panic!("a BGV model") };
    eprintln!("{}", c.model.report);
    // The file round-trips.
    let again = BgvModel::from_bytes(&c.model.to_bytes()).unwrap();
    assert_eq!(again, c.model);
    Ok((c.model, c.accuracy))
}

fn network(m: &BgvModel) -> IntNetwork {
    let layers = m
        .layers
        .iter()
        .map(|l| match l {
            BgvLayer::Linear { inputs, weights, bias, .. } => {
                IntLayer::Linear(IntLinear { inputs: *inputs, weights: weights.clone(), bias: bias.clone() })
            }
            BgvLayer::Square { .. } => IntLayer::Square,
        })
        .collect();
    IntNetwork::new(m.client.input_len(), layers).unwrap()
}

/// Encrypts the whole test set as one batch, evaluates, decrypts: every output of every
/// sample equals the integer reference.
fn encrypted_equals_reference(m: &BgvModel) {
    let spec = &m.client;
    let params = Parameters::from_spec(&spec.params, spec.plaintext_modulus).unwrap();
    assert!(params.is_secure());
    let test = load("models/data/digits_test_img.npy");
    let samples: Vec<Vec<i64>> = (0..test.rows()).map(|r| spec.encode_sample(test.row(r)).unwrap()).collect();
    assert!(samples.len() <= params.n());
    let net = network(m);
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let pk = kg.public_key(&sk);
    let rk = kg.relin_key(&sk);
    let enc = Encoder::new(&params);
    let mut encryptor = Encryptor::new(&params, &pk).unwrap();
    let x: Vec<_> = (0..net.inputs())
        .map(|f| {
            let col: Vec<i64> = samples.iter().map(|s| s[f]).collect();
            encryptor.encrypt(&enc.encode(&col, params.max_level()).unwrap()).unwrap()
        })
        .collect();
    let schedule = Schedule { before: m.levels.clone(), last: spec.output.level, budget_bits: 0.0 };
    let start = std::time::Instant::now();
    let y = net.evaluate(&Evaluator::new(&params), &rk, &schedule, x).unwrap();
    eprintln!("evaluation of {} samples: {:.2?}", samples.len(), start.elapsed());
    // The answers cross the wire, as a server's do (the factor must survive for any t).
    let y: Vec<_> = y.iter().map(|c| bgv::Ciphertext::from_bytes(&params, &c.to_bytes()).unwrap()).collect();
    let dec = Decryptor::new(&params, &sk).unwrap();
    let got: Vec<Vec<i64>> = y.iter().map(|c| enc.decode_signed(&dec.decrypt(c).unwrap()).unwrap()).collect();
    let bound: u128 = m.bound.parse().unwrap();
    for (s, sample) in samples.iter().enumerate() {
        let want = net.reference(sample).unwrap();
        for (o, &w) in want.iter().enumerate() {
            assert!(w.unsigned_abs() <= bound);
            assert_eq!(got[o][s] as i128, w, "sample {s} output {o}");
        }
    }
}

#[test]
fn digits_square_mlp_is_exact_and_agrees_with_onnxruntime() {
    let (m, acc) = compile_bgv("models/digits_sq_mlp.onnx", 8).unwrap();
    assert!(m.report.contains("exact") && m.report.contains("t = "));
    assert!(acc.top1_agreement >= 0.99, "top-1 agreement {}", acc.top1_agreement);
    // Encrypted end to end through Triton and heinfer serve: tests/python/test_bgv.py.
    // Inputs outside the compiled range are refused by the client's encoding.
    let mut x = vec![0.0; 64];
    x[3] = 1.5;
    let e = m.client.encode_sample(&x).unwrap_err().to_string();
    assert!(e.contains("outside the range"), "{e}");
}

#[test]
fn digits_cryptonets_shape_is_exact() {
    // Two squares at 4 bits reach 2^56.6: a t past 2^53, whose factors travel exactly.
    let (m, _) = compile_bgv("models/digits_cryptonets3.onnx", 4).unwrap();
    assert!(m.client.plaintext_modulus > 1 << 53, "t = {}", m.client.plaintext_modulus);
    encrypted_equals_reference(&m);
    let (m, acc) = compile_bgv("models/digits_cryptonets3.onnx", 3).unwrap();
    eprintln!("top-1 agreement {}", acc.top1_agreement);
    assert!(acc.top1_agreement >= 0.8, "top-1 agreement {}", acc.top1_agreement);
    encrypted_equals_reference(&m);
}

#[test]
fn too_many_bits_and_non_square_activations_are_refused() {
    match compile_bgv("models/digits_cryptonets3.onnx", 16) {
        Err(CompileError::Params(e)) => assert!(e.contains("fewer bits"), "{e}"),
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("16 bits through two squares cannot fit a t below 2^60"),
    }
    match compile_bgv("models/digits_mlp.onnx", 6) {
        Err(CompileError::Unsupported { hint, .. }) => assert!(hint.contains("--scheme ckks"), "{hint}"),
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("ReLU is not exact under BGV"),
    }
}

/// A QDQ model (onnxruntime's quantize_static, int8 weights per tensor) compiles under BGV
/// on its own integers, without --quantize: the input grid is its QuantizeLinear's, every
/// weight an int8, and the decrypted outputs equal the integer reference for every test
/// digit. Per-channel weights, integers past one t (CryptoNets' two squares at 8 bits) and
/// a float model without --quantize are refused, each saying what to do.
#[test]
fn qdq_models_run_exactly_on_their_own_integers() {
    {
        let model = "models/digits_sq_mlp_qdq.onnx";
        let (m, acc) = compile_bgv_grid(model, None).unwrap();
        assert!(m.report.contains("the model's own (QDQ)"), "{}", m.report);
        // The input grid is the model's: onnxruntime's uint8 step over [0, 1] digits is
        // 1/255 at most, so the scale is at least 255 (not --quantize's 2^BITS − 1 choice).
        assert!(m.client.input.scale >= 254.0, "input scale {}", m.client.input.scale);
        for l in &m.layers {
            if let BgvLayer::Linear { weights, name, .. } = l {
                let max = weights.iter().map(|w| w.abs()).max().unwrap();
                assert!(max <= 128, "{model} {name}: weights up to {max} are not int8");
            }
        }
        eprintln!("{model}: top-1 agreement with onnxruntime {}", acc.top1_agreement);
        assert!(acc.top1_agreement >= 0.95, "top-1 agreement {}", acc.top1_agreement);
        encrypted_equals_reference(&m);
    }
    // CryptoNets' shape at 8 bits: two squares of 8-bit values leave one t's range.
    let e = compile_bgv_grid("models/digits_cryptonets3_qdq.onnx", None).unwrap_err().to_string();
    assert!(e.contains("the model's own integers") && e.contains("--quantize BITS"), "{e}");
    let e = compile_bgv_grid("models/digits_sq_mlp_qdq_pc.onnx", None).unwrap_err().to_string();
    assert!(e.contains("not on one integer grid") && e.contains("per_channel=False"), "{e}");
    let e = compile_bgv_grid("models/digits_sq_mlp.onnx", None).unwrap_err().to_string();
    assert!(e.contains("--quantize BITS"), "{e}");
}

/// `--scheme auto` costs BGV beside CKKS when the model brings integers: the QDQ x² MLP
/// goes to BGV (exact), with both rows costed; the QDQ CryptoNets shape, whose integers
/// leave one t, goes to CKKS with BGV's reason in its row and in the why.
#[test]
fn auto_costs_bgv_for_integer_models() {
    let compile_auto = |model: &str| {
        let bytes = std::fs::read(root().join(model)).unwrap();
        let (c, t) = (load("models/data/digits_train_img.npy"), load("models/data/digits_test_img.npy"));
        let opts = Options { name: "m".into(), use_onnxruntime: false, ..Default::default() };
        let d = Data { calibration: &c, eval: Some(&t), labels: None };
        compile_with_scheme(&bytes, None, &d, &opts, SchemeRequest::Auto, None, &|_| {}).unwrap()
    };
    let (c, choice) = compile_auto("models/digits_sq_mlp_qdq.onnx");
    eprintln!("{}", choice.to_text());
    assert_eq!(choice.chosen, model::Scheme::Bgv, "{}", choice.to_text());
    let CompiledAny::Bgv(m) = c else { panic!("a BGV model") };
    assert!(m.model.report.contains("why: the model is an integer network (QDQ-quantized)"), "{}", m.model.report);
    let (bgv, ckks) = (row_of(&choice, model::Scheme::Bgv), row_of(&choice, model::Scheme::Ckks));
    assert!(bgv.cannot.is_none() && ckks.cannot.is_none(), "{}", choice.to_text());
    assert!(bgv.est_latency_ms > 0.0 && bgv.query_bytes > 0 && bgv.key_bytes > 0 && bgv.exact.contains("exact"));
    let (c, choice) = compile_auto("models/digits_cryptonets3_qdq.onnx");
    assert_eq!(choice.chosen, model::Scheme::Ckks, "{}", choice.to_text());
    assert!(matches!(c, CompiledAny::Ckks(_)));
    let bgv = row_of(&choice, model::Scheme::Bgv);
    assert!(bgv.cannot.as_deref().is_some_and(|w| w.contains("the model's own integers")), "{}", choice.to_text());
    assert!(choice.reason.contains("BGV cannot run it"), "{}", choice.reason);
}

fn row_of(choice: &compiler::Choice, s: model::Scheme) -> compiler::scheme::Candidate {
    choice.candidates.iter().find(|c| c.scheme == s).unwrap().clone()
}
