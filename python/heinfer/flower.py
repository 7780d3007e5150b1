"""Flower (``flwr``) over heinfer's secure aggregation: FedAvg on encrypted updates.

Three parts, one per party, and the Flower app's model code does not change:

* **Server** — :class:`SecureAggregation` wraps any Flower strategy (FedAvg, FedAdam…).
  Each fit round it creates a heinfer aggregation round on ``heinfer serve`` and hands
  its configuration and the committee's collective key to the sampled clients in the
  ``FitIns`` config. Clients send their updates *encrypted* to ``heinfer serve``; what
  reaches the Flower server is an empty ``FitRes`` (the example count and metrics only).
  The wrapper closes the round, waits for the decrypted **sum**, divides by the summed
  example count and passes that one average to the wrapped strategy as a single fit
  result: the Flower server never holds one client's update. Robust aggregators that
  need every update (Krum, median) cannot work this way; averaging ones can.
* **Clients** — :class:`SecureAggregationMod` is a ClientApp mod: after the client's
  ``fit``, it flattens the returned weights, multiplies them by ``num_examples``,
  appends ``num_examples``, encrypts that under the round's collective key, submits it
  signed with the client's enrolled Ed25519 key, and replaces the parameters in the
  reply with nothing. With ``dp`` it sends instead its clipped model *delta*, rounded
  and noised with its share of discrete-Gaussian noise (distributed DP: the sum of
  ``min_contributors`` honest shares carries the configured σ; no one adds noise later).
* **Committee** — ``n`` key holders outside the Flower server (other organisations, or
  at least other processes with their own key files; a server holding ``threshold`` of
  the keys could decrypt single updates). They run the key ceremony once
  (:func:`heinfer.aggregate.begin` / ``finish``, or ``heinfer aggregate``) and then
  :class:`Member` (``python -m heinfer.flower member …``) each: it reads the round
  configurations the strategy publishes on a *bulletin* (a directory shared with the
  server), checks them against its policy (its committee, at least
  ``min_contributors``), and sends its decryption share straight to ``heinfer serve``
  when asked. Shares never pass through Flower.

Dropouts: a client that drops out costs nothing (the server adds what arrives; the
round closes with what came if at least ``min_contributors`` did). A member that drops
out: the wrapper asks a ``threshold``-subset of members; if the sum is not decrypted
within ``share_timeout`` seconds it asks that subset once more, then the next subset
(each time the server re-randomises the sum, so no member ever shares one ciphertext
twice), and keeps the subset that worked for the following rounds — a dead member costs
a few timeouts in the first round only.

Clients are enrolled: the strategy lists the contributors' public signing keys (the
round accepts nothing else) and each client's mod finds its own key with
``signer(context)``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
import time
from logging import INFO, WARNING
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from flwr.common import (
    Code,
    Context,
    FitIns,
    FitRes,
    Message,
    MessageType,
    Parameters,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.common import recorddict_compat as compat
from flwr.common.logger import log
from flwr.server.strategy import Strategy

from . import aggregate as agg
from .errors import AggregationError

__all__ = ["SecureAggregation", "SecureAggregationMod", "Member", "flatten", "unflatten", "DpSettings"]

# Keys of the FitIns config the mod reads (values: str, bytes, str, str).
SERVER = "heinfer.server"
ROUND = "heinfer.round"
PUBLIC_KEY = "heinfer.public_key"
DP = "heinfer.dp"  # "clip,grid,sigma", or absent


class DpSettings:
    """Distributed DP per round: clip the update to L2 ≤ ``clip``; the *sum* carries
    Gaussian noise of standard deviation ``noise_multiplier × clip`` (the same noise a
    ``DifferentialPrivacyServerSideFixedClipping`` with this multiplier adds), made of
    every contributor's discrete-Gaussian share, on a grid of ``clip / 2**grid_bits``."""

    def __init__(self, noise_multiplier: float, clip: float, grid_bits: int = 12):
        self.noise_multiplier, self.clip, self.grid_bits = float(noise_multiplier), float(clip), int(grid_bits)

    def epsilon(self, length: int, min_contributors: int, rounds: int, delta: float = 1e-5) -> float:
        """ε at ``delta`` after ``rounds`` rounds of updates of ``length`` values
        (:func:`heinfer.aggregate.epsilon`)."""
        from .aggregate import epsilon
        return epsilon(self.clip, self.clip / 2 ** self.grid_bits, self.noise_multiplier * self.clip, min_contributors,
                       length, rounds, delta)

    def wire(self) -> str:
        sigma = self.noise_multiplier * self.clip
        return f"{self.clip!r},{self.clip / 2 ** self.grid_bits!r},{sigma!r}"


def flatten(arrays: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays]) if arrays else np.zeros(0)


def unflatten(v: np.ndarray, like: Sequence[np.ndarray]) -> List[np.ndarray]:
    out, at = [], 0
    for a in like:
        out.append(np.asarray(v[at:at + a.size], dtype=a.dtype).reshape(a.shape))
        at += a.size
    return out


def _post_json(r: agg.Round, path: str, body: dict) -> dict:
    return r._json("POST", path, json.dumps(body).encode(), {"content-type": "application/json"})


class SecureAggregation(Strategy):
    """Wraps ``strategy`` so that fit results are averaged by a heinfer aggregation round.

    ``committee``: the members' public signing keys (hex), in member order; ``public_key``:
    the committee's collective key; ``contributors``: the enrolled clients' public signing
    keys; ``bulletin``: the directory where round configurations are published for the
    members. ``dp``: distributed DP settings (the clients send clipped deltas).
    """

    def __init__(self, strategy: Strategy, server: str, committee: Sequence[str], threshold: int, public_key: bytes,
                 contributors: Sequence[str], bulletin: str, min_contributors: int, round_prefix: str = "flower",
                 dp: Optional[DpSettings] = None, share_timeout: float = 30.0, result_timeout: float = 600.0,
                 log_n: int = 13):
        super().__init__()
        self.inner = strategy
        self.server, self.committee, self.threshold = server, list(committee), int(threshold)
        self.public_key, self.contributors = bytes(public_key), list(contributors)
        self.bulletin, self.min_contributors, self.prefix = Path(bulletin), int(min_contributors), round_prefix
        self.dp, self.share_timeout, self.result_timeout, self.log_n = dp, share_timeout, result_timeout, log_n
        self._subsets = list(itertools.combinations(range(1, len(self.committee) + 1), self.threshold))
        self._subset = 0  # the first subset to ask; moves to the one that worked
        self._global: List[np.ndarray] = []
        self._rounds: Dict[int, agg.Round] = {}
        self.bulletin.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"SecureAggregation({self.inner!r})"

    # Delegated as is.
    def initialize_parameters(self, client_manager):
        return self.inner.initialize_parameters(client_manager)

    def configure_evaluate(self, server_round, parameters, client_manager):
        return self.inner.configure_evaluate(server_round, parameters, client_manager)

    def aggregate_evaluate(self, server_round, results, failures):
        return self.inner.aggregate_evaluate(server_round, results, failures)

    def evaluate(self, server_round, parameters):
        return self.inner.evaluate(server_round, parameters)

    def configure_fit(self, server_round, parameters, client_manager):
        pairs = self.inner.configure_fit(server_round, parameters, client_manager)
        if not pairs:
            return pairs
        self._global = parameters_to_ndarrays(parameters)
        size = sum(a.size for a in self._global)
        rid = f"{self.prefix}-{server_round}"
        config = agg.round_config(rid, size + (0 if self.dp else 1), self.committee, self.threshold, self.contributors,
                                  self.min_contributors, int(time.time() + self.result_timeout), log_n=self.log_n)
        r = agg.Round(self.server, config)
        r.create(self.public_key)
        self._rounds[server_round] = r
        # Published for the members (atomically: a member never reads half a file).
        tmp = self.bulletin / f".{rid}.json.tmp"
        tmp.write_text(config)
        os.replace(tmp, self.bulletin / f"{rid}.json")
        extra = {SERVER: self.server, ROUND: config, PUBLIC_KEY: self.public_key}
        if self.dp:
            extra[DP] = self.dp.wire()
        return [(proxy, FitIns(ins.parameters, {**ins.config, **extra})) for proxy, ins in pairs]

    def aggregate_fit(self, server_round, results, failures):
        r = self._rounds.pop(server_round, None)
        if r is None:
            return None, {}
        try:
            st = r.close()
            if str(st.get("status", "")).startswith("failed"):
                log(WARNING, "heinfer round %s: %s", r.id, st["status"])
                return None, {}
            total = self._await(r)
        except AggregationError as e:
            log(WARNING, "heinfer round %s: %s", r.id, e)
            return None, {}
        count = int(r.status().get("contributions", 0))
        if self.dp:
            avg = flatten(self._global) + total / max(count, 1)
            examples = sum(res.num_examples for _, res in results) or count
        else:
            examples = total[-1]
            avg = total[:-1] / examples
        log(INFO, "heinfer round %s: the sum of %d encrypted updates decrypted", r.id, count)
        r.delete()
        one = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(unflatten(avg, self._global)),
                     max(int(round(examples)), 1), {})
        proxy = results[0][0] if results else None
        return self.inner.aggregate_fit(server_round, [(proxy, one)], failures)

    def _await(self, r: agg.Round) -> np.ndarray:
        """The round's sum, asking again (re-randomised) and then other member subsets when
        the asked members do not all share within ``share_timeout``. Each subset is asked
        twice in a row: a member that read the participants of the close, before the first
        reassignment, made a share the server refused and will not share that ciphertext
        again; the re-randomised one it shares."""
        end = time.time() + self.result_timeout
        attempt = 0
        while time.time() < end:
            k = (self._subset + attempt // 2) % len(self._subsets)
            if attempt > 0 or list(self._subsets[k]) != r.status().get("participants"):
                _post_json(r, f"/{r.id}/participants", {"participants": list(self._subsets[k])})
            asked = time.time()
            while time.time() < min(end, asked + self.share_timeout):
                if r.status().get("status") == "done":
                    self._subset = k
                    return r.result()
                time.sleep(0.05)
            log(WARNING, "heinfer round %s: members %s did not all share within %.0f s; asking again", r.id,
                self._subsets[k], self.share_timeout)
            attempt += 1
        raise AggregationError(f"round {r.id}: no {self.threshold} members shared in {self.result_timeout:.0f} s; "
                               "start the committee's members")


class SecureAggregationMod:
    """ClientApp mod: the client's fit result leaves the client only encrypted.

    ``signer(context)`` returns the client's enrolled :class:`heinfer.aggregate.Signer`
    (e.g. from a key file named by ``context.node_config``)."""

    def __init__(self, signer: Callable[[Context], "agg.Signer"]):
        self.signer = signer

    def __call__(self, msg: Message, ctxt: Context, call_next) -> Message:
        if msg.metadata.message_type != MessageType.TRAIN:
            return call_next(msg, ctxt)
        fit_ins = compat.recorddict_to_fitins(msg.content, keep_input=True)
        cfg = fit_ins.config
        if ROUND not in cfg:
            return call_next(msg, ctxt)
        out = call_next(msg, ctxt)
        if out.has_error():
            return out
        res = compat.recorddict_to_fitres(out.content, keep_input=True)
        weights = flatten(parameters_to_ndarrays(res.parameters))
        r = agg.Round(str(cfg[SERVER]), str(cfg[ROUND]))
        if DP in cfg:
            clip, grid, sigma = (float(x) for x in str(cfg[DP]).split(","))
            delta = weights - flatten(parameters_to_ndarrays(fit_ins.parameters))
            r.contribute(delta, self.signer(ctxt), bytes(cfg[PUBLIC_KEY]), dp=(clip, grid, sigma))
        else:
            n = float(res.num_examples)
            r.contribute(np.append(weights * n, n), self.signer(ctxt), bytes(cfg[PUBLIC_KEY]))
        res.parameters = Parameters(tensors=[], tensor_type="numpy.ndarray")
        out.content = compat.fitres_to_recorddict(res, keep_input=True)
        return out


class Member:
    """One committee member: shares the sum of every round published on the bulletin
    whose configuration passes its policy, once per ciphertext (the key file records them)."""

    def __init__(self, server: str, bulletin: str, key_file: str, signer, min_contributors: int):
        self.server, self.bulletin, self.key_file = server, Path(bulletin), str(key_file)
        self.signer, self.min_contributors = signer, int(min_contributors)
        self._finished: set = set()
        self._shared: set = set()  # SHA-256 of each sum this member has made shares of

    def _acceptable(self, config: dict) -> bool:
        return (self.signer.public_hex() in config["committee"].values()
                and config["min_contributors"] >= self.min_contributors)

    def step(self) -> int:
        """One pass over the bulletin; the number of shares sent."""
        sent = 0
        for f in sorted(self.bulletin.glob("*.json")):
            if f.name in self._finished:
                continue
            text = f.read_text()
            config = json.loads(text)
            if not self._acceptable(config):
                self._finished.add(f.name)
                continue
            me = next(int(k) for k, v in config["committee"].items() if v == self.signer.public_hex())
            r = agg.Round(self.server, text)
            try:
                st = r.status()
            except AggregationError:  # deleted: over
                self._finished.add(f.name)
                continue
            status = st.get("status", "")
            if status == "done" or status.startswith("failed"):
                self._finished.add(f.name)
            elif me in st.get("participants", []):
                total = r._call("GET", f"/{r.id}/sum")
                digest = hashlib.sha256(total).digest()
                if digest in self._shared:
                    continue
                # Burnt whatever happens next: the key file records the ciphertext before the
                # shares leave, and a member never shares one ciphertext twice.
                self._shared.add(digest)
                _, payload = agg._native.aggregate_shares(text, self.key_file, total, st["participants"], 40)
                r._json("POST", f"/{r.id}/shares/{me}", payload, r._signed(self.signer, "share", payload))
                sent += 1
        return sent

    def run(self, stop: Optional[Callable[[], bool]] = None, poll: float = 0.05) -> None:
        while not (stop and stop()):
            try:
                self.step()
            except (AggregationError, OSError, ValueError) as e:  # a server restart, a bulletin file removed
                print(f"member: {e}", file=sys.stderr, flush=True)
            time.sleep(poll)


def _main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m heinfer.flower", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("member", help="run one committee member until killed")
    m.add_argument("--server", required=True, help="heinfer serve, host:port")
    m.add_argument("--bulletin", required=True, help="directory where the strategy publishes round configurations")
    m.add_argument("--key-file", required=True, help="this member's threshold-key file (from the key ceremony)")
    m.add_argument("--signer-seed", required=True, help="file with this member's 32-byte Ed25519 seed")
    m.add_argument("--min-contributors", type=int, default=2, help="refuse rounds that may open fewer updates")
    a = p.parse_args(argv)
    signer = agg.Signer.from_seed(Path(a.signer_seed).read_bytes())
    Member(a.server, a.bulletin, a.key_file, signer, a.min_contributors).run()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
