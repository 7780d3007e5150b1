//! Secure aggregation over heinfer-server's HTTP API: a committee of 5 (threshold 3)
//! makes a collective key, 6 of 8 clients contribute, the round closes, one member is
//! replaced, three shares decrypt the sum — and a restarted server still has it.

mod common;

use std::collections::BTreeMap;

use aggregate::round::{join, split, CONTRIBUTION_MAGIC, SHARES_MAGIC};
use aggregate::{RoundConfig, Signer};
use ckks::{Ciphertext, Encoder, Encryptor, Parameters};
use common::{get, raw, Running};
use rlwe::multiparty::{collective_public_key, sum_noise_bound, Party, ShamirShare, Smudging, ThresholdKey};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn signed(s: &Signer, kind: &str, round: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![("x-heinfer-signer", s.public_hex()), ("x-heinfer-signature", hex(&s.sign(kind, round, body)))]
}

#[test]
fn a_round_over_http_survives_a_dropout_and_a_restart() {
    let params = Parameters::builder().log_n(13).q_bits(&[60, 60]).p_bits(&[60]).build().unwrap();
    // The committee's key ceremony (off the server).
    let crs = [8u8; 32];
    let mut parties: Vec<Party> = (1..=5).map(|i| Party::new(&params, i).unwrap()).collect();
    let pk_shares: Vec<_> = parties.iter_mut().map(|p| p.public_key_share(&crs)).collect();
    let pk = collective_public_key(&params, &crs, &pk_shares).unwrap();
    let ids: Vec<u32> = (1..=5).collect();
    let mut inbox: BTreeMap<u32, Vec<ShamirShare>> = BTreeMap::new();
    for p in &mut parties {
        for s in p.shamir_shares(&ids, 3).unwrap() {
            inbox.entry(s.to()).or_default().push(s);
        }
    }
    let mut members: BTreeMap<u32, ThresholdKey> =
        inbox.iter().map(|(&j, got)| (j, ThresholdKey::combine(&params, j, &ids, 3, got).unwrap())).collect();
    let member_signers: BTreeMap<u32, Signer> =
        ids.iter().map(|&j| (j, Signer::from_seed(&[50 + j as u8; 32]))).collect();
    let clients: Vec<Signer> = (0..8).map(|i| Signer::from_seed(&[i as u8 + 1; 32])).collect();

    let dir = tempfile::tempdir().unwrap();
    let opts = server::Options { aggregate_dir: Some(dir.path().to_path_buf()), ..Default::default() };
    let mut srv = Running::start(opts.clone(), None);
    let addr = srv.http();

    let scale = 2f64.powi(90);
    let config = RoundConfig {
        id: "hospitals".into(),
        params: params.spec().clone(),
        length: 100,
        scale,
        committee: member_signers.iter().map(|(&j, s)| (j, s.public_hex())).collect(),
        threshold: 3,
        min_contributors: 4,
        deadline_unix_s: u64::MAX,
        contributors: clients.iter().map(Signer::public_hex).collect(),
        plaintext_modulus: None,
        value_bound: None,
    };
    let create = join(b"HEAN", &[serde_json::to_vec(&config).unwrap(), pk.to_bytes()]);
    let r = raw(addr, "POST", "/v2/aggregate/rounds", &[], &create);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(raw(addr, "POST", "/v2/aggregate/rounds", &[], &create).status, 400, "a round is created once");

    let enc = Encoder::new(&params);
    let mut expected = vec![0.0; 100];
    for (i, c) in clients.iter().enumerate().take(6) {
        let v: Vec<f64> = (0..100).map(|k| ((i * 31 + k * 7) % 50) as f64 / 10.0 - 2.5).collect();
        let ct = Encryptor::new(&pk).encrypt(&enc.encode(&v, params.max_level(), scale).unwrap()).unwrap();
        let body = join(CONTRIBUTION_MAGIC, &[ct.to_bytes()]);
        let path = "/v2/aggregate/rounds/hospitals/contributions";
        let r = raw(addr, "POST", path, &signed(c, "contribution", "hospitals", &body), &body);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        for (e, x) in expected.iter_mut().zip(&v) {
            *e += x;
        }
        if i == 0 {
            let again = raw(addr, "POST", path, &signed(c, "contribution", "hospitals", &body), &body);
            assert_eq!(again.status, 400);
            assert!(again.error().contains("already accepted"), "{}", again.error());
            let forged = signed(&clients[7], "contribution", "hospitals", &body);
            let mut h = signed(&clients[6], "contribution", "hospitals", &body);
            h[1] = forged[1].clone();
            let bad = raw(addr, "POST", path, &h, &body);
            assert_eq!(bad.status, 400);
            assert!(bad.error().contains("does not verify"), "{}", bad.error());
            assert_eq!(raw(addr, "POST", path, &[], &body).status, 400, "unsigned");
        }
    }
    assert_eq!(get(addr, "/v2/aggregate/rounds/hospitals").json()["contributions"], 6);
    assert_eq!(get(addr, "/v2/aggregate/rounds/nope").status, 404);
    assert_eq!(get(addr, "/v2/aggregate/rounds/hospitals/result").status, 404);

    // Close; members 1, 2, 3 are asked; 2 has gone: the server re-chooses 1, 3, 4.
    assert_eq!(raw(addr, "POST", "/v2/aggregate/rounds/hospitals/close", &[], b"").status, 200);
    let share = |addr, members: &mut BTreeMap<u32, ThresholdKey>, m: u32, set: &[u32]| -> Vec<u8> {
        let sum = get(addr, "/v2/aggregate/rounds/hospitals/sum");
        assert_eq!(sum.status, 200);
        let cts = split(&sum.body, CONTRIBUTION_MAGIC, 1).unwrap();
        let ct = Ciphertext::from_bytes(&params, cts[0]).unwrap();
        let smudging = Smudging { security_bits: 40, noise_bound: sum_noise_bound(&params, 5, 8) };
        let s = members.get_mut(&m).unwrap().decryption_share(&ct, set, &smudging).unwrap();
        join(SHARES_MAGIC, &[s.to_bytes()])
    };
    let b1 = share(addr, &mut members, 1, &[1, 2, 3]);
    let r = raw(
        addr,
        "POST",
        "/v2/aggregate/rounds/hospitals/shares/1",
        &signed(&member_signers[&1], "share", "hospitals", &b1),
        &b1,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = raw(addr, "POST", "/v2/aggregate/rounds/hospitals/participants", &[], br#"{"participants": [1, 3, 4]}"#);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    // The server restarts: the round, its sum and its participants are still there.
    srv.stop();
    let srv = Running::start(opts, None);
    let addr = srv.http();
    assert_eq!(get(addr, "/v2/aggregate/rounds/hospitals").json()["participants"], serde_json::json!([1, 3, 4]));
    for m in [1u32, 3, 4] {
        let b = share(addr, &mut members, m, &[1, 3, 4]);
        let path = format!("/v2/aggregate/rounds/hospitals/shares/{m}");
        let r = raw(addr, "POST", &path, &signed(&member_signers[&m], "share", "hospitals", &b), &b);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        if m == 1 {
            // Member 5 is not a participant; member 1 shared already.
            let r = raw(
                addr,
                "POST",
                "/v2/aggregate/rounds/hospitals/shares/5",
                &signed(&member_signers[&5], "share", "hospitals", &b),
                &b,
            );
            assert_eq!(r.status, 400);
            let r = raw(addr, "POST", &path, &signed(&member_signers[&1], "share", "hospitals", &b), &b);
            assert_eq!(r.status, 400);
        }
    }
    let got = get(addr, "/v2/aggregate/rounds/hospitals/result").json();
    let values: Vec<f64> = got["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let err = values.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(err < 1e-3, "max error {err}");
}

#[test]
fn finished_rounds_are_deleted_or_make_way_and_running_ones_stay() {
    let params = Parameters::builder().log_n(13).q_bits(&[60, 60]).p_bits(&[60]).build().unwrap();
    let crs = [9u8; 32];
    let mut party = Party::new(&params, 1).unwrap();
    let pk = collective_public_key(&params, &crs, &[party.public_key_share(&crs)]).unwrap();
    let member = Signer::from_seed(&[70; 32]);
    let client = Signer::from_seed(&[71; 32]);
    let dir = tempfile::tempdir().unwrap();
    let srv =
        Running::start(server::Options { aggregate_dir: Some(dir.path().to_path_buf()), ..Default::default() }, None);
    let addr = srv.http();
    let create = |id: &str| {
        let config = RoundConfig {
            id: id.into(),
            params: params.spec().clone(),
            length: 4,
            scale: 2f64.powi(40),
            committee: [(1, member.public_hex())].into_iter().collect(),
            threshold: 1,
            min_contributors: 1,
            deadline_unix_s: u64::MAX,
            contributors: vec![client.public_hex()],
            plaintext_modulus: None,
            value_bound: None,
        };
        raw(
            addr,
            "POST",
            "/v2/aggregate/rounds",
            &[],
            &join(b"HEAN", &[serde_json::to_vec(&config).unwrap(), pk.to_bytes()]),
        )
    };
    let files = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "round"))
            .count()
    };

    // A running round is not deleted; once failed (closed without contributions) it is.
    assert_eq!(create("r0").status, 201);
    let r = raw(addr, "DELETE", "/v2/aggregate/rounds/r0", &[], b"");
    assert_eq!(r.status, 400);
    assert!(r.error().contains("only a done or failed round"), "{}", r.error());
    assert_eq!(raw(addr, "POST", "/v2/aggregate/rounds/r0/close", &[], b"").status, 200);
    assert_eq!(raw(addr, "DELETE", "/v2/aggregate/rounds/r0", &[], b"").status, 204);
    assert_eq!(get(addr, "/v2/aggregate/rounds/r0").status, 404);
    assert_eq!(files(), 0, "the deleted round's file is gone");

    // The cap: 64 running rounds refuse a 65th; one finished round makes way for it.
    for i in 0..server::aggregation::MAX_ROUNDS {
        assert_eq!(create(&format!("run{i}")).status, 201);
    }
    let r = create("late");
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(raw(addr, "POST", "/v2/aggregate/rounds/run7/close", &[], b"").status, 200);
    assert_eq!(raw(addr, "POST", "/v2/aggregate/rounds/run9/close", &[], b"").status, 200);
    // run7 is read after run9 closed: run9, the finished round left alone longest, goes.
    assert_eq!(get(addr, "/v2/aggregate/rounds/run7").status, 200);
    assert_eq!(create("late").status, 201);
    assert_eq!(get(addr, "/v2/aggregate/rounds/run9").status, 404, "the least recently used failed round made way");
    assert_eq!(get(addr, "/v2/aggregate/rounds/run7").status, 200, "the other failed round stays");
    assert_eq!(get(addr, "/v2/aggregate/rounds/run8").status, 200, "running rounds stay");
    assert_eq!(files(), server::aggregation::MAX_ROUNDS);
}

#[test]
fn a_round_over_grpc_is_the_same_round_as_over_http() {
    use server::pb_aggregate::aggregation_client::AggregationClient;
    use server::pb_aggregate::{ContributeRequest, CreateRoundRequest, ParticipantsRequest, RoundRef, SharesRequest};
    let params = Parameters::builder().log_n(13).q_bits(&[60, 60]).p_bits(&[60]).build().unwrap();
    let crs = [10u8; 32];
    let mut parties: Vec<Party> = (1..=3).map(|i| Party::new(&params, i).unwrap()).collect();
    let pk_shares: Vec<_> = parties.iter_mut().map(|p| p.public_key_share(&crs)).collect();
    let pk = collective_public_key(&params, &crs, &pk_shares).unwrap();
    let ids: Vec<u32> = (1..=3).collect();
    let mut inbox: BTreeMap<u32, Vec<ShamirShare>> = BTreeMap::new();
    for p in &mut parties {
        for s in p.shamir_shares(&ids, 2).unwrap() {
            inbox.entry(s.to()).or_default().push(s);
        }
    }
    let mut members: BTreeMap<u32, ThresholdKey> =
        inbox.iter().map(|(&j, got)| (j, ThresholdKey::combine(&params, j, &ids, 2, got).unwrap())).collect();
    let member_signers: BTreeMap<u32, Signer> =
        ids.iter().map(|&j| (j, Signer::from_seed(&[80 + j as u8; 32]))).collect();
    let clients: Vec<Signer> = (0..4).map(|i| Signer::from_seed(&[90 + i as u8; 32])).collect();
    let srv = Running::start(server::Options::default(), None);
    let (http, url) = (srv.http(), srv.grpc_url());
    let scale = 2f64.powi(90);
    let config = RoundConfig {
        id: "g".into(),
        params: params.spec().clone(),
        length: 50,
        scale,
        committee: member_signers.iter().map(|(&j, s)| (j, s.public_hex())).collect(),
        threshold: 2,
        min_contributors: 2,
        deadline_unix_s: u64::MAX,
        contributors: clients.iter().map(Signer::public_hex).collect(),
        plaintext_modulus: None,
        value_bound: None,
    };
    let enc = Encoder::new(&params);
    let contributions: Vec<(Vec<f64>, Vec<u8>)> = (0..3)
        .map(|i| {
            let v: Vec<f64> = (0..50).map(|k| ((i * 13 + k * 5) % 40) as f64 - 20.0).collect();
            let ct = Encryptor::new(&pk).encrypt(&enc.encode(&v, params.max_level(), scale).unwrap()).unwrap();
            (v, join(CONTRIBUTION_MAGIC, &[ct.to_bytes()]))
        })
        .collect();
    let expected: Vec<f64> = (0..50).map(|k| contributions.iter().map(|(v, _)| v[k]).sum()).collect();
    let round = || RoundRef { round: "g".into() };

    let values = srv.rt.block_on(async {
        let ch = tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap();
        let mut c = AggregationClient::new(ch).max_encoding_message_size(16 << 20).max_decoding_message_size(16 << 20);
        let made = c
            .create_round(CreateRoundRequest {
                config_json: serde_json::to_vec(&config).unwrap().into(),
                public_key: pk.to_bytes().into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((made.round.as_str(), made.status.as_str()), ("g", "open"));
        // Contributions are larger than a JSON call may be: admission gives them the request limit.
        assert!(contributions[0].1.len() > 200_000);
        for (i, (_, body)) in contributions.iter().enumerate().take(2) {
            let req = ContributeRequest {
                round: "g".into(),
                signer: clients[i].public_hex(),
                signature: clients[i].sign("contribution", "g", body).to_vec().into(),
                contribution: body.clone().into(),
            };
            let st = c.contribute(req.clone()).await.unwrap().into_inner();
            assert_eq!(st.contributions, i as u64 + 1);
            if i == 0 {
                let again = c.contribute(req.clone()).await.unwrap_err();
                assert_eq!(again.code(), tonic::Code::InvalidArgument);
                assert!(again.message().contains("already accepted"), "{}", again.message());
                let short = ContributeRequest { signature: vec![0u8; 10].into(), ..req };
                let e = c.contribute(short).await.unwrap_err();
                assert!(e.message().contains("64 bytes"), "{}", e.message());
            }
        }
        c
    });
    // The third contribution over HTTP, with the same bytes and signature: one round.
    let body = &contributions[2].1;
    let r = raw(
        http,
        "POST",
        "/v2/aggregate/rounds/g/contributions",
        &signed(&clients[2], "contribution", "g", body),
        body,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["contributions"], 3);

    let mut c = values;
    let got = srv.rt.block_on(async move {
        let missing = c.get_result(round()).await.unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound, "no result before the shares");
        assert_eq!(c.close_round(round()).await.unwrap().into_inner().status, "decrypting (participants [1, 2])");
        let st = c.set_participants(ParticipantsRequest { round: "g".into(), participants: vec![1, 3] }).await;
        assert_eq!(st.unwrap().into_inner().participants, vec![1, 3]);
        let sum = c.get_sum(round()).await.unwrap().into_inner().ciphertexts;
        let ct = Ciphertext::from_bytes(&params, split(&sum, CONTRIBUTION_MAGIC, 1).unwrap()[0]).unwrap();
        let smudging = Smudging { security_bits: 40, noise_bound: sum_noise_bound(&params, 3, 4) };
        for m in [1u32, 3] {
            let s = members.get_mut(&m).unwrap().decryption_share(&ct, &[1, 3], &smudging).unwrap();
            let b = join(SHARES_MAGIC, &[s.to_bytes()]);
            let req = |who: u32, signer: &Signer| SharesRequest {
                round: "g".into(),
                member: who,
                signature: signer.sign("share", "g", &b).to_vec().into(),
                shares: b.clone().into(),
            };
            if m == 1 {
                // Member 2 is no participant now.
                let e = c.submit_shares(req(2, &member_signers[&2])).await.unwrap_err();
                assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
            }
            c.submit_shares(req(m, &member_signers[&m])).await.unwrap();
        }
        assert_eq!(c.get_round(round()).await.unwrap().into_inner().status, "done");
        let got = c.get_result(round()).await.unwrap().into_inner().values;
        c.delete_round(round()).await.unwrap();
        assert_eq!(c.get_round(round()).await.unwrap_err().code(), tonic::Code::NotFound);
        got
    });
    let err = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert_eq!(got.len(), 50);
    assert!(err < 1e-3, "max error {err}");
}
