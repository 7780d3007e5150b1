//! model.hem: round trip, and bad files are errors (never panics).

use model::{ClientSpec, HeModel, InputSpec, Node, Op, OutputSpec, PlainVec};

fn tiny() -> HeModel {
    let q = vec![1099511480321u64, 1073692673];
    let params = ckks::ParamsSpec {
        log_n: 12,
        q: q.clone(),
        p: vec![1099511185409],
        dnum: 2,
        log_scale: 30.0,
        key_bases: vec![],
    };
    let s = 2f64.powi(30);
    let nodes = vec![
        Node { op: Op::Input { index: 0 }, level: 1, scale: s, layer: 0 },
        Node { op: Op::MulPlain { a: 0, pt: 0 }, level: 1, scale: s * q[1] as f64, layer: 0 },
        Node { op: Op::Rescale { a: 1 }, level: 0, scale: s, layer: 0 },
        Node { op: Op::Rotate { a: 2, step: 1 }, level: 0, scale: s, layer: 0 },
        Node { op: Op::Add { a: 2, b: 3 }, level: 0, scale: s, layer: 0 },
    ];
    HeModel {
        name: "tiny".into(),
        client: ClientSpec {
            version: 1,
            model: "tiny".into(),
            params,
            input: InputSpec {
                name: "x".into(),
                shape: vec![2],
                level: 1,
                scale: s,
                slot_map: vec![vec![0, 1]],
                layout: "x".into(),
                parts: vec![],
                compact: None,
            },
            rotation_steps: vec![1],
            galois_elements: vec![5],
            relinearization: false,
            key_levels: Default::default(),
            output: OutputSpec {
                name: "y".into(),
                shape: vec![1],
                ciphertexts: 1,
                slots: vec![(0, 0)],
                multiplier: 1.0,
                level: 0,
                scale: s,
                final_name: "y".into(),
            },
            postprocess: vec![],
            output_dp: None,
            circuit_privacy: None,
            public_features: vec![],
            throughput: None,
            multi: None,
            layouts: vec![],
            prefix: None,
            client_aided: None,
            answer: None,
        },
        layers: vec![model::LayerInfo { name: "l".into(), kind: "dense".into() }],
        nodes,
        plaintexts: vec![PlainVec { level: 1, scale: q[1] as f64, values: vec![2.0, 3.0] }],
        outputs: vec![4],
        report: None,
        public: None,
        throughput: None,
        multi: None,
        first_layer: None,
    }
}

#[test]
fn round_trip_and_simulation() {
    let m = tiny();
    let b = m.to_bytes();
    let m2 = HeModel::from_bytes(&b).unwrap();
    assert_eq!(m2, m);
    let cts = m.client.pack_input(&[1.0, 10.0]).unwrap();
    let out = model::simulate(&m, &cts).unwrap();
    // 2·1 + 3·10 (slot 0 plus slot 1 rotated left into slot 0)
    assert_eq!(m.client.unpack_output(&out).unwrap(), vec![32.0]);
    assert_eq!(out[0][2047], 2.0); // cyclic: slot N/2−1 received slot 0
}

#[test]
fn bad_files_are_errors() {
    let b = tiny().to_bytes();
    for cut in [0, 5, 12, 40, b.len() - 33, b.len() - 1] {
        assert!(HeModel::from_bytes(&b[..cut]).is_err());
    }
    for i in (0..b.len()).step_by(7) {
        let mut c = b.clone();
        c[i] ^= 0x5a;
        assert!(HeModel::from_bytes(&c).is_err(), "flip at {i} accepted");
    }
}

#[test]
fn invalid_programs_are_rejected() {
    let mut m = tiny();
    m.nodes[4].level = 1; // wrong annotation
    assert!(m.validate().is_err());
    let mut m = tiny();
    m.client.rotation_steps = vec![1, 2]; // a key the program does not use
    assert!(m.validate().is_err());
    let mut m = tiny();
    m.nodes[2].op = Op::Rescale { a: 2 }; // reads itself
    assert!(m.validate().is_err());
}

/// A spec comes from a server's config: every index in it that the client will follow
/// is checked first. Each mutation below used to panic (index out of bounds) or ask
/// for unbounded work in packing, key generation or decoding; now each is an error that
/// names the field, and the untouched spec still passes.
#[test]
fn hostile_client_specs_are_errors_not_panics() {
    let good = tiny().client;
    good.validate().unwrap();
    let slots = 1usize << (good.params.log_n - 1);
    type Mutation = (&'static str, fn(&mut ClientSpec, usize));
    let mutations: [Mutation; 10] = [
        ("reads value", |s, _| s.input.slot_map[0][1] = 7),
        ("reads value", |s, _| s.input.slot_map[0][0] = -2),
        ("maps", |s, slots| s.input.slot_map[0] = vec![0; slots + 1]),
        ("input ciphertexts", |s, _| s.input.slot_map.clear()),
        ("input shape", |s, _| s.input.shape = vec![usize::MAX, 2]),
        ("output slot", |s, _| s.output.slots.push((1, 0))),
        ("output slot", |s, slots| s.output.slots.push((0, slots as u32))),
        ("level", |s, _| s.input.level = 9),
        ("scale", |s, _| s.output.scale = f64::NAN),
        ("rotation keys", |s, slots| s.rotation_steps = (0..slots as i64 + 1).collect()),
    ];
    for (what, mutate) in mutations {
        let mut spec = good.clone();
        mutate(&mut spec, slots);
        let err = spec.validate().expect_err(what).to_string();
        assert!(err.contains(what), "{what}: {err}");
        // The same through JSON, as a client reads it from a model config.
        assert!(ClientSpec::from_json(&spec.to_json()).is_err(), "{what}");
    }
    // Packing with an unchecked spec is where the panic was: validated specs never get there.
    let mut spec = good.clone();
    spec.input.slot_map[0][1] = 7;
    assert!(spec.validate().is_err());
    assert_eq!(good.pack_input(&[1.0, 2.0]).unwrap()[0], vec![1.0, 2.0]);
}
