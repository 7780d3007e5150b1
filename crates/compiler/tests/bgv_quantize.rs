//! `--scheme bgv --quantize BITS` on digits models with square activations: the compiled
//! integer network, encrypted under the chosen t and chain, decrypts to the exact integer
//! computation for every test sample; top-1 agreement with onnxruntime on the float model
//! is reported; values past one t run as residues (several t, CRT); models no residue plan
//! can hold, and inputs outside the proven range, are refused.

use std::path::PathBuf;

use bgv::throughput::{crt_combine, IntLayer, IntLinear, IntNetwork, Schedule};
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
/// sample equals the integer reference. A residue plan runs once per plaintext modulus
/// under one key, and each output is the CRT of its residues.
fn encrypted_equals_reference(m: &BgvModel) {
    let spec = &m.client;
    let ts = spec.plaintext_moduli();
    let sets: Vec<Parameters> = ts.iter().map(|&t| Parameters::from_spec(&spec.params, t).unwrap()).collect();
    assert!(sets.iter().all(|p| p.is_secure()));
    let test = load("models/data/digits_test_img.npy");
    let samples: Vec<Vec<i64>> = (0..test.rows()).map(|r| spec.encode_sample(test.row(r)).unwrap()).collect();
    assert!(samples.len() <= sets[0].n());
    let net = network(m);
    let mut kg = KeyGenerator::new(&sets[0]);
    let sk = kg.secret_key();
    let pk = kg.public_key(&sk);
    let rk = kg.relin_key(&sk);
    let schedule = Schedule { before: m.levels.clone(), last: spec.output.level, budget_bits: 0.0 };
    let mut residues: Vec<Vec<Vec<i64>>> = Vec::new(); // [residue][output][sample]
    for params in &sets {
        let (sk, pk, rk) =
            (sk.under(params.rlwe()).unwrap(), pk.under(params.rlwe()).unwrap(), rk.under(params.rlwe()).unwrap());
        let enc = Encoder::new(params);
        let mut encryptor = Encryptor::new(params, &pk).unwrap();
        let x: Vec<_> = (0..net.inputs())
            .map(|f| {
                let col: Vec<i64> = samples.iter().map(|s| s[f]).collect();
                encryptor.encrypt(&enc.encode(&col, params.max_level()).unwrap()).unwrap()
            })
            .collect();
        let start = std::time::Instant::now();
        let y = net.evaluate(&Evaluator::new(params), &rk, &schedule, x).unwrap();
        eprintln!(
            "evaluation of {} samples (t = {}): {:.2?}",
            samples.len(),
            params.plaintext_modulus(),
            start.elapsed()
        );
        // The answers cross the wire, as a server's do (the factor must survive for any t).
        let y: Vec<_> = y.iter().map(|c| bgv::Ciphertext::from_bytes(params, &c.to_bytes()).unwrap()).collect();
        let dec = Decryptor::new(params, &sk).unwrap();
        residues.push(y.iter().map(|c| enc.decode_signed(&dec.decrypt(c).unwrap()).unwrap()).collect());
    }
    let bound: u128 = m.bound.parse().unwrap();
    for (s, sample) in samples.iter().enumerate() {
        let want = net.reference(sample).unwrap();
        for (o, &w) in want.iter().enumerate() {
            assert!(w.unsigned_abs() <= bound);
            let r: Vec<i64> = residues.iter().map(|res| res[o][s]).collect();
            assert_eq!(crt_combine(&r, &ts), Some(w), "sample {s} output {o}");
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

/// CryptoNets' shape at 8 bits, as CryptoNets ran it: two squares of 8-bit values pass any
/// t below 2^60, so the compiler plans residues (several t, one chain, one key) and every
/// output of every test digit recombines to the integer reference.
#[test]
fn digits_cryptonets_at_8_bits_runs_as_residues() {
    let (m, acc) = compile_bgv("models/digits_cryptonets3.onnx", 8).unwrap();
    let bound: u128 = m.bound.parse().unwrap();
    eprintln!("{}", m.report);
    assert!(bound >= 1 << 59, "bound 2^{:.1}", (bound as f64).log2());
    assert!(!m.client.residues.is_empty() && m.report.contains("residues t = "), "{}", m.report);
    let product = m.client.plaintext_moduli().iter().fold(1u128, |p, &t| p * t as u128);
    assert!(product > 2 * bound);
    assert!(acc.top1_agreement >= 0.99, "top-1 agreement {}", acc.top1_agreement);
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
/// digit, through residues where the integers pass one t (CryptoNets' two squares at 8
/// bits). Per-channel weights and a float model without --quantize are refused, each
/// saying what to do.
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
    // CryptoNets' shape at 8 bits: two squares of int8 values leave one t's range, and run
    // as residues.
    {
        let (m, acc) = compile_bgv_grid("models/digits_cryptonets3_qdq.onnx", None).unwrap();
        assert!(!m.client.residues.is_empty(), "{}", m.report);
        eprintln!("QDQ CryptoNets: top-1 agreement with onnxruntime {}", acc.top1_agreement);
        assert!(acc.top1_agreement >= 0.95, "top-1 agreement {}", acc.top1_agreement);
        encrypted_equals_reference(&m);
    }
    let e = compile_bgv_grid("models/digits_sq_mlp_qdq_pc.onnx", None).unwrap_err().to_string();
    assert!(e.contains("not on one integer grid") && e.contains("per_channel=False"), "{e}");
    let e = compile_bgv_grid("models/digits_sq_mlp.onnx", None).unwrap_err().to_string();
    assert!(e.contains("--quantize BITS"), "{e}");
}

/// onnxruntime's quantize_dynamic (DynamicQuantizeLinear → MatMulInteger/ConvInteger, int8 weights):
/// under BGV without --quantize, each layer's weights are the model's int8s and the input
/// sits on DynamicQuantizeLinear's step over the data; every test digit decrypts to the
/// integer reference, and top-1 agrees with onnxruntime on the quantized model.
#[test]
fn quantize_dynamic_models_run_on_their_own_int8_weights() {
    let model = "models/digits_sq_mlp_qdyn.onnx";
    let (m, acc) = compile_bgv_grid(model, None).unwrap();
    assert!(m.report.contains("the model's own (quantize_dynamic)"), "{}", m.report);
    // Digits in [0, 1]: the uint8 step is 1/255.
    assert!((m.client.input.scale - 255.0).abs() < 1e-6, "input scale {}", m.client.input.scale);
    for l in &m.layers {
        if let BgvLayer::Linear { weights, name, .. } = l {
            let max = weights.iter().map(|w| w.abs()).max().unwrap();
            assert!((64..=128).contains(&max), "{model} {name}: weights up to {max} are not the model's int8s");
        }
    }
    eprintln!("{model}: top-1 agreement {} against {}", acc.top1_agreement, acc.reference);
    assert!(acc.top1_agreement >= 0.95, "top-1 agreement {}", acc.top1_agreement);
    encrypted_equals_reference(&m);
    // CryptoNets' shape the same way (ConvInteger and MatMulInteger): two squares of int8
    // values pass one t, so it runs as residues.
    let model = "models/digits_cryptonets3_qdyn.onnx";
    let (m, acc) = compile_bgv_grid(model, None).unwrap();
    assert!(!m.client.residues.is_empty(), "{}", m.report);
    eprintln!("{model}: top-1 agreement {} against {}", acc.top1_agreement, acc.reference);
    assert!(acc.top1_agreement >= 0.95, "top-1 agreement {}", acc.top1_agreement);
    encrypted_equals_reference(&m);
}

/// `--scheme auto` costs BGV beside CKKS when the model brings integers: the QDQ x² MLP
/// goes to BGV (exact), with both rows costed; so does the QDQ CryptoNets shape, whose
/// integers leave one t (residues).
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
    // The QDQ CryptoNets shape leaves one t: BGV still runs it, as residues, and is chosen.
    let (c, choice) = compile_auto("models/digits_cryptonets3_qdq.onnx");
    assert_eq!(choice.chosen, model::Scheme::Bgv, "{}", choice.to_text());
    let CompiledAny::Bgv(m) = c else { panic!("a BGV model") };
    assert!(!m.model.client.residues.is_empty(), "{}", m.model.report);
    assert!(row_of(&choice, model::Scheme::Bgv).cannot.is_none(), "{}", choice.to_text());
}

fn row_of(choice: &compiler::Choice, s: model::Scheme) -> compiler::scheme::Candidate {
    choice.candidates.iter().find(|c| c.scheme == s).unwrap().clone()
}

/// `--circuit-privacy` (2^-40) picks the scheme that can give it: Paillier for a linear
/// model (answers always re-randomised), BGV for an integer network (flooded, exact);
/// CKKS's row says why it cannot at that λ, LWE's too, and `--scheme lwe` is refused.
#[test]
fn circuit_privacy_at_40_picks_paillier_or_bgv() {
    let compile = |model: &str, data: &str, req: SchemeRequest, quantize: Option<u32>| {
        let bytes = std::fs::read(root().join(model)).unwrap();
        let c = load(data);
        let opts =
            Options { name: "m".into(), use_onnxruntime: false, circuit_privacy: Some(40), ..Default::default() };
        let d = Data { calibration: &c, eval: None, labels: None };
        compile_with_scheme(&bytes, None, &d, &opts, req, quantize, &|_| {})
    };
    let lr = ("models/breast_cancer_lr.onnx", "models/data/breast_cancer_train_x.npy");
    let (c, choice) = compile(lr.0, lr.1, SchemeRequest::Auto, None).unwrap();
    assert_eq!(choice.chosen, model::Scheme::Paillier, "{}", choice.to_text());
    assert!(matches!(c, CompiledAny::Paillier(_)));
    assert!(choice.to_text().contains("within 2^-128"), "{}", choice.to_text());
    for s in [model::Scheme::Ckks, model::Scheme::Lwe] {
        let why = row_of(&choice, s).cannot.unwrap_or_default();
        assert!(why.contains("circuit privacy") || why.contains("--circuit-privacy"), "{s:?}: {why}");
    }
    let e = compile(lr.0, lr.1, SchemeRequest::Lwe, None).err().expect("refused").to_string();
    assert!(e.contains("--scheme paillier"), "{e}");
    let (c, choice) =
        compile("models/digits_sq_mlp.onnx", "models/data/digits_train_img.npy", SchemeRequest::Auto, Some(8)).unwrap();
    assert_eq!(choice.chosen, model::Scheme::Bgv, "{}", choice.to_text());
    let CompiledAny::Bgv(m) = c else { panic!("a BGV model") };
    let cp = m.model.client.circuit_privacy.expect("flooded answers");
    assert_eq!((cp.lambda, cp.slot_std), (40, 0.0));
}
