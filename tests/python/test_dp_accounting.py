"""Distributed DP accounting as users see it — `heinfer.aggregate.epsilon`, the Flower
settings' `DpSettings.epsilon` and `heinfer aggregate epsilon` — against Google's
`dp-accounting` run live as the oracle: the sum's noise is a Gaussian mechanism of noise
multiplier z = (σ/g) / (C/g + √d) per round (the rounding's √d in the sensitivity), composed
over rounds by Rényi DP."""
import json
import math
import subprocess

import pytest

dp_accounting = pytest.importorskip("dp_accounting")

from heinfer import aggregate as agg  # noqa: E402
from heinfer.errors import AggregationError  # noqa: E402
from heinfer.flower import DpSettings  # noqa: E402


def oracle(z: float, rounds: int, delta: float) -> float:
    acc = dp_accounting.rdp.RdpAccountant()
    acc.compose(dp_accounting.GaussianDpEvent(z), rounds)
    return acc.get_epsilon(delta)


# (clip, grid, sigma, min_contributors, length): per-client noise variance (σ/g)²/k is
# large here, so the discrete Gaussians' own δ is negligible and the oracle is exact.
SETTINGS = [(1.0, 2**-12, 1.0, 10, 1000), (0.5, 2**-16, 2.0, 50, 4096), (3.0, 2**-10, 1.5, 5, 10)]


@pytest.mark.parametrize("clip,grid,sigma,k,d", SETTINGS)
@pytest.mark.parametrize("rounds,delta", [(1, 1e-5), (20, 1e-5), (200, 1e-6)])
def test_epsilon_equals_dp_accounting(clip, grid, sigma, k, d, rounds, delta):
    z = (sigma / grid) / (clip / grid + math.sqrt(d))
    want = oracle(z, rounds, delta)
    got = agg.epsilon(clip, grid, sigma, k, d, rounds, delta)
    assert got == pytest.approx(want, rel=1e-6), (got, want, z)


def test_flower_settings_account_their_own_noise():
    s = DpSettings(noise_multiplier=1.1, clip=1.0, grid_bits=14)
    d = 650  # the digits MLP's parameter count order
    z = 1.1 * 2**14 / (2**14 + math.sqrt(d))
    assert s.epsilon(d, 5, 10) == pytest.approx(oracle(z, 10, 1e-5), rel=1e-6)
    # More rounds spend more; more noise spends less.
    assert s.epsilon(d, 5, 20) > s.epsilon(d, 5, 10) > DpSettings(2.0, 1.0, 14).epsilon(d, 5, 10)


def test_a_coarse_grid_costs_privacy_and_a_tiny_delta_is_out_of_reach():
    # The stochastic rounding adds √d to the sensitivity: a coarse grid pays for it.
    fine = agg.epsilon(1.0, 2**-14, 1.0, 10, 10_000, 1, 1e-5)
    coarse = agg.epsilon(1.0, 2**-6, 1.0, 10, 10_000, 1, 1e-5)
    assert coarse > 1.5 * fine
    # Per-client variance of one grid step², over 1,000 clients: the sum of discrete
    # Gaussians is only close to a Gaussian up to a δ of about 10·k·e^(-2π²) ≈ 3e-5.
    assert math.isinf(agg.epsilon(1.0, 1.0, math.sqrt(1000), 1000, 10, 1, 1e-6))
    assert math.isfinite(agg.epsilon(1.0, 1.0, math.sqrt(1000), 1000, 10, 1, 1e-3))


@pytest.mark.parametrize("args,says", [((1.0, 2**-12, 1.0, 10, 100, 0, 1e-5), "rounds"),
                                       ((1.0, 2**-12, 1.0, 10, 100, 1, 0.0), "delta"),
                                       ((-1.0, 2**-12, 1.0, 10, 100, 1, 1e-5), "positive clip"),
                                       ((1.0, 2**-12, 1.0, 0, 100, 1, 1e-5), "positive clip")])
def test_bad_settings_are_refused(args, says):
    with pytest.raises(AggregationError, match=says):
        agg.epsilon(*args)


def test_cli_prints_the_same_epsilon(heinfer_bin):
    r = subprocess.run([heinfer_bin, "aggregate", "epsilon", "--clip", "1", "--grid", str(2**-12), "--sigma", "1",
                        "--min-contributors", "10", "--length", "1000", "--rounds", "20"],
                       capture_output=True, text=True, check=True)
    out = json.loads(r.stdout)
    assert out["epsilon"] == pytest.approx(agg.epsilon(1.0, 2**-12, 1.0, 10, 1000, 20, 1e-5), rel=1e-12)
    assert out["rounds"] == 20 and out["delta"] == 1e-5
    bad = subprocess.run([heinfer_bin, "aggregate", "epsilon", "--clip", "1", "--grid", str(2**-12), "--sigma", "1",
                          "--min-contributors", "10", "--length", "10", "--rounds", "0"], capture_output=True, text=True)
    assert bad.returncode != 0 and "rounds" in bad.stderr
