"""Test oracles: run a one-node ONNX model through ``onnx.reference`` (and ONNX Runtime).

Kernel tests call our kernel function directly and compare with what these oracles compute
for the same op, inputs and attributes; expected values are never copied from our output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator

from pyflame_rt.types import DType

DEFAULT_OPSET = 21


def one_node_model(op_type: str, inputs: list[np.ndarray | None], attrs: dict[str, Any] | None = None,
                   *, noutputs: int = 1, opset: int = DEFAULT_OPSET, domain: str = "") -> onnx.ModelProto:
    """A model with one node; every non-None input becomes a graph input named ``in{i}``."""
    in_names, graph_inputs = [], []
    for i, arr in enumerate(inputs):
        if arr is None:
            in_names.append("")
            continue
        name = f"in{i}"
        in_names.append(name)
        arr = np.asarray(arr)
        elem = DType.from_numpy(arr.dtype).value
        graph_inputs.append(helper.make_tensor_value_info(name, elem, list(arr.shape)))
    out_names = [f"out{i}" for i in range(noutputs)]
    node = helper.make_node(op_type, in_names, out_names, domain=domain, **(attrs or {}))
    outputs = [helper.make_value_info(n, onnx.TypeProto()) for n in out_names]
    graph = helper.make_graph([node], "one_node", graph_inputs, outputs)
    opsets = [helper.make_opsetid("", opset)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    return helper.make_model(graph, opset_imports=opsets, ir_version=10)


def reference(op_type: str, inputs: list[np.ndarray | None], attrs: dict[str, Any] | None = None,
              *, noutputs: int = 1, opset: int = DEFAULT_OPSET) -> list[np.ndarray]:
    """Outputs of ``onnx.reference.ReferenceEvaluator`` for one node."""
    model = one_node_model(op_type, inputs, attrs, noutputs=noutputs, opset=opset)
    feeds = {f"in{i}": np.asarray(a) for i, a in enumerate(inputs) if a is not None}
    return [np.asarray(o) for o in ReferenceEvaluator(model).run(None, feeds)]


def onnxruntime(op_type: str, inputs: list[np.ndarray | None], attrs: dict[str, Any] | None = None,
                *, noutputs: int = 1, opset: int = DEFAULT_OPSET) -> list[np.ndarray]:
    """Outputs of ONNX Runtime (CPU) for one node."""
    import onnxruntime as ort

    model = one_node_model(op_type, inputs, attrs, noutputs=noutputs, opset=opset)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {f"in{i}": np.asarray(a) for i, a in enumerate(inputs) if a is not None}
    return sess.run(None, feeds)


def assert_close(actual: Any, expected: Any, *, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Same dtype, same shape, values within tolerance (NaN == NaN)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.dtype == expected.dtype, f"dtype {actual.dtype} != expected {expected.dtype}"
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    if actual.dtype == object or actual.dtype.kind in "biuUSO":
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64),
                                   rtol=rtol, atol=atol, equal_nan=True)


def check_kernel(fn, op_type: str, inputs: list[np.ndarray | None], attrs: dict[str, Any] | None = None,
                 *, noutputs: int = 1, opset: int = DEFAULT_OPSET, rtol: float = 1e-5,
                 atol: float = 1e-6, **call_kwargs) -> None:
    """Call kernel ``fn`` and compare every output with ``onnx.reference``."""
    expected = reference(op_type, inputs, attrs, noutputs=noutputs, opset=opset)
    got = fn(*inputs, **(attrs or {}), **call_kwargs)
    if not isinstance(got, (tuple, list)):
        got = [got]
    assert len(got) >= noutputs, f"kernel returned {len(got)} outputs, expected {noutputs}"
    for g, e in zip(got[:noutputs], expected):
        assert_close(g, e, rtol=rtol, atol=atol)
