"""Exceptions raised by heinfer.

Every error of the Rust core arrives as :class:`HeinferError` or one of its
subclasses, with the core's message (which says what to change). Subclasses also
derive from the matching built-in exception so that generic handlers keep working.
"""

from __future__ import annotations

__all__ = ["HeinferError", "SpecError", "KeyFileError", "InputError", "OutputError", "CompileError", "ReleaseError",
           "AggregationError"]


class HeinferError(Exception):
    """Base class of every heinfer error."""


class SpecError(HeinferError, ValueError):
    """The client spec (or the model config that should carry it) is missing, malformed or refused."""


class KeyFileError(HeinferError, OSError):
    """The secret-key file cannot be written or read (exists already, unsafe permissions, wrong parameters)."""


class InputError(HeinferError, ValueError):
    """The sample to encrypt has the wrong size or non-finite values."""


class OutputError(HeinferError, ValueError):
    """ENCRYPTED_OUTPUT has the wrong number of elements or an element that is not a ciphertext of this model."""


class CompileError(HeinferError, ValueError):
    """The ONNX model cannot be compiled (unsupported op, bad data, no secure parameters...)."""


class ReleaseError(HeinferError, ValueError):
    """A release-safe decryption was refused: the policy is malformed, or these parameters cannot give it."""


class AggregationError(HeinferError, ValueError):
    """A secure-aggregation step was refused (round configuration, key ceremony, a second share, ...)."""
