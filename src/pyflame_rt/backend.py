"""An ``onnx.backend.base.Backend`` over PyFlameRT, for the official ONNX conformance suite.

``onnx.backend.test.BackendTest(pyflame_rt.backend, __name__)`` runs the whole suite::

    import onnx.backend.test
    import pyflame_rt.backend
    globals().update(onnx.backend.test.BackendTest(pyflame_rt.backend, __name__)
                     .enable_report().test_cases)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper
from onnx.backend.base import Backend, BackendRep

from .errors import InvalidArgumentError
from .session import InferenceSession, SessionOptions

__all__ = ["PyFlameBackend", "PyFlameBackendRep", "prepare", "run_model", "run_node",
           "supports_device", "is_compatible"]


class PyFlameBackendRep(BackendRep):
    """A prepared model: an ``InferenceSession`` that runs positional or named inputs."""

    def __init__(self, session: InferenceSession) -> None:
        self.session = session
        self._input_names = [a.name for a in session.get_inputs()]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Run with a list (graph-input order), a dict, or a single array."""
        if isinstance(inputs, Mapping):
            feeds = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray) or not isinstance(inputs, Sequence):
                inputs = [inputs]
            if len(inputs) > len(self._input_names):
                raise InvalidArgumentError(
                    f"got {len(inputs)} inputs but the model has {len(self._input_names)}: "
                    f"{self._input_names}")
            feeds = dict(zip(self._input_names, inputs))
        return tuple(self.session.run(None, feeds))


class PyFlameBackend(Backend):
    """The ONNX backend API implemented by PyFlameRT (CPU only)."""

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> PyFlameBackendRep:
        """Build a session for ``model`` (a ModelProto, bytes or path).

        Keyword arguments that name ``SessionOptions`` fields are applied to the options.
        """
        if not cls.supports_device(device):
            raise InvalidArgumentError(f"device {device!r} is not supported; use 'CPU'")
        options = SessionOptions()
        for key, value in kwargs.items():
            if hasattr(options, key):
                setattr(options, key, value)
        return PyFlameBackendRep(InferenceSession(model, options))

    @classmethod
    def run_model(cls, model: Any, inputs: Any, device: str = "CPU",
                  **kwargs: Any) -> tuple[Any, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Any, device: str = "CPU",
                 outputs_info: Sequence[tuple[Any, tuple[int, ...]]] | None = None,
                 **kwargs: Any) -> tuple[Any, ...]:
        """Run a single ``NodeProto`` on ``inputs`` (positional, one per non-empty input)."""
        opset = kwargs.pop("opset_version", None)
        if isinstance(inputs, Mapping):
            named = dict(inputs)
        else:
            names = [n for n in node.input if n]
            named = dict(zip(names, inputs))
        graph_inputs = []
        for name, value in named.items():
            arr = np.asarray(value)
            graph_inputs.append(helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(arr.dtype), list(arr.shape)))
        outputs = [helper.make_empty_tensor_value_info(n) for n in node.output if n]
        graph = helper.make_graph([node], "run_node", graph_inputs, outputs)
        opsets = [helper.make_opsetid("", opset or onnx.defs.onnx_opset_version())]
        if node.domain not in ("", "ai.onnx"):
            opsets.append(helper.make_opsetid(node.domain, 1))
        model = helper.make_model(graph, opset_imports=opsets)
        return cls.prepare(model, device, **kwargs).run(named)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return str(device).upper().split(":")[0] == "CPU"


prepare = PyFlameBackend.prepare
run_model = PyFlameBackend.run_model
run_node = PyFlameBackend.run_node
supports_device = PyFlameBackend.supports_device
is_compatible = PyFlameBackend.is_compatible
