"""The exception hierarchy.

Every failure a user can cause raises a :class:`PyFlameRTError` subclass whose message names
the model part (node, op, input) and the fix. For drop-in use with ONNX Runtime scripts, each
class is also reachable under ONNX Runtime's name in
:mod:`pyflame_rt.capi.onnxruntime_pybind11_state` (``InvalidArgument``, ``Fail``, ...).

Several classes also derive from the matching Python built-in (``ValueError``,
``FileNotFoundError``, ``NotImplementedError``, ``RuntimeError``) so generic handlers work.
"""

from __future__ import annotations

__all__ = [
    "PyFlameRTError",
    "InvalidArgumentError",
    "ValidationError",
    "MissingInputError",
    "InvalidModelError",
    "InvalidProtobufError",
    "InvalidGraphError",
    "ModelNotFoundError",
    "NotImplementedFeatureError",
    "UnsupportedOperatorError",
    "ExecutionError",
    "KernelError",
    "RunTerminatedError",
    "MemoryLimitError",
]


class PyFlameRTError(Exception):
    """Root of every error PyFlameRT raises on purpose (ORT: ``RuntimeException``)."""


class InvalidArgumentError(PyFlameRTError, ValueError):
    """An argument given to the API is wrong (ORT: ``InvalidArgument``)."""


class ValidationError(InvalidArgumentError):
    """An input fed to ``run()`` does not match the model: name, dtype, rank or shape."""


class MissingInputError(PyFlameRTError, ValueError):
    """A required model input was not fed.

    A plain ``ValueError`` (not ``InvalidArgument``), exactly as ONNX Runtime raises it, so
    scripts that tell the two apart keep working.
    """


class InvalidModelError(PyFlameRTError):
    """The model file or graph is malformed, inconsistent or hostile."""


class InvalidProtobufError(InvalidModelError):
    """The model bytes cannot be parsed (ORT: ``InvalidProtobuf``)."""


class InvalidGraphError(InvalidModelError):
    """The graph is structurally wrong: cycles, undefined values, duplicates (ORT: ``InvalidGraph``)."""


class ModelNotFoundError(PyFlameRTError, FileNotFoundError):
    """The model path does not exist (ORT: ``NoSuchFile``)."""


class NotImplementedFeatureError(PyFlameRTError, NotImplementedError):
    """Something valid that PyFlameRT does not implement yet (ORT: ``NotImplemented``)."""


class UnsupportedOperatorError(NotImplementedFeatureError):
    """No kernel is registered for an operator at the model's opset."""


class ExecutionError(PyFlameRTError, RuntimeError):
    """Running the model failed (ORT: ``Fail``)."""


class KernelError(ExecutionError):
    """A kernel raised while executing a node; the message names the node and its inputs."""


class RunTerminatedError(ExecutionError):
    """A run was stopped through ``RunOptions.terminate``."""


class MemoryLimitError(ExecutionError):
    """A plan or tensor would exceed ``SessionOptions.memory_limit``."""
