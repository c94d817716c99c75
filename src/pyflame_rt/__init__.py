"""PyFlameRT: an ONNX Runtime-compatible inference runtime written in Python.

``import pyflame_rt as ort`` works for common ONNX Runtime scripts::

    import pyflame_rt as ort
    sess = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import capi
from .backends.base import available_backends
from .backends.cpu import CPUExecutionProvider
from .errors import (
    ExecutionError,
    InvalidArgumentError,
    InvalidGraphError,
    InvalidModelError,
    InvalidProtobufError,
    KernelError,
    MemoryLimitError,
    MissingInputError,
    ModelNotFoundError,
    NotImplementedFeatureError,
    PyFlameRTError,
    RunTerminatedError,
    UnsupportedOperatorError,
    ValidationError,
)
from .ir import Graph, Model
from .ops import register_op
from .opt import OptLevel
from .session import (
    ExecutionMode,
    ExecutionOrder,
    GraphOptimizationLevel,
    InferenceSession,
    IOBinding,
    ModelMetadata,
    OrtValue,
    RunOptions,
    SessionOptions,
    load_model,
)
from .types import DType, NodeArg, TensorInfo

__all__ = [
    "__version__",
    "InferenceSession",
    "SessionOptions",
    "RunOptions",
    "GraphOptimizationLevel",
    "ExecutionMode",
    "ExecutionOrder",
    "ModelMetadata",
    "NodeArg",
    "OrtValue",
    "IOBinding",
    "get_available_providers",
    "get_all_providers",
    "get_device",
    "get_version_string",
    "capi",
    "OptLevel",
    "DType",
    "TensorInfo",
    "Graph",
    "Model",
    "load",
    "save",
    "from_torch",
    "load_torchscript",
    "load_model",
    "register_op",
    "CPUExecutionProvider",
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


def get_available_providers() -> list[str]:
    """Execution providers this build can run (ORT's function)."""
    return available_backends()


def get_all_providers() -> list[str]:
    """Every provider name PyFlameRT knows."""
    return available_backends()


def get_device() -> str:
    """``"CPU"``, as ONNX Runtime's CPU build reports."""
    return "CPU"


def get_version_string() -> str:
    return __version__


def from_torch(module, example_inputs, *, dynamic_shapes=None, input_names=None,
               output_names=None) -> Model:
    """Convert a ``torch.nn.Module`` into a ``Model`` (needs the ``torch`` extra).

    See :func:`pyflame_rt.io.torch.from_torch`; torch is imported only when this is called.
    """
    from .io.torch import from_torch as convert

    return convert(module, example_inputs, dynamic_shapes=dynamic_shapes,
                   input_names=input_names, output_names=output_names)


def load_torchscript(path_or_scriptmodule, example_inputs, *, dynamic_shapes=None,
                     input_names=None, output_names=None) -> Model:
    """Convert a ``torch.jit.save``'d file or a ScriptModule into a ``Model``.

    See :func:`pyflame_rt.io.torchscript.load_torchscript` (needs the ``torch`` extra).
    """
    from .io.torchscript import load_torchscript as convert

    return convert(path_or_scriptmodule, example_inputs, dynamic_shapes=dynamic_shapes,
                   input_names=input_names, output_names=output_names)


def load(source) -> Model:
    """Load an ``.onnx``/``.pfm`` file, bytes or ``onnx.ModelProto`` into a ``Model``."""
    return load_model(source)


def save(model: Model, path) -> None:
    """Save ``model`` as ONNX or ``.pfm``, chosen by the file extension."""
    from .io.onnx import save_onnx
    from .io.pfm import save_pfm

    if str(path).lower().endswith(".pfm"):
        save_pfm(model, path)
    else:
        save_onnx(model, path)
