"""heinfer: neural-network inference on CKKS-encrypted data — the Python client.

The server (NVIDIA Triton with the heinfer backend, or ``heinfer serve``) never sees
the input or the output in the clear. This package holds the client side:

* :func:`client_spec_from_config` reads the client spec from a model config
  (``tritonclient`` HTTP or gRPC ``get_model_config``), a model directory, or JSON;
* :class:`Client` makes keys (or loads a saved secret key), encrypts numpy arrays
  into the elements of ``ENCRYPTED_INPUT``, builds the ``tritonclient`` ``InferInput``
  list, and decrypts ``ENCRYPTED_OUTPUT`` into numpy;
* :func:`compile` turns an ONNX model into a Triton model directory (model owners).

``tritonclient`` is optional: it is imported only by the helpers that need it.

Example::

    import tritonclient.http as httpclient, heinfer
    triton = httpclient.InferenceServerClient("localhost:8000")
    c = heinfer.Client.from_server(triton, "digits_cryptonets")
    res = triton.infer("digits_cryptonets", c.infer_inputs(x, send_keys=True))
    logits = c.decrypt(res.as_numpy("ENCRYPTED_OUTPUT"))
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from .errors import (AggregationError, CompileError, HeinferError, InputError, KeyFileError, OutputError, ReleaseError,
                     SpecError)
from . import aggregate  # noqa: E402  (secure aggregation: heinfer.aggregate)

__all__ = [
    "Client",
    "ClientAided",
    "client_spec_from_config",
    "compile",
    "HeinferError",
    "SpecError",
    "KeyFileError",
    "InputError",
    "OutputError",
    "CompileError",
    "ReleaseError",
    "SPEC_PARAMETER",
    "privacy_account",
    "__version__",
]

__version__: str = _native.__version__

#: The model-config parameter that carries the client spec (JSON). This and the
#: tensor names below come from the Rust side (``runtime::protocol``), which the
#: Triton backend and ``heinfer-server`` read too.
SPEC_PARAMETER: str = _native.CLIENT_SPEC_PARAM

#: Tensor names of an heinfer model.
ENCRYPTED_INPUT: str = _native.ENCRYPTED_INPUT
#: The public features' values in clear (FP32), for models compiled with ``--public-features``.
PLAIN_INPUT: str = "PLAIN_INPUT"
#: ``"<batch id>:<k>/<n>"``: the request is part k of n of one layout-T batch (BYTES).
BATCH_PART: str = "BATCH_PART"
#: The layout-M block (INT32) a request to a model's merged twin (``<model>_merged``,
#: ``heinfer compile --merged``) holds its one sample in.
BLOCK: str = "BLOCK"
#: The suffix of a model's merged twin.
MERGED_SUFFIX: str = "_merged"
KEY_ID: str = _native.KEY_ID
EVALUATION_KEYS: str = _native.EVALUATION_KEYS
ENCRYPTED_OUTPUT: str = _native.ENCRYPTED_OUTPUT

#: Response parameters of a model with differentially private outputs (doubles).
DP_PARAMETERS: Tuple[str, ...] = tuple(
    getattr(_native, c, d)
    for c, d in (
        ("DP_EPSILON_QUERY", "heinfer_dp_epsilon_query"),
        ("DP_EPSILON_SPENT", "heinfer_dp_epsilon_spent"),
        ("DP_EPSILON_BUDGET", "heinfer_dp_epsilon_budget"),
        ("DP_EPSILON_REMAINING", "heinfer_dp_epsilon_remaining"),
    )
)

PathLike = Union[str, "os.PathLike[str]"]


def privacy_account(result: Any) -> Optional[Dict[str, float]]:
    """What an answer of a model with differentially private outputs cost: a dict
    ``{"epsilon_query", "epsilon_spent"[, "epsilon_budget", "epsilon_remaining"]}``
    read from the response parameters, or ``None`` for a model without output DP.

    ``result``: a ``tritonclient`` ``InferResult`` (HTTP or gRPC), the response dict
    or protobuf behind it, or a plain dict of parameters.
    """
    resp = result.get_response() if hasattr(result, "get_response") else result
    params = resp.get("parameters", resp) if isinstance(resp, dict) else getattr(resp, "parameters", None)
    if params is None:
        return None
    out: Dict[str, float] = {}
    for name in DP_PARAMETERS:
        if name not in params:
            continue
        v = params[name]
        # gRPC: an InferParameter message; HTTP: a JSON number
        v = getattr(v, "double_param", v)
        out[name[len("heinfer_dp_"):]] = float(v)
    return out or None


# --------------------------------------------------------------------------- spec


def _pbtxt_unescape(s: str) -> str:
    out = []
    i = 0
    simple = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\"}
    while i < len(s):
        ch = s[i]
        if ch != "\\" or i + 1 == len(s):
            out.append(ch)
            i += 1
            continue
        nxt = s[i + 1]
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        elif nxt in "01234567":
            m = re.match(r"[0-7]{1,3}", s[i + 1 :])
            assert m is not None
            out.append(chr(int(m.group(0), 8)))
            i += 1 + len(m.group(0))
        else:
            out.append(nxt)
            i += 2
    return "".join(out)


def _spec_from_pbtxt(text: str, where: str) -> str:
    m = re.search(
        r'key:\s*"' + SPEC_PARAMETER + r'"\s*value:\s*\{\s*string_value:\s*"((?:[^"\\]|\\.)*)"', text, re.S
    )
    if not m:
        raise SpecError(f"{where} has no parameter '{SPEC_PARAMETER}': is it an heinfer model (backend: \"heinfer\")?")
    return _pbtxt_unescape(m.group(1))


def _spec_from_path(path: str) -> str:
    if os.path.isdir(path):
        for cand in (os.path.join(path, "1", "model.hem"), os.path.join(path, "model.hem")):
            if os.path.isfile(cand):
                return _native.client_spec_from_model_file(cand)
        cfg = os.path.join(path, "config.pbtxt")
        if os.path.isfile(cfg):
            path = cfg
        else:
            raise SpecError(f"{path}: neither 1/model.hem nor config.pbtxt found; pass an heinfer model directory")
    if path.endswith(".hem"):
        return _native.client_spec_from_model_file(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise SpecError(f"cannot read {path}: {e}") from e
    if text.lstrip().startswith("{"):
        return client_spec_from_config(text)
    return _spec_from_pbtxt(text, path)


def _param_value(v: Any) -> Optional[str]:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, dict):
        for k in ("string_value", "stringValue"):
            if k in v:
                return str(v[k])
        return None
    sv = getattr(v, "string_value", None)
    return sv if isinstance(sv, str) else None


def client_spec_from_config(cfg: Any) -> str:
    """The client spec (JSON text) of an heinfer model.

    ``cfg`` may be:

    * what ``tritonclient.http.InferenceServerClient.get_model_config`` returns (a dict);
    * what ``tritonclient.grpc.InferenceServerClient.get_model_config`` returns
      (a ``ModelConfigResponse``), its ``.config`` (a ``ModelConfig``), or the dict
      it returns with ``as_json=True``;
    * a model directory, a ``config.pbtxt`` or a ``model.hem`` path;
    * the client spec itself, as JSON text or as a dict.

    The spec is read from the config parameter ``heinfer_client_spec`` and checked
    (a malformed one raises :class:`SpecError`).
    """
    spec: Optional[str] = None
    where = "the model config"
    if isinstance(cfg, bytes):
        cfg = cfg.decode("utf-8")
    if isinstance(cfg, os.PathLike):
        cfg = os.fspath(cfg)
    if isinstance(cfg, str):
        s = cfg.strip()
        if s.startswith("{"):
            try:
                cfg = json.loads(s)
            except ValueError as e:
                raise SpecError(f"not JSON: {e}") from e
        else:
            spec = _spec_from_path(cfg)
    if spec is None and isinstance(cfg, dict):
        if ("params" in cfg or "scheme" in cfg) and "input" in cfg:  # the spec itself
            spec = json.dumps(cfg)
        else:
            if isinstance(cfg.get("config"), dict):  # grpc, as_json=True
                cfg = cfg["config"]
            where = f"the config of model '{cfg.get('name', '?')}'"
            params = cfg.get("parameters") or {}
            spec = _param_value(params.get(SPEC_PARAMETER)) if isinstance(params, dict) else None
            if spec is None:
                raise SpecError(
                    f"{where} has no parameter '{SPEC_PARAMETER}' (parameters: {sorted(params) if isinstance(params, dict) else params!r}); "
                    "is it an heinfer model (backend: \"heinfer\")?"
                )
    if spec is None and not isinstance(cfg, dict):
        if not hasattr(cfg, "parameters") and hasattr(getattr(cfg, "config", None), "parameters"):
            cfg = cfg.config  # grpc ModelConfigResponse -> ModelConfig
        if hasattr(cfg, "parameters"):
            where = f"the config of model '{getattr(cfg, 'name', '?')}'"
            params = cfg.parameters
            if SPEC_PARAMETER not in params:
                raise SpecError(
                    f"{where} has no parameter '{SPEC_PARAMETER}' (parameters: {sorted(params.keys())}); "
                    "is it an heinfer model (backend: \"heinfer\")?"
                )
            spec = _param_value(params[SPEC_PARAMETER])
    if spec is None:
        raise SpecError(
            f"cannot read a client spec from a {type(cfg).__name__}: pass the result of get_model_config "
            "(tritonclient http or grpc), a model directory, or the spec JSON"
        )
    try:
        parsed = json.loads(spec)
    except ValueError as e:
        raise SpecError(f"parameter '{SPEC_PARAMETER}' of {where} is not JSON: {e}") from e
    # CKKS specs have "params"; Paillier, LWE and BGV specs say their "scheme".
    if not isinstance(parsed, dict) or ("params" not in parsed and "scheme" not in parsed):
        raise SpecError(f"parameter '{SPEC_PARAMETER}' of {where} is not an heinfer client spec")
    return spec


# --------------------------------------------------------------------------- tritonclient glue


def _protocol_name(protocol: Any) -> str:
    if isinstance(protocol, str):
        p = protocol.lower()
        if p in ("http", "https", "rest"):
            return "http"
        if p == "grpc":
            return "grpc"
        raise ValueError(f"protocol must be 'http' or 'grpc', not {protocol!r}")
    mod = getattr(protocol, "__module__", None) or type(protocol).__module__ or ""
    if not mod.startswith("tritonclient"):
        mod = type(protocol).__module__
    if mod.startswith("tritonclient.grpc"):
        return "grpc"
    if mod.startswith("tritonclient.http"):
        return "http"
    raise ValueError(f"cannot tell the protocol of {type(protocol).__name__}: pass 'http' or 'grpc'")


def _triton(protocol: str) -> Any:
    try:
        if protocol == "grpc":
            import tritonclient.grpc as m
        else:
            import tritonclient.http as m
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"tritonclient[{protocol}] is needed for this: pip install 'tritonclient[{protocol}]'"
        ) from e
    return m


def _bytes_array(items: Sequence[bytes]) -> np.ndarray:
    a = np.empty(len(items), dtype=np.object_)
    for i, b in enumerate(items):
        a[i] = b
    return a


def _infer_input(mod: Any, protocol: str, name: str, items: Sequence[bytes]) -> Any:
    inp = mod.InferInput(name, [len(items)], "BYTES")
    if protocol == "http":
        inp.set_data_from_numpy(_bytes_array(items), binary_data=True)
    else:
        inp.set_data_from_numpy(_bytes_array(items))
    return inp


def _output_elements(outputs: Any) -> List[Any]:
    if isinstance(outputs, (bytes, bytearray, memoryview)):
        return [outputs]
    if isinstance(outputs, np.ndarray):
        flat = outputs.reshape(-1)
        if flat.dtype.kind == "S":
            # Fixed-width bytes: numpy strips trailing NULs from elements, so take
            # the raw rows (every result ciphertext of a model has the same length).
            w = flat.dtype.itemsize
            raw = flat.tobytes()
            return [raw[i * w : (i + 1) * w] for i in range(len(flat))]
        if flat.dtype.kind != "O":
            raise OutputError(
                f"ENCRYPTED_OUTPUT must hold bytes, got an array of {flat.dtype}: "
                "pass result.as_numpy(\"ENCRYPTED_OUTPUT\")"
            )
        return list(flat)
    if isinstance(outputs, (list, tuple)):
        return list(outputs)
    raise OutputError(
        f"cannot decrypt a {type(outputs).__name__}: pass result.as_numpy(\"ENCRYPTED_OUTPUT\") or a list of bytes"
    )


# --------------------------------------------------------------------------- the client


def _load_prefix(p: Optional[Dict[str, Any]]) -> Any:
    """A split model's prefix as an onnxruntime session, after checking its SHA-256
    against the spec's (a prefix altered in transit is refused, never run)."""
    if p is None:
        return None
    import base64
    import hashlib

    try:
        onnx_bytes = base64.b64decode(p["onnx_base64"], validate=True)
    except (KeyError, ValueError) as e:
        raise SpecError(f"client spec: the split prefix is not valid base64 ({e}); fetch the spec again") from e
    got = hashlib.sha256(onnx_bytes).hexdigest()
    if got != str(p.get("sha256", "")).lower():
        raise SpecError(f"client spec: the split prefix's SHA-256 is {got}, the spec says {p.get('sha256')}: the "
                        "prefix was altered or corrupted; refusing to run it (fetch the spec again)")
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise SpecError("this model is split (compile --split-at): its public prefix runs on the client with "
                        "onnxruntime; pip install onnxruntime") from e
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])


class Client:
    """A client of one heinfer model: its spec and a secret key.

    ``Client(spec)`` makes fresh keys from the operating system's CSPRNG; ``spec`` is
    the client spec JSON (or anything :func:`client_spec_from_config` accepts).
    The secret key never leaves this object unless :meth:`save_secret_key` writes it.
    """

    def __init__(self, spec: Any, *, model_name: Optional[str] = None, _session: Any = None) -> None:
        spec_json = spec if isinstance(spec, str) and spec.lstrip().startswith("{") else client_spec_from_config(spec)
        scheme = _native.spec_scheme(spec_json) if hasattr(_native, "spec_scheme") else "ckks"
        if scheme != "ckks":
            cls = {"paillier": "PaillierClient", "bgv": "BgvClient", "lwe": "LweClient"}.get(scheme)
            raise SpecError(f"this is a {scheme} model's client spec; heinfer.Client serves CKKS models (layout L): "
                            f"use heinfer.client_for(spec){f' or heinfer.{cls}' if cls else ''}")
        self._session = _session if _session is not None else _native.Session.generate(spec_json)
        self._spec: Dict[str, Any] = json.loads(self._session.spec_json())
        self._bundle: Optional[Tuple[bytes, str]] = None
        self._registered: set = set()
        self.model_name: str = model_name or self._spec.get("model", "model")
        # Split models (compile --split-at): the public prefix, run in clear with onnxruntime.
        # Read from the spec as given (a native module older than the prefix drops the field).
        prefix = self._spec.get("prefix") or json.loads(spec_json).get("prefix")
        if prefix is not None:
            self._spec["prefix"] = prefix
        self._prefix = _load_prefix(prefix)
        #: :func:`privacy_account` of the last :meth:`infer` answer (models with output DP)
        self.last_privacy: Optional[Dict[str, float]] = None

    # -- construction ----------------------------------------------------------

    @classmethod
    def load(cls, spec: Any, secret_key_path: PathLike, *, model_name: Optional[str] = None) -> "Client":
        """A client over a secret key saved earlier by :meth:`save_secret_key`.

        Refuses a key file that others can read, or one made for other parameters.
        """
        spec_json = spec if isinstance(spec, str) and spec.lstrip().startswith("{") else client_spec_from_config(spec)
        session = _native.Session.load(spec_json, os.fspath(secret_key_path))
        return cls(spec_json, model_name=model_name, _session=session)

    @classmethod
    def from_server(
        cls,
        triton_client: Any,
        model_name: str,
        model_version: str = "",
        *,
        secret_key_path: Optional[PathLike] = None,
    ) -> "Client":
        """Reads the model's client spec from a server (a ``tritonclient.http`` or
        ``tritonclient.grpc`` ``InferenceServerClient``) and makes keys — or loads
        them from ``secret_key_path`` when given."""
        cfg = triton_client.get_model_config(model_name, model_version)
        spec_json = client_spec_from_config(cfg)
        if secret_key_path is not None:
            return cls.load(spec_json, secret_key_path, model_name=model_name)
        return cls(spec_json, model_name=model_name)

    # -- keys -----------------------------------------------------------------

    def save_secret_key(self, path: PathLike) -> None:
        """Writes the secret key to a new file readable by its owner only (mode 0600).

        Never overwrites: raises :class:`KeyFileError` if the file exists."""
        self._session.save_secret(os.fspath(path))

    def _evaluation_bundle(self) -> Tuple[bytes, str]:
        if self._bundle is None:
            self._bundle = self._session.evaluation_bundle()
        return self._bundle

    @property
    def evaluation_keys(self) -> bytes:
        """The evaluation-key bundle (public) the server needs for this model:
        the relinearization key and the Galois keys the spec lists. Computed once."""
        return self._evaluation_bundle()[0]

    @property
    def key_id(self) -> str:
        """Hex SHA-256 of :attr:`evaluation_keys`: the ``KEY_ID`` the server knows them by."""
        return self._evaluation_bundle()[1]

    # -- the spec --------------------------------------------------------------

    @property
    def spec(self) -> Dict[str, Any]:
        """The client spec (parsed JSON): parameters, input layout, rotation steps, output layout."""
        return self._spec

    @property
    def spec_json(self) -> str:
        """The client spec as JSON text."""
        return self._session.spec_json()

    @property
    def input_shape(self) -> Tuple[int, ...]:
        """Shape of one sample (without a batch dimension): the original model's input for a
        split model (the client runs the prefix on it before encrypting)."""
        if self._prefix is not None:
            return tuple(self._spec["prefix"]["input_shape"])
        return tuple(self._spec["input"]["shape"])

    @property
    def input_size(self) -> int:
        """Number of values in one sample."""
        if self._prefix is not None:
            return int(np.prod(self.input_shape))
        return int(self._session.input_len())

    @property
    def split_prefix(self) -> Optional[Dict[str, Any]]:
        """A split model's public prefix (``compile --split-at``): where the graph was cut and
        the nodes the client runs in clear; ``None`` when the whole model runs encrypted."""
        p = self._spec.get("prefix")
        return None if p is None else {k: v for k, v in p.items() if k != "onnx_base64"}

    def run_prefix(self, xs: Any) -> np.ndarray:
        """Samples (first dimension = samples) through the split model's public prefix, in
        clear, with onnxruntime: the values the encrypted part takes, one row per sample."""
        a = self._as_f64(xs)
        n = self.input_size
        if self._prefix is None:
            return a.reshape(-1, n)
        if a.size == 0 or a.size % n:
            raise InputError(f"input of shape {a.shape} is not samples of shape {self.input_shape} ({n} values each)")
        sess = self._prefix
        x = a.reshape((-1,) + self.input_shape).astype(np.float32)
        y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        return np.ascontiguousarray(np.asarray(y, dtype=np.float64).reshape(x.shape[0], -1))

    @property
    def output_shape(self) -> Tuple[int, ...]:
        """Shape of the model's output (what :meth:`decrypt` returns, flattened)."""
        return tuple(self._spec["output"]["shape"])

    @property
    def num_classes(self) -> int:
        """Number of values in the decrypted output (classes, for a classifier)."""
        return len(self._spec["output"]["slots"])

    @property
    def num_input_ciphertexts(self) -> int:
        """How many ciphertexts one sample becomes (elements of ``ENCRYPTED_INPUT``)."""
        return len(self._spec["input"]["slot_map"])

    @property
    def num_output_ciphertexts(self) -> int:
        """How many ciphertexts the server returns (elements of ``ENCRYPTED_OUTPUT``)."""
        return int(self._spec["output"]["ciphertexts"])

    @property
    def postprocess_ops(self) -> List[str]:
        """The post-processing moved from the server to the client, in order (e.g. ``['softmax']``)."""
        return [op.get("op", "?") for op in self._spec.get("postprocess", [])]

    # -- encryption -------------------------------------------------------------

    @property
    def input_names(self) -> List[str]:
        """The ONNX inputs of a several-input model, in the order their values are
        concatenated into the one input vector; empty for a one-input model."""
        return [p["name"] for p in self._spec["input"].get("parts", [])]

    def _as_f64(self, x: Any) -> np.ndarray:
        if isinstance(x, Mapping):
            x = self._join_inputs(x)
        try:
            return np.ascontiguousarray(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError) as e:
            raise InputError(f"the input cannot be read as float64 numbers: {e}") from e

    def _join_inputs(self, named: Mapping[str, Any]) -> np.ndarray:
        """One sample given as {ONNX input name: values}: its input vector."""
        parts = self._spec["input"].get("parts", [])
        if not parts:
            raise InputError("this model has one input: pass its values, not a dict of named inputs")
        want = [p["name"] for p in parts]
        if set(named) != set(want):
            raise InputError(f"the model's inputs are {want}; got {sorted(named)}")
        out = []
        for p in parts:
            try:
                a = np.asarray(named[p["name"]], dtype=np.float64).reshape(-1)
            except (TypeError, ValueError) as e:
                raise InputError(f"input '{p['name']}' cannot be read as float64 numbers: {e}") from e
            if a.size != p["len"]:
                raise InputError(f"input '{p['name']}' has {a.size} values; the model takes {p['len']} (shape {p['shape']})")
            out.append(a)
        return np.concatenate(out)

    def encrypt(self, x: Any) -> List[bytes]:
        """Encrypts ONE sample into the elements of ``ENCRYPTED_INPUT``.

        ``x``: array-like of any shape whose size is the model's input size (e.g. the
        input shape, or it with a leading batch dimension of 1); converted to float64
        and flattened in row-major order. Values must be finite.
        """
        a = self._as_f64(x)
        n = self.input_size
        if a.size != n:
            raise InputError(
                f"input of shape {a.shape} has {a.size} values; this model takes one sample of shape "
                f"{self.input_shape} ({n} values) — use encrypt_batch for several"
            )
        if self._prefix is not None:
            a = self.run_prefix(a)
        return self._session.encrypt_rows(a.reshape(-1), 1)[0]

    @property
    def public_features(self) -> List[int]:
        """Input features (flattened indices) this model takes in clear in ``PLAIN_INPUT``
        (``compile --public-features``); empty when the whole sample is encrypted. The
        server sees these values; :meth:`encrypt` leaves them out of the ciphertext."""
        return [int(i) for i in self._spec.get("public_features", [])]

    def plain_input(self, x: Any) -> Optional[np.ndarray]:
        """The ``PLAIN_INPUT`` values of ONE whole sample (float32, the client spec's
        order), or ``None`` for a model that encrypts everything."""
        idx = self.public_features
        if not idx:
            return None
        a = self._as_f64(x).reshape(-1)
        if a.size != self.input_size:
            raise InputError(f"input has {a.size} values; this model takes {self.input_size}")
        return np.ascontiguousarray(a[idx].astype(np.float32))

    def encrypt_batch(self, xs: Any) -> List[List[bytes]]:
        """Encrypts several samples (first dimension = samples); one list of bytes each."""
        a = self._as_f64(xs)
        n = self.input_size
        if a.ndim == 0 or a.shape[0] == 0 or a.size != a.shape[0] * n:
            raise InputError(
                f"batch of shape {a.shape} is not a list of samples of shape {self.input_shape} ({n} values each)"
            )
        if self._prefix is not None:
            a = self.run_prefix(a)
        return self._session.encrypt_rows(a.reshape(-1), int(a.shape[0]))

    # -- decryption ---------------------------------------------------------------

    def decrypt(self, outputs: Any, postprocess: bool = False) -> np.ndarray:
        """Decrypts ``ENCRYPTED_OUTPUT`` into the model's output vector (float64, 1-D).

        ``outputs``: ``result.as_numpy("ENCRYPTED_OUTPUT")`` (an object array of bytes)
        or a list of bytes. With ``postprocess=True`` the post-processing the compiler
        moved to the client (softmax, argmax, ...) is applied; otherwise the raw
        outputs (logits, typically) are returned.
        """
        y = self._session.decrypt(_output_elements(outputs))
        if postprocess:
            y = self._session.postprocess(y)
        return np.asarray(y, dtype=np.float64)

    def decrypt_for_release(self, outputs: Any, policy: str, postprocess: bool = False) -> Tuple[np.ndarray, str]:
        """Decrypts ``ENCRYPTED_OUTPUT`` for values that leave this client (published,
        logged, sent to a server or another party), and says what that guarantees.

        A plain :meth:`decrypt` returns m + e; whoever sees such values beside their
        ciphertexts can recover the secret key (Li–Micciancio). ``policy``:
        ``"flood:RELEASES:MAX_ERROR[:SECURITY_BITS[:MAX_NOISE]]"`` adds noise that makes
        up to RELEASES answers statistically independent of the key (2^-SECURITY_BITS,
        default 40), given MAX_ERROR bounds the decryption error; ``"round:BITS"``
        rounds to multiples of 2^-BITS (a heuristic). Raises :class:`ReleaseError` when
        the parameters cannot give the guarantee.
        """
        y, guarantee = self._session.decrypt_for_release(_output_elements(outputs), policy)
        if postprocess:
            y = self._session.postprocess(y)
        return np.asarray(y, dtype=np.float64), guarantee

    def decrypt_input(self, inputs: Any) -> np.ndarray:
        """Decrypts the elements of ``ENCRYPTED_INPUT`` (encrypted under this secret key)
        back into the sample, shaped as :attr:`input_shape` — to check a saved key, or
        what was sent. Values carry CKKS noise (about 2^-20 relative)."""
        x = self._session.decrypt_input(_output_elements(inputs))
        return np.asarray(x, dtype=np.float64).reshape(self.input_shape)

    def postprocess(self, y: Any) -> np.ndarray:
        """Applies the client-side post-processing to a decrypted output vector."""
        v = np.asarray(y, dtype=np.float64).reshape(-1)
        return np.asarray(self._session.postprocess(v.tolist()), dtype=np.float64)

    # -- tritonclient ---------------------------------------------------------------

    def infer_inputs(self, x: Any, protocol: Any = "http", send_keys: bool = False) -> List[Any]:
        """Encrypts one sample and builds the ``tritonclient`` inputs of a request:
        ``ENCRYPTED_INPUT``, ``KEY_ID`` and, when ``send_keys``, ``EVALUATION_KEYS``
        (registers the keys on the server; idempotent, send them once).

        ``protocol``: ``"http"`` (binary data) or ``"grpc"``, or an
        ``InferenceServerClient`` of either.
        """
        p = _protocol_name(protocol)
        mod = _triton(p)
        cts = self.encrypt(x)
        inputs = [
            _infer_input(mod, p, ENCRYPTED_INPUT, cts),
            _infer_input(mod, p, KEY_ID, [self.key_id.encode("ascii")]),
        ]
        plain = self.plain_input(x)
        if plain is not None:
            inp = mod.InferInput(PLAIN_INPUT, [plain.size], "FP32")
            if p == "http":
                inp.set_data_from_numpy(plain, binary_data=True)
            else:
                inp.set_data_from_numpy(plain)
            inputs.append(inp)
        if send_keys:
            inputs.append(_infer_input(mod, p, EVALUATION_KEYS, [self.evaluation_keys]))
        return inputs

    def infer_outputs(self, protocol: Any = "http") -> List[Any]:
        """The requested-output list (``ENCRYPTED_OUTPUT``, binary data over HTTP)."""
        p = _protocol_name(protocol)
        mod = _triton(p)
        if p == "http":
            return [mod.InferRequestedOutput(ENCRYPTED_OUTPUT, binary_data=True)]
        return [mod.InferRequestedOutput(ENCRYPTED_OUTPUT)]

    def infer(
        self,
        triton_client: Any,
        x: Any,
        model_name: Optional[str] = None,
        *,
        send_keys: Optional[bool] = None,
        postprocess: bool = False,
        **infer_kwargs: Any,
    ) -> np.ndarray:
        """Encrypts ``x``, runs the model on a server and decrypts the result.

        ``send_keys=None`` sends the evaluation keys with the first request through
        this ``triton_client`` (and again if the server answers that it does not know
        the key id); ``True``/``False`` force it.
        """
        model = model_name or self.model_name
        slot = (id(triton_client), model)
        first = send_keys if send_keys is not None else slot not in self._registered
        p = _protocol_name(triton_client)

        def call(with_keys: bool) -> Any:
            return triton_client.infer(
                model, self.infer_inputs(x, p, send_keys=with_keys), outputs=self.infer_outputs(p), **infer_kwargs
            )

        try:
            res = call(first)
        except Exception as e:  # tritonclient.utils.InferenceServerException
            if send_keys is not None or first or "key" not in str(e).lower():
                raise
            res = call(True)
        self._registered.add(slot)
        self.last_privacy = privacy_account(res)
        return self.decrypt(res.as_numpy(ENCRYPTED_OUTPUT), postprocess=postprocess)

    @property
    def output_dp(self) -> Optional[Dict[str, Any]]:
        """The model's output-DP configuration (ε and δ per query, mechanism, σ, clamp,
        budget per key id), or ``None`` when its outputs are exact."""
        return self._spec.get("output_dp")

    def __repr__(self) -> str:
        return (
            f"heinfer.Client(model={self.model_name!r}, input_shape={self.input_shape}, "
            f"log_n={self._spec['params'].get('log_n')}, rotations={len(self._spec.get('rotation_steps', []))})"
        )


# --------------------------------------------------------------------------- compile


def compile(  # noqa: A001 - the natural name for model owners
    onnx_path: PathLike,
    calibration: Any,
    output_dir: PathLike,
    name: Optional[str] = None,
    scale_bits: Optional[int] = None,
    degree: Optional[int] = None,
    *,
    data: Any = None,
    labels: Any = None,
    target_agreement: float = 0.999,
    max_degree: int = 31,
    margin: float = 0.1,
    maxpool: str = "refuse",
    min_log_n: int = 12,
    key_budget_mb: Optional[float] = None,
    reference: str = "auto",
    python: Optional[PathLike] = None,
    progress: Optional[Any] = None,
    public_features: Optional[str] = None,
    circuit_privacy: Optional[int] = None,
    output_dp: Optional[Tuple[float, float]] = None,
    dp_clamp: Optional[float] = None,
    dp_budget: Optional[float] = None,
    mask_unused_slots: bool = False,
    split_at: Optional[str] = None,
    rotations: str = "auto",
    query: str = "ciphertext",
    layout: str = "auto",
    first_layer: str = "auto",
    answer: str = "auto",
    merged: bool = False,
    galois_radix: Optional[int] = None,
    one_top_key: bool = False,
    key_bases: bool = True,
) -> Dict[str, Any]:
    """Compiles an ONNX model into the Triton model directory ``<output_dir>/<name>/``
    (``config.pbtxt`` with the client spec, ``1/model.hem``, report, activation plots).

    ``calibration``: inputs (array of shape ``[n, *input_shape]``, or a ``.npy`` path)
    whose activation ranges the polynomial approximations must cover. ``data`` and
    ``labels``: evaluation set for the accuracy report (default: the calibration data).
    ``maxpool``: ``"refuse"``, ``"avg"`` (rewrite as AveragePool) or ``"approx"`` (pairwise
    maxima with a fitted |x|). ``public_features``: input features sent in clear (``"0-9,15"``).
    ``circuit_privacy``: λ (the server floods each answer to statistical distance 2^-λ).
    ``output_dp``: (ε, δ) per query, with ``dp_clamp`` and a per-key ``dp_budget``.
    ``mask_unused_slots``: zero every answer slot outside the outputs. ``split_at``: split
    inference (``--split-at``): the node or tensor where the graph is cut; the prefix runs in
    clear on the client (it travels in the client spec). ``reference``:
    ``"onnxruntime"``, ``"interpreter"`` (heinfer's own f64 interpreter) or ``"auto"``
    (onnxruntime when this Python has it). ``progress``: called with a short message per phase.
    ``rotations``: where linear layers rotate (``--rotations``): ``"before-rescale"`` (least
    noise), ``"after-rescale"`` (keys one level lower: smaller upload, faster, more noise) or
    ``"auto"`` (the smaller upload; the report's scale note gives the other choice).
    ``query``: how a query travels (``--query``): ``"ciphertext"``, or ``"compact"`` (one word
    per input value, packed by the server: a query of a few KB, for packing keys in the
    bundle and more server time); :meth:`Client.encrypt` then makes compact queries.
    ``first_layer``: with a compact query, where the first linear layer runs
    (``--first-layer``): ``"coefficients"`` (on the query's coefficients before the packing,
    no key: the server packs the layer's outputs), ``"slots"`` (after packing the inputs) or
    ``"auto"`` (the fewer key switches; the report's note says which).
    ``answer``: how an answer travels (``--answer``): ``"compact"`` (cut to the subring its
    outputs repeat in, when they do, and switched to the smallest modulus that keeps their
    precision), ``"full"`` (the ciphertext at the output level) or ``"auto"`` (compact with a
    compact query); :meth:`Client.decrypt` reads either.
    ``layout``: the layouts to emit (``--layout``): ``"auto"`` (every one that fits: L, and M
    and T where they do), ``"L"``, ``"M"`` (L and M, an error if M does not fit) or ``"T"``.
    ``merged``: also write the merged twin ``<output_dir>/<name>_merged/`` (``--merged``: for
    Triton's dynamic batcher and ``heinfer serve``, one sample per request in its own layout-M
    block, same-key requests answered by one evaluation; :meth:`MultiClient.infer_merged`).
    ``galois_radix``: rotation keys only for powers of 2, 4 or 8 (``--galois-radix``): about
    half or a third of the Galois keys to upload, for more rotations per sum. Default: 2, or
    with ``key_budget_mb`` the first whose upload fits. ``one_top_key``: the first layer's
    replicas summed with one Galois key at the top level, where keys cost the most
    (``--one-top-key``: fewer bytes, more rotations there). Under ``key_budget_mb`` without
    ``degree``, a lower activation degree is taken when no key layout fits the automatic one.
    ``key_bases``: keys for lower levels made with special primes and digits of their own
    where that makes them smaller (the default; ``False`` is ``--no-key-bases``).

    Returns the report as a dict, with ``model_dir`` added. Raises :class:`CompileError`.
    """

    if key_budget_mb is not None and not float(key_budget_mb) > 0:
        raise CompileError(f"key_budget_mb={key_budget_mb!r}: give a positive number of MB (10^6 bytes)")

    def arr(what: str, v: Any) -> np.ndarray:
        if isinstance(v, (str, os.PathLike)):
            try:
                v = np.load(os.fspath(v))
            except (OSError, ValueError) as e:
                raise CompileError(f"{what}: cannot load {os.fspath(v)}: {e}") from e
        try:
            return np.ascontiguousarray(np.asarray(v, dtype=np.float64))
        except (TypeError, ValueError) as e:
            raise CompileError(f"{what} cannot be read as float64 numbers: {e}") from e

    onnx_path = os.fspath(onnx_path)
    if name is None:
        name = os.path.splitext(os.path.basename(onnx_path))[0] or "model"
    if maxpool not in ("refuse", "avg", "average", "approx", "approximate"):
        raise CompileError(f"maxpool must be 'refuse', 'avg' or 'approx', not {maxpool!r}")
    if output_dp is None and (dp_clamp is not None or dp_budget is not None):
        raise CompileError("dp_clamp and dp_budget apply with output_dp=(epsilon, delta)")
    if reference == "auto":
        import importlib.util

        use_ort = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None
    elif reference in ("onnxruntime", "interpreter"):
        use_ort = reference == "onnxruntime"
    else:
        raise CompileError(f"reference must be 'auto', 'onnxruntime' or 'interpreter', not {reference!r}")
    cal = arr("calibration", calibration)
    ev = arr("data", data) if data is not None else None
    lab = arr("labels", labels).reshape(-1) if labels is not None else None
    report_json, model_dir = _native.compile(
        onnx_path,
        cal.reshape(-1),
        list(cal.shape),
        os.fspath(output_dir),
        name,
        degree,
        float(target_agreement),
        int(max_degree),
        float(margin),
        maxpool in ("avg", "average"),
        scale_bits,
        int(min_log_n),
        int(round(key_budget_mb * 1e6)) if key_budget_mb is not None else None,
        os.fspath(python) if python is not None else sys.executable,
        use_ort,
        ev.reshape(-1) if ev is not None else None,
        list(ev.shape) if ev is not None else None,
        lab,
        progress,
        maxpool in ("approx", "approximate"),
        public_features,
        circuit_privacy,
        (float(output_dp[0]), float(output_dp[1]), dp_clamp, dp_budget) if output_dp is not None else None,
        bool(mask_unused_slots),
        split_at=split_at,
        rotations=rotations,
        query=query,
        layout=str(layout),
        first_layer=str(first_layer),
        answer=str(answer),
        merged=bool(merged),
        galois_radix=int(galois_radix) if galois_radix is not None else None,
        one_top_key=bool(one_top_key),
        key_bases=bool(key_bases),
    )
    report: Dict[str, Any] = json.loads(report_json)
    report["model_dir"] = model_dir
    return report


# --------------------------------------------------------------------------- client-aided refresh


class ClientAided:
    """Drives a client-aided model (``heinfer compile --client-aided``): segments
    ``<name>__seg0``, ``<name>__seg1``, … served as ordinary models, the exact activations
    run here in clear between them.

    Per sample and segment: encrypt (fresh randomness), one request, decrypt; then the
    clear step (an ONNX graph from the spec, SHA-256 checked, run with onnxruntime) makes
    the next segment's input. The server keeps no state between the requests: abandoning
    an exchange midway leaves nothing behind on it.

    WARNING: this client sees every intermediate activation in clear (what the model
    owner gives away); the server only ever receives ciphertexts.
    """

    def __init__(self, specs: Sequence[Any]) -> None:
        raw = [s if isinstance(s, str) and s.lstrip().startswith("{") else client_spec_from_config(s) for s in specs]
        manifests = [json.loads(r).get("client_aided") for r in raw]
        if not manifests or any(m is None for m in manifests):
            raise SpecError("not a client-aided model (compile --client-aided): a spec has no 'client_aided' manifest")
        names = manifests[0].get("segments", [])
        if len(raw) != len(names) or [m.get("segments") for m in manifests] != [names] * len(raw) or [
            m.get("index") for m in manifests
        ] != list(range(len(raw))):
            raise SpecError(f"the specs given are not the segments {names} in order, each once; fetch them again")
        clear = manifests[0].get("clear", [])
        if len(clear) + 1 != len(names):
            raise SpecError(f"{len(clear)} clear steps between {len(names)} segments; fetch the specs again")
        #: the segments' model names, in the order they are called
        self.segments: List[str] = list(names)
        #: one :class:`Client` (its own keys) per segment
        self.clients: List[Client] = [Client(r, model_name=n) for r, n in zip(raw, names)]
        self._clear_specs: List[Dict[str, Any]] = clear
        self._clear = [_load_prefix(c) for c in clear]
        #: bytes sent (ciphertexts; keys counted apart) and received by the last :meth:`infer`, per round trip
        self.last_round_trips: List[Dict[str, int]] = []

    @classmethod
    def from_server(cls, triton_client: Any, model_name: str) -> "ClientAided":
        """Reads the manifest from any segment's config (``<name>__seg0`` or the base
        ``<name>``), then every segment's spec; makes fresh keys for each."""
        first = model_name if "__seg" in model_name else f"{model_name}__seg0"
        spec = client_spec_from_config(triton_client.get_model_config(first))
        manifest = json.loads(spec).get("client_aided")
        if manifest is None:
            raise SpecError(f"model {first!r} is not client-aided (compile --client-aided)")
        return cls([client_spec_from_config(triton_client.get_model_config(n)) for n in manifest["segments"]])

    @property
    def round_trips(self) -> int:
        """Requests per sample (one per segment)."""
        return len(self.segments)

    @property
    def input_shape(self) -> Tuple[int, ...]:
        """The whole model's input shape (segment 0's)."""
        return self.clients[0].input_shape

    def clear_step(self, k: int, y: Any) -> np.ndarray:
        """Segment ``k``'s decrypted output through the clear step after it (the exact
        activation), as the next segment's input."""
        c = self._clear_specs[k]
        a = np.asarray(y, dtype=np.float32).reshape([1, *c["input_shape"]])
        sess = self._clear[k]
        return np.asarray(sess.run(None, {sess.get_inputs()[0].name: a})[0], dtype=np.float64)

    def run_segment(self, triton_client: Any, k: int, x: Any) -> np.ndarray:
        """One round trip: ``x`` encrypted for segment ``k``, sent, the answer decrypted
        (raw outputs, before any post-processing)."""
        c = self.clients[k]
        p = _protocol_name(triton_client)
        mod = _triton(p)
        slot = (id(triton_client), c.model_name)
        cts = c.encrypt(x)  # fresh randomness for every round trip

        def call(with_keys: bool) -> Any:
            inputs = [_infer_input(mod, p, ENCRYPTED_INPUT, cts),
                      _infer_input(mod, p, KEY_ID, [c.key_id.encode("ascii")])]
            if with_keys:
                inputs.append(_infer_input(mod, p, EVALUATION_KEYS, [c.evaluation_keys]))
            return triton_client.infer(c.model_name, inputs, outputs=c.infer_outputs(p))

        first = slot not in c._registered
        try:
            res = call(first)
        except Exception as e:  # tritonclient.utils.InferenceServerException
            if first or "key" not in str(e).lower():
                raise
            res = call(True)
        c._registered.add(slot)
        out = res.as_numpy(ENCRYPTED_OUTPUT)
        got = sum(len(b) for b in _output_elements(out))
        self.last_round_trips.append({"segment": k, "query_bytes": sum(len(b) for b in cts), "answer_bytes": got})
        return c.decrypt(out)

    def infer(self, triton_client: Any, x: Any, *, postprocess: bool = False) -> np.ndarray:
        """The whole model on ONE sample: every segment in turn, the clear steps between
        them here. Returns the last segment's decrypted output (post-processed with
        ``postprocess=True``)."""
        self.last_round_trips = []
        a = x
        for k in range(len(self.segments)):
            y = self.run_segment(triton_client, k, a)
            if k + 1 == len(self.segments):
                return self.clients[k].postprocess(y) if postprocess else y
            a = self.clear_step(k, y)
        raise AssertionError("unreachable")

    def __repr__(self) -> str:
        return f"heinfer.ClientAided(segments={self.segments})"


# --------------------------------------------------------------------------- other schemes and layouts

# Paillier, BGV and CKKS layout T clients, and the factory that picks one (heinfer/schemes.py);
# imported last: it builds on the tritonclient glue above.
from .schemes import (BatchClient, BgvClient, LweClient, MultiClient, PaillierClient, choose_layout, client_for,  # noqa: E402
                      spec_scheme)

__all__ += ["client_for", "choose_layout", "spec_scheme", "PaillierClient", "BgvClient", "BatchClient", "MultiClient",
            "LweClient"]
