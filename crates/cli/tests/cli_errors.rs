//! `heinfer keygen / encrypt / evaluate / decrypt` on bad input: each a clear error
//! (exit status 1, "error: ..." naming the problem), never a panic. Also the happy path,
//! so that the errors are not the only thing these commands can do.
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

fn heinfer(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_heinfer")).args(args).output().expect("runs heinfer");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn ok(args: &[&str]) -> String {
    let (good, out, err) = heinfer(args);
    assert!(good, "heinfer {args:?} failed: {err}");
    out
}

/// Fails cleanly, and its message contains `want`.
fn fails(args: &[&str], want: &str) {
    let (good, _, err) = heinfer(args);
    assert!(!good, "heinfer {args:?} should fail");
    assert!(!err.contains("panicked"), "heinfer {args:?} panicked: {err}");
    assert!(err.starts_with("error: "), "no clear error from {args:?}: {err}");
    assert!(err.contains(want), "error of {args:?} does not mention {want:?}: {err}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn compile(model: &str, repo_dir: &Path) -> PathBuf {
    ok(&[
        "compile",
        s(&repo(&format!("models/{model}.onnx"))),
        "--calibration",
        s(&repo("models/data/digits_train_img.npy")),
        "--no-onnxruntime",
        "-o",
        s(repo_dir),
    ]);
    repo_dir.join(model)
}

#[test]
fn client_commands_round_trip_and_refuse_bad_input() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let cn = compile("digits_cryptonets", &d.join("repo"));
    let mlp = compile("digits_mlp", &d.join("repo"));
    let x = repo("models/data/digits_test_img.npy");
    let (sk, keys) = (d.join("sk.bin"), d.join("keys.hek"));

    // Happy path: keygen prints the key id; 2 queries; results decrypt to the labels' classes.
    let id = ok(&["keygen", s(&cn), "--secret-key", s(&sk), "--keys-out", s(&keys)]);
    assert_eq!(id.trim().len(), 64, "key id: {id}");
    ok(&["encrypt", s(&cn), "--secret-key", s(&sk), "--input", s(&x), "--samples", "2", "-o", s(&d.join("q"))]);
    let q0 = d.join("q/query_00000.hect");
    ok(&["evaluate", s(&cn), "--keys", s(&keys), s(&q0), "-o", s(&d.join("r0.hect"))]);
    let out = ok(&["decrypt", s(&cn), "--secret-key", s(&sk), s(&d.join("r0.hect")), "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["output"].as_array().unwrap().len(), 10);
    // For release: rounded to 2^-6 with the guarantee named; an infeasible flood refused.
    let r = ok(&["decrypt", s(&cn), "--secret-key", s(&sk), s(&d.join("r0.hect")), "--release", "round:6", "--json"]);
    let r: serde_json::Value = serde_json::from_str(r.trim()).unwrap();
    assert!(r["release"].as_str().unwrap().contains("rounding"), "{r}");
    for (a, b) in r["output"].as_array().unwrap().iter().zip(v["output"].as_array().unwrap()) {
        let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
        assert_eq!(a * 64.0, (a * 64.0).round());
        assert!((a - b).abs() <= 1.0 / 128.0 + 1e-9, "{a} vs {b}");
    }
    let r0 = d.join("r0.hect");
    let rel = ["decrypt", s(&cn), "--secret-key", s(&sk), s(&r0), "--release"];
    fails(&[&rel[..], &["flood:1000:0.01"]].concat(), "cannot release safely");
    fails(&[&rel[..], &["noise:3"]].concat(), "expected flood");

    // keygen never overwrites a secret key.
    fails(&["keygen", s(&cn), "--secret-key", s(&sk), "--keys-out", s(&d.join("k2.hek"))], "never overwrites");

    // Ciphertexts under other parameters: a query for the MLP sent to CryptoNets.
    let (sk_m, keys_m) = (d.join("sk_mlp.bin"), d.join("keys_mlp.hek"));
    ok(&["keygen", s(&mlp), "--secret-key", s(&sk_m), "--keys-out", s(&keys_m)]);
    ok(&[
        "encrypt",
        s(&mlp),
        "--secret-key",
        s(&sk_m),
        "--input",
        s(&x),
        "--samples",
        "1",
        "-o",
        s(&d.join("qm.hect")),
    ]);
    fails(&["evaluate", s(&cn), "--keys", s(&keys), s(&d.join("qm.hect")), "-o", s(&d.join("x.hect"))], "qm.hect");
    // ... and the MLP's keys for CryptoNets.
    fails(&["evaluate", s(&cn), "--keys", s(&keys_m), s(&q0), "-o", s(&d.join("x.hect"))], "evaluation keys");
    // A result decrypted with the wrong model's key.
    fails(&["decrypt", s(&mlp), "--secret-key", s(&sk_m), s(&d.join("r0.hect"))], "r0.hect");

    // Wrong count: the same ciphertext twice in one query.
    let bytes = std::fs::read(&q0).unwrap();
    let elems = {
        let body = &bytes[12..];
        let len = u32::from_le_bytes(body[..4].try_into().unwrap()) as usize;
        vec![body[4..4 + len].to_vec(), body[4..4 + len].to_vec()]
    };
    let mut two = b"HECT".to_vec();
    two.extend_from_slice(&1u16.to_le_bytes());
    two.extend_from_slice(&1u16.to_le_bytes());
    two.extend_from_slice(&2u32.to_le_bytes());
    for e in &elems {
        two.extend_from_slice(&(e.len() as u32).to_le_bytes());
        two.extend_from_slice(e);
    }
    std::fs::write(d.join("two.hect"), &two).unwrap();
    fails(&["evaluate", s(&cn), "--keys", s(&keys), s(&d.join("two.hect")), "-o", s(&d.join("x.hect"))], "2");
    // A header whose count disagrees with the elements.
    let mut lie = bytes.clone();
    lie[8..12].copy_from_slice(&3u32.to_le_bytes());
    std::fs::write(d.join("lie.hect"), &lie).unwrap();
    fails(&["evaluate", s(&cn), "--keys", s(&keys), s(&d.join("lie.hect")), "-o", s(&d.join("x.hect"))], "3");

    // Truncated bytes: a query, a result, a key bundle, a file that is not ours.
    for cut in [5usize, 20, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(d.join("cut.hect"), &bytes[..cut]).unwrap();
        fails(
            &["evaluate", s(&cn), "--keys", s(&keys), s(&d.join("cut.hect")), "-o", s(&d.join("x.hect"))],
            "cut.hect",
        );
    }
    let res = std::fs::read(d.join("r0.hect")).unwrap();
    std::fs::write(d.join("rcut.hect"), &res[..res.len() - 7]).unwrap();
    fails(&["decrypt", s(&cn), "--secret-key", s(&sk), s(&d.join("rcut.hect"))], "rcut.hect");
    let kb = std::fs::read(&keys).unwrap();
    std::fs::write(d.join("kcut.hek"), &kb[..kb.len() / 3]).unwrap();
    fails(
        &["evaluate", s(&cn), "--keys", s(&d.join("kcut.hek")), s(&q0), "-o", s(&d.join("x.hect"))],
        "evaluation keys",
    );
    // A query where a result is expected, and the other way round.
    fails(&["decrypt", s(&cn), "--secret-key", s(&sk), s(&q0)], "expected an encrypted result");
    fails(
        &["evaluate", s(&cn), "--keys", s(&keys), s(&d.join("r0.hect")), "-o", s(&d.join("x.hect"))],
        "expected an encrypted query",
    );
    fails(
        &["evaluate", s(&cn), "--keys", s(&keys), s(&x), "-o", s(&d.join("x.hect"))],
        "not a heinfer ciphertext file",
    );

    // A key bundle lacking a Galois key the model needs.
    let spec: model::ClientSpec =
        serde_json::from_str(&ok(&["inspect", s(&cn), "--client-spec"])).expect("client spec JSON");
    let params = ckks::Parameters::from_spec(&spec.params).unwrap();
    let ck = client::ClientKeys::generate(&params);
    let (short, _) = ck.evaluation_bundle(&spec.rotation_steps[1..], false, spec.relinearization);
    std::fs::write(d.join("short.hek"), short).unwrap();
    fails(&["evaluate", s(&cn), "--keys", s(&d.join("short.hek")), s(&q0), "-o", s(&d.join("x.hect"))], "Galois");

    // A model file of another version.
    let hem = cn.join("1/model.hem");
    let mut mb = std::fs::read(&hem).unwrap();
    mb[8..12].copy_from_slice(&99u32.to_le_bytes());
    let other = d.join("other");
    std::fs::create_dir_all(other.join("1")).unwrap();
    std::fs::write(other.join("1/model.hem"), &mb).unwrap();
    fails(&["evaluate", s(&other), "--keys", s(&keys), s(&q0), "-o", s(&d.join("x.hect"))], "model.hem");
    fails(&["encrypt", s(&other), "--secret-key", s(&sk), "--input", s(&x), "-o", s(&d.join("y"))], "model.hem");
    fails(&["keygen", s(&other), "--secret-key", s(&d.join("sk9")), "--keys-out", s(&d.join("k9"))], "model.hem");

    // Input of the wrong shape.
    fails(
        &[
            "encrypt",
            s(&cn),
            "--secret-key",
            s(&sk),
            "--input",
            s(&repo("models/data/breast_cancer_test_x.npy")),
            "-o",
            s(&d.join("z")),
        ],
        "shape",
    );
}
