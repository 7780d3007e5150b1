"""The privacy options end to end through the official tritonclient (HTTP and gRPC), against
real Triton with heinfer's backend and against `heinfer serve` (the session's `server`
fixture; the two models are compiled into its repository by conftest.compile_privacy_models):

- circuit privacy: the client registers its public key with its evaluation keys, the
  server floods every answer; decrypted answers keep onnxruntime's decisions and carry
  noise of the standard deviation the client spec states (so the flood did happen: without
  it the error is ~1e-8); a bundle without the public key is refused with a clear error
  and the server lives on;
- output DP: every answer says what it cost (`heinfer.privacy_account`, read from the
  `heinfer_dp_epsilon_*` response parameters), and the query past a key id's budget is
  refused with a message naming the budget (Triton: INVALID_ARG; heinfer serve: 429 /
  RESOURCE_EXHAUSTED), while other key ids are still served.

CI time: 40 breast-cancer queries per server and protocol (~0.1 s each) and a few keygens.
The Rust side: crates/client/tests/circuit_privacy.rs, crates/server/tests/{circuit_privacy,output_dp}.rs."""
import json
import os

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

import heinfer

from conftest import CP_LAMBDA, CP_MODEL, DATA, DP_BUDGET, DP_EPS, DP_MODEL, ROOT

PROTOCOLS = ["http", "grpc"]
SAMPLES = int(os.environ.get("HEINFER_PRIVACY_SAMPLES", "40"))


def connect(server, protocol):
    if protocol == "http":
        return th.InferenceServerClient(server.http_url, connection_timeout=600, network_timeout=600)
    return tg.InferenceServerClient(server.grpc_url)


def client_for(server, model, drop=None):
    """A fresh client (its own keys, so its own key id) from the model's config; `drop`
    removes a field from the spec it read, as a client that ignores it would."""
    spec = heinfer.client_spec_from_config(connect(server, "http").get_model_config(model))
    if drop:
        d = json.loads(spec)
        d.pop(drop)
        spec = json.dumps(d)
    return heinfer.Client(spec, model_name=model)


@pytest.fixture(scope="module")
def breast_cancer():
    """Test samples whose onnxruntime probabilities give an accurate logit (neither within
    1e-4 of 0 or 1), with the label and log(p0/p1)."""
    x = np.load(os.path.join(DATA, "breast_cancer_test_x.npy")).astype(np.float32)
    ref = ort.InferenceSession(os.path.join(ROOT, "models", "breast_cancer_lr.onnx"))
    label, prob = ref.run(None, {ref.get_inputs()[0].name: x})
    prob = prob.astype(np.float64)
    ok = (prob.min(axis=1) > 1e-4)
    return x[ok], label[ok], np.log(prob[ok, 0] / prob[ok, 1])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_circuit_private_answers_are_flooded_and_agree(server, breast_cancer, protocol):
    c = client_for(server, CP_MODEL)
    cp = c.spec["circuit_privacy"]
    assert cp["lambda"] == CP_LAMBDA
    # The bundle carries the public key: longer than the same client's bundle without it.
    assert len(c.evaluation_keys) > len(client_for(server, CP_MODEL, drop="circuit_privacy").evaluation_keys)
    sigma = cp["slot_std"] * abs(c.spec["output"].get("multiplier", 1.0))
    x, label, logit = breast_cancer
    n = min(SAMPLES, len(x))
    cli = connect(server, protocol)
    y = np.array([c.infer(cli, xi) for xi in x[:n]])
    got = np.array([int(np.argmax(c.postprocess(yi))) for yi in y])
    agree = float(np.mean(got == label[:n]))
    # The compiled program's two outputs are ±log(p0/p1) (its sigmoid postprocessing gives the
    # probabilities), each up to its own flood.
    err = np.concatenate([y[:, 0] - logit[:n], y[:, 1] + logit[:n]])
    print(f"{server.kind}/{protocol}: top-1 agreement {agree:.4f} on {n} samples; flood σ stated {sigma:.3e}, "
          f"measured {err.std():.3e}, max |error| {np.abs(err).max():.3e}")
    assert agree >= 0.995
    assert np.abs(err).max() <= 7 * sigma
    # The flood is there, at its stated size (the unflooded error is ~1e-8).
    assert 0.6 * sigma < err.std() < 1.4 * sigma


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bundle_without_public_key_is_refused(server, breast_cancer, protocol):
    x = breast_cancer[0]
    cli = connect(server, protocol)
    bare = client_for(server, CP_MODEL, drop="circuit_privacy")
    with pytest.raises(InferenceServerException) as e:
        bare.infer(cli, x[0])
    assert "no public key" in str(e.value) and "circuit privacy" in str(e.value), str(e.value)
    assert server.alive()
    good = client_for(server, CP_MODEL)
    assert int(np.argmax(good.postprocess(good.infer(cli, x[0])))) == int(breast_cancer[1][0])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_output_dp_budget_is_spent_then_refused(server, breast_cancer, protocol):
    x = breast_cancer[0]
    cli = connect(server, protocol)
    c = client_for(server, DP_MODEL)
    assert c.output_dp["epsilon"] == DP_EPS and c.output_dp["budget"] == DP_BUDGET
    queries = int(DP_BUDGET // DP_EPS)
    for i in range(queries):
        y = c.infer(cli, x[i])
        assert np.all(np.isfinite(y))
        acc = c.last_privacy
        assert acc is not None, "the answer carries no heinfer_dp_epsilon_* parameters"
        assert acc["epsilon_query"] == pytest.approx(DP_EPS)
        assert acc["epsilon_spent"] == pytest.approx(DP_EPS * (i + 1))
        assert acc["epsilon_budget"] == pytest.approx(DP_BUDGET)
        assert acc["epsilon_remaining"] == pytest.approx(DP_BUDGET - DP_EPS * (i + 1))
    with pytest.raises(InferenceServerException) as e:
        c.infer(cli, x[queries])
    msg = str(e.value)
    assert "budget exhausted" in msg and c.key_id in msg, msg
    # Triton has no quota status: the backend's INVALID_ARG; heinfer serve says 429 / RESOURCE_EXHAUSTED.
    status = str(e.value.status())
    want = {"triton": ("400", "StatusCode.INVALID_ARGUMENT"), "heinfer": ("429", "StatusCode.RESOURCE_EXHAUSTED")}
    assert status in want[server.kind], status
    # The budget is per key id: the server lives on and another key is served.
    assert server.alive()
    other = client_for(server, DP_MODEL)
    other.infer(cli, x[0])
    assert other.last_privacy["epsilon_spent"] == pytest.approx(DP_EPS)
