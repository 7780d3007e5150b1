"""`heinfer.privacy_account`: what a differentially private answer cost, read from the
response parameters the servers send (`heinfer_dp_epsilon_*`, doubles), over HTTP
(a JSON dict) and gRPC (InferParameter messages). The servers' side is tested in
crates/server/tests/output_dp.rs."""
import pytest

heinfer = pytest.importorskip("heinfer", reason="the heinfer wheel is not installed (scripts/setup-python.sh builds it)")


class _Result:
    """What tritonclient's InferResult offers: get_response()."""

    def __init__(self, resp):
        self._resp = resp

    def get_response(self):
        return self._resp


def test_http_response_parameters():
    head = {
        "model_name": "m",
        "parameters": {
            "heinfer_dp_epsilon_query": 1.0,
            "heinfer_dp_epsilon_spent": 2.0,
            "heinfer_dp_epsilon_budget": 3.0,
            "heinfer_dp_epsilon_remaining": 1.0,
        },
    }
    acc = heinfer.privacy_account(_Result(head))
    assert acc == {"epsilon_query": 1.0, "epsilon_spent": 2.0, "epsilon_budget": 3.0, "epsilon_remaining": 1.0}
    # a model without output DP: nothing to report
    assert heinfer.privacy_account(_Result({"model_name": "m"})) is None


def test_grpc_response_parameters():
    pb = pytest.importorskip("tritonclient.grpc.service_pb2")
    r = pb.ModelInferResponse()
    r.parameters["heinfer_dp_epsilon_query"].double_param = 0.5
    r.parameters["heinfer_dp_epsilon_spent"].double_param = 2.5
    assert heinfer.privacy_account(_Result(r)) == {"epsilon_query": 0.5, "epsilon_spent": 2.5}
    assert heinfer.privacy_account(_Result(pb.ModelInferResponse())) is None
