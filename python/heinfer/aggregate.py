"""Secure aggregation: many parties' vectors summed under encryption; only the sum is
ever decrypted, by any ``threshold`` of a committee's members together.

A round is described by its configuration JSON (:func:`round_config`), which its creator
publishes. The committee runs a key ceremony once (:func:`begin`, then :func:`finish`
with the Shamir shares each member received privately; anyone assembles
:func:`public_key`). Contributors encrypt and submit vectors (:meth:`Round.contribute`,
optionally with distributed differential privacy), the round closes, members submit
decryption shares (:meth:`Round.share`), and everyone reads :meth:`Round.result`.
The server (``heinfer serve``) adds what arrives and never holds a key that decrypts.

Example (one contributor)::

    r = heinfer.aggregate.Round("localhost:8000", config_json)
    r.contribute(np.asarray(update), signer, public_key)
"""

from __future__ import annotations

import json
import struct
import urllib.error
import urllib.request
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _native
from .errors import AggregationError

__all__ = ["Signer", "Round", "round_config", "begin", "finish", "public_key", "epsilon"]

Signer = _native.Signer


def epsilon(clip: float, grid: float, sigma: float, min_contributors: int, length: int, rounds: int = 1,
            delta: float = 1e-5) -> float:
    """The ε (at ``delta``) of ``rounds`` rounds of distributed DP with these settings —
    the ``dp = (clip, grid, sigma)`` of :meth:`Round.contribute`, vectors of ``length``
    values, noise split over ``min_contributors`` — by Rényi-DP accounting (the same
    orders and conversion as Google's ``dp-accounting``), including the small δ of the
    sum of discrete Gaussians; ``inf`` when ``delta`` is below that. Plan a run with it:
    the server never adds noise, so this is the whole guarantee."""
    return _native.aggregate_dp_epsilon(float(clip), float(grid), float(sigma), int(min_contributors), int(length),
                                        int(rounds), float(delta))


def round_config(id: str, length: int, committee: Sequence[str], threshold: int, contributors: Sequence[str],
                 min_contributors: int, deadline_unix_s: int, log_n: int = 13, q_bits: Sequence[int] = (60, 60),
                 p_bits: Sequence[int] = (60,), scale_bits: int = 80, plaintext_modulus: Optional[int] = None,
                 value_bound: Optional[int] = None) -> str:
    """A round's configuration JSON. Members are numbered 1.. in the order of ``committee``
    (their public signing keys, hex). With ``plaintext_modulus`` t the round sums integers
    exactly (BGV; t above twice the largest |sum|) and ``scale_bits`` is ignored. With
    ``value_bound`` B (every value an integer with |v| ≤ B) the integer round packs several
    values per coefficient, so contributions are several times smaller; t is then chosen
    unless given."""
    return _native.aggregate_round_config(id, length, list(committee), threshold, list(contributors), min_contributors,
                                          deadline_unix_s, log_n, list(q_bits), list(p_bits), scale_bits,
                                          plaintext_modulus, value_bound)


def begin(config: str, crs: str, member: int) -> Tuple[bytes, Dict[int, bytes]]:
    """Key ceremony, step 1, for ``member``: its public-key share (publish it) and one
    Shamir share per member (send each to that member only, over a private channel)."""
    pk_share, shamir = _native.aggregate_begin(config, crs, member)
    return pk_share, dict(shamir)


def finish(config: str, member: int, received: Sequence[bytes], key_file: str) -> None:
    """Key ceremony, step 2: the member's threshold-key file (new, mode 0600) from the
    Shamir shares it received, one from every member."""
    _native.aggregate_finish(config, member, [bytes(b) for b in received], str(key_file))


def public_key(config: str, crs: str, shares: Sequence[bytes]) -> bytes:
    """The collective public key from every member's public-key share."""
    return _native.aggregate_public_key(config, crs, [bytes(b) for b in shares])


def _join(magic: bytes, items: Sequence[bytes]) -> bytes:
    out = [magic, struct.pack("<I", len(items))]
    for i in items:
        out += [struct.pack("<I", len(i)), bytes(i)]
    return b"".join(out)


class Round:
    """One round on a server (``host:port`` or an ``http://`` URL)."""

    def __init__(self, server: str, config: str, timeout: float = 600.0):
        self.config = config
        self.id = json.loads(config)["id"]
        base = server if server.startswith(("http://", "https://")) else f"http://{server}"
        self._rounds = base.rstrip("/") + "/v2/aggregate/rounds"
        self._timeout = timeout
        # Answers are read up to what this round can rightly need, whatever a server sends.
        self._cap = _native.aggregate_max_answer_bytes(config)

    def _call(self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[dict] = None) -> bytes:
        req = urllib.request.Request(self._rounds + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=self._timeout) as r:
                b = r.read(self._cap + 1)
                if len(b) > self._cap:
                    raise AggregationError(
                        f"the server's answer exceeds {self._cap} bytes, more than round {self.id} can need; refused")
                return b
        except urllib.error.HTTPError as e:
            text = e.read(64 << 10).decode("utf-8", "replace")
            try:
                text = json.loads(text).get("error", text)
            except ValueError:
                pass
            raise AggregationError(f"server answered {e.code}: {text}") from None

    def _json(self, *a, **k) -> dict:
        b = self._call(*a, **k)
        return json.loads(b) if b else {}

    def _signed(self, signer, kind: str, payload: bytes) -> dict:
        return {"x-heinfer-signer": signer.public_hex(),
                "x-heinfer-signature": signer.sign(kind, self.id, payload).hex(),
                "content-type": "application/octet-stream"}

    def create(self, public_key: bytes) -> dict:
        """Creates the round under the committee's collective public key."""
        return self._json("POST", "", _join(b"HEAN", [self.config.encode(), public_key]))

    def status(self) -> dict:
        return self._json("GET", f"/{self.id}")

    def contribute(self, values: np.ndarray, signer, public_key: bytes,
                   dp: Optional[Tuple[float, float, float]] = None) -> dict:
        """Encrypts ``values`` (the round's length) and submits them, signed. ``dp`` =
        (clip, grid, sigma): clipped to L2 ≤ clip, rounded to the grid, and noised with
        this client's share of a total noise of standard deviation sigma on the sum."""
        v = np.asarray(values, dtype=np.float64).ravel()
        payload = _native.aggregate_contribution(self.config, bytes(public_key), v.tolist(), dp)
        return self._json("POST", f"/{self.id}/contributions", payload, self._signed(signer, "contribution", payload))

    def close(self) -> dict:
        return self._json("POST", f"/{self.id}/close", b"")

    def share(self, key_file: str, signer, security_bits: int = 40) -> dict:
        """As a committee member: decryption shares of the published sum, for the
        participants the server asks, submitted signed. The key file records the sum
        before the shares leave, so a member never shares one ciphertext twice."""
        st = self.status()
        if not st.get("participants"):
            raise AggregationError(f"round {self.id} is {st.get('status')}: no shares are asked for")
        total = self._call("GET", f"/{self.id}/sum")
        member, payload = _native.aggregate_shares(self.config, str(key_file), total, st["participants"], security_bits)
        return self._json("POST", f"/{self.id}/shares/{member}", payload, self._signed(signer, "share", payload))

    def result(self) -> np.ndarray:
        """The sum, once enough members have shared."""
        return np.asarray(self._json("GET", f"/{self.id}/result")["values"], dtype=np.float64)

    def delete(self) -> None:
        """Removes a finished round from the server."""
        self._call("DELETE", f"/{self.id}")
