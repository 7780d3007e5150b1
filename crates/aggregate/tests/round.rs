//! A whole round as the parties would run it: a committee of 5 makes a collective key
//! with threshold 3; 20 clients may contribute a 5 000-value vector, 2 drop out; one
//! committee member drops out during decryption; the server restarts twice. The sum is
//! right, and every misuse on the way is refused without changing the round.

use std::collections::BTreeMap;

use aggregate::round::{join, CONTRIBUTION_MAGIC, SHARES_MAGIC};
use aggregate::{store, AggregateError, Round, RoundConfig, Signer, Status};
use ckks::{Ciphertext, Encoder, Encryptor, Parameters, PublicKey};
use rlwe::multiparty::{collective_public_key, sum_noise_bound, Party, ShamirShare, Smudging, ThresholdKey};

const LENGTH: usize = 5000;
const N_CLIENTS: usize = 20;

fn params() -> Parameters {
    Parameters::builder().log_n(13).q_bits(&[60, 60]).p_bits(&[60]).build().unwrap()
}

fn vector(client: usize) -> Vec<f64> {
    (0..LENGTH).map(|k| (((client * 7919 + k * 104729) % 2001) as f64 - 1000.0) / 1000.0).collect()
}

struct Committee {
    pk: PublicKey,
    members: BTreeMap<u32, ThresholdKey>,
    signers: BTreeMap<u32, Signer>,
}

fn committee(params: &Parameters) -> Committee {
    let crs = [5u8; 32];
    let mut parties: Vec<Party> = (1..=5).map(|i| Party::new(params, i).unwrap()).collect();
    let shares: Vec<_> = parties.iter_mut().map(|p| p.public_key_share(&crs)).collect();
    let pk = collective_public_key(params, &crs, &shares).unwrap();
    let ids: Vec<u32> = (1..=5).collect();
    let mut inbox: BTreeMap<u32, Vec<ShamirShare>> = BTreeMap::new();
    for p in &mut parties {
        for s in p.shamir_shares(&ids, 3).unwrap() {
            inbox.entry(s.to()).or_default().push(s);
        }
    }
    let members = inbox.iter().map(|(&j, got)| (j, ThresholdKey::combine(params, j, &ids, 3, got).unwrap())).collect();
    let signers = ids.iter().map(|&j| (j, Signer::from_seed(&[100 + j as u8; 32]))).collect();
    Committee { pk, members, signers }
}

fn contribution(params: &Parameters, pk: &PublicKey, values: &[f64], scale: f64) -> Vec<u8> {
    let enc = Encoder::new(params);
    let mut e = Encryptor::new(pk);
    let cts: Vec<Vec<u8>> = values
        .chunks(params.slots())
        .map(|c| e.encrypt(&enc.encode(c, params.max_level(), scale).unwrap()).unwrap().to_bytes())
        .collect();
    join(CONTRIBUTION_MAGIC, &cts)
}

fn shares(
    round: &Round,
    params: &Parameters,
    c: &mut Committee,
    member: u32,
    participants: &[u32],
) -> (Vec<u8>, [u8; 64]) {
    let smudging = Smudging { security_bits: 40, noise_bound: sum_noise_bound(params, 5, N_CLIENTS + 1) };
    let items: Vec<Vec<u8>> = round
        .sum_ciphertexts()
        .unwrap()
        .iter()
        .map(|b| {
            let ct = Ciphertext::from_bytes(params, b).unwrap();
            c.members.get_mut(&member).unwrap().decryption_share(&ct, participants, &smudging).unwrap().to_bytes()
        })
        .collect();
    let payload = join(SHARES_MAGIC, &items);
    let sig = c.signers[&member].sign("share", &round.config().id, &payload);
    (payload, sig)
}

#[test]
fn a_round_with_dropouts_and_restarts_sums_exactly_what_arrived() {
    let params = params();
    let mut c = committee(&params);
    let clients: Vec<Signer> = (0..N_CLIENTS).map(|i| Signer::from_seed(&[i as u8 + 1; 32])).collect();
    let scale = 2f64.powi(90);
    let config = RoundConfig {
        id: "fl-round-7".into(),
        params: params.spec().clone(),
        length: LENGTH,
        scale,
        committee: c.signers.iter().map(|(&j, s)| (j, s.public_hex())).collect(),
        threshold: 3,
        min_contributors: 10,
        deadline_unix_s: 1_000,
        contributors: clients.iter().map(Signer::public_hex).collect(),
        plaintext_modulus: None,
        value_bound: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut round = Round::create(config.clone(), &c.pk.to_bytes()).unwrap();
    assert_eq!(round.ciphertexts(), 2);

    // 18 of 20 contribute (clients 3 and 11 drop out); the server restarts halfway.
    let mut expected = vec![0.0; LENGTH];
    for (i, who) in clients.iter().enumerate() {
        if i == 3 || i == 11 {
            continue;
        }
        let v = vector(i);
        let payload = contribution(&params, &c.pk, &v, scale);
        let sig = who.sign("contribution", "fl-round-7", &payload);
        round.contribute(&who.public_hex(), &sig, &payload, 10).unwrap();
        store::save(&round, dir.path()).unwrap();
        for (e, x) in expected.iter_mut().zip(&v) {
            *e += x;
        }
        if i == 9 {
            round = store::load(dir.path(), "fl-round-7").unwrap();
        }
        if i == 0 {
            // Misuse, each refused and leaving the round as it was.
            let again = round.contribute(&who.public_hex(), &sig, &payload, 10);
            assert!(matches!(again, Err(AggregateError::Duplicate(_))), "{again:?}");
            let by_other = clients[1].sign("contribution", "fl-round-7", &payload);
            assert!(matches!(
                round.contribute(&who.public_hex(), &by_other, &payload, 10),
                Err(AggregateError::Duplicate(_))
            ));
            let other_round = clients[1].sign("contribution", "fl-round-8", &payload);
            assert!(matches!(
                round.contribute(&clients[1].public_hex(), &other_round, &payload, 10),
                Err(AggregateError::Auth(_))
            ));
            let stranger = Signer::from_seed(&[222; 32]);
            let s = stranger.sign("contribution", "fl-round-7", &payload);
            assert!(matches!(round.contribute(&stranger.public_hex(), &s, &payload, 10), Err(AggregateError::Auth(_))));
            let small = contribution(&params, &c.pk, &v, 2f64.powi(60));
            let s = clients[1].sign("contribution", "fl-round-7", &small);
            let err = round.contribute(&clients[1].public_hex(), &s, &small, 10).unwrap_err();
            assert!(err.to_string().contains("scale"), "{err}");
            let short = contribution(&params, &c.pk, &v[..100], scale);
            let s = clients[1].sign("contribution", "fl-round-7", &short);
            assert!(matches!(
                round.contribute(&clients[1].public_hex(), &s, &short, 10),
                Err(AggregateError::Payload(_))
            ));
            let huge = vec![0u8; round.max_contribution_bytes() + 1];
            let s = clients[1].sign("contribution", "fl-round-7", &huge);
            assert!(matches!(
                round.contribute(&clients[1].public_hex(), &s, &huge, 10),
                Err(AggregateError::Payload(_))
            ));
            let mut cut = payload.clone();
            cut.truncate(cut.len() - 5);
            let s = clients[1].sign("contribution", "fl-round-7", &cut);
            assert!(round.contribute(&clients[1].public_hex(), &s, &cut, 10).is_err());
            assert_eq!(round.contributions(), 1);
        }
    }
    assert_eq!(round.contributions(), 18);
    assert!(matches!(round.submit_shares(1, &[0; 64], b""), Err(AggregateError::State { .. })));

    // The deadline closes it; participants 1, 2, 3 by default.
    assert!(round.tick(1_000));
    assert_eq!(round.status(), &Status::Decrypting { participants: vec![1, 2, 3] });
    let late = contribution(&params, &c.pk, &vector(3), scale);
    let s = clients[3].sign("contribution", "fl-round-7", &late);
    assert!(matches!(round.contribute(&clients[3].public_hex(), &s, &late, 1_001), Err(AggregateError::State { .. })));

    // Member 1 shares; member 2 never does; a non-participant and a repeat are refused.
    let (p1, s1) = shares(&round, &params, &mut c, 1, &[1, 2, 3]);
    round.submit_shares(1, &s1, &p1).unwrap();
    assert!(matches!(round.submit_shares(1, &s1, &p1), Err(AggregateError::Duplicate(_))));
    let (p4, s4) = shares(&round, &params, &mut c, 4, &[1, 2, 4]);
    assert!(matches!(round.submit_shares(4, &s4, &p4), Err(AggregateError::Auth(_))));
    assert!(matches!(round.submit_shares(9, &s1, &p1), Err(AggregateError::Auth(_))));
    // Signed by member 1's key but sent as member 3's.
    assert!(matches!(round.submit_shares(3, &s1, &p1), Err(AggregateError::Auth(_))));
    store::save(&round, dir.path()).unwrap();
    round = store::load(dir.path(), "fl-round-7").unwrap();

    // Member 2 is gone: the server picks 1, 3, 4. The sum is re-randomised, so member 1
    // shares a new ciphertext (its key refuses to share the old one again); shares for
    // the old sum are refused as stale.
    round.reassign(&[1, 3, 4]).unwrap();
    let (stale, s) = (p1.clone(), s1);
    assert!(round.submit_shares(1, &s, &stale).is_err());
    for m in [1, 3, 4] {
        let (p, s) = shares(&round, &params, &mut c, m, &[1, 3, 4]);
        round.submit_shares(m, &s, &p).unwrap();
        store::save(&round, dir.path()).unwrap();
    }
    assert_eq!(round.status(), &Status::Done);
    let after_restart = store::load(dir.path(), "fl-round-7").unwrap();
    for got in [round.result().unwrap(), after_restart.result().unwrap()] {
        assert_eq!(got.len(), LENGTH);
        let err = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(err < 1e-3, "max error {err}");
    }
}

#[test]
fn a_round_under_its_minimum_fails_at_the_deadline_and_bad_configs_are_refused() {
    let params = params();
    let c = committee(&params);
    let clients: Vec<Signer> = (0..4).map(|i| Signer::from_seed(&[i as u8 + 1; 32])).collect();
    let scale = 2f64.powi(90);
    let config = RoundConfig {
        id: "small".into(),
        params: params.spec().clone(),
        length: 10,
        scale,
        committee: c.signers.iter().map(|(&j, s)| (j, s.public_hex())).collect(),
        threshold: 3,
        min_contributors: 3,
        deadline_unix_s: 50,
        contributors: clients.iter().map(Signer::public_hex).collect(),
        plaintext_modulus: None,
        value_bound: None,
    };
    let mut round = Round::create(config.clone(), &c.pk.to_bytes()).unwrap();
    let payload = contribution(&params, &c.pk, &[1.0; 10], scale);
    let sig = clients[0].sign("contribution", "small", &payload);
    round.contribute(&clients[0].public_hex(), &sig, &payload, 10).unwrap();
    assert!(round.tick(60));
    assert!(matches!(round.status(), Status::Failed { reason } if reason.contains("fewer than the 3")));
    assert!(round.sum_ciphertexts().is_err());

    for (bad, what) in [
        (RoundConfig { id: "a/b".into(), ..config.clone() }, "round id"),
        (RoundConfig { threshold: 6, ..config.clone() }, "threshold"),
        (RoundConfig { min_contributors: 5, ..config.clone() }, "min_contributors"),
        (RoundConfig { length: 0, ..config.clone() }, "length"),
        (RoundConfig { contributors: vec!["00".into()], min_contributors: 1, ..config.clone() }, "Ed25519"),
    ] {
        let err = Round::create(bad, &c.pk.to_bytes()).err().expect(what);
        assert!(err.to_string().contains(what), "{err}");
    }
    assert!(Round::create(config, b"not a key").is_err());
}

/// An integer round (BGV, t = 2^40 + 15; any t): 12 clients may send 3 000 integers, 2 drop
/// out, one member drops out during decryption — the sum is exact, to the unit.
#[test]
fn an_integer_round_sums_exactly_through_dropouts() {
    let t: u64 = (1 << 40) + 15;
    let spec = params().spec().clone();
    let bp = bgv::Parameters::from_spec(&spec, t).unwrap();
    let rp = bp.rlwe().clone();
    let mut c = committee(&rp);
    let clients: Vec<Signer> = (0..12).map(|i| Signer::from_seed(&[i as u8 + 60; 32])).collect();
    let config = RoundConfig {
        id: "ints".into(),
        params: spec,
        length: 3000,
        scale: 1.0,
        committee: c.signers.iter().map(|(&j, s)| (j, s.public_hex())).collect(),
        threshold: 3,
        min_contributors: 5,
        deadline_unix_s: u64::MAX,
        contributors: clients.iter().map(Signer::public_hex).collect(),
        plaintext_modulus: Some(t),
        value_bound: None,
    };
    // A CKKS key is refused for it (another fingerprint), and so is a scale other than 1.
    let ckks_pk = committee(&params()).pk;
    assert!(Round::create(config.clone(), &ckks_pk.to_bytes()).is_err());
    assert!(Round::create(RoundConfig { scale: 2.0, ..config.clone() }, &c.pk.to_bytes()).is_err());
    let mut round = Round::create(config.clone(), &c.pk.to_bytes()).unwrap();
    assert_eq!(round.ciphertexts(), 1, "N = 8192 coefficients per ciphertext");
    let enc = bgv::Encoder::new(&bp);
    let mut expected = vec![0i64; 3000];
    for (i, who) in clients.iter().enumerate() {
        if i == 2 || i == 7 {
            continue;
        }
        // Large integers of both signs: a CKKS round would lose their low digits.
        let v: Vec<i64> =
            (0..3000).map(|k| ((i as i64 * 7919 + k * 104_729) % 2_000_001 - 1_000_000) * 1_000).collect();
        let ct =
            bgv::Encryptor::new(&bp, &c.pk).unwrap().encrypt(&enc.encode_coeffs(&v, bp.max_level()).unwrap()).unwrap();
        let payload = join(CONTRIBUTION_MAGIC, &[ct.to_bytes()]);
        let sig = who.sign("contribution", "ints", &payload);
        round.contribute(&who.public_hex(), &sig, &payload, 1).unwrap();
        for (e, x) in expected.iter_mut().zip(&v) {
            *e += x;
        }
        if i == 0 {
            // A CKKS ciphertext is not a contribution to an integer round.
            let wrong = contribution(&params(), &ckks_pk, &vec![0.5; 3000], 2f64.powi(40));
            let s = clients[1].sign("contribution", "ints", &wrong);
            assert!(round.contribute(&clients[1].public_hex(), &s, &wrong, 1).is_err());
        }
    }
    round.close().unwrap();
    // A restart: the integer round reads back as one.
    let dir = tempfile::tempdir().unwrap();
    store::save(&round, dir.path()).unwrap();
    round = store::load(dir.path(), "ints").unwrap();
    // Member 2 of the first three drops out: 1, 3, 4 decrypt.
    let (p1, s1) = shares(&round, &rp, &mut c, 1, &[1, 2, 3]);
    round.submit_shares(1, &s1, &p1).unwrap();
    round.reassign(&[1, 3, 4]).unwrap();
    for m in [1u32, 3, 4] {
        let (p, s) = shares(&round, &rp, &mut c, m, &[1, 3, 4]);
        round.submit_shares(m, &s, &p).unwrap();
    }
    assert_eq!(round.status(), &Status::Done);
    let got: Vec<i64> = round.result().unwrap().iter().map(|&x| x as i64).collect();
    assert_eq!(got, expected, "the integer sum is exact");
}

#[test]
fn an_integer_round_without_room_for_the_shares_is_refused() {
    let signer = Signer::from_seed(&[9; 32]);
    let mut config = RoundConfig {
        id: "big-t".into(),
        params: params().spec().clone(),
        length: 10,
        scale: 1.0,
        committee: (1..=5).map(|j| (j, signer.public_hex())).collect(),
        threshold: 3,
        min_contributors: 1,
        deadline_unix_s: u64::MAX,
        contributors: vec![signer.public_hex(); 100],
        plaintext_modulus: Some((1 << 52) + 21),
        value_bound: None,
    };
    let e = config.check_integer_room(&config.parameters().unwrap().0, 40).unwrap_err();
    assert!(e.to_string().contains("smaller plaintext_modulus"), "{e}");
    config.plaintext_modulus = Some(65537);
    config.check_integer_room(&config.parameters().unwrap().0, 40).unwrap();
}

/// A packed integer round: |v| ≤ 1 000 from 6 allowed clients needs 14-bit digits, so
/// three values share a coefficient under t > 2^42 — 20 000 values fit one ciphertext
/// where an unpacked round needs three — and the sum is still exact to the unit, at the
/// bounds too (a carry between digits or a wrong offset would show there).
#[test]
fn a_packed_integer_round_sums_exactly_in_fewer_ciphertexts() {
    use aggregate::Packing;
    let (bound, length) = (1000u64, 20_000usize);
    let clients: Vec<Signer> = (0..6).map(|i| Signer::from_seed(&[i as u8 + 80; 32])).collect();
    assert_eq!(Packing::width(bound, clients.len()), Some(14));
    let t = ((1u64 << 42)..).find(|&t| rlwe::ring::arith::is_prime(t)).unwrap();
    let spec = params().spec().clone();
    let bp = bgv::Parameters::from_spec(&spec, t).unwrap();
    let rp = bp.rlwe().clone();
    let mut c = committee(&rp);
    let config = RoundConfig {
        id: "packed".into(),
        params: spec,
        length,
        scale: 1.0,
        committee: c.signers.iter().map(|(&j, s)| (j, s.public_hex())).collect(),
        threshold: 3,
        min_contributors: 2,
        deadline_unix_s: u64::MAX,
        contributors: clients.iter().map(Signer::public_hex).collect(),
        plaintext_modulus: Some(t),
        value_bound: Some(bound),
    };
    let packing = config.packing().unwrap();
    assert_eq!((packing.width, packing.per_coefficient), (14, 3));
    // A bound that leaves no digit room below t, or a bound without t, is refused.
    for bad in [
        RoundConfig { value_bound: Some(1 << 40), ..config.clone() },
        RoundConfig { plaintext_modulus: None, scale: 2f64.powi(40), ..config.clone() },
    ] {
        assert!(Round::create(bad, &c.pk.to_bytes()).is_err());
    }
    let mut round = Round::create(config.clone(), &c.pk.to_bytes()).unwrap();
    assert_eq!(round.ciphertexts(), 1, "3 × 8192 values per ciphertext");
    let enc = bgv::Encoder::new(&bp);
    let mut expected = vec![0i64; length];
    for (i, who) in clients.iter().enumerate().skip(1) {
        // Values at ±bound for two clients (the digits' extremes), mixed for the rest.
        let v: Vec<i64> = (0..length as i64)
            .map(|k| match i {
                1 => bound as i64,
                2 => -(bound as i64),
                _ => (i as i64 * 7919 + k * 104_729) % 2001 - 1000,
            })
            .collect();
        let pt = enc.encode_coeffs(&packing.pack(&v), bp.max_level()).unwrap();
        let ct = bgv::Encryptor::new(&bp, &c.pk).unwrap().encrypt(&pt).unwrap();
        let payload = join(CONTRIBUTION_MAGIC, &[ct.to_bytes()]);
        round.contribute(&who.public_hex(), &who.sign("contribution", "packed", &payload), &payload, 1).unwrap();
        for (e, x) in expected.iter_mut().zip(&v) {
            *e += x;
        }
    }
    round.close().unwrap();
    for m in [1u32, 2, 3] {
        let (p, s) = shares(&round, &rp, &mut c, m, &[1, 2, 3]);
        round.submit_shares(m, &s, &p).unwrap();
    }
    let got: Vec<i64> = round.result().unwrap().iter().map(|&x| x as i64).collect();
    assert_eq!(got, expected, "the packed sum is exact");
}
