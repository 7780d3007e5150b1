"""Type stubs of the Rust extension module ``heinfer._native`` (use the ``heinfer`` API instead)."""

from typing import Any, Callable, List, Optional, Sequence, Tuple

__version__: str
# runtime::protocol: the names Triton's backend and heinfer-server read
CLIENT_SPEC_PARAM: str
ENCRYPTED_INPUT: str
KEY_ID: str
EVALUATION_KEYS: str
ENCRYPTED_OUTPUT: str
BACKEND: str

class Session:
    """A model's client: its spec and a secret key (wrapped by ``heinfer.Client``)."""

    @staticmethod
    def generate(spec_json: str) -> "Session": ...
    @staticmethod
    def load(spec_json: str, path: str) -> "Session": ...
    def spec_json(self) -> str: ...
    def input_len(self) -> int: ...
    def save_secret(self, path: str) -> None: ...
    def evaluation_bundle(self) -> Tuple[bytes, str]: ...
    def encrypt_rows(self, x: Any, rows: int) -> List[List[bytes]]: ...
    def decrypt(self, outputs: Sequence[Any]) -> List[float]: ...
    def decrypt_for_release(self, outputs: Sequence[Any], policy: str) -> Tuple[List[float], str]: ...
    def decrypt_input(self, inputs: Sequence[Any]) -> List[float]: ...
    def postprocess(self, y: Sequence[float]) -> List[float]: ...

def client_spec_from_model_file(path: str) -> str: ...
def compile(
    onnx_path: str,
    calibration: Any,
    calibration_shape: List[int],
    output_dir: str,
    name: str,
    degree: Optional[int],
    target_agreement: float,
    max_degree: int,
    margin: float,
    maxpool_average: bool,
    scale_bits: Optional[int],
    min_log_n: int,
    key_budget_bytes: Optional[int],
    python: Optional[str],
    use_onnxruntime: bool,
    data: Any = None,
    data_shape: Optional[List[int]] = None,
    labels: Any = None,
    progress: Optional[Callable[[str], None]] = None,
) -> Tuple[str, str]: ...
