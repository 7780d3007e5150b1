"""Clients for every scheme and layout beside CKKS layout L, with one interface.

* :class:`PaillierClient` — Paillier linear models (``--scheme paillier``): one sample per
  request; the public key is the ``EVALUATION_KEYS`` element; scores exact in fixed point.
* :class:`LweClient` — seeded-LWE linear models (``--scheme lwe``): one sample per request,
  a 277 B query for 30 inputs; the client's 13.6 KB RLWE public key is the
  ``EVALUATION_KEYS`` element (sent once), under which the server re-randomises answers so
  they do not reveal the weights; scores within the spec's stated ``error_bound``.
* :class:`BgvClient` — BGV integer models (``--scheme bgv --quantize BITS``): a batch of up
  to N samples per request (one ciphertext per feature); outputs exact integers.
* :class:`BatchClient` — a CKKS model's layout T: a batch of up to ``max_batch`` samples per
  request, a relinearisation key only.
* :class:`MultiClient` — a CKKS model's layout M: up to ``max_batch`` (B) samples interleaved
  in ONE ciphertext, layout M's own Galois keys.
* :func:`client_for` — reads any spec and returns the right client; for CKKS models it picks
  layout L, M or T for the batch you hold (``layout="auto"``, from the compiler's costs, as
  ``client::choose_layout`` and ``heinfer batch --layout auto`` do) and says which and why.

Every client has the same methods as :class:`heinfer.Client`: ``key_id``,
``evaluation_keys``, ``encrypt_batch`` / ``decrypt_batch``, ``infer_inputs`` /
``infer_outputs`` (tritonclient HTTP or gRPC), ``infer`` and ``save_secret_key`` /
``load``. Secret keys stay inside the Rust objects.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import _native
from .errors import InputError, SpecError

# The tritonclient glue and tensor names of the CKKS client (defined before this module is
# imported by heinfer/__init__.py).
from . import (BATCH_PART, BLOCK, MERGED_SUFFIX, ENCRYPTED_INPUT, ENCRYPTED_OUTPUT, EVALUATION_KEYS, KEY_ID, Client, PathLike,  # noqa: E402
               _infer_input, _output_elements, _protocol_name, _triton, client_spec_from_config)

#: Bytes per second ``layout="auto"`` assumes for the transfer (1 Gbit/s, as the CLI).
DEFAULT_BYTES_PER_S = 125e6


def _spec_json(spec: Any) -> str:
    return spec if isinstance(spec, str) and spec.lstrip().startswith("{") else client_spec_from_config(spec)


def spec_scheme(spec: Any) -> str:
    """The scheme a client spec is for: ``"ckks"``, ``"paillier"``, ``"bgv"`` or ``"lwe"``."""
    return _native.spec_scheme(_spec_json(spec))


class _SchemeClient:
    """What the scheme clients share: keys, the request tensors, the request loop."""

    _native_class: Any = None
    scheme: str = "?"
    layout: str = "?"

    def __init__(self, spec: Any, *, model_name: Optional[str] = None, _session: Any = None) -> None:
        spec_json = _spec_json(spec)
        self._session = _session if _session is not None else self._native_class.generate(spec_json)
        self._spec: Dict[str, Any] = json.loads(self._session.spec_json())
        self._bundle: Optional[Tuple[bytes, str]] = None
        self._registered: set = set()
        self.model_name: str = model_name or self._spec.get("model", "model")
        #: Why this client (and layout) was chosen, when :func:`client_for` chose it.
        self.layout_reason: Optional[str] = None

    @classmethod
    def load(cls, spec: Any, secret_key_path: PathLike, *, model_name: Optional[str] = None) -> Any:
        """A client over a secret key saved earlier (``save_secret_key`` or the CLI's
        keygen); a key file of another scheme or parameters raises :class:`KeyFileError`."""
        session = cls._native_class.load(_spec_json(spec), os.fspath(secret_key_path))
        return cls(_spec_json(spec), model_name=model_name, _session=session)

    def save_secret_key(self, path: PathLike) -> None:
        """Writes the secret key to a new file readable by its owner only (mode 0600)."""
        self._session.save_secret(os.fspath(path))

    @property
    def spec(self) -> Dict[str, Any]:
        return self._spec

    @property
    def spec_json(self) -> str:
        return self._session.spec_json()

    @property
    def input_size(self) -> int:
        """Values in one sample."""
        return int(self._session.input_len())

    @property
    def max_batch(self) -> int:
        """Samples one request holds at most."""
        return 1

    def _bundle_pair(self) -> Tuple[bytes, str]:
        if self._bundle is None:
            self._bundle = self._session.evaluation_bundle()
        return self._bundle

    @property
    def evaluation_keys(self) -> bytes:
        """The ``EVALUATION_KEYS`` element the server registers (public)."""
        return self._bundle_pair()[0]

    @property
    def key_id(self) -> str:
        """The ``KEY_ID`` (hex) the server knows :attr:`evaluation_keys` by."""
        return self._bundle_pair()[1]

    def _rows(self, xs: Any) -> np.ndarray:
        try:
            a = np.ascontiguousarray(np.asarray(xs, dtype=np.float64))
        except (TypeError, ValueError) as e:
            raise InputError(f"the input cannot be read as float64 numbers: {e}") from e
        n = self.input_size
        if a.size == 0 or a.size % n:
            raise InputError(f"input of shape {a.shape} is not samples of {n} values each")
        return a.reshape(-1, n)

    def requests(self, xs: Any) -> List[Tuple[int, List[bytes]]]:
        """Encrypts samples (first dimension = samples) into requests of at most
        :attr:`max_batch` samples: (samples, ENCRYPTED_INPUT elements) each."""
        a = self._rows(xs)
        m = self.max_batch
        return [(len(a[i:i + m]), self.encrypt_batch(a[i:i + m])) for i in range(0, len(a), m)]

    def infer_inputs(self, x: Any, protocol: Any = "http", send_keys: bool = False) -> List[Any]:
        """Encrypts ``x`` (one sample, or up to :attr:`max_batch`) and builds the tritonclient
        inputs: ``ENCRYPTED_INPUT``, ``KEY_ID`` and, with ``send_keys``, ``EVALUATION_KEYS``."""
        p = _protocol_name(protocol)
        mod = _triton(p)
        a = self._rows(x)
        if len(a) > self.max_batch:
            raise InputError(f"{len(a)} samples: one request holds at most {self.max_batch} (use infer, which splits)")
        inputs = [_infer_input(mod, p, ENCRYPTED_INPUT, self.encrypt_batch(a)),
                  _infer_input(mod, p, KEY_ID, [self.key_id.encode("ascii")])]
        if send_keys:
            inputs.append(_infer_input(mod, p, EVALUATION_KEYS, [self.evaluation_keys]))
        return inputs

    def infer_outputs(self, protocol: Any = "http") -> List[Any]:
        """The requested-output list (``ENCRYPTED_OUTPUT``, binary data over HTTP)."""
        return Client.infer_outputs(self, protocol)  # type: ignore[arg-type]

    def infer(self, triton_client: Any, xs: Any, model_name: Optional[str] = None, *,
              send_keys: Optional[bool] = None, postprocess: bool = False, parts: int = 1,
              **infer_kwargs: Any) -> np.ndarray:
        """Encrypts samples, runs the model on a server (as many requests as the batch
        needs) and decrypts: one row of outputs per sample. Keys are sent with the first
        request through this ``triton_client`` (``send_keys`` forces either way).
        ``parts`` > 1 sends each batch in that many requests (CKKS layout T only:
        :meth:`BatchClient.part_inputs`)."""
        model = model_name or self.model_name
        slot = (id(triton_client), model)
        p = _protocol_name(triton_client)
        a = self._rows(xs)
        rows = []
        for i in range(0, len(a), self.max_batch):
            chunk = a[i:i + self.max_batch]
            first = send_keys if send_keys is not None else slot not in self._registered
            res = None
            for inputs in self._batch_requests(chunk, int(parts), p, first):
                res = triton_client.infer(model, inputs, outputs=self.infer_outputs(p), **infer_kwargs)
            self._registered.add(slot)
            rows.append(self.decrypt_batch(res.as_numpy(ENCRYPTED_OUTPUT), len(chunk), postprocess=postprocess))
        return np.concatenate(rows)

    def _batch_requests(self, chunk: Any, parts: int, protocol: str, send_keys: bool) -> List[List[Any]]:
        """The requests' inputs that carry one batch (the last request's answer is the batch's)."""
        if parts != 1:
            raise InputError(f"a {self.scheme} model takes a batch in one request, not {parts} parts")
        return [self.infer_inputs(chunk, protocol, send_keys=send_keys)]

    def postprocess(self, y: Any) -> np.ndarray:
        """The client-side post-processing of the spec, on one output vector."""
        v = np.asarray(y, dtype=np.float64).reshape(-1)
        return np.asarray(self._session.postprocess(v.tolist()), dtype=np.float64)

    def __repr__(self) -> str:
        return f"heinfer.{type(self).__name__}(model={self.model_name!r}, scheme={self.scheme}, layout={self.layout})"


class PaillierClient(_SchemeClient):
    """A Paillier linear model's client: a key pair of the spec's modulus size (≥ 3072
    bits; making one takes seconds to a minute), one sample per request, the public key
    as ``EVALUATION_KEYS``, scores decrypted exactly (fixed point: ``decrypt_integers``)."""

    _native_class = _native.PaillierSession
    scheme = "paillier"
    layout = "L"

    def encrypt(self, x: Any) -> List[bytes]:
        """ONE sample → the elements of ``ENCRYPTED_INPUT`` (one: its d ciphertexts)."""
        a = self._rows(x)
        if len(a) != 1:
            raise InputError(f"{len(a)} samples: encrypt takes one (use encrypt_batch or infer)")
        return self.encrypt_batch(a)

    def encrypt_batch(self, xs: Any) -> List[bytes]:
        """At most one sample (Paillier requests hold one): its ``ENCRYPTED_INPUT`` elements."""
        a = self._rows(xs)
        if len(a) != 1:
            raise InputError(f"{len(a)} samples: a Paillier request holds one sample (infer sends one per sample)")
        return self._session.encrypt_rows(a.reshape(-1), 1)[0]

    def decrypt_integers(self, outputs: Any) -> List[int]:
        """``ENCRYPTED_OUTPUT`` → the exact integer scores (scaled by 2^output.frac_bits)."""
        return [int(s) for s in self._session.decrypt_integers(_output_elements(outputs))]

    def decrypt(self, outputs: Any, postprocess: bool = False) -> np.ndarray:
        """``ENCRYPTED_OUTPUT`` → the scores (float64, 1-D), post-processed if asked."""
        y = self._session.decrypt(_output_elements(outputs))
        return np.asarray(self._session.postprocess(y) if postprocess else y, dtype=np.float64)

    def decrypt_batch(self, outputs: Any, samples: int = 1, postprocess: bool = False) -> np.ndarray:
        if samples != 1:
            raise InputError("a Paillier answer holds one sample")
        return self.decrypt(outputs, postprocess).reshape(1, -1)


class LweClient(_SchemeClient):
    """A seeded-LWE linear model's client: a 32-byte secret key, one sample per request
    (the query: a 32-byte seed and one 53-bit word per input), the RLWE public key as
    ``EVALUATION_KEYS`` (registered with the first request; empty for a model compiled
    before answers were re-randomised), scores decrypted within the spec's ``error_bound``."""

    _native_class = _native.LweSession
    scheme = "lwe"
    layout = "L"

    @property
    def error_bound(self) -> float:
        """Bound on |decrypted score − fixed-point score| the compiler promises."""
        return float(self._spec["lwe"]["error_bound"])

    def encrypt(self, x: Any) -> List[bytes]:
        """ONE sample → the elements of ``ENCRYPTED_INPUT`` (one: the seeded query)."""
        a = self._rows(x)
        if len(a) != 1:
            raise InputError(f"{len(a)} samples: encrypt takes one (use encrypt_batch or infer)")
        return self.encrypt_batch(a)

    def encrypt_batch(self, xs: Any) -> List[bytes]:
        """At most one sample (an LWE request holds one): its ``ENCRYPTED_INPUT`` elements."""
        a = self._rows(xs)
        if len(a) != 1:
            raise InputError(f"{len(a)} samples: an LWE request holds one sample (infer sends one per sample)")
        return self._session.encrypt_rows(a.reshape(-1), 1)[0]

    def infer_inputs(self, x: Any, protocol: Any = "http", send_keys: bool = False) -> List[Any]:
        # a key-free model takes no EVALUATION_KEYS at all
        return super().infer_inputs(x, protocol, send_keys=send_keys and bool(self.evaluation_keys))

    def decrypt(self, outputs: Any, postprocess: bool = False) -> np.ndarray:
        """``ENCRYPTED_OUTPUT`` → the scores (float64, 1-D), post-processed if asked."""
        y = self._session.decrypt(_output_elements(outputs))
        return np.asarray(self._session.postprocess(y) if postprocess else y, dtype=np.float64)

    def decrypt_batch(self, outputs: Any, samples: int = 1, postprocess: bool = False) -> np.ndarray:
        if samples != 1:
            raise InputError("an LWE answer holds one sample")
        return self.decrypt(outputs, postprocess).reshape(1, -1)


class _BatchedClient(_SchemeClient):
    """Clients whose request holds a batch (one ciphertext per feature, sample j in slot j)."""

    @property
    def max_batch(self) -> int:
        return int(self._session.max_batch())

    @property
    def num_outputs(self) -> int:
        """Values in one sample's output."""
        return int(self._session.output_len())

    def encrypt(self, x: Any) -> List[bytes]:
        """ONE sample → the elements of ``ENCRYPTED_INPUT`` (a batch of one)."""
        a = self._rows(x)
        if len(a) != 1:
            raise InputError(f"{len(a)} samples: encrypt takes one (use encrypt_batch)")
        return self.encrypt_batch(a)

    def encrypt_batch(self, xs: Any) -> List[bytes]:
        """Up to :attr:`max_batch` samples → the ``ENCRYPTED_INPUT`` elements of ONE request."""
        a = self._rows(xs)
        if len(a) > self.max_batch:
            raise InputError(f"{len(a)} samples: one request holds at most {self.max_batch} (requests() splits)")
        return list(self._session.encrypt_rows(a.reshape(-1), len(a)))

    def decrypt_batch(self, outputs: Any, samples: int, postprocess: bool = False) -> np.ndarray:
        """``ENCRYPTED_OUTPUT`` of a request of ``samples`` samples → (samples, outputs)."""
        y = np.asarray(self._session.decrypt(_output_elements(outputs), int(samples)), dtype=np.float64)
        y = y.reshape(int(samples), -1)
        if postprocess:
            y = np.stack([self.postprocess(r) for r in y])
        return y

    def decrypt(self, outputs: Any, samples: int = 1, postprocess: bool = False) -> np.ndarray:
        """Like :meth:`decrypt_batch`; one sample's row (1-D) when ``samples == 1``."""
        y = self.decrypt_batch(outputs, samples, postprocess)
        return y[0] if samples == 1 else y


class BgvClient(_BatchedClient):
    """A BGV integer model's client: a batch of up to N samples per request (inputs must
    lie in the compiled range, where exactness is proven), the relinearisation key as
    ``EVALUATION_KEYS``, outputs exact integers (``decrypt_integers``) or those over the
    output scale (``decrypt_batch``)."""

    _native_class = _native.BgvSession
    scheme = "bgv"
    layout = "T"

    @property
    def plaintext_moduli(self) -> List[int]:
        """The plaintext moduli: one t, or a residue plan's several (values past one t)."""
        return [int(self._spec["plaintext_modulus"])] + [int(t) for t in self._spec.get("residues", [])]

    def decrypt_integers(self, outputs: Any, samples: int) -> np.ndarray:
        """``ENCRYPTED_OUTPUT`` → (samples, outputs) exact integers, centered mod t (or, for a
        residue plan, the CRT of its moduli): int64 where every value fits, Python ints
        (dtype object) where one passes 2^63."""
        v = self._session.decrypt_integers(_output_elements(outputs), int(samples))
        try:
            a = np.asarray(v, dtype=np.int64)
        except OverflowError:
            a = np.asarray(v, dtype=object)
        return a.reshape(int(samples), -1)


class BatchClient(_BatchedClient):
    """A CKKS model's layout T (``compile --layout auto|T``): a batch of up to
    ``max_batch`` samples per request, one seeded ciphertext per input feature, the
    relinearisation key only as ``EVALUATION_KEYS``. Its secret key is its own (layout T
    has its own parameters), apart from a layout-L :class:`heinfer.Client`'s.

    A batch too large for one request (the server's request limit) goes in ``parts``
    requests, each tagged ``BATCH_PART`` = ``"<batch id>:<k>/<n>"`` and carrying a share
    of the features' ciphertexts; the server holds the parts (bounded in bytes and time:
    ``heinfer_pending_batches_mb``, ``heinfer_batch_timeout_s``) and answers the last one."""

    _native_class = _native.BatchSession
    scheme = "ckks"
    layout = "T"

    def part_inputs(self, x: Any, parts: int, protocol: Any = "http", send_keys: bool = False,
                    batch_id: Optional[str] = None) -> List[List[Any]]:
        """Encrypts ``x`` (up to :attr:`max_batch` samples) and builds ``parts`` requests'
        tritonclient inputs, in order: the features' ciphertexts split as evenly as they go,
        ``KEY_ID`` in each, ``EVALUATION_KEYS`` in the first with ``send_keys``, and
        ``BATCH_PART``. Send them in any order; the last to arrive is answered."""
        p = _protocol_name(protocol)
        mod = _triton(p)
        a = self._rows(x)
        if len(a) > self.max_batch:
            raise InputError(f"{len(a)} samples: one batch holds at most {self.max_batch} (use infer, which splits)")
        cts = self.encrypt_batch(a)
        parts = int(parts)
        if not 1 <= parts <= len(cts):
            raise InputError(f"{parts} parts: a batch of {len(cts)} ciphertexts goes in 1 to {len(cts)} parts")
        bid = batch_id or secrets.token_hex(8)
        bounds = [len(cts) * k // parts for k in range(parts + 1)]
        out = []
        for k in range(parts):
            inputs = [_infer_input(mod, p, ENCRYPTED_INPUT, cts[bounds[k]:bounds[k + 1]]),
                      _infer_input(mod, p, KEY_ID, [self.key_id.encode("ascii")]),
                      _infer_input(mod, p, BATCH_PART, [f"{bid}:{k}/{parts}".encode("ascii")])]
            if send_keys and k == 0:
                inputs.append(_infer_input(mod, p, EVALUATION_KEYS, [self.evaluation_keys]))
            out.append(inputs)
        return out

    def _batch_requests(self, chunk: Any, parts: int, protocol: str, send_keys: bool) -> List[List[Any]]:
        return self.part_inputs(chunk, parts, protocol, send_keys=send_keys) if parts != 1 else \
            [self.infer_inputs(chunk, protocol, send_keys=send_keys)]


class MultiClient(_BatchedClient):
    """A CKKS model's layout M (``compile --layout auto|M``): up to ``max_batch`` (B)
    samples interleaved in ONE seeded ciphertext (sample b's slot j at slot j·B + b), the
    network's program run once for all of them. Same parameters as layout L (a secret key
    saved by :class:`heinfer.Client` loads here too); its bundle holds layout M's own
    Galois keys, which is how the server knows to run layout M for its key id."""

    _native_class = _native.MultiSession
    scheme = "ckks"
    layout = "M"

    # -- merged requests: one sample per request, several requests one evaluation ------

    def _block(self, block: Any) -> int:
        b = int(block)
        if not 0 <= b < self.max_batch:
            raise InputError(f"block {b}: layout M has blocks 0..{self.max_batch - 1}")
        return b

    def encrypt_block(self, x: Any, block: int) -> List[bytes]:
        """ONE sample in layout-M block ``block`` only (zeros in the others): a request for
        the model's merged twin (``<model>_merged``, ``heinfer compile --merged``), where
        Triton's dynamic batcher hands the server several such requests under this key id
        and it adds them and runs the network once. Use a different block for each request
        in flight (e.g. a counter mod :attr:`max_batch`); read the answer with
        :meth:`decrypt_block`."""
        a = self._rows(x)
        if len(a) != 1:
            raise InputError(f"{len(a)} samples: a merged request holds one")
        b = self._block(block)
        rows = np.zeros((b + 1, a.shape[1]), dtype=np.float64)
        rows[b] = a[0]
        return self.encrypt_batch(rows)

    def decrypt_block(self, outputs: Any, block: int, postprocess: bool = False) -> np.ndarray:
        """A merged answer → the outputs of the sample in ``block`` (the answer holds every
        merged request's block, all under this key)."""
        b = self._block(block)
        return self.decrypt_batch(outputs, b + 1, postprocess)[b]

    def merged_inputs(self, x: Any, block: int, protocol: Any = "http", send_keys: bool = False) -> List[Any]:
        """The tritonclient inputs of one request to a merged twin, each with Triton's batch
        dimension: ``ENCRYPTED_INPUT`` [1, n], ``KEY_ID`` [1, 1], ``BLOCK`` [1, 1] (INT32)
        and, with ``send_keys``, ``EVALUATION_KEYS`` [1, 1] (register once, alone: a request
        carrying keys is not merged)."""
        p = _protocol_name(protocol)
        mod = _triton(p)
        b = self._block(block)

        def batched(name: str, items: List[bytes]) -> Any:
            inp = mod.InferInput(name, [1, len(items)], "BYTES")
            a = np.empty((1, len(items)), dtype=np.object_)
            for i, it in enumerate(items):
                a[0, i] = it
            inp.set_data_from_numpy(a, **({"binary_data": True} if p == "http" else {}))
            return inp

        blk = mod.InferInput(BLOCK, [1, 1], "INT32")
        blk.set_data_from_numpy(np.array([[b]], dtype=np.int32), **({"binary_data": True} if p == "http" else {}))
        inputs = [batched(ENCRYPTED_INPUT, self.encrypt_block(x, b)),
                  batched(KEY_ID, [self.key_id.encode("ascii")]), blk]
        if send_keys:
            inputs.append(batched(EVALUATION_KEYS, [self.evaluation_keys]))
        return inputs

    def infer_merged(self, triton_client: Any, x: Any, block: int, model_name: Optional[str] = None, *,
                     send_keys: bool = False, postprocess: bool = False, **infer_kwargs: Any) -> np.ndarray:
        """One sample through the merged twin (``model_name``, default this client's model
        name + ``_merged``) in ``block``; its decrypted outputs."""
        p = _protocol_name(triton_client)
        mod = _triton(p)
        model = model_name or (self.model_name or "") + MERGED_SUFFIX
        out = [mod.InferRequestedOutput(ENCRYPTED_OUTPUT, **({"binary_data": True} if p == "http" else {}))]
        res = triton_client.infer(model, self.merged_inputs(x, block, p, send_keys=send_keys), outputs=out,
                                  **infer_kwargs)
        return self.decrypt_block(res.as_numpy(ENCRYPTED_OUTPUT).reshape(-1), block, postprocess)


def choose_layout(spec: Any, samples: int, bytes_per_s: float = DEFAULT_BYTES_PER_S) -> Tuple[str, str]:
    """The cheapest layout of a CKKS model for ``samples`` samples (estimated evaluation
    plus transfer at ``bytes_per_s``, from the compiler's costs in the spec): (layout, why)."""
    spec_json = _spec_json(spec)
    got = _native.choose_layout(spec_json, int(samples), float(bytes_per_s))
    if got is None:
        return "L", "the spec lists no other layout (compiled with layout L only)"
    best, costs = got
    figures = ", ".join(f"{lay} ≈ {s:.2f} s" for lay, s in costs)
    return best, (f"layout {best} for {samples} samples (estimated evaluation + transfer at "
                  f"{bytes_per_s * 8 / 1e9:g} Gbit/s: {figures})")


def client_for(spec: Any, *, layout: str = "auto", samples: int = 1, bytes_per_s: float = DEFAULT_BYTES_PER_S,
               secret_key_path: Optional[PathLike] = None, model_name: Optional[str] = None) -> Any:
    """The client for any heinfer model: :class:`heinfer.Client` (CKKS layout L),
    :class:`MultiClient` (CKKS layout M), :class:`BatchClient` (CKKS layout T), :class:`PaillierClient`, :class:`LweClient` or
    :class:`BgvClient`.

    ``spec``: what :func:`heinfer.client_spec_from_config` accepts (a tritonclient model
    config, a model directory, the spec JSON). ``layout``: ``"auto"`` picks, for a CKKS
    model, the cheapest layout for ``samples`` samples (the choice and its figures are in
    the client's ``layout_reason``); ``"L"``, ``"M"`` or ``"T"`` forces one. Paillier models have
    and LWE models one sample per request (L) and BGV models a batch (T); asking them for the other
    layout raises :class:`SpecError`. ``secret_key_path``: load a saved key instead of
    making one.
    """
    spec_json = _spec_json(spec)
    scheme = _native.spec_scheme(spec_json)
    want = "auto" if str(layout).lower() == "auto" else str(layout).upper()
    if want not in ("auto", "L", "M", "T"):
        raise SpecError(f"layout must be 'auto', 'L', 'M' or 'T', not {layout!r}")
    if scheme == "ckks":
        if want == "auto":
            want, why = choose_layout(spec_json, samples, bytes_per_s)
        else:
            why = f"layout {want} (asked for)"
        cls: Any = {"T": BatchClient, "M": MultiClient}.get(want, Client)
    elif scheme in ("paillier", "bgv", "lwe"):
        cls = {"paillier": PaillierClient, "bgv": BgvClient, "lwe": LweClient}[scheme]
        if want not in ("auto", cls.layout):
            raise SpecError(f"a {scheme} model has layout {cls.layout} only, not {want}: pass layout='auto'")
        why = f"{scheme} model: layout {cls.layout} (its only one)"
    else:
        raise SpecError(f"this is a {scheme} model: the Python SDK has no {scheme} client yet; use the CLI "
                        "(heinfer keygen / encrypt / decrypt)")
    if secret_key_path is not None:
        c = cls.load(spec_json, secret_key_path, model_name=model_name)
    else:
        c = cls(spec_json, model_name=model_name)
    c.layout_reason = why
    return c
