//! Differentially private outputs, end to end on the breast-cancer logistic regression:
//! `compile` with output DP, the runtime adds noise under encryption, the client
//! decrypts. The noise the client sees has the configured law (σ, mean 0); a key id's
//! budget runs out after budget/ε queries, stays spent across a restart with a key
//! directory, and every answer says what was spent.
use std::path::PathBuf;
use std::sync::Arc;

use ckks::{Ciphertext, Decryptor, Encoder, KeyGenerator, Parameters};
use compiler::{npy, Data, Options, OutputDpRequest};
use model::{DpMechanism, OutputDp};
use runtime::dp::DpNoise;
use runtime::{CompiledModel, Executable, KeyStore, Request, Service};

fn repo_file(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

struct Setup {
    m: model::HeModel,
    params: Parameters,
    sk: ckks::SecretKey,
    bundle: Vec<u8>,
    x: Vec<f64>,
}

fn setup(req: OutputDpRequest) -> Setup {
    let onnx = std::fs::read(repo_file("models/breast_cancer_lr.onnx")).unwrap();
    let calib = npy::read(&repo_file("models/data/breast_cancer_train_x.npy")).unwrap();
    let test = npy::read(&repo_file("models/data/breast_cancer_test_x.npy")).unwrap();
    // Rotations before the rescale: the least CKKS noise, so that the check of the answer
    // without DP noise below (1e-2) measures the mask and the DP path, not the key-size
    // trade `--rotations auto` makes (after the rescale this model's predicted max error
    // is 0.13, before it 0.06).
    let opts = Options {
        name: "bc".into(),
        use_onnxruntime: false,
        output_dp: Some(req),
        rotations: compiler::RotationPolicy::BeforeRescale,
        ..Options::default()
    };
    let c = compiler::compile(&onnx, None, &Data { calibration: &calib, eval: None, labels: None }, &opts, &|_| {})
        .expect("compiles with output DP");
    let m = c.model;
    let params = Parameters::from_spec(&m.client.params).unwrap();
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let exe = CompiledModel::load(m.clone()).unwrap();
    let bundle = kg.evaluation_keys(&sk, exe.rotation_steps(), false, exe.needs_relinearization()).to_bytes();
    Setup { m, params, sk, bundle, x: test.row(3).to_vec() }
}

impl Setup {
    fn service(&self, keys: Arc<KeyStore>) -> Service {
        CompiledModel::load(self.m.clone()).unwrap().into_service(keys)
    }

    fn query(&self, s: &Service, id: &str) -> Result<(Vec<f64>, runtime::Response), runtime::ServiceError> {
        let spec = &self.m.client;
        let enc = Encoder::new(&self.params);
        let mut dec = Decryptor::new(&self.sk);
        let cts: Vec<Vec<u8>> = spec
            .pack_input(&self.x)
            .unwrap()
            .iter()
            .map(|v| {
                let pt = enc.encode(v, spec.input.level as usize, spec.input.scale).unwrap();
                dec.encrypt_symmetric(&pt).unwrap().to_bytes()
            })
            .collect();
        let r = s.infer(Request {
            ciphertexts: cts.iter().map(|c| &c[..]).collect(),
            key_id: Some(id.as_bytes()),
            evaluation_keys: None,
        })?;
        let decoded: Vec<Vec<f64>> = r
            .ciphertexts
            .iter()
            .map(|b| enc.decode(&dec.decrypt(&Ciphertext::from_bytes(&self.params, b).unwrap()).unwrap()).unwrap())
            .collect();
        Ok((spec.unpack_output(&decoded).unwrap(), r))
    }

    /// The noiseless output: the same program in f64.
    fn exact(&self) -> Vec<f64> {
        let slots = self.m.client.pack_input(&self.x).unwrap();
        self.m.client.unpack_output(&model::simulate(&self.m, &slots).unwrap()).unwrap()
    }
}

/// Sample mean and standard deviation of decrypted − exact over `n` answers.
fn noise_stats(s: &Setup, svc: &Service, id: &str, n: usize) -> (f64, f64) {
    let exact = s.exact();
    let d: Vec<f64> = (0..n)
        .flat_map(|_| {
            let (y, _) = s.query(svc, id).unwrap();
            y.iter().zip(&exact).map(|(a, b)| a - b).collect::<Vec<_>>()
        })
        .collect();
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    let sd = (d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (d.len() - 1) as f64).sqrt();
    (mean, sd)
}

#[test]
fn server_noise_has_the_configured_law_and_budgets_run_out() {
    let s = setup(OutputDpRequest { epsilon: 1.0, delta: 1e-5, clamp: Some(4.0), budget: Some(3.0) });
    let dp = s.m.client.output_dp.clone().expect("the spec carries the DP config");
    assert_eq!(dp.mechanism, DpMechanism::Gaussian);
    // The noise is sized from what the fitted clip reaches on its interval, never less than the clamp.
    assert!(dp.bound >= 4.0 && dp.bound < 16.0, "clamp polynomial reaches {}", dp.bound);
    let report = s.m.report.as_ref().unwrap().to_text();
    assert!(report.contains("output DP"), "the report states the DP configuration:\n{report}");

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(KeyStore::new(1 << 30, Some(dir.path())).unwrap());
    let mut svc = s.service(store.clone());
    let id = svc.register(&s.bundle).unwrap().hex();

    // Budget 3 at ε = 1: three answers, each saying what was spent, then refusal.
    for q in 1..=3 {
        let (_, r) = s.query(&svc, &id).unwrap();
        if q == 1 {
            // Under encryption too, the slots outside the output hold only CKKS error.
            let dec = Decryptor::new(&s.sk);
            let enc = Encoder::new(&s.params);
            let ct = Ciphertext::from_bytes(&s.params, &r.ciphertexts[0]).unwrap();
            let all = enc.decode(&dec.decrypt(&ct).unwrap()).unwrap();
            let out: Vec<usize> = s.m.client.output.slots.iter().map(|&(_, j)| j as usize).collect();
            let worst =
                all.iter().enumerate().filter(|(j, _)| !out.contains(j)).map(|(_, v)| v.abs()).fold(0.0, f64::max);
            assert!(worst < 1e-2, "an unused slot decrypts to {worst}");
        }
        let a = r.dp.expect("a DP answer says what it cost");
        assert_eq!((a.epsilon_query, a.epsilon_budget), (1.0, Some(3.0)));
        assert!((a.epsilon_spent - q as f64).abs() < 1e-9 && (a.epsilon_remaining() - (3 - q) as f64).abs() < 1e-9);
    }
    let e = s.query(&svc, &id).err().expect("refused once the budget is spent");
    assert!(e.is_budget_exhausted(), "{e}");
    assert!(e.to_string().contains("privacy budget exhausted") && e.to_string().contains("ε = 3"), "{e}");
    // A restart with the same key directory does not refill it.
    let store2 = Arc::new(KeyStore::new(1 << 30, Some(dir.path())).unwrap());
    let svc2 = s.service(store2.clone());
    assert!(s.query(&svc2, &id).err().expect("still refused after a restart").is_budget_exhausted());

    // The noise: no budget (the serving config's override), 100 answers (σ within 20 %: ~3 standard errors).
    svc.set_dp_budget(None);
    let (mean, sd) = noise_stats(&s, &svc, &id, 100);
    let n = 100.0 * dp.outputs as f64;
    assert!((sd / dp.sigma - 1.0).abs() < 0.2, "σ measured {sd}, configured {}", dp.sigma);
    assert!(mean.abs() < 5.0 * dp.sigma / n.sqrt(), "mean {mean} (σ {})", dp.sigma);

    // Discrete Laplace (δ = 0) through the same path, σ = √2·t.
    let lap = OutputDp::calibrate(2.0, 0.0, dp.clamp, dp.bound, dp.fit_interval, dp.outputs, None).unwrap();
    assert_eq!(lap.mechanism, DpMechanism::Laplace);
    let out = &s.m.client.output;
    let svc3 = s.service(store).with_output_dp(DpNoise::new(
        &s.params,
        "bc-lap",
        lap.clone(),
        out.slots.clone(),
        out.multiplier,
    ));
    let (mean, sd) = noise_stats(&s, &svc3, &id, 150);
    assert!((sd / lap.sigma - 1.0).abs() < 0.3, "σ measured {sd}, configured {}", lap.sigma);
    assert!(mean.abs() < 5.0 * lap.sigma / n.sqrt(), "mean {mean}");

    // Without output DP nothing is added: the same query decrypts to the exact output.
    let mut plain = s.m.clone();
    plain.client.output_dp = None;
    let svc4 = CompiledModel::load(plain).unwrap().into_service(Arc::new(KeyStore::new(1 << 30, None).unwrap()));
    let id4 = svc4.register(&s.bundle).unwrap().hex();
    let (y, r) = s.query(&svc4, &id4).unwrap();
    assert!(r.dp.is_none());
    for (a, b) in y.iter().zip(s.exact()) {
        assert!((a - b).abs() < 1e-2, "{a} vs {b}");
    }
}

/// Output DP masks the answer's unused slots: without the mask the digits MLP's answer
/// carries values besides its outputs (replicas, partial sums) that the client would
/// read without noise; with it every other slot is exactly zero.
#[test]
fn output_dp_masks_every_slot_but_the_outputs() {
    let onnx = std::fs::read(repo_file("models/digits_mlp.onnx")).unwrap();
    let calib = npy::read(&repo_file("models/data/digits_train_img.npy")).unwrap();
    let unused_max = |dp: Option<OutputDpRequest>| {
        let opts = Options { name: "m".into(), use_onnxruntime: false, output_dp: dp, ..Options::default() };
        let m = compiler::compile(&onnx, None, &Data { calibration: &calib, eval: None, labels: None }, &opts, &|_| {})
            .expect("compiles")
            .model;
        let out = model::simulate(&m, &m.client.pack_input(calib.row(0)).unwrap()).unwrap();
        let mut worst = 0.0f64;
        for (c, v) in out.iter().enumerate() {
            for (j, x) in v.iter().enumerate() {
                if !m.client.output.slots.contains(&(c as u32, j as u32)) {
                    worst = worst.max(x.abs());
                }
            }
        }
        (worst, m.client.params.q.len())
    };
    let (open, levels_open) = unused_max(None);
    let (masked, levels_masked) =
        unused_max(Some(OutputDpRequest { epsilon: 4.0, delta: 1e-5, clamp: None, budget: None }));
    assert!(open > 1.0, "without the mask the answer carries other values (max {open})");
    assert_eq!(masked, 0.0, "with output DP every unused slot is zero");
    assert!(levels_masked > levels_open, "the mask and the clamp cost levels ({levels_open} → {levels_masked} primes)");
}
